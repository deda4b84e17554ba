// wire/channel.hpp: frames written on one end of a socket pair are read
// back exactly; a partial frame waits for the rest; a frame's length is
// known before its body, so a reader can refuse an oversized one, and a
// body shorter than its values is an error. Frames without actor handles
// need no actor system.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include "wire/channel.hpp"

using actors::detail::channel;

namespace {

// A connected pair of stream sockets.
struct socket_pair {
  socket_pair() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  }
  int fds[2] = {-1, -1};
};

// Two connected channels, each owning its end.
struct channel_pair : socket_pair {
  channel a{fds[0]};
  channel b{fds[1]};
};

// Reads on `ch` until a frame is complete; at most `tries` reads.
std::optional<channel::frame> read_frame(channel& ch, int tries = 16) {
  for (int i = 0; i < tries; ++i) {
    if (auto f = ch.next())
      return f;
    if (!ch.fill(true))
      return std::nullopt;
  }
  return std::nullopt;
}

// Writes `n` raw bytes on `fd` (a frame's bytes by hand).
void write_raw(int fd, const void* data, std::size_t n) {
  REQUIRE(::write(fd, data, n) == static_cast<ssize_t>(n));
}

} // namespace

TEST_CASE("channel: frames come back in order, kind and values exactly") {
  channel_pair p;
  std::int32_t n = -42;
  std::string text = "hello, frame";
  std::vector<std::uint64_t> xs{1, 2, 3, std::uint64_t{1} << 63};
  REQUIRE_FALSE(p.a.put(7, n, text));
  REQUIRE_FALSE(p.a.put(8, xs));
  REQUIRE(p.a.pending());
  REQUIRE(p.a.flush(true));
  CHECK_FALSE(p.a.pending());

  auto f = read_frame(p.b);
  REQUIRE(f);
  CHECK(f->kind == 7);
  std::int32_t n2 = 0;
  std::string text2;
  REQUIRE_FALSE(p.b.get(*f, n2, text2));
  CHECK(n2 == n);
  CHECK(text2 == text);

  f = read_frame(p.b);
  REQUIRE(f);
  CHECK(f->kind == 8);
  std::vector<std::uint64_t> xs2;
  REQUIRE_FALSE(p.b.get(*f, xs2));
  CHECK(xs2 == xs);
  CHECK_FALSE(p.b.next());
}

TEST_CASE("channel: an empty frame is a kind alone") {
  channel_pair p;
  REQUIRE_FALSE(p.a.put(3));
  REQUIRE(p.a.flush(true));
  auto f = read_frame(p.b);
  REQUIRE(f);
  CHECK(f->kind == 3);
  CHECK(f->size == 0);
}

TEST_CASE("channel: a partial frame waits for the rest") {
  channel_pair p;
  std::string text(1000, 'x');
  REQUIRE_FALSE(p.a.put(5, text));
  auto [data, size] = p.a.output();
  std::vector<char> bytes(data, data + size);
  p.a.clear_output();
  // The header only, then half the body: no frame yet.
  write_raw(p.a.fd(), bytes.data(), 3);
  REQUIRE(p.b.fill(true));
  CHECK_FALSE(p.b.next());
  CHECK_FALSE(p.b.next_size());
  write_raw(p.a.fd(), bytes.data() + 3, size / 2 - 3);
  REQUIRE(p.b.fill(true));
  CHECK_FALSE(p.b.next());
  REQUIRE(p.b.next_size());
  CHECK(*p.b.next_size() == size - 5);
  // The rest: the frame, exactly.
  write_raw(p.a.fd(), bytes.data() + size / 2, size - size / 2);
  auto f = read_frame(p.b);
  REQUIRE(f);
  CHECK(f->kind == 5);
  std::string text2;
  REQUIRE_FALSE(p.b.get(*f, text2));
  CHECK(text2 == text);
}

TEST_CASE("channel: bytes fed by other means read as frames") {
  channel_pair p;
  std::uint32_t x = 99;
  REQUIRE_FALSE(p.a.put(9, x));
  REQUIRE_FALSE(p.a.put(10, x));
  auto [data, size] = p.a.output();
  // Split inside the second frame: the first is whole, the second waits.
  p.b.feed(data, size - 2);
  auto f = p.b.next();
  REQUIRE(f);
  CHECK(f->kind == 9);
  CHECK_FALSE(p.b.next());
  p.b.feed(data + size - 2, 2);
  f = p.b.next();
  REQUIRE(f);
  CHECK(f->kind == 10);
  std::uint32_t y = 0;
  REQUIRE_FALSE(p.b.get(*f, y));
  CHECK(y == 99);
  p.a.clear_output();
  CHECK_FALSE(p.a.pending());
}

TEST_CASE("channel: an oversized length is known before its body") {
  channel_pair p;
  // A header announcing 3 GiB, and a few bytes: a reader that refuses big
  // frames (the lock server's 256 bytes) can tell without the body.
  char header[5];
  std::uint32_t huge = 3u << 30;
  std::memcpy(header, &huge, sizeof(huge));
  header[4] = 1;
  write_raw(p.a.fd(), header, sizeof(header));
  write_raw(p.a.fd(), "abc", 3);
  REQUIRE(p.b.fill(true));
  REQUIRE(p.b.next_size());
  CHECK(*p.b.next_size() == huge);
  CHECK_FALSE(p.b.next());
}

TEST_CASE("channel: a body shorter than its values is an error") {
  channel_pair p;
  std::uint8_t small = 1;
  REQUIRE_FALSE(p.a.put(4, small));
  REQUIRE(p.a.flush(true));
  auto f = read_frame(p.b);
  REQUIRE(f);
  std::uint64_t big = 0;
  CHECK(p.b.get(*f, big));
  std::string text;
  CHECK(p.b.get(*f, small, text));
}

TEST_CASE("channel: the peer's end reads as the end, after its frames") {
  channel_pair p;
  std::int16_t x = 5;
  REQUIRE_FALSE(p.a.put(2, x));
  REQUIRE(p.a.flush(true));
  p.a.shutdown_write();
  auto f = read_frame(p.b);
  REQUIRE(f);
  CHECK(f->kind == 2);
  CHECK_FALSE(p.b.fill(true));
  CHECK(p.b.failure() == 0);
}
