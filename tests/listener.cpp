// actors::listener and actors::client (Python's multiprocessing.connection
// Listener and Client): another program connects with the key, both ends
// carry typed items both ways in order, the ends work with wait() and pass
// to children, a closed or dead end is the other's end of pipe, and a
// wrong key, nothing listening or a silent listener are typed errors.

#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <unistd.h>
#include <vector>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

struct reading {
  std::string sensor;
  std::vector<double> values;

  friend bool operator==(const reading& a, const reading& b) {
    return a.sensor == b.sensor && a.values == b.values;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reading& x) {
  return f(caf::meta::type_name("reading"), x.sensor, x.values);
}

std::string key_file(const char* name) {
  auto path = std::string{"/tmp/actors-listener-"} + name + "-"
              + std::to_string(::getpid());
  ::unlink(path.c_str());
  return path;
}

// -- another program: this test binary run as a helper, its own owner -----------

// Connects to argv[0] with the key file argv[1], echoes every reading back
// with its values doubled until its end of pipe, then reports how many.
int echo_client(int, char** argv) {
  auto conn = actors::client<reading>(argv[0], argv[1]);
  int n = 0;
  try {
    for (;;) {
      auto r = conn.recv(30s);
      for (auto& v : r.values)
        v *= 2;
      conn.send(r);
      ++n;
    }
  } catch (const actors::error& e) {
    if (e.code() != actors::errc::end_of_pipe)
      return 3;
  }
  std::printf("%d\n", n);
  std::fflush(stdout);
  return 0;
}

support::helper_mode echo_client_mode{"echo-client", echo_client};

// Connects, says hello, and waits for SIGKILL.
int hello_client(int, char** argv) {
  auto conn = actors::client<std::string>(argv[0], argv[1]);
  conn.send("hello");
  for (;;)
    ::pause();
}

support::helper_mode hello_client_mode{"hello-client", hello_client};

// A child that serves an accepted end it was given.
void answers(actors::connection<std::string> conn) {
  conn.send("child says " + conn.recv(10s));
}

} // namespace

TEST_CASE("another program connects with the key: typed items both ways, in "
          "order, then end of pipe") {
  auto key = key_file("echo");
  actors::listener<reading> server{"127.0.0.1:0", key};
  auto address = server.address();
  CHECK(address.rfind("127.0.0.1:", 0) == 0);
  CHECK(address != "127.0.0.1:0");
  auto other = support::subprocess::helper("echo-client", {address, key});
  auto conn = server.accept(10s);
  for (int i = 0; i < 100; ++i)
    conn.send(reading{"s" + std::to_string(i), {1.0 * i, 0.5}});
  for (int i = 0; i < 100; ++i)
    CHECK(conn.recv(10s)
          == reading{"s" + std::to_string(i), {2.0 * i, 1.0}});
  conn.close(); // the other program reads its end of pipe
  CHECK(other.read_line(10s) == "100");
  CHECK(other.wait(10s) == 0);
  ::unlink(key.c_str());
}

TEST_CASE("client and listener in one program: wait() sees an accepted end, "
          "a closed end is the other's end of pipe") {
  auto key = key_file("local");
  actors::listener<std::string> server{"127.0.0.1:0", key};
  auto near = actors::client<std::string>(server.address(), key);
  auto far = server.accept(10s);
  CHECK(actors::wait({far}, 10ms).empty());
  near.send("one");
  auto ready = actors::wait({far}, 10s);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0] == far);
  CHECK(far.recv() == "one");
  far.send("two");
  CHECK(near.recv(10s) == "two");
  near.close();
  CHECK(code_of([&] { far.recv(10s); }) == actors::errc::end_of_pipe);
  CHECK(far.poll());
  // Its sends fail once the other side has stopped reading.
  CHECK(support::eventually(
    [&] {
      return code_of([&] { far.send("lost?"); })
             == actors::errc::broken_pipe;
    },
    10s));
  ::unlink(key.c_str());
}

TEST_CASE("an accepted end passes to a child like any pipe end") {
  auto key = key_file("child");
  actors::listener<std::string> server{"127.0.0.1:0", key};
  auto mine = actors::client<std::string>(server.address(), key);
  auto accepted = server.accept(10s);
  actors::process p{answers, accepted};
  p.start();
  accepted.close(); // the child holds it now
  mine.send("hi");
  CHECK(mine.recv(10s) == "child says hi");
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  // The child was its last holder: the connection ends.
  CHECK(code_of([&] { mine.recv(10s); }) == actors::errc::end_of_pipe);
  ::unlink(key.c_str());
}

TEST_CASE("a client program killed: its accepted end receives what it sent, "
          "then end of pipe") {
  auto key = key_file("killed");
  actors::listener<std::string> server{"127.0.0.1:0", key};
  auto other = support::subprocess::helper("hello-client",
                                           {server.address(), key});
  auto conn = server.accept(10s);
  CHECK(conn.recv(10s) == "hello");
  ::kill(other.pid(), SIGKILL);
  CHECK(code_of([&] { conn.recv(10s); }) == actors::errc::end_of_pipe);
  CHECK(other.wait(10s) == -SIGKILL);
  ::unlink(key.c_str());
}

TEST_CASE("a wrong key, nothing listening, a closed listener and no client "
          "in time are typed errors") {
  auto key = key_file("right");
  auto wrong = key_file("wrong");
  actors::listener<int> server{"127.0.0.1:0", key};
  actors::listener<int> other{"127.0.0.1:0", wrong}; // makes the wrong key
  CHECK(code_of([&] { actors::client<int>(server.address(), wrong, 5s); })
        == actors::errc::unauthenticated);
  CHECK(code_of([&] { server.accept(50ms); }) == actors::errc::timeout);
  CHECK(code_of([&] {
          actors::client<int>("127.0.0.1:1", key, 5s);
        })
        == actors::errc::owner_unreachable);
  CHECK(code_of([&] { actors::client<int>("no-port", key, 5s); })
        == actors::errc::invalid_argument);
  CHECK(code_of([&] {
          actors::client<int>(server.address(), "/nonexistent/key", 5s);
        })
        == actors::errc::invalid_argument);
  auto address = server.address();
  server.close();
  CHECK(code_of([&] { server.accept(10ms); }) == actors::errc::closed);
  CHECK(code_of([&] { actors::client<int>(address, key, 5s); })
        == actors::errc::owner_unreachable);
  CHECK(code_of([&] {
          actors::listener<int>{"no.such.host.invalid:0", key};
        })
        == actors::errc::invalid_argument);
  ::unlink(key.c_str());
  ::unlink(wrong.c_str());
}
