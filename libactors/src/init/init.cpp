// actors::init: what this process is. A child (--actors-child: the child
// role, process/child_main.hpp), a worker process of another host (the
// worker host, cluster/), the tracker of a process's shared memory names
// (--actors-shm-tracker, shm/), or the owner, which starts its fork
// server here, while it has a single thread. Here, as it must know every
// subsystem.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <exception>

#include <fcntl.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "actors/runtime.hpp"
#include "base/exception_text.hpp"
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

// Opens /dev/null on whichever of descriptors 0, 1 and 2 is closed (a
// program started with `>&-`): else the first socket the library made
// would become "standard output", and what the program prints would go
// into it (the fork server's control socket read "exitcodes 0 0").
void standard_descriptors_open() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF)
      continue;
    int null = ::open("/dev/null", O_RDWR); // the lowest free: `fd`
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
}

std::terminate_handler previous_terminate = nullptr;

// An exception that no code catches (one leaving main, or a thread's
// function) ends the process as an uncaught exception ends a Python
// program: its type and message on stderr, what was printed flushed, exit
// status 1; not abort() and its core. The stack is not unwound, so no
// destructor or exit handler runs (they could wait for locks its frames
// hold); children end with their owner as on any death of it. Anything
// else that terminates (no exception) is left to the previous handler.
[[noreturn]] void on_terminate() {
  if (auto e = std::current_exception()) {
    std::string text;
    try {
      std::rethrow_exception(e);
    } catch (...) {
      text = current_exception_text();
    }
    std::fflush(nullptr);
    std::fprintf(stderr, "libactors: uncaught exception, exiting with 1: %s\n",
                 text.c_str());
    std::_Exit(1);
  }
  if (previous_terminate != nullptr)
    previous_terminate();
  std::abort();
}

} // namespace

} // namespace actors::detail

namespace actors {

void init(int argc, char** argv) {
  detail::standard_descriptors_open();
  if (detail::previous_terminate == nullptr)
    detail::previous_terminate = std::set_terminate(detail::on_terminate);
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
