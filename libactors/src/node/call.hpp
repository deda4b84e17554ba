#pragma once

// Blocking calls from plain threads to service actors (queues, pipe ends),
// with the callee's death and every wait bounded.
//
// Wire convention: a request is (atom, id, args...); the callee answers its
// `current_sender()` with (ok_atom, id, message payload) or
// (fail_atom, id, error). Ids let one long-lived caller per thread tell a
// late answer to an abandoned call from the answer it waits for.

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/scoped_actor.hpp>

#include "base/error.hpp"

namespace actors::detail {

using fail_atom = caf::atom_constant<caf::atom("a_fail")>;

/// Throws the `actors::error` a reply error stands for.
[[noreturn]] void raise(const caf::error& err);

/// How long a caller waits for a callee that enforces `timeout` itself
/// before it concludes the callee's node is stuck.
constexpr auto call_grace = std::chrono::seconds{5};

/// The blocking actor through which this thread calls service actors. It
/// monitors each callee once, not once per call, and the callees watch it
/// once: a call is one message each way.
class caller {
public:
  using duration = std::chrono::steady_clock::duration;

  /// The caller of the calling thread, created on its first call.
  static caller& for_this_thread();

  /// Sends (atom, id, args...) to `target` and returns the payload of its
  /// answer. A failure answer is thrown as `actors::error`; the death of
  /// `target` (its process ended, or the connection to it broke) as
  /// `errc::owner_unreachable`; silence beyond `timeout + call_grace` as
  /// `errc::timeout`.
  template <class Atom, class... Ts>
  caf::message call(const caf::actor& target,
                    std::optional<duration> timeout, Atom atom,
                    Ts&&... args) {
    auto id = prepare(target);
    self_->send(target, atom, id, std::forward<Ts>(args)...);
    return await(target, id, timeout);
  }

  /// The actor that sends on this thread's behalf.
  const caf::scoped_actor& self() const noexcept {
    return self_;
  }

private:
  caller();

  // Checks and monitors `target`; returns a fresh request id.
  std::uint64_t prepare(const caf::actor& target);

  caf::message await(const caf::actor& target, std::uint64_t id,
                     std::optional<duration> timeout);

  caf::scoped_actor self_;
  std::uint64_t next_id_ = 1;
  std::set<caf::actor_addr> monitored_;
  std::set<caf::actor_addr> dead_;
};

} // namespace actors::detail
