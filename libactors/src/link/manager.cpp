#include "link/manager.hpp"

#include <cstdio>

#include <sys/epoll.h>
#include <unistd.h>

#include <caf/actor_registry.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include <caf/scoped_actor.hpp>

#include "base/error.hpp"
#include "link/errors.hpp"
#include "link/proxy.hpp"
#include "wire/node_id.hpp"

namespace actors::detail::links {

namespace {

using clock = std::chrono::steady_clock;

} // namespace

// -- construction and shutdown ------------------------------------------------

std::shared_ptr<manager> manager::make(caf::actor_system& sys, secret key,
                                       options opts) {
  if (!sys.node())
    throw error(errc::invalid_argument,
                "links need the node's id: load caf::io::middleman");
  std::shared_ptr<manager> result{new manager(sys, key, std::move(opts))};
  result->init();
  return result;
}

manager::manager(caf::actor_system& sys, secret key, options opts)
    : sys_(sys), key_(key), opts_(std::move(opts)), registry_(sys, *this),
      unit_(&sys) {
  unit_.proxy_registry_ptr(&registry_);
}

void manager::init() {
  if (opts_.service)
    sys_.registry().put(opts_.service.id(),
                        caf::actor_cast<caf::strong_actor_ptr>(opts_.service));
  std::weak_ptr<manager> weak = shared_from_this();
  // Writes link and unlink frames that no later frame has written yet.
  // Made on its first message (rare): nothing of it runs at start.
  helper_ = sys_.spawn<caf::hidden + caf::lazy_init>(
    [weak](caf::event_based_actor*) {
    return caf::behavior{
        [weak](caf::link_atom, const caf::strong_actor_ptr& target) {
          auto* ptr = caf::actor_cast<caf::abstract_actor*>(target);
          auto p = static_cast<proxy*>(ptr)->get_peer();
          if (auto m = weak.lock(); m && p)
            m->flush_link_ops(*p);
        },
        [](caf::exit_msg& x, const caf::strong_actor_ptr& target,
           caf::strong_actor_ptr& sender) {
          target->enqueue(std::move(sender), caf::make_message_id(),
                          caf::make_message(std::move(x)), nullptr);
        },
    };
  });
  if (opts_.listen) {
    address_ = link_address(key_, ::getpid());
    listen_fd_.reset(listen_on(address_));
    poller_.add(listen_fd_.get(), EPOLLIN, listen_tag);
  }
  try {
    watcher_ = std::thread{[this] { watch_loop(); }};
    setup_ = std::thread{[this] { setup_loop(); }};
  } catch (const std::system_error& e) {
    shutdown(caf::exit_reason::user_shutdown);
    throw error(errc::spawn_failed,
                std::string{"cannot start the links: a thread: "}
                    + e.code().message());
  }
}

manager::~manager() {
  shutdown(caf::exit_reason::remote_link_unreachable);
}

void manager::shutdown(const caf::error& reason) {
  std::vector<std::shared_ptr<peer>> all;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
    for (auto& [id, p] : links_)
      all.push_back(p);
  }
  jobs_cv_.notify_all();
  buffer bye;
  if (write_reason(bye, &unit_, frame_kind::close, 0, reason)) {
    bye.clear();
    write_reason(bye, &unit_, frame_kind::close, 0,
                 caf::exit_reason::remote_link_unreachable);
  }
  for (auto& p : all)
    p->lnk->close(reason, bye);
  // Receivers end after they have handed over what was in the rings.
  for (auto& p : all)
    p->lnk->join();
  poller_.wake();
  if (setup_.joinable())
    setup_.join();
  if (watcher_.joinable())
    watcher_.join();
  for (auto& p : all)
    link_ended(*p, reason);
  registry_.clear();
  caf::anon_send_exit(helper_, caf::exit_reason::kill);
  {
    std::lock_guard<std::mutex> guard{callers_mtx_};
    callers_.clear();
    caller_ids_.clear();
    callers_count_ = 0;
  }
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& j : jobs_)
    if (j.fd >= 0)
      ::close(j.fd);
  jobs_.clear();
  for (auto& [tag, fd] : silent_)
    ::close(fd);
  silent_.clear();
  for (auto& [tag, s] : strangers_)
    ::close(s.fd);
  strangers_.clear();
  peers_.clear();
  links_.clear();
  listen_fd_.reset();
}

void manager::set_death_reason(std::function<caf::error(pid_t)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  death_reason_ = std::move(fn);
}

void manager::set_report(std::function<void(const std::string&)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  report_ = std::move(fn);
}

void manager::set_exit_hook(exit_hook fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  exit_hook_ = std::move(fn);
}

bool manager::hook_exit(const caf::strong_actor_ptr& target,
                        const caf::strong_actor_ptr& sender,
                        const caf::exit_msg& x) {
  exit_hook fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn = exit_hook_;
  }
  return fn && fn(target, sender, x);
}

void manager::set_guarded(std::function<bool(const caf::actor_addr&)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  guarded_ = std::move(fn);
}

bool manager::guarded(const caf::actor_addr& x) {
  std::function<bool(const caf::actor_addr&)> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn = guarded_;
  }
  return fn && fn(x);
}

void manager::set_self_name(std::function<std::string()> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  self_name_ = std::move(fn);
}

void manager::report(const std::string& what) {
  std::function<void(const std::string&)> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn = report_;
  }
  if (fn)
    fn(what);
  else
    std::fprintf(stderr, "actors: %s\n", what.c_str());
}

identity manager::me() const {
  return identity{sys_.node(), opts_.service ? opts_.service.id() : 0,
                  opts_.ring_size};
}

// -- proxies
// ---------------------------------------------------------------------

caf::strong_actor_ptr manager::make_proxy(caf::node_id nid, caf::actor_id aid) {
  if (!nid || aid == caf::invalid_actor_id)
    return nullptr;
  if (opts_.elsewhere && local_pid(nid, sys_.node()) == 0)
    return opts_.elsewhere(nid, aid);
  auto p = peer_for(nid);
  caf::actor_config cfg;
  auto result
      = caf::make_actor<proxy, caf::strong_actor_ptr>(aid, nid, &sys_, cfg, p);
  if (p->lnk->closed()) {
    auto* ptr
        = static_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(result));
    ptr->kill_proxy(nullptr, closed_reason(*p));
    return result;
  }
  // The peer answers with `down` when the actor ends (at once if it has).
  buffer bytes;
  write_empty(bytes, frame_kind::monitor, aid);
  p->lnk->write(bytes, 0, nullptr);
  return result;
}

void manager::set_last_hop(caf::node_id*) {
  // nop: every link is direct
}

void manager::write_to(peer& p, buffer& bytes, std::uint64_t dest) {
  if (p.has_ops.load())
    flush_link_ops(p);
  write_frame(p, bytes, dest);
}

void manager::write_frame(peer& p, buffer& bytes, std::uint64_t dest) {
  auto deadline = clock::now() + opts_.full_wait;
  auto r = p.lnk->write(bytes, dest,
                        link::on_receiver_thread() ? nullptr : &deadline);
  if (r == link::write_result::full)
    report("the link to process " + std::to_string(p.pid) + " stayed full for "
           + std::to_string(opts_.full_wait.count())
           + " ms: a frame was not sent");
}

void manager::send(peer& p, caf::actor_id dest, caf::mailbox_element_ptr what) {
  // Not thread_local: a child's exit handlers send (runtime::finish) after
  // this thread's thread-local objects are destroyed.
  buffer bytes;
  bytes.reserve(256);
  auto mid = what->mid;
  auto& sender = what->sender;
  auto content = what->move_content_to_message();
  if (auto err = write_message(bytes, &unit_, dest, mid, sender, what->stages,
                               content)) {
    std::function<std::string()> name;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      name = self_name_;
    }
    auto why = unsendable(err, sys_,
                          name ? name()
                               : "process " + std::to_string(::getpid()));
    if (mid.is_request() && sender) {
      bounce(&p, sender, mid, why);
    } else if (mid.is_response()) {
      // The requester must learn it: send the error in the answer's place.
      bytes.clear();
      if (!write_message(bytes, &unit_, dest, mid, nullptr, {},
                         caf::make_message(why)))
        write_to(p, bytes, dest);
    } else {
      report("a message to actor " + std::to_string(dest) + " in process "
             + std::to_string(p.pid) + " was not sent: " + sys_.render(why));
    }
    return;
  }
  bool tracked = mid.is_request() && sender;
  auto key = std::make_pair(sender ? sender->id() : 0,
                            mid.request_id().integer_value());
  if (tracked) {
    std::lock_guard<std::mutex> guard{p.mtx};
    p.requests.emplace(
        key, std::make_pair(caf::actor_cast<caf::weak_actor_ptr>(sender), mid));
  }
  if (p.has_ops.load())
    flush_link_ops(p);
  auto deadline = clock::now() + opts_.full_wait;
  auto r = p.lnk->write(bytes, dest,
                        link::on_receiver_thread() ? nullptr : &deadline);
  if (r == link::write_result::ok)
    return;
  caf::error why;
  if (tracked) {
    std::unique_lock<std::mutex> guard{p.mtx};
    // Closed before its end was handled: the end answers it, with the
    // reason it finds (the peer's exit status).
    if (r == link::write_result::closed && !p.ended)
      return;
    if (p.requests.erase(key) == 0)
      return; // the link's end answered it already
    why = p.reason;
  }
  if (r == link::write_result::full)
    why = make_error(errc::timeout,
                     "the link to process " + std::to_string(p.pid)
                         + " stayed full for "
                         + std::to_string(opts_.full_wait.count())
                         + " ms: the message was not sent");
  if (tracked)
    bounce(&p, sender, mid, why);
  else if (r == link::write_result::full)
    report(sys_.render(why));
}

void manager::queue_link_op(peer& p, bool on, caf::abstract_actor* who,
                            caf::actor_control_block* target) {
  {
    std::lock_guard<std::mutex> guard{p.ops_mtx};
    p.ops.push_back(
        peer::link_op{on, caf::strong_actor_ptr{who->ctrl()}, target->id()});
    p.has_ops = true;
  }
  // Enqueueing to the helper takes no actor's lock.
  caf::anon_send(helper_, caf::link_atom::value, caf::strong_actor_ptr{target});
}

void manager::defer_exit(caf::strong_actor_ptr target,
                         caf::strong_actor_ptr sender, caf::exit_msg x) {
  caf::anon_send(helper_, std::move(x), std::move(target), std::move(sender));
}

void manager::flush_link_ops(peer& p) {
  std::lock_guard<std::mutex> flushing{p.flush_mtx};
  for (;;) {
    std::vector<peer::link_op> ops;
    {
      std::lock_guard<std::mutex> guard{p.ops_mtx};
      if (p.ops.empty()) {
        p.has_ops = false; // only now: every op taken is written
        return;
      }
      ops.swap(p.ops);
    }
    for (auto& op : ops) {
      // Serializing `who` may take its lock (the actor registry): fine
      // here, no lock of an actor is held.
      buffer bytes;
      auto kind = op.on ? frame_kind::link : frame_kind::unlink;
      // Never waiting for room (rare and small): a receiver thread may be
      // behind this lock.
      if (!write_actor(bytes, &unit_, kind, op.target, op.who))
        p.lnk->write(bytes, 0, nullptr);
    }
  }
}

void manager::send_down(const std::shared_ptr<peer>& p, caf::actor_id aid,
                        const caf::error& reason) {
  buffer bytes;
  if (write_reason(bytes, &unit_, frame_kind::down, aid, reason)) {
    bytes.clear();
    write_reason(bytes, &unit_, frame_kind::down, aid,
                 caf::exit_reason::unknown);
  }
  write_to(*p, bytes, 0);
}

void manager::bounce(peer* p, const caf::strong_actor_ptr& sender,
                     caf::message_id mid, const caf::error& err) {
  if (!sender)
    return;
  auto content = caf::make_message(err);
  if (p != nullptr && p->waiting.load() > 0
      && deliver_to_waiter(*p, sender->id(), mid.response_id(), content))
    return;
  sender->enqueue(nullptr, mid.response_id(), std::move(content), nullptr);
}

} // namespace actors::detail::links
