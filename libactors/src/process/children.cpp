#include "process/children.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/send.hpp>

#include "actors/detail/timeout.hpp"
#include "actors/error.hpp"
#include "base/error.hpp"
#include "node/runtime.hpp"
#include "process/supervision.hpp"

namespace actors::detail {

// -- child --------------------------------------------------------------------

child::child(pid_t pid, unique_fd pidfd, unique_fd lifeline,
             std::uint64_t token, bool daemon, std::string name,
             child_kind kind)
  : pid(pid), token(token), daemon(daemon), name(std::move(name)),
    who(std::string{kind == child_kind::process ? "process "
                                                 : "actor process "}
        + std::to_string(pid) + " (" + this->name + ")"),
    kind(kind),
    pidfd_(std::move(pidfd)),
    lifeline_(std::move(lifeline)) {
  // nop
}

bool child::wait(std::optional<std::chrono::steady_clock::duration> timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto done = [this] { return exitcode_.has_value(); };
  timeout = finite(timeout);
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
  if (exitcode_ || !pidfd_)
    return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), signo, nullptr, 0);
}

void child::kill_because(const std::string& why) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (exitcode_ || !pidfd_)
    return;
  if (killed_because_.empty())
    killed_because_ = why;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
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
  watch(std::move(fn));
}

std::uint64_t child::watch(std::function<void(int)> fn) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (!exitcode_) {
    auto id = next_watch_++;
    on_exit_.emplace_back(id, std::move(fn));
    return id;
  }
  auto code = *exitcode_;
  guard.unlock();
  fn(code);
  return 0;
}

void child::unwatch(std::uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto i = on_exit_.begin(); i != on_exit_.end(); ++i)
    if (i->first == id) {
      on_exit_.erase(i);
      return;
    }
}

bool child::try_reap() {
  std::vector<std::pair<std::uint64_t, std::function<void(int)>>> hooks;
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
    hook.second(code);
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
  pidfd_.reset();
  // Closing the lifeline is harmless now and frees the descriptor.
  lifeline_.reset();
  cv_.notify_all();
  return true;
}

// -- children -----------------------------------------------------------------

namespace {

std::atomic<children*> table_made{nullptr};

} // namespace

children& children::local() {
  // Never destroyed, as the runtime: the exit sequence ends the children.
  static children* table = [] {
    auto* result = new children{runtime::get()};
    table_made = result;
    return result;
  }();
  return *table;
}

children* children::if_made() {
  return table_made.load();
}

std::vector<std::shared_ptr<child>> children::running() {
  std::vector<std::shared_ptr<child>> result;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& c : running_)
    if (!c->exitcode())
      result.push_back(c);
  return result;
}

children::children(runtime& rt) : rt_(rt) {
  rt_.on_child_started([this](std::uint64_t token) { child_started(token); });
  rt_.at_shutdown(shutdown_step::end_children, [this] { end_all(); });
  // A child's link ends as it dies: its proxies die with its exit status.
  rt_.on_child_death([this](pid_t pid, bool kill) {
    return death_of(pid, std::chrono::milliseconds{200}, kill);
  });
}

caf::error children::death_of(pid_t pid,
                              std::chrono::steady_clock::duration timeout,
                              bool kill) {
  std::shared_ptr<child> found;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    // The newest with that pid (pids are reused): the running one, else
    // the one that ended last.
    for (auto& c : ended_recently_)
      if (c->pid == pid)
        found = c;
    for (auto& c : running_)
      if (c->pid == pid)
        found = c;
  }
  if (!found)
    return {};
  const auto& who = found->who;
  if (!found->wait(timeout)) {
    if (!kill || found->kind != child_kind::actor_process)
      return {};
    found->kill_because("its link broke");
    return make_error(errc::connection_lost, "lost the link to " + who
                                               + "; the process was killed");
  }
  std::string why;
  {
    std::lock_guard<std::mutex> guard{found->mtx_};
    why = found->killed_because_;
  }
  return make_error(errc::process_died,
                    who + " " + describe_exit(found->exitcode())
                      + (why.empty() ? "" : " (" + why + ")"));
}

void children::child_started(std::uint64_t token) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& c : running_)
    if (c->token == token)
      return c->mark_started();
  early_started_.insert(token);
}

void children::end_children() {
  // Python's exit sequence: terminate daemon children, join the others.
  std::vector<std::shared_ptr<child>> running;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    running = running_;
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

void children::end_all() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    ended_ = true; // no child after this one
  }
  end_children();
  if (reaper_.joinable() && reaper_.get_id() != std::this_thread::get_id()) {
    poller_->wake();
    reaper_.join();
    std::lock_guard<std::mutex> guard{mtx_};
    poller_.reset(); // a spawn that got past ended_ before finds none
  }
}

void children::reap_loop() {
  epoll_event events[16];
  for (;;) {
    auto n = ::epoll_wait(poller_->fd(), events, 16, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return;
    for (int i = 0; i < n; ++i) {
      auto* c = reinterpret_cast<child*>(events[i].data.u64);
      if (c == nullptr)
        return; // woken to stop
      // Deregister before try_reap closes the descriptor.
      std::shared_ptr<child> self;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        for (auto j = running_.begin(); j != running_.end(); ++j) {
          if (j->get() == c) {
            ::epoll_ctl(poller_->fd(), EPOLL_CTL_DEL, c->pidfd_.get(),
                        nullptr);
            self = std::move(*j);
            running_.erase(j);
            // Kept a while: its link's end asks how it ended (death_of).
            ended_recently_.push_back(self);
            if (ended_recently_.size() > 64)
              ended_recently_.pop_front();
            break;
          }
        }
      }
      if (self) {
        self->try_reap();
        caf::anon_send(rt_.service_actor(), forget_atom::value, self->token);
      }
    }
  }
}

void children::start_reaper() {
  poller_.emplace("watch child processes", 0);
  try {
    reaper_ = std::thread{[this] { reap_loop(); }};
  } catch (const std::system_error& e) {
    poller_.reset();
    throw error(errc::spawn_failed, "cannot watch child processes: a thread: "
                                      + e.code().message());
  }
}

} // namespace actors::detail
