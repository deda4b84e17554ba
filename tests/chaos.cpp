// Chaos: processes SIGKILLed at random points while they work (pool workers
// during a map and an imap_unordered, queue producers and consumers, either
// end of a pipe, the holder of a lock, the owner of it all), and what the
// survivors must still see: every result exactly once, no queued item lost
// or duplicated, a clean end of pipe, a recovered lock, no orphan.
//
// Each case is bounded in time and in kills. Its randomness comes from one
// seed, printed at the start; ACTORS_CHAOS_SEED=N replays a run. Sleeps only
// pace the kills; every wait for an outcome is an event or a bounded poll.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <map>
#include <optional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/proc_stats.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

using clock_type = std::chrono::steady_clock;

long long ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           clock_type::now() - t0)
    .count();
}

// The seed of this run, printed by every case (doctest MESSAGE) and attached
// to its failures (INFO).
std::uint64_t run_seed() {
  static const std::uint64_t seed = support::chaos_seed();
  return seed;
}

#define CHAOS_SEED(rng, salt)                                                 \
  std::mt19937_64 rng{run_seed() ^ (salt)};                                   \
  MESSAGE("seed " << run_seed() << " (replay: ACTORS_CHAOS_SEED="             \
                  << run_seed() << ")");                                      \
  INFO("seed " << run_seed())

// -- pool ---------------------------------------------------------------------

// A task of about 15 µs whose result identifies its input.
std::pair<long long, long long> spin_square(long long x) {
  auto until = clock_type::now() + 15us;
  while (clock_type::now() < until) {
  }
  return {x, x * x + 1};
}

std::pair<long long, long long> serial_square(long long x) {
  return {x, x * x + 1};
}

// SIGKILLs a random child of this process that is not in `spared` (the fork
// server, anything that existed before the pool), every `period`, until
// `max_kills` or `stop()`.
class random_killer {
public:
  random_killer(std::uint64_t seed, std::set<pid_t> spared, int max_kills,
                std::chrono::milliseconds period)
    : rng_(seed), spared_(std::move(spared)), max_kills_(max_kills),
      period_(period), thread_([this] { run(); }) {
  }

  ~random_killer() {
    stop();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopped_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable())
      thread_.join();
  }

  int kills() const {
    return kills_;
  }

private:
  void run() {
    std::unique_lock<std::mutex> guard{mtx_};
    while (kills_ < max_kills_) {
      // Pacing only: the kill times are what is random here.
      if (cv_.wait_for(guard, period_, [this] { return stopped_; }))
        return;
      std::vector<pid_t> workers;
      for (auto pid : support::list_children())
        if (spared_.count(pid) == 0 && support::process_running(pid))
          workers.push_back(pid);
      if (workers.empty())
        continue;
      auto victim = workers[rng_() % workers.size()];
      if (::kill(victim, SIGKILL) == 0)
        ++kills_;
    }
  }

  std::mt19937_64 rng_;
  std::set<pid_t> spared_;
  int max_kills_;
  std::chrono::milliseconds period_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::atomic<int> kills_{0};
  std::thread thread_;
};

std::set<pid_t> children_now() {
  auto v = support::list_children();
  return {v.begin(), v.end()};
}

// The inputs 0 .. n-1, and what serial_square makes of them.
std::vector<long long> inputs(long long n) {
  std::vector<long long> xs(static_cast<size_t>(n));
  for (long long i = 0; i < n; ++i)
    xs[static_cast<size_t>(i)] = i;
  return xs;
}

std::vector<std::pair<long long, long long>>
expected_squares(const std::vector<long long>& xs) {
  std::vector<std::pair<long long, long long>> expected;
  expected.reserve(xs.size());
  for (auto x : xs)
    expected.push_back(serial_square(x));
  return expected;
}

// Brings the runtime's fixed parts up (actor system, listener, reaper, the
// fork server) with a first pool, so that a test's baseline counts them.
void warm_up() {
  actors::pool first{1};
  CHECK(first.apply(serial_square, 2LL).second == 5);
  first.close();
  first.join();
}

// Whether no child is left but those of `spared` (the fork server, unless a
// busy machine made it miss its 2 s answer and it was ended: then none).
bool only_spared_left(const std::set<pid_t>& spared) {
  auto now = children_now();
  return std::includes(spared.begin(), spared.end(), now.begin(), now.end());
}

} // namespace

TEST_CASE("pool workers SIGKILLed during a 100k map and an imap_unordered") {
  CHAOS_SEED(rng, 0x9001);
  constexpr long long n = 100'000;
  constexpr int max_kills = 10;
  auto xs = inputs(n);
  auto expected = expected_squares(xs);

  // The runtime's fixed costs (actor system, listener, reaper) come with
  // the first pool: counted before the baseline.
  warm_up();
  auto fds_before = support::count_fds();
  auto spared = children_now(); // the fork server
  int total_kills = 0;
  {
    actors::pool_options opts;
    // A chunk may be lost with its worker up to max_kills times; the budget
    // of restarts must outlast every kill of both phases.
    opts.retries = max_kills;
    opts.max_restarts = 4 * max_kills;
    actors::pool p{4, opts};

    auto t0 = clock_type::now();
    auto r = p.map_async(spin_square, xs, 500);
    int kills_during = 0;
    {
      random_killer killer{rng(), spared, max_kills, 50ms};
      REQUIRE(r.wait(50s));
      kills_during = killer.kills();
    }
    auto got = r.get(0s);
    MESSAGE("map: " << n << " tasks in " << ms_since(t0) << " ms, "
                    << kills_during << " workers SIGKILLed meanwhile");
    CHECK(kills_during > 0);
    total_kills += kills_during;
    REQUIRE(got.size() == expected.size());
    CHECK(got == expected);

    t0 = clock_type::now();
    std::vector<std::pair<long long, long long>> unordered;
    unordered.reserve(n);
    {
      random_killer killer{rng(), spared, max_kills, 50ms};
      auto inputs = actors::range(n);
      auto stream = p.imap_unordered(spin_square, inputs, 100);
      while (auto x = stream.next(30s))
        unordered.push_back(*x);
      killer.stop();
      kills_during = killer.kills();
    }
    MESSAGE("imap_unordered: " << unordered.size() << " results in "
                               << ms_since(t0) << " ms, " << kills_during
                               << " workers SIGKILLed meanwhile");
    CHECK(kills_during > 0);
    total_kills += kills_during;
    std::sort(unordered.begin(), unordered.end());
    REQUIRE(unordered.size() == expected.size());
    CHECK(unordered == expected); // each input once, each result right

    // Still usable, with every worker slot filled again.
    std::vector<long long> few{1, 2, 3, 4, 5, 6, 7, 8};
    auto again = p.map(spin_square, few, 1);
    REQUIRE(again.size() == few.size());
    for (size_t i = 0; i < few.size(); ++i)
      CHECK(again[i] == serial_square(few[i]));
    p.close();
    p.join();
  }
  MESSAGE("pool survived " << total_kills << " kills, " << 2 * n
                           << " results checked");
  // No zombie, no stray worker, no leaked descriptor.
  CHECK(support::eventually([&] { return only_spared_left(spared); }, 5s));
  for (auto pid : support::list_children())
    CHECK(support::process_running(pid));
  CHECK(support::eventually(
    [&] { return support::count_fds() <= fds_before; }, 5s));
  MESSAGE("descriptors: " << fds_before << " before the pool, "
                          << support::count_fds() << " after");
}

TEST_CASE("workers SIGKILLed repeatedly during a map of default chunks, "
          "retries=2: every result arrives") {
  // Each chunk runs long (thousands of inputs), so kills fall inside chunks
  // and a chunk is often hit more than once. Only the input running
  // when its worker died is charged, so the map still succeeds; charging
  // the whole chunk failed it. (Not retries=1: a replacement worker killed
  // while it reruns the very input charged before charges it twice, which
  // a loaded machine, starting workers slowly, made happen once in a few
  // runs.)
  CHAOS_SEED(rng, 0x9012);
  constexpr long long n = 100'000;
  constexpr int max_kills = 10;
  auto xs = inputs(n);
  auto expected = expected_squares(xs);
  warm_up();
  auto spared = children_now(); // the fork server
  actors::pool_options opts;
  opts.retries = 2;
  opts.max_restarts = 4 * max_kills; // the kills are not a crash loop
  actors::pool p{4, opts};
  auto t0 = clock_type::now();
  auto r = p.map_async(spin_square, xs); // chunks of n / 16
  int kills = 0;
  {
    random_killer killer{rng(), spared, max_kills, 60ms};
    REQUIRE(r.wait(60s));
    kills = killer.kills();
  }
  std::vector<std::pair<long long, long long>> got;
  auto code = code_of([&] { got = r.get(0s); });
  MESSAGE("map: " << n << " tasks in chunks of " << n / 16 << ", "
                  << ms_since(t0) << " ms, " << kills
                  << " workers SIGKILLed meanwhile");
  CHECK(kills > 0);
  CHECK(code == actors::errc{});
  REQUIRE(got.size() == expected.size());
  CHECK(got == expected);
  p.close();
  p.join();
  CHECK(support::eventually([&] { return only_spared_left(spared); }, 5s));
}

// -- queue --------------------------------------------------------------------

namespace {

constexpr int queue_slots = 40;
constexpr int slot_capacity = 32768;

// What each producer or consumer process did, written to shared memory the
// moment it happened (a report through a queue would be a round trip, a
// wide window for a kill to fall between the event and its report).
struct queue_log {
  struct slot {
    std::atomic<int> count;
    int items[slot_capacity];
  } slots[queue_slots];
};

void log_item(queue_log::slot& s, int x) {
  auto n = s.count.load(std::memory_order_relaxed);
  s.items[n] = x;
  s.count.store(n + 1, std::memory_order_release);
}

// Puts [first, first + count), logging each put that returned.
void chaos_producer(actors::queue<int> q, std::string log, int slot,
                    int first, int count) {
  support::shared_file<queue_log> shared{log};
  for (int i = first; i < first + count; ++i) {
    q.put(i, 30s);
    log_item(shared->slots[slot], i);
  }
}

// Gets until the sentinel -1, logging each item got.
void chaos_consumer(actors::queue<int> q, std::string log, int slot) {
  support::shared_file<queue_log> shared{log};
  for (;;) {
    auto x = q.get(30s);
    if (x < 0)
      return;
    log_item(shared->slots[slot], x);
  }
}

// The same as an actor subscribed to the queue (actors/mailbox.hpp): logs
// each item its callback takes, quits at the sentinel.
caf::behavior chaos_actor_consumer(caf::event_based_actor* self,
                                   actors::queue<int> q, std::string log,
                                   int slot) {
  auto shared = std::make_shared<support::shared_file<queue_log>>(log);
  actors::subscribe(
    self, q,
    [=](int x) {
      if (x < 0)
        self->quit();
      else
        log_item((*shared)->slots[slot], x);
    },
    [=](const actors::error&) { self->quit(); }, 8);
  return {[](caf::unit_t) {}};
}

// A member's process: one calling put or get, or an actor process.
struct chaos_member_proc {
  std::optional<actors::process> proc;
  std::optional<actors::actor_process<caf::actor>> actor;
  void kill() {
    proc ? proc->kill() : actor->kill();
  }
  bool join(std::chrono::seconds limit) {
    return proc ? proc->join(limit) : actor->join(limit);
  }
  std::optional<int> exitcode() const {
    return proc ? proc->exitcode() : actor->exitcode();
  }
};

} // namespace

namespace {

void queue_chaos(bool strict, bool actor_consumers = false) {
  CHAOS_SEED(rng, 0x9002);
  constexpr int per_producer = 1500;
  constexpr int max_kills = 10;
  support::shared_file<queue_log> log;
  actors::queue<int> q{16};

  struct member {
    chaos_member_proc proc;
    bool producer;
    int slot;
    int first;
  };
  std::vector<member> live;
  std::vector<member> dead;
  std::vector<std::pair<int, int>> attempted; // producer ranges [first, last)
  int next_slot = 0;
  int next_range = 0;
  auto start = [&](bool producer) {
    auto slot = next_slot++;
    REQUIRE(slot < queue_slots);
    if (producer) {
      auto first = next_range++ * per_producer;
      attempted.emplace_back(first, first + per_producer);
      chaos_member_proc p;
      p.proc.emplace(chaos_producer, q, log.path(), slot, first,
                     per_producer);
      p.proc->start();
      live.push_back(member{std::move(p), true, slot, first});
    } else if (actor_consumers) {
      chaos_member_proc p;
      p.actor.emplace(actors::spawn(chaos_actor_consumer, q, log.path(),
                                    slot));
      live.push_back(member{std::move(p), false, slot, -1});
    } else {
      chaos_member_proc p;
      p.proc.emplace(chaos_consumer, q, log.path(), slot);
      p.proc->start();
      live.push_back(member{std::move(p), false, slot, -1});
    }
  };
  for (int i = 0; i < 4; ++i)
    start(true);
  for (int i = 0; i < 4; ++i)
    start(false);

  auto t0 = clock_type::now();
  int producer_kills = 0, consumer_kills = 0;
  for (int k = 0; k < max_kills; ++k) {
    std::this_thread::sleep_for(
      std::chrono::milliseconds{25 + rng() % 50}); // pacing only
    auto i = rng() % live.size();
    auto victim = std::move(live[i]);
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    victim.proc.kill();
    REQUIRE(victim.proc.join(10s));
    (victim.producer ? producer_kills : consumer_kills)++;
    bool producer = victim.producer;
    dead.push_back(std::move(victim));
    start(producer); // the same role again, on a fresh range
  }
  // The producers finish, then each consumer takes one sentinel (behind
  // every item: items given back by a dead consumer go to the front).
  int consumers = 0;
  for (auto& m : live) {
    if (m.producer) {
      REQUIRE(m.proc.join(60s));
      CHECK(m.proc.exitcode() == 0);
    } else {
      ++consumers;
    }
  }
  for (int i = 0; i < consumers; ++i)
    q.put(-1, 10s);
  for (auto& m : live)
    if (!m.producer) {
      REQUIRE(m.proc.join(60s));
      CHECK(m.proc.exitcode() == 0);
    }

  auto read_slot = [&](int slot) {
    auto& s = log->slots[slot];
    auto count = s.count.load(std::memory_order_acquire);
    return std::vector<int>(s.items, s.items + count);
  };
  std::multiset<int> put_returned;
  std::vector<int> consumed;
  std::set<int> last_of_killed; // the last item each killed consumer logged
  for (auto* group : {&live, &dead})
    for (auto& m : *group) {
      auto items = read_slot(m.slot);
      if (m.producer)
        put_returned.insert(items.begin(), items.end());
      else
        consumed.insert(consumed.end(), items.begin(), items.end());
      if (group == &dead && !m.producer && !items.empty())
        last_of_killed.insert(items.back());
    }
  // What is still in the queue. An item a killed consumer had been handed
  // but not acknowledged goes back when the queue learns of the death
  // (milliseconds after the kill): wait for the books to balance, bounded.
  std::vector<int> drained;
  std::vector<int> missing;
  auto balance = [&] {
    while (auto x = q.try_get())
      drained.push_back(*x);
    std::multiset<int> seen(consumed.begin(), consumed.end());
    seen.insert(drained.begin(), drained.end());
    missing.clear();
    for (auto x : put_returned)
      if (seen.count(x) == 0)
        missing.push_back(x);
    return missing.empty();
  };
  support::eventually(balance, 2s);
  MESSAGE("queue: " << put_returned.size() << " puts returned, "
                    << consumed.size() << " items consumed, "
                    << drained.size() << " left in the queue, "
                    << producer_kills << " producers and " << consumer_kills
                    << " consumers SIGKILLed, in " << ms_since(t0) << " ms");

  // Exactly once: no item twice among what consumers got and what is left.
  std::multiset<int> all(consumed.begin(), consumed.end());
  all.insert(drained.begin(), drained.end());
  // The one duplicate the queue documents ("it may then be seen twice"):
  // the item a consumer got just before it was killed, whose acknowledgement
  // was sent (get had returned) but had not left the process yet; the
  // queue gives it back, and another consumer gets it again.
  int duplicates = 0, window_duplicates = 0;
  for (auto i = all.begin(); i != all.end(); i = all.upper_bound(*i)) {
    auto n = all.count(*i);
    if (n == 1)
      continue;
    INFO("item " << *i << " seen " << n << " times");
    if (n == 2 && last_of_killed.count(*i) > 0) {
      ++window_duplicates;
      if (strict)
        CHECK(n == 1);
    } else {
      ++duplicates;
      CHECK(n == 1);
    }
  }
  MESSAGE(window_duplicates << " item(s) seen twice: each the last item of "
                               "a consumer killed right after its get");
  CHECK(duplicates == 0);
  CHECK(window_duplicates <= consumer_kills);
  // Nothing that was never put.
  for (auto x : all) {
    bool from_a_producer = std::any_of(
      attempted.begin(), attempted.end(),
      [x](auto& r) { return x >= r.first && x < r.second; });
    if (!from_a_producer)
      CHECK(x < 0);
  }
  // Every put that returned is consumed or still queued. The one exception
  // the test cannot tell apart from a loss: a consumer killed after its get
  // returned and before its next instruction logged the item (a window of
  // microseconds), at most once per consumer killed.
  if (!missing.empty())
    MESSAGE(missing.size() << " item(s) got by a consumer killed before it "
                              "could log them, first "
                           << missing.front());
  CHECK(missing.size() <= static_cast<size_t>(consumer_kills));
  CHECK(q.empty());
}

} // namespace

TEST_CASE("queue producers and consumers SIGKILLed: exact multiset") {
  queue_chaos(false);
}

// get returns only once the queue has its ack: an item a get returned is
// never handed out again, even if its consumer dies right after.
TEST_CASE("queue: no item seen twice even when its consumer is killed right after get") {
  queue_chaos(true);
}

// An actor's subscription tells the queue an item is taken before its
// callback runs: an item in flight to a killed actor goes back, one its
// callback saw never does.
TEST_CASE("queue: actor subscribers SIGKILLed mid-stream: exact multiset, "
          "nothing twice") {
  queue_chaos(true, true);
}

// -- pipe ---------------------------------------------------------------------

namespace {

// The i-th message of a sender: its index and a body of varying length.
std::string pipe_message(int i) {
  auto text = std::to_string(i) + ":";
  text.append(static_cast<size_t>((i * 131) % 3000),
              static_cast<char>('a' + i % 26));
  return text;
}

enum pipe_exit : int {
  ended_cleanly = 0,   // end_of_pipe (receiver) or broken_pipe (sender)
  timed_out = 3,       // the survivor waited in vain: a hang
  out_of_order = 4,    // a message not the next one sent, or damaged
  wrong_error = 5,     // another error than the expected one
  never_broken = 6,    // a sender whose sends never failed
};

// Sends messages until the pipe breaks; bounded by 20 s.
int send_until_broken(const actors::connection<std::string>& out, int* sent) {
  auto deadline = clock_type::now() + 20s;
  *sent = 0;
  while (clock_type::now() < deadline) {
    try {
      out.send(pipe_message(*sent));
      ++*sent;
    } catch (const actors::error& e) {
      return e.code() == actors::errc::broken_pipe ? ended_cleanly
                                                   : wrong_error;
    }
  }
  return never_broken;
}

// Receives until the end of the pipe, checking each message is the next one
// sent (so what arrived is a prefix of what was sent, intact).
int receive_until_end(const actors::connection<std::string>& in,
                      int* received) {
  *received = 0;
  for (;;) {
    std::string x;
    try {
      x = in.recv(10s);
    } catch (const actors::error& e) {
      if (e.code() == actors::errc::end_of_pipe)
        return ended_cleanly;
      return e.code() == actors::errc::timeout ? timed_out : wrong_error;
    }
    if (x != pipe_message(*received))
      return out_of_order;
    ++*received;
  }
}

void pipe_sender(actors::connection<std::string> out) {
  int sent = 0;
  std::exit(send_until_broken(out, &sent));
}

void pipe_receiver(actors::connection<std::string> in,
                   actors::queue<int> count) {
  int received = 0;
  auto rc = receive_until_end(in, &received);
  count.put(received);
  std::exit(rc);
}

} // namespace

TEST_CASE("either end of a pipe SIGKILLed at a random point") {
  CHAOS_SEED(rng, 0x9003);
  constexpr int rounds = 12;
  const char* names[] = {"child to child, sender killed",
                         "child to child, receiver killed",
                         "child to owner, sender killed",
                         "owner to child, receiver killed"};
  std::map<int, int> per_kind;
  long long messages = 0;
  for (int round = 0; round < rounds; ++round) {
    auto kind = static_cast<int>(rng() % 4);
    auto delay = std::chrono::milliseconds{rng() % 120};
    INFO("round " << round << ": " << names[kind] << " after "
                  << delay.count() << " ms");
    ++per_kind[kind];
    auto [reader, writer] = actors::pipe<std::string>(false);
    actors::queue<int> count{actors::unbounded};
    auto t0 = clock_type::now();
    if (kind == 0 || kind == 1) {
      actors::process sender{pipe_sender, writer};
      actors::process receiver{pipe_receiver, reader, count};
      sender.start();
      receiver.start();
      writer.close(); // the children hold the ends now
      reader.close();
      std::this_thread::sleep_for(delay); // the random point (pacing)
      auto& victim = kind == 0 ? sender : receiver;
      auto& survivor = kind == 0 ? receiver : sender;
      victim.kill();
      REQUIRE(victim.join(10s));
      REQUIRE(survivor.join(30s));
      CHECK(survivor.exitcode() == ended_cleanly);
      if (kind == 0) {
        auto n = count.get(10s);
        messages += n;
        INFO("received " << n);
      }
    } else if (kind == 2) {
      actors::process sender{pipe_sender, writer};
      sender.start();
      writer.close();
      std::this_thread::sleep_for(delay);
      sender.kill();
      int received = 0;
      CHECK(receive_until_end(reader, &received) == ended_cleanly);
      messages += received;
      REQUIRE(sender.join(10s));
    } else {
      actors::process receiver{pipe_receiver, reader, count};
      receiver.start();
      reader.close();
      std::thread killer{[&] {
        std::this_thread::sleep_for(delay);
        receiver.kill();
      }};
      int sent = 0;
      CHECK(send_until_broken(writer, &sent) == ended_cleanly);
      killer.join();
      messages += sent;
      REQUIRE(receiver.join(10s));
    }
    CHECK(ms_since(t0) < 15000);
  }
  MESSAGE("pipe: " << rounds << " ends SIGKILLed (" << per_kind[0] << ", "
                   << per_kind[1] << ", " << per_kind[2] << ", "
                   << per_kind[3] << " of the four kinds), " << messages
                   << " messages checked in order");
}

// -- lock ---------------------------------------------------------------------

namespace {

struct lock_shared {
  std::atomic<int> holder;       // the pid inside the section, or 0
  std::atomic<int> stop;
  std::atomic<int> violations;   // two inside at once
  std::atomic<int> died_reports; // acquisitions told previous_owner_died
  std::atomic<int> timeouts;     // acquisitions that waited 10 s in vain
  std::atomic<long> sections;    // sections completed
  long counter;                  // incremented under the lock, not atomically
  std::atomic<int> killed_count;
  std::atomic<int> killed[64];   // pids killed by the test, before the kill
};

bool was_killed(lock_shared& s, int pid) {
  auto n = s.killed_count.load();
  for (int i = 0; i < n; ++i)
    if (s.killed[i].load() == pid)
      return true;
  return false;
}

void lock_worker(actors::lock l, std::string path) {
  support::shared_file<lock_shared> shared{path};
  auto& s = *shared;
  int me = ::getpid();
  while (!s.stop.load()) {
    auto got = l.acquire(10s);
    if (got == actors::lock::acquired::no) {
      ++s.timeouts;
      continue;
    }
    auto dead = got == actors::lock::acquired::previous_owner_died;
    if (dead)
      ++s.died_reports;
    // The previous holder left the section, or was killed inside it.
    auto previous = s.holder.exchange(me);
    if (previous != 0 && !(dead && was_killed(s, previous)))
      ++s.violations;
    // A read-modify-write that a second holder would tear.
    auto c = s.counter;
    auto until = clock_type::now() + 300us;
    while (clock_type::now() < until) {
    }
    s.counter = c + 1;
    ++s.sections;
    int expected = me;
    if (!s.holder.compare_exchange_strong(expected, 0))
      ++s.violations;
    l.release();
  }
}

} // namespace

TEST_CASE("a lock holder SIGKILLed repeatedly under contention") {
  CHAOS_SEED(rng, 0x9004);
  constexpr int max_kills = 10;
  support::shared_file<lock_shared> shared;
  auto& s = *shared;
  auto l = actors::make_lock();
  std::vector<actors::process> workers;
  auto start = [&] {
    workers.emplace_back(lock_worker, l, shared.path());
    workers.back().start();
  };
  for (int i = 0; i < 4; ++i)
    start();

  auto t0 = clock_type::now();
  int holder_kills = 0;
  long long slowest_recovery_ms = 0;
  bool caught = true;
  for (int attempt = 0; holder_kills < max_kills && attempt < 1000;
       ++attempt) {
    // Pacing only: a random pause after a kill, a short one after a miss.
    std::this_thread::sleep_for(caught ? std::chrono::milliseconds{
                                  10 + rng() % 40}
                                       : 1ms);
    caught = false;
    auto pid = s.holder.load();
    if (pid == 0)
      continue;
    // Stopped, a holder cannot leave the section: if it is still the one
    // inside once stopped, it holds the lock when it dies.
    ::kill(pid, SIGSTOP);
    if (!support::eventually(
          [&] { return support::process_state(pid) == 'T'; }, 2s))
      continue; // it ended meanwhile
    if (s.holder.load() != pid) {
      ::kill(pid, SIGCONT);
      continue;
    }
    auto reports = s.died_reports.load();
    s.killed[s.killed_count.load()].store(pid);
    ++s.killed_count;
    auto killed_at = clock_type::now();
    ::kill(pid, SIGKILL);
    ++holder_kills;
    caught = true;
    // The lock is recovered: the next acquirer is told the holder died.
    INFO("kill " << holder_kills << " of pid " << pid);
    REQUIRE(support::eventually(
      [&] { return s.died_reports.load() > reports; }, 5s));
    slowest_recovery_ms = std::max(slowest_recovery_ms, ms_since(killed_at));
    for (auto i = workers.begin(); i != workers.end(); ++i)
      if (i->pid() == pid) {
        REQUIRE(i->join(10s));
        CHECK(i->exitcode() == -SIGKILL);
        workers.erase(i);
        break;
      }
    start(); // contention stays at four
  }
  s.stop = 1;
  for (auto& w : workers) {
    REQUIRE(w.join(30s));
    CHECK(w.exitcode() == 0);
  }
  MESSAGE("lock: " << holder_kills << " holders SIGKILLed inside the section, "
                   << s.died_reports.load() << " recoveries reported, "
                   << s.sections.load() << " sections, slowest recovery "
                   << slowest_recovery_ms << " ms, in " << ms_since(t0)
                   << " ms");
  CHECK(holder_kills == max_kills);
  CHECK(s.violations.load() == 0);
  CHECK(s.timeouts.load() == 0);
  // Each death reported once, and only deaths (a killed holder may have
  // been past its release when the next one was granted).
  CHECK(s.died_reports.load() == holder_kills);
  // No increment torn: each killed holder may have counted its section or not.
  CHECK(s.counter >= s.sections.load());
  CHECK(s.counter <= s.sections.load() + holder_kills);
  // The lock is free and whole.
  CHECK(l.acquire(5s) == actors::lock::acquired::yes);
  l.release();
}

// -- the owner killed ---------------------------------------------------------

namespace {

long long spin_ms(long long x) {
  auto until = clock_type::now() + 1ms;
  while (clock_type::now() < until) {
  }
  return x;
}

pid_t own_pid(int) {
  return ::getpid();
}

void produce_forever(actors::queue<int> q) {
  for (int i = 0;; ++i)
    q.put(i);
}

void consume_forever(actors::queue<int> q) {
  for (;;)
    q.get();
}

void send_forever(actors::connection<std::string> out) {
  for (int i = 0;; ++i)
    out.send(pipe_message(i));
}

void recv_forever(actors::connection<std::string> in) {
  for (;;)
    in.recv();
}

void lock_forever(actors::lock l) {
  for (;;) {
    std::lock_guard<actors::lock> guard{l};
  }
}

void print_children() {
  for (auto pid : support::list_children())
    std::printf("%d ", static_cast<int>(pid));
  std::printf("\n");
  std::fflush(stdout);
}

// An owner busy with pool, queue, pipe or lock traffic between its
// children; prints all its children's pids, then waits to be killed.
int busy_owner(int argc, char** argv) {
  std::string what = argc > 0 ? argv[0] : "";
  std::vector<actors::process> procs;
  std::optional<actors::pool> pool;
  std::optional<actors::async_result<std::vector<long long>>> map;
  if (what == "pool") {
    pool.emplace(4);
    // Every worker up and serving before the map.
    pool->map(own_pid, std::vector<int>(64, 0), 1);
    std::vector<long long> xs(100'000);
    map = pool->map_async(spin_ms, xs, 1);
  } else if (what == "queue") {
    actors::queue<int> q{16};
    for (int i = 0; i < 2; ++i) {
      procs.emplace_back(produce_forever, q);
      procs.emplace_back(consume_forever, q);
    }
    for (auto& p : procs)
      p.start();
  } else if (what == "pipe") {
    auto [reader, writer] = actors::pipe<std::string>(false);
    procs.emplace_back(send_forever, writer);
    procs.emplace_back(recv_forever, reader);
    for (auto& p : procs)
      p.start();
  } else if (what == "lock") {
    auto l = actors::make_lock();
    for (int i = 0; i < 3; ++i)
      procs.emplace_back(lock_forever, l);
    for (auto& p : procs)
      p.start();
  } else {
    return 2;
  }
  print_children();
  for (;;)
    ::pause();
}

support::helper_mode busy_owner_mode{"chaos-busy-owner", busy_owner};

} // namespace

TEST_CASE("an owner SIGKILLed amid pool or queue or pipe or lock traffic") {
  for (std::string what : {"pool", "queue", "pipe", "lock"}) {
    INFO("owner busy with " << what);
    auto owner = support::subprocess::helper("chaos-busy-owner", {what});
    auto line = owner.read_line(20s);
    REQUIRE(line);
    auto pids = support::parse_pids(*line);
    // pool: fork server and 4 workers; others: fork server and children.
    CHECK(pids.size() >= (what == "pool" ? 5u : what == "lock" ? 4u : 3u));
    for (auto pid : pids)
      REQUIRE(support::process_running(pid));
    auto t0 = clock_type::now();
    owner.kill(SIGKILL);
    auto deadline = t0 + 1s;
    for (auto pid : pids) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - clock_type::now());
      INFO("child " << pid);
      CHECK(support::wait_ended(pid, std::max(left, 0ms)));
      CHECK_FALSE(support::process_running(pid));
    }
    auto gone_ms = ms_since(t0);
    REQUIRE(owner.wait(5s) == -SIGKILL);
    MESSAGE("owner busy with " << what << " SIGKILLed: its " << pids.size()
                               << " children gone within " << gone_ms
                               << " ms");
  }
}

// -- actor processes ----------------------------------------------------------

namespace {

caf::behavior chaos_echo(caf::event_based_actor*) {
  return {[](int x) { return x + 1; }};
}

// Asks its target for each request it gets and passes the answer, or the
// error, on: actor process to actor process traffic.
caf::behavior chaos_relay(caf::event_based_actor* self, caf::actor target) {
  return {[=](int x) {
    auto rp = self->make_response_promise<int>();
    self->request(target, 30s, x)
      .then([rp](int y) mutable { rp.deliver(y); },
            [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
    return rp;
  }};
}

} // namespace

TEST_CASE("actor processes SIGKILLed mid-traffic: every request is answered "
          "or fails at once with the reason") {
  CHAOS_SEED(rng, 0x9005);
  constexpr int rounds = 6;
  long long answered = 0;
  long long failed = 0;
  long long slowest_failure_ms = 0;
  for (int round = 0; round < rounds; ++round) {
    auto delay = std::chrono::milliseconds{20 + rng() % 150};
    auto victim = static_cast<int>(rng() % 3);
    INFO("round " << round << ": echo " << victim << " killed after "
                  << delay.count() << " ms");
    std::vector<actors::actor_process<caf::actor>> echoes;
    for (int i = 0; i < 3; ++i)
      echoes.push_back(actors::spawn(chaos_echo));
    // Relays in two more processes, to the victim and to a survivor.
    auto survivor = (victim + 1) % 3;
    auto to_victim = actors::spawn(chaos_relay, echoes[victim].handle());
    auto to_survivor = actors::spawn(chaos_relay, echoes[survivor].handle());
    std::vector<caf::actor> targets;
    for (auto& e : echoes)
      targets.push_back(e.handle());
    targets.push_back(to_victim.handle());
    targets.push_back(to_survivor.handle());
    std::atomic<bool> stop{false};
    std::atomic<long long> ok{0}, bad{0}, wrong{0}, unexpected{0}, slowest{0};
    std::mutex texts_mtx;
    std::set<std::string> texts;
    auto account = [&](const caf::error& err, clock_type::time_point t0,
                       bool may_fail, const std::string& how) {
      auto ms = ms_since(t0);
      for (auto seen = slowest.load();
           ms > seen && !slowest.compare_exchange_weak(seen, ms);) {
      }
      auto code = actors::errc_of(err);
      if (!may_fail || code == actors::errc::timeout || ms > 5000)
        ++unexpected;
      if (code != actors::errc::process_died)
        ++wrong;
      ++bad;
      std::lock_guard<std::mutex> guard{texts_mtx};
      texts.insert(how + ": " + actors::describe(err));
    };
    std::vector<std::thread> clients;
    for (int c = 0; c < 3; ++c)
      clients.emplace_back([&, c, seed = rng()] {
        std::mt19937_64 pick{seed}; // drawn here: rng is not shared
        caf::scoped_actor self{actors::system()};
        for (int i = 0; !stop; ++i) {
          auto t = static_cast<int>(pick() % targets.size());
          // The victim and the relay to it may fail; the others may not.
          bool may_fail = t == victim || t == 3;
          auto t0 = clock_type::now();
          if (c == 0) { // a scoped actor's request
            self->request(targets[t], 30s, i)
              .receive(
                [&](int y) {
                  if (y == i + 1)
                    ++ok;
                  else
                    ++wrong;
                },
                [&](caf::error& err) {
                  account(err, t0, may_fail,
                          "request to target " + std::to_string(t));
                });
          } else { // actors::ask
            auto y = actors::ask<int>(targets[t], 30s, i);
            if (!y)
              account(y.error(), t0, may_fail,
                      "ask of target " + std::to_string(t));
            else if (*y == i + 1)
              ++ok;
            else
              ++wrong;
          }
        }
      });
    std::this_thread::sleep_for(delay); // the random point (pacing)
    echoes[victim].kill();
    REQUIRE(echoes[victim].join(10s));
    // Traffic goes on to the survivors and fails at once to the victim.
    auto ok_at_kill = ok.load();
    CHECK(support::eventually([&] { return ok > ok_at_kill + 100; }, 10s));
    stop = true;
    for (auto& t : clients)
      t.join();
    INFO("answered " << ok << ", failed " << bad);
    CHECK(wrong == 0);
    CHECK(unexpected == 0);
    for (auto& text : texts) {
      INFO(text);
      CHECK(text.find("killed by signal 9 (SIGKILL)") != std::string::npos);
    }
    answered += ok;
    failed += bad;
    slowest_failure_ms = std::max<long long>(slowest_failure_ms, slowest);
    to_victim.stop(10s);
    to_survivor.stop(10s);
    for (auto& e : echoes)
      e.stop(10s);
  }
  CHECK(answered > 0);
  MESSAGE("actor processes: " << rounds << " SIGKILLed mid-traffic; "
                              << answered << " requests answered, " << failed
                              << " failed with process_died (the slowest "
                                 "after "
                              << slowest_failure_ms << " ms)");
}
