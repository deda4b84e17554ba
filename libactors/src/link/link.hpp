#pragma once

// A link: the transport between two processes of one host. Two rings in
// shared memory (one per direction, ring.hpp) carry frames
// (link_protocol.hpp); a Unix socket, idle after the setup, tells each side
// at once when the other ends (EOF or HUP, seen by the manager's watcher).
// This class knows bytes and frames, not CAF: it hands each frame to a
// link_handler (the manager, for actor frames; queue and pipe frames later).
//
// Writing. Any thread may write a frame; frames are written whole and in
// the order their writers took the link's write lock. A frame that does not
// fit waits in a queue of the link (pending) and goes into the ring as room
// appears; a frame larger than the ring streams through it. A writer that
// may wait (`wait_until`) returns once its frame is in the ring, or at its
// deadline: a frame still wholly pending then is taken out again and the
// write says `full` (nothing of it was sent); one partly in the ring goes
// on and the write says `ok`. A writer that must not wait (a receiver
// thread of any link: waiting could close a cycle of full rings between two
// processes) leaves its frame pending and returns; the peer then rings this
// side's data bell when it has made room (ring_header::nudge), and a
// receiver thread writes what is pending.
//
// Reading. Receiver threads read the incoming ring and hand frames to the
// handler in order, under the reader lock. A handler may then run actors
// on the receiver thread (after_frames, lock released); while one receiver
// thread does so, a second one (started on first need) keeps reading, so a
// long or blocking handler does not stall the frames behind it. At most two
// receiver threads per link; a second actor to run while the first still
// runs goes to CAF's scheduler instead (begin_inline).
//
// Ending. When the peer goes (peer_gone) or this side closes, receivers
// first read what is still in the ring (what a process wrote before it died
// is delivered), then the handler learns the reason (on_closed), once.
// Writers waiting for room fail at once; later writes say `closed`.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <thread>
#include <vector>

#include <caf/error.hpp>
#include <caf/node_id.hpp>

#include "link/frame_reader.hpp"
#include "link/frame_writer.hpp"
#include "link/ring.hpp"
#include "link/setup.hpp"

namespace actors::detail::links {

class link;

/// What a link's receiver threads hand their frames to.
class link_handler {
public:
  /// State of one receiver thread (the manager's: a CAF execution unit).
  class context {
  public:
    virtual ~context();
  };

  virtual ~link_handler();

  /// Called once on each receiver thread, first.
  virtual std::unique_ptr<context> make_context(link& l) = 0;

  /// One frame, in order, with the reader lock held; false for a protocol
  /// error (the link closes, naming `what`).
  virtual bool on_frame(link& l, context& ctx, const frame& f,
                        std::string& what)
      = 0;

  /// After a batch of frames, the reader lock released: run what the
  /// frames made runnable.
  virtual void after_frames(link& l, context& ctx) = 0;

  /// The link has ended and everything it carried was handed over; called
  /// once, on a receiver thread.
  virtual void on_closed(link& l, context& ctx, const caf::error& reason) = 0;
};

class link : public std::enable_shared_from_this<link> {
public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  enum class write_result {
    ok,     ///< in the ring, or committed to follow what is there
    full,   ///< the deadline passed before any byte went in: not sent
    closed, ///< the link has ended: not sent (see reason())
  };

  /// A link to `peer`, not yet connected: writes wait in its queue until
  /// start() (or fail at fail()).
  link(link_handler& handler, caf::node_id peer, std::uint64_t id);

  ~link();

  link(const link&) = delete;
  link& operator=(const link&) = delete;

  /// Starts carrying frames over `c` (made by setup.hpp): writes what is
  /// queued and starts a receiver thread.
  void start(connection c);

  /// The setup failed: the link ends with `reason` without having run.
  void fail(caf::error reason);

  /// The peer's socket reported its end (called by the manager's watcher).
  /// `reason` (computed by the caller) is used unless the peer sent `close`.
  void peer_gone(caf::error reason);

  /// Ends the link from this side: writes `close_frame` (a `close` frame
  /// with `reason`, or nothing) if it fits behind what is queued, and shuts
  /// the socket down (the peer sees it at once). Idempotent.
  void close(const caf::error& reason, const buffer& close_frame = {});

  /// Waits for the receiver threads; after it, nothing of this link runs
  /// any more. Called on a receiver thread (the last owner let go there),
  /// it leaves that thread to end by itself.
  void join();

  /// Writes the frame(s) in `bytes` (moved from when queued). `dest` is the
  /// actor the last frame is for (its addressed doorbell rings), or 0.
  /// `wait_until`: how long this thread may wait for room; nullptr = never
  /// wait (receiver threads).
  write_result write(buffer& bytes, std::uint64_t dest,
                     const time_point* wait_until);

  /// Notes the reason the peer gave in its `close` frame (handler).
  void peer_closing(caf::error reason);

  /// Runs actors on this receiver thread only while another receiver
  /// thread is free to read (true: call end_inline() after).
  bool begin_inline();
  void end_inline();

  /// True on a receiver thread of any link, or on a thread that called
  /// never_wait_here(): its writes never wait for room.
  static bool on_receiver_thread() noexcept;

  /// Makes this thread's writes never wait for room, as a receiver
  /// thread's (the queue hub's thread, which runs queue actors).
  static void never_wait_here() noexcept;

  /// How long a thread that expects an answer spins before it sleeps: a
  /// receiver thread after it wrote to the peer itself (an actor it ran
  /// answered or asked), a blocking call after its request. 20 us unless
  /// ACTORS_LINK_SPIN_US says otherwise (0: never spin). See "Spinning" in
  /// ring.hpp.
  static std::chrono::nanoseconds spin_time() noexcept;

  // -- properties
  // ---------------------------------------------------------------

  const caf::node_id& peer() const noexcept {
    return peer_;
  }

  std::uint64_t id() const noexcept {
    return id_;
  }

  /// The socket (for the watcher), -1 before start().
  int fd() const noexcept {
    return fd_;
  }

  /// The peer's service actor id from its hello (0 before start()).
  std::uint64_t peer_service() const noexcept {
    return peer_service_;
  }

  /// Whether the link has ended (or is ending).
  bool closed() const noexcept {
    return closed_.load(std::memory_order_acquire);
  }

  /// Why the link ended (none while it is open).
  caf::error reason() const;

  /// Waits until the link is started or ended, at most until `deadline`;
  /// true if started and open.
  bool await_open(time_point deadline);

  /// The incoming ring (for an addressed doorbell), null before start().
  ring* incoming() noexcept {
    return started_ ? &in_ : nullptr;
  }

  /// Runs `fn(frame)` for the frames readable now, under the reader lock,
  /// on the calling thread (a caller waiting for its answer reads itself);
  /// false if another thread holds the lock. `fn` returns false to stop
  /// after a frame; a receiver thread is woken for what is left.
  template <class Fn>
  bool try_read(Fn fn);

private:
  struct chunk {
    buffer bytes;
    std::size_t offset;
    std::uint64_t ticket;
    std::uint64_t dest;
  };

  void receive_loop(bool spare); // spare: the second receiver thread
  // Reads what is there and hands it to the handler (reader lock held);
  // false on a protocol error or a broken ring.
  bool pump(link_handler::context& ctx, bool& got, std::string& what);
  // Writes what is pending (mtx_ held); the dest of the last frame that
  // completed, or 0; false if the ring is broken.
  bool flush_locked(std::uint64_t& last_dest, bool& wrote);
  void flush();
  void wake_all();
  bool spawn_receiver(); // false: no thread could be made
  // Raises the nudge for pending frames, then writes what fits (mtx_ held);
  // false for a broken ring.
  bool nudge_locked(std::uint64_t& last_dest, bool& wrote);

  link_handler& handler_;
  const caf::node_id peer_;
  const std::uint64_t id_;

  // -- writing (mtx_) ---------------------------------------------------------
  mutable std::mutex mtx_;
  std::condition_variable cv_; // started or ended
  bool started_ = false;
  std::deque<chunk> pending_;
  std::uint64_t next_ticket_ = 1;
  std::atomic<bool> has_pending_{false};
  ring out_;
  int fd_ = -1;
  std::uint64_t peer_service_ = 0;
  caf::error reason_;      // why it ended
  caf::error peer_reason_; // from the peer's `close`
  std::atomic<bool> closed_{false};
  bool closing_sent_ = false;

  // -- reading (reader_mtx_)
  // ----------------------------------------------------
  std::mutex reader_mtx_;
  ring in_;
  frame_reader reader_;
  bool finished_ = false;         // on_closed ran
  std::atomic<bool> gone_{false}; // no more bytes will come
  // try_read left whole frames in reader_ (not in the ring, where a
  // receiver going to sleep looks): set before it rings, checked by a
  // receiver after it announced its sleep, cleared by pump.
  std::atomic<bool> leftover_{false};

  std::atomic<int> inline_{0};
  std::mutex threads_mtx_;
  std::vector<std::thread> threads_;
  bool joined_ = false;
};

template <class Fn>
bool link::try_read(Fn fn) {
  std::unique_lock<std::mutex> guard{reader_mtx_, std::try_to_lock};
  if (!guard.owns_lock() || finished_)
    return false;
  for (;;) {
    frame f;
    auto r = reader_.next(f);
    if (r == frame_reader::result::frame) {
      if (!fn(f))
        break;
      continue;
    }
    auto n = r == frame_reader::result::more ? in_.readable() : 0;
    if (n <= 0)
      break;
    auto want = static_cast<std::size_t>(n);
    auto m = in_.read_some(reader_.prepare(want), want);
    reader_.commit(m > 0 ? static_cast<std::size_t>(m) : 0);
    if (in_.notify_room())
      out_.ring_data();
  }
  // What this thread left (frames for others, a protocol error) is a
  // receiver thread's: wake one.
  if (reader_.buffered() > 0 || in_.readable() != 0) {
    leftover_.store(true);
    in_.ring_data();
  }
  return true;
}

} // namespace actors::detail::links
