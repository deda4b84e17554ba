#include "link/link.hpp"

#include <climits>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

#include <caf/sec.hpp>

#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/relax.hpp"

namespace actors::detail::links {

namespace {

thread_local bool t_receiver = false;

// The link this thread wrote to last (see receive_loop).
thread_local const link* t_wrote_to = nullptr;

} // namespace

link_handler::context::~context() {
  // nop
}

link_handler::~link_handler() {
  // nop
}

link::link(link_handler& handler, caf::node_id peer, std::uint64_t id)
    : handler_(handler), peer_(std::move(peer)), id_(id) {
  // nop
}

link::~link() {
  join();
  if (fd_ >= 0)
    ::close(fd_);
}

bool link::on_receiver_thread() noexcept {
  return t_receiver;
}

void link::never_wait_here() noexcept {
  t_receiver = true;
}

std::chrono::nanoseconds link::spin_time() noexcept {
  static const auto value = spin_from_env("ACTORS_LINK_SPIN_US", 20);
  return value;
}

// -- life cycle
// ----------------------------------------------------------------

void link::start(connection c) {
  std::uint64_t last = 0;
  bool wrote = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_) {
      ::close(c.fd);
      return;
    }
    out_ = std::move(c.out);
    in_ = std::move(c.in);
    fd_ = c.fd;
    peer_service_ = c.service;
    started_ = true;
    // Frames written before the start wait in pending_: as many as fit go
    // now, and the nudge goes up for the rest.
    if (!flush_locked(last, wrote) || !nudge_locked(last, wrote))
      wrote = false; // a broken ring: the receiver finds it too
  }
  cv_.notify_all();
  if (wrote)
    out_.notify_data(last);
  if (!spawn_receiver()) {
    // Nobody would read it: the link ends before it carried anything.
    fail(make_error(errc::spawn_failed, "no thread to read the link"));
    throw error(errc::spawn_failed,
                "cannot make a link: no thread to read it");
  }
}

void link::fail(caf::error reason) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_)
      return;
    reason_ = std::move(reason);
    pending_.clear();
    has_pending_ = false;
    closed_ = true;
  }
  gone_ = true;
  wake_all();
}

void link::peer_gone(caf::error reason) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!reason_)
      reason_ = std::move(reason);
    pending_.clear();
    has_pending_ = false;
    closed_ = true;
  }
  gone_ = true;
  wake_all();
}

void link::peer_closing(caf::error reason) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!peer_reason_)
    peer_reason_ = std::move(reason);
}

void link::close(const caf::error& reason, const buffer& close_frame) {
  int fd = -1;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closing_sent_)
      return;
    closing_sent_ = true;
    if (started_ && !closed_) {
      // Best effort, never waiting: the peer learns the reason if the
      // frame fits behind what is queued (and whole: never half a frame).
      std::uint64_t last = 0;
      bool wrote = false;
      if (flush_locked(last, wrote) && pending_.empty()
          && out_.room() >= close_frame.size())
        out_.write_some(close_frame.data(), close_frame.size());
      out_.notify_data(0);
    }
    if (!reason_)
      reason_ = reason;
    pending_.clear();
    has_pending_ = false;
    closed_ = true;
    fd = fd_;
  }
  if (fd >= 0)
    ::shutdown(fd, SHUT_RDWR); // the peer sees its end now
  gone_ = true;
  wake_all();
}

void link::join() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> guard{threads_mtx_};
    joined_ = true;
    threads.swap(threads_);
  }
  for (auto& t : threads) {
    if (t.get_id() == std::this_thread::get_id())
      t.detach(); // it returns from receive_loop right after this
    else
      t.join();
  }
}

caf::error link::reason() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return reason_;
}

bool link::await_open(time_point deadline) {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait_until(guard, deadline, [&] { return started_ || closed_; });
  return started_ && !closed_;
}

void link::wake_all() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (started_) {
      // Our own processes' sleepers: receivers on the incoming ring,
      // writers waiting for room in the outgoing one.
      in_.header().data_bell.fetch_add(1);
      futex_wake(in_.header().data_bell, INT_MAX);
      out_.header().room_bell.fetch_add(1);
      futex_wake(out_.header().room_bell, INT_MAX);
    }
  }
  cv_.notify_all();
}

// -- writing
// -------------------------------------------------------------------

bool link::flush_locked(std::uint64_t& last_dest, bool& wrote) {
  while (!pending_.empty()) {
    auto& c = pending_.front();
    auto n
        = out_.write_some(c.bytes.data() + c.offset, c.bytes.size() - c.offset);
    if (n < 0)
      return false;
    if (n > 0)
      wrote = true;
    c.offset += static_cast<std::size_t>(n);
    if (c.offset < c.bytes.size())
      break;
    last_dest = c.dest;
    pending_.pop_front();
  }
  if (pending_.empty()) {
    has_pending_ = false;
    out_.header().nudge.store(0);
  }
  return true;
}

bool link::nudge_locked(std::uint64_t& last_dest, bool& wrote) {
  if (pending_.empty())
    return true;
  // The nudge stays up while frames are pending (flush_locked lowers it).
  // Raised here, it races with the reader, which makes room and then looks
  // at the nudge (ring::notify_room): both are sequentially consistent, so
  // either the reader sees it and rings, or this sees the room and writes
  // into it. Without the second look, a reader that emptied the ring a
  // moment before left the frames pending with nobody to ring.
  out_.header().nudge.store(1);
  return flush_locked(last_dest, wrote);
}

void link::flush() {
  std::uint64_t last = 0;
  bool wrote = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!started_ || closed_)
      return;
    flush_locked(last, wrote);
  }
  if (wrote)
    out_.notify_data(last);
}

link::write_result link::write(buffer& bytes, std::uint64_t dest,
                               const time_point* wait_until) {
  t_wrote_to = this;
  std::unique_lock<std::mutex> guard{mtx_};
  if (closed_)
    return write_result::closed;
  std::uint64_t last = 0;
  bool wrote = false;
  std::size_t offset = 0;
  if (started_) {
    if (!flush_locked(last, wrote))
      return write_result::closed; // the receiver closes it
    if (pending_.empty()) {
      auto n = out_.write_some(bytes.data(), bytes.size());
      if (n < 0)
        return write_result::closed;
      if (static_cast<std::size_t>(n) == bytes.size()) {
        guard.unlock();
        out_.notify_data(dest);
        return write_result::ok;
      }
      offset = static_cast<std::size_t>(n);
      wrote |= n > 0;
    }
  }
  auto ticket = next_ticket_++;
  pending_.push_back(chunk{std::move(bytes), offset, ticket, dest});
  has_pending_ = true;
  if (started_ && !nudge_locked(last, wrote))
    return write_result::closed;
  guard.unlock();
  if (wrote)
    out_.notify_data(0);
  if (wait_until == nullptr)
    return write_result::ok; // written, or pending (the nudge is up)
  for (;;) {
    guard.lock();
    if (closed_)
      return write_result::closed;
    last = 0;
    wrote = false;
    if (started_ && !flush_locked(last, wrote))
      return write_result::closed;
    if (pending_.empty() || pending_.front().ticket > ticket) {
      guard.unlock();
      if (wrote)
        out_.notify_data(last);
      return write_result::ok;
    }
    if (clock::now() >= *wait_until) {
      for (auto i = pending_.begin(); i != pending_.end(); ++i) {
        if (i->ticket == ticket) {
          if (i->offset > 0)
            return write_result::ok; // partly sent: it goes on
          pending_.erase(i);
          break;
        }
      }
      if (pending_.empty()) {
        has_pending_ = false;
        if (started_)
          out_.header().nudge.store(0);
      }
      return write_result::full;
    }
    bool started = started_;
    guard.unlock();
    if (wrote)
      out_.notify_data(last);
    if (started) {
      out_.wait_room(1, *wait_until);
    } else {
      guard.lock();
      cv_.wait_until(guard, *wait_until, [&] { return started_ || closed_; });
      guard.unlock();
    }
  }
}

// -- reading
// -------------------------------------------------------------------

bool link::spawn_receiver() {
  std::lock_guard<std::mutex> guard{threads_mtx_};
  if (joined_ || threads_.size() >= 2)
    return true;
  auto self = this;
  bool spare = !threads_.empty();
  try {
    threads_.emplace_back([self, spare] { self->receive_loop(spare); });
  } catch (const std::system_error&) {
    return false; // out of threads (RLIMIT_NPROC)
  }
  return true;
}

bool link::begin_inline() {
  int expected = 0;
  if (!inline_.compare_exchange_strong(expected, 1))
    return false;
  // The one that reads meanwhile, on first need; without it, the actor
  // goes to CAF's scheduler.
  if (!spawn_receiver()) {
    inline_.store(0);
    return false;
  }
  in_.set_busy(true);
  return true;
}

void link::end_inline() {
  in_.set_busy(false);
  inline_.store(0);
}

bool link::pump(link_handler::context& ctx, bool& got, std::string& what) {
  leftover_.store(false);
  for (;;) {
    frame f;
    auto r = reader_.next(f);
    if (r == frame_reader::result::frame) {
      got = true;
      if (!handler_.on_frame(*this, ctx, f, what))
        return false;
      continue;
    }
    if (r == frame_reader::result::bad) {
      what = reader_.what();
      return false;
    }
    auto n = in_.readable();
    if (n == 0)
      return true;
    std::ptrdiff_t m = -1;
    if (n > 0) {
      auto want = static_cast<std::size_t>(n);
      m = in_.read_some(reader_.prepare(want), want);
    }
    if (m < 0) {
      what = "the peer broke its ring";
      return false;
    }
    reader_.commit(static_cast<std::size_t>(m));
    if (in_.notify_room())
      out_.ring_data(); // the peer has frames for us waiting for room
  }
}

void link::receive_loop(bool spare) {
  t_receiver = true;
  auto ctx = handler_.make_context(*this);
  adaptive_spin spinner{spin_time()};
  for (;;) {
    bool got = false;
    bool finish = false;
    std::string what;
    {
      std::lock_guard<std::mutex> guard{reader_mtx_};
      if (finished_)
        break;
      // Gone before this read: nothing comes after what it finds.
      bool was_gone = gone_.load();
      if (!pump(*ctx, got, what)) {
        close(caf::make_error(caf::sec::malformed_basp_message,
                              "link protocol error: " + what));
        was_gone = true;
      }
      if (was_gone)
        finish = finished_ = true;
    }
    handler_.after_frames(*this, *ctx);
    if (finish) {
      caf::error why;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        why = peer_reason_ ? peer_reason_ : reason_;
      }
      handler_.on_closed(*this, *ctx, why);
      wake_all(); // the other receiver thread ends too
      break;
    }
    if (has_pending_)
      flush();
    if (!got) {
      // This thread wrote to the peer (an actor it ran answered or
      // asked): an answer is likely coming, so spin before sleeping. Not
      // after handing a frame to another thread: that one needs the core.
      auto spin = std::exchange(t_wrote_to, nullptr) == this
                    ? spinner.budget()
                    : std::chrono::nanoseconds::zero();
      auto found = in_.wait_data(
        time_point::max(),
        [&] {
          // Pending frames and room for them: write them instead.
          return gone_.load() || leftover_.load()
                 || (has_pending_.load() && out_.room() > 0);
        },
        spare, spin);
      spinner.record(spin, found);
    }
  }
}

} // namespace actors::detail::links
