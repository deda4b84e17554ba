// children::spawn: starts a child process running the child role
// (child_main.hpp) with its connection, its lifeline and maybe a channel on
// descriptors 3 to 5: forked by the fork server when there is one
// (fork_server.hpp), else posix_spawn of this binary. A task without actor
// handles travels with the fork request, so the child needs no actor system
// to start; else the service actor holds it until the child asks (hello).

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/binary_serializer.hpp>
#include <caf/send.hpp>

#include "actors/error.hpp"
#include "base/deadline.hpp"
#include "node/runtime.hpp"
#include "process/child_main.hpp"
#include "process/children.hpp"
#include "process/fork_server.hpp"
#include "wire/serializable.hpp"

extern char** environ;

namespace actors::detail {

namespace {

[[noreturn]] void fail_spawn(const std::string& what) {
  throw error(errc::spawn_failed, what + ": " + std::strerror(errno));
}

// A close-on-exec socket pair or pipe, or spawn_failed.
void make_socket_pair(unique_fd& a, unique_fd& b) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    fail_spawn("socketpair");
  a.reset(fds[0]);
  b.reset(fds[1]);
}

void make_pipe(unique_fd& read_end, unique_fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    fail_spawn("pipe2");
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
}

// Moves `fd` to a descriptor at or above `floor` (close-on-exec), so that
// placing the child's descriptors on 3 to 5 clobbers no source.
void move_above(unique_fd& fd, int floor) {
  if (fd.get() >= floor)
    return;
  auto moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, floor);
  if (moved < 0)
    fail_spawn("fcntl");
  fd.reset(moved);
}

// The task queued at the service actor for a child not yet started is
// dropped on every way out of spawn but success.
class task_guard {
public:
  task_guard(const caf::actor& service_actor, std::uint64_t token)
    : service_actor_(service_actor), token_(token) {
    // nop
  }

  ~task_guard() {
    if (armed_)
      caf::anon_send(service_actor_, forget_atom::value, token_);
  }

  void dismiss() {
    armed_ = false;
  }

private:
  const caf::actor& service_actor_;
  std::uint64_t token_;
  bool armed_ = true;
};

// posix_spawn's attributes: signals unblocked and at their defaults.
class spawn_attributes {
public:
  spawn_attributes() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }

  ~spawn_attributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }

  spawn_attributes(const spawn_attributes&) = delete;
  spawn_attributes& operator=(const spawn_attributes&) = delete;

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
};

} // namespace

namespace {

thread_local std::vector<std::function<void()>>* receiver_ends = nullptr;

// Collects when_receiver_ends() for its life; runs what it holds unless
// released (spawn failed before the child existed).
class receiver_scope {
public:
  receiver_scope() : prev_(std::exchange(receiver_ends, &fns_)) {
    // nop
  }
  ~receiver_scope() {
    receiver_ends = prev_;
    for (auto& fn : fns_)
      fn();
  }
  receiver_scope(const receiver_scope&) = delete;
  receiver_scope& operator=(const receiver_scope&) = delete;

  std::vector<std::function<void()>> release() noexcept {
    return std::exchange(fns_, {});
  }

private:
  std::vector<std::function<void()>> fns_;
  std::vector<std::function<void()>>* prev_;
};

} // namespace

void when_receiver_ends(std::function<void()> fn) {
  if (receiver_ends != nullptr)
    receiver_ends->push_back(std::move(fn));
}

std::shared_ptr<child> children::spawn(const closure& target,
                                       const std::string& name, bool daemon,
                                       int* channel, child_kind kind) {
  // The child holds its arguments within bootstrap_timeout of this call,
  // whatever the fork server took (at most 2 s: see fork_server::spawn).
  deadline started_by{bootstrap_timeout};
  std::uint64_t token;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (ended_ || rt_.exiting()) // exiting: before this table existed
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
  // What the arguments ask to run once the child has ended (pipe ends
  // among them); at once if this throws before the child exists.
  receiver_scope handed;
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
                    + " cannot be serialized: " + rt_.system().render(err));
  }
  task_guard forget{rt_.service_actor(), token};
  // Ours and the child's end of: its connection, its lifeline, its channel.
  unique_fd node_end, child_node_end, life_read, life_write, channel_end,
    child_channel_end;
  make_socket_pair(node_end, child_node_end);
  // The run's key waits in the socket for the child (its links by name).
  rt_.hand_key(node_end.get());
  make_pipe(life_read, life_write);
  if (channel != nullptr)
    make_socket_pair(channel_end, child_channel_end);
  move_above(child_node_end, 6);
  move_above(life_read, 6);
  if (channel != nullptr)
    move_above(child_channel_end, 6);
  spawn_attributes spawning;
  posix_spawn_file_actions_adddup2(&spawning.actions, child_node_end.get(),
                                   child_socket_fd);
  posix_spawn_file_actions_adddup2(&spawning.actions, life_read.get(),
                                   child_lifeline_fd);
  if (channel != nullptr)
    posix_spawn_file_actions_adddup2(&spawning.actions,
                                     child_channel_end.get(), child_channel_fd);
  auto token_str = std::to_string(token);
  char role_arg[] = "--actors-child";
  char channel_arg[] = "--actors-channel";
  char* argv[] = {program_invocation_name, role_arg, token_str.data(),
                  channel != nullptr ? channel_arg : nullptr, nullptr};
  pid_t pid = -1;
  bool lazy = false;
  auto identity = encode_identity(name, daemon);
  if (!inline_task.empty()) {
    pid = fork_server::spawn(token, child_node_end.get(), life_read.get(),
                             child_channel_end.get(), &inline_task, identity);
    lazy = pid > 0;
  }
  if (!lazy) {
    // Queued before the child can say hello.
    caf::anon_send(rt_.service_actor(), task_atom::value, token, target,
                   identity);
    pid = fork_server::spawn(token, child_node_end.get(), life_read.get(),
                             child_channel_end.get(), nullptr, identity);
  }
  auto rc = pid > 0 ? 0
                    : ::posix_spawn(&pid, "/proc/self/exe", &spawning.actions,
                                    &spawning.attr, argv, environ);
  child_node_end.reset();
  life_read.reset();
  child_channel_end.reset();
  if (rc != 0) {
    errno = rc;
    fail_spawn("posix_spawn");
  }
  unique_fd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  if (!pidfd) {
    // A child we cannot watch could never be joined: undo the start.
    auto err = errno;
    if (err != ESRCH) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    errno = err;
    fail_spawn("pidfd_open");
  }
  auto pidfd_num = pidfd.get();
  auto result = std::make_shared<child>(pid, std::move(pidfd),
                                        std::move(life_write), token, daemon,
                                        name, kind);
  if (auto fns = handed.release(); !fns.empty())
    result->on_exit([fns = std::move(fns)](int) {
      for (auto& fn : fns)
        fn();
    });
  forget.dismiss(); // from now on, the reaper forgets it
  rt_.adopt_child(node_end.release());
  {
    std::lock_guard<std::mutex> guard{mtx_};
    running_.push_back(result);
    // A child with its task inline holds its arguments from the start.
    if (early_started_.erase(token) > 0 || lazy)
      result->mark_started();
    if (poller_) // none once the reaper has ended (exiting)
      poller_->add(pidfd_num, EPOLLIN,
                   reinterpret_cast<std::uint64_t>(result.get()));
  }
  // Return once the child holds its arguments, as a forked child would: the
  // caller may then close its own copies of the handles it passed.
  if (!result->wait_started(*started_by.left())) {
    result->signal(SIGKILL);
    result->wait(std::nullopt);
    throw error(errc::spawn_failed, "process " + name + " did not start within "
                                      + std::to_string(bootstrap_timeout.count())
                                      + " s");
  }
  if (channel != nullptr)
    *channel = channel_end.release();
  return result;
}

} // namespace actors::detail
