// User actors in their own OS processes: spawn (function, stateful, class,
// typed), request/response with timeouts, monitor and link across
// processes, every exit reason, named services, and no process left behind.

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/actor_process.hpp"
#include "actors/ask.hpp"
#include "subprocess.hpp"

using namespace std::chrono_literals;

namespace {

using pid_atom = caf::atom_constant<caf::atom("pid")>;
using segv_atom = caf::atom_constant<caf::atom("segv")>;
using throw_atom = caf::atom_constant<caf::atom("throw")>;
using quit_atom = caf::atom_constant<caf::atom("quit")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;
using hang_atom = caf::atom_constant<caf::atom("hang")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using down_atom = caf::atom_constant<caf::atom("down")>;
using find_atom = caf::atom_constant<caf::atom("find")>;
using silent_atom = caf::atom_constant<caf::atom("silent")>;
using cut_atom = caf::atom_constant<caf::atom("cut")>;
using expect_atom = caf::atom_constant<caf::atom("expect")>;
using blast_atom = caf::atom_constant<caf::atom("blast")>;

// A message type of this program, registered below.
struct point {
  int x = 0;
  int y = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("point"), p.x, p.y);
}

// Never registered: it must be reported, not delivered empty.
struct stranger {
  int n = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stranger& s) {
  return f(caf::meta::type_name("stranger"), s.n);
}

const bool registered = (actors::add_message_types<point>(), true);

// The actor of most cases: answers with its pid, ends as it is told.
caf::behavior subject(caf::event_based_actor* self, int base) {
  return {
    [=](int x) { return base + x; },
    [](pid_atom) { return static_cast<int>(::getpid()); },
    [](point p) { return point{p.y, p.x}; },
    [](segv_atom) { std::raise(SIGSEGV); },
    [](throw_atom) -> int { throw std::runtime_error("boom"); },
    [=](quit_atom) { self->quit(); },
    [=](fail_atom) { self->quit(caf::make_error(caf::sec::invalid_argument)); },
    [](hang_atom) {
      for (;;)
        ::pause();
    },
    [](stranger) {},
    [=](silent_atom) { return self->make_response_promise<int>(); },
    // Cuts this process's connection to its owner (its link's socket is
    // descriptor 3 in a child) while the process runs on.
    [](cut_atom) { ::shutdown(3, SHUT_RDWR); },
  };
}

// Monitors the actor it is given and reports its down message's reason.
caf::behavior watcher(caf::event_based_actor* self, caf::actor target,
                      caf::actor report) {
  self->monitor(target);
  self->set_down_handler([=](caf::down_msg& dm) {
    self->send(report, down_atom::value, std::move(dm.reason));
  });
  return {[](pid_atom) { return static_cast<int>(::getpid()); }};
}

// Linked to the actor it is given: ends when it ends.
caf::behavior partner(caf::event_based_actor* self, caf::actor target) {
  self->link_to(target);
  return {[](pid_atom) { return static_cast<int>(::getpid()); }};
}

struct counter_state {
  int total = 0;
};

caf::behavior counter(caf::stateful_actor<counter_state>* self) {
  return {[=](int x) { return self->state.total += x; }};
}

using calculator = caf::typed_actor<caf::replies_to<int, int>::with<int>>;

calculator::behavior_type typed_adder(calculator::pointer) {
  return {[](int a, int b) { return a + b; }};
}

using mover = caf::typed_actor<caf::replies_to<point>::with<point>>;

mover::behavior_type typed_mover(mover::pointer) {
  return {[](point p) { return point{p.x + 1, p.y + 1}; }};
}

using smuggler = caf::typed_actor<caf::reacts_to<stranger>>;

smuggler::behavior_type typed_smuggler(smuggler::pointer) {
  return {[](stranger) {}};
}

class greeter : public caf::event_based_actor {
public:
  greeter(caf::actor_config& cfg, std::string greeting)
    : caf::event_based_actor(cfg), greeting_(std::move(greeting)) {
    // nop
  }

  caf::behavior make_behavior() override {
    return {
      [=](const std::string& who) { return greeting_ + who; },
      [](throw_atom) -> int { throw std::logic_error("class boom"); },
    };
  }

private:
  std::string greeting_;
};

class typed_greeter : public calculator::base {
public:
  explicit typed_greeter(caf::actor_config& cfg) : calculator::base(cfg) {
    // nop
  }

  behavior_type make_behavior() override {
    return {[](int a, int b) { return a * b; }};
  }
};

class refuses : public caf::event_based_actor {
public:
  explicit refuses(caf::actor_config& cfg) : caf::event_based_actor(cfg) {
    throw std::runtime_error("no, thanks");
  }

  caf::behavior make_behavior() override {
    return {[](int) {}};
  }
};

// Looks up a service by name when asked, and asks it.
caf::behavior seeker(caf::event_based_actor* self) {
  return {[=](find_atom, const std::string& name) -> caf::result<int> {
    auto target = actors::whereis(name);
    if (!target)
      return caf::make_error(caf::sec::invalid_argument);
    auto rp = self->make_response_promise<int>();
    self->request(target, 5s, 1).then([rp](int x) mutable { rp.deliver(x); });
    return rp;
  }};
}

using give_atom = caf::atom_constant<caf::atom("give")>;
using stranger_atom = caf::atom_constant<caf::atom("stranger")>;

// Answers every message with itself; `give n` with n int64s, `stranger`
// with a type that was never registered.
caf::behavior echo(caf::event_based_actor* self) {
  self->set_default_handler(caf::reflect);
  return {
    [](give_atom, int n) {
      return std::vector<std::int64_t>(static_cast<size_t>(n), 7);
    },
    [](stranger_atom) { return stranger{7}; },
    [](fail_atom) -> caf::result<int> {
      return actors::make_error(actors::errc::invalid_argument, "refused");
    },
  };
}

caf::actor_system& sys() {
  return actors::system();
}

template <class Handle, class... Ts>
int ask_int(const Handle& h, Ts... xs) {
  caf::scoped_actor self{sys()};
  int result = -1;
  self->request(h, 10s, xs...).receive([&](int x) { result = x; },
                                       [&](caf::error& err) {
                                         FAIL_CHECK(sys().render(err));
                                       });
  return result;
}

// The reason `h` ends with, seen by a monitor.
caf::error down_reason(const caf::actor& h) {
  caf::scoped_actor self{sys()};
  self->monitor(h);
  caf::error reason = caf::make_error(caf::sec::request_timeout);
  self->receive([&](caf::down_msg& dm) { reason = std::move(dm.reason); },
                caf::after(20s) >> [] { FAIL_CHECK("no down message in 20 s"); });
  return reason;
}

std::string context(const caf::error& err) {
  return err.context().match_elements<std::string>()
           ? err.context().get_as<std::string>(0)
           : std::string{};
}

} // namespace

TEST_CASE("a function-based actor runs in its own process and answers") {
  auto p = actors::spawn(subject, 40);
  REQUIRE(p.is_alive());
  CHECK(p.pid() != ::getpid());
  CHECK(p.name().rfind("Actor-", 0) == 0);
  CHECK(ask_int(p.handle(), 2) == 42);
  CHECK(ask_int(p.handle(), pid_atom::value) == p.pid());
  caf::scoped_actor self{sys()};
  self->request(p.handle(), 10s, point{1, 2})
    .receive([](point q) { CHECK((q.x == 2 && q.y == 1)); },
             [](caf::error& err) { FAIL_CHECK(sys().render(err)); });
  CHECK(p.stop(10s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("stateful, typed and class-based actors run in processes") {
  auto c = actors::spawn(counter);
  CHECK(ask_int(c.handle(), 5) == 5);
  CHECK(ask_int(c.handle(), 7) == 12);
  auto t = actors::spawn(typed_adder);
  static_assert(std::is_same_v<decltype(t.handle()), const calculator&>);
  CHECK(ask_int(t.handle(), 20, 22) == 42);
  auto m = actors::spawn(typed_mover);
  caf::scoped_actor self{sys()};
  self->request(m.handle(), 10s, point{1, 1})
    .receive([](point q) { CHECK((q.x == 2 && q.y == 2)); },
             [](caf::error& err) { FAIL_CHECK(sys().render(err)); });
  auto g = actors::spawn<greeter>(actors::actor_options{"Greeter"},
                                  std::string{"hello "});
  CHECK(g.name() == "Greeter");
  self->request(g.handle(), 10s, std::string{"world"})
    .receive([](const std::string& s) { CHECK(s == "hello world"); },
             [](caf::error& err) { FAIL_CHECK(sys().render(err)); });
  auto tg = actors::spawn<typed_greeter>();
  static_assert(std::is_same_v<decltype(tg.handle()), const calculator&>);
  CHECK(ask_int(tg.handle(), 6, 7) == 42);
  for (auto pid : {c.pid(), t.pid(), m.pid(), g.pid(), tg.pid()})
    CHECK(pid != ::getpid());
}

TEST_CASE("a request that gets no answer ends at its timeout") {
  auto p = actors::spawn(subject, 0);
  caf::scoped_actor self{sys()};
  caf::error err;
  auto t0 = std::chrono::steady_clock::now();
  self->request(p.handle(), 200ms, silent_atom::value)
    .receive([](int) { FAIL_CHECK("no answer expected"); },
             [&](caf::error& e) { err = std::move(e); });
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(err == caf::sec::request_timeout);
  CHECK(took >= 200ms);
  CHECK(took < 5s);
  CHECK(ask_int(p.handle(), 1) == 1);
}

TEST_CASE("exit reasons: normal, error, exception, signals, stop, connection lost") {
  SUBCASE("normal") {
    auto p = actors::spawn(subject, 0);
    caf::anon_send(p.handle(), quit_atom::value);
    CHECK_FALSE(down_reason(p.handle()));
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
  }
  SUBCASE("quit with an error") {
    auto p = actors::spawn(subject, 0);
    caf::anon_send(p.handle(), fail_atom::value);
    CHECK(down_reason(p.handle()) == caf::sec::invalid_argument);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 1);
  }
  SUBCASE("uncaught exception") {
    auto p = actors::spawn(subject, 0);
    caf::anon_send(p.handle(), throw_atom::value);
    auto reason = down_reason(p.handle());
    CHECK(actors::errc_of(reason) == actors::errc::actor_failed);
    CHECK(context(reason) == "std::runtime_error: boom");
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 1);
  }
  SUBCASE("uncaught exception in a class-based actor") {
    auto p = actors::spawn<greeter>(std::string{"hi"});
    caf::anon_send(p.handle(), throw_atom::value);
    auto reason = down_reason(p.handle());
    CHECK(actors::errc_of(reason) == actors::errc::actor_failed);
    CHECK(context(reason) == "std::logic_error: class boom");
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 1);
  }
  SUBCASE("SIGSEGV") {
    auto p = actors::spawn(subject, 0);
    caf::anon_send(p.handle(), segv_atom::value);
    auto reason = down_reason(p.handle());
    CHECK(actors::errc_of(reason) == actors::errc::process_died);
    CHECK(context(reason).find("killed by signal 11 (SIGSEGV)")
          != std::string::npos);
    CHECK(context(reason).find(std::to_string(p.pid())) != std::string::npos);
    CHECK(p.exitcode() == -SIGSEGV);
  }
  SUBCASE("SIGKILL") {
    auto p = actors::spawn(subject, 0);
    p.kill();
    auto reason = down_reason(p.handle());
    CHECK(actors::errc_of(reason) == actors::errc::process_died);
    CHECK(context(reason).find("killed by signal 9 (SIGKILL)")
          != std::string::npos);
    CHECK(p.exitcode() == -SIGKILL);
  }
  SUBCASE("stop") {
    auto p = actors::spawn(subject, 0);
    auto h = p.handle();
    REQUIRE(p.stop(10s));
    CHECK(down_reason(h) == caf::exit_reason::user_shutdown);
    CHECK(p.exitcode() == 0);
  }
  SUBCASE("stop of an actor that does not stop: killed after its timeout") {
    actors::actor_options opts;
    opts.stop_timeout = 300ms;
    auto p = actors::spawn(opts, subject, 0);
    caf::anon_send(p.handle(), hang_atom::value);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(p.stop(10s));
    CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
    auto reason = down_reason(p.handle());
    CHECK(actors::errc_of(reason) == actors::errc::process_died);
    CHECK(context(reason).find("did not stop within") != std::string::npos);
    CHECK(p.exitcode() == -SIGKILL);
  }
  SUBCASE("connection lost while the process runs: killed") {
    auto p = actors::spawn(subject, 0);
    caf::anon_send(p.handle(), cut_atom::value);
    auto reason = down_reason(p.handle());
    CHECK(actors::errc_of(reason) == actors::errc::connection_lost);
    CHECK(context(reason).find("the process was killed") != std::string::npos);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
  SUBCASE("kill exit message kills the process") {
    auto p = actors::spawn(subject, 0);
    caf::anon_send_exit(p.handle(), caf::exit_reason::kill);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == -SIGKILL);
  }
}

TEST_CASE("monitor and link work across processes with the mapped reasons") {
  caf::scoped_actor self{sys()};
  auto target = actors::spawn(subject, 0);
  auto w = actors::spawn(watcher, target.handle(), caf::actor{self});
  auto partner_p = actors::spawn(partner, target.handle());
  CHECK(ask_int(w.handle(), pid_atom::value) == w.pid());
  CHECK(ask_int(partner_p.handle(), pid_atom::value) == partner_p.pid());
  target.kill();
  caf::error seen;
  self->receive([&](down_atom, caf::error& reason) { seen = reason; },
                caf::after(20s) >> [] { FAIL_CHECK("the watcher saw no down"); });
  CHECK(actors::errc_of(seen) == actors::errc::process_died);
  CHECK(context(seen).find("signal 9") != std::string::npos);
  // The linked partner ended with the same reason, and its process with 1.
  auto reason = down_reason(partner_p.handle());
  INFO("the partner's down reason: " << actors::describe(reason));
  CHECK(actors::errc_of(reason) == actors::errc::process_died);
  REQUIRE(partner_p.join(10s));
  CHECK(partner_p.exitcode() == 1);
  CHECK(w.is_alive());
}

TEST_CASE("a local actor that fails ends the actor process linked to it") {
  auto p = actors::spawn(subject, 0);
  sys().spawn([h = p.handle()](caf::event_based_actor* s) {
    s->link_to(h);
    s->quit(caf::make_error(caf::sec::runtime_error));
  });
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 1);
  CHECK(down_reason(p.handle()) == caf::sec::runtime_error);
}

TEST_CASE("a request in flight when the actor's process dies fails at once, "
          "naming the signal") {
  auto p = actors::spawn(subject, 0);
  caf::scoped_actor self{sys()};
  caf::error err;
  auto t0 = std::chrono::steady_clock::now();
  // The handler kills its own process: the request is never answered.
  self->request(p.handle(), 60s, segv_atom::value)
    .receive([] { FAIL_CHECK("answered"); }, [&](caf::error& e) { err = e; });
  auto took = std::chrono::steady_clock::now() - t0;
  MESSAGE("failed after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
          << " ms: " << sys().render(err));
  CHECK(actors::errc_of(err) == actors::errc::process_died);
  CHECK(context(err).find("killed by signal 11 (SIGSEGV)") != std::string::npos);
  CHECK(took < 10s); // not its 60 s timeout
  // And a request after that fails at once too.
  t0 = std::chrono::steady_clock::now();
  self->request(p.handle(), 60s, 1)
    .receive([](int) { FAIL_CHECK("answered"); }, [&](caf::error& e) { err = e; });
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(err);
}

TEST_CASE("actors::ask answers on the calling thread, with every failure "
          "as an error and every wait bounded") {
  auto p = actors::spawn(subject, 40);
  auto h = p.handle();
  using actors::errc;
  auto code = [](const caf::error& e) { return actors::errc_of(e); };
  // Answers of each kind, from a dynamically typed and a typed actor.
  auto sum = actors::ask<int>(h, 10s, 2);
  REQUIRE(sum);
  CHECK(*sum == 42);
  auto swapped = actors::ask<point>(h, 10s, point{1, 2});
  REQUIRE(swapped);
  CHECK((swapped->x == 2 && swapped->y == 1));
  auto c = actors::spawn(typed_adder);
  auto three = actors::ask<int>(c.handle(), 10s, 1, 2);
  REQUIRE(three);
  CHECK(*three == 3);
  // The wrong type, a message without a handler, an empty handle.
  auto text = actors::ask<std::string>(h, 10s, 2);
  REQUIRE(!text);
  CHECK(code(text.error()) == errc::type_mismatch);
  auto odd = actors::ask<int>(h, 10s, std::string{"odd"});
  REQUIRE(!odd);
  CHECK(odd.error() == caf::sec::unexpected_message);
  CHECK(code(actors::ask<int>(caf::actor{}, 10s, 1).error())
        == errc::invalid_argument);
  // Timeouts: a silent actor, zero; a late answer is dropped, not taken
  // for the next one.
  auto t0 = std::chrono::steady_clock::now();
  auto silent = actors::ask<int>(h, 100ms, silent_atom::value);
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!silent);
  CHECK(code(silent.error()) == errc::timeout);
  CHECK(took >= 100ms);
  CHECK(took < 5s);
  CHECK(code(actors::ask<int>(h, 0s, 5).error()) == errc::timeout);
  auto next = actors::ask<int>(h, 10s, 6);
  REQUIRE(next);
  CHECK(*next == 46);
  // Threads asking at once get their own answers.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        auto x = actors::ask<int>(h, 10s, t * 1000 + i);
        if (!x || *x != t * 1000 + i + 40)
          ++wrong;
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(wrong == 0);
  // An actor of this process, through CAF's request.
  auto local = sys().spawn(subject, 1);
  auto two = actors::ask<int>(local, 10s, 1);
  REQUIRE(two);
  CHECK(*two == 2);
  CHECK(code(actors::ask<int>(local, 50ms, silent_atom::value).error())
        == errc::timeout);
  CHECK(code(actors::ask<std::string>(local, 10s, 1).error())
        == errc::type_mismatch);
  caf::anon_send_exit(local, caf::exit_reason::user_shutdown);
  // ask<void>: a handler that returns nothing; not one that answers.
  CHECK(code(actors::ask<void>(c.handle(), 10s, 1, 2).error())
        == errc::type_mismatch);
  auto q = actors::spawn(subject, 0);
  CHECK(actors::ask<void>(q.handle(), 10s, quit_atom::value));
  CHECK(q.join(10s));
  // The process dies while the request is in flight: at once, named.
  t0 = std::chrono::steady_clock::now();
  auto died = actors::ask<int>(h, 60s, segv_atom::value);
  took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!died);
  MESSAGE("failed after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
          << " ms: " << sys().render(died.error()));
  CHECK(code(died.error()) == errc::process_died);
  CHECK(context(died.error()).find("SIGSEGV") != std::string::npos);
  CHECK(took < 10s);
  auto after = actors::ask<int>(h, 60s, 1);
  REQUIRE(!after);
  CHECK(code(after.error()) == errc::process_died);
}

TEST_CASE("types that cannot cross: reported at spawn, or by the request") {
  auto code = [](auto fn) {
    try {
      fn();
    } catch (const actors::error& e) {
      MESSAGE(std::string{e.what()});
      return static_cast<actors::errc>(e.code().value());
    }
    return actors::errc{};
  };
  CHECK(code([] { actors::spawn(typed_smuggler); })
        == actors::errc::not_registered);
  auto p = actors::spawn(subject, 0);
  caf::scoped_actor self{sys()};
  caf::error err;
  self->request(p.handle(), 10s, stranger{3})
    .receive([] { FAIL_CHECK("delivered"); }, [&](caf::error& e) { err = e; });
  CHECK(actors::errc_of(err) == actors::errc::not_registered);
  CHECK(context(err).find("stranger") != std::string::npos);
  CHECK(ask_int(p.handle(), 1) == 1); // still serving
}

TEST_CASE("standard containers of builtins cross unregistered, in requests "
          "and replies") {
  auto p = actors::spawn(echo);
  caf::scoped_actor self{sys()};
  // The actor's own reply of a vector<int64_t> (issue 18: dropped).
  std::vector<std::int64_t> got;
  self->request(p.handle(), 10s, give_atom::value, 3)
    .receive([&](std::vector<std::int64_t>& xs) { got = std::move(xs); },
             [](caf::error& err) { FAIL_CHECK(sys().render(err)); });
  CHECK(got == std::vector<std::int64_t>{7, 7, 7});
  // Each of these goes there and back: the request and its reply hold it.
  auto round_trip = [&](auto x) {
    using type = decltype(x);
    std::optional<type> back;
    self->request(p.handle(), 10s, x)
      .receive([&](type& y) { back = std::move(y); },
               [&](caf::error& err) {
                 FAIL_CHECK(typeid(type).name() << ": " << sys().render(err));
               });
    CHECK_MESSAGE(back == x, typeid(type).name());
  };
  round_trip(std::vector<std::int64_t>{1, -2, std::int64_t{1} << 40});
  round_trip(std::vector<long long>{3, -4});
  round_trip(std::vector<int>{5, 6});
  round_trip(std::vector<std::uint8_t>{8, 9});
  round_trip(std::vector<std::uint64_t>{10});
  round_trip(std::vector<float>{1.5f});
  round_trip(std::vector<double>{0.5, -1.25});
  round_trip(std::vector<bool>{true, false, true});
  round_trip(std::vector<caf::atom_value>{caf::atom("x")});
  round_trip(std::vector<std::vector<int>>{{1}, {2, 3}});
  round_trip(std::vector<std::vector<std::string>>{{"a"}, {}});
  round_trip(std::list<std::string>{"a", "b"});
  round_trip(std::deque<double>{1.5});
  round_trip(std::set<int>{3, 1, 2});
  round_trip(std::set<std::int64_t>{-7});
  round_trip(std::unordered_set<std::string>{"x", "y"});
  round_trip(std::map<std::string, std::int64_t>{{"a", 1}, {"b", -2}});
  round_trip(std::map<int, double>{{1, 0.25}});
  round_trip(std::map<std::int64_t, std::string>{{-1, "minus one"}});
  round_trip(std::unordered_map<std::string, int>{{"nine", 9}});
  CHECK(ask_int(p.handle(), 1) == 1);
}

TEST_CASE("an answer that is an error reaches the requester, and so do the "
          "answers after it") {
  auto p = actors::spawn(echo);
  caf::scoped_actor self{sys()};
  for (int i = 0; i < 3; ++i) {
    caf::error err;
    self->request(p.handle(), 10s, fail_atom::value)
      .receive([](int) { FAIL_CHECK("no error"); },
               [&](caf::error& e) { err = std::move(e); });
    CHECK(actors::errc_of(err) == actors::errc::invalid_argument);
    CHECK(context(err) == "refused");
    CHECK(ask_int(p.handle(), i) == i);
  }
}

TEST_CASE("a reply holding an unregistered type fails its request with "
          "not_registered, at once") {
  auto p = actors::spawn(echo);
  caf::scoped_actor self{sys()};
  caf::error err;
  auto t0 = std::chrono::steady_clock::now();
  self->request(p.handle(), 20s, stranger_atom::value)
    .receive([](stranger) { FAIL_CHECK("delivered"); },
             [&](caf::error& e) { err = std::move(e); });
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(actors::errc_of(err) == actors::errc::not_registered);
  MESSAGE(actors::describe(err));
  CHECK(context(err).find("stranger") != std::string::npos);
  CHECK(context(err).find(p.name()) != std::string::npos);
  CHECK(took < 5s); // not the request's timeout
  CHECK(ask_int(p.handle(), 1) == 1); // still serving
  CHECK(p.stop(10s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("a spawn that fails says why, and leaves no process") {
  auto before = support::list_children().size();
  try {
    actors::spawn<refuses>();
    FAIL_CHECK("spawned");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::spawn_failed);
    CHECK(std::string{e.what()}.find("std::runtime_error: no, thanks")
          != std::string::npos);
  }
  CHECK(support::eventually(
    [&] { return support::list_children().size() <= before; }, 5000ms));
  actors::actor_options bad;
  bad.stop_timeout = 0ms;
  try {
    actors::spawn(bad, subject, 0);
    FAIL_CHECK("spawned");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::invalid_argument);
  }
}

TEST_CASE("named services: registered, found from another process, gone with the actor") {
  auto p = actors::spawn(subject, 41);
  actors::register_name("adder", p.handle());
  CHECK(actors::whereis("adder") == p.handle());
  auto other = actors::spawn(subject, 0);
  try {
    actors::register_name("adder", other.handle());
    FAIL_CHECK("registered twice");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::name_taken);
  }
  auto s = actors::spawn(seeker);
  CHECK(ask_int(s.handle(), find_atom::value, std::string{"adder"}) == 42);
  p.kill();
  REQUIRE(p.join(10s));
  down_reason(p.handle());
  CHECK(support::eventually([] { return !actors::whereis("adder"); },
                            5000ms));
  actors::register_name("adder", other.handle());
  CHECK(ask_int(s.handle(), find_atom::value, std::string{"adder"}) == 1);
}

namespace {

// Takes numbered messages; on "expect n", answers once n have arrived with
// how many came out of order (0..n-1 expected, each once).
caf::behavior in_order(caf::event_based_actor* self) {
  struct state {
    int next = 0;
    int wrong = 0;
    int expected = -1;
    caf::response_promise done;
  };
  auto st = std::make_shared<state>();
  auto check = [st] {
    if (st->expected >= 0 && st->next == st->expected) {
      st->done.deliver(st->wrong);
      st->expected = -1;
    }
  };
  return {
    [=](expect_atom, int n) -> caf::result<int> {
      st->expected = n; // in all, since the start
      st->done = self->make_response_promise();
      check();
      return st->done;
    },
    [=](int i) {
      if (i != st->next)
        ++st->wrong;
      ++st->next;
      check();
    },
  };
}

// On "blast first n", sends first..first+n-1 to `target` from its handler,
// then answers n.
caf::behavior blaster(caf::event_based_actor* self, caf::actor target) {
  return {[=](blast_atom, int first, int n) {
    for (int i = first; i < first + n; ++i)
      self->send(target, i);
    return n;
  }};
}

} // namespace

TEST_CASE("20,000 messages from one actor process to another arrive in "
          "order") {
  auto b = actors::spawn(in_order);
  auto a = actors::spawn(blaster, b.handle());
  for (int round = 1; round <= 3; ++round) {
    CAPTURE(round);
    caf::scoped_actor self{sys()};
    auto done = self->request(b.handle(), 30s, expect_atom::value,
                              20000 * round);
    CHECK(ask_int(a.handle(), blast_atom::value, 20000 * (round - 1), 20000)
          == 20000);
    int wrong = -1;
    std::move(done).receive([&](int w) { wrong = w; },
                            [&](caf::error& e) { FAIL_CHECK(sys().render(e)); });
    CHECK(wrong == 0);
  }
}

TEST_CASE("ping-pong between two actor processes") {
  auto pong = actors::spawn(subject, 1);
  auto ping = actors::spawn(seeker);
  actors::register_name("pong", pong.handle());
  for (int i = 0; i < 100; ++i)
    CHECK(ask_int(ping.handle(), find_atom::value, std::string{"pong"}) == 2);
  CHECK(ping.pid() != pong.pid());
}

namespace {

// An owner of two actor processes that reports their pids and waits.
int actor_owner(int, char**) {
  auto a = actors::spawn(subject, 0);
  auto b = actors::spawn<greeter>(std::string{"hi"});
  std::printf("%d %d\n", static_cast<int>(a.pid()), static_cast<int>(b.pid()));
  std::fflush(stdout);
  for (;;)
    ::pause();
}

support::helper_mode actor_owner_mode{"actor-owner", actor_owner};

// An owner that exits normally with actor processes running.
int actor_owner_exits(int, char**) {
  auto a = actors::spawn(subject, 0);
  std::printf("%d\n", static_cast<int>(a.pid()));
  std::fflush(stdout);
  return 0;
}

support::helper_mode actor_owner_exits_mode{"actor-owner-exits",
                                            actor_owner_exits};

} // namespace

TEST_CASE("actor processes end when their owner is SIGKILLed") {
  auto owner = support::subprocess::helper("actor-owner");
  auto line = owner.read_line(10s);
  REQUIRE(line);
  auto pids = support::parse_pids(*line);
  REQUIRE(pids.size() == 2);
  owner.kill(SIGKILL);
  REQUIRE(owner.wait(5s) == -SIGKILL);
  for (auto pid : pids)
    CHECK(support::wait_ended(pid, 2000ms));
}

TEST_CASE("actor processes are stopped when their owner exits") {
  auto owner = support::subprocess::helper("actor-owner-exits");
  auto line = owner.read_line(10s);
  REQUIRE(line);
  auto pids = support::parse_pids(*line);
  REQUIRE(pids.size() == 1);
  CHECK(owner.wait(10s) == 0);
  CHECK(support::wait_ended(pids[0], 2000ms));
}

TEST_CASE("no actor process outlives its handle's stop") {
  auto before = support::list_children();
  {
    std::vector<actors::actor_process<caf::actor>> ps;
    for (int i = 0; i < 8; ++i)
      ps.push_back(actors::spawn(subject, i));
    for (auto& p : ps)
      CHECK(p.stop(10s));
  }
  CHECK(support::eventually(
    [&] { return support::list_children().size() <= before.size(); },
    5000ms));
}

TEST_CASE("a dropped handle neither stops nor waits: the actor serves on") {
  pid_t pid;
  {
    auto p = actors::spawn(subject, 5);
    pid = p.pid();
    actors::register_name("kept", p.handle());
  }
  auto h = actors::whereis("kept");
  REQUIRE(h);
  CHECK(ask_int(h, 1) == 6);
  CHECK(ask_int(h, pid_atom::value) == pid);
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  CHECK(down_reason(h) == caf::exit_reason::user_shutdown);
  CHECK(support::wait_ended(pid, 5000ms));
}
