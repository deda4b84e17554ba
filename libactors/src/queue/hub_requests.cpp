// queue_hub::serve: one frame from a client (the hello, a stream's `peer`,
// a request on a queue), and putting the batch of buffered puts read.

#include "queue/hub_server.hpp"

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

#include "base/deadline.hpp"
#include "node/call.hpp"
#include "node/runtime.hpp"
#include "queue/hub_connection.hpp"
#include "shm/shared_memory.hpp"

namespace actors::detail {

namespace {

// Maps the area process `pid` shares as its descriptor `fd` (a memfd of
// exactly a shared_area's size); null if it is not that.
shared_area* map_area(pid_t pid, std::int32_t fd) {
  if (fd < 0)
    return nullptr;
  std::string why;
  return static_cast<shared_area*>(
    map_peer_memory(pid, fd, sizeof(shared_area), why).release());
}

} // namespace

void queue_hub::put_batch(const std::shared_ptr<conn>& c) {
  if (batch_.empty())
    return;
  if (!batch_core_->put_buffered(batch_)) {
    std::lock_guard<std::mutex> guard{c->out};
    emit(*c, poller_.fd(), hub_frame::closed, batch_qid_);
  }
}

bool queue_hub::serve(const std::shared_ptr<conn>& c,
                      const channel::frame& f) {
  namespace k = hub_frame;
  auto& ch = c->ch;
  if (!c->authenticated) {
    std::uint64_t k0 = 0;
    std::uint64_t k1 = 0;
    std::int32_t word_fd = -1;
    if (f.kind != k::hello || ch.get(f, k0, k1, word_fd))
      return false;
    // Both halves compared without an early exit.
    if (((k0 ^ key0_) | (k1 ^ key1_)) != 0)
      return false;
    c->area = map_area(c->pid, word_fd);
    c->authenticated = c->area != nullptr;
    if (c->authenticated) {
      if (auto i = std::find(pending_.begin(), pending_.end(), c);
          i != pending_.end()) {
        pending_.erase(i);
        --pending_count_;
      }
      rings_.push_back(c);
      watchers_->add(c);
      // The hub's thread may be asleep (a waiting thread may be serving
      // this): ask for wake-ups until it wakes.
      c->area->wakeup_wanted.store(1, std::memory_order_seq_cst);
      // The area is mapped: what the client writes there from now on
      // outlives it. Only now may it rely on that.
      std::lock_guard<std::mutex> guard{c->out};
      std::uint64_t req = 0;
      bool flag = true;
      emit(*c, poller_.fd(), k::ok, req, flag);
    }
    return c->authenticated;
  }
  if (c->stream && std::exchange(c->fresh, false) && f.kind == k::peer) {
    // Its first frame names its node: it counts for when_drained from now
    // on, and says so (the client waits for that before anything else).
    std::uint64_t req = 0;
    caf::node_id node;
    if (ch.get(f, req, node) || !node)
      return false;
    c->node = std::move(node);
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++open_nodes_[c->node];
    }
    answer(*c, poller_.fd(), req, q_outcome{}, nullptr);
    return true;
  }
  {
    // Anything the peer sends after an item means it took the item.
    std::lock_guard<std::mutex> guard{c->out};
    c->flight_core.reset();
    c->flight = value{};
  }
  if (f.kind != k::put_buffered)
    put_batch(c); // what this connection put before comes first
  auto reply = [&](std::uint64_t req, q_outcome&& x,
                   const std::shared_ptr<queue_core>& core) {
    answer(*c, poller_.fd(), req, std::move(x), core);
  };
  // The queue a request names, or nothing (and the request is answered).
  auto queue_for = [&](std::uint64_t req, std::uint64_t qid) {
    auto core = find(qid);
    if (!core)
      reply(req, q_outcome::fail(errc::invalid_argument, "no such queue"),
            nullptr);
    return core;
  };
  std::uint64_t req = 0;
  std::uint64_t qid = 0;
  std::int64_t ns = 0;
  value item;
  switch (f.kind) {
    case k::put_buffered: {
      // The pipe ends in it are on their way to its getter (end_loaded).
      end_pass_scope carry{end_pass::carry};
      if (ch.get(f, qid, item))
        return false;
      item.carries_ends(carry.saw_ends());
      if (qid != batch_qid_ || !batch_core_) {
        put_batch(c);
        batch_core_ = find(qid);
        batch_qid_ = qid;
        if (!batch_core_)
          return false;
      }
      batch_.push_back(std::move(item));
      return true;
    }
    case k::sync:
      if (ch.get(f, req))
        return false;
      reply(req, q_outcome{}, nullptr);
      return true;
    case k::taken: {
      // Said by a stream client (above: it took the item in flight).
      std::uint64_t seq = 0;
      return c->stream && !ch.get(f, seq);
    }
    case k::put:
    case k::get:
    case k::poll:
    case k::join: {
      caf::error err;
      {
        end_pass_scope carry{end_pass::carry};
        err = f.kind == k::put ? ch.get(f, req, qid, ns, item)
                               : ch.get(f, req, qid, ns);
        item.carries_ends(carry.saw_ends());
      }
      if (err)
        return false;
      auto core = queue_for(req, qid);
      if (!core)
        return true;
      if (c->parked_timer) {
        timers_.erase(*c->parked_timer);
        c->parked_timer.reset();
      }
      std::weak_ptr<conn> weak = c;
      auto epoll_fd = poller_.fd();
      queue_core::answer_fn later = [weak, epoll_fd, req,
                                     core](q_outcome&& x) {
        auto target = weak.lock();
        return target && answer(*target, epoll_fd, req, std::move(x), core);
      };
      bool wait = ns != 0;
      auto attempt = [&]() -> queue_core::result {
        switch (f.kind) {
          case k::put:
            return core->put(std::move(item), wait, later);
          case k::get:
            return core->get(wait, later);
          case k::poll:
            return core->poll(wait, later);
          default:
            return core->join(wait, later);
        }
      };
      auto r = attempt();
      // Not waiting and nothing there: first serve what others have sent.
      if (auto* now = std::get_if<q_outcome>(&r);
          now != nullptr && !wait && f.kind != k::put
          && ((f.kind == k::get && now->code == errc::queue_empty)
              || (f.kind == k::poll && !now->flag))) {
        read_all(c.get());
        r = attempt();
      }
      if (auto* now = std::get_if<q_outcome>(&r)) {
        std::shared_ptr<queue_core> holder = core;
        if (!answer(*c, poller_.fd(), req, std::move(*now), holder)
            && now->item)
          core->requeue(std::move(now->item));
        return true;
      }
      auto serial = std::get<std::uint64_t>(r);
      {
        std::lock_guard<std::mutex> guard{c->out};
        c->parked_core = core;
        c->parked_serial = serial;
      }
      if (auto t = wire_timeout(ns); t && ns > 0)
        c->parked_timer = timers_.emplace(clock_type::now() + *t,
                                          timer{core, serial, c->ch.fd()});
      return true;
    }
    case k::done:
    case k::close:
    case k::size: {
      if (ch.get(f, req, qid))
        return false;
      auto core = queue_for(req, qid);
      if (!core)
        return true;
      if (f.kind == k::done) {
        reply(req, core->task_done(), nullptr);
      } else if (f.kind == k::close) {
        core->close();
        reply(req, q_outcome{}, nullptr);
      } else {
        read_all(c.get());
        auto s = core->snapshot();
        std::lock_guard<std::mutex> guard{c->out};
        emit(*c, poller_.fd(), k::stats, req, s.size, s.maxsize, s.getters,
             s.putters);
      }
      return true;
    }
    default:
      return false;
  }
}

} // namespace actors::detail
