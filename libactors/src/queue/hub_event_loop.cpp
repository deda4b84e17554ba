// The hub's thread and what it reads: run() (spin on the rings, then sleep
// in epoll until a socket, a deadline or a wake-up), handling one epoll
// event, reading a local client's socket and ring, and the reads that a
// waiting thread of this process does itself (poll_once, drain).

#include "queue/hub_server.hpp"

#include "base/random.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>
#include <utility>
#include <vector>

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

#include <caf/scheduled_actor.hpp>

#include "base/deadline.hpp"
#include "link/link.hpp"
#include "node/call.hpp"
#include "node/runtime.hpp"
#include "queue/hub_connection.hpp"
#include "queue/queue_actor.hpp"

namespace actors::detail {

namespace {

// The hub thread's execution unit. A queue's actor that the hub thread made
// runnable (a parked get of an actor's subscription, answered by a put the
// hub read) runs on the hub thread once that has let go of its locks,
// instead of waking a thread of CAF's scheduler for each item. Any other
// actor goes to the scheduler: a user's actor may block, the hub must not.
class hub_unit final : public caf::execution_unit {
public:
  explicit hub_unit(caf::actor_system& sys) : caf::execution_unit(&sys) {
    // nop
  }

  // The hub stops before the actor system: what it collected runs there.
  ~hub_unit() override {
    for (auto* job : runnable_)
      system().scheduler().enqueue(job);
  }

  void exec_later(caf::resumable* job) override {
    if (!running_ && is_queue_actor(job))
      runnable_.push_back(job);
    else
      system().scheduler().enqueue(job);
  }

  // Runs what was collected (no lock of the hub held); what it makes
  // runnable goes to the scheduler.
  void run() {
    if (runnable_.empty())
      return;
    running_ = true;
    auto jobs = std::move(runnable_);
    runnable_.clear();
    for (auto* job : jobs) {
      switch (job->resume(this, 64)) {
      case caf::resumable::resume_later:
        system().scheduler().enqueue(job); // keeps the reference
        break;
      default:
        caf::intrusive_ptr_release(job);
      }
    }
    running_ = false;
  }

private:
  static bool is_queue_actor(caf::resumable* job) {
    if (job->subtype() != caf::resumable::scheduled_actor)
      return false;
    auto* actor = static_cast<caf::scheduled_actor*>(job);
    return std::strcmp(actor->name(), queue_actor_name) == 0;
  }

  bool running_ = false;
  std::vector<caf::resumable*> runnable_;
};

thread_local hub_unit* t_hub_unit = nullptr;

} // namespace

caf::execution_unit* queue_hub::thread_unit() noexcept {
  return t_hub_unit;
}

bool queue_hub::read_from(const std::shared_ptr<conn>& c) {
  if (c->stream)
    return read_stream(c);
  if (c->authenticated) {
    // The socket carries only wake-up bytes now: take them, then the ring.
    char wakeups[256];
    bool ended = false;
    for (;;) {
      auto n = ::recv(c->ch.fd(), wakeups, sizeof(wakeups), MSG_DONTWAIT);
      if (n > 0)
        continue;
      if (n < 0 && errno == EINTR)
        continue;
      ended = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      break;
    }
    if (!pull(c) || ended) {
      drop(c);
      return false;
    }
    return true;
  }
  // Before its hello, a peer may announce no more than a hello: the hub
  // would otherwise make room for whatever size a stranger claims.
  auto oversized = [&] {
    auto size = c->ch.next_size();
    return size && *size > max_hello;
  };
  if (oversized() || !c->ch.fill(false) || oversized()) {
    drop(c);
    return false;
  }
  auto f = c->ch.next();
  if (f && !serve(c, *f)) {
    drop(c);
    return false;
  }
  // Authenticated now: it may have written into its ring already.
  if (c->authenticated && !pull(c)) {
    drop(c);
    return false;
  }
  return true;
}

bool queue_hub::pull(const std::shared_ptr<conn>& c) {
  if (c->area == nullptr)
    return true;
  auto& area = *c->area;
  auto head = area.head.load(std::memory_order_acquire);
  auto avail = head - c->consumed;
  if (avail == 0)
    return true;
  if (avail > shared_area::ring_size)
    return false; // not a ring any more
  auto at = c->consumed % shared_area::ring_size;
  auto first = std::min<std::uint64_t>(avail, shared_area::ring_size - at);
  c->ch.feed(area.ring + at, first);
  if (avail > first)
    c->ch.feed(area.ring, avail - first);
  c->consumed = head;
  area.tail.store(head, std::memory_order_seq_cst);
  if (area.waiting.load(std::memory_order_seq_cst) != 0
      && area.waiting.exchange(0) != 0) {
    std::lock_guard<std::mutex> guard{c->out};
    emit(*c, poller_.fd(), hub_frame::room);
  }
  bool fine = true;
  while (fine)
    if (auto f = c->ch.next())
      fine = serve(c, *f);
    else
      break;
  put_batch(c);
  return fine;
}

bool queue_hub::pull_all() {
  // A copy: pull() may drop a connection. Empty (no allocation) when no
  // ring has anything, the usual case for a waiting thread's poll.
  std::vector<std::shared_ptr<conn>> ready;
  for (auto& c : rings_)
    if (c->area->head.load(std::memory_order_acquire) != c->consumed)
      ready.push_back(c);
  for (auto& c : ready)
    if (!pull(c))
      drop(c);
  return !ready.empty();
}

bool queue_hub::want_wakeups(bool on) {
  bool pending = false;
  for (auto& c : rings_) {
    c->area->wakeup_wanted.store(on ? 1 : 0, std::memory_order_seq_cst);
    // Seen after the store: either this sees the client's write, or the
    // client sees the request and rings.
    if (on && c->area->head.load(std::memory_order_seq_cst) != c->consumed)
      pending = true;
  }
  return pending;
}

void queue_hub::read_all(const conn* skip) {
  if (reading_all_)
    return;
  reading_all_ = true;
  accept_all();
  std::vector<std::shared_ptr<conn>> all;
  for (auto& [fd, c] : conns_)
    if (c.get() != skip)
      all.push_back(c);
  for (auto& c : all) {
    if (c->stream) {
      read_stream(c);
      continue;
    }
    if (c->authenticated) {
      if (!pull(c))
        drop(c);
      continue;
    }
    int avail = 0;
    while (::ioctl(c->ch.fd(), FIONREAD, &avail) == 0
           && avail > 0 && read_from(c) && !c->authenticated) {
      // again: a frame may span reads
    }
    if (c->authenticated && !pull(c))
      drop(c);
  }
  reading_all_ = false;
}

void queue_hub::drain() {
  std::lock_guard<std::mutex> guard{reader_};
  if (!stopped_)
    read_all(nullptr);
}

void queue_hub::handle(const epoll_event& ev) {
  auto tag = ev.data.u64;
  if (tag == listen_tag) {
    accept_all();
    return;
  }
  if (tag != wake_tag && (tag & exit_tag) != 0) {
    // A process that when_exited waits for has ended.
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      auto i = exits_.find(static_cast<pid_t>(tag & ~exit_tag));
      if (i == exits_.end())
        return;
      ::epoll_ctl(poller_.fd(), EPOLL_CTL_DEL, i->second.fd.get(), nullptr);
      fns = std::move(i->second.fns);
      exits_.erase(i);
    }
    for (auto& fn : fns)
      fn();
    return;
  }
  auto found = conns_.find(static_cast<int>(tag));
  if (found == conns_.end())
    return;
  auto c = found->second;
  if (ev.events & EPOLLOUT) {
    std::lock_guard<std::mutex> guard{c->out};
    c->ch.flush(false);
    if (!c->ch.pending()) {
      epoll_event again{};
      again.events = EPOLLIN;
      again.data.u64 = tag;
      ::epoll_ctl(poller_.fd(), EPOLL_CTL_MOD, c->ch.fd(), &again);
      c->want_out = false;
    }
  }
  if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    read_from(c);
}

bool queue_hub::poll_once() {
  std::unique_lock<std::mutex> guard{reader_, std::try_to_lock};
  if (!guard.owns_lock() || stopped_)
    return false;
  auto first = timers_.empty() ? clock_type::time_point::max()
                               : timers_.begin()->first;
  auto any = pull_all();
  epoll_event events[32];
  auto n = ::epoll_wait(poller_.fd(), events, 32, 0);
  for (int i = 0; i < n; ++i)
    if (events[i].data.u64 != wake_tag) // the hub thread's
      handle(events[i]);
  // A deadline earlier than the one the hub thread sleeps towards: tell it.
  if (!timers_.empty() && timers_.begin()->first < first) {
    poller_.wake();
  }
  return any || n > 0;
}

void queue_hub::run() {
  // Only with an actor system (a hub alone, as the fuzz targets', runs no
  // actor and must not start one).
  std::optional<hub_unit> unit;
  if (runtime::started())
    t_hub_unit = &unit.emplace(runtime::get().system());
  struct forget_unit {
    ~forget_unit() {
      t_hub_unit = nullptr; // before `unit` goes
    }
  } forget_unit_at_exit;
  auto run_actors = [&unit] {
    if (unit)
      unit->run();
  };
  // Never waits for room in a link's ring: a frame that does not fit waits
  // in the link (the hub thread runs queue actors, which send to links).
  links::link::never_wait_here();
  epoll_event events[32];
  for (;;) {
    run_actors();
    int wait_ms = -1;
    {
      std::lock_guard<std::mutex> guard{reader_};
      // The next deadline: a parked call's, a hello's, accepting's again.
      auto next = expire_pending();
      if (!timers_.empty())
        next = std::min(next, timers_.begin()->first);
      if (accept_paused_)
        next = std::min(next, *accept_paused_);
      if (next != clock_type::time_point::max())
        wait_ms = deadline::at(next).poll_ms();
    }
    // Serve the rings while they keep filling, then ask for wake-ups and
    // sleep (unless something came meanwhile).
    for (auto until = clock_type::now() + spin_time();
         clock_type::now() < until && wait_ms != 0;) {
      {
        std::lock_guard<std::mutex> guard{reader_};
        if (stopped_)
          return;
        if (pull_all())
          until = clock_type::now() + spin_time();
      }
      run_actors();
      relax();
    }
    {
      std::lock_guard<std::mutex> guard{reader_};
      if (want_wakeups(true))
        wait_ms = 0;
    }
    run_actors(); // before it sleeps
    auto n = ::epoll_wait(poller_.fd(), events, 32, wait_ms);
    if (n < 0 && errno != EINTR)
      return;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stop_)
        return;
    }
    std::lock_guard<std::mutex> guard{reader_};
    want_wakeups(false);
    pull_all();
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == wake_tag) {
        poller_.drain_wake();
        {
          // The count just read may include stop()'s wake-up, which came
          // after the look at stop_ above: look again, or sleep forever.
          std::lock_guard<std::mutex> guard{mtx_};
          if (stop_)
            return;
        }
        accept_all();
        run_drained();
      } else {
        handle(events[i]);
      }
    }
    resume_accepting();
    expire_pending();
    auto now = clock_type::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto t = timers_.begin()->second;
      if (auto i = conns_.find(t.fd); i != conns_.end())
        i->second->parked_timer.reset();
      timers_.erase(timers_.begin());
      t.core->expire(t.serial);
    }
  }
}

} // namespace actors::detail
