#include "node/call.hpp"

#include <caf/after.hpp>
#include <caf/make_message.hpp>
#include <caf/system_messages.hpp>

#include "actors/detail/timeout.hpp"
#include "node/runtime.hpp"

namespace actors::detail {

void raise(const caf::error& err) {
  std::string what;
  if (err.context().match_elements<std::string>())
    what = err.context().get_as<std::string>(0);
  if (auto code = errc_of(err))
    throw error(*code, what);
  throw error(errc::owner_unreachable,
              "request failed: " + runtime::get().system().render(err));
}

caller& caller::for_this_thread() {
  // Destroyed when the thread ends (before the runtime, for the main
  // thread), which tells every callee that this caller is gone.
  thread_local caller instance;
  return instance;
}

caller::caller() : self_(runtime::get().system()) {
  // nop
}

std::uint64_t caller::prepare(const caf::actor& target) {
  if (!target)
    throw error(errc::invalid_argument, "the handle is empty");
  if (dead_.count(target.address()) > 0)
    throw error(errc::owner_unreachable,
                "the process that owns this object is gone");
  if (monitored_.insert(target.address()).second)
    self_->monitor(target);
  return next_id_++;
}

caf::message caller::await(const caf::actor& target, std::uint64_t id,
                           std::optional<duration> timeout) {
  timeout = finite(timeout);
  auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                              + call_grace
                          : std::chrono::steady_clock::time_point::max();
  caf::message result;
  caf::error failure;
  bool answered = false;
  bool down = false;
  bool silent = false;
  auto on_ok = [&](caf::ok_atom, std::uint64_t rid, caf::message& payload) {
    if (rid == id) {
      result = std::move(payload);
      answered = true;
    }
  };
  auto on_fail = [&](fail_atom, std::uint64_t rid, caf::error& err) {
    if (rid == id) {
      failure = std::move(err);
      answered = true;
    }
  };
  auto on_down = [&](caf::down_msg& dm) {
    monitored_.erase(dm.source);
    dead_.insert(dm.source);
    if (dm.source == target.address())
      down = true;
  };
  // Late answers to abandoned calls match on_ok/on_fail with another id and
  // are dropped there; nothing else is ever sent to a caller.
  while (!answered && !down && !silent) {
    if (timeout)
      self_->receive(on_ok, on_fail, on_down,
                     caf::after(std::max(deadline
                                           - std::chrono::steady_clock::now(),
                                         duration::zero()))
                       >> [&] { silent = true; });
    else
      self_->receive(on_ok, on_fail, on_down);
  }
  if (failure)
    raise(failure);
  if (down && !answered)
    throw error(errc::owner_unreachable,
                "the process that owns this object is gone");
  if (silent && !answered)
    throw error(errc::timeout,
                "no answer from the process that owns this object");
  return result;
}

} // namespace actors::detail
