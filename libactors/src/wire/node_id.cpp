#include "wire/node_id.hpp"

#include <algorithm>

namespace actors::detail {

pid_t local_pid(const caf::node_id& node, const caf::node_id& here) {
  using data = caf::node_id::default_data;
  if (!node || node->implementation_id() != data::class_id || !here
      || here->implementation_id() != data::class_id)
    return 0;
  auto& theirs = static_cast<const data&>(*node);
  auto& ours = static_cast<const data&>(*here);
  // CAF 0.17 numbers the actor systems of one process in the host id's
  // last byte (node_id.cpp, default_data::local): the host is the rest.
  auto x = theirs.host_id();
  auto y = ours.host_id();
  if (!std::equal(x.begin(), x.end() - 1, y.begin()))
    return 0;
  return static_cast<pid_t>(theirs.process_id());
}

} // namespace actors::detail
