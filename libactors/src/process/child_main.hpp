#pragma once

// The child's side of a start (children::spawn): the child role, entered
// by actors::init (exec'd children, "--actors-child TOKEN") or by the fork
// server, with the connection to the parent node, the lifeline and maybe a
// channel on descriptors 3, 4 and 5 (process_role.hpp). The child watches
// its lifeline, gets its task, runs it and ends with runtime::finish.

#include <cstddef>
#include <cstdint>
#include <string>

namespace actors::detail {

/// What a child learns about itself with its task: its name, whether it
/// is a daemon, and its parent's pid and name (Python's `current_process()`
/// and `parent_process()`). The parent encodes it in the string that carries
/// the child's name (in the fork request or the answer to `hello`); the
/// child decodes it into its process_role.
std::string encode_identity(const std::string& name, bool daemon);
void adopt_identity(const std::string& encoded);

/// Runs the child role: connects to the parent node, asks it for the task
/// of `token` and runs it (never returns).
[[noreturn]] void enter_child(std::uint64_t token, bool channel);

/// Runs the child role with the task serialized in `task` (it holds no
/// actor handle): the runtime starts only when something needs it.
[[noreturn]] void enter_lazy_child(bool channel, const char* task,
                                   std::size_t size, std::string name);

} // namespace actors::detail
