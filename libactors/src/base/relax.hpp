#pragma once

// One step of a short busy wait: a hint to the core, not a yield (a thread
// that yields on a busy machine waits out someone else's time slice).

namespace actors::detail {

inline void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

} // namespace actors::detail
