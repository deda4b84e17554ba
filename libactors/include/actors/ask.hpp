#pragma once

// actors::ask: a request from a plain thread to any actor, answered on
// that thread.

#include <chrono>
#include <optional>
#include <type_traits>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/actor_process.hpp"

namespace actors {

namespace detail {

/// `ask` over a link: true if `dest` is an actor of another process of this
/// host, `out` then holding its answer or why there is none.
bool ask_over_link(const caf::actor& dest, caf::message msg,
                   std::optional<std::chrono::steady_clock::duration> timeout,
                   caf::expected<caf::message>& out);

/// What `ask` returns without an answer: `err`, or errc::type_mismatch for
/// an answer of another type than asked for (CAF's unexpected_response),
/// errc::timeout for CAF's request_timeout.
caf::error ask_failed(caf::error err);

/// errc::type_mismatch: `answer` is not what `ask` asked for.
caf::error wrong_answer(const caf::message& answer);

/// While it lives, answers the request `answer` (a response id) of `self`
/// with an error if `dest` ends first, also when it has already: an actor
/// of another host whose connection ends answers nothing, and without this
/// its caller would wait for ever.
class answer_watch {
public:
  /// Watches `dest` for the request `answer` of `self`.
  answer_watch(const caf::actor& dest, caf::blocking_actor* self,
               caf::message_id answer);
  /// Stops watching.
  ~answer_watch();
  answer_watch(const answer_watch&) = delete;
  answer_watch& operator=(const answer_watch&) = delete;

private:
  caf::actor dest_;
  const void* token_;
};

} // namespace detail

/// Sends `xs...` to `dest` as a request and waits on this thread for the
/// answer, at most `timeout` (`std::nullopt`: no bound; zero or negative:
/// the request is sent but not waited for). `R` is the type of the answer
/// (`ask<void>`: a handler that returns nothing; an answer holding a value
/// is then `errc::type_mismatch`).
///
/// @code
/// auto p = actors::spawn(adder, 40);
/// auto sum = actors::ask<int>(p.handle(), std::chrono::seconds{1}, 2);
/// if (sum) assert(*sum == 42);
/// else std::puts(actors::describe(sum.error()).c_str());
/// @endcode
///
/// `dest` may be any actor: of this process, of an actor process, of
/// another host. To an actor of another process of this host (an actor
/// process's `handle()`, a handle received from one), the calling thread
/// sleeps on a futex of its own that the answering process wakes: one
/// thread wake-up on each side per round trip, where a `caf::scoped_actor`
/// request takes three (a link's receiver thread hands the answer to the
/// scoped actor). Anything else goes through a `caf::scoped_actor`.
///
/// The error, when there is no answer: `errc::timeout`; `errc::process_died`
/// (naming the signal or exit code) when the actor's process died, also
/// while the request was in flight; `errc::owner_unreachable` when the
/// connection to the actor's host ended (its process or host gone);
/// `errc::type_mismatch` when the answer is not one `R`; otherwise what the actor answered with (a
/// `caf::error` of its own, `caf::sec::request_receiver_down` for an actor
/// that is gone, `caf::sec::unexpected_message` for a message it has no
/// handler for). `actors::errc_of` tells libactors' errors apart.
///
/// Call it from a thread of yours, not from an actor's handler (it blocks
/// its thread; an actor uses `request(...).then(...)`). Answers that come
/// after their `ask` gave up are dropped.
template <class R, class Handle, class... Ts>
caf::expected<R>
ask(const Handle& dest,
    std::optional<std::chrono::steady_clock::duration> timeout, Ts&&... xs) {
  static_assert(!std::is_reference_v<R>, "ask<R>: R is a value type");
  auto to = caf::actor_cast<caf::actor>(dest);
  if (!to)
    return make_error(errc::invalid_argument, "ask: the handle is empty");
  auto msg = caf::make_message(std::forward<Ts>(xs)...);
  caf::expected<caf::message> answer{caf::message{}};
  if (!detail::ask_over_link(to, msg, timeout, answer)) {
    // An actor of this process or of another host: CAF's request from an
    // actor made for it (a late answer dies with it).
    caf::scoped_actor self{system()};
    auto t = timeout ? caf::duration{std::max(*timeout, timeout->zero())}
                     : caf::duration{caf::infinite};
    auto on_error = [&](caf::error& err) { answer = std::move(err); };
    auto request = self->request(to, t, std::move(msg));
    detail::answer_watch watch{to, self.ptr(), request.id()};
    if constexpr (std::is_void_v<R>)
      request.receive([&] { answer = caf::message{}; }, on_error);
    else
      request.receive(
        [&](R& x) { answer = caf::make_message(std::move(x)); }, on_error);
  }
  if (!answer)
    return detail::ask_failed(std::move(answer.error()));
  if constexpr (std::is_void_v<R>) {
    if (!answer->empty())
      return detail::wrong_answer(*answer);
    return caf::unit;
  } else {
    if (!answer->template match_elements<R>())
      return detail::wrong_answer(*answer);
    return std::move(answer->template get_mutable_as<R>(0));
  }
}

} // namespace actors
