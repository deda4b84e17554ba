// How a death is told (see supervision.hpp).

#include "process/supervision.hpp"

#include <cstring>

namespace actors::detail {

std::string describe_exit(const std::optional<int>& code) {
  if (!code)
    return "it is still ending";
  if (*code < 0) {
    auto text = "killed by signal " + std::to_string(-*code);
    if (auto* name = ::sigabbrev_np(-*code))
      text += std::string{" (SIG"} + name + ")";
    return text;
  }
  return "exit code " + std::to_string(*code);
}

} // namespace actors::detail
