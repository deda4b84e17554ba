#include "link/frame_reader.hpp"

#include <algorithm>
#include <cstring>
#include <exception>

#include <caf/binary_deserializer.hpp>
#include <caf/deserializer.hpp>
#include <caf/sec.hpp>

namespace actors::detail::links {

namespace {

// CAF's binary_deserializer with one more check: a sequence may not claim
// more elements than there are bytes left. CAF 0.17 resizes a byte vector
// (std::vector<char>, "@charbuf") to the claimed size before it reads, so
// five bytes could make it allocate 4 GiB (found by fuzz/link_frames.cpp).
// Every element of a sequence takes at least a bit on the wire here
// (std::vector<bool> travels as a bit per element), so a claim is at most
// eight times the bytes that really arrived.
class checked_deserializer final : public caf::deserializer {
public:
  checked_deserializer(caf::execution_unit* ctx, const char* data,
                       std::size_t size)
      : caf::deserializer(ctx), inner_(ctx, data, size) {
    // nop
  }

  std::size_t remaining() const noexcept {
    return inner_.remaining();
  }

  caf::error begin_object(std::uint16_t& nr, std::string& name) override {
    return inner_.begin_object(nr, name);
  }

  caf::error end_object() override {
    return inner_.end_object();
  }

  caf::error begin_sequence(std::size_t& n) override {
    if (auto err = inner_.begin_sequence(n))
      return err;
    if (n / 8 > inner_.remaining())
      return caf::sec::end_of_stream;
    return caf::none;
  }

  caf::error end_sequence() override {
    return inner_.end_sequence();
  }

  caf::error apply_raw(std::size_t n, void* data) override {
    return inner_.apply_raw(n, data);
  }

protected:
  caf::error apply_impl(std::int8_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::uint8_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::int16_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::uint16_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::int32_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::uint32_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::int64_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::uint64_t& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(float& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(double& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(long double& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::string& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::u16string& x) override {
    return inner_.apply(x);
  }
  caf::error apply_impl(std::u32string& x) override {
    return inner_.apply(x);
  }

private:
  caf::binary_deserializer inner_;
};

// CAF 0.17's deserializers throw, not only return errors: a variant
// (config_value inside an error's context, for one) with an unknown type
// index raises std::runtime_error("invalid type found"). Bytes from a peer
// are never trusted, so a throw is a malformed frame like any other (found
// by fuzz/link_frames.cpp).
template <class F>
bool malformed_on_throw(F&& read) noexcept {
  try {
    return read();
  } catch (const std::exception&) {
    return false;
  }
}

} // namespace

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

bool read_message(const frame& f, caf::execution_unit* ctx, message_parts& out,
                  caf::error& content_error) {
  message_fixed fixed;
  if (f.kind != frame_kind::message || f.size < sizeof(fixed))
    return false;
  std::memcpy(&fixed, f.body, sizeof(fixed));
  out.mid = caf::make_message_id(fixed.mid);
  return malformed_on_throw([&] {
    checked_deserializer source{ctx, f.body + sizeof(fixed),
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
  });
}

bool read_reason(const frame& f, caf::execution_unit* ctx, caf::error& out) {
  if (f.kind != frame_kind::down && f.kind != frame_kind::close)
    return false;
  return malformed_on_throw([&] {
    checked_deserializer source{ctx, f.body, f.size};
    return !source(out) && source.remaining() == 0;
  });
}

bool read_actor(const frame& f, caf::execution_unit* ctx,
                caf::strong_actor_ptr& out) {
  if (f.kind != frame_kind::link && f.kind != frame_kind::unlink)
    return false;
  return malformed_on_throw([&] {
    checked_deserializer source{ctx, f.body, f.size};
    return !source(out) && source.remaining() == 0 && out != nullptr;
  });
}

bool read_hello(const char* data, std::size_t size, caf::execution_unit* ctx,
                caf::node_id& out, std::uint64_t& service) {
  hello_fixed fixed;
  if (size < sizeof(fixed))
    return false;
  std::memcpy(&fixed, data, sizeof(fixed));
  if (std::memcmp(fixed.magic, protocol_magic, sizeof(fixed.magic)) != 0
      || fixed.version != protocol_version || fixed.node_size > max_node_size
      || fixed.node_size != size - sizeof(fixed))
    return false;
  service = fixed.service;
  return malformed_on_throw([&] {
    checked_deserializer source{ctx, data + sizeof(fixed), fixed.node_size};
    return !source(out) && source.remaining() == 0 && out != caf::none;
  });
}

} // namespace actors::detail::links
