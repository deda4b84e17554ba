// base/: the owning descriptor, the one deadline type, randomness.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <set>

#include <fcntl.h>
#include <unistd.h>

#include "base/deadline.hpp"
#include "base/fd.hpp"
#include "base/random.hpp"

using namespace std::chrono_literals;
using actors::detail::deadline;
using actors::detail::unique_fd;

namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

} // namespace

TEST_CASE("unique_fd closes once, when its owner goes or takes another") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  {
    unique_fd a{p[0]};
    unique_fd b{p[1]};
    CHECK(is_open(p[0]));
    unique_fd c = std::move(a);
    CHECK_FALSE(a);
    CHECK(c.get() == p[0]);
    c.reset();
    CHECK_FALSE(is_open(p[0]));
    auto raw = b.release();
    CHECK(raw == p[1]);
    CHECK_FALSE(b);
    b.reset(raw);
  }
  CHECK_FALSE(is_open(p[1]));
}

TEST_CASE("a deadline: none is unbounded, negative is zero, the forms "
          "agree") {
  deadline forever;
  CHECK_FALSE(forever.bounded());
  CHECK_FALSE(forever.passed());
  CHECK(forever.poll_ms() == -1);
  CHECK(forever.left_ns() == -1);
  deadline negative{-5s};
  CHECK(negative.bounded());
  CHECK(negative.passed());
  CHECK(negative.poll_ms() == 0);
  CHECK(negative.left_ns() == 0);
  deadline soon{1500us};
  CHECK(soon.poll_ms() >= 1); // rounded up, never 0 before it passed
  CHECK(soon.poll_ms() <= 2);
  auto ts = soon.monotonic();
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto ahead = (ts.tv_sec - now.tv_sec) * 1'000'000'000LL
               + (ts.tv_nsec - now.tv_nsec);
  CHECK(ahead <= 1'500'000);
  CHECK(actors::detail::timeout_ns(std::nullopt) == -1);
  CHECK(actors::detail::timeout_ns(-1s) == 0);
  CHECK(actors::detail::timeout_ns(2ms) == 2'000'000);
}

TEST_CASE("random values differ") {
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 64; ++i)
    seen.insert(actors::detail::random_value<std::uint64_t>());
  CHECK(seen.size() == 64);
}
