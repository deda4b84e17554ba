#pragma once

// TLS 1.3 between hosts (issue 23). Every TCP connection libactors makes
// to another host (pool workers, queue/pipe/lock streams, BASP, served
// managers, actors::client) is encrypted; one whose two ends are on this
// host (a loopback address) stays as it was, plain and proven by the key
// handshake of auth.hpp. Each side decides from the connection's addresses,
// so both always agree, and no byte is spent on negotiating.
//
// Who may connect, in one of two ways:
// - the run's key (what every run has): the key, through HMAC, is a TLS 1.3
//   external PSK, with an ephemeral (EC)DHE exchange beside it (psk_dhe_ke),
//   so a recorded session stays secret even if the key leaks later;
// - certificates: a CA, this host's certificate and its private key; both
//   sides verify each other against the CA (mutual). Set with
//   use_certificates(), or ACTORS_TLS_CA, ACTORS_TLS_CERTIFICATE and
//   ACTORS_TLS_PRIVATE_KEY in the environment.
// Plain text between hosts only with ACTORS_INSECURE_PLAINTEXT_BETWEEN_HOSTS=1
// on both sides, which says so on stderr once per process.
//
// After the handshake the client sends two bytes inside TLS: 'P' and the
// purpose (auth.hpp), which the server checks.
//
// The data path: the caller gets one end of a socketpair; a thread of this
// process (the pump) moves bytes between its other end and the TCP socket,
// encrypting and decrypting. So everything above (CAF's BASP, channels,
// hub streams) reads and writes a plain blocking socket as before. The
// pump keeps every OpenSSL error to the connection that caused it (the
// per-thread error queue is cleared before each call), never buffers more
// than a bound per connection, and closes a connection whose user closed
// theirs. A transport error (a reset, TCP_USER_TIMEOUT after watch_link)
// ends the user's stream; far_end_failure() then says which error it was.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "base/fd.hpp"
#include "net/auth.hpp"

namespace actors::detail {

/// The certificates of this process, instead of the key's PSK: PEM files
/// of the CA both sides trust, this host's certificate (chain) and its
/// private key. Loads and checks them at once: throws
/// `errc::invalid_argument` naming the file and OpenSSL's reason (missing,
/// unreadable, not PEM, the key not matching the certificate, the
/// certificate expired or not yet valid). Once per process; again with
/// the same files is a no-op, with others an error.
void use_certificates(const std::string& ca, const std::string& certificate,
                      const std::string& private_key);

/// Applies ACTORS_TLS_CA / ACTORS_TLS_CERTIFICATE / ACTORS_TLS_PRIVATE_KEY
/// if set (all three, or an error), so that a bad file is an error at
/// start; actors::init calls it.
void tls_from_environment();

/// Whether a connection from `local` to `peer` is encrypted: neither is
/// loopback, and plain text was not asked for.
bool tls_between(const sockaddr_storage& local, const sockaddr_storage& peer);

/// Tests: encrypt loopback connections too (process-wide), so that one
/// process can drive both ends of the TLS path.
void tls_on_loopback(bool on) noexcept;

/// Whether the connected socket `fd` is between hosts (tls_between on its
/// two addresses).
bool tls_needed(int fd);

/// One TLS 1.3 session on memory buffers: the caller moves ciphertext to
/// and from the socket, so nothing here blocks or raises SIGPIPE, and a
/// fuzzer can feed it bytes. `server` picks the side.
class tls_session {
public:
  enum class step { want_more, done, failed };

  /// A session with this process's settings for the run's `key`.
  tls_session(bool server, const secret& key);
  ~tls_session();

  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;

  /// Ciphertext received from the peer.
  void feed(const std::uint8_t* data, std::size_t size);

  /// Advances the handshake (after feed or at first).
  step handshake();

  /// Decrypts into `buf`: > 0 bytes, 0 when nothing is ready yet, -1 at the
  /// peer's close_notify, -2 on an error (a forged or broken record).
  long read(std::uint8_t* buf, std::size_t size);

  /// Encrypts `size` bytes (all of them; the ciphertext waits in output()).
  bool write(const std::uint8_t* data, std::size_t size);

  /// Queues a close_notify.
  void close();

  /// Ciphertext to send: appended to by the calls above; the caller erases
  /// what it sent from the front.
  std::vector<std::uint8_t>& output();

  /// Why the handshake or a record failed, in words (OpenSSL's reason).
  const std::string& why() const noexcept {
    return why_;
  }

private:
  void collect();

  struct impl;
  std::unique_ptr<impl> impl_;
  std::string why_;
};

/// The client side on a connected socket (non-blocking or not) within
/// `deadline`: the handshake, then the purpose. Returns the caller's end of
/// the pump's socketpair (blocking, close-on-exec); throws
/// `errc::unauthenticated` (refused: another key, an untrusted certificate,
/// a plain-text peer) or `errc::timeout`.
unique_fd tls_connect(unique_fd tcp, const secret& key, purpose p,
                      std::chrono::steady_clock::time_point deadline);

/// Hands a server session whose handshake is done (and whose purpose was
/// read) to the pump with its socket; returns the user's end.
unique_fd tls_adopt(unique_fd tcp, std::unique_ptr<tls_session> session);

/// Runs `fn` on the TCP socket under `user_fd` (an end tls_connect or
/// tls_adopt returned, still open); false if `user_fd` is no such end.
bool with_tls_transport(int user_fd, void (*fn)(int tcp, const void* arg),
                        const void* arg);

/// The errno that ended the TCP connection under `user_fd`, once its user
/// read the end: 0 after an orderly end or for another descriptor.
int far_end_failure(int user_fd) noexcept;

/// How many connections the pump of this process carries.
std::size_t tls_connections() noexcept;

} // namespace actors::detail
