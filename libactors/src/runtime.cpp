#include "runtime.hpp"

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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system_config.hpp>
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
#include "actors/detail/value.hpp"
#include "actors/runtime.hpp"
#include "fork_server.hpp"
#include "serializable.hpp"
#include "listener.hpp"
#include "queue_hub.hpp"
#include "worker.hpp"

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
  // Constructed on first use, destroyed at exit before the CAF state it
  // created (function-local statics die in reverse order of construction).
  static runtime owner{role::owner};
  return owner;
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
  runtime_started = true;
  system_ = std::make_unique<caf::actor_system>(*config_);
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
  for (auto& service : services_)
    caf::anon_send_exit(service, caf::exit_reason::user_shutdown);
  services_.clear();
  caf::anon_send_exit(root_, caf::exit_reason::user_shutdown);
  root_ = nullptr;
  basp_ = nullptr;
  // At exit, this thread's thread-local storage is already gone, including
  // CAF's thread-local logger pointer that the actor system's destructor
  // resets: destroy the system on a fresh thread.
  std::thread{[this] { system_.reset(); }}.join();
  hub_.reset(); // after the queue actors, which use it
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

std::shared_ptr<child> runtime::spawn(const closure& target,
                                      const std::string& name, bool daemon,
                                      int* channel) {
  // The child holds its arguments within bootstrap_timeout of this call,
  // whatever the fork server took (at most 2 s: see fork_server::spawn).
  auto started_by = std::chrono::steady_clock::now() + bootstrap_timeout;
  std::uint64_t token;
  {
    std::lock_guard<std::mutex> guard{children_mtx_};
    token = next_token_++;
    if (!reaper_.joinable()) {
      epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
      wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = nullptr; // the stop signal
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
      reaper_ = std::thread{[this] { reap_loop(); }};
    }
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
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], child_socket_fd);
  posix_spawn_file_actions_adddup2(&actions, life[0], child_lifeline_fd);
  if (channel != nullptr) {
    ch[1] = create_cloexec_above(ch[1], 6);
    posix_spawn_file_actions_adddup2(&actions, ch[1], child_channel_fd);
  }
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
  std::thread{[lifeline] {
    char c;
    while (::read(lifeline, &c, 1) < 0 && errno == EINTR) {
    }
    ::_exit(1);
  }}.detach();
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
  auto* rt = new runtime(role::child);
  special_instance = rt;
  closure target;
  try {
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
