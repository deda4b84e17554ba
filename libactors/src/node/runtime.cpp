#include "node/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>

#include <cxxabi.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system_config.hpp>
#include <caf/defaults.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/scribe.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/actor_process.hpp"
#include "actors/error.hpp"
#include "actors/detail/pool_core.hpp"
#include "actors/detail/value.hpp"
#include "actors/runtime.hpp"
#include "process/fork_server.hpp"
#include "wire/node_context.hpp"
#include "wire/serializable.hpp"
#include "net/listener.hpp"
#include "queue/queue_hub.hpp"
#include "pool/worker.hpp"

extern char** environ;

namespace actors::detail {

namespace {

// BASP keys every connection by a port; ours are all handed over as already
// connected sockets, so they share one key that no real port uses.
constexpr std::uint16_t node_port_key = 1;

// The file descriptors a child finds its connection and its lifeline on.
constexpr int child_socket_fd = 3;
constexpr int child_lifeline_fd = 4;
constexpr int child_channel_fd = 5;

// This child's end of its direct channel, until taken.
std::atomic<int> child_channel{-1};

constexpr auto bootstrap_timeout = std::chrono::seconds{10};

std::atomic<bool> initialized_flag{false};

// Set once a runtime exists in this process (and with it CAF's threads).
std::atomic<bool> runtime_started{false};

// The runtime of a child or peer process: never destroyed, the process ends
// with _exit.
std::atomic<runtime*> special_instance{nullptr};

// A child whose task held no handle starts its runtime when first needed.
std::atomic<bool> lazy_child{false};
std::once_flag lazy_start;

// A worker process of another host joins the pool's node when first needed.
std::atomic<bool> lazy_peer{false};
runtime::remote_owner peer_owner; // set before lazy_peer
std::once_flag peer_start;

std::string current_name = "MainProcess";

// The owner's service actor, as seen from a child.
caf::actor parent_root;

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

std::unique_ptr<caf::actor_system_config> make_config() {
  auto cfg = std::make_unique<caf::actor_system_config>();
  for (auto step : config_steps())
    step(*cfg);
  cfg->add_error_category(caf::atom("actors"), render_actors_error);
  cfg->load<caf::io::middleman>();
  cfg->add_message_type<closure>("actors::closure");
  cfg->add_message_type<value>("actors::value");
  add_builtin_message_types(*cfg); // after the program's: its names win
  // The stealing scheduler polls every 10 ms when idle and doubles
  // cross-process latency on small machines; sharing idles at 0% CPU.
  cfg->set("scheduler.policy", caf::atom("sharing"));
  cfg->set("middleman.workers", size_t{0});
  // Both ends of every connection are libactors nodes of the same run.
  cfg->set("middleman.app-identifiers",
           std::vector<std::string>{"libactors-0.1"});
  return cfg;
}

struct root_state {
  std::unordered_map<std::uint64_t, std::pair<closure, std::string>> tasks;
  // The run's service names (kept by the owner; children ask their parent).
  std::unordered_map<std::string, caf::actor> names;
  static constexpr const char* name = "actors.root";
};

// The service actor of a node: hands children their task, keeps the run's
// service names and answers pings.
caf::behavior root_actor(caf::stateful_actor<root_state>* self, runtime* rt) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& names = self->state.names;
    for (auto i = names.begin(); i != names.end();)
      i = i->second.address() == dm.source ? names.erase(i) : std::next(i);
  });
  return {
    [=](name_atom, std::string& name, caf::actor& who,
        bool replace) -> caf::result<bool> {
      if (parent_root) {
        auto rp = self->make_response_promise();
        rp.delegate(parent_root, name_atom::value, std::move(name),
                    std::move(who), replace);
        return rp;
      }
      auto& entry = self->state.names[name];
      if (entry && entry != who && !replace)
        return actors::make_error(errc::name_taken,
                                  "the name " + name
                                    + " belongs to a living actor");
      entry = std::move(who);
      self->monitor(entry);
      return true;
    },
    [=](whereis_atom, std::string& name) -> caf::result<caf::actor> {
      if (parent_root) {
        auto rp = self->make_response_promise();
        rp.delegate(parent_root, whereis_atom::value, std::move(name));
        return rp;
      }
      auto i = self->state.names.find(name);
      return i == self->state.names.end() ? caf::actor{} : i->second;
    },
    [=](task_atom, std::uint64_t token, closure& target, std::string& name) {
      self->state.tasks.emplace(token,
                                std::make_pair(std::move(target),
                                               std::move(name)));
    },
    [=](hello_atom,
        std::uint64_t token) -> caf::result<closure, std::string> {
      auto i = self->state.tasks.find(token);
      if (i == self->state.tasks.end())
        return caf::make_error(caf::sec::invalid_argument,
                               "no task for this child");
      auto task = std::move(i->second);
      self->state.tasks.erase(i);
      return {std::move(task.first), std::move(task.second)};
    },
    [=](forget_atom, std::uint64_t token) { self->state.tasks.erase(token); },
    [=](started_atom, std::uint64_t token) { rt->child_started(token); },
    [=](bye_atom) {
      // The answer itself is the point: see finish().
    },
    [=](ping_atom) { return caf::make_message(pong_atom::value, getpid()); },
  };
}

// Ends a child: flushes its output, makes sure everything it sent reached the
// owner, and exits without running destructors of the actor system.
[[noreturn]] void finish(int code) {
  // A child's own children are ended as at any program's exit.
  auto* rt = special_instance.load();
  if (rt != nullptr)
    rt->end_children();
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  if (rt != nullptr && parent_root) {
    // BASP is one ordered stream: once the answer is back, every message this
    // process sent before has reached the owner's node.
    caf::scoped_actor self{rt->system()};
    self->request(parent_root, std::chrono::seconds{5}, bye_atom::value)
      .receive([] {}, [](caf::error&) {});
  }
  ::_exit(code);
}

void finish_on_exit(int status, void*) {
  finish(status);
}

int create_cloexec_above(int fd, int floor) {
  if (fd >= floor)
    return fd;
  auto moved = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
  ::close(fd);
  return moved;
}

[[noreturn]] void fail_spawn(const std::string& what) {
  throw error(errc::spawn_failed, what + ": " + std::strerror(errno));
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
  std::vector<int> fds;
  int err = 0;
  while (static_cast<int>(fds.size()) < n) {
    auto fd = ::eventfd(0, EFD_CLOEXEC);
    if (fd < 0) {
      err = errno;
      break;
    }
    fds.push_back(fd);
  }
  for (auto fd : fds)
    ::close(fd);
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

// The owner's exit sequence, run where the destructor of a static made
// together with the owner's runtime runs (runtime::get).
struct exit_sequence {
  runtime* rt;
  ~exit_sequence() {
    rt->shutdown();
  }
};

} // namespace

std::string demangle(const char* name) {
  int status = 0;
  char* readable = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string result = status == 0 && readable ? readable : name;
  std::free(readable);
  return result;
}

std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& e) {
    return demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    auto* type = abi::__cxa_current_exception_type();
    return type ? demangle(type->name()) : "unknown exception";
  }
}

// -- child --------------------------------------------------------------------

child::child(pid_t pid, int pidfd, int lifeline, std::uint64_t token,
             bool daemon)
  : pid(pid), token(token), daemon(daemon), pidfd_(pidfd),
    lifeline_(lifeline) {
  // nop
}

child::~child() {
  if (pidfd_ >= 0)
    ::close(pidfd_);
  if (lifeline_ >= 0)
    ::close(lifeline_);
}

bool child::wait(std::optional<std::chrono::steady_clock::duration> timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto done = [this] { return exitcode_.has_value(); };
  if (!timeout) {
    cv_.wait(guard, done);
    return true;
  }
  if (*timeout <= std::chrono::steady_clock::duration::zero())
    return done();
  return cv_.wait_for(guard, *timeout, done);
}

std::optional<int> child::exitcode() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return exitcode_;
}

void child::signal(int signo) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (exitcode_ || pidfd_ < 0)
    return;
  ::syscall(SYS_pidfd_send_signal, pidfd_, signo, nullptr, 0);
}

bool child::wait_started(std::chrono::steady_clock::duration timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  return cv_.wait_for(guard, timeout,
                      [this] { return started_ || exitcode_.has_value(); });
}

void child::mark_started() {
  std::lock_guard<std::mutex> guard{mtx_};
  started_ = true;
  cv_.notify_all();
}

void child::on_exit(std::function<void(int)> fn) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (!exitcode_) {
    on_exit_.push_back(std::move(fn));
    return;
  }
  auto code = *exitcode_;
  guard.unlock();
  fn(code);
}

bool child::try_reap() {
  std::vector<std::function<void(int)>> hooks;
  int code = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (exitcode_)
      return true;
    if (!reap_locked())
      return false;
    hooks.swap(on_exit_);
    code = *exitcode_;
  }
  for (auto& hook : hooks)
    hook(code);
  return true;
}

bool child::reap_locked() {
  int status = 0;
  auto res = ::waitpid(pid, &status, WNOHANG);
  if (res == 0)
    return false;
  if (res < 0) {
    // Someone else reaped it (waitpid(-1) in user code, SIGCHLD ignored):
    // the status is lost, report it as a failure rather than waiting forever.
    exitcode_ = 255;
  } else if (WIFEXITED(status)) {
    exitcode_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exitcode_ = -WTERMSIG(status);
  } else {
    return false;
  }
  ::close(pidfd_);
  pidfd_ = -1;
  // Closing the lifeline is harmless now and frees the descriptor.
  ::close(lifeline_);
  lifeline_ = -1;
  cv_.notify_all();
  return true;
}

// -- runtime ------------------------------------------------------------------

runtime& runtime::get() {
  if (auto* rt = special_instance.load())
    return *rt;
  if (lazy_child.load()) {
    // Connected like any child, only now.
    std::call_once(lazy_start, [] {
      auto* rt = new runtime(role::child);
      parent_root = rt->connect_node(child_socket_fd, bootstrap_timeout);
      special_instance = rt;
    });
    return *special_instance.load();
  }
  if (lazy_peer.load()) {
    std::call_once(peer_start, [] {
      parent_root = join(peer_owner.host, peer_owner.port, peer_owner.key,
                         bootstrap_timeout);
      // Queues and pipes of the pool's process: through its hub, over TCP.
      auto pool_node = parent_root.node();
      set_remote_hub([pool_node](const caf::node_id& node) {
        if (node != pool_node)
          throw error(errc::owner_unreachable,
                      "the queue belongs to a process on another host "
                      "than the pool's: across hosts, only the queues and "
                      "pipes of the pool's own process are shared");
        auto fd = connect_authenticated(peer_owner.host, peer_owner.port,
                                        peer_owner.key, purpose::hub,
                                        bootstrap_timeout);
        watch_link(fd, peer_owner.lost_after);
        return fd;
      });
    });
    return *special_instance.load();
  }
  // Made on first use (on the caller's thread, so that a failure reaches
  // the caller) and never destroyed: a handle held by a global may be
  // released by a static destructor after the exit sequence, and must still
  // find CAF. The exit sequence runs where the owner's destructor would:
  // before the CAF and OpenSSL state made while it started (statics die in
  // reverse order of construction). A failed start is tried again at the
  // next call.
  static runtime* owner = new runtime{role::owner};
  static exit_sequence at_exit{owner};
  return *owner;
}

bool runtime::initialized() noexcept {
  return initialized_flag.load();
}

runtime::runtime(role r) : role_(r), config_(make_config()) {
  if (role_ == role::peer && lazy_peer.load()) {
    // Across hosts a silent peer is noticed only by heartbeats.
    auto every = std::chrono::duration_cast<caf::timespan>(
      peer_owner.lost_after / 4);
    config_->set("middleman.heartbeat-interval", every);
    config_->set("middleman.connection-timeout",
                 caf::timespan{peer_owner.lost_after});
  }
  check_descriptors(caf_descriptors);
  // The threads of its scheduler's workers, its clock, its printer actor,
  // its multiplexer and its middleman actor.
  check_threads(caf::get_or(*config_, "scheduler.max-threads",
                            caf::defaults::scheduler::max_threads)
                + 4);
  runtime_started = true;
  system_ = std::make_unique<caf::actor_system>(*config_);
  try {
    root_ = system_->spawn(root_actor, this);
    basp_ = system_->middleman().named_broker<caf::io::basp_broker>(
      caf::atom("BASP"));
    if (role_ != role::owner)
      return;
    key_ = make_secret();
    listener_ = std::make_unique<listener>(key_, [this](int fd, purpose p) {
      if (p == purpose::node)
        accept_node(fd);
      else
        ::close(fd); // workers and hubs come through a pool's listener
    });
  } catch (...) {
    // The system ends with this attempt (it waits for its actors).
    listener_.reset();
    if (root_)
      caf::anon_send_exit(root_, caf::exit_reason::user_shutdown);
    root_ = nullptr;
    basp_ = nullptr;
    system_.reset();
    throw;
  }
}

void runtime::child_started(std::uint64_t token) {
  std::lock_guard<std::mutex> guard{children_mtx_};
  for (auto& c : children_)
    if (c->token == token)
      return c->mark_started();
  early_started_.insert(token);
}

void runtime::end_children() {
  // Python's exit sequence: terminate daemon children, join the others.
  std::vector<std::shared_ptr<child>> running;
  {
    std::lock_guard<std::mutex> guard{children_mtx_};
    running = children_;
  }
  for (auto& c : running)
    if (c->daemon)
      c->signal(SIGTERM);
  for (auto& c : running) {
    if (c->daemon && !c->wait(std::chrono::seconds{1}))
      c->signal(SIGKILL);
    c->wait(std::nullopt);
  }
}

runtime::~runtime() {
  // nop: runtimes live as long as their process (see get and shutdown)
}

void runtime::shutdown() {
  // Python's exit sequence: live pools are terminated (their feeders would
  // start new workers), daemon children terminated, the others joined.
  pool_core::end_all();
  {
    std::lock_guard<std::mutex> guard{children_mtx_};
    ended_ = true; // no child after this one
  }
  end_children();
  if (reaper_.joinable()) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
    reaper_.join();
    ::close(epoll_fd_);
    ::close(wake_fd_);
  }
  listener_.reset();
  if (hub_)
    hub_->stop();
  std::vector<caf::actor> ours;
  {
    std::lock_guard<std::mutex> guard{services_mtx_};
    ours = services_;
  }
  ours.push_back(root_);
  // The actor system is not destroyed: the static destructors that run
  // after this one may release the last handle to one of its actors (a
  // global queue, actor process or progress bar), which CAF can only do
  // while its system exists. Its threads idle until the process ends. Our
  // actors end now, and are waited for (at most 1 s), so that none of them
  // runs while the program's statics are destroyed. (On a fresh thread:
  // this one's thread-local storage may be gone, CAF's with it.)
  auto end_ours = [&] {
    caf::scoped_actor self{*system_};
    for (auto& a : ours)
      self->monitor(a);
    for (auto& a : ours)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{1};
    for (auto left = ours.size(); left > 0;) {
      bool late = false;
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      self->receive([&](caf::down_msg&) { --left; },
                    caf::after(std::max(wait, std::chrono::milliseconds{0}))
                      >> [&] { late = true; });
      if (late)
        break;
    }
  };
  try {
    std::thread{end_ours}.join();
  } catch (const std::system_error&) {
    for (auto& a : ours) // no thread to wait on: they end by themselves
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
}

std::uint16_t runtime::port() const {
  if (!listener_)
    throw error(errc::invalid_argument, "only the owner node listens");
  return listener_->port();
}

const listener& runtime::acceptor() const {
  if (!listener_)
    throw error(errc::invalid_argument, "only the owner node listens");
  return *listener_;
}

void runtime::reap_loop() {
  epoll_event events[16];
  for (;;) {
    auto n = ::epoll_wait(epoll_fd_, events, 16, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return;
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<child*>(events[i].data.ptr);
      if (c == nullptr)
        return; // woken to stop
      // Deregister before try_reap closes the descriptor.
      std::shared_ptr<child> self;
      {
        std::lock_guard<std::mutex> guard{children_mtx_};
        for (auto j = children_.begin(); j != children_.end(); ++j) {
          if (j->get() == c) {
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->pidfd_, nullptr);
            self = std::move(*j);
            children_.erase(j);
            break;
          }
        }
      }
      if (self) {
        self->try_reap();
        caf::anon_send(root_, forget_atom::value, self->token);
      }
    }
  }
}

void runtime::start_reaper() {
  auto fail = [this](const std::string& what) {
    auto text = what + ": " + std::strerror(errno);
    for (int* fd : {&epoll_fd_, &wake_fd_}) {
      if (*fd >= 0)
        ::close(*fd);
      *fd = -1;
    }
    throw error(errc::spawn_failed,
                "cannot watch child processes: " + text);
  };
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    fail("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0)
    fail("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr; // the stop signal
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
    fail("epoll_ctl");
  try {
    reaper_ = std::thread{[this] { reap_loop(); }};
  } catch (const std::system_error& e) {
    errno = e.code().value();
    fail("a thread");
  }
}

std::shared_ptr<child> runtime::spawn(const closure& target,
                                      const std::string& name, bool daemon,
                                      int* channel) {
  // The child holds its arguments within bootstrap_timeout of this call,
  // whatever the fork server took (at most 2 s: see fork_server::spawn).
  auto started_by = std::chrono::steady_clock::now() + bootstrap_timeout;
  std::uint64_t token;
  {
    std::lock_guard<std::mutex> guard{children_mtx_};
    if (ended_)
      throw error(errc::spawn_failed, "process " + name
                                        + " not started: the program is "
                                          "exiting");
    token = next_token_++;
    if (!reaper_.joinable())
      start_reaper();
  }
  // A task without actor handles can travel with the fork request: the child
  // then needs no actor system to start (serializing a handle without one
  // fails, which tells).
  std::vector<char> inline_task;
  {
    caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr),
                                inline_task};
    auto copy = target;
    auto err = sink(copy);
    if (err || inline_task.size() > fork_server::max_inline_task)
      inline_task.clear();
    // The task must reach the child (BASP would drop it silently).
    if (err && (err = serializable(copy)))
      throw error(errc::invalid_argument,
                  "an argument of process " + name
                    + " cannot be serialized: " + system_->render(err));
  }
  auto forget = [&] { caf::anon_send(root_, forget_atom::value, token); };
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    forget();
    fail_spawn("socketpair");
  }
  int life[2];
  if (::pipe2(life, O_CLOEXEC) != 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    forget();
    fail_spawn("pipe2");
  }
  int ch[2] = {-1, -1};
  if (channel != nullptr
      && ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) != 0) {
    for (int fd : {sv[0], sv[1], life[0], life[1]})
      ::close(fd);
    forget();
    fail_spawn("socketpair");
  }
  // dup2 into fds 3 to 5 must not clobber a source: keep sources above.
  sv[1] = create_cloexec_above(sv[1], 6);
  life[0] = create_cloexec_above(life[0], 6);
  if (channel != nullptr)
    ch[1] = create_cloexec_above(ch[1], 6);
  if (sv[1] < 0 || life[0] < 0 || (channel != nullptr && ch[1] < 0)) {
    auto err = errno;
    for (int fd : {sv[0], sv[1], life[0], life[1], ch[0], ch[1]})
      if (fd >= 0)
        ::close(fd);
    forget();
    errno = err;
    fail_spawn("fcntl");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], child_socket_fd);
  posix_spawn_file_actions_adddup2(&actions, life[0], child_lifeline_fd);
  if (channel != nullptr)
    posix_spawn_file_actions_adddup2(&actions, ch[1], child_channel_fd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  auto token_str = std::to_string(token);
  char role_arg[] = "--actors-child";
  char channel_arg[] = "--actors-channel";
  char* argv[] = {program_invocation_name, role_arg, token_str.data(),
                  channel != nullptr ? channel_arg : nullptr, nullptr};
  pid_t pid = -1;
  bool lazy = false;
  if (!inline_task.empty()) {
    pid = fork_server::spawn(token, sv[1], life[0], ch[1], &inline_task, name);
    lazy = pid > 0;
  }
  if (!lazy) {
    // Queued before the child can say hello.
    caf::anon_send(root_, task_atom::value, token, target, name);
    pid = fork_server::spawn(token, sv[1], life[0], ch[1], nullptr, name);
  }
  auto rc = pid > 0 ? 0
                    : ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr,
                                    argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  ::close(life[0]);
  if (ch[1] >= 0)
    ::close(ch[1]);
  auto close_channel = [&] {
    if (ch[0] >= 0)
      ::close(ch[0]);
  };
  if (rc != 0) {
    close_channel();
    ::close(sv[0]);
    ::close(life[1]);
    forget();
    errno = rc;
    fail_spawn("posix_spawn");
  }
  auto pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    // A child we cannot watch could never be joined: undo the start.
    auto err = errno;
    if (err != ESRCH) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    close_channel();
    ::close(sv[0]);
    ::close(life[1]);
    forget();
    errno = err;
    fail_spawn("pidfd_open");
  }
  auto result = std::make_shared<child>(pid, pidfd, life[1], token, daemon);
  accept_node(sv[0]);
  {
    std::lock_guard<std::mutex> guard{children_mtx_};
    children_.push_back(result);
    // A child with its task inline holds its arguments from the start.
    if (early_started_.erase(token) > 0 || lazy)
      result->mark_started();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = result.get();
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, pidfd, &ev);
  }
  // Return once the child holds its arguments, as a forked child would: the
  // caller may then close its own copies of the handles it passed.
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    started_by - std::chrono::steady_clock::now());
  if (!result->wait_started(std::max(left, std::chrono::milliseconds{0}))) {
    close_channel();
    result->signal(SIGKILL);
    result->wait(std::nullopt);
    throw error(errc::spawn_failed, "process " + name + " did not start within "
                                      + std::to_string(bootstrap_timeout.count())
                                      + " s");
  }
  if (channel != nullptr)
    *channel = ch[0];
  return result;
}

void runtime::enter_child(std::uint64_t token, bool channel) {
  if (channel) {
    // Not inherited by this child's own children.
    ::fcntl(child_channel_fd, F_SETFD, FD_CLOEXEC);
    child_channel = child_channel_fd;
  }
  run_child(child_socket_fd, child_lifeline_fd, token);
}

int runtime::take_channel() {
  return child_channel.exchange(-1);
}

queue_hub& runtime::hub() {
  std::call_once(hub_once_, [this] { hub_ = std::make_unique<queue_hub>(); });
  return *hub_;
}

caf::proxy_registry* runtime::proxies() {
  auto broker = caf::actor_cast<caf::abstract_actor*>(basp_);
  return static_cast<caf::io::basp_broker*>(broker)->proxy_registry_ptr();
}

void runtime::accept_node(int fd) {
  auto scribe = system_->middleman().backend().new_scribe(fd);
  caf::anon_send(basp_, caf::publish_atom::value, std::move(scribe),
                 node_port_key, caf::actor_cast<caf::strong_actor_ptr>(root_),
                 std::set<std::string>{});
}

caf::actor runtime::connect_node(int fd, std::chrono::milliseconds timeout) {
  auto scribe = system_->middleman().backend().new_scribe(fd);
  caf::scoped_actor self{*system_};
  caf::actor peer;
  std::string reason = "no answer";
  self
    ->request(basp_, timeout, caf::connect_atom::value, std::move(scribe),
              node_port_key)
    .receive(
      [&](caf::node_id&, caf::strong_actor_ptr& root, std::set<std::string>&) {
        peer = caf::actor_cast<caf::actor>(root);
      },
      [&](caf::error& err) { reason = system_->render(err); });
  if (!peer)
    throw error(errc::owner_unreachable, "cannot join the owner node: " + reason);
  return peer;
}

caf::actor runtime::join(const std::string& host, std::uint16_t port,
                         const secret& key, std::chrono::milliseconds timeout) {
  auto fd = connect_authenticated(host, port, key, purpose::node, timeout);
  if (lazy_peer.load())
    watch_link(fd, peer_owner.lost_after);
  if (special_instance.load() == nullptr)
    special_instance = new runtime(role::peer);
  return special_instance.load()->connect_node(fd, timeout);
}

namespace {

// The lifeline is the write end of a pipe held only by the owner: when the
// owner dies, however it dies, read() returns and this process goes too.
void watch_lifeline(int lifeline) {
  try {
    std::thread{[lifeline] {
      char c;
      while (::read(lifeline, &c, 1) < 0 && errno == EINTR) {
      }
      ::_exit(1);
    }}.detach();
  } catch (const std::system_error& e) {
    // Unwatched, this process could outlive its owner: it does not start.
    std::fprintf(stderr, "libactors child %d: cannot watch its owner: %s\n",
                 static_cast<int>(getpid()), e.code().message().c_str());
    ::_exit(1);
  }
}

[[noreturn]] void run_target(const closure& target) {
  ::on_exit(finish_on_exit, nullptr);
  int code = 0;
  try {
    target();
  } catch (...) {
    std::fprintf(stderr, "Process %s: uncaught %s\n", current_name.c_str(),
                 current_exception_text().c_str());
    code = 1;
  }
  finish(code);
}

} // namespace

void runtime::run_child(int fd, int lifeline, std::uint64_t token) {
  watch_lifeline(lifeline);
  closure target;
  try {
    auto* rt = new runtime(role::child);
    special_instance = rt;
    parent_root = rt->connect_node(fd, bootstrap_timeout);
    caf::scoped_actor self{rt->system()};
    std::string failure;
    self->request(parent_root, bootstrap_timeout, hello_atom::value, token)
      .receive(
        [&](closure& task, std::string& name) {
          target = std::move(task);
          current_name = std::move(name);
        },
        [&](caf::error& err) { failure = rt->system().render(err); });
    if (!target)
      throw error(errc::function_not_found,
                  "cannot load its task from the owner: " + failure);
    // Deserializing the task registered this process as the holder of every
    // pipe end among the arguments; only now may start() return.
    caf::anon_send(parent_root, started_atom::value, token);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libactors child %d: %s\n", static_cast<int>(getpid()),
                 e.what());
    finish(1);
  }
  run_target(target);
}

void runtime::enter_lazy_child(bool channel, const char* task,
                               std::size_t size, std::string name) {
  if (channel) {
    ::fcntl(child_channel_fd, F_SETFD, FD_CLOEXEC);
    child_channel = child_channel_fd;
  }
  watch_lifeline(child_lifeline_fd);
  current_name = std::move(name);
  closure target;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                  task, size};
  if (source(target) || !target) {
    std::fprintf(stderr, "libactors child %d: cannot read its task\n",
                 static_cast<int>(getpid()));
    finish(1);
  }
  lazy_child = true;
  run_target(target);
}

void runtime::join_later(remote_owner where) {
  peer_owner = std::move(where);
  lazy_peer = true;
}

const runtime::remote_owner* runtime::owner_elsewhere() noexcept {
  return lazy_peer.load() ? &peer_owner : nullptr;
}

void runtime::finish(int code) {
  detail::finish(code);
}

bool runtime::started() noexcept {
  return runtime_started.load();
}

void add_config_step(void (*step)(caf::actor_system_config&)) {
  if (runtime_started)
    throw error(errc::not_initialized,
                "message types must be registered in actors::init, before "
                "anything of libactors runs");
  config_steps().push_back(step);
}

namespace node_context {

bool started() noexcept {
  return runtime::started();
}

caf::actor_system& system() {
  return runtime::get().system();
}

caf::proxy_registry* proxies() {
  return runtime::get().proxies();
}

} // namespace node_context

} // namespace actors::detail

namespace actors {

void init(int argc, char** argv) {
  detail::initialized_flag = true;
  if (argc >= 3 && std::strcmp(argv[1], "--actors-child") == 0)
    detail::runtime::enter_child(std::strtoull(argv[2], nullptr, 10),
                                 argc >= 4
                                   && std::strcmp(argv[3], "--actors-channel")
                                        == 0);
  detail::worker_host_args worker;
  if (detail::parse_worker_host(argc, argv, worker))
    detail::run_worker_host(worker);
  // Before any thread of ours exists (the runtime starts on first use).
  if (!detail::runtime_started)
    detail::fork_server::start();
}

std::uint16_t port() {
  return detail::runtime::get().port();
}

caf::actor_system& system() {
  return detail::runtime::get().system();
}

const std::string& current_process_name() {
  return detail::current_name;
}

} // namespace actors
