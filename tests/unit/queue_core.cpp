// queue/queue_core: the state of one queue, without an actor system: the
// order of items, the bound, closing, parked callers and their deadlines.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <variant>
#include <vector>

#include "queue/queue_core.hpp"

using namespace std::chrono_literals;
using actors::errc;
using actors::detail::q_outcome;
using actors::detail::queue_core;
using actors::detail::value;

namespace {

value item(int x) {
  return value::make_local(x);
}

// The outcome of an operation answered at once (fails the test otherwise).
q_outcome now(queue_core::result r) {
  auto* x = std::get_if<q_outcome>(&r);
  REQUIRE(x != nullptr);
  return std::move(*x);
}

// The serial of an operation parked (fails the test otherwise).
std::uint64_t parked(const queue_core::result& r) {
  auto* serial = std::get_if<std::uint64_t>(&r);
  REQUIRE(serial != nullptr);
  return *serial;
}

int take(q_outcome x) {
  REQUIRE(x.ok);
  return x.item.take<int>();
}

// An answer function that keeps what it is given.
struct inbox {
  std::vector<q_outcome> got;
  bool accept = true;

  queue_core::answer_fn fn() {
    return [this](q_outcome&& x) {
      got.push_back(std::move(x));
      return accept;
    };
  }
};

} // namespace

TEST_CASE("queue_core: items come out in the order they went in") {
  queue_core q{0, nullptr};
  for (int i = 0; i < 5; ++i)
    CHECK(now(q.put(item(i), false, nullptr)).ok);
  CHECK(q.snapshot().size == 5);
  CHECK(q.snapshot().maxsize == 0);
  for (int i = 0; i < 5; ++i)
    CHECK(take(now(q.get(false, nullptr))) == i);
  auto empty = now(q.get(false, nullptr));
  CHECK_FALSE(empty.ok);
  CHECK(empty.code == errc::queue_empty);
}

TEST_CASE("queue_core: a bounded queue is full at maxsize; a parked put "
          "goes in when a get makes room") {
  queue_core q{2, nullptr};
  CHECK(now(q.put(item(1), false, nullptr)).ok);
  CHECK(now(q.put(item(2), false, nullptr)).ok);
  auto full = now(q.put(item(3), false, nullptr));
  CHECK_FALSE(full.ok);
  CHECK(full.code == errc::queue_full);
  inbox putter;
  parked(q.put(item(3), true, putter.fn()));
  CHECK(q.snapshot().putters == 1);
  CHECK(putter.got.empty());
  CHECK(take(now(q.get(false, nullptr))) == 1);
  REQUIRE(putter.got.size() == 1);
  CHECK(putter.got[0].ok);
  CHECK(q.snapshot().size == 2);
  CHECK(q.snapshot().putters == 0);
  CHECK(take(now(q.get(false, nullptr))) == 2);
  CHECK(take(now(q.get(false, nullptr))) == 3);
}

TEST_CASE("queue_core: a parked get takes the next put; an item its "
          "receiver refuses goes back to the front") {
  queue_core q{0, nullptr};
  inbox gone;
  gone.accept = false;
  parked(q.get(true, gone.fn()));
  inbox getter;
  parked(q.get(true, getter.fn()));
  CHECK(q.snapshot().getters == 2);
  CHECK(now(q.put(item(7), false, nullptr)).ok);
  // The first getter was handed the item and refused it: the second has it.
  REQUIRE(gone.got.size() == 1);
  REQUIRE(getter.got.size() == 1);
  CHECK(take(std::move(getter.got[0])) == 7);
  CHECK(q.snapshot().size == 0);
  // requeue: an item handed out and never taken goes back to the front.
  CHECK(now(q.put(item(8), false, nullptr)).ok);
  q.requeue(item(6));
  CHECK(take(now(q.get(false, nullptr))) == 6);
  CHECK(take(now(q.get(false, nullptr))) == 8);
}

TEST_CASE("queue_core: once closed, puts fail, gets drain then fail, and "
          "every parked caller is answered") {
  queue_core q{1, nullptr};
  int closes = 0;
  q.on_close([&] { ++closes; });
  CHECK(now(q.put(item(1), false, nullptr)).ok);
  inbox putter;
  parked(q.put(item(2), true, putter.fn()));
  q.close();
  q.close(); // once
  CHECK(closes == 1);
  REQUIRE(putter.got.size() == 1);
  CHECK_FALSE(putter.got[0].ok);
  CHECK(putter.got[0].code == errc::closed);
  auto put = now(q.put(item(3), false, nullptr));
  CHECK_FALSE(put.ok);
  CHECK(put.code == errc::closed);
  CHECK(take(now(q.get(false, nullptr))) == 1);
  auto drained = now(q.get(true, nullptr));
  CHECK_FALSE(drained.ok);
  CHECK(drained.code == errc::closed);
  // A closed queue is ready for poll: get would not block.
  CHECK(now(q.poll(true, nullptr)).flag);
}

TEST_CASE("queue_core: closing wakes parked getters and pollers") {
  queue_core q{0, nullptr};
  inbox getter;
  inbox poller;
  parked(q.get(true, getter.fn()));
  parked(q.poll(true, poller.fn()));
  CHECK_FALSE(now(q.poll(false, nullptr)).flag);
  q.close();
  REQUIRE(getter.got.size() == 1);
  CHECK(getter.got[0].code == errc::closed);
  REQUIRE(poller.got.size() == 1);
  CHECK(poller.got[0].flag);
}

TEST_CASE("queue_core: buffered puts go in even on a closed queue, and say "
          "it was closed") {
  queue_core q{0, nullptr};
  std::vector<value> batch;
  batch.push_back(item(1));
  batch.push_back(item(2));
  CHECK(q.put_buffered(batch));
  CHECK(batch.empty());
  q.close();
  batch.push_back(item(3));
  CHECK_FALSE(q.put_buffered(batch));
  CHECK(take(now(q.get(false, nullptr))) == 1);
  CHECK(take(now(q.get(false, nullptr))) == 2);
  CHECK(take(now(q.get(false, nullptr))) == 3);
  CHECK(now(q.get(false, nullptr)).code == errc::closed);
}

TEST_CASE("queue_core: expire answers a parked caller with its line's "
          "timeout; cancel forgets it") {
  queue_core q{1, nullptr};
  inbox getter;
  auto serial = parked(q.get(true, getter.fn()));
  q.expire(serial);
  REQUIRE(getter.got.size() == 1);
  CHECK(getter.got[0].code == errc::queue_empty);
  q.expire(serial); // answered once
  CHECK(getter.got.size() == 1);
  CHECK(now(q.put(item(1), false, nullptr)).ok);
  inbox putter;
  serial = parked(q.put(item(2), true, putter.fn()));
  q.cancel(serial);
  CHECK(q.snapshot().putters == 0);
  q.expire(serial);
  CHECK(putter.got.empty());
  CHECK(take(now(q.get(false, nullptr))) == 1);
  CHECK(now(q.get(false, nullptr)).code == errc::queue_empty);
}

TEST_CASE("queue_core: join waits for a task_done per item put") {
  queue_core q{0, nullptr};
  CHECK(now(q.join(false, nullptr)).ok);
  CHECK(now(q.put(item(1), false, nullptr)).ok);
  CHECK(now(q.join(false, nullptr)).code == errc::timeout);
  inbox joiner;
  parked(q.join(true, joiner.fn()));
  take(now(q.get(false, nullptr)));
  CHECK(joiner.got.empty());
  CHECK(q.task_done().ok);
  REQUIRE(joiner.got.size() == 1);
  CHECK(joiner.got[0].ok);
  CHECK(q.task_done().code == errc::too_many_task_done);
}

TEST_CASE("queue_core: the blocking forms with a zero or negative timeout "
          "do not wait") {
  queue_core q{1, nullptr};
  for (auto timeout : {queue_core::duration::zero(),
                       std::chrono::duration_cast<queue_core::duration>(-1s)}) {
    auto start = std::chrono::steady_clock::now();
    CHECK(q.get_blocking(timeout).code == errc::queue_empty);
    CHECK_FALSE(q.poll_blocking(timeout).flag);
    CHECK(q.put_blocking(item(1), timeout).ok);
    CHECK(q.put_blocking(item(2), timeout).code == errc::queue_full);
    CHECK(q.join_blocking(timeout).code == errc::timeout);
    CHECK(take(q.get_blocking(timeout)) == 1);
    CHECK(q.task_done().ok);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(q.snapshot().getters == 0);
    CHECK(q.snapshot().putters == 0);
  }
}

TEST_CASE("queue_core: a blocking get waits at most its timeout, and no "
          "longer than the put that answers it") {
  queue_core q{0, nullptr};
  auto start = std::chrono::steady_clock::now();
  auto x = q.get_blocking(queue_core::duration{30ms});
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(x.code == errc::queue_empty);
  CHECK(took >= 30ms);
  CHECK(took < 5s);
  CHECK(q.snapshot().getters == 0); // not left parked
  std::thread putter{[&] {
    std::this_thread::sleep_for(10ms);
    q.put(item(5), false, nullptr);
  }};
  auto got = q.get_blocking(queue_core::duration{10s});
  putter.join();
  CHECK(take(std::move(got)) == 5);
  // And a blocking get with no timeout, answered by a close.
  std::thread closer{[&] {
    std::this_thread::sleep_for(10ms);
    q.close();
  }};
  CHECK(q.get_blocking(std::nullopt).code == errc::closed);
  closer.join();
}
