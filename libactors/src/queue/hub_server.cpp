// queue_hub's life and connections: making the socket and the thread,
// stopping, the queues it serves, accepting local clients (and dropping
// those whose hello is late), dropping a connection (what it held goes
// back), and the waits for a peer's end (when_drained, when_exited).

#include "queue/hub_server.hpp"

#include "base/fd.hpp"
#include "base/random.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "node/call.hpp"
#include "node/runtime.hpp"
#include "queue/hub_connection.hpp"
#include "wire/node_id.hpp"

namespace actors::detail {

void queue_hub::watchers::closed(std::uint64_t qid) {
  std::lock_guard<std::mutex> guard{mtx};
  for (auto& c : conns) {
    if (c->area != nullptr) {
      // Seen by the client's next put before it trusts that qid is open.
      c->area->closes.fetch_add(1, std::memory_order_seq_cst);
      continue;
    }
    std::lock_guard<std::mutex> out{c->out};
    if (!c->dead)
      emit(*c, epoll_fd, hub_frame::closed, qid);
  }
}

queue_hub::queue_hub() : poller_{"serve queues", wake_tag} {
  key0_ = random_value<std::uint64_t>();
  key1_ = random_value<std::uint64_t>();
  char name[64];
  std::snprintf(name, sizeof(name), "actors-hub-%d-%016llx",
                static_cast<int>(::getpid()),
                static_cast<unsigned long long>(random_value<std::uint64_t>()));
  address_ = name;
  listen_fd_.reset(
    ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  socklen_t len = 0;
  auto addr = abstract_address(address_, len);
  if (!listen_fd_
      || ::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0
      || ::listen(listen_fd_.get(), 128) != 0) {
    auto err = errno;
    // Out of descriptors or memory: what a new thing of the OS needs.
    auto code = err == EMFILE || err == ENFILE || err == ENOBUFS
                    || err == ENOMEM
                  ? errc::spawn_failed
                  : errc::invalid_argument;
    throw error(code, std::string{"cannot serve queues: "}
                        + std::strerror(err));
  }
  // (The descriptors made so far close as the members go.)
  auto fail = [](const std::string& what) {
    auto text = what + ": " + std::strerror(errno);
    throw error(errc::spawn_failed, "cannot serve queues: " + text);
  };
  if (!poller_.add(listen_fd_.get(), EPOLLIN, listen_tag))
    fail("epoll_ctl");
  watchers_ = std::make_shared<watchers>();
  watchers_->epoll_fd = poller_.fd();
  try {
    thread_ = std::thread{[this] { run(); }};
  } catch (const std::system_error& e) {
    errno = e.code().value();
    fail("a thread");
  }
}

void queue_hub::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stop_)
      return;
    stop_ = true;
  }
  poller_.wake();
  thread_.join();
  std::lock_guard<std::mutex> guard{reader_};
  stopped_ = true;
  for (auto& [fd, c] : conns_) {
    std::lock_guard<std::mutex> guard{c->out};
    c->dead = true;
  }
  watchers_->clear();
  conns_.clear();
  rings_.clear();
  pending_.clear();
  pending_count_ = 0;
  std::lock_guard<std::mutex> streams_guard{mtx_};
  streams_.clear();
  exits_.clear();
}

queue_hub::~queue_hub() {
  stop();
}

void queue_hub::add(std::uint64_t id, std::shared_ptr<queue_core> core) {
  core->on_close([w = watchers_, id] { w->closed(id); });
  std::lock_guard<std::mutex> guard{mtx_};
  cores_.emplace(id, std::move(core));
  note_self();
}

void queue_hub::note_self() {
  // Not at exit, when the actor system may be gone: by then a queue was
  // made here. (A hub without a runtime, as in a fuzzer, has no node.)
  if (!self_ && runtime::started())
    self_ = runtime::get().system().node();
}

std::shared_ptr<queue_core> queue_hub::find(std::uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = cores_.find(id);
  return i == cores_.end() ? nullptr : i->second;
}

void queue_hub::when_drained(const caf::node_id& node,
                             std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto pid = local_pid(node, self_);
    drained_.push_back(drain_wait{pid, node, std::move(fn)});
  }
  // The hub thread first accepts what is waiting, so a connection the
  // process made just before it ended counts too.
  poller_.wake();
}

bool queue_hub::when_exited(const caf::node_id& node,
                            std::function<void()> fn) {
  std::unique_lock<std::mutex> guard{mtx_};
  note_self();
  auto pid = local_pid(node, self_);
  if (pid <= 0 || pid == ::getpid() || stop_)
    return false;
  auto& w = exits_[pid];
  if (!w.fd) {
    w.fd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!w.fd) {
      auto ended = errno == ESRCH;
      exits_.erase(pid);
      guard.unlock();
      if (ended)
        fn();
      return ended;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = exit_tag | static_cast<std::uint64_t>(pid);
    ::epoll_ctl(poller_.fd(), EPOLL_CTL_ADD, w.fd.get(), &ev);
  }
  w.fns.push_back(std::move(fn));
  return true;
}

void queue_hub::run_drained() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto i = drained_.begin(); i != drained_.end();) {
      bool open = (i->pid != 0 && open_.count(i->pid) > 0)
                  || (i->node && open_nodes_.count(i->node) > 0);
      if (!open) {
        ready.push_back(std::move(i->fn));
        i = drained_.erase(i);
      } else {
        ++i;
      }
    }
  }
  for (auto& fn : ready)
    fn();
}

void queue_hub::accept_all() {
  std::vector<unique_fd> handed;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    handed.swap(streams_);
  }
  for (auto& stream : handed) {
    // Authenticated by whoever handed it over: it may send requests now.
    auto fd = stream.release();
    auto c = std::make_shared<conn>(fd, 0, true);
    c->authenticated = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    ::epoll_ctl(poller_.fd(), EPOLL_CTL_ADD, fd, &ev);
    watchers_->add(c);
    conns_.emplace(fd, std::move(c));
  }
  while (!accept_paused_) {
    unique_fd accepted{
      ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    if (!accepted) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // Out of descriptors (or memory): the waiting connection keeps the
        // socket readable, and epoll would wake the hub in a loop. Pause
        // accepting for a while instead (run() resumes it).
        epoll_event ev{};
        ev.data.u64 = listen_tag;
        ::epoll_ctl(poller_.fd(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
        accept_paused_ = clock_type::now() + std::chrono::milliseconds{100};
      }
      break;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(accepted.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len)
          != 0
        || cred.uid != ::geteuid())
      continue;
    // At the bound, the oldest waiting goes at once.
    if (pending_.size() >= max_pending) {
      auto oldest = pending_.front();
      drop(oldest);
    }
    auto fd = accepted.release();
    auto c = std::make_shared<conn>(fd, cred.pid, false);
    c->hello_by = clock_type::now() + hello_deadline;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    ::epoll_ctl(poller_.fd(), EPOLL_CTL_ADD, fd, &ev);
    pending_.push_back(c);
    ++pending_count_;
    conns_.emplace(fd, std::move(c));
    std::lock_guard<std::mutex> guard{mtx_};
    ++open_[cred.pid];
  }
}

void queue_hub::resume_accepting() {
  if (!accept_paused_ || clock_type::now() < *accept_paused_)
    return;
  accept_paused_.reset();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = listen_tag;
  ::epoll_ctl(poller_.fd(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
}

std::chrono::steady_clock::time_point queue_hub::expire_pending() {
  auto now = clock_type::now();
  while (!pending_.empty() && pending_.front()->hello_by <= now) {
    auto overdue = pending_.front();
    drop(overdue);
  }
  return pending_.empty() ? clock_type::time_point::max()
                          : pending_.front()->hello_by;
}

std::size_t queue_hub::pending() const {
  return pending_count_.load();
}

void queue_hub::drop(const std::shared_ptr<conn>& c) {
  if (auto i = conns_.find(c->ch.fd()); i == conns_.end() || i->second != c)
    return; // dropped already
  // What it wrote before it ended is read first, like a pipe's buffer.
  if (c->authenticated && !c->dead_end) {
    c->dead_end = true;
    pull(c);
  }
  ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, c->ch.fd(), nullptr);
  if (c->parked_timer)
    timers_.erase(*c->parked_timer);
  if (auto i = std::find(pending_.begin(), pending_.end(), c);
      i != pending_.end()) {
    pending_.erase(i);
    --pending_count_;
  }
  rings_.erase(std::remove(rings_.begin(), rings_.end(), c), rings_.end());
  watchers_->remove(c);
  std::shared_ptr<queue_core> parked;
  std::uint64_t serial = 0;
  std::shared_ptr<queue_core> flight_core;
  value flight;
  {
    std::lock_guard<std::mutex> guard{c->out};
    c->dead = true;
    parked = std::move(c->parked_core);
    serial = c->parked_serial;
    // A stream's item is taken once a frame came after it (`taken`).
    if (c->flight_core
        && (c->area == nullptr || c->area->taken.load() < c->flight_seq)) {
      flight_core = std::move(c->flight_core);
      flight = std::move(c->flight);
    }
  }
  // A caller that died waiting took nothing; an item it had not taken goes
  // back to the front of its queue.
  if (parked)
    parked->cancel(serial);
  if (flight_core)
    flight_core->requeue(std::move(flight));
  bool last = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!c->stream) {
      auto i = open_.find(c->pid);
      if (i != open_.end() && --i->second == 0) {
        open_.erase(i);
        last = true;
      }
    } else if (c->node) {
      auto i = open_nodes_.find(c->node);
      if (i != open_nodes_.end() && --i->second == 0) {
        open_nodes_.erase(i);
        last = true;
      }
    }
  }
  conns_.erase(c->ch.fd());
  if (last)
    run_drained();
}


} // namespace actors::detail
