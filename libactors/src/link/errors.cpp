#include "link/errors.hpp"

#include <cstdlib>
#include <cstring>

#include <sys/wait.h>
#include <unistd.h>

#include <caf/sec.hpp>

#include "base/error.hpp"
#include "base/exception_text.hpp"
#include "base/process_end.hpp"

namespace actors::detail::links {

std::string unknown_type_name(const caf::error& err) {
  if (err != caf::sec::unknown_type)
    return {};
  if (err.context().match_elements<std::string>())
    return demangle(err.context().get_as<std::string>(0).c_str());
  return "?";
}

caf::error unsendable(const caf::error& err, caf::actor_system& sys,
                      const std::string& who) {
  auto type = unknown_type_name(err);
  if (!type.empty())
    return make_error(errc::not_registered,
                      "a message of " + who + " holds type " + type
                          + ", which cannot cross a process boundary: it is "
                            "not registered (add it to actors::message_types "
                            "in actors::init)");
  return make_error(errc::invalid_argument, "a message of " + who
                                                + " cannot be serialized: "
                                                + sys.render(err));
}

std::string describe_status(pid_t pid, const siginfo_t& info) {
  auto who = "process " + std::to_string(pid);
  if (info.si_code == CLD_EXITED)
    return who + " exited with code " + std::to_string(info.si_status);
  auto sig = info.si_status;
  const char* name = sigabbrev_np(sig);
  return who + " was killed by signal " + std::to_string(sig) + " (SIG"
         + (name != nullptr ? name : "?") + ")";
}

caf::error describe_end(pid_t pid) {
  // A child of ours: its exit status, left for whoever reaps it (WNOWAIT).
  // Its socket closes as it exits, a moment before it is a zombie: wait for
  // that, at most 100 ms.
  siginfo_t info{};
  if (pid > 0
      && ::waitid(P_PID, static_cast<id_t>(pid), &info,
                  WEXITED | WNOHANG | WNOWAIT)
             == 0) {
    if (info.si_pid != pid) {
      wait_for_end(pid, std::chrono::milliseconds{100});
      info = siginfo_t{};
      ::waitid(P_PID, static_cast<id_t>(pid), &info,
               WEXITED | WNOHANG | WNOWAIT);
    }
    if (info.si_pid == pid)
      return make_error(errc::process_died, describe_status(pid, info));
  }
  return make_error(errc::process_died,
                    "process " + std::to_string(pid)
                        + " ended (its link closed without a reason)");
}

} // namespace actors::detail::links
