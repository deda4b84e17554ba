#pragma once

// The fork server: a copy of the owner made by actors::init before any
// thread exists, which forks the owner's children on request. A child so
// made starts without exec, so without dynamic loading and relocation
// (about 4 ms with CAF's libraries here), and is still a child of the
// owner (CLONE_PARENT): the owner waits for it and reads its exit status
// as for any other; it runs on a fresh thread, as glibc's record of the
// cloned thread is the server's. Where there is no server, children are
// started with posix_spawn of the same binary instead; so they are once
// the server died, or did not answer a request within 2 s (stopped,
// starved: it is then ended, and says so on stderr).
//
// A child the server forked for a request the owner gave up on exits
// without running, after sending its pid on a socket of its own, by which
// the owner reaps it (it is the owner's child: no zombie is left).
//
// A child made by the server sees the program as it was at actors::init:
// its environment is the one of that moment (the working directory is
// passed along).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

namespace actors::detail::fork_server {

/// Forks the server; call only while this process has a single thread.
/// Does nothing where forking without exec is unsafe (TSan) or disabled
/// (ACTORS_FORK_SERVER=0 in the environment).
void start();

/// The server's pid, or -1 while there is none: never started, or given
/// up on by a spawn that found it dead or unanswering. Waits for a spawn
/// in progress (2 s at most).
pid_t pid();

/// The largest serialized task sent along with a request.
constexpr std::size_t max_inline_task = 64 * 1024;

/// Starts a child running the child role with `token` and the descriptors
/// `socket`, `lifeline` and, unless -1, `channel` on 3, 4 and 5. With
/// `task` (a serialized closure without actor handles, at most
/// max_inline_task bytes) the child runs it, named `name`, without asking
/// the owner, and starts its actor system only if it needs one. Returns its
/// pid, or -1 if there is no server (the caller then execs the child).
/// Blocks 2 s at most: a server that does not answer within that (stopped,
/// starved) is ended, with a line on stderr, and there is no server from
/// then on; a child it forked for the request either answered (its pid is
/// returned) or exits without running.
pid_t spawn(std::uint64_t token, int socket, int lifeline, int channel,
            const std::vector<char>* task, const std::string& name);

} // namespace actors::detail::fork_server
