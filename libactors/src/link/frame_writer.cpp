#include "link/frame_writer.hpp"

#include <cstring>

#include <caf/binary_serializer.hpp>
#include <caf/sec.hpp>

namespace actors::detail::links {

namespace {

// Writes a frame header, then what `body` serializes; patches the size in
// afterwards. On an error, `buf` keeps only what it held before.
template <class Body>
caf::error write_frame(buffer& buf, caf::execution_unit* ctx, frame_kind kind,
                       std::uint64_t dest, Body body) {
  auto start = buf.size();
  frame_header hdr{0, static_cast<std::uint8_t>(kind), 0, 0, dest};
  buf.resize(start + sizeof(hdr));
  caf::binary_serializer sink{ctx, buf};
  auto err = body(sink);
  auto size = buf.size() - start - sizeof(hdr);
  if (!err && size > default_max_body)
    err = caf::make_error(caf::sec::invalid_argument,
                          "a message of " + std::to_string(size)
                              + " bytes is larger than a link carries (1 GiB)");
  if (err) {
    buf.resize(start);
    return err;
  }
  hdr.size = static_cast<std::uint32_t>(size);
  std::memcpy(buf.data() + start, &hdr, sizeof(hdr));
  return caf::none;
}

} // namespace

caf::error write_message(buffer& buf, caf::execution_unit* ctx,
                         std::uint64_t dest, caf::message_id mid,
                         const caf::strong_actor_ptr& sender,
                         const std::vector<caf::strong_actor_ptr>& stages,
                         const caf::message& content) {
  return write_frame(
      buf, ctx, frame_kind::message, dest, [&](caf::binary_serializer& sink) {
        message_fixed fixed{mid.integer_value()};
        auto at = buf.size();
        buf.resize(at + sizeof(fixed));
        std::memcpy(buf.data() + at, &fixed, sizeof(fixed));
        sink.seek(buf.size());
        // CAF's inspectors take mutable references.
        auto& s = const_cast<caf::strong_actor_ptr&>(sender);
        auto& st = const_cast<std::vector<caf::strong_actor_ptr>&>(stages);
        if (auto err = sink(s, st))
          return err;
        // Not sink(content): CAF 0.17 drops the error of
        // message::save there (a type not registered) and
        // writes nothing.
        return content.save(sink);
      });
}

caf::error write_reason(buffer& buf, caf::execution_unit* ctx, frame_kind kind,
                        std::uint64_t dest, const caf::error& reason) {
  return write_frame(buf, ctx, kind, dest, [&](caf::binary_serializer& sink) {
    return sink(const_cast<caf::error&>(reason));
  });
}

caf::error write_actor(buffer& buf, caf::execution_unit* ctx, frame_kind kind,
                       std::uint64_t dest, const caf::strong_actor_ptr& who) {
  return write_frame(buf, ctx, kind, dest, [&](caf::binary_serializer& sink) {
    return sink(const_cast<caf::strong_actor_ptr&>(who));
  });
}

void write_empty(buffer& buf, frame_kind kind, std::uint64_t dest) {
  frame_header hdr{0, static_cast<std::uint8_t>(kind), 0, 0, dest};
  auto at = buf.size();
  buf.resize(at + sizeof(hdr));
  std::memcpy(buf.data() + at, &hdr, sizeof(hdr));
}

caf::error write_hello(buffer& buf, caf::execution_unit* ctx,
                       const caf::node_id& node, std::uint64_t service) {
  auto start = buf.size();
  hello_fixed fixed{};
  std::memcpy(fixed.magic, protocol_magic, sizeof(fixed.magic));
  fixed.version = protocol_version;
  fixed.service = service;
  buf.resize(start + sizeof(std::uint32_t) + sizeof(fixed));
  caf::binary_serializer sink{ctx, buf};
  if (auto err = sink(const_cast<caf::node_id&>(node))) {
    buf.resize(start);
    return err;
  }
  auto node_size = buf.size() - start - sizeof(std::uint32_t) - sizeof(fixed);
  fixed.node_size = static_cast<std::uint32_t>(node_size);
  auto size = static_cast<std::uint32_t>(sizeof(fixed) + node_size);
  std::memcpy(buf.data() + start, &size, sizeof(size));
  std::memcpy(buf.data() + start + sizeof(size), &fixed, sizeof(fixed));
  return caf::none;
}

} // namespace actors::detail::links
