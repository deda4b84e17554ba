// The worker-host role: a program started with --actors-worker HOST:PORT
// serves the pool listening there (worker.hpp has the protocol).
//
// The host process itself stays single-threaded and never starts a runtime:
// it forks the worker processes, waits for signals, and forks a fresh one
// in place of one that died or retired. Each worker process connects on
// its own (retrying until the connect timeout, so hosts may start before
// the pool), runs tasks until the pool lets it go, and dies with the host
// (PR_SET_PDEATHSIG). The host ends once every worker has ended for good:
// exit code 0 when the pool let them go, else the worst failure's code.

#include "pool/worker.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <link.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "actors/error.hpp"
#include "net/auth.hpp"
#include "net/tls.hpp"
#include "node/runtime.hpp"
#include "process/supervision.hpp"

namespace actors::detail {

namespace {

// A worker's exit codes, read by its host.
enum : int {
  exit_released = 0,    // the pool let it go: not replaced
  exit_again = 1,       // retired or cut off: a fresh one takes its place
  exit_refused = 2,     // wrong key or program: replacing it is pointless
  exit_unreachable = 3, // no pool at the address within the connect timeout
};

[[noreturn]] void usage(const std::string& what) {
  std::fprintf(stderr,
               "libactors worker host: %s\n"
               "usage: PROGRAM --actors-worker HOST:PORT --actors-key-file "
               "FILE [--actors-processes N] [--actors-connect-timeout S]\n"
               "       [--actors-host-name NAME]\n"
               "       [--actors-tls-ca PEM --actors-tls-certificate PEM "
               "--actors-tls-private-key PEM]\n",
               what.c_str());
  std::exit(exit_refused);
}

int build_id_note(dl_phdr_info* info, size_t, void* out) {
  auto& id = *static_cast<std::string*>(out);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE)
      continue;
    auto* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    auto* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      auto* name = p + sizeof(ElfW(Nhdr));
      auto* desc = name + ((note->n_namesz + 3) & ~3u);
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4
          && std::memcmp(name, "GNU", 4) == 0) {
        static const char hex[] = "0123456789abcdef";
        auto* bytes = reinterpret_cast<const unsigned char*>(desc);
        for (unsigned k = 0; k < note->n_descsz; ++k) {
          id += hex[bytes[k] >> 4];
          id += hex[bytes[k] & 15];
        }
        return 1;
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return 1; // the first module is the program itself
}

std::string hash_of_executable() {
  std::ifstream in{"/proc/self/exe", std::ios::binary};
  auto* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::array<char, 1 << 16> buf;
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0)
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char hex[] = "0123456789abcdef";
  std::string result = "sha256:";
  for (unsigned k = 0; k < len; ++k) {
    result += hex[md[k] >> 4];
    result += hex[md[k] & 15];
  }
  return result;
}

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

// While this worker serves, on a thread of its own: sends the pool an
// alive frame every lost_after/4, also while a task runs (the pool counts
// a worker silent for lost_after as lost); and ends this worker at once
// when its connection ends while a task runs: the pool gave up on the task
// (timeout, cancel, terminate) or on the worker (lost). A local worker
// would be SIGKILLed; this is the same from afar. When the connection
// ends while no task runs, the worker reads the end itself, and skips the
// tasks still before it (`dropped`).
void keep_alive(channel& ch, std::chrono::milliseconds lost_after,
                std::atomic<bool>& running, std::atomic<bool>& dropped) {
  auto every = static_cast<int>(
    std::clamp<std::int64_t>(lost_after.count() / 4, 1, INT_MAX));
  std::thread{[&ch, every, &running, &dropped] {
    for (;;) {
      pollfd p{ch.fd(), POLLRDHUP, 0};
      auto n = ::poll(&p, 1, every);
      if (n < 0)
        continue;
      if (n == 0) {
        ch.beat(alive_frame); // a failure shows at the next poll
        continue;
      }
      // Both seq_cst: either this sees `running`, or serve_tasks sees
      // `dropped` before it runs a task.
      dropped.store(true);
      if (running.load())
        ::_exit(exit_again);
      return;
    }
  }}.detach();
}

// The body of one worker process of this host; `again` for one that takes
// the place of another (then a pool that refuses connections has ended).
[[noreturn]] void worker_process(const worker_host_args& args,
                                 const std::string& host, std::uint16_t port,
                                 const secret& key, bool again) {
  auto deadline = std::chrono::steady_clock::now() + args.connect_timeout;
  int fd = -1;
  std::string last;
  while (fd < 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      std::fprintf(stderr,
                   "libactors worker %d: no pool at %s within %lld s: %s\n",
                   static_cast<int>(::getpid()), args.address.c_str(),
                   static_cast<long long>(args.connect_timeout.count()),
                   last.c_str());
      std::exit(exit_unreachable);
    }
    int why = 0;
    try {
      fd = connect_authenticated(host, port, key, purpose::worker,
                                 std::min(left, std::chrono::milliseconds{
                                                  5000}),
                                 &why);
    } catch (const error& e) {
      // A fresh worker in place of one that served was let in before with
      // the same key: a refusal now means the pool is closing its door.
      if (again && (why == ECONNREFUSED || e.code() == errc::unauthenticated))
        std::exit(exit_released);
      if (e.code() == errc::unauthenticated) {
        std::fprintf(stderr, "libactors worker %d: the pool at %s refused: %s\n",
                     static_cast<int>(::getpid()), args.address.c_str(),
                     e.what());
        std::exit(exit_refused);
      }
      last = e.what();
      // Not up yet (or the link is down): try again shortly.
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
  }
  channel ch{fd};
  watch_link(fd, std::chrono::seconds{5}); // until the pool says otherwise
  auto pid = static_cast<std::uint32_t>(::getpid());
  auto name = args.name.empty() ? host_name() : args.name;
  if (ch.put(hello_frame, program_id(), name, pid) || !ch.flush(true))
    std::exit(exit_again);
  closure initializer;
  std::uint32_t lost_after = 0;
  auto answer_by = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  for (;;) {
    auto f = ch.next();
    if (!f) {
      // The pool answers a hello at once (or after lost_after at most).
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        answer_by - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0
          || ::poll(&p, 1, static_cast<int>(left.count()) + 1) == 0
          || !ch.fill(false))
        std::exit(exit_again); // lost, or silent, before the welcome
      continue;
    }
    if (f->kind == closed_frame)
      std::exit(exit_released); // came too late: the pool is stopping
    if (f->kind == refused_frame) {
      std::string why;
      ch.get(*f, why);
      std::fprintf(stderr, "libactors worker %d: the pool at %s refused: %s\n",
                   static_cast<int>(pid), args.address.c_str(), why.c_str());
      std::exit(exit_refused);
    }
    if (f->kind != welcome_frame || ch.get(*f, initializer, lost_after)) {
      std::fprintf(stderr, "libactors worker %d: a malformed welcome\n",
                   static_cast<int>(pid));
      std::exit(exit_refused);
    }
    break;
  }
  auto bound = std::chrono::milliseconds{lost_after};
  watch_link(fd, bound);
  runtime::join_later({host, port, key, bound});
  take_ends(initializer); // joins the pool's node if it carries any
  std::atomic<bool> running{false};
  std::atomic<bool> dropped{false};
  keep_alive(ch, bound, running, dropped);
  // A task that calls exit() ends this worker as a crash would: its host
  // starts a fresh one (exit code 0 would mean the pool let it go).
  ::on_exit([](int, void*) { runtime::finish(exit_again); }, nullptr);
  switch (serve_tasks(ch, initializer, &running, &dropped)) {
    case worker_end::retired:
      runtime::finish(exit_again);
    case worker_end::init_failed:
      runtime::finish(exit_refused);
    default: {
      // Let go (the pool shut the channel), or cut off (a socket error:
      // the link was lost; a fresh worker tries to join again).
      runtime::finish(ch.failure() == 0 && far_end_failure(fd) == 0
                        ? exit_released
                        : exit_again);
    }
  }
}

} // namespace

const std::string& program_id() {
  static const std::string id = [] {
    std::string result;
    dl_iterate_phdr(build_id_note, &result);
    return result.empty() ? hash_of_executable() : result;
  }();
  return id;
}

bool parse_worker_host(int argc, char** argv, worker_host_args& out) {
  bool worker = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage(arg + " needs a value");
      return argv[++i];
    };
    auto number = [&](long lo, long hi) {
      auto text = value();
      char* end = nullptr;
      auto n = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != 0 || n < lo || n > hi)
        usage(arg + " needs a number from " + std::to_string(lo) + " to "
              + std::to_string(hi) + ", not \"" + text + "\"");
      return n;
    };
    if (arg == "--actors-worker") {
      worker = true;
      out.address = value();
    } else if (arg == "--actors-key-file") {
      out.key_file = value();
    } else if (arg == "--actors-host-name") {
      out.name = value();
      if (out.name.empty() || out.name.size() > 255)
        usage("--actors-host-name needs a name of 1 to 255 characters");
    } else if (arg == "--actors-processes") {
      out.processes = static_cast<int>(number(0, 4096));
    } else if (arg == "--actors-tls-ca") {
      out.tls_ca = value();
    } else if (arg == "--actors-tls-certificate") {
      out.tls_certificate = value();
    } else if (arg == "--actors-tls-private-key") {
      out.tls_private_key = value();
    } else if (arg == "--actors-connect-timeout") {
      out.connect_timeout = std::chrono::seconds{number(1, 86400)};
    }
  }
  if (worker && out.key_file.empty())
    usage("--actors-worker needs --actors-key-file: the pool's key");
  return worker;
}

void run_worker_host(const worker_host_args& args) {
  std::pair<std::string, std::uint16_t> where;
  secret key;
  try {
    where = split_address(args.address);
    key = read_secret(args.key_file);
    if (!args.tls_ca.empty() || !args.tls_certificate.empty()
        || !args.tls_private_key.empty())
      use_certificates(args.tls_ca, args.tls_certificate,
                       args.tls_private_key);
  } catch (const error& e) {
    usage(e.what());
  }
  auto n = args.processes > 0
             ? args.processes
             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  program_id(); // once, not in every worker
  // Signals are taken synchronously: SIGCHLD for workers that end, SIGTERM
  // and SIGINT to leave (the workers go with the host).
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGCHLD);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGINT);
  sigprocmask(SIG_BLOCK, &wanted, nullptr);
  auto host = ::getpid();
  std::map<pid_t, int> workers; // pid -> slot
  auto start = [&](int slot, bool again) {
    std::fflush(nullptr);
    auto pid = ::fork();
    if (pid == 0) {
      sigprocmask(SIG_UNBLOCK, &wanted, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != host)
        ::_exit(exit_again); // the host is gone already
      worker_process(args, where.first, where.second, key, again);
    }
    if (pid > 0)
      workers.emplace(pid, slot);
  };
  for (int slot = 0; slot < n; ++slot)
    start(slot, false);
  restart_intensity deaths{10 * n, std::chrono::seconds{10}};
  int worst = exit_released;
  while (!workers.empty()) {
    siginfo_t info{};
    if (::sigwaitinfo(&wanted, &info) < 0)
      continue;
    if (info.si_signo != SIGCHLD) {
      for (auto& w : workers)
        ::kill(w.first, SIGKILL);
      while (::waitpid(-1, nullptr, 0) > 0) {
      }
      std::exit(exit_released);
    }
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto i = workers.find(pid);
      if (i == workers.end())
        continue;
      auto slot = i->second;
      workers.erase(i);
      auto code = WIFEXITED(status) ? WEXITSTATUS(status) : exit_again;
      if (code == exit_released)
        continue;
      if (code == exit_again && deaths.allow()) {
        start(slot, true);
        continue;
      }
      if (code == exit_again)
        std::fprintf(stderr, "libactors worker host: workers ended more than "
                             "%d times within 10 s; giving up\n",
                     10 * n);
      worst = std::max(worst, code);
    }
  }
  std::exit(worst);
}

} // namespace actors::detail
