#pragma once

// The per-process runtime: one CAF actor system with the middleman per OS
// process (a node), the node's service actor, the authenticated listener and
// the child-process table. Private: users see actors/runtime.hpp.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/proxy_registry.hpp>

#include "actors/detail/closure.hpp"
#include "net/auth.hpp"

namespace actors::detail {

class listener;
class queue_hub;

// Messages of the node service protocol.
using hello_atom = caf::atom_constant<caf::atom("a_hello")>;
using bye_atom = caf::atom_constant<caf::atom("a_bye")>;
using task_atom = caf::atom_constant<caf::atom("a_task")>;
using forget_atom = caf::atom_constant<caf::atom("a_forget")>;
using ping_atom = caf::atom_constant<caf::atom("a_ping")>;
using pong_atom = caf::atom_constant<caf::atom("a_pong")>;
using started_atom = caf::atom_constant<caf::atom("a_started")>;
using name_atom = caf::atom_constant<caf::atom("a_name")>;
using whereis_atom = caf::atom_constant<caf::atom("a_whereis")>;

/// The readable name of a type (from `typeid(...).name()`).
std::string demangle(const char* name);

/// "type: message" of the exception being handled (call in a catch block).
std::string current_exception_text();

/// One child OS process. Its exit status is collected by the runtime's
/// reaper the moment it ends; handles only observe.
class child {
public:
  child(pid_t pid, int pidfd, int lifeline, std::uint64_t token, bool daemon);
  ~child();

  const pid_t pid;
  const std::uint64_t token;
  const bool daemon;

  /// Waits for the end of the process; false when `timeout` ran out first.
  bool wait(std::optional<std::chrono::steady_clock::duration> timeout);

  std::optional<int> exitcode() const;

  /// Waits until the child has its task and arguments (or has ended); false
  /// if neither happened within `timeout`.
  bool wait_started(std::chrono::steady_clock::duration timeout);

  /// Signals the process unless it has ended (no pid-reuse race: pidfd).
  void signal(int signo);

  /// Calls `fn(exitcode)` once the process has ended, on the reaper's
  /// thread (or at once, here, when it has ended already).
  void on_exit(std::function<void(int)> fn);

private:
  friend class runtime;

  /// Collects the exit status if the process has ended and runs the
  /// `on_exit` hooks; true if it has ended.
  bool try_reap();
  bool reap_locked();

  void mark_started();

  int pidfd_;
  int lifeline_;
  bool started_ = false; // the write end of a pipe whose closing tells the child to go
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<int> exitcode_;
  std::vector<std::function<void(int)>> on_exit_;
};

class runtime {
public:
  enum class role { owner, child, peer };

  /// This process's runtime: created as owner on first use unless `init` made
  /// this process a child or `make_peer` a peer. Throws `errc::spawn_failed`
  /// when the actor system cannot start (too few descriptors or threads).
  static runtime& get();

  /// True once `actors::init` ran in this process.
  static bool initialized() noexcept;

  caf::actor_system& system() noexcept {
    return *system_;
  }

  /// This node's service actor: it lives exactly as long as this process,
  /// so watching it tells whether the process is alive.
  const caf::actor& root() const noexcept {
    return root_;
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

  /// Starts `target` in a new child process. With `channel`, the child also
  /// gets one end of a socket pair (its `take_channel()`), and `*channel`
  /// the other: a direct channel (channel.hpp) to this process.
  std::shared_ptr<child> spawn(const closure& target, const std::string& name,
                               bool daemon, int* channel = nullptr);

  /// In a child started with a channel, its end, once; -1 otherwise.
  static int take_channel();

  /// The hub through which other processes reach this process's queues
  /// (queue_hub.hpp), started by the first queue made here.
  queue_hub& hub();

  /// The BASP broker's proxy registry: reading actor handles against it
  /// makes proxies, as the broker does for messages.
  caf::proxy_registry* proxies();

  /// Hands a connected socket to BASP as the accepting side, publishing the
  /// service actor on it.
  void accept_node(int fd);

  /// Hands a connected socket to BASP as the connecting side; returns the
  /// peer's service actor. Throws `errc::owner_unreachable` on failure.
  caf::actor connect_node(int fd, std::chrono::milliseconds timeout);

  /// Turns this process into a peer node joined to the owner at
  /// `host:port`, proving `key`; returns the owner's service actor.
  static caf::actor join(const std::string& host, std::uint16_t port,
                         const secret& key, std::chrono::milliseconds timeout);

  /// Where a worker process of another host finds the pool's node.
  struct remote_owner {
    std::string host;
    std::uint16_t port = 0;
    secret key{};
    std::chrono::milliseconds lost_after{5000}; // a silent link is lost
  };

  /// Makes this worker process of another host join the pool's node when
  /// it first needs its runtime (a task holds an actor handle), as a peer
  /// whose connection is watched (watch_link, and CAF's heartbeats).
  static void join_later(remote_owner where);

  /// The pool's node this process joins or joined (join_later), if any.
  static const remote_owner* owner_elsewhere() noexcept;

  /// Ends this process as a child ends: flushes its output and what it
  /// sent to its parent node, then exits with `code`.
  [[noreturn]] static void finish(int code);

  /// Called when the child with `token` has received its task.
  void child_started(std::uint64_t token);

  /// Python's exit sequence for this process's children: terminates the
  /// daemon ones (SIGTERM, SIGKILL after 1 s) and joins the others.
  void end_children();

  /// The owner's exit sequence, at exit: terminates the live process pools,
  /// ends the children (end_children), stops the listener and the hub, and
  /// ends the service actors. The actor system stays: handles released
  /// later (by static destructors) still need it. No child starts after.
  void shutdown();

  /// Runs the child role with the descriptors on 3, 4 and, with `channel`,
  /// 5 (never returns).
  [[noreturn]] static void enter_child(std::uint64_t token, bool channel);

  /// Runs the child role with the task serialized in `task` (it holds no
  /// actor handle): the runtime starts only when something needs it.
  [[noreturn]] static void enter_lazy_child(bool channel, const char* task,
                                            std::size_t size, std::string name);

  /// True once this process has a runtime (and CAF's threads).
  static bool started() noexcept;

  ~runtime();

private:
  explicit runtime(role r);
  void reap_loop();
  void start_reaper();
  [[noreturn]] static void run_child(int fd, int lifeline, std::uint64_t token);

  role role_;
  secret key_{};
  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::actor root_;
  caf::actor basp_;
  std::unique_ptr<listener> listener_;
  std::mutex services_mtx_;
  std::vector<caf::actor> services_;
  std::once_flag hub_once_;
  std::unique_ptr<queue_hub> hub_;

  // Children and their reaper thread, started with the first child.
  std::mutex children_mtx_;
  std::vector<std::shared_ptr<child>> children_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread reaper_;
  std::uint64_t next_token_ = 1;
  std::set<std::uint64_t> early_started_; // started before being registered
  bool ended_ = false; // shutdown began: no new child
};

} // namespace actors::detail
