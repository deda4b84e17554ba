#pragma once

#include <cstdint>
#include <string>

namespace actors {

/// Prepares this OS process for libactors. Call it as the first statement of
/// `main`, before anything else runs:
/// @code
/// int main(int argc, char** argv) {
///   actors::init(argc, argv);
///   ...
/// }
/// @endcode
///
/// Every child process is this same program, entered here (the reason Python
/// asks for `if __name__ == "__main__":`). While the program still has a
/// single thread, `init` forks a copy of it, a fork server, from which each
/// child is forked; where there is none (TSan builds, `ACTORS_FORK_SERVER=0`
/// in the environment), a child is this program executed again with a role
/// argument, as Python's `spawn` start method does. In a child, `init` runs
/// what the parent asked for and ends the process: it never returns. In the
/// program the user started it returns at once.
///
/// A program that starts processes without calling `init` gets
/// `errc::not_initialized` from `process::start` instead of a fork bomb.
void init(int argc, char** argv);

/// The TCP port on which this node accepts other nodes of the same run.
///
/// The owner listens on 127.0.0.1 only, on an ephemeral port, from its first
/// use of libactors. Local children never use it (each is connected over an
/// inherited socket pair); it is there for nodes started by other means
/// (worker hosts). Every connection must prove the run's secret key within a
/// deadline before a single byte reaches CAF: anything else is dropped. The
/// key is never put in argv or the environment.
std::uint16_t port();

} // namespace actors
