// Actor links (libactors/src/link/): real OS processes of this test binary,
// each with its own caf::actor_system and link manager, connected over an
// inherited socket pair or by name. Covers request/response, handles both
// ways, order, exit and down reasons, dead actors, links both ways,
// concurrent blocking callers, peer death (SIGKILL), back-pressure, a
// blocking handler, a third process's handle, typed actors, unregistered
// types and the blocking call with its addressed doorbell.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "base/error.hpp"
#include "error_code.hpp"
#include "link/manager.hpp"
#include "node/scheduler.hpp"
#include "subprocess.hpp"

using namespace std::chrono_literals;
using actors::errc;
using actors::detail::links::manager;

namespace {

using echo_atom = caf::atom_constant<caf::atom("echo")>;
using worker_atom = caf::atom_constant<caf::atom("worker")>;
using counter_atom = caf::atom_constant<caf::atom("counter")>;
using seq_atom = caf::atom_constant<caf::atom("seq")>;
using check_atom = caf::atom_constant<caf::atom("check")>;
using quit_atom = caf::atom_constant<caf::atom("quit")>;
using linkto_atom = caf::atom_constant<caf::atom("linkto")>;
using pingme_atom = caf::atom_constant<caf::atom("pingme")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using local_atom = caf::atom_constant<caf::atom("islocal")>;
using block_atom = caf::atom_constant<caf::atom("block")>;
using blocker_atom = caf::atom_constant<caf::atom("blocker")>;
using calc_atom = caf::atom_constant<caf::atom("calc")>;
using secret_atom = caf::atom_constant<caf::atom("secret")>;
using relay_atom = caf::atom_constant<caf::atom("relay")>;
using pid_atom = caf::atom_constant<caf::atom("pid")>;
using slow_atom = caf::atom_constant<caf::atom("slowworker")>;
using bye_atom = caf::atom_constant<caf::atom("bye")>;

// The child's links (for bye_atom).
std::shared_ptr<manager> child_links;

// Registered in every process of the test.
struct point {
  int x = 0;
  int y = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("point"), p.x, p.y);
}

// Never registered anywhere: it must fail clearly, in requests and replies.
struct stranger {
  int n = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stranger& s) {
  return f(caf::meta::type_name("stranger"), s.n);
}

using calc = caf::typed_actor<caf::replies_to<int, int>::with<int>>;

struct config : caf::actor_system_config {
  config() {
    // The middleman gives the node its id (CAF 0.17); links use nothing
    // else of it.
    load<caf::io::middleman>();
    load<actors::detail::scheduler>(); // libactors' (a quiet clock)
    set("middleman.workers", 0);
    set("logger.verbosity", caf::atom("quiet"));
    add_message_type<point>("point");
    add_message_type<calc>("calc");
    add_message_type<std::vector<char>>("std::vector<char>");
  }
};

// -- keys
// ------------------------------------------------------------------------

std::string to_hex(const actors::detail::secret& key) {
  std::string out;
  char buf[3];
  for (auto b : key) {
    std::snprintf(buf, sizeof(buf), "%02x", b);
    out += buf;
  }
  return out;
}

actors::detail::secret from_hex(const std::string& text) {
  actors::detail::secret key{};
  for (std::size_t i = 0; i < key.size() && 2 * i + 1 < text.size(); ++i)
    key[i] = static_cast<std::uint8_t>(
        std::stoi(text.substr(2 * i, 2), nullptr, 16));
  return key;
}

// The actors::errc a reply error carries, or {} for another error.
errc code_of(const caf::error& err) {
  if (err.category() == caf::atom("actors"))
    return static_cast<errc>(err.code());
  return errc{};
}

std::string text_of(const caf::error& err) {
  if (err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  return {};
}

// -- the actors of a peer process
// ------------------------------------------------

caf::behavior worker(caf::event_based_actor* self) {
  return {
      [](echo_atom, int x) { return x; },
      [=](quit_atom, caf::error& reason) { self->quit(std::move(reason)); },
      [=](linkto_atom, const caf::actor& other) {
        self->link_to(other);
        return true;
      },
  };
}

struct counter_state {
  int next = 0;
  bool in_order = true;
};

caf::behavior counter(caf::stateful_actor<counter_state>* self) {
  return {
      [=](seq_atom, int i) {
        if (i != self->state.next)
          self->state.in_order = false;
        self->state.next = i + 1;
      },
      [=](check_atom) {
        return std::make_tuple(self->state.next, self->state.in_order);
      },
  };
}

caf::behavior blocker(caf::event_based_actor*) {
  return {
      [](block_atom, int ms) {
        std::this_thread::sleep_for(std::chrono::milliseconds{ms});
        return ms;
      },
  };
}

calc::behavior_type calculator() {
  return {[](int x, int y) { return x + y; }};
}

// The service actor of a peer process: the tests' entry point.
caf::behavior service_behavior(caf::event_based_actor* self) {
  return {
      [](echo_atom, int x) { return x; },
      [](echo_atom, const std::vector<char>& bytes) { return bytes; },
      [](echo_atom, const point& p) {
        return point{p.y, p.x};
      },
      [=](worker_atom) { return self->spawn(worker); },
      [=](slow_atom, const caf::actor& w) {
        // From now on `w` takes 300 ms to end: ended (to CAF), but neither
        // out of the actor registry nor its `down` sent meanwhile (CAF runs
        // what is attached last first), so a link frame may reach it then.
        w->attach_functor([] {
          std::this_thread::sleep_for(std::chrono::milliseconds{300});
        });
        return true;
      },
      [=](counter_atom) { return caf::actor{self->spawn(counter)}; },
      [=](blocker_atom) { return self->spawn(blocker); },
      [=](calc_atom) { return self->spawn(calculator); },
      [](secret_atom) { return stranger{7}; },
      [](pid_atom) { return static_cast<int>(::getpid()); },
      [](bye_atom, const caf::error& why) {
        // Not on this thread (it may be a link's receiver): shutdown waits
        // for them.
        std::thread{[why] {
          child_links->shutdown(why);
          std::fflush(stdout);
          ::_exit(0);
        }}.detach();
      },
      [=](pingme_atom, const caf::actor& target) {
        self->send(target, hello_atom::value, std::string{"from the child"},
                   caf::actor{self});
      },
      [=](local_atom, const caf::actor& a) { return a.node() == self->node(); },
      [=](relay_atom, const caf::actor& target, int x) -> caf::result<int> {
        auto rp = self->make_response_promise<int>();
        self->request(target, 5s, echo_atom::value, x)
            .then(
                [rp](int y) mutable { rp.deliver(y); },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
  };
}

// A peer process: its links manager with `service` as service, connected to
// the parent over the inherited socket in argv[0]; it listens by name too
// (for third-process links). It ends when the parent's link ends.
int link_child(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc < 2)
    return 2;
  int fd = std::atoi(argv[0]);
  auto key = from_hex(argv[1]);
  config cfg;
  caf::actor_system sys{cfg};
  manager::options opts;
  opts.service = sys.spawn(service_behavior);
  if (argc > 2)
    opts.ring_size = static_cast<std::size_t>(std::atol(argv[2]));
  auto mgr = manager::make(sys, key, opts);
  child_links = mgr;
  caf::actor parent;
  try {
    parent = mgr->adopt(fd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "link child: %s\n", e.what());
    ::_exit(3);
  }
  std::printf("ready %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);
  if (parent) {
    caf::scoped_actor self{sys};
    self->monitor(parent);
    self->receive([](caf::down_msg&) {});
  }
  mgr->shutdown(caf::exit_reason::user_shutdown);
  std::fflush(stdout);
  ::_exit(0); // the test's actors may still run: nothing to wait for
}

support::helper_mode child_mode{"link-child", link_child};

// -- the parent's side
// --------------------------------------------------------------

// The parent's actor system and links manager.
struct parent {
  config cfg;
  caf::actor_system sys{cfg};
  actors::detail::secret key = actors::detail::make_secret();
  std::shared_ptr<manager> mgr;

  caf::actor service;

  explicit parent(manager::options opts = {}) {
    // The child's first handle of us: it watches it to end with us.
    service = sys.spawn(
        [](caf::event_based_actor*) { return caf::behavior{[](int) {}}; });
    opts.service = service;
    mgr = manager::make(sys, key, std::move(opts));
  }

  ~parent() {
    mgr->shutdown(caf::exit_reason::user_shutdown);
    caf::anon_send_exit(service, caf::exit_reason::kill);
  }
};

// A child process linked to `p` over an inherited socket pair.
struct child {
  int fd_ = -1; // before proc: start() sets it
  support::subprocess proc;
  caf::actor service;

  static support::subprocess start(parent& p, int& mine,
                                   const std::vector<std::string>& extra) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    ::fcntl(fds[1], F_SETFD, 0); // the child's end survives the exec
    std::vector<std::string> args{std::to_string(fds[1]), to_hex(p.key)};
    args.insert(args.end(), extra.begin(), extra.end());
    auto proc = support::subprocess::helper("link-child", args);
    ::close(fds[1]);
    mine = fds[0];
    return proc;
  }

  child(parent& p, const std::vector<std::string>& extra = {})
      : proc(start(p, fd_, extra)) {
    service = p.mgr->adopt(fd_);
    auto line = proc.read_line(10s);
    REQUIRE(line);
    REQUIRE(line->rfind("ready ", 0) == 0);
  }

  ~child() {
    proc.kill(SIGKILL);
    proc.wait(5s);
  }
};

// request(...).receive(...) with a bound; the value or the error.
template <class T, class... Ts>
caf::expected<T> ask(caf::scoped_actor& self, const caf::actor& dest,
                     Ts&&... xs) {
  caf::expected<T> result{caf::sec::request_timeout};
  self->request(dest, 10s, std::forward<Ts>(xs)...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
  return result;
}

} // namespace

TEST_CASE("a request to an actor of another process is answered over the "
          "link") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto x = ask<int>(self, c.service, echo_atom::value, 42);
  REQUIRE(x);
  CHECK(*x == 42);
  auto q = ask<point>(self, c.service, echo_atom::value, point{1, 2});
  REQUIRE(q);
  CHECK(q->x == 2);
  CHECK(q->y == 1);
  auto pid = ask<int>(self, c.service, pid_atom::value);
  REQUIRE(pid);
  CHECK(*pid == c.proc.pid());
}

TEST_CASE("actor handles cross the link in both directions") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  // A handle of the child's: a proxy here, and a working one.
  auto w = ask<caf::actor>(self, c.service, worker_atom::value);
  REQUIRE(w);
  CHECK(w->node() != p.sys.node());
  auto x = ask<int>(self, *w, echo_atom::value, 7);
  REQUIRE(x);
  CHECK(*x == 7);
  // Sent back, it is the child's own actor again.
  auto local = ask<bool>(self, c.service, local_atom::value, *w);
  REQUIRE(local);
  CHECK(*local);
  // A handle of ours: the child sends to it, with its own handle inside.
  self->send(c.service, pingme_atom::value, caf::actor{self});
  bool got = false;
  self->receive(
      [&](hello_atom, const std::string& text, const caf::actor& from) {
        got = text == "from the child" && from == c.service;
      },
      caf::after(10s) >> [] {});
  CHECK(got);
}

TEST_CASE("20,000 messages arrive in order") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto ctr = ask<caf::actor>(self, c.service, counter_atom::value);
  REQUIRE(ctr);
  for (int i = 0; i < 20000; ++i)
    self->send(*ctr, seq_atom::value, i);
  caf::expected<std::tuple<int, bool>> r{caf::sec::request_timeout};
  self->request(*ctr, 10s, check_atom::value)
      .receive([&](int n, bool ordered) { r = std::make_tuple(n, ordered); },
               [&](caf::error& err) { r = std::move(err); });
  REQUIRE(r);
  CHECK(std::get<0>(*r) == 20000);
  CHECK(std::get<1>(*r));
}

TEST_CASE("an actor's exit reaches its monitors with the real reason, and a "
          "request to it afterwards fails at once") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto w = ask<caf::actor>(self, c.service, worker_atom::value);
  REQUIRE(w);
  self->monitor(*w);
  auto reason = actors::make_error(errc::actor_failed, "boom");
  self->send(*w, quit_atom::value, reason);
  caf::error got;
  self->receive([&](caf::down_msg& dm) { got = dm.reason; },
                caf::after(10s) >> [] {});
  CHECK(code_of(got) == errc::actor_failed);
  CHECK(text_of(got) == "boom");
  auto start = std::chrono::steady_clock::now();
  auto x = ask<int>(self, *w, echo_atom::value, 1);
  CHECK(!x);
  CHECK(x.error() != caf::sec::request_timeout);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("a request to an actor that ended before the proxy was made fails "
          "at once") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto w = ask<caf::actor>(self, c.service, worker_atom::value);
  REQUIRE(w);
  // The child's worker ends; a request races its down frame.
  self->send(*w, quit_atom::value, caf::error{caf::exit_reason::kill});
  for (int i = 0; i < 3; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto x = ask<int>(self, *w, echo_atom::value, 1);
    if (!x) {
      CHECK(x.error() != caf::sec::request_timeout);
      CHECK(std::chrono::steady_clock::now() - start < 1s);
    }
  }
}

TEST_CASE("links work in both directions with the real exit reason") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  // Ours links to theirs: their exit kills ours, which a monitor sees.
  auto w = ask<caf::actor>(self, c.service, worker_atom::value);
  REQUIRE(w);
  auto target = *w;
  auto mine = p.sys.spawn([target](caf::event_based_actor* me) {
    me->link_to(target);
    return caf::behavior{[](int) {}};
  });
  self->monitor(mine);
  // The link is made before this message from another actor?  Only what
  // `mine` sends is ordered after its link: ask it to tell us.
  auto reason = actors::make_error(errc::actor_failed, "theirs");
  caf::anon_send(mine, 0); // let it run its link_to first
  self->send(*w, quit_atom::value, reason);
  caf::error got;
  self->receive([&](caf::down_msg& dm) { got = dm.reason; },
                caf::after(10s) >> [] {});
  CHECK(code_of(got) == errc::actor_failed);
  CHECK(text_of(got) == "theirs");
  // Theirs links to ours: our exit kills theirs.
  auto w2 = ask<caf::actor>(self, c.service, worker_atom::value);
  REQUIRE(w2);
  auto ours = p.sys.spawn([](caf::event_based_actor* me) {
    return caf::behavior{
        [=](quit_atom, caf::error& why) { me->quit(std::move(why)); }};
  });
  auto linked = ask<bool>(self, *w2, linkto_atom::value, ours);
  REQUIRE(linked);
  self->monitor(*w2);
  auto reason2 = actors::make_error(errc::actor_failed, "ours");
  self->send(ours, quit_atom::value, reason2);
  got = caf::error{};
  self->receive([&](caf::down_msg& dm) { got = dm.reason; },
                caf::after(10s) >> [] {});
  CHECK(code_of(got) == errc::actor_failed);
  CHECK(text_of(got) == "ours");
}

TEST_CASE("a link to an actor that is ending gets its exit at once and "
          "stalls nothing") {
  // CAF sends the exit while it holds both actors' locks (add_backlink):
  // the link's receiver thread hung there until exits found this way were
  // sent later.
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto w = ask<caf::actor>(self, c.service, worker_atom::value);
  REQUIRE(w);
  REQUIRE(ask<bool>(self, c.service, slow_atom::value, *w));
  auto reason = actors::make_error(errc::actor_failed, "ending");
  self->send(*w, quit_atom::value, reason);
  auto target = *w;
  auto mine = p.sys.spawn([target](caf::event_based_actor* me) {
    me->link_to(target);
    return caf::behavior{[](int) {}};
  });
  self->monitor(mine);
  caf::error got;
  self->receive([&](caf::down_msg& dm) { got = dm.reason; },
                caf::after(10s) >> [] {});
  CHECK(code_of(got) == errc::actor_failed);
  CHECK(text_of(got) == "ending");
  auto x = ask<int>(self, c.service, echo_atom::value, 3);
  REQUIRE(x);
  CHECK(*x == 3);
}

TEST_CASE("two blocking callers at once get their own answers") {
  parent p;
  child c{p};
  std::atomic<int> wrong{0};
  auto caller = [&](int base) {
    caf::scoped_actor self{p.sys};
    for (int i = 0; i < 1000; ++i) {
      auto x = ask<int>(self, c.service, echo_atom::value, base + i);
      if (!x || *x != base + i)
        ++wrong;
    }
  };
  auto caller2 = [&](int base) {
    for (int i = 0; i < 1000; ++i) {
      auto x = p.mgr->call(c.service,
                           caf::make_message(echo_atom::value, base + i), 10s);
      if (!x || !x->match_elements<int>() || x->get_as<int>(0) != base + i)
        ++wrong;
    }
  };
  std::thread a{caller, 0};
  std::thread b{caller, 100000};
  std::thread d{caller2, 200000};
  std::thread e{caller2, 300000};
  a.join();
  b.join();
  d.join();
  e.join();
  CHECK(wrong == 0);
}

TEST_CASE("the peer's SIGKILL is noticed within milliseconds, with the signal "
          "as reason, and requests fail at once") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto blk = ask<caf::actor>(self, c.service, blocker_atom::value);
  REQUIRE(blk);
  self->monitor(c.service);
  // A request in flight: its handler sleeps when the process dies.
  auto in_flight = self->request(*blk, caf::infinite, block_atom::value, 10000);
  auto killed = std::chrono::steady_clock::now();
  c.proc.kill(SIGKILL);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(10s) >> [] {});
  auto noticed = std::chrono::steady_clock::now() - killed;
  MESSAGE(
      "down after "
      << std::chrono::duration_cast<std::chrono::microseconds>(noticed).count()
      << " us: " << p.sys.render(reason));
  CHECK(noticed < 500ms);
  CHECK(code_of(reason) == errc::process_died);
  CHECK(text_of(reason).find("signal 9") != std::string::npos);
  caf::error failed;
  std::move(in_flight).receive([](int) {},
                               [&](caf::error& err) { failed = err; });
  CHECK(code_of(failed) == errc::process_died);
  auto start = std::chrono::steady_clock::now();
  auto x = ask<int>(self, c.service, echo_atom::value, 1);
  REQUIRE(!x);
  CHECK(code_of(x.error()) == errc::process_died);
  CHECK(std::chrono::steady_clock::now() - start < 100ms);
  auto y = p.mgr->call(c.service, caf::make_message(echo_atom::value, 1), 5s);
  REQUIRE(!y);
  CHECK(code_of(y.error()) == errc::process_died);
}

TEST_CASE("a process that shuts its links down gives its reason to its "
          "peers' monitors") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  self->monitor(c.service);
  auto why = actors::make_error(errc::actor_failed, "leaving");
  self->send(c.service, bye_atom::value, why);
  caf::error got;
  self->receive([&](caf::down_msg& dm) { got = dm.reason; },
                caf::after(10s) >> [] {});
  CHECK(code_of(got) == errc::actor_failed);
  CHECK(text_of(got) == "leaving");
  CHECK(c.proc.wait(5s) == 0);
}

TEST_CASE("a full link blocks the sender up to its bound, then fails the "
          "message, nothing sent is lost, and a large one streams through") {
  manager::options opts;
  opts.ring_size = 4096;
  opts.full_wait = 300ms;
  parent p{opts};
  std::atomic<int> reports{0};
  p.mgr->set_report([&](const std::string&) { ++reports; });
  child c{p, {"4096"}};
  caf::scoped_actor self{p.sys};
  auto ctr = ask<caf::actor>(self, c.service, counter_atom::value);
  REQUIRE(ctr);
  // 1 MiB through rings of 4 KiB, both ways.
  std::vector<char> big(1 << 20);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7);
  auto back = ask<std::vector<char>>(self, c.service, echo_atom::value, big);
  REQUIRE(back);
  CHECK(*back == big);
  // A stopped peer reads nothing: the ring fills, and a send then waits
  // its bound and is reported as not sent.
  c.proc.kill(SIGSTOP);
  int sent = 0;
  std::chrono::steady_clock::duration blocked{};
  for (; sent < 10000; ++sent) {
    auto before = std::chrono::steady_clock::now();
    self->send(*ctr, seq_atom::value, sent);
    if (reports > 0) {
      blocked = std::chrono::steady_clock::now() - before;
      break;
    }
  }
  MESSAGE(sent << " messages fit; the next one waited "
               << std::chrono::duration_cast<std::chrono::milliseconds>(blocked)
                      .count()
               << " ms");
  CHECK(reports == 1);
  CHECK(blocked >= 300ms);
  CHECK(blocked < 2s);
  // A request fails the same way, with errc::timeout, and at once after
  // its bound (the peer is still stopped).
  auto before = std::chrono::steady_clock::now();
  caf::error err;
  self->request(*ctr, 10s, check_atom::value)
      .receive([](int, bool) {}, [&](caf::error& e) { err = std::move(e); });
  CHECK(code_of(err) == errc::timeout);
  CHECK(std::chrono::steady_clock::now() - before < 2s);
  c.proc.kill(SIGCONT);
  // Everything that was not reported arrives, in order.
  caf::expected<std::tuple<int, bool>> n{caf::sec::request_timeout};
  self->request(*ctr, 10s, check_atom::value)
      .receive(
          [&](int next, bool ordered) { n = std::make_tuple(next, ordered); },
          [&](caf::error& err) { n = std::move(err); });
  REQUIRE(n);
  CHECK(std::get<0>(*n) == sent);
  CHECK(std::get<1>(*n));
}

TEST_CASE("a handler that blocks does not stall other actors behind the "
          "link") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto blk = ask<caf::actor>(self, c.service, blocker_atom::value);
  REQUIRE(blk);
  auto start = std::chrono::steady_clock::now();
  self->send(*blk, block_atom::value, 3000);
  // The child's receiver thread runs the blocker; the echo is read and
  // answered by the link's second receiver thread meanwhile.
  for (int i = 0; i < 10; ++i) {
    auto x = ask<int>(self, c.service, echo_atom::value, i);
    REQUIRE(x);
  }
  auto took = std::chrono::steady_clock::now() - start;
  MESSAGE("10 requests behind a 3 s handler took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
          << " ms");
  CHECK(took < 1500ms);
}

TEST_CASE("a handle of a third process reaches it over a link made on first "
          "use") {
  parent p;
  child one{p};
  child two{p};
  caf::scoped_actor self{p.sys};
  auto w = ask<caf::actor>(self, one.service, worker_atom::value);
  REQUIRE(w);
  // `two` gets a handle of `one`'s worker and asks it directly.
  auto x = ask<int>(self, two.service, relay_atom::value, *w, 5);
  REQUIRE(x);
  CHECK(*x == 5);
}

TEST_CASE("a handle of another host fails with a clear error") {
  parent p;
  caf::scoped_actor self{p.sys};
  caf::node_id::default_data::host_id_type host{};
  host[0] = 42;
  caf::node_id elsewhere{caf::make_counted<caf::node_id::default_data>(
      static_cast<std::uint32_t>(::getpid()), host)};
  auto h
      = caf::actor_cast<caf::actor>(p.mgr->registry().get_or_put(elsewhere, 7));
  REQUIRE(h);
  auto x = ask<int>(self, h, echo_atom::value, 1);
  REQUIRE(!x);
  CHECK(code_of(x.error()) == errc::owner_unreachable);
  MESSAGE(p.sys.render(x.error()));
}

TEST_CASE("a typed actor works across the link") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  auto t = ask<calc>(self, c.service, calc_atom::value);
  REQUIRE(t);
  int sum = 0;
  self->request(*t, 10s, 3, 4)
      .receive([&](int x) { sum = x; }, [](caf::error&) {});
  CHECK(sum == 7);
}

TEST_CASE("a message holding an unregistered type fails clearly, in a "
          "request and in a reply") {
  parent p;
  child c{p};
  caf::scoped_actor self{p.sys};
  // The reply holds it: the child cannot serialize its answer.
  auto r = ask<stranger>(self, c.service, secret_atom::value);
  REQUIRE(!r);
  CHECK(code_of(r.error()) == errc::not_registered);
  CHECK(text_of(r.error()).find("stranger") != std::string::npos);
  // The request holds it: it fails here, at once.
  auto q = ask<int>(self, c.service, echo_atom::value, stranger{1});
  REQUIRE(!q);
  CHECK(code_of(q.error()) == errc::not_registered);
  CHECK(text_of(q.error()).find("stranger") != std::string::npos);
}

TEST_CASE("a link by name needs the run's key") {
  parent p;
  config other_cfg;
  caf::actor_system other{other_cfg};
  caf::scoped_execution_unit ctx{&other};
  actors::detail::links::identity me{other.node(), 0, 4096};
  auto deadline = [] { return std::chrono::steady_clock::now() + 5s; };
  // A wrong key: the process refuses before anything else is said.
  auto wrong = support::code_of([&] {
    actors::detail::links::setup_connect(
        p.mgr->address(), actors::detail::make_secret(), me, &ctx, deadline());
  });
  CHECK((wrong == errc::unauthenticated || wrong == errc::owner_unreachable));
  // The run's key: a link is made, to that process.
  auto c = actors::detail::links::setup_connect(p.mgr->address(), p.key, me,
                                                &ctx, deadline());
  CHECK(c.node == p.sys.node());
  ::close(c.fd);
}

namespace {

// A connection to the abstract socket `name` that says nothing (-1: none).
int silent_connection(const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(),
              std::min(name.size(), sizeof(addr.sun_path) - 2));
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                                    + name.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads `fd` until its end (true) or `bound` (false); the bytes are the
// challenge.
bool ends_within(int fd, std::chrono::milliseconds bound) {
  auto until = std::chrono::steady_clock::now() + bound;
  char buf[256];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    until - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0)
      return false;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0)
      continue;
    auto n = ::read(fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return true;
  }
}

} // namespace

TEST_CASE("silent strangers on the link socket do not hold up a keyed link, "
          "and are closed at the deadline") {
  manager::options opts;
  opts.setup_timeout = 10s; // the runtime's, for links it makes
  parent p{opts};
  config other_cfg;
  caf::actor_system other{other_cfg};
  caf::scoped_execution_unit ctx{&other};
  actors::detail::links::identity me{other.node(), 0, 4096};
  std::vector<int> strangers;
  for (int i = 0; i < 3; ++i)
    strangers.push_back(silent_connection(p.mgr->address()));
  // Each used to hold the one setup thread for 10 s, ahead of this link.
  auto t0 = std::chrono::steady_clock::now();
  auto c = actors::detail::links::setup_connect(
      p.mgr->address(), p.key, me, &ctx, std::chrono::steady_clock::now() + 8s);
  CHECK(c.node == p.sys.node());
  ::close(c.fd);
  MESSAGE("a link behind 3 silent strangers took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - t0)
                 .count()
          << " ms");
  for (auto fd : strangers) {
    REQUIRE(fd >= 0);
    CHECK(ends_within(fd, 6s)); // the deadline is 2 s
    ::close(fd);
  }
  // More than max_strangers at once: the oldest goes at once.
  strangers.clear();
  for (std::size_t i = 0; i <= manager::max_strangers; ++i)
    strangers.push_back(silent_connection(p.mgr->address()));
  CHECK(ends_within(strangers.front(), 1500ms));
  for (auto fd : strangers)
    ::close(fd);
}
