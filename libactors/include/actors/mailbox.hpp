#pragma once

/// @file
/// Queues, pipes and pool results (`apply_async`, `map_async`: `on_result`;
/// `imap`: `on_results`) from inside an event-based actor, as
/// messages: no thread of the actor system ever blocks on them.
///
/// @code
/// caf::behavior consumer(caf::event_based_actor* self,
///                        actors::queue<int> q, caf::actor done) {
///   auto sum = std::make_shared<long>(0);
///   actors::subscribe(self, q,
///     [=](int x) { *sum += x; },                  // each item, in order
///     [=](const actors::error& end) {             // closed and drained
///       self->send(done, *sum);
///       self->quit();
///     });
///   return {[](caf::unit_t) {}}; // the actor's own messages
/// }
/// @endcode
///
/// **A subscription** makes the actor's mailbox a consumer of the queue
/// (or of a pipe end), beside any thread calling `get`: the queue hands it
/// up to `credit` items at a time, each as a message, and hands it the next
/// when one has been taken. An item is *taken* when its callback is about
/// to run: the actor first tells the queue, then calls the callback. An
/// item that is in flight to the actor when the actor ends, or when its
/// process dies, goes back to the front of the queue, so nothing is lost
/// and, within a host, no item is taken twice. (Across hosts, at least
/// once, as for `get`.)
///
/// The callbacks run in the actor, one message at a time, like its own
/// handlers. `on_end` runs once, last: when the queue is closed and
/// drained (`errc::closed`; a pipe end: `errc::end_of_pipe`), when the
/// queue's owner died (`errc::owner_unreachable`), or after the items that
/// were in flight when the subscription was cancelled (`errc::cancelled`).
///
/// **How it works.** The item messages come as messages the actor's
/// behavior does not match: `subscribe` installs the actor's default
/// handler (`set_default_handler`), which runs them and passes any other
/// unmatched message to CAF's `print_and_drop`. An actor that sets a
/// default handler of its own must do so before subscribing.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>

#include "actors/actor_process.hpp"
#include "actors/error.hpp"
#include "actors/pipe.hpp"
#include "actors/pool.hpp"
#include "actors/queue.hpp"

namespace actors {

namespace detail {

/// The messages between a queue's actor and an actor that subscribed to it
/// or puts into it (a protocol between the processes of a run):
///   (q_sub, id, credit)        subscribes the sender, which takes up to
///                              `credit` items in flight
///   (q_items, id, seq, items)  queue -> subscriber: the next items, the
///                              first numbered `seq`, the next seq + 1...
///   (q_ack, id, seq)           subscriber -> queue: item `seq` (and every
///                              one before it) was taken
///   (q_end, id, error)         queue -> subscriber: the last message
///   (q_unsub, id)              the sender's subscription `id` ends
///   (q_put, item, timeout_ns)  a request: answered (empty) once the item is
///                              in the queue, or with the error of the put
///@{
/// The atoms of those messages.
using q_sub = caf::atom_constant<caf::atom("q_sub")>;
using q_items = caf::atom_constant<caf::atom("q_items")>;
using q_ack = caf::atom_constant<caf::atom("q_ack")>;
using q_end = caf::atom_constant<caf::atom("q_end")>;
using q_unsub = caf::atom_constant<caf::atom("q_unsub")>;
using q_put = caf::atom_constant<caf::atom("q_put")>;
///@}

/// The callbacks of one subscription of an actor.
struct subscriber_fns {
  /// Runs for each item taken (it takes the value out).
  std::function<void(value&)> on_item;
  /// Runs once, last.
  std::function<void(const error&)> on_end;
  /// What a closed queue is reported as (a pipe end: end of pipe).
  error_names names;
};

/// Subscribes `self` to the queue of `queue_actor` (see `subscribe`);
/// returns the subscription's id.
std::uint64_t subscribe(caf::event_based_actor* self,
                        const caf::actor& queue_actor, std::size_t credit,
                        subscriber_fns fns);

/// Ends subscription `id` of `self` (see `subscription::cancel`).
void unsubscribe(caf::event_based_actor* self, const caf::actor& queue_actor,
                 std::uint64_t id);

/// Runs `fn` in `self` as a message of its own, from any thread; false if
/// the actor has ended (`fn` is then dropped).
bool post(const caf::actor_addr& self, std::function<void()> fn);

/// Makes `self` able to run what `post` sends it (installs the default
/// handler `subscribe` installs).
void enable_posts(caf::event_based_actor* self);

} // namespace detail

/// A subscription of an actor to a queue or a pipe end (see `subscribe`).
class subscription {
public:
  /// No subscription: `cancel` does nothing.
  subscription() = default;

  /// Subscription `id` of `self` to the queue of `queue_actor` (made by
  /// `subscribe`).
  subscription(caf::event_based_actor* self, caf::actor queue_actor,
               std::uint64_t id)
    : self_(self), queue_(std::move(queue_actor)), id_(id) {
    // nop
  }

  /// Stops new items: those already in flight to the actor still arrive
  /// and are taken, then `on_end` runs with `errc::cancelled`. Call it
  /// from the actor itself.
  void cancel() const {
    if (self_ != nullptr)
      detail::unsubscribe(self_, queue_, id_);
  }

private:
  caf::event_based_actor* self_ = nullptr;
  caf::actor queue_;
  std::uint64_t id_ = 0;
};

/// Makes the mailbox of `self` a consumer of `q`: `on_item(T)` runs for
/// each item the actor takes, `on_end(const actors::error&)` once at the
/// end (see the file's comment). Up to `credit` items (1 to 1024) are in
/// flight to the actor at once. Call it from the actor itself, e.g. in the
/// function that makes its behavior.
template <class T, class OnItem, class OnEnd>
subscription subscribe(caf::event_based_actor* self, const queue<T>& q,
                       OnItem on_item, OnEnd on_end, std::size_t credit = 16) {
  const auto& ref = detail::queue_access::ref(q);
  detail::subscriber_fns fns;
  fns.on_item = [f = std::move(on_item)](detail::value& v) mutable {
    f(v.template take<T>());
  };
  fns.on_end = std::move(on_end);
  auto id = detail::subscribe(self, ref.actor(), credit, std::move(fns));
  return subscription{self, ref.actor(), id};
}

/// Makes the mailbox of `self` the receiver of pipe end `end`: `on_item(T)`
/// runs for each message sent to it, `on_end` once, with
/// `errc::end_of_pipe` after the last one once the other end is closed.
/// The end must be readable and stay held (not closed) meanwhile.
template <class T, class OnItem, class OnEnd>
subscription subscribe(caf::event_based_actor* self, const connection<T>& end,
                       OnItem on_item, OnEnd on_end, std::size_t credit = 16) {
  if (end.closed())
    throw error(errc::closed, "subscribe: this end of the pipe was closed");
  if (!end.readable())
    throw error(errc::wrong_direction,
                "subscribe: the write end of a one-way pipe");
  const auto& inbox = detail::queue_access::inbox(end);
  detail::subscriber_fns fns;
  fns.on_item = [f = std::move(on_item)](detail::value& v) mutable {
    f(v.template take<T>());
  };
  fns.on_end = std::move(on_end);
  fns.names = {errc::end_of_pipe, errc::closed, errc::timeout};
  auto id = detail::subscribe(self, inbox.actor(), credit, std::move(fns));
  return subscription{self, inbox.actor(), id};
}

/// Puts `item` into `q` without blocking the actor: a request to the
/// queue, answered (with nothing) once the item is in it, or with the
/// error the blocking `put` would throw (`errc::queue_full` after
/// `timeout`, `errc::closed`). Use it as any request:
/// `actors::put(self, q, x).then([=] { ...room was there... },
/// [=](caf::error& e) { ... actors::errc_of(e) ... })`. An actor that ends
/// while its put waits for room put nothing.
template <class T>
auto put(caf::event_based_actor* self, const queue<T>& q, T item,
         std::optional<std::chrono::steady_clock::duration> timeout
         = std::nullopt) {
  std::int64_t ns = -1; // no bound
  if (timeout)
    ns = std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout)
           .count());
  return self->request(detail::queue_access::ref(q).actor(), caf::infinite,
                       detail::q_put::value,
                       detail::value::make(std::move(item)), ns);
}

/// Runs `on_value(R)` or `on_error(const actors::error&)` in `self`, as a
/// message, once the pool's result is there: the actor's counterpart of
/// `get` (and of Python's `callback` / `error_callback`). Uses the
/// result's `then` (one pair per result). For `void` results `on_value`
/// takes a `std::monostate`.
template <class R, class OnValue, class OnError>
void on_result(caf::event_based_actor* self, const async_result<R>& result,
               OnValue on_value, OnError on_error) {
  detail::enable_posts(self);
  auto me = caf::actor_cast<caf::actor_addr>(self);
  using value_type = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  auto ok = std::make_shared<OnValue>(std::move(on_value));
  auto fail = std::make_shared<OnError>(std::move(on_error));
  result.then(
    [me, ok](value_type v) {
      auto box = std::make_shared<value_type>(std::move(v));
      detail::post(me, [ok, box] { (*ok)(std::move(*box)); });
    },
    [me, fail](errc code, const std::string& what) {
      detail::post(me, [fail, e = error(code, what)] { (*fail)(e); });
    });
}

/// Runs `on_value(R)` in `self` for each result of an `imap` or
/// `imap_unordered` stream as it arrives, `on_error(const actors::error&)`
/// for a task's error (or the input's) at its position, and `on_end()`
/// once after the last. A thread of its own (a detached actor) reads the
/// stream, so no thread of the actor system waits; it stops reading once
/// `self` has ended.
template <class R, class OnValue, class OnError, class OnEnd>
void on_results(caf::event_based_actor* self, result_stream<R> stream,
                OnValue on_value, OnError on_error, OnEnd on_end) {
  detail::enable_posts(self);
  auto me = caf::actor_cast<caf::actor_addr>(self);
  auto ok = std::make_shared<OnValue>(std::move(on_value));
  auto fail = std::make_shared<OnError>(std::move(on_error));
  auto end = std::make_shared<OnEnd>(std::move(on_end));
  self->home_system().template spawn<caf::detached>(
    [me, ok, fail, end,
     stream = std::move(stream)](caf::event_based_actor* reader) mutable {
      for (;;) {
        try {
          auto x = stream.next();
          if (!x) {
            detail::post(me, [end] { (*end)(); });
            break;
          }
          auto box = std::make_shared<R>(std::move(*x));
          if (!detail::post(me, [ok, box] { (*ok)(std::move(*box)); }))
            break;
        } catch (const error& e) {
          if (!detail::post(me, [fail, e] { (*fail)(e); }))
            break;
        } catch (const std::exception& e) {
          // The input's own exception: the stream ends after it.
          auto err = error(errc::task_failed, e.what());
          if (!detail::post(me, [fail, err] { (*fail)(err); }))
            break;
        }
      }
      reader->quit();
      return caf::behavior{};
    });
}

} // namespace actors
