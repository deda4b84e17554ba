// Pipe ends on their way between processes (end_saved, end_loaded in
// actors/detail/queue_ref.hpp; end_pass in queue_core.hpp): who holds an
// end while it travels, told to the queue's actor.

#include <atomic>
#include <cstdint>

#include <caf/send.hpp>

#include "actors/detail/queue_ref.hpp"
#include "node/runtime.hpp"
#include "queue/queue_actor.hpp"
#include "queue/queue_core.hpp"
#include "wire/serializable.hpp"

namespace actors::detail {

namespace {

thread_local end_pass this_pass = end_pass::hand_over;
thread_local std::uint64_t ends_seen = 0;

// Calls `fn(queue, role)` for each side of an end that this handle uses.
template <class F>
void each_side(const queue_ref& inbox, const queue_ref& outbox, bool readable,
               bool writable, F fn) {
  if (readable && inbox.actor())
    fn(inbox, holder_role::reader);
  if (writable && outbox.actor())
    fn(outbox, holder_role::writer);
}

// This process holds the end now (attaches to the queues of its sides);
// its flight, if any, ends.
void take_hold(const queue_ref& inbox, const queue_ref& outbox, bool readable,
            bool writable, end_flight& flight) {
  auto& root = runtime::get().service_actor();
  each_side(inbox, outbox, readable, writable,
            [&](const queue_ref& q, holder_role role) {
              caf::anon_send(q.actor(), q_attach::value,
                             static_cast<std::uint8_t>(role), root,
                             flight.id, flight.sender);
            });
  flight = end_flight{};
}

} // namespace

end_pass_scope::end_pass_scope(end_pass pass)
  : prev_(this_pass), seen_(ends_seen) {
  this_pass = pass;
}

end_pass_scope::~end_pass_scope() {
  this_pass = prev_;
}

bool end_pass_scope::saw_ends() const noexcept {
  return ends_seen != seen_;
}

void end_saved(const queue_ref& inbox, const queue_ref& outbox, bool readable,
               bool writable, bool closed, end_flight& flight) {
  if (closed || (!readable && !writable))
    return;
  ++ends_seen;
  if (this_pass == end_pass::take) {
    take_hold(inbox, outbox, readable, writable, flight);
    return;
  }
  if (flight.id != 0)
    return; // handed over already: this is the same hand-over
  // Sent first, so before anything this process sends later (its close).
  static std::atomic<std::uint64_t> next_flight{1};
  flight.id = next_flight.fetch_add(1, std::memory_order_relaxed);
  flight.sender = runtime::get().service_actor();
  each_side(inbox, outbox, readable, writable,
            [&](const queue_ref& q, holder_role role) {
              caf::anon_send(q.actor(), q_depart::value,
                             static_cast<std::uint8_t>(role), flight.id,
                             flight.sender);
            });
}

void end_loaded(const queue_ref& inbox, const queue_ref& outbox,
                bool readable, bool writable, bool closed,
                end_flight& flight) {
  if (closed || (!readable && !writable))
    return;
  ++ends_seen;
  // Also on the middleman's thread while CAF deserializes a message: an
  // anonymous message, ordered before anything this process sends later.
  if (this_pass != end_pass::carry)
    take_hold(inbox, outbox, readable, writable, flight);
}

void hand_over(closure& x) {
  end_pass_scope scope{end_pass::hand_over};
  serializable(x); // walks the arguments: each end departs (end_saved)
}

void take_ends(value& item) {
  if (!item.carries_ends())
    return;
  item.carries_ends(false);
  end_pass_scope scope{end_pass::take};
  serializable(item); // walks the item: this process holds each end (end_saved)
}

} // namespace actors::detail
