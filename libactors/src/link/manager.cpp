#include "link/manager.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <cxxabi.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_registry.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include "call.hpp"
#include "link/futex.hpp"
#include "link/proxy.hpp"

namespace actors::detail::links {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::uint64_t wake_tag = ~std::uint64_t{0};
constexpr std::uint64_t listen_tag = ~std::uint64_t{0} - 1;

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

std::string demangled(const std::string& name) {
  int status = 0;
  char* p = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  std::string result = status == 0 && p != nullptr ? p : name;
  std::free(p);
  return result;
}

// The type name CAF put into an unknown_type error, or "".
std::string unknown_type_name(const caf::error& err) {
  if (err != caf::sec::unknown_type)
    return {};
  if (err.context().match_elements<std::string>())
    return demangled(err.context().get_as<std::string>(0));
  return "?";
}

// What a sender gets for a message that cannot be serialized.
caf::error unsendable(const caf::error& err, caf::actor_system& sys) {
  auto type = unknown_type_name(err);
  if (!type.empty())
    return make_error(errc::not_registered,
                      "a message holding type " + type
                        + " cannot cross a process boundary: the type is "
                          "not registered (actor_system_config::"
                          "add_message_type)");
  return make_error(errc::invalid_argument,
                    "a message cannot be serialized: " + sys.render(err));
}

std::string describe_status(pid_t pid, const siginfo_t& info) {
  auto who = "process " + std::to_string(pid);
  if (info.si_code == CLD_EXITED)
    return who + " exited with code " + std::to_string(info.si_status);
  auto sig = info.si_status;
  const char* name = sigabbrev_np(sig);
  return who + " was killed by signal " + std::to_string(sig) + " (SIG"
         + (name != nullptr ? name : "?") + ")";
}

} // namespace

pid_t local_pid(const caf::node_id& node, const caf::node_id& here) {
  using data = caf::node_id::default_data;
  if (!node || node->implementation_id() != data::class_id || !here
      || here->implementation_id() != data::class_id)
    return 0;
  auto& theirs = static_cast<const data&>(*node);
  auto& ours = static_cast<const data&>(*here);
  // CAF 0.17 numbers the actor systems of one process in the host id's
  // last byte (node_id.cpp, default_data::local): the host is the rest.
  auto x = theirs.host_id();
  auto y = ours.host_id();
  if (!std::equal(x.begin(), x.end() - 1, y.begin()))
    return 0;
  return static_cast<pid_t>(theirs.process_id());
}

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
  : sys_(sys),
    key_(key),
    opts_(std::move(opts)),
    registry_(sys, *this),
    unit_(&sys) {
  unit_.proxy_registry_ptr(&registry_);
}

void manager::init() {
  if (opts_.root)
    sys_.registry().put(opts_.root.id(),
                        caf::actor_cast<caf::strong_actor_ptr>(opts_.root));
  std::weak_ptr<manager> weak = shared_from_this();
  // Writes link and unlink frames that no later frame has written yet.
  helper_ = sys_.spawn<caf::hidden>([weak](caf::event_based_actor*) {
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
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  if (opts_.listen) {
    address_ = link_address(key_, ::getpid());
    listen_fd_ = listen_on(address_);
    ev.data.u64 = listen_tag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  }
  watcher_ = std::thread{[this] { watch_loop(); }};
  setup_ = std::thread{[this] { setup_loop(); }};
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
  for (auto& p : all)
    p->lnk->close(reason);
  // Receivers end after they have handed over what was in the rings.
  for (auto& p : all)
    p->lnk->join();
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
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
  }
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& j : jobs_)
    if (j.fd >= 0)
      ::close(j.fd);
  jobs_.clear();
  peers_.clear();
  links_.clear();
  if (listen_fd_ >= 0)
    ::close(listen_fd_);
  ::close(epoll_fd_);
  ::close(wake_fd_);
  listen_fd_ = epoll_fd_ = wake_fd_ = -1;
}

void manager::set_death_reason(std::function<caf::error(pid_t)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  death_reason_ = std::move(fn);
}

void manager::set_report(std::function<void(const std::string&)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  report_ = std::move(fn);
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
  return identity{sys_.node(), opts_.root ? opts_.root.id() : 0,
                  opts_.ring_size};
}

// -- making links ----------------------------------------------------------------

std::shared_ptr<peer> manager::add_link(connection c) {
  auto p = std::make_shared<peer>();
  p->node = c.node;
  p->pid = local_pid(c.node, sys_.node());
  p->mgr = shared_from_this();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_) {
      ::close(c.fd);
      throw error(errc::owner_unreachable, "the links are shut down");
    }
    p->lnk = std::make_shared<link>(*this, c.node, next_link_id_++);
    links_.emplace(p->lnk->id(), p);
    // The first link to a process carries what this side sends to it.
    peers_.emplace(c.node, p);
  }
  auto fd = c.fd;
  auto id = p->lnk->id();
  p->lnk->start(std::move(c));
  post([this, fd, id] {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  });
  return p;
}

caf::actor manager::adopt(int fd) {
  auto c = setup_inherited(fd, me(), &unit_,
                           clock::now() + opts_.setup_timeout);
  auto node = c.node;
  auto root = c.root;
  add_link(std::move(c));
  if (root == 0)
    return {};
  return caf::actor_cast<caf::actor>(registry_.get_or_put(node, root));
}

caf::actor manager::connect(pid_t pid) {
  auto c = setup_connect(link_address(key_, pid), key_, me(), &unit_,
                         clock::now() + opts_.setup_timeout);
  auto node = c.node;
  auto root = c.root;
  add_link(std::move(c));
  if (root == 0)
    return {};
  return caf::actor_cast<caf::actor>(registry_.get_or_put(node, root));
}

std::shared_ptr<peer> manager::peer_for(const caf::node_id& node) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = peers_.find(node); i != peers_.end())
    return i->second;
  auto p = std::make_shared<peer>();
  p->node = node;
  p->pid = local_pid(node, sys_.node());
  p->mgr = shared_from_this();
  p->lnk = std::make_shared<link>(*this, node, next_link_id_++);
  if (stopping_) {
    p->lnk->fail(caf::exit_reason::remote_link_unreachable);
    return p;
  }
  if (p->pid == 0) {
    // Links reach processes of this host (and network namespace) only.
    p->lnk->fail(make_error(errc::owner_unreachable,
                            "no link can reach actor node "
                              + caf::to_string(node)
                              + ": it runs on another host"));
    return p;
  }
  links_.emplace(p->lnk->id(), p);
  peers_.emplace(node, p);
  jobs_.push_back(job{p, -1});
  jobs_cv_.notify_one();
  return p;
}

void manager::setup_loop() {
  for (;;) {
    job j;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      jobs_cv_.wait(guard, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_)
        return;
      j = std::move(jobs_.front());
      jobs_.pop_front();
    }
    auto deadline = clock::now() + opts_.setup_timeout;
    if (j.fd >= 0) {
      try {
        add_link(setup_accept(j.fd, key_, me(), &unit_, deadline));
      } catch (const error&) {
        // A stranger, or a peer that gave up: nothing was made.
      }
      continue;
    }
    auto& p = *j.target;
    try {
      auto c = setup_connect(link_address(key_, p.pid), key_, me(), &unit_,
                             deadline);
      if (c.node != p.node) {
        ::close(c.fd);
        throw error(errc::owner_unreachable,
                    "process " + std::to_string(p.pid)
                      + " is not the actor node it should be");
      }
      auto fd = c.fd;
      auto id = p.lnk->id();
      p.lnk->start(std::move(c));
      post([this, fd, id] {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = id;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
      });
    } catch (const error& e) {
      auto reason = make_error(static_cast<errc>(e.code().value()),
                               "no link to process " + std::to_string(p.pid)
                                 + ": " + e.what());
      p.lnk->fail(reason);
      link_ended(p, reason);
    }
  }
}

void manager::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    posted_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
}

void manager::watch_loop() {
  epoll_event events[32];
  for (;;) {
    auto n = ::epoll_wait(epoll_fd_, events, 32, -1);
    if (n < 0 && errno != EINTR)
      return;
    for (int i = 0; i < n; ++i) {
      auto tag = events[i].data.u64;
      if (tag == wake_tag) {
        std::uint64_t count = 0;
        [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof(count));
        std::vector<std::function<void()>> todo;
        {
          std::lock_guard<std::mutex> guard{mtx_};
          if (stopping_)
            return;
          todo.swap(posted_);
        }
        for (auto& fn : todo)
          fn();
        continue;
      }
      if (tag == listen_tag) {
        for (;;) {
          auto fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
              continue;
            break;
          }
          std::lock_guard<std::mutex> guard{mtx_};
          jobs_.push_back(job{nullptr, fd});
          jobs_cv_.notify_one();
        }
        continue;
      }
      std::shared_ptr<peer> p;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (auto j = links_.find(tag); j != links_.end())
          p = j->second;
      }
      if (!p)
        continue;
      char byte;
      auto r = ::recv(p->lnk->fd(), &byte, 1, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, p->lnk->fd(), nullptr);
      if (r > 0)
        p->lnk->close(caf::make_error(caf::sec::malformed_basp_message,
                                      "link protocol error: bytes on the "
                                      "socket after the setup"));
      else
        p->lnk->peer_gone(caf::error{}); // the reason: on_closed
    }
  }
}

// -- proxies ---------------------------------------------------------------------

caf::strong_actor_ptr manager::make_proxy(caf::node_id nid, caf::actor_id aid) {
  if (!nid || aid == caf::invalid_actor_id)
    return nullptr;
  auto p = peer_for(nid);
  caf::actor_config cfg;
  auto result = caf::make_actor<proxy, caf::strong_actor_ptr>(aid, nid, &sys_,
                                                              cfg, p);
  if (p->lnk->closed()) {
    auto* ptr = static_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(result));
    ptr->kill_proxy(nullptr, p->lnk->reason());
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
  thread_local buffer bytes;
  bytes.clear();
  auto mid = what->mid;
  auto& sender = what->sender;
  auto content = what->move_content_to_message();
  if (auto err = write_message(bytes, &unit_, dest, mid, sender, what->stages,
                               content)) {
    auto why = unsendable(err, sys_);
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
             + std::to_string(p.pid)
             + " was not sent: " + sys_.render(why));
    }
    return;
  }
  bool tracked = mid.is_request() && sender;
  auto key = std::make_pair(sender ? sender->id() : 0,
                            mid.request_id().integer_value());
  if (tracked) {
    std::lock_guard<std::mutex> guard{p.mtx};
    p.requests.emplace(key, std::make_pair(caf::actor_cast<caf::weak_actor_ptr>(sender), mid));
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
    p.ops.push_back(peer::link_op{on, caf::strong_actor_ptr{who->ctrl()},
                                  target->id()});
    p.has_ops = true;
  }
  // Enqueueing to the helper takes no actor's lock.
  caf::anon_send(helper_, caf::link_atom::value,
                 caf::strong_actor_ptr{target});
}

bool manager::in_link_frame() noexcept {
  return t_in_link_frame;
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

// -- frames ------------------------------------------------------------------------

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
        auto why =
          type.empty()
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
      auto dst = sys_.registry().get(f.dest);
      if (!dst) {
        if (parts.mid.is_request())
          bounce(nullptr, parts.sender, parts.mid,
                 caf::sec::request_receiver_down);
        return true;
      }
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

caf::error manager::describe_end(pid_t pid) {
  std::function<caf::error(pid_t)> fn;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn = death_reason_;
  }
  if (fn)
    if (auto err = fn(pid))
      return err;
  // A child of ours: its exit status, left for whoever reaps it (WNOWAIT).
  // Its socket closes as it exits, a moment before it is a zombie: wait for
  // that on a pidfd, at most 100 ms.
  siginfo_t info{};
  if (pid > 0
      && ::waitid(P_PID, static_cast<id_t>(pid), &info,
                  WEXITED | WNOHANG | WNOWAIT)
           == 0) {
    if (info.si_pid != pid) {
      auto fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
      if (fd >= 0) {
        pollfd pfd{fd, POLLIN, 0};
        ::poll(&pfd, 1, 100);
        ::close(fd);
      }
      info = siginfo_t{};
      ::waitid(P_PID, static_cast<id_t>(pid), &info,
               WEXITED | WNOHANG | WNOWAIT);
    }
    if (info.si_pid == pid)
      return make_error(errc::process_died, describe_status(pid, info));
  }
  return make_error(errc::process_died,
                    "process " + std::to_string(pid)
                      + " ended (its link closed without a reason)");
}

void manager::on_closed(link& l, context& ctx, const caf::error& reason) {
  auto& u = static_cast<unit&>(ctx);
  if (!u.from)
    return;
  auto why = reason ? reason : describe_end(u.from->pid);
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
    if (auto i = peers_.find(p.node); i != peers_.end() && i->second.get() == &p) {
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

// -- blocking calls ------------------------------------------------------------------

caf::expected<caf::message> manager::call(const caf::actor& dest,
                                          caf::message msg, duration timeout) {
  auto deadline = clock::now() + timeout;
  auto* target = dynamic_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(dest));
  if (target == nullptr)
    return make_error(errc::invalid_argument,
                      "call: the actor is not in another process of this host");
  auto p = target->get_peer();
  if (!p)
    return target->fail_state();
  if (!p->lnk->await_open(deadline))
    return p->lnk->closed() ? p->lnk->reason()
                            : make_error(errc::timeout, "call: no link in time");
  caf::scoped_actor* self = nullptr;
  {
    std::lock_guard<std::mutex> guard{callers_mtx_};
    auto& entry = callers_[std::this_thread::get_id()];
    if (!entry)
      entry = std::make_unique<caf::scoped_actor>(sys_, true);
    self = entry.get();
  }
  auto aid = (*self)->id();
  auto* in = p->lnk->incoming();
  std::atomic<std::uint32_t> own_bell{0};
  waiter w;
  auto req = (*self)->new_request_id(caf::message_priority::normal);
  w.mid = req.response_id();
  w.slot = in->claim_slot(aid);
  w.bell = w.slot >= 0 ? &in->slot_bell(w.slot) : &own_bell;
  {
    std::lock_guard<std::mutex> guard{p->mtx};
    p->waiters[aid] = &w;
  }
  p->waiting.fetch_add(1);
  target->enqueue(caf::make_mailbox_element((*self)->ctrl(), req, {},
                                            std::move(msg)),
                  nullptr);
  unit reader{sys_, registry_, p, false};
  std::string ignored;
  auto done = [&] {
    std::lock_guard<std::mutex> guard{p->mtx};
    return w.done;
  };
  while (!done() && clock::now() < deadline) {
    auto seen = w.bell->load();
    // Read ourselves: the answer (or frames before it) may be there.
    p->lnk->try_read([&](const frame& f) {
      on_frame(*p->lnk, reader, f, ignored);
      return !done();
    });
    if (done())
      break;
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
