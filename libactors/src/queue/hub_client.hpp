#pragma once

// hub_client: one thread's connection to the hub of a queue's owner, local
// (a socket and a ring in a shared area) or a stream to another host
// (set_remote_hub). API: local()/over_stream() get or make the calling
// thread's connection, call() sends a request and waits for its answer,
// put_buffered() sends an unanswered put when the hub has vouched for the
// queue. The frames are in hub_protocol.hpp.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <caf/node_id.hpp>

#include "actors/detail/queue_ref.hpp"
#include "wire/channel.hpp"
#include "queue/hub_protocol.hpp"
#include "queue/queue_core.hpp"

namespace actors::detail {

/// Connects to the hub of a queue's owner on another host: returns a
/// connected stream socket, authenticated with the run's key, that the
/// owner hands to its hub's serve_stream(); or -1 if `owner` runs on this
/// host (and network namespace), whose hub the abstract socket reaches;
/// or throws actors::error (errc::owner_unreachable, saying why).
using hub_connector = std::function<int(const caf::node_id& owner)>;

/// Makes this process a client of remote hubs: from now on every operation
/// on a queue that this process does not own (pipe ends included) goes
/// through a stream to the owner's node, one per calling thread and node,
/// made by `connect` on first use (and again after one ended; a -1 is
/// remembered by the thread). For a process on a worker host. An empty
/// `connect` uninstalls it: later calls take the local path. A call
/// waiting on a stream that ends fails with errc::owner_unreachable,
/// saying what happened; calls keep their timeouts. Thread-safe; `connect`
/// is called without a lock held, on the thread that needs the stream.
void set_remote_hub(hub_connector connect);

/// Makes this process reach the hub of `node`, a process of another host
/// (a manager it connected to), over streams made by `connect` (as a
/// connector's, for that node only); asked before set_remote_hub()'s
/// connector. A node reached neither way takes the local path.
void reach_hub_of(const caf::node_id& node, std::function<int()> connect);

/// Whether set_remote_hub() installed a connector, or reach_hub_of() a
/// route.
bool remote_hub_set() noexcept;

/// This thread's connection to the hub a queue handle names: local (a
/// socket and a shared ring) or a stream (see set_remote_hub).
class hub_client {
public:
  using duration = std::chrono::steady_clock::duration;

  /// The calling thread's connection to the hub at `address`, made (and
  /// authenticated with the key) on first use. Throws
  /// `errc::owner_unreachable` when the hub cannot be reached.
  static hub_client& local(const std::string& address, std::uint64_t key0,
                        std::uint64_t key1);

  /// The calling thread's stream to the hub of node `owner`, made by the
  /// connector of set_remote_hub() on first use; null if the connector
  /// says that `owner` is on this host (then use local()). Throws what the
  /// connector throws.
  static hub_client* over_stream(const caf::node_id& owner);

  /// The calling thread's connection to `address` if it has one.
  static hub_client* existing(const std::string& address);

  /// The calling thread's stream to `owner` if it has one.
  static hub_client* existing(const caf::node_id& owner);

  /// A put that is not answered, once the hub has vouched for the queue
  /// (hub_protocol.hpp: put_buffered; else it is answered); fails once the hub
  /// has said that the queue is closed (in answer to a put, or unasked:
  /// this thread reads that at its next put, or within 100 us of puts).
  void put_buffered(std::uint64_t qid, value& item);

  /// Sends a request and waits for its answer: at most `ns` (the hub's own
  /// deadline) plus `call_grace` when `ns` >= 0.
  template <class... Ts>
  q_outcome call(std::uint8_t kind, std::int64_t ns, Ts&... xs) {
    auto req = next_req_++;
    if (auto err = ch_.put(kind, req, xs...))
      throw error(errc::invalid_argument,
                  "the request cannot be serialized: " + render(err));
    send();
    return await(req, ns);
  }

  /// The answer to a size request.
  queue_ref::stats last_stats() const noexcept {
    return stats_;
  }

  ~hub_client();

private:
  hub_client(int fd, std::string address);
  hub_client(int fd, const caf::node_id& owner);
  q_outcome await(std::uint64_t req, std::int64_t ns);
  // Moves the serialized output into the ring (waiting for room if needed)
  // and sends a wake-up byte if the hub asked for one; on a stream, writes it.
  void send();
  // Reads what has arrived (waiting for something if `block`); a stream's
  // end throws, naming what happened.
  void fill(bool block);
  void wait_for_room();
  void send_wakeup();
  // Takes one frame from the hub: notes `closed`, acknowledges an item,
  // and sets `result` if it answers `req`; false if it is garbled.
  bool handle_frame(const channel::frame& f, std::uint64_t req,
              std::optional<q_outcome>& result);
  // Forgets this connection and throws: errc::timeout for "timeout", else
  // errc::owner_unreachable (on a stream, with `err` or the end as reason).
  [[noreturn]] void broken(const char* what, int err = 0);
  static std::string render(const caf::error& err);
  // Drops this thread's stream to `owner` (hub_stream.cpp).
  static void forget_stream(const caf::node_id& owner);

  channel ch_;
  int area_fd_ = -1;
  shared_area* area_ = nullptr; // null: a stream
  caf::node_id owner_;          // a stream's
  std::uint64_t head_ = 0; // what this side wrote into the ring
  std::string address_;
  std::uint64_t next_req_ = 1;
  std::set<std::uint64_t> closed_;
  // Queues the hub said were open, and the area's `closes` count before it
  // said so (a stream: 0).
  std::unordered_map<std::uint64_t, std::uint64_t> vouched_;
  std::chrono::steady_clock::time_point next_check_;
  queue_ref::stats stats_;
};

} // namespace actors::detail
