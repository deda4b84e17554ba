// hub_client's local connection (a socket and a ring in a shared area)
// and what both kinds of connection share: sending requests, reading and
// waiting for answers, buffered puts.

#include "queue/hub_client.hpp"

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
#include "base/fd.hpp"
#include "node/call.hpp"
#include "node/runtime.hpp"
#include "shm/shared_memory.hpp"

namespace actors::detail {

namespace {

using clock_type = std::chrono::steady_clock;

thread_local std::unordered_map<std::string, std::unique_ptr<hub_client>>
  clients;

} // namespace

hub_client* hub_client::existing(const std::string& address) {
  auto i = clients.find(address);
  return i == clients.end() ? nullptr : i->second.get();
}

hub_client& hub_client::local(const std::string& address, std::uint64_t key0,
                           std::uint64_t key1) {
  if (auto* known = existing(address))
    return *known;
  if (address.empty())
    throw error(errc::invalid_argument, "the handle is empty");
  unique_fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  socklen_t len = 0;
  auto addr = abstract_address(address, len);
  if (!fd
      || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    throw error(errc::owner_unreachable,
                std::string{"the process that owns this object is gone ("}
                  + std::strerror(errno) + ")");
  std::unique_ptr<hub_client> fresh{new hub_client(fd.release(), address)};
  std::int32_t area_fd = fresh->area_fd_;
  fresh->ch_.put(hub_frame::hello, key0, key1, area_fd);
  // Welcomed (request 0) once the hub has mapped the area: from then on
  // what this thread writes there reaches the hub even if it dies.
  if (!fresh->ch_.flush(true))
    throw error(errc::owner_unreachable,
                "the process that owns this object is gone");
  fresh->await(0, 0);
  auto& result = *fresh;
  clients.emplace(address, std::move(fresh));
  return result;
}

hub_client::hub_client(int fd, std::string address)
  : ch_(fd), address_(std::move(address)) {
  auto made = make_shared_memory("actors-hub-area", sizeof(shared_area));
  if (!made.memory)
    throw error(errc::invalid_argument,
                std::string{"cannot make a shared area: "}
                  + std::strerror(errno));
  area_fd_ = made.fd.release();
  area_ = new (made.memory.release()) shared_area;
}

hub_client::~hub_client() {
  if (area_ == nullptr)
    return;
  ::munmap(area_, sizeof(*area_));
  ::close(area_fd_);
}

void hub_client::send_wakeup() {
  // Sent after every write while asked: the hub clears the request when it
  // wakes (a wake-up byte that a waiting thread of the hub's process reads
  // instead leaves the hub's thread asleep, and it must be sent again).
  if (area_->wakeup_wanted.load(std::memory_order_seq_cst) != 0) {
    char byte = 0;
    // A full socket holds wake-ups enough; a gone hub shows at the next read.
    [[maybe_unused]] auto n = ::send(ch_.fd(), &byte, 1,
                                     MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

void hub_client::wait_for_room() {
  area_->waiting.store(1, std::memory_order_seq_cst);
  auto room = [&] {
    return area_->tail.load(std::memory_order_seq_cst) + shared_area::ring_size
           > head_;
  };
  send_wakeup();
  while (!room()) {
    // The hub answers `waiting` with a `room` frame (or reads the ring
    // anyway); the bounded wait is a safety net, not the signal.
    pollfd p{ch_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      if (!ch_.fill(false))
        broken("gone");
      std::optional<q_outcome> none;
      while (auto f = ch_.next())
        if (!handle_frame(*f, 0, none))
          broken("gone");
    }
    send_wakeup();
  }
  area_->waiting.store(0, std::memory_order_relaxed);
}

void hub_client::send() {
  if (area_ == nullptr) {
    if (!ch_.flush(true))
      broken("gone", errno);
    return;
  }
  auto [data, size] = ch_.output();
  while (size > 0) {
    auto tail = area_->tail.load(std::memory_order_acquire);
    auto room = tail + shared_area::ring_size - head_;
    if (room == 0) {
      wait_for_room();
      continue;
    }
    auto n = std::min<std::uint64_t>(room, size);
    auto at = head_ % shared_area::ring_size;
    auto first = std::min<std::uint64_t>(n, shared_area::ring_size - at);
    std::memcpy(area_->ring + at, data, first);
    std::memcpy(area_->ring, data + first, n - first);
    head_ += n;
    area_->head.store(head_, std::memory_order_seq_cst);
    send_wakeup();
    data += n;
    size -= n;
  }
  ch_.clear_output();
}

std::string hub_client::render(const caf::error& err) {
  return runtime::get().system().render(err);
}

void hub_client::fill(bool block) {
  errno = 0; // stays 0 at the end of the stream
  if (!ch_.fill(block))
    broken("gone", errno);
}

void hub_client::broken(const char* what, int err) {
  // Forget this connection (the next call connects afresh, or finds the
  // hub gone); `this` is destroyed here.
  errc code = std::strcmp(what, "timeout") == 0 ? errc::timeout
                                                : errc::owner_unreachable;
  std::string text = code == errc::timeout
                       ? "no answer from the process that owns this object"
                       : "the process that owns this object is gone";
  if (area_ == nullptr && code != errc::timeout)
    text = std::string{"the stream to the host of the process that owns "
                       "this object ended ("}
           + (std::strcmp(what, "garbled") == 0 ? "it sent garbled frames"
              : err != 0                          ? std::strerror(err)
                                                  : "closed by the other side")
           + ")";
  if (area_ != nullptr)
    clients.erase(address_);
  else
    forget_stream(owner_);
  throw error(code, text);
}

bool hub_client::handle_frame(const channel::frame& f, std::uint64_t req,
                        std::optional<q_outcome>& result) {
  namespace k = hub_frame;
  std::uint64_t id = 0;
  switch (f.kind) {
    case k::room:
      return true; // wait_for_room looks at the ring itself
    case k::closed: {
      std::uint64_t qid = 0;
      if (ch_.get(f, qid))
        return false;
      closed_.insert(qid);
      return true;
    }
    case k::ok: {
      q_outcome x;
      if (ch_.get(f, id, x.flag))
        return false;
      if (id == req)
        result = std::move(x);
      return true;
    }
    case k::item: {
      q_outcome x;
      std::uint64_t seq = 0;
      {
        // Its pipe ends are taken by the getter (queue_ref::get).
        end_pass_scope carry{end_pass::carry};
        if (ch_.get(f, id, seq, x.item))
          return false;
        x.item.carries_ends(carry.saw_ends());
      }
      // Taken: were this process to die now, the hub keeps it out of the
      // queue (a process that dies before this store gives it back). On a
      // stream, once `taken` is sent (not waiting for an answer; a failed
      // send shows at the next call, and the hub gives the item back).
      if (area_ != nullptr) {
        area_->taken.store(seq, std::memory_order_release);
      } else if (!ch_.put(hub_frame::taken, seq)) {
        ch_.flush(true);
      }
      if (id == req)
        result = std::move(x);
      return true;
    }
    case k::fail: {
      std::uint8_t code = 0;
      std::string what;
      if (ch_.get(f, id, code, what))
        return false;
      if (id == req)
        result = q_outcome::fail(static_cast<errc>(code), std::move(what));
      return true;
    }
    case k::stats: {
      queue_ref::stats s;
      if (ch_.get(f, id, s.size, s.maxsize, s.getters, s.putters))
        return false;
      if (id == req) {
        stats_ = s;
        result = q_outcome{};
      }
      return true;
    }
    default:
      return false;
  }
}

void hub_client::put_buffered(std::uint64_t qid, value& item) {
  // Notices that a queue closed arrive unasked: read what is there, at
  // most every 100 us (a syscall per put would cost a third of its time).
  auto now = clock_type::now();
  if (now >= next_check_) {
    next_check_ = now + std::chrono::microseconds{100};
    std::optional<q_outcome> none;
    fill(false);
    while (auto f = ch_.next())
      if (!handle_frame(*f, 0, none))
        broken("garbled");
  }
  if (closed_.count(qid) > 0)
    throw error(errc::closed, "put on a closed queue");
  // Unanswered only into a queue the hub has said is open since the last
  // close of one of its queues (hub_protocol.hpp: put_buffered).
  auto closes = area_ != nullptr
                  ? area_->closes.load(std::memory_order_seq_cst)
                  : 0;
  if (auto i = vouched_.find(qid); i == vouched_.end() || i->second != closes) {
    std::int64_t ns = -1;
    auto result = call(hub_frame::put, ns, qid, ns, item);
    if (!result.ok && result.code == errc::closed)
      closed_.insert(qid);
    result.check();
    vouched_[qid] = closes;
    return;
  }
  if (auto err = ch_.put(hub_frame::put_buffered, qid, item))
    throw error(errc::invalid_argument,
                "the item cannot be serialized: " + render(err));
  send();
}

q_outcome hub_client::await(std::uint64_t req, std::int64_t ns) {
  auto limit = ns >= 0 ? deadline{std::chrono::nanoseconds{ns} + call_grace}
                       : deadline{};
  // (Not on a stream: an answer from another host takes longer.)
  auto now = clock_type::now();
  auto spin_until
    = area_ != nullptr ? std::min(now + spin_time(), limit.when()) : now;
  std::optional<q_outcome> result;
  for (;;) {
    while (auto f = ch_.next())
      if (!handle_frame(*f, req, result))
        broken("garbled");
    if (result)
      break;
    if (clock_type::now() < spin_until) {
      // The answer often comes within microseconds: look for it before
      // sleeping in recv (a wake-up costs tens of microseconds).
      fill(false);
      relax();
      continue;
    }
    if (limit.bounded()) {
      auto left = limit.poll_ms();
      pollfd p{ch_.fd(), POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, left) == 0)
        broken("timeout");
    }
    fill(true);
  }
  return std::move(*result);
}

} // namespace actors::detail
