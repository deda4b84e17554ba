#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/meta/load_callback.hpp>
#include <caf/meta/save_callback.hpp>

#include "actors/detail/queue_ref.hpp"
#include "actors/error.hpp"
#include "actors/process.hpp"

namespace actors {

namespace detail {

/// Waits until one of `inboxes` has something to receive (or is closed)
/// or one of `ended` has ended; returns the indices of the ready ones
/// (`inboxes` first, then `ended`), empty on timeout.
std::vector<std::size_t>
wait_any(const std::vector<queue_ref>& inboxes,
         const std::vector<std::shared_ptr<child>>& ended,
         std::optional<duration> timeout);

} // namespace detail

template <class T>
class connection;

template <class T>
std::pair<connection<T>, connection<T>> pipe(bool duplex = true);

/// One end of a pipe: the counterpart of Python's
/// `multiprocessing.connection.Connection`.
///
/// @code
/// void child(actors::connection<std::string> conn) {
///   conn.send("hello");
///   std::cout << conn.recv() << '\n';
/// }
///
/// auto [parent_end, child_end] = actors::pipe<std::string>();
/// actors::process p{child, child_end};
/// p.start();
/// std::cout << parent_end.recv() << '\n'; // "hello"
/// parent_end.send("bye");
/// @endcode
///
/// **Ownership.** Each direction of a pipe is an unbounded queue living in
/// the process that called `pipe()`; a `connection` is a handle that can be
/// copied, passed to processes and put into queues. An end held by several
/// processes is shared: each message sent to it is received by exactly one
/// of them. Messages keep their order and are never lost or duplicated.
///
/// **Blocking.** `recv` blocks until a message arrives, at most `timeout`
/// (then `errc::timeout`); `poll()` answers at once, `poll(t)` waits up to
/// `t`, as Python's. `send` never blocks: from another process than the
/// pipe's creator it returns once the kernel holds the message.
///
/// **End of pipe.** As with Python's descriptors, a process holds an end from
/// the moment it creates or receives it (as an argument, a pool task's
/// argument, in a message or through a queue) until it calls `close()` or
/// dies. An end it hands over (sends, puts into a queue, passes to a process
/// or a pool task) it goes on holding on the receiver's behalf until the
/// receiver holds it, as Python duplicates a descriptor when it pickles it:
/// it may close its own copy at once; if it dies first, that hold ends with
/// it. (A queue's process only carries the ends in its items; their getter
/// holds them.) Once no process holds an end any more,
/// the other end receives what was already sent, then `errc::end_of_pipe`
/// (Python's `EOFError`), and its `send` fails with `errc::broken_pipe`. So,
/// as in Python, the creator should close its copy of an end it handed to a
/// child (`process::start` returns once the child holds it). `poll` is true
/// when `recv` would not block, including at the end of the pipe. Using a
/// handle after its `close()` is `errc::closed`.
///
/// **One-way pipes.** `pipe<T>(false)` returns (read end, write end), like
/// Python's `Pipe(duplex=False)`: `send` on the read end or `recv` on the
/// write end is `errc::wrong_direction`.
template <class T>
class connection {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// An empty handle (every call fails); exists to be assigned or
  /// deserialized.
  connection() = default;

  /// Sends `x` to the other end.
  void send(T x) const {
    send_value(detail::value::make(std::move(x)), "send");
  }

  /// Receives the next message, waiting at most `timeout`.
  T recv(std::optional<duration> timeout = std::nullopt) const {
    return recv_value(timeout, "recv").template take<T>();
  }

  /// Sends raw bytes; the other end takes them with `recv_bytes`.
  void send_bytes(std::vector<char> bytes) const {
    send_value(detail::value::make(std::move(bytes)), "send_bytes");
  }

  /// Sends `size` bytes of `bytes` from `offset` (Python's
  /// `send_bytes(buf, offset, size)`; `size` none: to the end). A range
  /// outside `bytes` throws `errc::invalid_argument`.
  void send_bytes(const std::vector<char>& bytes, std::size_t offset,
                  std::optional<std::size_t> size = std::nullopt) const {
    if (offset > bytes.size()
        || (size && *size > bytes.size() - offset))
      throw error(errc::invalid_argument,
                  "send_bytes: the range [" + std::to_string(offset) + ", +"
                    + (size ? std::to_string(*size) : std::string{"end"})
                    + ") is outside a buffer of "
                    + std::to_string(bytes.size()) + " bytes");
    auto first = bytes.begin() + static_cast<std::ptrdiff_t>(offset);
    auto last = size ? first + static_cast<std::ptrdiff_t>(*size)
                     : bytes.end();
    send_bytes(std::vector<char>(first, last));
  }

  /// Receives a message sent with `send_bytes`.
  std::vector<char> recv_bytes(std::optional<duration> timeout
                               = std::nullopt) const {
    return recv_value(timeout, "recv_bytes").template take<std::vector<char>>();
  }

  /// Receives a message sent with `send_bytes` into `buffer` from `offset`
  /// and returns its length (Python's `recv_bytes_into`). A message longer
  /// than `size - offset` throws `buffer_too_short`, which holds it;
  /// `offset > size` throws `errc::invalid_argument` before receiving.
  std::size_t recv_bytes_into(char* buffer, std::size_t size,
                              std::size_t offset = 0,
                              std::optional<duration> timeout
                              = std::nullopt) const {
    if (offset > size)
      throw error(errc::invalid_argument,
                  "recv_bytes_into: offset " + std::to_string(offset)
                    + " is beyond a buffer of " + std::to_string(size)
                    + " bytes");
    auto bytes = recv_bytes(timeout);
    if (bytes.size() > size - offset)
      throw buffer_too_short(std::move(bytes), size - offset);
    std::copy(bytes.begin(), bytes.end(), buffer + offset);
    return bytes.size();
  }

  /// True when `recv` would not block: a message is waiting or the other end
  /// is closed. Waits up to `timeout` (zero: answers at once).
  bool poll(duration timeout = duration::zero()) const {
    check_open();
    if (!readable_)
      throw error(errc::wrong_direction, "poll on the write end of a pipe");
    return inbox_.poll(timeout);
  }

  /// Releases this process's hold on this end (see **End of pipe**) and
  /// makes this handle unusable. Closing twice is harmless.
  void close() {
    if (closed_)
      return;
    closed_ = true;
    hold(false);
  }

  ///@{
  /// Whether this handle was closed, may receive, may send.
  bool closed() const noexcept {
    return closed_;
  }
  bool readable() const noexcept {
    return readable_;
  }
  bool writable() const noexcept {
    return writable_;
  }
  ///@}

  ///@{
  /// Whether two handles are the same end of the same pipe (copies of one
  /// another, closed or not): how a caller tells which of the ends it gave
  /// `wait` are ready.
  friend bool operator==(const connection& x, const connection& y) noexcept {
    return x.inbox_.actor() == y.inbox_.actor()
           && x.outbox_.actor() == y.outbox_.actor()
           && x.readable_ == y.readable_ && x.writable_ == y.writable_;
  }
  friend bool operator!=(const connection& x, const connection& y) noexcept {
    return !(x == y);
  }
  ///@}

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 connection& x) {
    // Serializing an end hands it over: this process holds it on the
    // receiver's behalf until the receiver does (see detail::end_flight),
    // and a process that receives an end holds it from then on, as one that
    // inherits a descriptor does.
    auto handed = caf::meta::save_callback([&x]() -> caf::error {
      detail::end_saved(x.inbox_, x.outbox_, x.readable_, x.writable_,
                        x.closed_, x.flight_);
      return caf::none;
    });
    auto held = caf::meta::load_callback([&x]() -> caf::error {
      detail::end_loaded(x.inbox_, x.outbox_, x.readable_, x.writable_,
                         x.closed_, x.flight_);
      return caf::none;
    });
    return f(handed, x.inbox_, x.outbox_, x.readable_, x.writable_,
             x.closed_, x.flight_, held);
  }

private:
  friend std::pair<connection, connection> pipe<T>(bool);
  friend struct detail::queue_access;

  void check_open() const {
    if (closed_)
      throw error(errc::closed, "this end of the pipe was closed");
  }

  // Registers or withdraws this process as a holder of this end.
  void hold(bool yes) const {
    auto role = [&](const detail::queue_ref& q, detail::holder_role r) {
      if (yes)
        q.attach(r);
      else
        q.detach(r);
    };
    if (readable_)
      role(inbox_, detail::holder_role::reader);
    if (writable_)
      role(outbox_, detail::holder_role::writer);
  }

  void send_value(detail::value v, const char* what) const {
    check_open();
    if (!writable_)
      throw error(errc::wrong_direction,
                  std::string{what} + " on the read end of a one-way pipe");
    outbox_.put(std::move(v), std::nullopt,
                {errc::closed, errc::broken_pipe, errc::queue_empty});
  }

  detail::value recv_value(std::optional<duration> timeout,
                           const char* what) const {
    check_open();
    if (!readable_)
      throw error(errc::wrong_direction,
                  std::string{what} + " on the write end of a one-way pipe");
    return inbox_.get(timeout,
                      {errc::end_of_pipe, errc::closed, errc::timeout});
  }

  detail::queue_ref inbox_;
  detail::queue_ref outbox_;
  bool readable_ = false;
  bool writable_ = false;
  bool closed_ = false;
  // Set while this copy is on its way to another process.
  detail::end_flight flight_;
};

/// Creates a pipe: two connected ends, both usable for sending and
/// receiving, or (read end, write end) when `duplex` is false.
template <class T>
std::pair<connection<T>, connection<T>> pipe(bool duplex) {
  auto a = detail::queue_ref::make(0, /*buffered=*/true);
  connection<T> first;
  connection<T> second;
  if (duplex) {
    auto b = detail::queue_ref::make(0, /*buffered=*/true);
    first.inbox_ = a;
    first.outbox_ = b;
    second.inbox_ = b;
    second.outbox_ = a;
    first.readable_ = first.writable_ = second.readable_ = second.writable_
      = true;
  } else {
    first.inbox_ = a;
    first.readable_ = true;
    second.outbox_ = a;
    second.writable_ = true;
  }
  // The creating process holds both ends until it closes them (or dies).
  first.hold(true);
  second.hold(true);
  return {std::move(first), std::move(second)};
}

/// Waits until at least one of `conns` can `recv` without blocking (a
/// message or the end of the pipe), at most `timeout`; returns those, in
/// the order given, empty on timeout. Python's
/// `multiprocessing.connection.wait`: as Python returns the same objects,
/// each returned end compares equal (`==`) to the one given, so
/// `std::find(conns.begin(), conns.end(), ready[0])` tells which it is.
template <class T>
std::vector<connection<T>>
wait(const std::vector<connection<T>>& conns,
     std::optional<std::chrono::steady_clock::duration> timeout
     = std::nullopt) {
  std::vector<detail::queue_ref> inboxes;
  for (auto& c : conns) {
    if (!c.readable())
      throw error(errc::wrong_direction, "wait on the write end of a pipe");
    inboxes.push_back(detail::queue_access::inbox(c));
  }
  std::vector<connection<T>> ready;
  for (auto i : detail::wait_any(inboxes, {}, timeout))
    ready.push_back(conns[i]);
  return ready;
}

/// What `wait` takes when it waits for pipe ends and processes together: a
/// readable pipe end (of any element type) or a process's `sentinel`. It
/// converts from both; two compare equal when they name the same end or
/// the same process.
class waitable {
public:
  /// A pipe end: ready when `recv` would not block.
  template <class T>
  waitable(const connection<T>& end) { // NOLINT: converts, as Python mixes
    if (!end.readable())
      throw error(errc::wrong_direction, "wait on the write end of a pipe");
    inbox_ = detail::queue_access::inbox(end);
    end_ = true;
  }

  /// A process: ready once it has ended.
  waitable(sentinel s) : sentinel_(std::move(s)) { // NOLINT: converts
    // nop
  }

  /// Whether it is a process's sentinel (else a pipe end).
  bool is_sentinel() const noexcept {
    return !end_;
  }

  friend bool operator==(const waitable& a, const waitable& b) {
    return a.end_ == b.end_
           && (a.end_ ? a.inbox_.actor() == b.inbox_.actor()
                     : a.sentinel_ == b.sentinel_);
  }

  friend bool operator!=(const waitable& a, const waitable& b) {
    return !(a == b);
  }

private:
  friend std::vector<waitable>
  wait(const std::vector<waitable>&,
       std::optional<std::chrono::steady_clock::duration>);

  bool end_ = false;
  detail::queue_ref inbox_;
  sentinel sentinel_;
};

/// Waits until at least one of `objects` is ready (a pipe end can `recv`
/// without blocking, a process has ended), at most `timeout`; returns the
/// ready ones in the order given, empty on timeout: Python's
/// `multiprocessing.connection.wait([conn, p.sentinel], timeout)`.
///
/// @code
/// auto ready = actors::wait({results, worker.sentinel()}, 10s);
/// if (!ready.empty() && ready[0] == actors::waitable{worker.sentinel()})
///   ...  // the worker ended
/// @endcode
std::vector<waitable>
wait(const std::vector<waitable>& objects,
     std::optional<std::chrono::steady_clock::duration> timeout
     = std::nullopt);

} // namespace actors
