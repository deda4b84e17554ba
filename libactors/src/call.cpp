#include "call.hpp"

#include <caf/atom.hpp>
#include <caf/make_message.hpp>

namespace actors::detail {

namespace {

constexpr auto actors_category = caf::atom("actors");

} // namespace

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<std::uint8_t>(code), actors_category,
                    caf::make_message(std::move(what))};
}

void raise(const caf::error& err) {
  std::string what;
  if (err.context().match_elements<std::string>())
    what = err.context().get_as<std::string>(0);
  if (err.category() == actors_category)
    throw error(static_cast<errc>(err.code()), what);
  throw error(errc::owner_unreachable,
              "request failed: " + runtime::get().system().render(err));
}

} // namespace actors::detail
