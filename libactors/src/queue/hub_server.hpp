#pragma once

// queue_hub: serves the queues of this process to other processes, without
// CAF's middleman. A thread waits (epoll) on an abstract Unix socket for
// local clients (same user, the hub's key: hub_protocol.hpp), on streams
// from other hosts that serve_stream() adopts, and on the rings of local
// clients' shared areas, and serves their requests on the queues' cores.
// Threads of this process may serve meanwhile (poll_once, drain). API:
// add/find a queue, serve_stream, when_drained/when_exited (a peer's end),
// drain, poll_once, stop. The design (ordering of puts and closes, items in
// flight, delivery across hosts) is in docs/architecture.md.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <sys/epoll.h>
#include <sys/types.h>

#include <caf/execution_unit.hpp>
#include <caf/node_id.hpp>


#include "actors/detail/queue_ref.hpp"
#include "base/fd.hpp"
#include "base/poller.hpp"
#include "wire/channel.hpp"
#include "queue/hub_protocol.hpp"
#include "queue/queue_core.hpp"

namespace actors::detail {

class queue_hub {
public:
  /// How long a local connection may take to say its hello.
  static constexpr std::chrono::seconds hello_deadline{2};

  /// How many local connections may wait for their hello at once; beyond,
  /// the oldest is dropped.
  static constexpr std::size_t max_pending = 256;

  queue_hub();
  ~queue_hub();

  /// This process's hub, started by the first call (queue_hub_local.cpp).
  static queue_hub& local();

  /// On the hub's thread, its execution unit (a queue's actor made runnable
  /// through it runs on the hub's thread, after what the hub is doing);
  /// elsewhere nullptr (CAF's scheduler).
  static caf::execution_unit* thread_unit() noexcept;

  /// Ends the hub's thread and every connection (at shutdown, before the
  /// actor system goes: the thread reads actor handles). Idempotent.
  void stop();

  queue_hub(const queue_hub&) = delete;
  queue_hub& operator=(const queue_hub&) = delete;

  /// The abstract socket name and the key a queue handle carries.
  const std::string& address() const noexcept {
    return address_;
  }
  std::uint64_t key0() const noexcept {
    return key0_;
  }
  std::uint64_t key1() const noexcept {
    return key1_;
  }

  /// Serves `core` under `id` (its actor's id) for the life of the hub.
  void add(std::uint64_t id, std::shared_ptr<queue_core> core);

  /// The queue served under `id`, if any.
  std::shared_ptr<queue_core> find(std::uint64_t id);

  /// Serves the requests that arrive on `fd`, a connected stream socket
  /// (TCP from another host) whose peer the caller has authenticated
  /// already; the hub owns `fd` from now on (closes it at once if the hub
  /// has stopped). Callable from any thread. See docs/architecture.md (the
  /// queue hub, other hosts).
  void serve_stream(int fd);

  /// Runs `fn` once the hub has read everything node `node` sent, that is,
  /// once no connection from it is open (at once if none is): no local
  /// connection from its process if it runs on this host, no stream that
  /// named it (`peer`). A stream that has not named its node counts for
  /// none (a remote pid means nothing here).
  void when_drained(const caf::node_id& node, std::function<void()> fn);

  /// Runs `fn` once the process of `node` has ended, if it runs on this
  /// host (its pid tells): on the thread that serves the hub then, or at
  /// once on this one if it has ended already. False if it runs elsewhere,
  /// or is this process. Callable from any thread.
  bool when_exited(const caf::node_id& node, std::function<void()> fn);

  /// Reads and serves everything that is in the hub's sockets now: a put
  /// another process has returned from is then in its queue. For answers
  /// that would otherwise say "empty" too soon (get and poll without
  /// waiting, qsize).
  void drain();

  /// Serves what clients have sent, on the calling thread, unless another
  /// thread is serving; true if there was something. A thread of this process
  /// that waits for an item calls it while it spins: the item then reaches
  /// it without waking the hub's thread first.
  bool poll_once();

  /// Local connections accepted that have not said their hello yet.
  std::size_t pending() const;

private:
  struct conn;
  struct watchers;
  void run();
  void accept_all();
  // Drops the connections whose hello is overdue; returns when the next
  // hello falls due.
  std::chrono::steady_clock::time_point expire_pending();
  // Accepts again once the pause (out of descriptors) is over.
  void resume_accepting();
  void drop(const std::shared_ptr<conn>& c);
  bool serve(const std::shared_ptr<conn>& c, const channel::frame& f);
  // Reads what `c` has sent and serves it; false if `c` was dropped.
  bool read_from(const std::shared_ptr<conn>& c);
  // read_from() for a stream: what has arrived, frame by frame.
  bool read_stream(const std::shared_ptr<conn>& c);
  // Serves what `c` has written into its ring; false if it broke the
  // protocol (the caller drops it).
  bool pull(const std::shared_ptr<conn>& c);
  // pull() on every connection; true if any had something.
  bool pull_all();
  // Asks every client for a wake-up byte after its writes (or no longer);
  // with `on`, true if a ring has something after all (then do not sleep).
  bool want_wakeups(bool on);
  // Accepts and reads everything waiting (except from `skip`): see drain.
  void read_all(const conn* skip);
  // Puts the buffered puts read so far from `c` into their queue (one
  // lock, one wake-up for a whole read's worth).
  void put_batch(const std::shared_ptr<conn>& c);
  void run_drained();
  void handle(const epoll_event& ev);
  // Notes this node in self_ if the runtime is there (mtx_ held).
  void note_self();

  std::string address_;
  std::uint64_t key0_ = 0;
  std::uint64_t key1_ = 0;
  unique_fd listen_fd_;
  poller poller_; // listen_fd_, connections, exits (tags: hub_connection.hpp)

  // This node, noted while the actor system is there (when_drained may be
  // called while it goes). Guarded by mtx_.
  caf::node_id self_;

  std::mutex mtx_; // cores_, drained_, exits_, stop_, streams_, open_, ...
  std::unordered_map<std::uint64_t, std::shared_ptr<queue_core>> cores_;
  struct drain_wait {
    pid_t pid; // of a process on this host, or 0
    caf::node_id node;
    std::function<void()> fn;
  };
  std::vector<drain_wait> drained_;
  // Processes of this host whose end when_exited waits for: a pidfd each
  // (in epoll under exit_tag | pid) and what to run.
  struct exit_wait {
    unique_fd fd;
    std::vector<std::function<void()>> fns;
  };
  std::map<pid_t, exit_wait> exits_;
  bool stop_ = false;
  // Streams handed over by serve_stream, not yet served by the hub.
  std::vector<unique_fd> streams_;

  // Whoever serves the connections holds reader_: the hub's thread, or a
  // waiting thread in poll_once or drain.
  std::mutex reader_;
  bool stopped_ = false;
  std::map<int, std::shared_ptr<conn>> conns_;
  // The local connections that said their hello (whose rings to read), and
  // those that have not yet, oldest first (guarded by reader_, as conns_).
  std::vector<std::shared_ptr<conn>> rings_;
  std::deque<std::shared_ptr<conn>> pending_;
  std::atomic<std::size_t> pending_count_{0};
  // Accepting paused until then, out of descriptors (the listening socket
  // would wake the hub in a loop); guarded by reader_.
  std::optional<std::chrono::steady_clock::time_point> accept_paused_;
  // Whom to tell when a queue closes (shared with the queues' cores).
  std::shared_ptr<watchers> watchers_;
  struct timer {
    std::shared_ptr<queue_core> core;
    std::uint64_t serial;
    int fd; // of the connection that waits
  };
  std::multimap<std::chrono::steady_clock::time_point, timer> timers_;
  std::shared_ptr<queue_core> batch_core_;
  std::uint64_t batch_qid_ = 0;
  std::vector<value> batch_;
  bool reading_all_ = false;
  std::thread thread_;

  // Open connections per peer process and streams per peer node (read by
  // when_drained).
  std::map<pid_t, int> open_;
  std::map<caf::node_id, int> open_nodes_;
  // Where read_stream puts what it reads (guarded by reader_).
  std::unique_ptr<char[]> scratch_;
};

} // namespace actors::detail
