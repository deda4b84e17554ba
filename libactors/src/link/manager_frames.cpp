// What the manager does with the frames a link reads (on its receiver
// threads), with a link's end, and the blocking call that reads its own
// answer (the addressed doorbell).

#include "link/manager.hpp"

#include <utility>

#include <unistd.h>

#include <caf/actor_registry.hpp>
#include <caf/exit_reason.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include "base/error.hpp"
#include "link/errors.hpp"
#include "base/futex.hpp"
#include "base/relax.hpp"
#include "link/proxy.hpp"

namespace actors::detail::links {

namespace {

using clock = std::chrono::steady_clock;

// Messages an actor runs on a receiver thread before it goes to the
// scheduler with the rest.
constexpr std::size_t inline_throughput = 64;

// Set while a `link` frame links a proxy here (manager::in_link_frame).
thread_local bool t_in_link_frame = false;

// A receiver thread's execution unit: actors that a frame made runnable
// are collected while the frames are read, and run (or handed to the
// scheduler) afterwards; anything else goes to the scheduler at once.
class unit final : public caf::execution_unit, public link_handler::context {
public:
  unit(caf::actor_system& sys, caf::proxy_registry& reg,
       std::shared_ptr<peer> p, bool collect)
      : caf::execution_unit(&sys), from(std::move(p)), collect_(collect) {
    proxy_registry_ptr(&reg);
  }

  void exec_later(caf::resumable* ptr) override {
    if (collect_ && collecting)
      runnable.push_back(ptr);
    else
      system().scheduler().enqueue(ptr);
  }

  std::shared_ptr<peer> from;
  bool collecting = true;
  std::vector<caf::resumable*> runnable;

private:
  bool collect_;
};

} // namespace

bool manager::in_link_frame() noexcept {
  return t_in_link_frame;
}

// -- frames
// ------------------------------------------------------------------------

std::unique_ptr<link_handler::context> manager::make_context(link& l) {
  std::shared_ptr<peer> p;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto i = links_.find(l.id()); i != links_.end())
      p = i->second;
  }
  return std::make_unique<unit>(sys_, registry_, std::move(p), true);
}

bool manager::deliver_to_waiter(peer& p, caf::actor_id dest,
                                caf::message_id mid, caf::message& content) {
  std::lock_guard<std::mutex> guard{p.mtx};
  auto i = p.waiters.find(dest);
  if (i == p.waiters.end() || i->second->done || i->second->mid != mid)
    return false;
  auto& w = *i->second;
  w.result = std::move(content);
  w.done = true;
  // Rung under the lock: the waiter leaves only after taking it.
  w.bell->fetch_add(1);
  futex_wake(*w.bell, 1);
  return true;
}

bool manager::on_frame(link& l, context& ctx, const frame& f,
                       std::string& what) {
  auto& u = static_cast<unit&>(ctx);
  auto* p = u.from.get();
  switch (f.kind) {
  case frame_kind::message: {
    message_parts parts;
    caf::error content_error;
    if (!read_message(f, &u, parts, content_error)) {
      what = "a malformed message frame";
      return false;
    }
    if (parts.mid.is_response() && p != nullptr) {
      std::lock_guard<std::mutex> guard{p->mtx};
      p->requests.erase(
          std::make_pair(f.dest, parts.mid.request_id().integer_value()));
    }
    if (content_error) {
      auto type = unknown_type_name(content_error);
      auto why
          = type.empty()
                ? make_error(errc::invalid_argument,
                             "process " + std::to_string(::getpid())
                                 + " cannot read a message: "
                                 + sys_.render(content_error))
                : make_error(errc::not_registered,
                             "process " + std::to_string(::getpid())
                                 + " cannot read a message holding type " + type
                                 + ": the type is not registered there");
      if (parts.mid.is_request())
        bounce(nullptr, parts.sender, parts.mid, why);
      else
        report(sys_.render(why));
      return true;
    }
    if (p != nullptr && p->waiting.load() > 0
        && deliver_to_waiter(*p, f.dest, parts.mid, parts.content))
      return true;
    if (parts.mid.is_response() && is_caller(f.dest))
      return true; // late: its call() gave up
    auto dst = sys_.registry().get(f.dest);
    if (!dst) {
      if (parts.mid.is_request())
        bounce(nullptr, parts.sender, parts.mid,
               caf::sec::request_receiver_down);
      return true;
    }
    // The answer is here: its timeout goes (CAF 0.17 never cancels one; it
    // would fire into the mailbox later, for nothing).
    if (parts.mid.is_response())
      sys_.clock().cancel_request_timeout(dst->get(), parts.mid);
    dst->enqueue(caf::make_mailbox_element(std::move(parts.sender), parts.mid,
                                           std::move(parts.stages),
                                           std::move(parts.content)),
                 &u);
    return true;
  }
  case frame_kind::down: {
    caf::error reason;
    if (!read_reason(f, &u, reason)) {
      what = "a malformed down frame";
      return false;
    }
    registry_.erase(l.peer(), f.dest, std::move(reason));
    return true;
  }
  case frame_kind::monitor: {
    if (f.size != 0) {
      what = "a malformed monitor frame";
      return false;
    }
    auto dst = sys_.registry().get(f.dest);
    std::weak_ptr<peer> weak = u.from;
    auto aid = f.dest;
    if (!dst) {
      if (u.from)
        send_down(u.from, aid, caf::exit_reason::unknown);
      return true;
    }
    dst->get()->attach_functor([weak, aid](const caf::error& reason) {
      if (auto q = weak.lock())
        if (auto m = q->mgr)
          m->send_down(q, aid, reason);
    });
    return true;
  }
  case frame_kind::link:
  case frame_kind::unlink: {
    caf::strong_actor_ptr who;
    if (!read_actor(f, &u, who)) {
      what = "a malformed link frame";
      return false;
    }
    // `who` is our proxy of the linking actor: linking it here links
    // both ways, as CAF's own remote links do.
    if (auto dst = sys_.registry().get(f.dest)) {
      t_in_link_frame = true;
      if (f.kind == frame_kind::link)
        who->get()->add_link(dst->get());
      else
        who->get()->remove_link(dst->get());
      t_in_link_frame = false;
    }
    return true;
  }
  case frame_kind::close: {
    caf::error reason;
    if (!read_reason(f, &u, reason)) {
      what = "a malformed close frame";
      return false;
    }
    l.peer_closing(std::move(reason));
    return true;
  }
  default:
    what = "a frame of an unknown kind";
    return false;
  }
}

void manager::after_frames(link& l, context& ctx) {
  auto& u = static_cast<unit&>(ctx);
  if (u.runnable.empty())
    return;
  u.collecting = false;
  // One actor runs here, the others on the scheduler at once: none waits
  // behind another's handler. None runs here while the other receiver
  // thread runs one (that one keeps reading meanwhile).
  auto first = u.runnable.begin();
  bool here = l.begin_inline();
  for (auto i = here ? first + 1 : first; i != u.runnable.end(); ++i)
    sys_.scheduler().enqueue(*i);
  if (here) {
    auto* job = *first;
    switch (job->resume(&u, inline_throughput)) {
    case caf::resumable::resume_later:
      sys_.scheduler().enqueue(job); // keeps the reference
      break;
    default:
      caf::intrusive_ptr_release(job);
    }
    l.end_inline();
  }
  u.runnable.clear();
  u.collecting = true;
}

caf::error manager::end_of(pid_t pid) {
  std::function<caf::error(pid_t)> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn = death_reason_;
  }
  if (fn)
    if (auto err = fn(pid))
      return err;
  return describe_end(pid);
}

caf::error manager::closed_reason(peer& p) {
  if (auto why = p.end_reason())
    return why;
  if (auto why = p.lnk->reason())
    return why;
  return end_of(p.pid);
}

void manager::on_closed(link& l, context& ctx, const caf::error& reason) {
  auto& u = static_cast<unit&>(ctx);
  if (!u.from)
    return;
  auto why = reason ? reason : end_of(u.from->pid);
  link_ended(*u.from, why);
  auto id = l.id();
  post([this, id] {
    std::shared_ptr<peer> p;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (auto i = links_.find(id); i != links_.end()) {
        p = i->second;
        links_.erase(i);
      }
    }
    if (p)
      p->lnk->join();
  });
}

void manager::link_ended(peer& p, const caf::error& reason) {
  bool primary = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto i = peers_.find(p.node);
        i != peers_.end() && i->second.get() == &p) {
      peers_.erase(i);
      primary = true;
    }
    if (p.lnk->fd() < 0 && !stopping_)
      links_.erase(p.lnk->id()); // never started: no receiver reaps it
  }
  if (primary)
    for (auto& x : registry_.get_all(p.node))
      registry_.erase(p.node, x->id(), reason);
  decltype(p.requests) requests;
  {
    std::lock_guard<std::mutex> guard{p.mtx};
    if (!p.ended) {
      p.ended = true;
      p.reason = reason;
    }
    requests.swap(p.requests);
  }
  for (auto& [key, entry] : requests)
    if (auto sender = entry.first.lock())
      bounce(&p, sender, entry.second, reason);
  // Callers still waiting on this link learn it now.
  {
    std::lock_guard<std::mutex> guard{p.mtx};
    for (auto& [aid, w] : p.waiters) {
      if (w->done)
        continue;
      w->result = caf::make_message(reason);
      w->done = true;
      w->bell->fetch_add(1);
      futex_wake(*w->bell, 1);
    }
  }
}

// -- blocking calls
// ------------------------------------------------------------------

namespace {

// Forgets this thread's callers when it ends.
struct caller_cleanup {
  std::vector<std::weak_ptr<manager>> used;
  ~caller_cleanup() {
    for (auto& w : used)
      if (auto m = w.lock())
        m->forget_caller(std::this_thread::get_id());
  }
};

thread_local caller_cleanup t_callers;

// How this thread's calls spin for their answers.
thread_local adaptive_spin t_call_spin{link::spin_time()};

} // namespace

caf::scoped_actor& manager::caller_of_this_thread() {
  std::lock_guard<std::mutex> guard{callers_mtx_};
  auto& entry = callers_[std::this_thread::get_id()];
  if (!entry) {
    entry = std::make_unique<caf::scoped_actor>(sys_, true);
    caller_ids_.insert((*entry)->id());
    ++callers_count_;
    t_callers.used.push_back(weak_from_this());
  }
  return *entry;
}

bool manager::is_caller(caf::actor_id id) {
  if (callers_count_.load() == 0)
    return false;
  std::lock_guard<std::mutex> guard{callers_mtx_};
  return caller_ids_.count(id) > 0;
}

void manager::forget_caller(std::thread::id id) {
  std::unique_ptr<caf::scoped_actor> gone;
  std::lock_guard<std::mutex> guard{callers_mtx_};
  if (auto i = callers_.find(id); i != callers_.end()) {
    gone = std::move(i->second);
    caller_ids_.erase((*gone)->id());
    --callers_count_;
    callers_.erase(i);
  }
}

bool manager::callable(const caf::actor& dest) {
  return dynamic_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(dest))
         != nullptr;
}

caf::expected<caf::message> manager::call(const caf::actor& dest,
                                          caf::message msg, duration timeout) {
  auto now = clock::now();
  auto deadline = timeout >= clock::time_point::max() - now
                      ? clock::time_point::max()
                      : now + std::max(timeout, duration::zero());
  auto* target
      = dynamic_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(dest));
  if (target == nullptr)
    return make_error(errc::invalid_argument,
                      "call: the actor is not in another process of this host");
  auto p = target->get_peer();
  if (!p)
    return target->dead_reason();
  if (!p->lnk->await_open(deadline))
    return p->lnk->closed()
               ? closed_reason(*p)
               : make_error(errc::timeout, "call: no link in time");
  auto& self = caller_of_this_thread();
  auto aid = self->id();
  auto* in = p->lnk->incoming();
  std::atomic<std::uint32_t> own_bell{0};
  waiter w;
  auto req = self->new_request_id(caf::message_priority::normal);
  w.mid = req.response_id();
  w.slot = in->claim_slot(aid);
  w.bell = w.slot >= 0 ? &in->slot_bell(w.slot) : &own_bell;
  {
    std::lock_guard<std::mutex> guard{p->mtx};
    p->waiters[aid] = &w;
  }
  p->waiting.fetch_add(1);
  target->enqueue(
      caf::make_mailbox_element(self->ctrl(), req, {}, std::move(msg)),
      nullptr);
  unit reader{sys_, registry_, p, false};
  auto done = [&] {
    std::lock_guard<std::mutex> guard{p->mtx};
    return w.done;
  };
  auto spin = t_call_spin.budget();
  while (!done() && clock::now() < deadline) {
    auto seen = w.bell->load();
    // Read ourselves: the answer (or frames before it) may be there.
    std::string bad;
    p->lnk->try_read([&](const frame& f) {
      if (!on_frame(*p->lnk, reader, f, bad))
        return false;
      return !done();
    });
    if (!bad.empty()) // as a receiver thread does
      p->lnk->close(caf::make_error(caf::sec::malformed_basp_message,
                                    "link protocol error: " + bad));
    if (done())
      break;
    // The answer is coming: spin once before sleeping (link::spin_time).
    auto budget = std::exchange(spin, std::chrono::nanoseconds::zero());
    auto found
      = spin_until_ready([&] { return w.bell->load() != seen; }, budget);
    t_call_spin.record(budget, found);
    if (found)
      continue;
    futex_wait(*w.bell, seen, deadline);
  }
  p->waiting.fetch_sub(1);
  {
    std::lock_guard<std::mutex> guard{p->mtx};
    p->waiters.erase(aid);
  }
  if (w.slot >= 0)
    in->release_slot(w.slot);
  if (!w.done)
    return make_error(errc::timeout, "call: no answer in time");
  if (w.result.match_elements<caf::error>())
    return w.result.get_as<caf::error>(0);
  return std::move(w.result);
}

} // namespace actors::detail::links
