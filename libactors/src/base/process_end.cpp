#include "base/process_end.hpp"

#include <cerrno>

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/deadline.hpp"
#include "base/fd.hpp"

namespace actors::detail {

bool wait_for_end(pid_t pid,
                  std::optional<std::chrono::steady_clock::duration> timeout) {
  unique_fd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  if (!pidfd)
    return errno == ESRCH;
  deadline until{timeout};
  for (;;) {
    pollfd p{pidfd.get(), POLLIN, 0};
    auto rc = ::poll(&p, 1, until.poll_ms());
    if (rc > 0)
      return true;
    if (rc == 0 || errno != EINTR)
      return false;
  }
}

} // namespace actors::detail
