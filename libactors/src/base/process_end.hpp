#pragma once

// Whether a process of this host has ended, on a pidfd: the links (a peer
// that died while its link was made) and actors::process_info::is_alive.

#include <chrono>
#include <optional>

#include <sys/types.h>

namespace actors::detail {

/// Waits up to `timeout` (none: for ever) for process `pid` to end; true
/// when it has (a zombie counts, and so does a pid that no longer exists).
bool wait_for_end(pid_t pid,
                  std::optional<std::chrono::steady_clock::duration> timeout);

} // namespace actors::detail
