#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

namespace actors {

/// Which children a supervisor restarts when one of them fails (Erlang/OTP).
enum class strategy {
  /// Only the child that ended.
  one_for_one,
  /// Every child: the others are stopped (in reverse order) and all are
  /// started again (in order).
  one_for_all,
  /// The child that ended and those started after it.
  rest_for_one,
};

/// When a child is restarted (Erlang/OTP).
enum class restart {
  /// Always.
  permanent,
  /// Only when it failed: not after a normal end or a stop
  /// (`caf::exit_reason::user_shutdown`).
  transient,
  /// Never; once ended it is removed, and its end restarts no sibling.
  temporary,
};

/// One child of a supervisor.
struct child_spec {
  /// Unique among the supervisor's children.
  std::string id;
  /// Starts the child and returns its handle; called again for every
  /// restart. Typically `[] { return actors::spawn(worker).handle(); }`, an
  /// actor in a fresh OS process; with `actor_options::hosts`, on a worker
  /// host (on any one: a child whose host is lost comes back on another).
  /// Throwing counts as a failure.
  std::function<caf::actor()> start;
  /// When it is restarted.
  restart type = restart::permanent;
  /// Registers every start of the child under `id` (`actors::whereis`), so
  /// that others find the current one.
  bool registered = false;
  /// How long the child may take to stop when the supervisor stops it
  /// before it is killed (`caf::exit_reason::kill`).
  std::chrono::steady_clock::duration shutdown = std::chrono::seconds{5};
};

/// The restart policy of a supervisor.
struct supervisor_options {
  /// Which children a failure restarts.
  strategy how = strategy::one_for_one;
  /// More than `intensity` restarts within `period` escalate: the supervisor
  /// stops its children and ends with `errc::escalated` (Erlang's MaxR and
  /// MaxT; the process pool's budget, `pool_options::max_restarts`, is the
  /// same rule from the same code).
  int intensity = 3;
  /// The window of `intensity` (positive).
  std::chrono::steady_clock::duration period = std::chrono::seconds{5};
};

/// Erlang/OTP's supervisor for actors, typically actor processes
/// (actor_process.hpp): it starts its children in order, watches them, and
/// restarts them by its strategy and their restart types, a restart of an
/// actor process being a fresh OS process.
///
/// @code
/// actors::child_spec spec;
/// spec.id = "worker";
/// spec.start = [] { return actors::spawn(worker).handle(); };
/// actors::supervisor sup{{actors::strategy::one_for_one, 3, 5s}, {spec}};
/// auto w = sup.child("worker"); // the current one, after any restart
/// @endcode
///
/// The supervisor is itself an actor (`handle()`): monitor it to learn when
/// it escalates; its exit reason is `errc::escalated`, naming the last
/// failure. It runs on a thread of its own, since starting a process blocks.
/// A child's end is known by its down message: for actor processes, the
/// reasons of `actor_process` (an exception, a signal, a lost connection).
///
/// **Lifetime.** Destroying the handle (or `stop()`) stops the children in
/// reverse order, each bounded by its `shutdown`, and then the supervisor.
class supervisor {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// Starts the supervisor and its children in order. Throws
  /// `errc::spawn_failed` naming the child that did not start (the ones
  /// started before are stopped), `errc::invalid_argument` for an empty or
  /// repeated id, a missing start function or a negative intensity.
  supervisor(supervisor_options opts, std::vector<child_spec> children);

  ///@{
  /// A handle moves and does not copy; assigning stops the supervisor it
  /// replaces.
  supervisor(supervisor&&) noexcept;
  supervisor& operator=(supervisor&&) noexcept;
  ///@}
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  /// Stops the supervisor and its children, as `stop()`.
  ~supervisor();

  /// The supervisor actor.
  const caf::actor& handle() const noexcept {
    return handle_;
  }

  /// The running child `id`, or an invalid handle when it is not running
  /// (ended and not restarted) or unknown, or the supervisor ended.
  caf::actor child(const std::string& id) const;

  /// How many restarts the supervisor made so far (0 once it ended).
  int restarts() const;

  /// Waits until the supervisor ended (escalated or stopped); false when
  /// `timeout` ran out first.
  bool wait(std::optional<duration> timeout = std::nullopt);

  /// Why the supervisor ended: empty while it runs or before `wait`
  /// returned true; `errc::escalated` after too many restarts.
  std::optional<caf::error> reason() const;

  /// Stops the children in reverse order, then the supervisor; returns
  /// when they ended.
  void stop();

private:
  caf::actor handle_;
  std::optional<caf::error> reason_;
};

} // namespace actors
