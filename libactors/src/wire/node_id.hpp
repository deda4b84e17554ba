#pragma once

// What a CAF node id says about the process it names.

#include <sys/types.h>

#include <caf/node_id.hpp>

namespace actors::detail {

/// The OS process of `node` if it runs on the host of node `here`, else 0
/// (a pid of another host means nothing here).
pid_t local_pid(const caf::node_id& node, const caf::node_id& here);

} // namespace actors::detail
