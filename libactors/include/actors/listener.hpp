#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "actors/detail/relay.hpp"
#include "actors/pipe.hpp"

namespace actors {

/// Accepts connections from other programs: the counterpart of Python's
/// `multiprocessing.connection.Listener`. Each accepted connection is a
/// `connection<T>`, a pipe end like `pipe()`'s; `client` makes the other end.
///
/// @code
/// // the server
/// actors::listener<std::string> server{"127.0.0.1:6000", "run.key"};
/// auto conn = server.accept(std::chrono::seconds{30});
/// conn.send("welcome");
/// std::cout << conn.recv() << '\n';
///
/// // any program that holds the key, on this host or another
/// auto conn = actors::client<std::string>("127.0.0.1:6000", "run.key");
/// std::cout << conn.recv() << '\n'; // "welcome"
/// conn.send("thanks");
/// @endcode
///
/// **Who may connect.** Only a client that proves the key of `key_file`
/// (Python's `authkey`), the key never sent: on one machine (loopback) with
/// the handshake the run's own connections use, a challenge and response
/// under HMAC-SHA256; between hosts inside TLS 1.3, with the key as its
/// pre-shared key (or certificates, see docs/hosts.md), so that what
/// travels is encrypted too. A client that fails it, or does not finish it
/// within 2 s, is dropped and never reaches `accept`. The key file holds 32
/// bytes, readable by its owner only (mode 0600); the listener makes one
/// when it does not exist.
///
/// **What travels.** Items of `T`, serialized with CAF's `inspect`: the
/// program at the other end need not be this one, but must use the same
/// `T`. Both ends must agree on `T`: an item the other side cannot read ends
/// the connection. Handles of this run (queues, pipe ends, actors) cannot
/// travel through it.
///
/// **The accepted end** is a pipe end of this process (see `connection`):
/// it works with `wait`, can be passed to children and put into queues, and
/// ends as a pipe does: once the other program closes its end or dies, it
/// receives what was sent, then `errc::end_of_pipe`; once no process here
/// holds it any more, the other program receives its end of pipe. Two
/// threads of this process carry each connection.
///
/// **Backlog.** Up to 64 authenticated connections wait for `accept`; one
/// more is closed at once (its client receives the end of pipe).
///
/// **Errors.** An address this host cannot listen on:
/// `errc::invalid_argument`; a key file that others may read:
/// `errc::invalid_argument`; `accept` after `close`: `errc::closed`; no
/// client within `timeout`: `errc::timeout`.
template <class T>
class listener {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// Listens on `address`, "HOST:PORT" (port 0: one the system chooses;
  /// see `address()`), for clients holding the key of `key_file`.
  listener(const std::string& address, const std::string& key_file)
    : core_(std::make_shared<detail::connection_listener>(address, key_file)) {
    // nop
  }

  /// The next client's connection, waiting at most `timeout`.
  connection<T> accept(std::optional<duration> timeout = std::nullopt) const {
    auto fd = core_->accept(timeout);
    return detail::queue_access::make_end<connection<T>>(
      detail::relay_socket(fd, detail::relay_codec::of<T>()));
  }

  /// Where it listens, "HOST:PORT", with the port it got.
  std::string address() const {
    return core_->address();
  }

  /// Stops listening (also when the last copy of this handle goes);
  /// connections already accepted are not affected.
  void close() const {
    core_->close();
  }

private:
  std::shared_ptr<detail::connection_listener> core_;
};

/// Connects to a `listener` at `address` ("HOST:PORT") with the key of
/// `key_file`, within `timeout`: Python's `multiprocessing.connection.Client`.
/// Returns this program's end, a pipe end of this process like those of
/// `listener::accept`. Throws `errc::owner_unreachable` when nothing
/// listens there (or the listener dropped the connection),
/// `errc::unauthenticated` when the listener holds another key,
/// `errc::timeout` when the handshake does not finish in time, and
/// `errc::invalid_argument` for a malformed address or an unreadable key
/// file.
template <class T>
connection<T> client(const std::string& address, const std::string& key_file,
                     std::chrono::steady_clock::duration timeout
                     = std::chrono::seconds{10}) {
  auto fd = detail::connect_client(address, key_file, timeout);
  return detail::queue_access::make_end<connection<T>>(
    detail::relay_socket(fd, detail::relay_codec::of<T>()));
}

} // namespace actors
