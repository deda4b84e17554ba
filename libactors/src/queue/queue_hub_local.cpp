// queue_hub::local(): this process's hub, made once with the runtime and
// stopped in the node's exit sequence (runtime::at_shutdown, stop_servers:
// after the children, which may still use it, have ended).

#include "node/runtime.hpp"
#include "queue/queue_hub.hpp"

namespace actors::detail {

queue_hub& queue_hub::local() {
  // Never destroyed, as the runtime: its thread reads actor handles.
  static queue_hub* hub = [] {
    auto& rt = runtime::get();
    auto* result = new queue_hub();
    rt.at_shutdown(shutdown_step::stop_servers, [result] { result->stop(); });
    return result;
  }();
  return *hub;
}

} // namespace actors::detail
