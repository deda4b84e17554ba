#pragma once

// Writes a link's frames (link_protocol.hpp) into a byte buffer, the
// inverse of frame_reader. Serializing happens in the sending thread, before
// the frame goes into a ring; a value CAF cannot serialize (a type that was
// not registered) fails here, in the sender, with that error, and leaves
// the buffer as it was.

#include <cstdint>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/node_id.hpp>

#include "link/link_protocol.hpp"

namespace actors::detail::links {

using buffer = std::vector<char>;

/// Appends a message frame for actor `dest`.
caf::error write_message(buffer& buf, caf::execution_unit* ctx,
                         std::uint64_t dest, caf::message_id mid,
                         const caf::strong_actor_ptr& sender,
                         const std::vector<caf::strong_actor_ptr>& stages,
                         const caf::message& content);

/// Appends a `down` or `close` frame.
caf::error write_reason(buffer& buf, caf::execution_unit* ctx, frame_kind kind,
                        std::uint64_t dest, const caf::error& reason);

/// Appends a `link` or `unlink` frame.
caf::error write_actor(buffer& buf, caf::execution_unit* ctx, frame_kind kind,
                       std::uint64_t dest, const caf::strong_actor_ptr& who);

/// Appends a frame without a body (`monitor`).
void write_empty(buffer& buf, frame_kind kind, std::uint64_t dest);

/// Appends a hello: [u32 size][hello_fixed][node id].
caf::error write_hello(buffer& buf, caf::execution_unit* ctx,
                       const caf::node_id& node, std::uint64_t service);

} // namespace actors::detail::links
