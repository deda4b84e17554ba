#include "base/random.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include <sys/random.h>

#include "actors/error.hpp"

namespace actors::detail {

void fill_random(void* data, std::size_t size) {
  auto* at = static_cast<unsigned char*>(data);
  std::size_t done = 0;
  while (done < size) {
    auto n = ::getrandom(at + done, size - done, 0);
    if (n < 0 && errno != EINTR)
      throw error(errc::invalid_argument,
                  std::string{"getrandom failed: "} + std::strerror(errno));
    if (n > 0)
      done += static_cast<std::size_t>(n);
  }
}

} // namespace actors::detail
