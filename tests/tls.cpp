// Encryption between hosts (issue 23, net/tls.hpp), in netlab's simulated
// hosts: what crosses the bridge, certificates, and strangers refused on a
// deadline while healthy hosts keep working.
//
// The owner is this binary in helper mode "tls-owner" in host 0; worker
// hosts are this binary with --actors-worker in hosts 1 and 2; "capture"
// records every frame of host 0's interfaces with a raw AF_PACKET socket;
// "stranger" runs bad clients from host 1.

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "actors/all.hpp"
#include "net/auth.hpp"
#include "net/tls.hpp"
#include "support/netlab.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// What the tasks, items, results and actor messages carry; the capture
// looks for them.
constexpr const char* markers[] = {"TASKMARK-q7Zx", "ITEMMARK-w2Kp",
                                   "RESULTMARK-e9Lm", "ACTORMARK-t5Vn"};

std::string self_exe() {
  char buf[4096] = {};
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string temp_path(const std::string& stem) {
  auto path = "/tmp/actors-tls-" + stem + "-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  return path;
}

long ms_since(steady::time_point t0) {
  return static_cast<long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0)
      .count());
}

// -- certificates made here (EC P-256), written as PEM files ------------------

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

struct identity {
  pkey_ptr key{nullptr, EVP_PKEY_free};
  x509_ptr cert{nullptr, X509_free};
};

// A certificate for `cn`, valid from `from` to `to` seconds from now,
// signed by `issuer` (self-signed, a CA, without one).
identity make_identity(const std::string& cn, const identity* issuer,
                       long from = -3600, long to = 86400) {
  identity id;
  id.key.reset(EVP_EC_gen("P-256"));
  id.cert.reset(X509_new());
  auto* x = id.cert.get();
  X509_set_version(x, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), from);
  X509_gmtime_adj(X509_getm_notAfter(x), to);
  X509_set_pubkey(x, id.key.get());
  auto* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get())
                                 : name);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : x, x, nullptr, nullptr,
                 0);
  auto* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints,
                                  issuer ? "CA:FALSE" : "critical,CA:TRUE");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, issuer ? issuer->key.get() : id.key.get(), EVP_sha256());
  return id;
}

void write_cert(const std::string& path, const identity& id) {
  auto* f = std::fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_X509(f, id.cert.get());
  std::fclose(f);
}

void write_key(const std::string& path, const identity& id) {
  auto* f = std::fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_PrivateKey(f, id.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// A CA, and the files of hosts it or a foreign CA signed; removed at the
// end.
struct pki {
  std::string stem; // of its files' names
  identity ca = make_identity(stem + " test CA", nullptr);
  std::string ca_file = temp_path(stem + "-ca.pem");
  std::vector<std::string> files{ca_file};

  explicit pki(std::string name) : stem(std::move(name)) {
    write_cert(ca_file, ca);
  }

  ~pki() {
    for (auto& f : files)
      ::unlink(f.c_str());
  }

  // The --actors-tls-* flags of a host whose certificate `signer` signed
  // (this CA if none), valid from `from` to `to` seconds from now.
  std::vector<std::string> host(const std::string& name,
                                const identity* signer = nullptr,
                                long from = -3600, long to = 86400) {
    auto id = make_identity(name, signer ? signer : &ca, from, to);
    auto cert = temp_path(stem + "-" + name + ".pem");
    auto key = temp_path(stem + "-" + name + ".key");
    write_cert(cert, id);
    write_key(key, id);
    files.push_back(cert);
    files.push_back(key);
    return {"--actors-tls-ca", ca_file, "--actors-tls-certificate", cert,
            "--actors-tls-private-key", key};
  }
};

// -- helpers of the test binary ------------------------------------------------

std::string host_label() {
  auto* label = std::getenv("ACTORS_TEST_HOST");
  return label ? label : "owner";
}

// Long enough (0.2 ms) that every worker, remote ones too, takes some.
std::string marked_task(std::string text) {
  std::this_thread::sleep_for(200us);
  return std::string{markers[2]} + " from " + host_label() + " for " + text;
}

int put_items(actors::queue<std::string> items, int k) {
  for (int i = 0; i < 50; ++i)
    items.put(std::string{markers[1]} + " " + std::to_string(k) + " "
              + std::to_string(i));
  return 50;
}

// An actor on a worker host: answers a marked message with it and the
// name of its host.
caf::behavior marked_echo(caf::event_based_actor*) {
  return {[](const std::string& x) { return x + " from " + host_label(); }};
}

// 2000 marked tasks and 300 marked queue items through the pool's
// workers, and 200 marked requests to an actor on one of its hosts; true
// if every result, item and answer came back exact.
bool marked_round(actors::pool& p, std::map<std::string, int>& by_host) {
  std::vector<std::string> texts;
  for (int i = 0; i < 2000; ++i)
    texts.push_back(std::string{markers[0]} + " " + std::to_string(i));
  auto results = p.map(marked_task, texts, 10);
  bool exact = results.size() == texts.size();
  for (std::size_t i = 0; exact && i < results.size(); ++i) {
    auto at = results[i].find(" for ");
    exact = at != std::string::npos && results[i].substr(at + 5) == texts[i];
    auto from = std::string{markers[2]}.size() + 6;
    ++by_host[results[i].substr(from, at - from)];
  }
  actors::queue<std::string> items{0};
  std::vector<actors::async_result<int>> putters;
  for (int k = 0; k < 6; ++k)
    putters.push_back(p.apply_async(put_items, items, k));
  for (int n = 0; exact && n < 300; ++n)
    exact = items.get(30s).rfind(markers[1], 0) == 0;
  for (auto& r : putters)
    exact = exact && r.get(30s) == 50;
  actors::actor_options on_a_host;
  on_a_host.hosts = &p;
  auto echo = actors::spawn(on_a_host, marked_echo);
  caf::scoped_actor self{actors::system()};
  for (int i = 0; exact && i < 200; ++i) {
    auto text = std::string{markers[3]} + " " + std::to_string(i);
    self->request(echo.handle(), 10s, text)
      .receive(
        [&](const std::string& answer) {
          exact = answer.rfind(text + " from h", 0) == 0;
        },
        [&](caf::error&) { exact = false; });
  }
  return echo.stop(10s) && exact;
}

// tls-owner KEY_FILE WAIT WORKERS [--actors-tls-* ...]: a pool listening on
// host 0 for WORKERS remote workers; says "port N", "joined N"; with WAIT
// "go" it waits
// for SIGUSR1 first. Then marked rounds (marked_round): one, or with
// "go" as many as run until the next SIGUSR1; says "exact 1" and which
// hosts took part.
int tls_owner(int argc, char** argv) {
  if (argc < 3)
    return 2;
  sigset_t go;
  sigemptyset(&go);
  sigaddset(&go, SIGUSR1);
  sigprocmask(SIG_BLOCK, &go, nullptr);
  actors::pool_options opts;
  opts.listen = support::netlab::owner_address() + ":0";
  opts.key_file = argv[0];
  opts.lost_after = 2000ms;
  auto workers = static_cast<std::size_t>(std::stoi(argv[2]));
  if (argc >= 9) {
    opts.tls_ca = argv[4];
    opts.tls_certificate = argv[6];
    opts.tls_private_key = argv[8];
  }
  actors::pool p{2, opts};
  std::printf("port %u\n", static_cast<unsigned>(p.port()));
  std::fflush(stdout);
  if (!p.wait_for_remote_workers(workers, 30s)) {
    std::printf("joined only %zu\n", p.remote_workers());
    return 3;
  }
  std::printf("joined %zu\n", p.remote_workers());
  std::fflush(stdout);
  if (std::string{argv[1]} == "go") {
    timespec bound{60, 0};
    if (::sigtimedwait(&go, nullptr, &bound) != SIGUSR1)
      return 4;
  }
  // With "go", rounds until a second SIGUSR1: tasks run meanwhile.
  bool exact = true;
  std::map<std::string, int> by_host;
  int rounds = 0;
  timespec now{0, 0};
  do {
    exact = exact && marked_round(p, by_host);
    ++rounds;
  } while (std::string{argv[1]} == "go" && exact
           && ::sigtimedwait(&go, nullptr, &now) != SIGUSR1);
  std::printf("rounds %d\n", rounds);
  for (auto& [host, n] : by_host)
    std::printf("host %s %d\n", host.c_str(), n);
  std::printf("exact %d\n", exact ? 1 : 0);
  std::fflush(stdout);
  p.close();
  p.join();
  return 0;
}

support::helper_mode tls_owner_mode{"tls-owner", tls_owner};

// capture: every frame on every interface of its namespace, searched for
// the markers; says "capturing", and at SIGTERM "bytes B hits H".
int capture(int, char**) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, nullptr);
  int sfd = ::signalfd(-1, &term, SFD_CLOEXEC);
  int raw = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (raw < 0 || sfd < 0) {
    std::printf("no capture: %s\n", std::strerror(errno));
    return 2;
  }
  int big = 8 << 20;
  ::setsockopt(raw, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  std::printf("capturing\n");
  std::fflush(stdout);
  long bytes = 0, hits = 0;
  std::vector<char> frame(70000);
  for (;;) {
    pollfd fds[2] = {{raw, POLLIN, 0}, {sfd, POLLIN, 0}};
    ::poll(fds, 2, 60000);
    if (fds[0].revents & POLLIN) {
      auto n = ::recv(raw, frame.data(), frame.size(), MSG_DONTWAIT);
      if (n > 0) {
        bytes += n;
        for (auto* m : markers)
          if (std::search(frame.begin(), frame.begin() + n, m,
                          m + std::strlen(m))
              != frame.begin() + n)
            ++hits;
      }
      continue; // drain frames before looking at the signal
    }
    if (fds[1].revents & POLLIN)
      break;
  }
  std::printf("bytes %ld hits %ld\n", bytes, hits);
  std::fflush(stdout);
  return 0;
}

support::helper_mode capture_mode{"capture", capture};

// stranger ADDRESS PORT: bad clients against the pool, all at once; says
// for each how long until the pool closed it ("NAME closed MS") or what
// it was told ("NAME refused MS: WHY").
int stranger(int argc, char** argv) {
  if (argc < 2)
    return 2;
  std::string host = argv[0];
  auto port = static_cast<std::uint16_t>(std::stoi(argv[1]));
  auto connect_raw = [&] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      return -1;
    return fd;
  };
  // Waits (bounded) until the server ends `fd`: ms, or -1 if it never did.
  auto closed_after = [](int fd, steady::time_point t0) -> long {
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0)
        return -1;
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0)
        return ms_since(t0);
    }
  };
  std::vector<std::thread> threads;
  std::mutex mtx;
  auto say = [&](const std::string& line) {
    std::lock_guard<std::mutex> guard{mtx};
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  // A silent connection.
  threads.emplace_back([&] {
    auto t0 = steady::now();
    int fd = connect_raw();
    say("silent closed " + std::to_string(closed_after(fd, t0)));
    ::close(fd);
  });
  // A libactors client of plain text: it waits for the server's hello,
  // which a TLS server never sends.
  threads.emplace_back([&] {
    auto t0 = steady::now();
    int fd = connect_raw();
    actors::detail::secret key{};
    try {
      actors::detail::client_handshake(fd, key, t0 + 10s,
                                       actors::detail::purpose::worker);
      say("plain accepted");
    } catch (const std::exception& e) {
      say("plain closed " + std::to_string(ms_since(t0)));
    }
    ::close(fd);
  });
  // Half a ClientHello, then nothing.
  threads.emplace_back([&] {
    auto t0 = steady::now();
    int fd = connect_raw();
    actors::detail::secret key{};
    actors::detail::tls_session hello{false, key};
    hello.handshake();
    auto& out = hello.output();
    ::send(fd, out.data(), out.size() / 2, MSG_NOSIGNAL);
    say("stall closed " + std::to_string(closed_after(fd, t0)));
    ::close(fd);
  });
  // Garbage.
  threads.emplace_back([&] {
    auto t0 = steady::now();
    int fd = connect_raw();
    std::string junk(3000, 'x');
    ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    say("garbage closed " + std::to_string(closed_after(fd, t0)));
    ::close(fd);
  });
  // Another key (a TLS client with the wrong PSK).
  threads.emplace_back([&] {
    auto t0 = steady::now();
    actors::detail::secret key{};
    key.fill(7);
    try {
      int fd = actors::detail::connect_authenticated(
        host, port, key, actors::detail::purpose::worker, 10000ms);
      say("wrongkey closed " + std::to_string(closed_after(fd, t0)));
      ::close(fd);
    } catch (const actors::error& e) {
      say("wrongkey refused " + std::to_string(ms_since(t0)) + ": "
          + e.what());
    }
  });
  for (auto& t : threads)
    t.join();
  return 0;
}

support::helper_mode stranger_mode{"stranger", stranger};

// A lab of three hosts: the owner in host 0 (tls-owner with `owner_args`),
// worker hosts h1 and h2 with `host_flags[h - 1]`, all with `env`; with
// `capture`, a capture of host 0 runs from before the owner starts.
struct lab_run {
  support::netlab lab{3};
  std::string key = temp_path("key");
  std::optional<support::subprocess> cap;
  std::optional<support::subprocess> owner;
  std::vector<support::subprocess> hosts;
  std::vector<std::string> said;
  std::string port;

  lab_run(const std::vector<std::string>& owner_args,
          const std::vector<std::vector<std::string>>& host_flags,
          const std::vector<std::string>& env = {}, bool capture = false) {
    if (capture) {
      cap.emplace(lab.helper(0, "capture", {}, {}, true));
      REQUIRE(cap->read_line(30s) == std::string{"capturing"});
    }
    std::vector<std::string> args{key};
    args.insert(args.end(), owner_args.begin(), owner_args.end());
    owner.emplace(lab.helper(0, "tls-owner", args, env, true));
    port = next("port ");
    REQUIRE(!port.empty());
    for (int h = 1; h <= 2; ++h) {
      std::vector<std::string> a{"--actors-worker", address(),
                                 "--actors-key-file", key,
                                 "--actors-processes", "2"};
      auto& flags = host_flags[static_cast<std::size_t>(h - 1)];
      a.insert(a.end(), flags.begin(), flags.end());
      auto e = env;
      e.push_back("ACTORS_TEST_HOST=h" + std::to_string(h));
      hosts.push_back(lab.run(h, self_exe(), a, e, true));
    }
  }

  ~lab_run() {
    ::unlink(key.c_str());
  }

  std::string address() const {
    return support::netlab::owner_address() + ":" + port;
  }

  // The rest of the owner's next line starting with `prefix` (empty if it
  // ended or said nothing such within 60 s).
  std::string next(const std::string& prefix) {
    while (auto line = owner->read_line(60s)) {
      said.push_back(*line);
      if (line->rfind(prefix, 0) == 0)
        return line->substr(prefix.size());
    }
    return {};
  }

  std::string transcript() const {
    std::string all;
    for (auto& line : said)
      all += line + "\n";
    return all;
  }
};

long field(const std::string& line, const std::string& name) {
  auto at = line.find(name + " ");
  return at == std::string::npos ? -1
                                 : std::stol(line.substr(at + name.size() + 1));
}

} // namespace

TEST_CASE("netns: by default no task, item, result or actor message crosses "
          "the bridge in clear, and with the plain-text opt-out the same "
          "markers do") {
  support::netlab::skip_if_unavailable();
  for (bool plain : {false, true}) {
    CAPTURE(plain);
    std::vector<std::string> env;
    if (plain)
      env.push_back("ACTORS_INSECURE_PLAINTEXT_BETWEEN_HOSTS=1");
    lab_run run{{"now", "4"}, {{}, {}}, env, true};
    CHECK(run.next("joined ") == "4");
    CHECK(run.next("exact ") == "1");
    INFO(run.transcript());
    CHECK(run.transcript().find("host h1 ") != std::string::npos);
    CHECK(run.transcript().find("host h2 ") != std::string::npos);
    CHECK(run.owner->wait(30s) == 0);
    run.cap->kill(SIGTERM);
    auto verdict = run.cap->read_line(30s).value_or("");
    INFO(verdict);
    CHECK(field(verdict, "bytes") > 100000); // the traffic was seen
    if (plain)
      CHECK(field(verdict, "hits") > 0); // so the capture would see them
    else
      CHECK(field(verdict, "hits") == 0);
    if (plain) {
      // It said so.
      auto line = run.hosts[0].read_line(10s).value_or("");
      CHECK(line.find("NOT encrypted") != std::string::npos);
    }
  }
}

TEST_CASE("netns: with certificates of one CA the hosts serve, and a host "
          "whose certificate another CA signed is refused while the others "
          "serve") {
  support::netlab::skip_if_unavailable();
  pki ours{"ours"};
  pki foreign{"foreign"};
  auto owner_flags = ours.host("owner");
  auto h1 = ours.host("h1");
  auto h2 = foreign.host("h2", &foreign.ca);
  h2[1] = ours.ca_file; // it trusts ours; we do not trust its signer
  std::vector<std::string> owner_args{"now", "4"};
  owner_args.insert(owner_args.end(), owner_flags.begin(), owner_flags.end());
  {
    // Every host with our CA: all join, the run is exact.
    lab_run run{owner_args, {h1, ours.host("h2")}};
    CHECK(run.next("joined ") == "4");
    CHECK(run.next("exact ") == "1");
    INFO(run.transcript());
    CHECK(run.owner->wait(30s) == 0);
  }
  // The foreign host is refused at its handshake, and says so; the pool
  // goes on with the owner's workers and h1's.
  owner_args[1] = "2";
  lab_run run{owner_args, {h1, h2}};
  CHECK(run.hosts[1].wait(30s) == 2); // exit_refused: not worth replacing
  auto text = run.hosts[1].read_all(5s);
  INFO(text);
  CHECK(text.find("refused") != std::string::npos);
  CHECK(text.find("TLS") != std::string::npos);
  CHECK(run.next("joined ") == "2");
  CHECK(run.next("exact ") == "1");
  INFO(run.transcript());
  CHECK(run.transcript().find("host h1 ") != std::string::npos);
  CHECK(run.transcript().find("host h2 ") == std::string::npos);
  CHECK(run.owner->wait(30s) == 0);
}

TEST_CASE("a certificate that expired, is not valid yet, or does not match "
          "its key is a clear error when a worker host starts") {
  pki ours{"ours"};
  auto expired = ours.host("old", nullptr, -7200, -3600);
  auto future = ours.host("new", nullptr, 3600, 7200);
  auto mismatched = ours.host("mixed");
  mismatched[5] = ours.host("other")[5]; // another host's private key
  auto key = temp_path("key");
  for (auto [flags, words] :
       {std::make_pair(expired, "has expired"),
        std::make_pair(future, "not valid yet"),
        std::make_pair(mismatched, "mismatch")}) {
    std::vector<std::string> args{"--actors-worker", "10.213.0.1:9",
                                  "--actors-key-file", key};
    args.insert(args.end(), flags.begin(), flags.end());
    actors::detail::write_secret(key, actors::detail::make_secret());
    support::subprocess host{self_exe(), args, true};
    auto out = host.read_all(20s);
    INFO(out);
    CHECK(host.wait(10s) == 2);
    CHECK(out.find(words) != std::string::npos);
    ::unlink(key.c_str());
  }
}

TEST_CASE("netns: strangers (silent, plain text, half a ClientHello, "
          "garbage, another key) are refused on the handshake deadline "
          "while the hosts' tasks run") {
  support::netlab::skip_if_unavailable();
  lab_run run{{"go", "4"}, {{}, {}}};
  REQUIRE(run.next("joined ") == "4");
  auto bad = run.lab.helper(1, "stranger",
                            {support::netlab::owner_address(), run.port}, {},
                            true);
  run.owner->kill(SIGUSR1); // the tasks run while the strangers knock
  std::map<std::string, std::string> verdict;
  while (auto line = bad.read_line(30s)) {
    auto space = line->find(' ');
    verdict[line->substr(0, space)] = line->substr(space + 1);
  }
  run.owner->kill(SIGUSR1);
  CHECK(run.next("exact ") == "1");
  INFO(run.transcript());
  CHECK(field(run.transcript(), "rounds") >= 2);
  for (auto& [who, what] : verdict)
    MESSAGE(who << ": " << what);
  REQUIRE(verdict.size() == 5);
  // The listener's handshake deadline is 2 s: the silent, the plain-text
  // client and the stalled handshake are closed then, not before 1.5 s.
  for (auto who : {"silent", "plain", "stall"}) {
    CAPTURE(who);
    auto& what = verdict[who];
    REQUIRE(what.rfind("closed ", 0) == 0);
    auto ms = std::stol(what.substr(7));
    CHECK(ms >= 1500);
    CHECK(ms <= 4000);
  }
  // Garbage and another key are refused at once.
  CHECK(verdict["garbage"].rfind("closed ", 0) == 0);
  CHECK(std::stol(verdict["garbage"].substr(7)) < 1500);
  CHECK(verdict["wrongkey"].rfind("refused ", 0) == 0);
  CHECK(std::stol(verdict["wrongkey"].substr(8)) < 1500);
  CHECK(run.owner->wait(30s) == 0);
}
