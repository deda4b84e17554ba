#include "process/child_main.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <caf/binary_deserializer.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/detail/closure.hpp"
#include "actors/error.hpp"
#include "base/exception_text.hpp"
#include "node/runtime.hpp"

namespace actors::detail {

namespace {

// Not inherited by this child's own children; taken by take_channel().
void keep_channel(bool channel) {
  if (!channel)
    return;
  ::fcntl(child_channel_fd, F_SETFD, FD_CLOEXEC);
  process_role::local().channel = child_channel_fd;
}

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

void finish_on_exit(int status, void*) {
  runtime::finish(status);
}

[[noreturn]] void run_target(const closure& target) {
  ::on_exit(finish_on_exit, nullptr);
  int code = 0;
  try {
    target();
  } catch (...) {
    std::fprintf(stderr, "Process %s: uncaught %s\n",
                 process_role::local().name.c_str(),
                 current_exception_text().c_str());
    code = 1;
  }
  runtime::finish(code);
}

} // namespace

// "DAEMON PARENT_DAEMON PPID PARENT_NAME_SIZE\nPARENT_NAME" then the name, so
// that neither name needs escaping.
std::string encode_identity(const std::string& name, bool daemon) {
  auto& role = process_role::local();
  return std::string{daemon ? "1 " : "0 "} + (role.daemon ? "1 " : "0 ")
         + std::to_string(::getpid()) + ' ' + std::to_string(role.name.size())
         + '\n' + role.name + name;
}

void adopt_identity(const std::string& encoded) {
  auto& role = process_role::local();
  char* pos = nullptr;
  auto daemon = std::strtol(encoded.c_str(), &pos, 10);
  auto parent_daemon = std::strtol(pos, &pos, 10);
  auto ppid = std::strtol(pos, &pos, 10);
  auto size = std::strtoul(pos, &pos, 10);
  auto head = static_cast<std::size_t>(pos - encoded.c_str()) + 1;
  if (*pos != '\n' || head + size > encoded.size()) {
    role.name = encoded; // not from this library's parent: keep it whole
    return;
  }
  role.daemon = daemon != 0;
  role.parent_daemon = parent_daemon != 0;
  role.parent_pid = static_cast<pid_t>(ppid);
  role.parent_name = encoded.substr(head, size);
  role.name = encoded.substr(head + size);
}

void enter_child(std::uint64_t token, bool channel) {
  keep_channel(channel);
  watch_lifeline(child_lifeline_fd);
  auto& role = process_role::local();
  closure target;
  try {
    auto& rt = runtime::start_child(child_socket_fd);
    caf::scoped_actor self{rt.system()};
    std::string failure;
    self->request(role.parent, bootstrap_timeout, hello_atom::value, token)
      .receive(
        [&](closure& task, std::string& name) {
          target = std::move(task);
          adopt_identity(name);
        },
        [&](caf::error& err) { failure = rt.system().render(err); });
    if (!target)
      throw error(errc::function_not_found,
                  "cannot load its task from the owner: " + failure);
    // This process holds every pipe end among the arguments; only now may
    // start() return (its caller may close its own copies then).
    take_ends(target);
    caf::anon_send(role.parent, started_atom::value, token);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libactors child %d: %s\n", static_cast<int>(getpid()),
                 e.what());
    runtime::finish(1);
  }
  run_target(target);
}

void enter_lazy_child(bool channel, const char* task, std::size_t size,
                      std::string name) {
  keep_channel(channel);
  watch_lifeline(child_lifeline_fd);
  auto& role = process_role::local();
  adopt_identity(name);
  closure target;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                  task, size};
  if (source(target) || !target) {
    std::fprintf(stderr, "libactors child %d: cannot read its task\n",
                 static_cast<int>(getpid()));
    runtime::finish(1);
  }
  role.lazy_child = true;
  try {
    // start() has returned already: the sender holds the ends among the
    // arguments until this process does.
    take_ends(target);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libactors child %d: %s\n", static_cast<int>(getpid()),
                 e.what());
    runtime::finish(1);
  }
  run_target(target);
}

} // namespace actors::detail
