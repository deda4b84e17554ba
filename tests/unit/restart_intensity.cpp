// process/supervision.hpp: restart intensity, with explicit time points.

#include <doctest/doctest.h>

#include <chrono>

#include "process/supervision.hpp"

using namespace std::chrono_literals;
using actors::detail::restart_intensity;

namespace {

const restart_intensity::clock::time_point t0{std::chrono::hours{1}};

} // namespace

TEST_CASE("restart_intensity: max_restarts within the period, no more") {
  restart_intensity r{3, 5s};
  CHECK(r.allow(t0));
  CHECK(r.allow(t0 + 1s));
  CHECK(r.allow(t0 + 2s));
  CHECK_FALSE(r.allow(t0 + 3s));
}

TEST_CASE("restart_intensity: restarts older than the period are forgotten") {
  restart_intensity r{2, 5s};
  CHECK(r.allow(t0));
  CHECK(r.allow(t0 + 1s));
  // t0 is still within 5 s of t0 + 5s (the bound is inclusive) ...
  CHECK_FALSE(r.allow(t0 + 5s));
  // ... and everything up to t0 + 5s is older than 5 s at t0 + 11s.
  CHECK(r.allow(t0 + 11s));
  CHECK(r.allow(t0 + 12s));
  CHECK_FALSE(r.allow(t0 + 13s));
}

TEST_CASE("restart_intensity: slow deaths never exhaust it") {
  restart_intensity r{1, 1s};
  for (int i = 0; i < 100; ++i)
    CHECK(r.allow(t0 + i * 2s));
}

TEST_CASE("restart_intensity: zero restarts allows none") {
  restart_intensity r{0, 1s};
  CHECK_FALSE(r.allow(t0));
  CHECK_FALSE(r.allow(t0 + 1h));
}
