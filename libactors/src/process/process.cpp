#include "actors/process.hpp"

#include <atomic>
#include <csignal>

#include <unistd.h>

#include "actors/runtime.hpp"
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

void process::start() {
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
  if (!child_)
    throw error(errc::not_started, "cannot join process " + name_
                                     + ": it was never started");
  return child_->wait(timeout);
}

bool process::is_alive() const {
  return child_ && !child_->exitcode();
}

std::optional<pid_t> process::pid() const {
  if (!child_)
    return std::nullopt;
  return child_->pid;
}

std::optional<int> process::exitcode() const {
  if (!child_)
    return std::nullopt;
  return child_->exitcode();
}

void process::terminate() {
  if (!child_)
    throw error(errc::not_started, "cannot terminate process " + name_
                                     + ": it was never started");
  child_->signal(SIGTERM);
}

void process::kill() {
  if (!child_)
    throw error(errc::not_started,
                "cannot kill process " + name_ + ": it was never started");
  child_->signal(SIGKILL);
}

void process::daemon(bool value) {
  if (child_)
    throw error(errc::already_running,
                "cannot change daemon of process " + name_ + " after start");
  daemon_ = value;
}

::actors::sentinel process::sentinel() const {
  if (!child_)
    throw error(errc::not_started, "sentinel of a process never started");
  ::actors::sentinel result;
  result.child_ = child_;
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

unsigned cpu_count() {
  auto n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

} // namespace actors
