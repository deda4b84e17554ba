#pragma once

// Every test case runs under a watchdog: if one takes longer than its limit,
// the test binary prints which one hung and exits at once, so a hang fails
// CI instead of freezing it. Child processes of libactors follow their owner
// within milliseconds (their lifeline closes). The CTest TIMEOUT is the outer
// bound; this one names the culprit.

#include <chrono>
#include <string>

namespace support {

/// Arms the process-wide watchdog for `limit`, naming `what` if it fires.
void arm_watchdog(std::chrono::seconds limit, std::string what);

/// Disarms it.
void disarm_watchdog();

/// Has `fn` run, on the watchdog's thread, before the watchdog ends the
/// process: for what must not outlive the run (the netlab's namespaces).
/// Hooks run in the order added and must return within seconds.
void at_watchdog_exit(void (*fn)());

} // namespace support
