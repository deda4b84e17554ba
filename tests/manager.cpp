// actors::manager (Python's Manager()): dicts, lists, namespaces and values
// in a manager process, used from this process, from children and from pool
// workers; Python's errors as typed ones; the manager's end fails every
// later call at once.

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

struct point {
  int x = 0;
  std::string label;

  friend bool operator==(const point& a, const point& b) {
    return a.x == b.x && a.label == b.label;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("point"), p.x, p.label);
}

// Each child adds its share to the dict and the list.
void fills(actors::shared_dict<int, point> d, actors::shared_list<int> l,
           int from, int n) {
  for (int i = from; i < from + n; ++i) {
    d.set(i, point{i * i, "p" + std::to_string(i)});
    l.append(i);
  }
}

int squares_into(actors::shared_dict<int, int> d, int x) {
  d.set(x, x * x);
  return x;
}

// Counts in a namespace under a lock, as Python's docs do.
void counts(actors::shared_namespace ns, actors::lock guard, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::lock> hold{guard};
    ns.set("count", ns.get<int>("count") + 1);
  }
}

// Takes a dict from a queue and sets one entry.
void sets_from_queue(actors::queue<actors::shared_dict<int, int>> q) {
  q.get(10s).set(7, 49);
}

// A class of the user's, made in a manager's process.
class account {
public:
  account() = default;
  account(std::string owner, int balance)
    : owner_(std::move(owner)), balance_(balance) {
    if (balance_ < 0)
      throw std::invalid_argument("a negative opening balance");
  }

  int deposit(int amount) {
    return balance_ += amount;
  }

  int withdraw(int amount) {
    if (amount > balance_)
      throw std::runtime_error("insufficient funds: " + std::to_string(balance_));
    return balance_ -= amount;
  }

  int balance() const noexcept {
    return balance_;
  }

  const std::string& owner() const {
    return owner_;
  }

  void rename(const std::string& to) {
    owner_ = to;
  }

  // Blocks on a queue: holds up this object only.
  int take(actors::queue<int> q) {
    return q.get(30s);
  }

private:
  std::string owner_;
  int balance_ = 0;
};

void deposits(actors::proxy<account> a, int n) {
  for (int i = 0; i < n; ++i)
    a.call<&account::deposit>(1);
}

// Uses what a manager made: a queue, a lock, an event, a barrier.
void uses_made(actors::queue<int> q, actors::mutex guard, actors::event go,
               actors::barrier b) {
  q.put(1);
  {
    std::lock_guard<actors::mutex> hold{guard};
    q.put(2);
  }
  if (go.wait(30s))
    q.put(3);
  b.wait(30s);
}

// Its constructor waits for `go`: a constructor is user code, and may block.
struct slow_start {
  explicit slow_start(actors::event go) : started(go.wait(30s)) {
    // nop
  }
  bool ready() const {
    return started;
  }
  bool started;
};

} // namespace

TEST_CASE("a manager's own calls are bounded by its timeout: a make whose "
          "constructor blocks gives up with errc::timeout, the rest serves") {
  actors::manager m;
  auto go = actors::make_event();
  m.timeout(200ms);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { m.make<slow_start>(go); }) == actors::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  // The constructor blocks its own object only: the manager answers.
  auto d = m.dict<std::string, int>();
  d.set("x", 1);
  CHECK(d.get("x") == 1);
  m.publish("d", d);
  CHECK(m.lookup<actors::shared_dict<std::string, int>>("d").get("x") == 1);
  go.set();
  m.timeout(std::nullopt);
  auto s = m.make<slow_start>(go); // go is set: it is made at once
  CHECK(s.call<&slow_start::ready>());
}

TEST_CASE("a class of the user's in the manager: its methods are atomic "
          "requests from any process: what they throw is task_failed") {
  actors::manager m;
  auto a = m.make<account>(std::string{"ada"}, 10);
  CHECK(a.call<&account::deposit>(5) == 15);
  CHECK(a.call<&account::balance>() == 15);
  CHECK(a.call<&account::owner>() == "ada");
  a.call<&account::rename>(std::string{"bob"});
  CHECK(a.call<&account::owner>() == "bob");
  // Four processes deposit at once; no deposit is lost.
  std::vector<actors::process> children;
  for (int c = 0; c < 4; ++c)
    children.emplace_back(deposits, a, 50);
  for (auto& p : children)
    p.start();
  for (auto& p : children) {
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(a.call<&account::balance>() == 215);
  // An exception in a method: its type and message; the object lives on.
  try {
    a.call<&account::withdraw>(1000);
    FAIL("withdraw should have thrown");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::task_failed);
    CHECK(std::string{e.what()}.find("runtime_error") != std::string::npos);
    CHECK(std::string{e.what()}.find("insufficient funds: 215")
          != std::string::npos);
  }
  CHECK(a.call<&account::withdraw>(15) == 200);
  // A constructor that throws makes nothing.
  try {
    m.make<account>(std::string{"eve"}, -1);
    FAIL("make should have thrown");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::task_failed);
    CHECK(std::string{e.what()}.find("negative opening balance")
          != std::string::npos);
  }
  // A proxy travels inside another shared object.
  auto accounts = m.dict<std::string, actors::proxy<account>>();
  accounts.set("a", a);
  CHECK(accounts.get("a").call<&account::balance>() == 200);
  // A call that blocks holds up its object only; a bound gives up.
  actors::queue<int> q{actors::unbounded};
  auto b = m.make<account>();
  auto blocked = b;
  blocked.timeout(200ms);
  CHECK(code_of([&] { blocked.call<&account::take>(q); })
        == actors::errc::timeout);
  CHECK(a.call<&account::deposit>(1) == 201); // another object answers
  q.put(7);                                   // the blocked call takes it
  CHECK(b.call<&account::balance>() == 0);    // after the blocked call
  CHECK(q.empty());
  // The manager gone: every proxy fails at once.
  ::kill(m.pid(), SIGKILL);
  CHECK(code_of([&] { a.call<&account::balance>(); })
        == actors::errc::process_died);
}

TEST_CASE("a queue, a lock, an event, a barrier and the rest made by the "
          "manager: ordinary handles owned by its process") {
  actors::manager m;
  auto q = m.queue<int>(10);
  auto guard = m.lock();
  auto go = m.event();
  auto b = m.barrier(2);
  actors::process p{uses_made, q, guard, go, b};
  p.start();
  CHECK(q.get(30s) == 1);
  CHECK(q.get(30s) == 2);
  go.set();
  CHECK(q.get(30s) == 3);
  CHECK(b.wait(30s) < 2);
  REQUIRE(p.join(30s));
  CHECK(p.exitcode() == 0);
  auto s = m.bounded_semaphore(1);
  s.acquire();
  CHECK(code_of([&] {
          s.release();
          s.release();
        })
        == actors::errc::invalid_argument);
  auto r = m.rlock();
  r.acquire();
  r.acquire();
  r.release();
  r.release();
  auto c = m.condition();
  c.acquire();
  CHECK_FALSE(c.wait(10ms));
  c.release();
  auto jq = m.joinable_queue<std::string>();
  jq.put("x");
  CHECK(jq.get(1s) == "x");
  jq.task_done();
  CHECK(jq.join(1s));
  CHECK(m.semaphore(2).value() == 2);
  // Their owner is the manager's process: when it dies, they fail instead
  // of blocking.
  ::kill(m.pid(), SIGKILL);
  CHECK(code_of([&] { q.get(30s); }) == actors::errc::owner_unreachable);
}

TEST_CASE("proxies travel through queues and inside other shared objects") {
  actors::manager m;
  auto d = m.dict<int, int>();
  actors::queue<actors::shared_dict<int, int>> q{actors::unbounded};
  q.put(d);
  actors::process p{sets_from_queue, q};
  p.start();
  REQUIRE(p.join(30s));
  CHECK(p.exitcode() == 0);
  CHECK(d.get(7) == 49);
  auto lists = m.dict<std::string, actors::shared_list<int>>();
  lists.set("a", m.list<int>());
  lists.get("a").append(1);
  lists.get("a").append(2);
  CHECK(lists.get("a").to_vector() == std::vector<int>{1, 2});
}

TEST_CASE("a shared dict: set, get, contains, pop, setdefault, items in "
          "insertion order, and KeyError as errc::not_found") {
  actors::manager m;
  CHECK(m.is_alive());
  CHECK(m.pid() != ::getpid());
  auto d = m.dict<std::string, int>();
  CHECK(d.size() == 0);
  d.set("b", 2);
  d.set("a", 1);
  d.set("c", 3);
  d.set("b", 20); // keeps its place
  CHECK(d.get("b") == 20);
  CHECK(d.get("zz", -1) == -1);
  CHECK(d.contains("a"));
  CHECK_FALSE(d.contains("zz"));
  CHECK(code_of([&] { d.get("zz"); }) == actors::errc::not_found);
  CHECK(d.keys() == std::vector<std::string>{"b", "a", "c"});
  CHECK(d.values() == std::vector<int>{20, 1, 3});
  CHECK(d.items()
        == std::vector<std::pair<std::string, int>>{{"b", 20},
                                                    {"a", 1},
                                                    {"c", 3}});
  CHECK(d.pop("a") == 1);
  CHECK(code_of([&] { d.pop("a"); }) == actors::errc::not_found);
  CHECK(code_of([&] { d.erase("a"); }) == actors::errc::not_found);
  CHECK(d.setdefault("c", 99) == 3);
  CHECK(d.setdefault("d", 4) == 4);
  CHECK(d.size() == 3);
  d.erase("d");
  d.clear();
  CHECK(d.size() == 0);
  // An empty handle: a typed error.
  actors::shared_dict<std::string, int> empty;
  CHECK(code_of([&] { empty.get("x"); }) == actors::errc::invalid_argument);
}

TEST_CASE("a shared list: append, extend, Python's indices, IndexError as "
          "errc::not_found") {
  actors::manager m;
  auto l = m.list<std::string>();
  l.append("a");
  l.extend({"b", "c", "d"});
  CHECK(l.size() == 4);
  CHECK(l.get(0) == "a");
  CHECK(l.get(-1) == "d");
  l.set(-2, "C");
  CHECK(l.to_vector() == std::vector<std::string>{"a", "b", "C", "d"});
  CHECK(l.pop() == "d");
  CHECK(l.pop(0) == "a");
  CHECK(code_of([&] { l.get(2); }) == actors::errc::not_found);
  CHECK(code_of([&] { l.set(-3, "x"); }) == actors::errc::not_found);
  l.clear();
  CHECK(code_of([&] { l.pop(); }) == actors::errc::not_found);
}

TEST_CASE("children and pool workers share the manager's objects") {
  actors::manager m;
  auto d = m.dict<int, point>();
  auto l = m.list<int>();
  std::vector<actors::process> children;
  for (int c = 0; c < 4; ++c)
    children.emplace_back(fills, d, l, c * 25, 25);
  for (auto& p : children)
    p.start();
  for (auto& p : children) {
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(d.size() == 100);
  CHECK(d.get(7) == point{49, "p7"});
  auto items = l.to_vector();
  std::sort(items.begin(), items.end());
  std::vector<int> expected(100);
  for (int i = 0; i < 100; ++i)
    expected[static_cast<std::size_t>(i)] = i;
  CHECK(items == expected);
  auto squares = m.dict<int, int>();
  actors::pool pool{2};
  std::vector<std::tuple<actors::shared_dict<int, int>, int>> inputs;
  for (int x = 1; x <= 8; ++x)
    inputs.emplace_back(squares, x);
  CHECK(pool.starmap(squares_into, inputs).size() == 8);
  pool.close();
  pool.join();
  CHECK(squares.size() == 8);
  CHECK(squares.get(8) == 64);
}

TEST_CASE("a namespace and a value") {
  actors::manager m;
  auto ns = m.make_namespace();
  ns.set("count", 0);
  ns.set("name", std::string{"run"});
  CHECK(ns.get<std::string>("name") == "run");
  CHECK(ns.contains("count"));
  CHECK(code_of([&] { ns.get<int>("none"); }) == actors::errc::not_found);
  CHECK(code_of([&] { ns.get<int>("name"); }) == actors::errc::type_mismatch);
  auto guard = actors::make_lock();
  actors::process a{counts, ns, guard, 50};
  actors::process b{counts, ns, guard, 50};
  a.start();
  b.start();
  REQUIRE(a.join(30s));
  REQUIRE(b.join(30s));
  CHECK(ns.get<int>("count") == 100);
  ns.erase("name");
  CHECK_FALSE(ns.contains("name"));
  auto v = m.value<double>(1.5);
  CHECK(v.get() == 1.5);
  v.set(2.5);
  CHECK(v.get() == 2.5);
}

TEST_CASE("after shutdown, or when the manager's process is killed, every "
          "call fails at once") {
  actors::manager m;
  auto d = m.dict<int, int>();
  d.set(1, 1);
  CHECK(m.shutdown(10s));
  CHECK_FALSE(m.is_alive());
  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { d.get(1); }) == actors::errc::process_died);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(m.shutdown()); // twice is harmless
  actors::manager killed;
  auto l = killed.list<int>();
  l.append(1);
  ::kill(killed.pid(), SIGKILL);
  CHECK(code_of([&] { l.append(2); }) == actors::errc::process_died);
  // A bounded call of a living manager.
  actors::manager slow;
  auto bounded = slow.dict<int, int>();
  bounded.timeout(5s);
  bounded.set(1, 2);
  CHECK(bounded.get(1) == 2);
}

TEST_CASE("a manager served on an address: a connected program makes, "
          "publishes and looks up: a wrong key is refused") {
  auto key = "/tmp/actors-manager-key-" + std::to_string(::getpid());
  ::unlink(key.c_str());
  actors::manager_options opts;
  opts.listen = "127.0.0.1:0";
  opts.key_file = key;
  actors::manager server{opts};
  auto address = "127.0.0.1:" + std::to_string(server.port());
  auto counts = server.dict<std::string, int>();
  counts.set("a", 1);
  server.publish("counts", counts);
  auto jobs = server.queue<int>(10);
  server.publish("jobs", jobs);
  auto client = actors::manager::connect(address, key);
  auto theirs = client.lookup<actors::shared_dict<std::string, int>>("counts");
  CHECK(theirs.get("a") == 1);
  theirs.set("b", 2);
  CHECK(counts.get("b") == 2);
  auto made = client.list<int>();
  made.append(3);
  client.publish("made", made);
  CHECK(server.lookup<actors::shared_list<int>>("made").to_vector()
        == std::vector<int>{3});
  auto a = client.make<account>(std::string{"ada"}, 5);
  CHECK(a.call<&account::deposit>(1) == 6);
  client.lookup<actors::queue<int>>("jobs").put(42);
  CHECK(jobs.get(10s) == 42);
  CHECK(code_of([&] { client.lookup<int>("none"); })
        == actors::errc::not_found);
  CHECK(code_of([&] { client.lookup<int>("counts"); })
        == actors::errc::type_mismatch);
  // A wrong key, and nothing listening.
  auto wrong = key + "-wrong";
  ::unlink(wrong.c_str());
  {
    std::ofstream out{wrong, std::ios::binary};
    out << std::string(32, 'k');
  }
  ::chmod(wrong.c_str(), 0600);
  CHECK(code_of([&] { actors::manager::connect(address, wrong); })
        == actors::errc::unauthenticated);
  CHECK(server.shutdown(10s));
  CHECK(code_of([&] { actors::manager::connect(address, key, 2s); })
        == actors::errc::owner_unreachable);
  // The server gone: the connected proxies fail at once, they do not hang.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { theirs.get("a"); }) == actors::errc::owner_unreachable);
  CHECK(code_of([&] { a.call<&account::balance>(); })
        == actors::errc::owner_unreachable);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  ::unlink(key.c_str());
  ::unlink(wrong.c_str());
}
