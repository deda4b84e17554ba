// Queues, pipes and pool results inside event-based actors
// (actors/mailbox.hpp): subscriptions with credit, child to child and in
// the queue's own process; items in flight given back when their actor
// ends; pipe ends as messages; puts answered when there is room; pool
// results as messages.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <thread>
#include <unistd.h>
#include <numeric>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/all.hpp"
#include "subprocess.hpp"

using namespace std::chrono_literals;

namespace {

// What a consumer actor saw: how many items, whether in order (each the
// previous one + 1), and how it ended.
struct report {
  int count = 0;
  bool in_order = true;
  long sum = 0;
  int end = 0; // the errc of the end, as an int
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, report& x) {
  return f(caf::meta::type_name("report"), x.count, x.in_order, x.sum,
           x.end);
}

// Takes the items of `q` until its end, then puts what it saw into `out`.
caf::behavior counting(caf::event_based_actor* self, actors::queue<int> q,
                       actors::queue<report> out, int credit) {
  auto seen = std::make_shared<report>();
  auto last = std::make_shared<int>(-1);
  actors::subscribe(
    self, q,
    [=](int x) {
      seen->in_order = seen->in_order && x == *last + 1;
      *last = x;
      ++seen->count;
      seen->sum += x;
    },
    [=](const actors::error& e) {
      seen->end = e.code().value();
      out.put(*seen);
      self->quit();
    },
    static_cast<std::size_t>(credit));
  return {[](caf::unit_t) {}};
}

void produce(actors::queue<int> q, int n) {
  for (int i = 0; i < n; ++i)
    q.put(i);
  q.close();
}

long sum_below(int n) {
  return static_cast<long>(n) * (n - 1) / 2;
}

} // namespace

TEST_CASE("an actor in a child takes every item of a queue fed by another "
          "child, in order, then its end") {
  for (long maxsize : {0L, 100L}) {
    CAPTURE(maxsize);
    constexpr int n = 20000;
    actors::queue<int> q{maxsize};
    actors::queue<report> out{actors::unbounded};
    auto consumer = actors::spawn(counting, q, out, 16);
    actors::process producer{produce, q, n};
    producer.start();
    auto r = out.get(30s);
    CHECK(r.count == n);
    CHECK(r.in_order);
    CHECK(r.sum == sum_below(n));
    CHECK(r.end == static_cast<int>(actors::errc::closed));
    CHECK(producer.join(10s));
    CHECK(consumer.join(10s));
    CHECK(consumer.exitcode() == 0);
  }
}

TEST_CASE("a local actor subscribes to a queue of its own process, beside "
          "a thread calling get") {
  constexpr int n = 5000;
  actors::queue<int> q{actors::unbounded};
  actors::queue<report> out{actors::unbounded};
  auto consumer = actors::system().spawn(counting, q, out, 4);
  std::vector<int> by_thread;
  std::thread getter{[&] {
    try {
      for (;;)
        by_thread.push_back(q.get(10s));
    } catch (const actors::error&) {
      // closed and drained
    }
  }};
  for (int i = 0; i < n; ++i)
    q.put(i);
  q.close();
  auto r = out.get(30s);
  getter.join();
  CHECK(r.end == static_cast<int>(actors::errc::closed));
  // Every item went to exactly one of the two consumers.
  CHECK(r.count + static_cast<int>(by_thread.size()) == n);
  CHECK(r.sum + std::accumulate(by_thread.begin(), by_thread.end(), 0L)
        == sum_below(n));
}

namespace {

// Takes one item with `credit` in flight, then quits.
caf::behavior take_one(caf::event_based_actor* self, actors::queue<int> q,
                       actors::queue<int> out, int credit) {
  actors::subscribe(
    self, q,
    [=](int x) {
      out.put(x);
      self->quit();
    },
    [=](const actors::error&) { self->quit(); },
    static_cast<std::size_t>(credit));
  return {[](caf::unit_t) {}};
}

} // namespace

TEST_CASE("items in flight to an actor that ends go back to the front of "
          "the queue, in order") {
  actors::queue<int> q{actors::unbounded};
  for (int i = 0; i < 20; ++i)
    q.put(i);
  actors::queue<int> out{actors::unbounded};
  SUBCASE("an actor process") {
    auto a = actors::spawn(take_one, q, out, 10);
    CHECK(out.get(10s) == 0);
    CHECK(a.join(10s));
  }
  SUBCASE("a local actor") {
    actors::system().spawn(take_one, q, out, 10);
    CHECK(out.get(10s) == 0);
  }
  // Items 1..9 were in flight to it: back, in order, before 10..19.
  std::vector<int> rest;
  CHECK(support::eventually([&] { return q.qsize() == 19; }, 5s));
  while (auto x = q.try_get())
    rest.push_back(*x);
  std::vector<int> expected(19);
  std::iota(expected.begin(), expected.end(), 1);
  CHECK(rest == expected);
}

namespace {

// Makes a queue holding 7, hands it over, and waits to be killed.
void own_and_wait(actors::queue<actors::queue<int>> back) {
  actors::queue<int> q{actors::unbounded};
  q.put(7);
  back.put(q);
  for (;;)
    ::pause();
}

// Passes each item of `q` on to `items`, and the errc of its end to `end`.
caf::behavior passing_on(caf::event_based_actor* self, actors::queue<int> q,
                         actors::queue<int> items, actors::queue<int> end) {
  actors::subscribe(
    self, q, [=](int x) { items.put(x); },
    [=](const actors::error& e) {
      end.put(e.code().value());
      self->quit();
    });
  return {[](caf::unit_t) {}};
}

} // namespace

TEST_CASE("an actor subscribed to a queue whose owner dies ends with "
          "owner_unreachable") {
  // The queue lives in a child, which hands it over and then dies.
  actors::queue<actors::queue<int>> handover{actors::unbounded};
  actors::process owner{own_and_wait, handover};
  owner.start();
  auto q = handover.get(10s);
  actors::queue<int> items{actors::unbounded};
  actors::queue<int> end{actors::unbounded};
  auto consumer = actors::spawn(passing_on, q, items, end);
  CHECK(items.get(10s) == 7);
  owner.kill();
  CHECK(end.get(10s) == static_cast<int>(actors::errc::owner_unreachable));
  CHECK(consumer.join(10s));
  CHECK(items.qsize() == 0);
}

namespace {

// Receives the messages of a pipe end until end of pipe; reports.
caf::behavior pipe_reader(caf::event_based_actor* self,
                          actors::connection<std::string> in,
                          actors::queue<report> out) {
  auto seen = std::make_shared<report>();
  actors::subscribe(
    self, in,
    [=](std::string s) {
      seen->in_order = seen->in_order && s == std::to_string(seen->count);
      ++seen->count;
    },
    [=](const actors::error& e) {
      seen->end = e.code().value();
      out.put(*seen);
      self->quit();
    });
  return {[](caf::unit_t) {}};
}

void pipe_writer(actors::connection<std::string> end, int n) {
  for (int i = 0; i < n; ++i)
    end.send(std::to_string(i));
}

} // namespace

TEST_CASE("a pipe end's messages reach an actor as messages, then "
          "end_of_pipe") {
  auto [a, b] = actors::pipe<std::string>();
  actors::queue<report> out{actors::unbounded};
  auto reader = actors::spawn(pipe_reader, a, out);
  actors::process writer{pipe_writer, b, 3000};
  writer.start();
  a.close();
  b.close(); // the writer's process holds the last write end
  auto r = out.get(30s);
  CHECK(r.count == 3000);
  CHECK(r.in_order);
  CHECK(r.end == static_cast<int>(actors::errc::end_of_pipe));
  CHECK(writer.join(10s));
  CHECK(reader.join(10s));
}

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;

// Puts 0..n-1 into `q` one after another, each once the last was answered,
// then one more with a short timeout; reports the errc of that one (0: ok).
caf::behavior putter(caf::event_based_actor* self, actors::queue<int> q,
                     actors::queue<int> out, int n) {
  auto next = std::make_shared<int>(0);
  auto step = std::make_shared<std::function<void()>>();
  *step = [=] {
    if (*next == n) {
      actors::put(self, q, -1, 100ms)
        .then([=] { out.put(0); },
              [=](caf::error& e) {
                out.put(static_cast<int>(
                  actors::errc_of(e).value_or(actors::errc::invalid_argument)));
              });
      return;
    }
    actors::put(self, q, (*next)++).then([=] { (*step)(); },
                                        [=](caf::error& e) {
                                          out.put(-static_cast<int>(
                                            actors::errc_of(e).value_or(
                                              actors::errc::invalid_argument)));
                                        });
  };
  return {[=](go_atom) { (*step)(); }};
}

} // namespace

TEST_CASE("an actor's put into a bounded queue is answered when there is "
          "room, and fails as put does") {
  actors::queue<int> q{2};
  actors::queue<int> out{actors::unbounded};
  auto a = actors::spawn(putter, q, out, 50);
  caf::anon_send(a.handle(), go_atom::value);
  // The actor's thread never blocks: it answers while its puts wait.
  for (int i = 0; i < 50; ++i)
    CHECK(q.get(10s) == i);
  // The queue holds nothing; the 51st put fits.
  CHECK(out.get(10s) == 0);
  CHECK(q.get(1s) == -1);
  // Full: the put times out with queue_full, and puts nothing.
  q.put(1);
  q.put(2);
  caf::anon_send(a.handle(), go_atom::value);
  CHECK(out.get(10s) == static_cast<int>(actors::errc::queue_full));
  CHECK(q.qsize() == 2);
  // Closed: closed.
  q.close();
  caf::anon_send(a.handle(), go_atom::value);
  CHECK(out.get(10s) == static_cast<int>(actors::errc::closed));
  a.stop(10s);
}

namespace {

// Takes `n` items, cancels, and reports (through `out`) each item it takes,
// also those in flight at the cancel, then the end (-1 for cancelled).
caf::behavior take_then_cancel(caf::event_based_actor* self,
                               actors::queue<int> q, actors::queue<int> out,
                               int n) {
  auto taken = std::make_shared<int>(0);
  auto sub = std::make_shared<actors::subscription>();
  *sub = actors::subscribe(
    self, q,
    [=](int x) {
      out.put(x);
      if (++*taken == n)
        sub->cancel();
    },
    [=](const actors::error& e) {
      out.put(e.code() == actors::errc::cancelled ? -1 : -2);
    },
    4);
  return {[](caf::unit_t) {}};
}

// Asks to put 99 into `q` (full) and never gets room before it is killed.
caf::behavior stuck_putter(caf::event_based_actor* self, actors::queue<int> q,
                           actors::queue<int> out) {
  actors::put(self, q, 99).then([=] { out.put(99); });
  out.put(0); // asked
  return {[](caf::unit_t) {}};
}

} // namespace

TEST_CASE("a cancelled subscription takes only what was in flight, then "
          "ends with cancelled") {
  actors::queue<int> q{actors::unbounded};
  for (int i = 0; i < 100; ++i)
    q.put(i);
  actors::queue<int> out{actors::unbounded};
  auto a = actors::spawn(take_then_cancel, q, out, 5);
  // 5 items, then at most the credit (4) that was in flight at the cancel,
  // then the end (-1).
  std::vector<int> got;
  for (int x = out.get(10s); x != -1; x = out.get(10s))
    got.push_back(x);
  CHECK(got.size() >= 5);
  CHECK(got.size() <= 9);
  for (std::size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == static_cast<int>(i));
  CHECK(q.qsize() == 100 - got.size());
  CHECK(q.get(1s) == static_cast<int>(got.size())); // the rest, in order
  a.stop(10s);
}

TEST_CASE("an actor killed while its put waits for room put nothing") {
  actors::queue<int> q{1};
  q.put(1);
  actors::queue<int> out{actors::unbounded};
  auto a = actors::spawn(stuck_putter, q, out);
  CHECK(out.get(10s) == 0);
  auto putters = [&] {
    return actors::detail::queue_access::ref(q).snapshot().putters;
  };
  CHECK(support::eventually([&] { return putters() == 1; }, 5s)); // parked
  a.kill();
  CHECK(a.join(10s));
  // The queue learns of the death (the link's end), and forgets the put.
  CHECK(support::eventually([&] { return putters() == 0; }, 5s));
  // Room now: the dead actor's put must not land.
  CHECK(q.get(1s) == 1);
  CHECK_THROWS_AS(q.get(300ms), actors::error);
  CHECK(out.qsize() == 0);
}

namespace {

int square(int x) {
  if (x < 0)
    throw std::invalid_argument("negative");
  return x * x;
}

} // namespace

TEST_CASE("pool results reach an actor as messages") {
  actors::pool p{2};
  actors::queue<int> out{actors::unbounded};
  caf::scoped_actor self{actors::system()};
  auto a = actors::system().spawn([&](caf::event_based_actor* me) {
    for (int x : {3, 4, -1})
      actors::on_result(
        me, p.apply_async(square, x), [=](int v) { out.put(v); },
        [=](const actors::error& e) {
          out.put(e.code() == actors::errc::task_failed ? -1 : -2);
        });
    return caf::behavior{[](caf::unit_t) {}};
  });
  std::vector<int> got;
  for (int i = 0; i < 3; ++i)
    got.push_back(out.get(10s));
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<int>{-1, 9, 16});
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("map_async and imap results reach an actor as messages, an imap "
          "error at its position, then the end") {
  actors::pool p{2};
  actors::queue<std::string> out{actors::unbounded};
  // imap reads its input lazily: the input outlives the stream.
  const std::vector<int> inputs{1, 2, -3, 4};
  auto a = actors::system().spawn([&](caf::event_based_actor* me) {
    actors::on_result(
      me, p.map_async(square, std::vector<int>{1, 2, 3}),
      [=](const std::vector<int>& v) {
        out.put("map " + std::to_string(v.at(0)) + " " + std::to_string(v.at(1))
                + " " + std::to_string(v.at(2)));
      },
      [=](const actors::error& e) { out.put(std::string{"map error "} + e.what()); });
    actors::on_results(
      me, p.imap(square, inputs, 1),
      [=](int v) { out.put(std::to_string(v)); },
      [=](const actors::error& e) {
        out.put(e.code() == actors::errc::task_failed ? "error" : "other");
      },
      [=] { out.put("end"); });
    return caf::behavior{[](caf::unit_t) {}};
  });
  std::vector<std::string> stream;
  std::string map_line;
  for (int i = 0; i < 6; ++i) {
    auto x = out.get(10s);
    if (x.rfind("map", 0) == 0)
      map_line = x;
    else
      stream.push_back(x);
  }
  CHECK(map_line == "map 1 4 9");
  // imap keeps the input's order, the error at its place.
  std::string seen;
  for (auto& x : stream)
    seen += x + " ";
  INFO("stream: " << seen);
  CHECK(stream == std::vector<std::string>{"1", "4", "error", "16", "end"});
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}
