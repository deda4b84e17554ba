#pragma once

// The errors the links report that say more than CAF would: a message type
// that is not registered (named, demangled), and how a peer process ended
// (its signal or exit code, when this process can know it).

#include <string>

#include <signal.h>
#include <sys/types.h>

#include <caf/actor_system.hpp>
#include <caf/error.hpp>

namespace actors::detail::links {

/// The readable name of the type CAF put into a sec::unknown_type error,
/// or "" for another error.
std::string unknown_type_name(const caf::error& err);

/// What a sender gets for a message that cannot be serialized in process
/// `who`: errc::not_registered naming the type, or errc::invalid_argument.
caf::error unsendable(const caf::error& err, caf::actor_system& sys,
                      const std::string& who);

/// "process P exited with code C" or "... was killed by signal S (SIGX)".
std::string describe_status(pid_t pid, const siginfo_t& info);

/// errc::process_died for process `pid` whose link just ended: its exit
/// status if it is this process's child (waiting for it at most 100 ms, and
/// leaving it to whoever reaps it), else a generic text.
caf::error describe_end(pid_t pid);

} // namespace actors::detail::links
