#pragma once

// The node: one CAF actor system with the middleman per OS process, its
// service actor (service_actor.hpp), the authenticated listener (owner
// only), the connections to other nodes (BASP over sockets handed in), and
// the exit sequence (shutdown, and at_shutdown for the parts above node,
// such as the children of process/ and the queue hub). What the process is
// (owner, child, peer) is in process_role.hpp. Private: users see
// actors/runtime.hpp.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/proxy_registry.hpp>
#include <caf/system_messages.hpp>

#include <sys/types.h>

#include "net/auth.hpp"
#include "node/messages.hpp"
#include "node/process_role.hpp"

namespace actors::detail {

class listener;

namespace links {
class manager;
} // namespace links

/// The steps of the exit sequence that other parts of libactors join
/// (runtime::at_shutdown), in the order they run.
enum class shutdown_step {
  /// Children end (Python's exit: daemons terminated, the others joined);
  /// also run by a child's runtime::finish.
  end_children,
  /// Servers for other processes stop, once no child needs them.
  stop_servers,
};

class runtime {
public:
  enum class role { owner, child, peer };

  using remote_owner = detail::remote_owner;

  /// This process's runtime: created as owner on first use unless `init` made
  /// this process a child or `join` a peer. Throws `errc::spawn_failed`
  /// when the actor system cannot start (too few descriptors or threads).
  static runtime& get();

  /// True once `actors::init` ran in this process.
  static bool initialized() noexcept;

  /// True once this process has a runtime (and CAF's threads).
  static bool started() noexcept;

  caf::actor_system& system() noexcept {
    return *system_;
  }

  /// This node's service actor: it lives exactly as long as this process,
  /// so watching it tells whether the process is alive.
  const caf::actor& service_actor() const noexcept {
    return service_actor_;
  }

  /// The run's key (owner only).
  const secret& key() const noexcept {
    return key_;
  }

  /// The authenticated listener's port (owner only).
  std::uint16_t port() const;

  /// The listener, for statistics in tests (owner only).
  const listener& acceptor() const;

  /// Spawns a service actor (a queue, a pipe end, ...) with `make(system)`.
  /// It lives as long as this node, since handles to it may be anywhere, and
  /// is ended at shutdown so that nothing hangs.
  template <class F>
  caf::actor spawn_service(F make) {
    auto result = make(*system_);
    std::lock_guard<std::mutex> guard{services_mtx_};
    services_.push_back(result);
    return result;
  }

  /// The registry that reading actor handles against makes proxies: the
  /// links' (link/manager.hpp: a handle of another process of this host
  /// becomes a proxy on a link to it; one of another host, BASP's), or
  /// BASP's alone in a peer of another host.
  caf::proxy_registry* proxies();

  /// The links to the other processes of this host (none in a peer).
  links::manager* links() noexcept {
    return links_.get();
  }

  /// Writes the run's key into `fd`, this process's end of the socket pair
  /// a child will inherit, before the child starts (it reads it first).
  /// Throws errc::spawn_failed.
  void hand_key(int fd);

  /// Makes the link to a child over `fd`, the socket given to hand_key
  /// (this takes ownership), when the child speaks (never blocks).
  void adopt_child(int fd);

  /// How the link of a child that ended describes its end: `fn(pid, kill)`
  /// gives errc::process_died with its exit status, or, when it still runs
  /// and `kill`, kills it and gives errc::connection_lost; none for a
  /// process that is not a child (set once, by the children table).
  void on_child_death(std::function<caf::error(pid_t, bool)> fn);

  /// How process `pid` of this run ended, for the end of a link to it: its
  /// exit status if it is a child of this process (`kill`: see
  /// on_child_death), else what the parent node knows (asked, at most
  /// 2 s); none if nobody knows.
  caf::error how_ended(pid_t pid, bool kill);

  /// Passes exit messages to proxies to `hook` first, and keeps the link
  /// frames of the proxies for which `guarded` is true to this process
  /// (links::manager::set_exit_hook and set_guarded), where there are links.
  void on_exit_to_proxy(
    std::function<bool(const caf::strong_actor_ptr&,
                       const caf::strong_actor_ptr&, const caf::exit_msg&)>
      hook,
    std::function<bool(const caf::actor_addr&)> guarded);

  /// Hands a connected socket to BASP as the accepting side, publishing
  /// `published` on it (the service actor unless given: a peer of another
  /// host; a manager's actor for its clients).
  void accept_node(int fd, caf::actor published = {});

  /// Hands a connected socket to BASP as the connecting side; returns the
  /// peer's service actor. Throws `errc::owner_unreachable` on failure.
  caf::actor connect_node(int fd, std::chrono::milliseconds timeout);

  /// Makes this process a child node: starts its runtime and links it to
  /// the parent node over `fd` (process_role::parent). Throws on failure.
  static runtime& start_child(int fd);

  /// Turns this process into a peer node joined to the owner at
  /// `host:port`, proving `key`; returns the owner's service actor.
  static caf::actor join(const std::string& host, std::uint16_t port,
                         const secret& key, std::chrono::milliseconds timeout);

  /// Makes this worker process of another host join the pool's node when
  /// it first needs its runtime (a task holds an actor handle), as a peer
  /// whose connection is watched (watch_link, and CAF's heartbeats).
  static void join_later(remote_owner where);

  /// The pool's node this process joins or joined (join_later), if any.
  static const remote_owner* owner_elsewhere() noexcept;

  /// In a child started with a channel, its end, once; -1 otherwise.
  static int take_channel();

  /// Calls `fn(token)` when the child with `token` says it holds its task
  /// (the service actor's started message); set once, by the children table.
  void on_child_started(std::function<void(std::uint64_t)> fn);

  /// Called by the service actor when the child with `token` has its task.
  void child_started(std::uint64_t token);

  /// Runs `fn` at `step` of the exit sequence (shutdown, and for
  /// end_children also finish), after the functions added before it for
  /// that step.
  void at_shutdown(shutdown_step step, std::function<void()> fn);

  /// Ends this process as a child ends: ends its own children, flushes its
  /// output and what it sent to its parent node, then exits with `code`.
  [[noreturn]] static void finish(int code);

  /// True once the exit sequence began (shutdown).
  bool exiting() const noexcept {
    return exiting_.load();
  }

  /// The owner's exit sequence, at exit: terminates the live process pools,
  /// runs the end_children step, stops the listener, runs the stop_servers
  /// step, and ends the service actors. The actor system stays: handles
  /// released later (by static destructors) still need it.
  void shutdown();

  ~runtime();

private:
  explicit runtime(role r);

  void run_shutdown_step(shutdown_step step);

  // Starts the links with key_; a child first reads the key from its
  // parent over `fd` and then links to it there (returns the parent's
  // service actor).
  void start_links();
  caf::actor link_to_parent(int fd);

  role role_;
  secret key_{};
  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::actor service_actor_;
  caf::actor basp_;
  std::unique_ptr<listener> listener_;
  std::shared_ptr<links::manager> links_;
  std::mutex services_mtx_;
  std::vector<caf::actor> services_;
  std::mutex hooks_mtx_;
  std::vector<std::pair<shutdown_step, std::function<void()>>> at_shutdown_;
  std::function<void(std::uint64_t)> on_child_started_;
  std::function<caf::error(pid_t, bool)> child_death_;
  std::atomic<bool> exiting_{false};
};

} // namespace actors::detail
