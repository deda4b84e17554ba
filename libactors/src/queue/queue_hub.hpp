#pragma once

// How other processes reach the queues of this process without CAF's
// middleman: each process that owns queues runs a hub, a thread serving an
// abstract Unix socket; each thread of another process that uses one of
// them keeps one connection to that hub, and a page-aligned area of memory
// shared with it (a memfd of the client's, which the hub maps through
// /proc/PID/fd/N at the connection's hello).
//
// Client to hub, every frame after the hello goes through a ring in that
// area: writing one is a memcpy and a store, no system call, and what is in
// the ring outlives its writer (the hub still reads it once the connection
// ends), so a put to an unbounded queue or a pipe, which is not answered,
// returns once the item is there. The hub's thread, about to sleep, asks
// for a doorbell (a byte on the socket) in each area, and the client rings
// after each write until the hub wakes; a thread of the hub's process that
// waits for an item reads the
// rings itself meanwhile. Hub to client, answers go on the socket; a
// putter that finds a getter of another process waiting writes the item
// straight to that getter's socket. A client that finds the ring full asks
// for a word when there is room.
//
// Connecting requires the same user (SO_PEERCRED) and the hub's 128-bit key,
// which only a queue handle carries (handles travel between the processes
// of a run, over authenticated connections). A connection that has not
// said its hello within hello_deadline is dropped, and so is the oldest
// one waiting for its hello whenever more than max_pending wait: a flood
// of silent connections costs the hub at most that many descriptors, and
// the clients that did say hello nothing.
//
// A put that is not answered must not land in a queue that was closed
// before the put began. Every close of a queue of this hub counts in each
// connected client's area (`closes`) before the close returns; a client
// sends a put unanswered only into a queue that the hub has said is open
// (by answering a put) since the count last changed, and answered
// otherwise: the first put of a connection into a queue, and the first
// after any close, cost a round trip. A stream is told `closed` for each
// queue that closes; its first put into a queue is answered.
//
// An item handed to a remote getter stays in flight until the getter has
// taken it. The getter says so without a syscall: it stores the item's
// sequence number into the shared area before get returns. If the
// connection ends with an item in flight that the area does not cover, the
// item goes back to the front of its queue; any frame after the item means
// it was taken (a thread sends nothing while it waits for its answer).
//
// Other hosts. The socket and the area are local to one machine (and one
// network namespace). A process on another host (a pool's worker host)
// reaches the hub over a stream instead: serve_stream() takes a connected
// socket that the caller has authenticated already (the run's handshake),
// and the client sends the same request frames on it, no hello, no area;
// answers come back on it as for a local client, and a frame the hub
// cannot read ends the stream, as it ends a local connection. Such a
// client is set up by set_remote_hub(): in a process that has a
// connector, every operation on a queue that another process owns goes
// through the calling thread's stream to the owner's node. A put that is
// not answered returns once the kernel holds its frame: were the process
// to die at once, its host still sends the frame, unless the stream is
// reset (see below).
//
// A stream getter acknowledges an item with a `taken` frame, sent as soon
// as the item has arrived (get returns after that send, not waiting for
// an answer); an item whose stream ends before its `taken` (or any later
// frame) goes back to the front of its queue. So across hosts, delivery
// is at least once: a `taken` that was sent but never arrives (its host
// died, or its process died with unread bytes in its socket, which resets
// the stream and drops what was not yet on the wire) leaves the item to be
// handed out again; nothing is lost. When only the process dies, the host
// normally still delivers its `taken`. Whoever makes a stream watches its
// link (the pool and its workers: watch_link with pool_options::lost_after
// on both ends), so that a host that vanishes without closing ends its
// streams: the hub then requeues and forgets what that host's clients
// held, and their waiting calls fail with errc::owner_unreachable.
//
// A stream's first frame may name the client's node (`peer`, answered):
// when_drained() waits for the streams that named a node as it waits for
// the local connections of a process, so that a pipe end held on another
// host closes after everything its holder sent. The client here names its
// node and waits for the answer before it sends anything else, so the
// stream counts before the node can end. A stream counts under no pid (a
// pid of another host means nothing here), and one that named no node
// counts for none.

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

#include <caf/node_id.hpp>

#include "actors/detail/queue_ref.hpp"
#include "wire/channel.hpp"
#include "queue/queue_core.hpp"

namespace actors::detail {

/// Frame kinds of the hub protocol.
namespace hub_frame {
// client -> hub
constexpr std::uint8_t hello = 1; // key0, key1, fd of the shared area
constexpr std::uint8_t put_buffered = 2; // qid, item (no answer)
constexpr std::uint8_t put = 3;   // req, qid, ns, item
constexpr std::uint8_t get = 4;   // req, qid, ns -> item | fail
constexpr std::uint8_t poll = 6;  // req, qid, ns -> ok(flag)
constexpr std::uint8_t join = 7;  // req, qid, ns
constexpr std::uint8_t done = 8;  // req, qid
constexpr std::uint8_t close = 9; // req, qid
constexpr std::uint8_t size = 10; // req, qid -> stats
constexpr std::uint8_t sync = 11; // req: everything sent before is done
constexpr std::uint8_t taken = 12; // seq: a stream client has the item
constexpr std::uint8_t peer = 13;  // req, node: first on a stream, optional
// hub -> client
constexpr std::uint8_t ok = 20;     // req, flag
constexpr std::uint8_t item = 21;   // req, seq, item
constexpr std::uint8_t fail = 22;   // req, code, what
constexpr std::uint8_t stats = 23;  // req, size, maxsize, getters, putters
constexpr std::uint8_t closed = 24; // qid: a buffered put found it closed
constexpr std::uint8_t room = 25;   // the ring has room again
} // namespace hub_frame

/// The memory a client shares with the hub it is connected to.
struct shared_area {
  static constexpr std::size_t ring_size = 256 * 1024;
  /// The sequence number of the last item the client took.
  std::atomic<std::uint64_t> taken{0};
  /// Bytes the client has written into the ring, ever.
  std::atomic<std::uint64_t> head{0};
  /// Bytes the hub has read from the ring, ever.
  std::atomic<std::uint64_t> tail{0};
  /// Set by the hub before it sleeps, cleared when it wakes: the client
  /// rings (a byte on the socket) after each write meanwhile.
  std::atomic<std::uint32_t> doorbell{0};
  /// Set by a client waiting for room: the hub should send `room`.
  std::atomic<std::uint32_t> waiting{0};
  /// How many queues of the hub have closed since the client connected
  /// (counted before each close returns).
  std::atomic<std::uint64_t> closes{0};
  alignas(64) char ring[ring_size];
};

class queue_hub {
public:
  /// How long a local connection may take to say its hello.
  static constexpr std::chrono::seconds hello_deadline{2};

  /// How many local connections may wait for their hello at once; beyond,
  /// the oldest is dropped.
  static constexpr std::size_t max_pending = 256;

  /// This process's hub, started by the first call (queue_hub_local.cpp).
  static queue_hub& local();

  queue_hub();
  ~queue_hub();

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
  /// has stopped). Callable from any thread. See the top of this file.
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

  /// Reads and lands everything that is in the hub's sockets now: a put
  /// another process has returned from is then in its queue. For answers
  /// that would otherwise say "empty" too soon (get and poll without
  /// waiting, qsize).
  void drain();

  /// Serves what has arrived, on the calling thread, unless another thread
  /// is serving; true if there was something. A thread of this process
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
  // Asks every client for a doorbell (or no longer); with `on`, true if a
  // ring has something after all (then do not sleep).
  bool ask_doorbells(bool on);
  // Accepts and reads everything waiting (except from `skip`): see drain.
  void read_all(const conn* skip);
  // Lands the buffered puts read so far from `c` (one lock, one wake-up
  // for a whole read's worth).
  void land(const std::shared_ptr<conn>& c);
  void run_drained();
  void handle(const epoll_event& ev);
  // Notes this node in self_ if the runtime is there (mtx_ held).
  void note_self();

  std::string address_;
  std::uint64_t key0_ = 0;
  std::uint64_t key1_ = 0;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;

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
    int fd = -1;
    std::vector<std::function<void()>> fns;
  };
  std::map<pid_t, exit_wait> exits_;
  bool stop_ = false;
  // Streams handed over by serve_stream, not yet served by the hub.
  std::vector<int> streams_;

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

/// Whether set_remote_hub() installed a connector.
bool remote_hub_set() noexcept;

/// This thread's connection to the hub a queue handle names: local (a
/// socket and a shared ring) or a stream (see set_remote_hub).
class hub_client {
public:
  using duration = std::chrono::steady_clock::duration;

  /// The calling thread's connection to the hub at `address`, made (and
  /// authenticated with the key) on first use. Throws
  /// `errc::owner_unreachable` when the hub cannot be reached.
  static hub_client& of(const std::string& address, std::uint64_t key0,
                        std::uint64_t key1);

  /// The calling thread's stream to the hub of node `owner`, made by the
  /// connector of set_remote_hub() on first use; null if the connector
  /// says that `owner` is on this host (then use of()). Throws what the
  /// connector throws.
  static hub_client* over_stream(const caf::node_id& owner);

  /// The calling thread's connection to `address` if it has one.
  static hub_client* existing(const std::string& address);

  /// The calling thread's stream to `owner` if it has one.
  static hub_client* existing(const caf::node_id& owner);

  /// A put that is not answered, once the hub has vouched for the queue
  /// (see the top of this file; else it is answered); fails once the hub
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
  // and rings the doorbell if the hub asked for it; on a stream, writes it.
  void send();
  // Reads what has arrived (waiting for something if `block`); a stream's
  // end throws, naming what happened.
  void fill(bool block);
  void wait_for_room();
  void ring_doorbell();
  // Reads whatever is there; returns false at the end of the stream.
  bool absorb(const channel::frame& f, std::uint64_t req,
              std::optional<q_outcome>& result);
  // Forgets this connection and throws: errc::timeout for "timeout", else
  // errc::owner_unreachable (on a stream, with `err` or the end as reason).
  [[noreturn]] void broken(const char* what, int err = 0);
  static std::string render(const caf::error& err);

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
