#include "link/frame_reader.hpp"

#include <algorithm>
#include <cstring>

#include <caf/binary_deserializer.hpp>

namespace actors::detail::links {

frame_reader::frame_reader(std::uint32_t max_body) : max_body_(max_body) {
  // nop
}

char* frame_reader::prepare(std::size_t n) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    // A buffer grown for a large frame is given back once it is read.
    if (buf_.size() > (std::size_t{1} << 20))
      std::vector<char>{}.swap(buf_);
  }
  if (buf_.size() - end_ < n) {
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < n)
      buf_.resize(std::max(end_ + n, buf_.size() * 2));
  }
  return buf_.data() + end_;
}

void frame_reader::commit(std::size_t n) {
  end_ += n;
}

void frame_reader::feed(const char* data, std::size_t n) {
  std::memcpy(prepare(n), data, n);
  commit(n);
}

frame_reader::result frame_reader::next(frame& out) {
  if (!what_.empty())
    return result::bad;
  if (end_ - begin_ < sizeof(frame_header))
    return result::more;
  frame_header hdr;
  std::memcpy(&hdr, buf_.data() + begin_, sizeof(hdr));
  if (!known_kind(hdr.kind))
    what_ = "unknown frame kind " + std::to_string(hdr.kind);
  else if (hdr.flags != 0 || hdr.reserved != 0)
    what_ = "frame header with unknown flags";
  else if (hdr.size > max_body_)
    what_ = "frame of " + std::to_string(hdr.size) + " bytes (at most "
            + std::to_string(max_body_) + ")";
  if (!what_.empty())
    return result::bad;
  if (end_ - begin_ - sizeof(hdr) < hdr.size)
    return result::more;
  out.kind = static_cast<frame_kind>(hdr.kind);
  out.dest = hdr.dest;
  out.body = buf_.data() + begin_ + sizeof(hdr);
  out.size = hdr.size;
  begin_ += sizeof(hdr) + hdr.size;
  return result::frame;
}

bool read_message(const frame& f, caf::execution_unit* ctx,
                  message_parts& out, caf::error& content_error) {
  message_fixed fixed;
  if (f.kind != frame_kind::message || f.size < sizeof(fixed))
    return false;
  std::memcpy(&fixed, f.body, sizeof(fixed));
  out.mid = caf::make_message_id(fixed.mid);
  caf::binary_deserializer source{ctx, f.body + sizeof(fixed),
                                  f.size - sizeof(fixed)};
  if (source(out.sender, out.stages))
    return false;
  if (auto err = out.content.load(source)) {
    content_error = std::move(err);
    out.content = caf::message{};
  } else if (source.remaining() != 0) {
    return false;
  }
  return true;
}

bool read_reason(const frame& f, caf::execution_unit* ctx, caf::error& out) {
  if (f.kind != frame_kind::down && f.kind != frame_kind::close)
    return false;
  caf::binary_deserializer source{ctx, f.body, f.size};
  return !source(out) && source.remaining() == 0;
}

bool read_actor(const frame& f, caf::execution_unit* ctx,
                caf::strong_actor_ptr& out) {
  if (f.kind != frame_kind::link && f.kind != frame_kind::unlink)
    return false;
  caf::binary_deserializer source{ctx, f.body, f.size};
  return !source(out) && source.remaining() == 0 && out != nullptr;
}

bool read_hello(const char* data, std::size_t size, caf::execution_unit* ctx,
                caf::node_id& out, std::uint64_t& root) {
  hello_fixed fixed;
  if (size < sizeof(fixed))
    return false;
  std::memcpy(&fixed, data, sizeof(fixed));
  if (std::memcmp(fixed.magic, protocol_magic, sizeof(fixed.magic)) != 0
      || fixed.version != protocol_version || fixed.node_size > max_node_size
      || fixed.node_size != size - sizeof(fixed))
    return false;
  root = fixed.root;
  caf::binary_deserializer source{ctx, data + sizeof(fixed), fixed.node_size};
  return !source(out) && source.remaining() == 0 && out != caf::none;
}

} // namespace actors::detail::links
