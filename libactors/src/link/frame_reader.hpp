#pragma once

// Reads a link's frames (link_protocol.hpp) out of the bytes another
// process wrote: a parser that trusts nothing it reads. It checks every
// header (known kind, zero flags, a body no larger than its bound), grows
// its buffer only with bytes that arrived, and reads bodies with bounds
// checks (CAF's binary_deserializer) into values the caller can use. A
// malformed frame makes `next` say `bad`, with the reason: the link then
// closes, as for any protocol error.
//
// No I/O, no link state: the fuzz target fuzz/link_frames.cpp drives it
// with arbitrary bytes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/node_id.hpp>

#include "link/link_protocol.hpp"

namespace actors::detail::links {

/// One frame, viewing the reader's buffer.
struct frame {
  frame_kind kind;
  std::uint64_t dest;
  const char* body;
  std::size_t size;
};

/// Splits a byte stream into frames.
class frame_reader {
public:
  enum class result { frame, more, bad };

  explicit frame_reader(std::uint32_t max_body = default_max_body);

  /// Room for `n` more bytes at the end of the buffer; say with commit()
  /// how many were written there.
  char* prepare(std::size_t n);
  void commit(std::size_t n);

  /// prepare(), copy, commit().
  void feed(const char* data, std::size_t n);

  /// The next complete frame in `out` (its body valid until the next call
  /// of prepare, feed or next), `more` if none is complete yet, or `bad`
  /// (and then always `bad`) if the stream broke the protocol.
  result next(frame& out);

  /// Why the stream is `bad`.
  const std::string& what() const noexcept {
    return what_;
  }

  /// Bytes held that belong to no complete frame yet.
  std::size_t buffered() const noexcept {
    return end_ - begin_;
  }

private:
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::uint32_t max_body_;
  std::string what_;
};

/// What a message frame carries.
struct message_parts {
  caf::message_id mid;
  caf::strong_actor_ptr sender;
  std::vector<caf::strong_actor_ptr> stages;
  caf::message content;
};

/// Reads a message frame with `ctx` (its proxy registry turns handles into
/// proxies). False if the frame is malformed before its content (a protocol
/// error). Otherwise true, and `content_error` says whether the content
/// could not be read (a type this process does not know, named in the
/// error): the sender and mid are valid then, so a request can be answered.
bool read_message(const frame& f, caf::execution_unit* ctx, message_parts& out,
                  caf::error& content_error);

/// Reads the reason of a `down` or `close` frame. False if malformed.
bool read_reason(const frame& f, caf::execution_unit* ctx, caf::error& out);

/// Reads the actor of a `link` or `unlink` frame. False if malformed.
bool read_actor(const frame& f, caf::execution_unit* ctx,
                caf::strong_actor_ptr& out);

/// Reads a hello's bytes (after its u32 size): the peer's node and service
/// actor id. False if malformed.
bool read_hello(const char* data, std::size_t size, caf::execution_unit* ctx,
                caf::node_id& node, std::uint64_t& service);

} // namespace actors::detail::links
