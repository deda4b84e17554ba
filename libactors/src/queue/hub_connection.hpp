#pragma once

// The hub's side of one connection (queue_hub::conn), the list of
// clients to tell when a queue closes (queue_hub::watchers), and how the
// hub writes to a connection: emit() a frame, answer() a request. Private
// to the hub's sources (hub_server.cpp, hub_requests.cpp,
// hub_event_loop.cpp, hub_stream.cpp).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <sys/epoll.h>
#include <sys/mman.h>

#include "queue/hub_server.hpp"

namespace actors::detail {

using clock_type = std::chrono::steady_clock;

// Tags of the hub's epoll: its wake-up eventfd, its listening socket, a
// pidfd (exit_tag | pid); a connection's tag is its descriptor.
constexpr std::uint64_t wake_tag = ~std::uint64_t{0};
constexpr std::uint64_t listen_tag = ~std::uint64_t{0} - 1;
constexpr std::uint64_t exit_tag = std::uint64_t{1} << 62;

struct queue_hub::conn {
  conn(int fd, pid_t peer, bool over_stream)
    : ch(fd), pid(peer), stream(over_stream) {
    // nop
  }

  channel ch;
  const pid_t pid; // a local client's (0 for a stream)
  const bool stream; // served by serve_stream: no hello, no area
  // Guarded by the hub's reader_, as is the input side of ch.
  bool authenticated = false;
  bool fresh = true;  // nothing served yet (a stream may name its node)
  caf::node_id node; // the node a stream named
  std::optional<decltype(timers_)::iterator> parked_timer;
  // Guarded by out: the output side of ch and what the connection holds.
  std::mutex out;
  bool dead = false;
  bool want_out = false;
  std::shared_ptr<queue_core> parked_core;
  std::uint64_t parked_serial = 0;
  // A local peer's hello falls due then (guarded by reader_).
  clock_type::time_point hello_by;
  std::shared_ptr<queue_core> flight_core;
  value flight;
  std::uint64_t flight_seq = 0;
  std::uint64_t next_seq = 1;
  // The memory a local peer shares (mapped from its memfd at hello), and
  // how much of its ring the hub has read (guarded by reader_).
  shared_area* area = nullptr;
  std::uint64_t consumed = 0;
  bool dead_end = false; // being dropped

  ~conn() {
    if (area != nullptr)
      ::munmap(area, sizeof(*area));
  }
};

// The clients to tell when a queue closes: the local ones that said their
// hello (counted in their areas) and the streams (sent `closed`). Its lock
// is taken last (a queue may close on any thread, amid anything), before
// a connection's `out` only.
struct queue_hub::watchers {
  std::mutex mtx;
  int epoll_fd = -1;
  std::vector<std::shared_ptr<conn>> conns;

  void add(const std::shared_ptr<conn>& c) {
    std::lock_guard<std::mutex> guard{mtx};
    conns.push_back(c);
  }

  void remove(const std::shared_ptr<conn>& c) {
    std::lock_guard<std::mutex> guard{mtx};
    conns.erase(std::remove(conns.begin(), conns.end(), c), conns.end());
  }

  void clear() {
    std::lock_guard<std::mutex> guard{mtx};
    conns.clear();
  }

  void closed(std::uint64_t qid);
};

// Writes one frame to `c` (its `out` lock held) and hands what fits to the
// kernel; the hub writes the rest when the socket has room.
template <class Conn, class... Ts>
caf::error emit(Conn& c, int epoll_fd, std::uint8_t kind, Ts&... xs) {
  if (auto err = c.ch.put(kind, xs...))
    return err;
  c.ch.flush(false);
  if (c.ch.pending() && !c.want_out) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = static_cast<std::uint64_t>(c.ch.fd());
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.ch.fd(), &ev);
    c.want_out = true;
  }
  return caf::none;
}

// Answers request `req` on `c` with `x`; an item goes in flight. False if
// `c` is gone (or the item cannot be written), so the item stays queued.
template <class Conn>
bool answer(Conn& c, int epoll_fd, std::uint64_t req, q_outcome&& x,
            const std::shared_ptr<queue_core>& core) {
  std::lock_guard<std::mutex> guard{c.out};
  if (c.dead)
    return false;
  c.parked_core.reset();
  if (!x.ok) {
    auto code = static_cast<std::uint8_t>(x.code);
    emit(c, epoll_fd, hub_frame::fail, req, code, x.what);
    return true;
  }
  if (x.item) {
    auto seq = c.next_seq++;
    if (auto err = emit(c, epoll_fd, hub_frame::item, req, seq, x.item)) {
      auto code = static_cast<std::uint8_t>(errc::invalid_argument);
      std::string what = "an item that cannot be serialized";
      emit(c, epoll_fd, hub_frame::fail, req, code, what);
      return false;
    }
    c.flight_core = core;
    c.flight = std::move(x.item);
    c.flight_seq = seq;
    return true;
  }
  emit(c, epoll_fd, hub_frame::ok, req, x.flag);
  return true;
}


} // namespace actors::detail
