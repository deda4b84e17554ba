#pragma once

// The wire protocol of a link: what two processes of one host say to each
// other, first on their Unix socket (the hello), then through their two
// rings (frames). Like CAF's basp/message_type.hpp and basp/header.hpp, but
// for a transport of our own: one ordered byte stream per direction, both
// ends on the same machine (so integers travel in host byte order and the
// fixed parts are plain structs).
//
// Setup, on the socket:
//   by name (process <-> process): both sides check SO_PEERCRED (same uid);
//     the accepting side sends `challenge`; the connecting side answers with
//     its nonce and mac(key, "link-client", server nonce, client nonce),
//     then both send a `hello`; the accepting side's hello is preceded by
//     mac(key, "link-server", client nonce, server nonce). A side that reads
//     a wrong MAC closes the socket before it sends anything else.
//   inherited (parent <-> child, a socketpair made before the exec): both
//     sides send a `hello` at once; the socket is the authority.
//   A hello is [u32 size][hello_fixed][node id, CAF binary], with the memfd
//   of the sender's outgoing ring attached (SCM_RIGHTS) to its first byte
//   (a sealed memfd: see ring.hpp).
// After the setup the socket carries nothing: it stays open until one side
// ends, so that its end (EOF, HUP) tells the other at once.
//
// Frames, in each ring: [frame_header][body of frame_header::size bytes].
// Every actor frame names an actor id in `dest`; the body's CAF parts are
// read with the receiver's proxy registry, so actor handles inside become
// proxies (or the local actors they name). Frame kinds 32..63 are kept for
// mailbox frames (queues and pipes as actors on the links, issue 21): they
// will name the queue's actor in `dest` and carry their own bodies; a
// reader that does not know a kind closes the link (a protocol error), so
// both ends must agree on the version in the hello.

#include <cstddef>
#include <cstdint>

namespace actors::detail::links {

/// What a frame is; see each value for `dest` and the body.
enum class frame_kind : std::uint8_t {
  /// A message to an actor of the receiver's process.
  /// dest: the receiving actor's id.
  /// body: message_fixed, then CAF binary of (strong_actor_ptr sender,
  ///       std::vector<strong_actor_ptr> stages, caf::message content).
  /// A request (message_fixed::mid) that cannot be delivered is answered
  /// by the receiver with an error response frame, never dropped.
  message = 1,
  /// An actor of the sender's process ended: kill its proxy.
  /// dest: the id of the actor that ended (in the sender's process).
  /// body: CAF binary of the caf::error exit reason.
  down = 2,
  /// The sender made a proxy for an actor of the receiver's process: the
  /// receiver answers with `down` when that actor ends (at once, with
  /// exit_reason::unknown, if it is not alive).
  /// dest: the actor's id. body: empty.
  monitor = 3,
  /// An actor of the sender's process links to an actor of the receiver's.
  /// dest: the receiver's actor. body: CAF binary of the strong_actor_ptr
  /// of the linking actor (a proxy on the receiver's side).
  link = 4,
  /// Undoes `link`; same layout.
  unlink = 5,
  /// The sender's process is ending in an orderly way: its proxies end
  /// with this reason, not "process died". Nothing follows it.
  /// dest: 0. body: CAF binary of the caf::error reason.
  close = 6,
  /// First of the kinds kept for mailbox frames (issue 21).
  first_mailbox = 32,
  /// Last of the kinds kept for mailbox frames.
  last_mailbox = 63,
};

/// The fixed start of every frame (16 bytes).
struct frame_header {
  /// Bytes of the body that follows.
  std::uint32_t size;
  /// A frame_kind.
  std::uint8_t kind;
  /// Zero (kept for later use; a reader rejects other values).
  std::uint8_t flags;
  /// Zero.
  std::uint16_t reserved;
  /// The actor the frame is about (see frame_kind).
  std::uint64_t dest;
};

static_assert(sizeof(frame_header) == 16);

/// The fixed start of a message frame's body.
struct message_fixed {
  /// caf::message_id::integer_value(), unchanged: request, response and
  /// priority bits travel with it.
  std::uint64_t mid;
};

/// Sent by the accepting side first when a link is made by name.
struct challenge {
  std::uint8_t magic[8]; // "ACTLINK1"
  std::uint8_t nonce[32];
};

/// The connecting side's answer to a challenge.
struct proof {
  std::uint8_t nonce[32];
  std::uint8_t mac[32];
};

/// The fixed start of a hello (after its u32 size).
struct hello_fixed {
  std::uint8_t magic[8]; // "ACTLINK1"
  std::uint32_t version; // protocol_version
  /// Bytes of the CAF binary node id that follow.
  std::uint32_t node_size;
  /// The id of the sender's service actor (it lives as long as the
  /// process), or 0: the first handle each side gets of the other.
  std::uint64_t service;
};

constexpr std::uint8_t protocol_magic[8]
    = {'A', 'C', 'T', 'L', 'I', 'N', 'K', '1'};
constexpr std::uint32_t protocol_version = 1;

/// A hello's node id is a few dozen bytes; more is a protocol error.
constexpr std::uint32_t max_node_size = 1024;

/// The largest frame body a reader accepts by default (1 GiB). A reader
/// grows its buffer with the bytes that arrive, never with what a header
/// announces.
constexpr std::uint32_t default_max_body = std::uint32_t{1} << 30;

/// True for the kinds this version knows.
constexpr bool known_kind(std::uint8_t kind) noexcept {
  return kind >= static_cast<std::uint8_t>(frame_kind::message)
         && kind <= static_cast<std::uint8_t>(frame_kind::close);
}

} // namespace actors::detail::links
