// actors::pipe across threads and real OS processes: order, poll, one-way
// ends, end of pipe on close and on the death of the other side, shared
// ends, wait(), and large and many messages; and across a stream to the
// hub, as from another host.

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/stream_door.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// Waits (bounded) until a caller is blocked in recv on `conn`.
template <class T>
bool support_eventually_waiting(const actors::connection<T>& conn) {
  return support::eventually(
    [&] {
      return actors::detail::queue_access::inbox(conn).snapshot().getters
             == 1;
    },
    10s);
}

// -- functions run in children ------------------------------------------------

// Waits for "go", then answers "sent".
void answer_after_go(actors::connection<std::string> conn) {
  if (conn.recv() == "go")
    conn.send("sent");
}

// Says hello, then waits to be killed.
void hello_then_wait(actors::connection<std::string> conn) {
  conn.send("hello");
  for (;;)
    ::pause();
}

// Echoes ints until it receives -1.
void echo_until_sentinel(actors::connection<int> conn) {
  for (int x = conn.recv(); x != -1; x = conn.recv())
    conn.send(x);
}

void send_many(actors::connection<int> conn, int count) {
  for (int i = 0; i < count; ++i)
    conn.send(i);
}

void send_big(actors::connection<int> conn, std::size_t size) {
  std::vector<char> bytes(size, 'x');
  bytes.front() = 'a';
  bytes.back() = 'z';
  conn.send_bytes(std::move(bytes));
}

// Sends 0 .. count-1, then dies at once by SIGKILL.
void send_then_die(actors::connection<int> conn, int count) {
  for (int i = 0; i < count; ++i)
    conn.send(i);
  ::raise(SIGKILL);
}

void take_end_then_die(actors::queue<actors::connection<int>> q) {
  auto conn = q.get();
  ::raise(SIGKILL);
}

void use_end_from_queue(actors::queue<actors::connection<int>> q) {
  auto conn = q.get();
  conn.send(conn.recv() + 1);
}

// -- pipe ends handed on and closed at once by whoever handed them on -------

using ends = std::vector<actors::connection<std::string>>;

// Receives ends on `conn` (acknowledging them with an empty message when
// `ack`), then sends on the first.
void send_on_received_end(actors::connection<ends> conn, bool ack) {
  auto got = conn.recv(30s);
  if (ack)
    conn.send({});
  got.at(0).send("through a passed end");
}

void send_on_end(actors::connection<std::string> end) {
  end.send("through a passed end");
}

int send_on_end_task(actors::connection<std::string> end) {
  end.send("through a passed end");
  end.close();
  return 1;
}

void send_on_end_from_queue(actors::queue<actors::connection<std::string>> q) {
  q.get(30s).send("through a passed end");
}

// Makes a one-way pipe, hands both ends to the parent, closes its own
// copies and waits to be killed: the pipe lives in this process.
void own_a_pipe(actors::queue<ends> back) {
  auto [r, w] = actors::pipe<std::string>(false);
  back.put({r, w});
  r.close();
  w.close();
  for (;;)
    ::pause();
}

// Puts the end it was given into `q` and closes its copy at once; waits to
// be killed (its hold on what it sent lasts while it lives).
void pass_end_on(actors::connection<std::string> end,
                 actors::queue<actors::connection<std::string>> q) {
  q.put(end);
  end.close();
  for (;;)
    ::pause();
}

} // namespace

TEST_CASE("a duplex pipe carries messages both ways, in order") {
  auto [a, b] = actors::pipe<std::string>();
  a.send("1");
  a.send("2");
  b.send("x");
  CHECK(b.recv() == "1");
  CHECK(b.recv() == "2");
  CHECK(a.recv() == "x");
}

TEST_CASE("poll: false when empty, true once sent, waits up to its timeout") {
  auto [a, b] = actors::pipe<std::string>();
  CHECK_FALSE(a.poll());
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(a.poll(200ms));
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 200ms);
  CHECK(waited < 2s);
  actors::process child{answer_after_go, b};
  child.start();
  a.send("go");
  CHECK(a.poll(10s)); // returns when the child has sent
  CHECK(a.poll());    // and poll does not consume
  CHECK(a.recv() == "sent");
  CHECK_FALSE(a.poll());
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
}

TEST_CASE("send_bytes with offset and size, recv_bytes_into a buffer") {
  auto [a, b] = actors::pipe<std::string>();
  std::vector<char> text{'h', 'e', 'l', 'l', 'o', '!'};
  a.send_bytes(text, 1, 3);
  a.send_bytes(text, 4);
  a.send_bytes(text, 6, 0);
  CHECK(code_of([&] { a.send_bytes(text, 7); })
        == actors::errc::invalid_argument);
  CHECK(code_of([&] { a.send_bytes(text, 2, 5); })
        == actors::errc::invalid_argument);
  char buffer[8] = {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'};
  CHECK(b.recv_bytes_into(buffer, sizeof(buffer), 5, 1s) == 3);
  CHECK(std::string(buffer, 8) == "xxxxxell");
  CHECK(b.recv_bytes_into(buffer, sizeof(buffer)) == 2);
  CHECK(std::string(buffer, 2) == "o!");
  CHECK(b.recv_bytes_into(buffer, sizeof(buffer), 8) == 0);
  CHECK(code_of([&] { b.recv_bytes_into(buffer, sizeof(buffer), 9); })
        == actors::errc::invalid_argument);
  // Too long: the message is in the exception, not lost.
  a.send_bytes(std::vector<char>(20, 'z'));
  try {
    b.recv_bytes_into(buffer, sizeof(buffer), 2);
    FAIL("a message of 20 bytes fit into 6");
  } catch (const actors::buffer_too_short& e) {
    CHECK(e.code() == actors::errc::buffer_too_short);
    CHECK(e.message() == std::vector<char>(20, 'z'));
  }
  CHECK_FALSE(b.poll());
  CHECK(code_of([&] { b.recv_bytes_into(buffer, sizeof(buffer), 0, 10ms); })
        == actors::errc::timeout);
}

TEST_CASE("recv with a timeout fails with errc::timeout") {
  auto [a, b] = actors::pipe<int>();
  CHECK(code_of([&] { a.recv(50ms); }) == actors::errc::timeout);
}

TEST_CASE("a one-way pipe rejects the wrong direction") {
  auto [reader, writer] = actors::pipe<int>(false);
  CHECK(code_of([&] { reader.send(1); }) == actors::errc::wrong_direction);
  CHECK(code_of([&] { writer.recv(); }) == actors::errc::wrong_direction);
  CHECK(code_of([&] { writer.poll(); }) == actors::errc::wrong_direction);
  writer.send(5);
  CHECK(reader.recv() == 5);
}

TEST_CASE("close: the other end drains, then gets end-of-pipe") {
  auto [a, b] = actors::pipe<int>();
  a.send(1);
  a.send(2);
  a.close();
  CHECK(code_of([&] { a.send(3); }) == actors::errc::closed);
  CHECK(b.poll());
  CHECK(b.recv() == 1);
  CHECK(b.recv() == 2);
  CHECK(b.poll()); // recv would not block: it raises end-of-pipe
  CHECK(code_of([&] { b.recv(); }) == actors::errc::end_of_pipe);
  CHECK(code_of([&] { b.send(4); }) == actors::errc::broken_pipe);

  auto [reader, writer] = actors::pipe<int>(false);
  reader.close();
  CHECK(code_of([&] { writer.send(1); }) == actors::errc::broken_pipe);
}

TEST_CASE("a blocked recv gets end-of-pipe when the other end closes") {
  auto [a, b] = actors::pipe<int>();
  actors::errc seen{};
  std::thread blocked{[&, b = b] { seen = code_of([&] { b.recv(10s); }); }};
  REQUIRE(support_eventually_waiting(b));
  a.close();
  blocked.join();
  CHECK(seen == actors::errc::end_of_pipe);
}

TEST_CASE("when the process holding the other end dies: end of pipe") {
  auto [a, b] = actors::pipe<std::string>();
  actors::process child{hello_then_wait, b};
  child.start();
  b.close(); // as in Python: the child holds the end now, we let go of ours
  CHECK(a.recv(10s) == "hello");
  actors::errc seen{};
  std::thread blocked{[&, a = a] { seen = code_of([&] { a.recv(10s); }); }};
  REQUIRE(support_eventually_waiting(a));
  auto t0 = std::chrono::steady_clock::now();
  child.kill();
  blocked.join();
  CHECK(seen == actors::errc::end_of_pipe);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  // The two directions are two actors that each learn of the death on their
  // own, a moment apart: sending fails with broken-pipe once ours has.
  CHECK(support::eventually(
    [&] {
      return code_of([&] { a.send("anyone?"); }) == actors::errc::broken_pipe;
    },
    2s));
  REQUIRE(child.join(10s));
}

TEST_CASE("an end shared by two processes: each message to exactly one") {
  auto [a, b] = actors::pipe<int>();
  actors::process p1{echo_until_sentinel, b};
  actors::process p2{echo_until_sentinel, b};
  p1.start();
  p2.start();
  b.close();
  constexpr int n = 200;
  for (int i = 0; i < n; ++i)
    a.send(i);
  std::vector<int> echoed;
  for (int i = 0; i < n; ++i)
    echoed.push_back(a.recv(10s));
  a.send(-1);
  a.send(-1);
  REQUIRE(p1.join(10s));
  REQUIRE(p2.join(10s));
  CHECK(p1.exitcode() == 0);
  CHECK(p2.exitcode() == 0);
  std::sort(echoed.begin(), echoed.end());
  for (int i = 0; i < n; ++i)
    REQUIRE(echoed[i] == i);
  // Both processes that held the other end are gone: end of pipe.
  CHECK(code_of([&] { a.recv(5s); }) == actors::errc::end_of_pipe);
}

TEST_CASE("while the creator keeps its copy, a child's death is no end") {
  auto [a, b] = actors::pipe<std::string>();
  actors::process child{hello_then_wait, b};
  child.start();
  CHECK(a.recv(10s) == "hello");
  child.kill();
  REQUIRE(child.join(10s));
  // Python semantics: this process still holds `b`, so `a` is not at its end.
  CHECK(code_of([&] { a.recv(300ms); }) == actors::errc::timeout);
  b.send("to myself");
  CHECK(a.recv(1s) == "to myself");
}

TEST_CASE("wait returns the ends that can receive, or none on timeout") {
  auto [a1, b1] = actors::pipe<int>();
  auto [a2, b2] = actors::pipe<int>();
  CHECK(actors::wait<int>({a1, a2}, 50ms).empty());
  b2.send(1);
  auto ready = actors::wait<int>({a1, a2}, 5s);
  REQUIRE(ready.size() == 1);
  // The ready end compares equal to the one given, as Python returns it.
  CHECK(ready[0] == a2);
  CHECK(ready[0] != a1);
  CHECK(ready[0].recv() == 1);
  b1.send(2);
  b2.send(3);
  auto both = actors::wait<int>({a2, a1}, 5s);
  CHECK(both == std::vector<actors::connection<int>>{a2, a1});
  // Ends of one pipe differ; a copy, even closed, is the same end.
  CHECK(a1 != b1);
  auto copy = a1;
  copy.close();
  CHECK(copy == a1);
}

namespace {

// Waits for the event (at most 20 s), then ends.
void end_when_set(actors::event go) {
  go.wait(20s);
}

} // namespace

TEST_CASE("wait takes pipe ends and process sentinels together") {
  auto [a, b] = actors::pipe<int>();
  auto go = actors::make_event();
  actors::process p{end_when_set, go};
  CHECK(code_of([&] { p.sentinel(); }) == actors::errc::not_started);
  p.start();
  auto s = p.sentinel();
  CHECK_FALSE(s.ready());
  CHECK(s == p.sentinel());
  // Neither is ready: empty after the timeout, and not much later.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(actors::wait({a, s}, 100ms).empty());
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 100ms);
  CHECK(took < 5s);
  // A message: the end alone.
  b.send(7);
  auto ready = actors::wait({a, s}, 5s);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0] == actors::waitable{a});
  CHECK_FALSE(ready[0].is_sentinel());
  CHECK(a.recv() == 7);
  // The process ends: its sentinel, even with no timeout.
  go.set();
  ready = actors::wait({a, s});
  REQUIRE(ready.size() == 1);
  CHECK(ready[0] == actors::waitable{s});
  CHECK(ready[0].is_sentinel());
  CHECK(s.ready());
  REQUIRE(p.join(10s));
  // Both ready: both, in the order given.
  b.send(8);
  ready = actors::wait({s, a}, 5s);
  CHECK(ready == std::vector<actors::waitable>{s, a});
  auto [r, w] = actors::pipe<int>(false);
  CHECK(code_of([&] { actors::wait({w, s}, 0s); })
        == actors::errc::wrong_direction);
}

TEST_CASE("many small messages keep their order across processes") {
  auto [a, b] = actors::pipe<int>(false);
  constexpr int n = 5000;
  actors::process sender{send_many, b, n};
  sender.start();
  for (int i = 0; i < n; ++i)
    REQUIRE(a.recv(10s) == i);
  REQUIRE(sender.join(10s));
}

TEST_CASE("64 MiB of bytes cross processes intact") {
  auto [a, b] = actors::pipe<int>();
  constexpr std::size_t size = 64 << 20;
  actors::process sender{send_big, b, size};
  sender.start();
  auto bytes = a.recv_bytes(60s);
  REQUIRE(bytes.size() == size);
  CHECK(bytes.front() == 'a');
  CHECK(bytes.back() == 'z');
  CHECK(std::count(bytes.begin(), bytes.end(), 'x')
        == static_cast<long>(size - 2));
  REQUIRE(sender.join(10s));
}

TEST_CASE("pipe ends travel through queues") {
  actors::queue<actors::connection<int>> q{actors::unbounded};
  auto [a, b] = actors::pipe<int>();
  actors::process child{use_end_from_queue, q};
  child.start();
  q.put(b);
  a.send(41);
  CHECK(a.recv(10s) == 42);
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
}

// An end in flight stays held until its receiver holds it (Python dups the
// descriptor when it pickles it): its sender may close its copy at once,
// and what the receiver sends on it arrives, then the end of the pipe
// once the receiver is gone.

namespace {

// What `r` receives after the one message: the end of the pipe.
void expect_message_then_end(actors::connection<std::string>& r) {
  CHECK(r.recv(10s) == "through a passed end");
  CHECK(code_of([&] { r.recv(10s); }) == actors::errc::end_of_pipe);
}

} // namespace

TEST_CASE("an end sent in a message and closed at once by its sender: what "
          "the receiver sends on it arrives") {
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    auto [r, w] = actors::pipe<std::string>(false);
    auto [mine, theirs] = actors::pipe<ends>();
    actors::process child{send_on_received_end, theirs, false};
    child.start();
    theirs.close();
    mine.send({w});
    w.close();
    expect_message_then_end(r);
    REQUIRE(child.join(10s));
    CHECK(child.exitcode() == 0);
  }
}

TEST_CASE("an end sent in a message, closed by its sender once the receiver "
          "said it has it: what the receiver sends on it arrives") {
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    auto [r, w] = actors::pipe<std::string>(false);
    auto [mine, theirs] = actors::pipe<ends>();
    actors::process child{send_on_received_end, theirs, true};
    child.start();
    theirs.close();
    mine.send({w});
    CHECK(mine.recv(10s).empty()); // the child has it
    w.close();
    expect_message_then_end(r);
    REQUIRE(child.join(10s));
    CHECK(child.exitcode() == 0);
  }
}

TEST_CASE("an end put into a queue and closed at once by its sender: what "
          "its getter sends on it arrives") {
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    auto [r, w] = actors::pipe<std::string>(false);
    actors::queue<actors::connection<std::string>> q{actors::unbounded};
    q.put(w);
    w.close();
    actors::process child{send_on_end_from_queue, q};
    child.start();
    expect_message_then_end(r);
    REQUIRE(child.join(10s));
  }
}

TEST_CASE("an end passed through a queue between two children: the queue's "
          "process does not hold it, its getter does") {
  auto [r, w] = actors::pipe<std::string>(false);
  actors::queue<actors::connection<std::string>> q{actors::unbounded};
  actors::process passer{pass_end_on, w, q};
  passer.start();
  w.close(); // the passer holds it now
  actors::process user{send_on_end_from_queue, q};
  user.start();
  CHECK(r.recv(10s) == "through a passed end");
  REQUIRE(user.join(10s));
  // The passer handed its end on and closed its copy; the user is gone:
  // nobody holds the write end (this process only carried it in its queue).
  CHECK(code_of([&] { r.recv(10s); }) == actors::errc::end_of_pipe);
  passer.kill();
  REQUIRE(passer.join(10s));
}

TEST_CASE("an end of a pipe owned by a third process, passed to a child as "
          "its argument and closed at once: what the child sends arrives") {
  actors::queue<ends> back{actors::unbounded};
  actors::process owner{own_a_pipe, back};
  owner.start();
  auto got = back.get(10s);
  auto r = got.at(0);
  auto w = got.at(1);
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    auto extra = w; // this process still holds it after the last round
    actors::process child{send_on_end, extra};
    child.start();
    if (round == 2)
      w.close();
    CHECK(r.recv(10s) == "through a passed end");
    REQUIRE(child.join(10s));
  }
  CHECK(code_of([&] { r.recv(10s); }) == actors::errc::end_of_pipe);
  owner.kill();
  REQUIRE(owner.join(10s));
}

TEST_CASE("an end passed as a pool task's argument and closed at once: what "
          "the task sends arrives") {
  actors::pool p{1};
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    auto [r, w] = actors::pipe<std::string>(false);
    auto result = p.apply_async(send_on_end_task, w);
    w.close();
    CHECK(r.recv(10s) == "through a passed end");
    CHECK(result.get(10s) == 1);
    // The worker closed its copy; nobody holds the write end any more.
    CHECK(code_of([&] { r.recv(10s); }) == actors::errc::end_of_pipe);
  }
}

TEST_CASE("an end passed to a pool task whose worker dies at once: end of "
          "pipe") {
  actors::pool p{1};
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    auto [r, w] = actors::pipe<int>(false);
    auto result = p.apply_async(send_then_die, w, 0);
    w.close();
    CHECK(code_of([&] { r.recv(10s); }) == actors::errc::end_of_pipe);
    CHECK(code_of([&] { result.get(10s); }) == actors::errc::worker_lost);
  }
}

TEST_CASE("an end taken from a queue by a process that dies at once: end of "
          "pipe") {
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    auto [r, w] = actors::pipe<int>(false);
    actors::queue<actors::connection<int>> q{actors::unbounded};
    actors::process p{take_end_then_die, q};
    p.start();
    q.put(w);
    w.close();
    CHECK(code_of([&] { r.recv(10s); }) == actors::errc::end_of_pipe);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
}

TEST_CASE("a writer killed right after its sends: every message, then end of pipe") {
  // Its death may be known before the hub has read what it sent; the end
  // of the pipe still comes only after the last message.
  for (int round = 0; round < 5; ++round) {
    auto [reader, writer] = actors::pipe<int>(false);
    actors::process p{send_then_die, writer, 2000};
    p.start();
    writer.close();
    for (int i = 0; i < 2000; ++i)
      REQUIRE(reader.recv(10s) == i);
    CHECK(code_of([&] { reader.recv(10s); }) == actors::errc::end_of_pipe);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
}

TEST_CASE("a writer killed as soon as it starts: end of pipe") {
  // start() may return before the child holds the end it was passed (a
  // child forked by the fork server loads its task itself); its death
  // must still end the pipe, once the parent has closed its copy.
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    auto [reader, writer] = actors::pipe<int>(false);
    actors::process p{send_then_die, writer, 0};
    p.start();
    writer.close();
    CHECK(code_of([&] { reader.recv(10s); }) == actors::errc::end_of_pipe);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
}

// -- from another host: the child's calls go through a stream to the hub
// (docs/architecture.md, "Other hosts"; support/stream_door.hpp) ------------

namespace {

// Echoes until the other end is closed, then sends until refused; reports
// the two errors.
void echo_over_stream(int port, actors::connection<std::string> conn,
                      actors::queue<std::vector<int>> report) {
  support::use_door(port);
  actors::errc recv_code{};
  for (;;) {
    if (!conn.poll(30s))
      throw std::runtime_error("nothing arrived");
    try {
      auto x = conn.recv();
      conn.send(std::move(x));
    } catch (const actors::error& e) {
      recv_code = static_cast<actors::errc>(e.code().value());
      break;
    }
  }
  actors::errc send_code{};
  for (auto t0 = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - t0 < 10s;) {
    send_code = code_of([&] { conn.send("anyone?"); });
    if (send_code != actors::errc{})
      break;
  }
  report.put({static_cast<int>(recv_code), static_cast<int>(send_code)});
}

// Sends 0 .. count-1 and closes its end, then waits for leave to go.
void send_close_wait_over_stream(int port, actors::connection<int> conn,
                                 int count, actors::queue<int> leave) {
  support::use_door(port);
  for (int i = 0; i < count; ++i)
    conn.send(i);
  conn.close();
  leave.get(30s);
}

void send_then_die_over_stream(int port, actors::connection<int> conn,
                               int count) {
  support::use_door(port);
  for (int i = 0; i < count; ++i)
    conn.send(i);
  ::raise(SIGKILL);
}

void send_big_then_die_over_stream(int port,
                                   actors::connection<std::string> conn,
                                   int count) {
  support::use_door(port);
  for (int i = 0; i < count; ++i)
    conn.send(std::string(1 << 20, static_cast<char>('a' + i % 26)));
  ::raise(SIGKILL);
}

std::string filled(std::size_t size, int seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>('a' + (i * 11 + seed) % 26);
  return s;
}

} // namespace

TEST_CASE("over a stream: a pipe carries messages both ways, and closing one "
          "end is end of pipe and broken pipe at the other") {
  support::stream_door door;
  auto [a, b] = actors::pipe<std::string>();
  actors::queue<std::vector<int>> report{actors::unbounded};
  actors::process child{echo_over_stream, door.port(), b, report};
  child.start();
  b.close();
  std::vector<std::string> sent;
  for (auto size : {0, 5, 1000, 300 << 10, 2 << 20})
    sent.push_back(filled(size, static_cast<int>(sent.size())));
  for (int i = 0; i < 300; ++i)
    sent.push_back("m" + std::to_string(i));
  for (auto& x : sent)
    a.send(x);
  for (auto& x : sent)
    REQUIRE(a.recv(30s) == x);
  a.close();
  auto r = report.get(30s);
  REQUIRE(r.size() == 2);
  CHECK(static_cast<actors::errc>(r[0]) == actors::errc::end_of_pipe);
  CHECK(static_cast<actors::errc>(r[1]) == actors::errc::broken_pipe);
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
  CHECK(door.accepted() >= 1);
}

TEST_CASE("over a stream: a writer that closes its end: every message, "
          "then end of pipe") {
  // Its close goes to the queue's actor, its messages through the stream:
  // close() first waits until the hub has read them.
  support::stream_door door;
  for (int round = 0; round < 3; ++round) {
    auto [reader, writer] = actors::pipe<int>(false);
    actors::queue<int> leave{actors::unbounded};
    actors::process p{send_close_wait_over_stream, door.port(), writer,
                      2000, leave};
    p.start();
    writer.close();
    for (int i = 0; i < 2000; ++i)
      REQUIRE(reader.recv(10s) == i);
    CHECK(code_of([&] { reader.recv(10s); }) == actors::errc::end_of_pipe);
    leave.put(0);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(door.accepted() >= 3);
}

TEST_CASE("over a stream: a writer killed right after its sends: every "
          "message, then end of pipe") {
  // Its death may be known before the hub has read its stream; the end of
  // the pipe still comes only after the last message (its stream named
  // its node: when_drained waits for it).
  support::stream_door door;
  for (int round = 0; round < 5; ++round) {
    auto [reader, writer] = actors::pipe<int>(false);
    actors::process p{send_then_die_over_stream, door.port(), writer, 2000};
    p.start();
    writer.close();
    for (int i = 0; i < 2000; ++i)
      REQUIRE(reader.recv(10s) == i);
    CHECK(code_of([&] { reader.recv(10s); }) == actors::errc::end_of_pipe);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
  CHECK(door.accepted() >= 5);
}

TEST_CASE("over a stream: a writer killed right after sending MiBs: every "
          "message, then end of pipe") {
  support::stream_door door;
  for (int round = 0; round < 3; ++round) {
    auto [reader, writer] = actors::pipe<std::string>(false);
    actors::process p{send_big_then_die_over_stream, door.port(), writer, 32};
    p.start();
    writer.close();
    for (int i = 0; i < 32; ++i)
      REQUIRE(reader.recv(10s)
              == std::string(1 << 20, static_cast<char>('a' + i % 26)));
    CHECK(code_of([&] { reader.recv(10s); }) == actors::errc::end_of_pipe);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
}
