#pragma once

// The untyped core of actors::listener and actors::client (listener.hpp): a
// socket to another program turned into a pipe of this process. Public
// templates need it; users never name it.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <caf/deserializer.hpp>
#include <caf/serializer.hpp>

#include "actors/detail/queue_ref.hpp"
#include "actors/detail/value.hpp"

namespace actors::detail {

/// How a relay writes and reads the items of one element type: the `T`
/// itself, so that the program at the other end need not be this binary
/// (a value's own serialized form names its loader by address).
struct relay_codec {
  caf::error (*save)(caf::serializer&, value&);
  caf::error (*load)(caf::deserializer&, value&);

  template <class T>
  static relay_codec of() {
    return {[](caf::serializer& f, value& v) -> caf::error {
              auto x = v.take<T>();
              return f(x);
            },
            [](caf::deserializer& f, value& v) -> caf::error {
              T x;
              if (auto err = f(x))
                return err;
              v = value::make(std::move(x));
              return caf::none;
            }};
  }
};

/// Makes a pipe of this process whose far half is the connected,
/// authenticated socket `fd` (taken): two threads carry what arrives on
/// the socket into the pipe and what the returned end sends onto the
/// socket. Returns that end's (inbox, outbox), held by this process. The
/// socket's end is the end of the pipe: the returned end receives what
/// arrived, then end-of-pipe, and its sends fail with broken-pipe once the
/// far side stopped reading. Once no process holds the returned end any
/// more, the relay shuts the socket, which the far side reads as its end
/// of pipe.
std::pair<queue_ref, queue_ref> relay_socket(int fd, relay_codec codec);

/// Accepts connections that prove the key of `key_file` on `address`
/// (actors::listener).
class connection_listener {
public:
  connection_listener(const std::string& address, const std::string& key_file);
  ~connection_listener();
  connection_listener(const connection_listener&) = delete;
  connection_listener& operator=(const connection_listener&) = delete;

  /// The next authenticated socket, waiting at most `timeout`.
  int accept(std::optional<duration> timeout);

  /// "HOST:PORT", with the port the system chose for port 0.
  std::string address() const;

  void close();

private:
  struct state;
  std::shared_ptr<state> state_;
};

/// Connects to `address`, proves the key of `key_file` within `timeout`
/// and returns the socket (actors::client).
int connect_client(const std::string& address, const std::string& key_file,
                   duration timeout);

} // namespace actors::detail
