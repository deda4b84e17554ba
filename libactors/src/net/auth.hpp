#pragma once

// The run's secret key and the challenge-response handshake that every TCP
// connection must pass before its socket is handed to CAF's BASP broker.
//
// Server (the node that accepted):  magic(8) | server_nonce(32)
// Client:                           client_nonce(32) | mac(key, "client"P, sn, cn)
// Server:                           mac(key, "server"P, cn, sn)
//
// Both sides prove the key without revealing it; nonces make replays useless.
// P names what the connection is for (purpose below): the server finds it by
// trying each label, so the purpose is authenticated too and costs no byte.
// The server drops a connection that sends anything else, or does not finish
// before its deadline.

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

namespace actors::detail {

using secret = std::array<std::uint8_t, 32>;

/// A fresh random key from the kernel's CSPRNG.
secret make_secret();

/// Stores or loads a key file (binary, 32 bytes, mode 0600). Loading a
/// file that other users may read fails: the key is the run's password.
void write_secret(const std::string& path, const secret& key);
secret read_secret(const std::string& path);

/// Loads the key file at `path`, first creating it with a fresh key if it
/// does not exist.
secret load_or_make_secret(const std::string& path);

constexpr std::size_t nonce_size = 32;
constexpr std::size_t mac_size = 32;
constexpr std::array<std::uint8_t, 8> handshake_magic{'A', 'C', 'T', 'O',
                                                      'R', 'S', '0', '1'};
constexpr std::size_t server_hello_size = handshake_magic.size() + nonce_size;
constexpr std::size_t client_proof_size = nonce_size + mac_size;

using nonce = std::array<std::uint8_t, nonce_size>;

/// What an authenticated connection carries once the handshake is done.
enum class purpose : std::uint8_t {
  node,   ///< BASP: the connecting process joins as a node of the run
  worker, ///< a pool worker on another host (pool/worker.hpp's frames)
  hub,    ///< queue operations of another host (queue/hub_stream.cpp)
  lock,   ///< lock operations of another host
  connection, ///< actors::client to actors::listener (queue/relay.cpp)
};

constexpr purpose all_purposes[] = {purpose::node, purpose::worker,
                                    purpose::hub, purpose::lock,
                                    purpose::connection};

/// The MAC labels of each side for `p` ("client" and "server" for nodes).
const char* client_label(purpose p) noexcept;
const char* server_label(purpose p) noexcept;
using mac = std::array<std::uint8_t, mac_size>;

nonce make_nonce();

/// HMAC-SHA256 over a role label and the two nonces in the given order.
mac compute_mac(const secret& key, const char* role, const nonce& first,
                const nonce& second);

/// Constant-time comparison.
bool equal(const mac& x, const mac& y);

/// Runs the client side of the handshake on a connected blocking or
/// non-blocking socket, within `deadline`, for a connection of purpose `p`.
/// Throws `errc::unauthenticated` or `errc::timeout`.
void client_handshake(int fd, const secret& key,
                      std::chrono::steady_clock::time_point deadline,
                      purpose p = purpose::node);

/// Connects to `host:port` (a name or address) and runs the client side of
/// the handshake for `p` within `timeout`; returns the socket (blocking,
/// close-on-exec). Throws `errc::owner_unreachable` when no connection
/// could be made (its errno in `*why`, if given; a name that does not
/// resolve says so, with the resolver's reason), `errc::unauthenticated`
/// when the peer refused the key.
int connect_authenticated(const std::string& host, std::uint16_t port,
                          const secret& key, purpose p,
                          std::chrono::milliseconds timeout,
                          int* why = nullptr);

/// Splits "HOST:PORT" (at the last colon; "[v6]:PORT" too); throws
/// `errc::invalid_argument`.
std::pair<std::string, std::uint16_t> split_address(const std::string& text);

/// Makes the kernel watch the TCP connection `fd`: once the peer has not
/// acknowledged keepalive probes or data for `lost_after` (a host killed,
/// a link cut), the connection fails with an error (poll shows POLLERR).
void watch_link(int fd, std::chrono::milliseconds lost_after);

} // namespace actors::detail
