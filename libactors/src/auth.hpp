#pragma once

// The run's secret key and the challenge-response handshake that every TCP
// connection must pass before its socket is handed to CAF's BASP broker.
//
// Server (the node that accepted):  magic(8) | server_nonce(32)
// Client:                           client_nonce(32) | mac(key, "client", sn, cn)
// Server:                           mac(key, "server", cn, sn)
//
// Both sides prove the key without revealing it; nonces make replays useless.
// The server drops a connection that sends anything else, or does not finish
// before its deadline.

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace actors::detail {

using secret = std::array<std::uint8_t, 32>;

/// A fresh random key from the kernel's CSPRNG.
secret make_secret();

/// Stores or loads a key file (binary, 32 bytes, mode 0600).
void write_secret(const std::string& path, const secret& key);
secret read_secret(const std::string& path);

constexpr std::size_t nonce_size = 32;
constexpr std::size_t mac_size = 32;
constexpr std::array<std::uint8_t, 8> handshake_magic{'A', 'C', 'T', 'O',
                                                      'R', 'S', '0', '1'};
constexpr std::size_t server_hello_size = handshake_magic.size() + nonce_size;
constexpr std::size_t client_proof_size = nonce_size + mac_size;

using nonce = std::array<std::uint8_t, nonce_size>;
using mac = std::array<std::uint8_t, mac_size>;

nonce make_nonce();

/// HMAC-SHA256 over a role label and the two nonces in the given order.
mac compute_mac(const secret& key, const char* role, const nonce& first,
                const nonce& second);

/// Constant-time comparison.
bool equal(const mac& x, const mac& y);

/// Runs the client side of the handshake on a connected blocking or
/// non-blocking socket, within `deadline`. Throws `errc::unauthenticated` or
/// `errc::timeout`.
void client_handshake(int fd, const secret& key,
                      std::chrono::steady_clock::time_point deadline);

} // namespace actors::detail
