// Pipe ends on their way between processes (end_saved, end_loaded in
// actors/detail/queue_ref.hpp; end_pass in queue_core.hpp): who holds an
// end while it travels, told to the queue's actor.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/detail/queue_ref.hpp"
#include "node/runtime.hpp"
#include "process/children.hpp"
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

// An attach taken on a thread walking a received item or call
// (take_all), sent once the walk is done.
struct pending_attach {
  caf::actor queue;
  std::uint8_t role;
  end_flight flight;
};

thread_local std::vector<pending_attach>* pending = nullptr;

// Collects this thread's attaches into `now` for its life.
class pending_scope {
public:
  explicit pending_scope(std::vector<pending_attach>* now)
    : prev_(std::exchange(pending, now)) {
    // nop
  }
  ~pending_scope() {
    pending = prev_;
  }
  pending_scope(const pending_scope&) = delete;
  pending_scope& operator=(const pending_scope&) = delete;

private:
  std::vector<pending_attach>* prev_;
};

// This process holds the end now (attaches to the queues of its sides);
// its flight, if any, ends.
void take_hold(const queue_ref& inbox, const queue_ref& outbox, bool readable,
            bool writable, end_flight& flight) {
  auto& service = runtime::get().service_actor();
  each_side(inbox, outbox, readable, writable,
            [&](const queue_ref& q, holder_role role) {
              auto r = static_cast<std::uint8_t>(role);
              if (pending != nullptr)
                pending->push_back({q.actor(), r, flight});
              else
                caf::anon_send(q.actor(), q_attach::value, r, service,
                               flight.id, flight.sender);
            });
  flight = end_flight{};
}

// How long a taker waits for a queue's owner to note its hold; past it
// the owner is as good as gone.
constexpr auto hold_timeout = std::chrono::seconds{10};

// Takes the ends in `x` (serialize: walk it with end_pass::take) and waits
// until each queue's actor has noted the hold. A queue of this process
// needs no wait: its actor's mailbox has the attach before anything else
// this thread does, and it dies with this process.
template <class T>
void take_all(T& x) {
  std::vector<pending_attach> attaches;
  {
    pending_scope collect{&attaches};
    end_pass_scope scope{end_pass::take};
    serializable(x);
  }
  if (attaches.empty())
    return;
  auto& rt = runtime::get();
  auto& service = rt.service_actor();
  std::optional<caf::scoped_actor> self;
  for (auto& a : attaches) {
    if (a.queue.node() == rt.system().node()) {
      caf::anon_send(a.queue, q_attach::value, a.role, service, a.flight.id,
                     a.flight.sender);
      continue;
    }
    if (!self)
      self.emplace(rt.system());
    // An error (the owner is gone, or silent) leaves the end unheld: its
    // queue is gone, or will be before anyone could wait on this process.
    (*self)
      ->request(a.queue, hold_timeout, q_attach::value, a.role, service,
                a.flight.id, a.flight.sender)
      .receive([](ok_atom) {}, [](const caf::error&) {});
  }
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
              // A child that ends before it holds the end (it could not
              // start) ends the flight: its queue would wait for it.
              when_receiver_ends(
                [queue = caf::actor_cast<caf::weak_actor_ptr>(q.actor()),
                 sender = caf::actor_cast<caf::weak_actor_ptr>(flight.sender),
                 r = static_cast<std::uint8_t>(role), id = flight.id] {
                  auto to = caf::actor_cast<caf::actor>(queue.lock());
                  auto from = caf::actor_cast<caf::actor>(sender.lock());
                  if (to && from) // else the queue, or the run, has ended
                    caf::anon_send(to, q_lost::value, r, id, from);
                });
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
  take_all(item);
}

void take_ends(closure& x) {
  if (!x.carries_ends())
    return;
  x.carries_ends(false);
  take_all(x);
}

} // namespace actors::detail
