#pragma once

// Blocking calls from plain threads to service actors (queues, pipe ends),
// with the callee's death and every wait bounded.

#include <chrono>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/after.hpp>
#include <caf/error.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/system_messages.hpp>

#include "actors/error.hpp"
#include "runtime.hpp"

namespace actors::detail {

/// A `caf::error` carrying an `actors::errc` across processes.
caf::error make_error(errc code, std::string what);

/// Throws the `actors::error` a reply error stands for.
[[noreturn]] void raise(const caf::error& err);

/// How long a caller waits for a callee that enforces `timeout` itself
/// before it concludes the callee's node is stuck.
constexpr auto call_grace = std::chrono::seconds{5};

/// Sends `msg` to `target` from a fresh blocking actor and handles the one
/// reply with `on_reply`. A `caf::error` reply is thrown as `actors::error`;
/// the death of `target` (its process ended, or the connection to it broke)
/// as `errc::owner_unreachable`; silence beyond `timeout + call_grace` as
/// `errc::timeout`. The callee sees the caller as `current_sender()`.
template <class F>
void call(const caf::actor& target, caf::message msg,
          std::optional<std::chrono::steady_clock::duration> timeout,
          F on_reply) {
  if (!target)
    throw error(errc::invalid_argument, "the handle is empty");
  caf::scoped_actor self{runtime::get().system()};
  self->monitor(target);
  self->send(target, std::move(msg));
  caf::error failure;
  bool down = false;
  bool silent = false;
  auto on_error = [&](caf::error& err) { failure = std::move(err); };
  auto on_down = [&](caf::down_msg&) { down = true; };
  if (timeout)
    self->receive(on_reply, on_error, on_down,
                  caf::after(*timeout + call_grace) >> [&] { silent = true; });
  else
    self->receive(on_reply, on_error, on_down);
  if (failure)
    raise(failure);
  if (down)
    throw error(errc::owner_unreachable,
                "the process that owns this object is gone");
  if (silent)
    throw error(errc::timeout, "no answer from the process that owns this "
                               "object");
}

} // namespace actors::detail
