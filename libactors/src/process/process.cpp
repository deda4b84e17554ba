#include "actors/process.hpp"

#include <atomic>
#include <csignal>

#include <unistd.h>

#include "actors/runtime.hpp"
#include "base/process_end.hpp"
#include "node/process_role.hpp"
#include "node/runtime.hpp"
#include "process/children.hpp"

namespace actors {

process::process(process&&) noexcept = default;

process& process::operator=(process&&) noexcept = default;

process::~process() {
  // The runtime's reaper owns the child's exit status: nothing to do.
}

std::string process::next_name() {
  static std::atomic<int> counter{0};
  return "Process-" + std::to_string(++counter);
}

const std::shared_ptr<detail::child>&
process::started(const char* what) const {
  if (closed_)
    throw error(errc::closed, std::string{what} + " on process " + name_
                                + " after its close()");
  if (!child_)
    throw error(errc::not_started, std::string{what} + " on process " + name_
                                     + ": it was never started");
  return child_;
}

void process::start() {
  if (closed_)
    throw error(errc::closed,
                "cannot start process " + name_ + " after its close()");
  if (child_)
    throw error(errc::already_started,
                "cannot start process " + name_ + " twice");
  if (!detail::runtime::initialized())
    throw error(errc::not_initialized,
                "call actors::init(argc, argv) as the first statement of main "
                "before starting process "
                  + name_);
  child_ = detail::children::local().spawn(target_, name_, daemon_);
}

bool process::join(std::optional<duration> timeout) {
  return started("join")->wait(timeout);
}

bool process::is_alive() const {
  if (closed_)
    throw error(errc::closed, "is_alive on process " + name_
                                + " after its close()");
  return child_ && !child_->exitcode();
}

std::optional<pid_t> process::pid() const {
  if (closed_)
    throw error(errc::closed, "pid of process " + name_ + " after its close()");
  if (!child_)
    return std::nullopt;
  return child_->pid;
}

std::optional<int> process::exitcode() const {
  if (closed_)
    throw error(errc::closed,
                "exitcode of process " + name_ + " after its close()");
  if (!child_)
    return std::nullopt;
  return child_->exitcode();
}

void process::terminate() {
  started("terminate")->signal(SIGTERM);
}

void process::kill() {
  started("kill")->signal(SIGKILL);
}

void process::close() {
  if (child_ && !child_->exitcode())
    throw error(errc::already_running,
                "cannot close process " + name_ + ": it is still running");
  closed_ = true;
  child_.reset();
  target_ = detail::closure{};
}

void process::daemon(bool value) {
  if (child_ || closed_)
    throw error(errc::already_running,
                "cannot change daemon of process " + name_ + " after start");
  daemon_ = value;
}

::actors::sentinel process::sentinel() const {
  ::actors::sentinel result;
  result.child_ = started("sentinel");
  return result;
}

bool sentinel::ready() const {
  return child_ && child_->exitcode().has_value();
}

std::vector<child_process> active_children() {
  std::vector<child_process> result;
  if (auto* table = detail::children::if_made())
    for (auto& c : table->running())
      result.push_back(child_process{c->pid, c->name});
  return result;
}

bool process_info::is_alive() const {
  return pid == ::getpid() || !detail::wait_for_end(pid, duration::zero());
}

bool process_info::join(std::optional<duration> timeout) const {
  if (pid == ::getpid())
    throw error(errc::would_deadlock,
                "process " + name + " cannot join itself");
  return detail::wait_for_end(pid, timeout);
}

process_info current_process() {
  auto& role = detail::process_role::local();
  return process_info{role.name, ::getpid(), role.daemon};
}

std::optional<process_info> parent_process() {
  auto& role = detail::process_role::local();
  if (role.parent_pid == 0)
    return std::nullopt;
  return process_info{role.parent_name, role.parent_pid, role.parent_daemon};
}

unsigned cpu_count() {
  auto n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

} // namespace actors
