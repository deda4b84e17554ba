#include "node/config.hpp"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <caf/defaults.hpp>
#include <caf/io/middleman.hpp>

#include "actors/actor_process.hpp"
#include "actors/detail/value.hpp"
#include "actors/error.hpp"
#include "base/fd.hpp"
#include "node/process_role.hpp"
#include "node/scheduler.hpp"
#include "wire/serializable.hpp"

namespace actors::detail {

namespace {

// The program's own configuration steps (its message types), applied to
// every actor system it makes.
std::vector<void (*)(caf::actor_system_config&)>& config_steps() {
  static std::vector<void (*)(caf::actor_system_config&)> steps;
  return steps;
}

std::string render_actors_error(std::uint8_t code, caf::atom_value,
                                const caf::message& context) {
  std::string result = "actors: ";
  result += make_error_code(static_cast<errc>(code)).message();
  if (context.match_elements<std::string>()) {
    result += " (";
    result += context.get_as<std::string>(0);
    result += ')';
  }
  return result;
}

// CAF 0.17.6 ends the program when its actor system cannot get what it
// needs while it starts: exit(1) without a descriptor for its multiplexer
// (epoll_create1 and a pipe, default_multiplexer.cpp), std::terminate
// without a thread (a joinable std::thread destroyed while unwinding). So
// just before it starts, we make as many descriptors and threads as it will,
// and fail with errc::spawn_failed if we cannot. Another thread of the
// program could take them in between: this narrows the gap, it cannot
// close it. The descriptors: epoll, a pipe, and a socket it holds a moment
// to read the MAC addresses for its node id (get_mac_addresses.cpp).
constexpr int caf_descriptors = 4;

void check_descriptors(int n) {
  std::vector<unique_fd> fds;
  int err = 0;
  while (static_cast<int>(fds.size()) < n) {
    unique_fd fd{::eventfd(0, EFD_CLOEXEC)};
    if (!fd) {
      err = errno;
      break;
    }
    fds.push_back(std::move(fd));
  }
  if (err != 0)
    throw error(errc::spawn_failed,
                "cannot start the actor system: it needs "
                  + std::to_string(n) + " file descriptors, "
                  + std::to_string(fds.size())
                  + " are left: " + std::strerror(err));
}

void check_threads(std::size_t n) {
  // Only a limit on this user's processes can refuse them (not enforced for
  // root), and only one closer than the machine's count of threads: the
  // probe costs milliseconds on a busy machine.
  rlimit lim{};
  if (::getuid() == 0 || ::getrlimit(RLIMIT_NPROC, &lim) != 0
      || lim.rlim_cur == RLIM_INFINITY)
    return;
  if (auto* f = std::fopen("/proc/loadavg", "re")) {
    unsigned long running = 0;
    unsigned long threads_now = 0; // of every user
    auto got = std::fscanf(f, "%*f %*f %*f %lu/%lu", &running, &threads_now);
    std::fclose(f);
    if (got == 2 && threads_now + n < lim.rlim_cur)
      return;
  }
  std::mutex mtx;
  std::condition_variable cv;
  bool go = false;
  std::vector<pid_t> tids(n, 0);
  std::vector<std::thread> threads;
  std::string failure;
  try {
    // All at once, as CAF's run at once: each waits until the last exists.
    for (std::size_t i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        tids[i] = static_cast<pid_t>(::syscall(SYS_gettid));
        std::unique_lock<std::mutex> guard{mtx};
        cv.wait(guard, [&] { return go; });
      });
  } catch (const std::system_error& e) {
    failure = e.what();
  }
  {
    std::lock_guard<std::mutex> guard{mtx};
    go = true;
  }
  cv.notify_all();
  for (auto& t : threads)
    t.join();
  // A joined thread counts against RLIMIT_NPROC until the kernel has
  // released it, a moment later, when its id stops existing.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{1};
  for (auto tid : tids)
    while (tid != 0 && ::syscall(SYS_tgkill, ::getpid(), tid, 0) == 0
           && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  if (!failure.empty())
    throw error(errc::spawn_failed,
                "cannot start the actor system: it needs " + std::to_string(n)
                  + " threads, " + std::to_string(threads.size())
                  + " could be made: " + failure);
}

} // namespace

std::unique_ptr<caf::actor_system_config> make_config() {
  auto cfg = std::make_unique<caf::actor_system_config>();
  for (auto step : config_steps())
    step(*cfg);
  cfg->add_error_category(caf::atom("actors"), render_actors_error);
  cfg->load<caf::io::middleman>();
  cfg->add_message_type<closure>("actors::closure");
  cfg->add_message_type<value>("actors::value");
  cfg->add_message_type<std::vector<value>>("std::vector<actors::value>");
  add_builtin_message_types(*cfg); // after the program's: its names win
  // Work sharing (the stealing scheduler polls every 10 ms when idle and
  // doubles cross-process latency on small machines; sharing idles at 0%
  // CPU), with a clock that a timed request does not wake (scheduler.hpp).
  cfg->load<scheduler>();
  cfg->set("middleman.workers", size_t{0});
  // Both ends of every connection are libactors nodes of the same run.
  cfg->set("middleman.app-identifiers",
           std::vector<std::string>{"libactors-0.1"});
  return cfg;
}

void check_resources(const caf::actor_system_config& cfg) {
  check_descriptors(caf_descriptors);
  // The threads of its scheduler's workers, its two clocks (CAF's, idle,
  // and ours), its printer actor, its multiplexer and its middleman actor;
  // the links' watcher and setup threads, and the receiver of the first
  // link.
  check_threads(caf::get_or(cfg, "scheduler.max-threads",
                            caf::defaults::scheduler::max_threads)
                + 8);
}

void add_config_step(void (*step)(caf::actor_system_config&)) {
  if (process_role::local().runtime_started)
    throw error(errc::not_initialized,
                "message types must be registered in actors::init, before "
                "anything of libactors runs");
  config_steps().push_back(step);
}

} // namespace actors::detail
