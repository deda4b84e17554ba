#pragma once

// PROTOCOL-INTRO

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>

namespace actors::detail {

/// Frame kinds of the hub protocol.
namespace hub_frame {
// client -> hub
constexpr std::uint8_t hello = 1; // key0, key1, fd of the shared area
constexpr std::uint8_t put_buffered = 2; // qid, item (no answer)
constexpr std::uint8_t put = 3;   // req, qid, ns, item
constexpr std::uint8_t get = 4;   // req, qid, ns -> item | fail
constexpr std::uint8_t poll = 6;  // req, qid, ns -> ok(flag)
constexpr std::uint8_t join = 7;  // req, qid, ns
constexpr std::uint8_t done = 8;  // req, qid
constexpr std::uint8_t close = 9; // req, qid
constexpr std::uint8_t size = 10; // req, qid -> stats
constexpr std::uint8_t sync = 11; // req: everything sent before is done
constexpr std::uint8_t taken = 12; // seq: a stream client has the item
constexpr std::uint8_t peer = 13;  // req, node: first on a stream, optional
// hub -> client
constexpr std::uint8_t ok = 20;     // req, flag
constexpr std::uint8_t item = 21;   // req, seq, item
constexpr std::uint8_t fail = 22;   // req, code, what
constexpr std::uint8_t stats = 23;  // req, size, maxsize, getters, putters
constexpr std::uint8_t closed = 24; // qid: a buffered put found it closed
constexpr std::uint8_t room = 25;   // the ring has room again
} // namespace hub_frame

/// The memory a client shares with the hub it is connected to.
struct shared_area {
  static constexpr std::size_t ring_size = 256 * 1024;
  /// The sequence number of the last item the client took.
  std::atomic<std::uint64_t> taken{0};
  /// Bytes the client has written into the ring, ever.
  std::atomic<std::uint64_t> head{0};
  /// Bytes the hub has read from the ring, ever.
  std::atomic<std::uint64_t> tail{0};
  /// Set by the hub before it sleeps, cleared when it wakes: the client
  /// rings (a byte on the socket) after each write meanwhile.
  std::atomic<std::uint32_t> doorbell{0};
  /// Set by a client waiting for room: the hub should send `room`.
  std::atomic<std::uint32_t> waiting{0};
  /// How many queues of the hub have closed since the client connected
  /// (counted before each close returns).
  std::atomic<std::uint64_t> closes{0};
  alignas(64) char ring[ring_size];
};

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

// Maps the area process `pid` shares as its descriptor `fd` (a memfd of

} // namespace actors::detail
