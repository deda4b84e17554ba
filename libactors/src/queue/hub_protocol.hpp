#pragma once

// The wire protocol between a queue hub (hub_server.hpp) and its clients
// (hub_client.hpp): the frame kinds and their fields, the memory a local
// client shares with the hub, and the hub's socket address. A local client
// (same host and user) connects to the hub's abstract Unix socket, says
// `hello` with the hub's key and its area, then writes requests into the
// ring of that area; answers come on the socket. A client on another host
// sends the same requests on an authenticated stream (hub_stream.cpp), no
// hello and no area. The design (ordering of puts and closes, items in
// flight, delivery across hosts) is in docs/architecture.md.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>

namespace actors::detail {

/// The kinds of frame of the hub protocol (wire/channel.hpp's framing: a
/// u32 body size, this kind, then the fields listed, CAF-serialized). `req`
/// is a u64 the client numbers its requests by, echoed in the answer; `qid`
/// the u64 id of the queue's actor; `ns` an i64 timeout (-1: none; 0: do
/// not wait); `item` a value; `seq` a u64 the hub numbers items handed out
/// by. A frame the hub cannot read ends the connection.
namespace hub_frame {

enum kind : std::uint8_t {
  // -- client to hub ----------------------------------------------------------

  /// u64 key0, u64 key1, i32 fd: a local client's first frame, on the
  /// socket: the hub's key and the client's descriptor of its shared_area
  /// (a memfd the hub maps through /proc/PID/fd). Answered `ok` with req 0
  /// once mapped. Every later frame of a local client goes through the
  /// ring in that area.
  hello = 1,
  /// qid, item; not answered. Sent only into a queue that the hub has
  /// said is open (by answering a `put`) since shared_area::closes last
  /// changed; if it finds the queue closed, the hub sends `closed`.
  put_buffered = 2,
  /// req, qid, ns, item -> ok | fail.
  put = 3,
  /// req, qid, ns -> item | fail.
  get = 4,
  /// req, qid, ns -> ok(flag: an item is there, or the queue is closed).
  poll = 6,
  /// req, qid, ns -> ok | fail: every item put was marked done.
  join = 7,
  /// req, qid -> ok | fail: task_done.
  done = 8,
  /// req, qid -> ok.
  close = 9,
  /// req, qid -> stats.
  size = 10,
  /// req -> ok, once everything sent before is served.
  sync = 11,
  /// seq: a stream client has taken item `seq` (a local one stores it in
  /// shared_area::taken instead). Any frame after an item says so too.
  taken = 12,
  /// req, node_id -> ok: a stream's optional first frame, naming the
  /// client's node (queue_hub::when_drained waits for such streams).
  peer = 13,

  // -- hub to client (on the socket) ------------------------------------------

  /// req, bool flag.
  ok = 20,
  /// req, seq, item: in flight until the client has taken it; a
  /// connection that ends before gives it back to the front of its queue.
  item = 21,
  /// req, u8 code (an errc), string what.
  fail = 22,
  /// req, u64 size, u64 maxsize, u64 getters, u64 putters.
  stats = 23,
  /// qid: the queue closed (unasked, after a `put_buffered` or a close).
  closed = 24,
  /// The ring has room again (asked for by shared_area::waiting).
  room = 25,
};

} // namespace hub_frame

/// At most this many body bytes before a hello: a stranger cannot make
/// the hub reserve more.
constexpr std::uint32_t max_hello = 64;

/// The memory a client shares with the hub it is connected to.
struct shared_area {
  static constexpr std::size_t ring_size = 256 * 1024;
  /// The sequence number of the last item the client took.
  std::atomic<std::uint64_t> taken{0};
  /// Bytes the client has written into the ring, ever.
  std::atomic<std::uint64_t> head{0};
  /// Bytes the hub has read from the ring, ever.
  std::atomic<std::uint64_t> tail{0};
  /// Set by the hub before it sleeps, cleared when it wakes: meanwhile the
  /// client sends a wake-up byte on the socket after each write.
  std::atomic<std::uint32_t> wakeup_wanted{0};
  /// Set by a client waiting for room: the hub should send `room`.
  std::atomic<std::uint32_t> waiting{0};
  /// How many queues of the hub have closed since the client connected
  /// (counted before each close returns).
  std::atomic<std::uint64_t> closes{0};
  alignas(64) char ring[ring_size];
};

/// The address of the hub socket `name` in the abstract namespace, and
/// its length in `len`.
inline sockaddr_un abstract_address(const std::string& name, socklen_t& len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract namespace: a leading NUL, no file, gone with its process.
  std::memcpy(addr.sun_path + 1, name.data(),
              std::min(name.size(), sizeof(addr.sun_path) - 1));
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                               + name.size());
  return addr;
}

} // namespace actors::detail
