// actors::init: what this process is. A child (--actors-child: the child
// role, process/child_main.hpp), a worker process of another host (the
// worker host, cluster/), the tracker of a process's shared memory names
// (--actors-shm-tracker, shm/), or the owner, which starts its fork
// server here, while it has a single thread. Here, as it must know every
// subsystem.

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "actors/error.hpp"
#include "actors/runtime.hpp"
#include "net/auth.hpp"
#include "net/tls.hpp"
#include "node/runtime.hpp"
#include "pool/worker.hpp"
#include "process/child_main.hpp"
#include "process/fork_server.hpp"
#include "queue/queue_hub.hpp"
#include "shm/shared_memory.hpp"

namespace actors::detail {

namespace {

// In a worker process of another host, once it joined the pool's node:
// queues and pipes of the pool's process are reached through its hub, over
// TCP.
void reach_queues_across_hosts() {
  auto& role = process_role::local();
  auto pool_node = role.parent.node();
  set_remote_hub([pool_node, &role](const caf::node_id& node) {
    if (node != pool_node)
      throw error(errc::owner_unreachable,
                  "the queue belongs to a process on another host "
                  "than the pool's: across hosts, only the queues and "
                  "pipes of the pool's own process are shared");
    auto& owner = role.owner;
    auto fd = connect_authenticated(owner.host, owner.port, owner.key,
                                    purpose::hub, bootstrap_timeout);
    watch_link(fd, owner.lost_after);
    return fd;
  });
}

} // namespace

} // namespace actors::detail

namespace actors {

void init(int argc, char** argv) {
  auto& role = detail::process_role::local();
  role.initialized = true;
  try {
    detail::tls_from_environment(); // a bad certificate file: said at start
  } catch (const error& e) {
    std::fprintf(stderr, "libactors: %s\n", e.what());
    std::exit(2);
  }
  if (argc >= 2 && std::strcmp(argv[1], "--actors-shm-tracker") == 0)
    detail::run_shm_tracker();
  if (argc >= 3 && std::strcmp(argv[1], "--actors-child") == 0)
    detail::enter_child(std::strtoull(argv[2], nullptr, 10),
                        argc >= 4
                          && std::strcmp(argv[3], "--actors-channel") == 0);
  detail::worker_host_args worker;
  if (detail::parse_worker_host(argc, argv, worker)) {
    role.on_joined = detail::reach_queues_across_hosts;
    detail::run_worker_host(worker);
  }
  // Before any thread of ours exists (the runtime starts on first use).
  if (!role.runtime_started)
    detail::fork_server::start();
}

} // namespace actors
