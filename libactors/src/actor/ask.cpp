#include "actors/ask.hpp"

#include <algorithm>
#include <string>

#include <caf/sec.hpp>

#include "link/manager.hpp"
#include "node/runtime.hpp"

namespace actors::detail {

bool ask_over_link(const caf::actor& dest, caf::message msg,
                   std::optional<std::chrono::steady_clock::duration> timeout,
                   caf::expected<caf::message>& out) {
  if (!links::manager::callable(dest))
    return false;
  auto* links = runtime::get().links();
  if (links == nullptr)
    return false;
  using duration = std::chrono::steady_clock::duration;
  out = links->call(dest, std::move(msg),
                    timeout ? std::max(*timeout, duration::zero())
                            : duration::max());
  return true;
}

caf::error wrong_answer(const caf::message& answer) {
  auto text = caf::to_string(answer);
  if (text.size() > 200)
    text = text.substr(0, 200) + "...";
  return make_error(errc::type_mismatch,
                    "ask: the answer " + text
                      + " is not of the type asked for");
}

caf::error ask_failed(caf::error err) {
  if (err == caf::sec::unexpected_response)
    return wrong_answer(err.context());
  if (err == caf::sec::request_timeout)
    return make_error(errc::timeout, "ask: no answer in time");
  return err;
}

} // namespace actors::detail
