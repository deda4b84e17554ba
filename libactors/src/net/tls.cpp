#include "net/tls.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "actors/error.hpp"
#include "base/deadline.hpp"

namespace actors::detail {

namespace {

// -- settings -----------------------------------------------------------------

constexpr unsigned char psk_identity[] = "libactors-run-key";
constexpr std::uint8_t purpose_tag = 'P';

// OpenSSL's first queued error in words, and the queue cleared.
std::string openssl_reason() {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return "no reason given";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

struct certificates {
  std::string ca, certificate, private_key;
  bool operator==(const certificates& other) const {
    return ca == other.ca && certificate == other.certificate
           && private_key == other.private_key;
  }
};

struct settings {
  std::mutex mtx;
  std::unique_ptr<certificates> certs;       // set once
  SSL_CTX* cert_client = nullptr;            // made from certs
  SSL_CTX* cert_server = nullptr;
  std::map<secret, std::pair<SSL_CTX*, SSL_CTX*>> psk; // per key
};

settings& the_settings() {
  static auto* s = new settings; // lives as long as any thread may use it
  return *s;
}

bool plaintext_asked() {
  static const bool asked = [] {
    auto* v = std::getenv("ACTORS_INSECURE_PLAINTEXT_BETWEEN_HOSTS");
    if (v == nullptr || std::strcmp(v, "1") != 0)
      return false;
    std::fprintf(stderr,
                 "libactors: WARNING: ACTORS_INSECURE_PLAINTEXT_BETWEEN_HOSTS=1"
                 ": connections between hosts are NOT encrypted; anyone on "
                 "the network can read and change tasks, items and "
                 "messages\n");
    return true;
  }();
  return asked;
}

// The PSK of a run: its key through HMAC with a label of its own, so the
// TLS secret is not the secret auth.hpp's handshake uses.
std::array<std::uint8_t, 32> psk_of(const secret& key) {
  static const char label[] = "libactors tls 1.3 external psk v1";
  std::array<std::uint8_t, 32> out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(label), sizeof(label) - 1,
       out.data(), &len);
  return out;
}

int psk_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr,
                                                    nullptr, nullptr);
  return index;
}

SSL_SESSION* psk_session(SSL* ssl, const EVP_MD* md) {
  static const unsigned char aes128gcm[] = {0x13, 0x01};
  auto* cipher = SSL_CIPHER_find(ssl, aes128gcm);
  if (cipher == nullptr
      || (md != nullptr && SSL_CIPHER_get_handshake_digest(cipher) != md))
    return nullptr;
  auto* psk = static_cast<const std::array<std::uint8_t, 32>*>(
    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
  auto* session = SSL_SESSION_new();
  if (session == nullptr || psk == nullptr
      || !SSL_SESSION_set1_master_key(session, psk->data(), psk->size())
      || !SSL_SESSION_set_cipher(session, cipher)
      || !SSL_SESSION_set_protocol_version(session, TLS1_3_VERSION)) {
    SSL_SESSION_free(session);
    return nullptr;
  }
  return session;
}

int use_psk(SSL* ssl, const EVP_MD* md, const unsigned char** id,
            size_t* idlen, SSL_SESSION** session) {
  *session = psk_session(ssl, md);
  *id = psk_identity;
  *idlen = sizeof(psk_identity) - 1;
  return 1;
}

int find_psk(SSL* ssl, const unsigned char* id, size_t idlen,
             SSL_SESSION** session) {
  *session = idlen == sizeof(psk_identity) - 1
                 && std::memcmp(id, psk_identity, idlen) == 0
               ? psk_session(ssl, nullptr)
               : nullptr; // an unknown identity: the handshake fails
  return 1;
}

SSL_CTX* new_context(bool server) {
  auto* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr)
    throw error(errc::spawn_failed, "TLS: no context: " + openssl_reason());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0); // no resumption: nothing after the handshake
  return ctx;
}

SSL_CTX* psk_context(bool server, const secret& key) {
  auto* ctx = new_context(server);
  // The suites of the PSK's hash (SHA-256): a server choosing one of
  // SHA-384 would not use the PSK.
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                "TLS_CHACHA20_POLY1305_SHA256");
  auto* psk = new std::array<std::uint8_t, 32>(psk_of(key)); // lives with ctx
  SSL_CTX_set_ex_data(ctx, psk_index(), psk);
  if (server)
    SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
  else
    SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
  return ctx;
}

void check_file(const std::string& what, const std::string& path) {
  if (path.empty())
    throw error(errc::invalid_argument, "TLS: no " + what + " file given");
  if (::access(path.c_str(), R_OK) != 0)
    throw error(errc::invalid_argument, "TLS: cannot read the " + what
                                          + " file " + path + ": "
                                          + std::strerror(errno));
}

SSL_CTX* certificate_context(bool server, const certificates& c) {
  auto* ctx = new_context(server);
  auto fail = [&](const std::string& what) {
    auto reason = openssl_reason();
    SSL_CTX_free(ctx);
    throw error(errc::invalid_argument, "TLS: " + what + ": " + reason);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, c.certificate.c_str()) != 1)
    fail("the certificate " + c.certificate + " cannot be used");
  if (SSL_CTX_use_PrivateKey_file(ctx, c.private_key.c_str(), SSL_FILETYPE_PEM)
      != 1)
    fail("the private key " + c.private_key + " cannot be used");
  if (SSL_CTX_check_private_key(ctx) != 1)
    fail("the private key " + c.private_key + " does not match the "
         "certificate " + c.certificate);
  if (SSL_CTX_load_verify_locations(ctx, c.ca.c_str(), nullptr) != 1)
    fail("the CA " + c.ca + " cannot be used");
  auto* own = SSL_CTX_get0_certificate(ctx);
  if (X509_cmp_current_time(X509_get0_notAfter(own)) <= 0)
    fail("the certificate " + c.certificate + " has expired");
  if (X509_cmp_current_time(X509_get0_notBefore(own)) >= 0)
    fail("the certificate " + c.certificate + " is not valid yet");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  return ctx;
}

SSL_CTX* context_for(bool server, const secret& key) {
  auto& s = the_settings();
  std::lock_guard<std::mutex> guard{s.mtx};
  if (s.certs)
    return server ? s.cert_server : s.cert_client;
  auto i = s.psk.find(key);
  if (i == s.psk.end())
    i = s.psk.emplace(key, std::make_pair(psk_context(false, key),
                                          psk_context(true, key)))
          .first;
  return server ? i->second.second : i->second.first;
}

bool is_loopback(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) {
    auto& in = reinterpret_cast<const sockaddr_in&>(a);
    return (ntohl(in.sin_addr.s_addr) >> 24) == 127;
  }
  if (a.ss_family == AF_INET6) {
    auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
    if (IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr))
      return true;
    return IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) && in6.sin6_addr.s6_addr[12] == 127;
  }
  return a.ss_family == AF_UNIX;
}

std::atomic<bool> loopback_too{false}; // tls_on_loopback

} // namespace

void use_certificates(const std::string& ca, const std::string& certificate,
                      const std::string& private_key) {
  certificates wanted{ca, certificate, private_key};
  check_file("CA", ca);
  check_file("certificate", certificate);
  check_file("private key", private_key);
  auto& s = the_settings();
  std::lock_guard<std::mutex> guard{s.mtx};
  if (s.certs) {
    if (*s.certs == wanted)
      return;
    throw error(errc::invalid_argument,
                "TLS: this process uses the certificate " + s.certs->certificate
                  + " already; one set of certificates per process");
  }
  ERR_clear_error();
  auto* client = certificate_context(false, wanted);
  SSL_CTX* server = nullptr;
  try {
    server = certificate_context(true, wanted);
  } catch (...) {
    SSL_CTX_free(client);
    throw;
  }
  s.cert_client = client;
  s.cert_server = server;
  s.certs = std::make_unique<certificates>(std::move(wanted));
}

void tls_from_environment() {
  auto get = [](const char* name) {
    auto* v = std::getenv(name);
    return std::string{v != nullptr ? v : ""};
  };
  auto ca = get("ACTORS_TLS_CA");
  auto cert = get("ACTORS_TLS_CERTIFICATE");
  auto key = get("ACTORS_TLS_PRIVATE_KEY");
  plaintext_asked(); // says so at start, if asked
  if (ca.empty() && cert.empty() && key.empty())
    return;
  if (ca.empty() || cert.empty() || key.empty())
    throw error(errc::invalid_argument,
                "TLS: ACTORS_TLS_CA, ACTORS_TLS_CERTIFICATE and "
                "ACTORS_TLS_PRIVATE_KEY go together; some are not set");
  use_certificates(ca, cert, key);
}

void tls_on_loopback(bool on) noexcept {
  loopback_too = on;
}

bool tls_between(const sockaddr_storage& local, const sockaddr_storage& peer) {
  if (loopback_too.load() && local.ss_family != AF_UNIX)
    return true;
  return !is_loopback(local) && !is_loopback(peer) && !plaintext_asked();
}

bool tls_needed(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t a = sizeof(local), b = sizeof(peer);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &a) != 0
      || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &b) != 0)
    return false; // not connected: nothing will go over it anyway
  return tls_between(local, peer);
}

// -- a session on memory buffers -----------------------------------------------

struct tls_session::impl {
  SSL* ssl = nullptr;
  BIO* in = nullptr;  // ciphertext from the peer (owned by ssl)
  BIO* out = nullptr; // ciphertext to the peer (owned by ssl)
  std::vector<std::uint8_t> pending;
  bool server = false;

  ~impl() {
    SSL_free(ssl);
  }
};

tls_session::tls_session(bool server, const secret& key)
  : impl_(std::make_unique<impl>()) {
  ERR_clear_error();
  auto* ctx = context_for(server, key);
  impl_->server = server;
  impl_->ssl = SSL_new(ctx);
  impl_->in = BIO_new(BIO_s_mem());
  impl_->out = BIO_new(BIO_s_mem());
  if (impl_->ssl == nullptr || impl_->in == nullptr || impl_->out == nullptr) {
    BIO_free(impl_->in);
    BIO_free(impl_->out);
    throw error(errc::spawn_failed, "TLS: no session: " + openssl_reason());
  }
  BIO_set_mem_eof_return(impl_->in, -1); // empty: "retry", not end of file
  SSL_set_bio(impl_->ssl, impl_->in, impl_->out);
  if (server)
    SSL_set_accept_state(impl_->ssl);
  else
    SSL_set_connect_state(impl_->ssl);
}

tls_session::~tls_session() = default;

void tls_session::feed(const std::uint8_t* data, std::size_t size) {
  if (size > 0)
    BIO_write(impl_->in, data, static_cast<int>(size));
}

void tls_session::collect() {
  auto n = BIO_ctrl_pending(impl_->out);
  if (n == 0)
    return;
  auto at = impl_->pending.size();
  impl_->pending.resize(at + n);
  auto got = BIO_read(impl_->out, impl_->pending.data() + at,
                      static_cast<int>(n));
  impl_->pending.resize(at + static_cast<std::size_t>(std::max(got, 0)));
}

tls_session::step tls_session::handshake() {
  ERR_clear_error(); // this connection's errors only
  auto rc = SSL_do_handshake(impl_->ssl);
  collect(); // an alert too, so that the peer learns why
  if (rc == 1)
    return step::done;
  auto err = SSL_get_error(impl_->ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return step::want_more;
  why_ = openssl_reason();
  return step::failed;
}

long tls_session::read(std::uint8_t* buf, std::size_t size) {
  ERR_clear_error();
  auto rc = SSL_read(impl_->ssl, buf, static_cast<int>(size));
  collect();
  if (rc > 0)
    return rc;
  auto err = SSL_get_error(impl_->ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return 0;
  if (err == SSL_ERROR_ZERO_RETURN)
    return -1;
  why_ = openssl_reason();
  return -2;
}

bool tls_session::write(const std::uint8_t* data, std::size_t size) {
  ERR_clear_error();
  // A memory BIO takes everything: one call writes it all.
  auto rc = size == 0 ? 1
                      : SSL_write(impl_->ssl, data, static_cast<int>(size));
  collect();
  if (rc > 0)
    return true;
  why_ = openssl_reason();
  return false;
}

void tls_session::close() {
  ERR_clear_error();
  SSL_shutdown(impl_->ssl);
  collect();
  ERR_clear_error();
}

std::vector<std::uint8_t>& tls_session::output() {
  return impl_->pending;
}

// -- the pump ------------------------------------------------------------------

namespace {

// Sends what `out` holds, as far as the socket takes it now; false on an
// error (its errno in `err`).
bool send_some(int fd, std::vector<std::uint8_t>& out, int& err) {
  while (!out.empty()) {
    auto n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out.erase(out.begin(), out.begin() + n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return true;
    } else {
      err = n < 0 ? errno : EPIPE;
      return false;
    }
  }
  return true;
}

constexpr std::size_t chunk = 16 * 1024;        // one TLS record at most
constexpr std::size_t backlog = 256 * 1024;     // ciphertext waiting, at most

struct connection {
  unique_fd tcp;
  unique_fd plain; // the pump's end of the socketpair
  ino_t user = 0;  // the inode of the user's end
  std::unique_ptr<tls_session> tls;
  std::vector<std::uint8_t> to_user; // decrypted, not yet taken
  std::size_t to_user_at = 0;
  bool fresh = true;      // not served yet: the session may hold data already
  bool in_done = false;   // the peer's stream ended (close_notify, EOF, error)
  bool out_done = false;  // the user's stream ended: close_notify queued
  bool user_told = false; // shutdown(plain, SHUT_WR) done
  bool tcp_shut = false;  // shutdown(tcp, SHUT_WR) done
  int failure = 0;        // the errno that ended TCP
};

class pump {
public:
  static pump& get() {
    static std::atomic<pump*> instance{nullptr};
    static std::atomic<pid_t> owner{0};
    static std::mutex mtx;
    auto pid = ::getpid();
    auto* p = instance.load();
    if (p != nullptr && owner.load() == pid)
      return *p;
    std::lock_guard<std::mutex> guard{mtx};
    p = instance.load();
    if (p == nullptr || owner.load() != pid) {
      // First use, or a forked child: its copy of the parent's pump has no
      // thread; it is left as it is (its mutex may have been held).
      p = new pump;
      instance = p;
      owner = pid;
    }
    return *p;
  }

  unique_fd add(unique_fd tcp, std::unique_ptr<tls_session> tls) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
      throw error(errc::spawn_failed, std::string{"TLS: no socketpair: "}
                                        + std::strerror(errno));
    unique_fd mine{pair[0]}, theirs{pair[1]};
    ::fcntl(mine.get(), F_SETFL, ::fcntl(mine.get(), F_GETFL) | O_NONBLOCK);
    ::fcntl(tcp.get(), F_SETFL, ::fcntl(tcp.get(), F_GETFL) | O_NONBLOCK);
    int one = 1;
    ::setsockopt(tcp.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct stat st {};
    ::fstat(theirs.get(), &st);
    auto c = std::make_unique<connection>();
    c->tcp = std::move(tcp);
    c->plain = std::move(mine);
    c->user = st.st_ino;
    c->tls = std::move(tls);
    {
      std::lock_guard<std::mutex> guard{mtx_};
      start_locked();
      by_user_[c->user] = c.get();
      fresh_.push_back(std::move(c));
    }
    wake();
    return theirs;
  }

  bool with_transport(int user_fd, void (*fn)(int, const void*),
                      const void* arg) {
    struct stat st {};
    if (::fstat(user_fd, &st) != 0 || !S_ISSOCK(st.st_mode))
      return false;
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = by_user_.find(st.st_ino);
    if (i == by_user_.end())
      return false;
    fn(i->second->tcp.get(), arg);
    return true;
  }

  int failure(int user_fd) {
    struct stat st {};
    if (::fstat(user_fd, &st) != 0)
      return 0;
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = by_user_.find(st.st_ino);
    return i == by_user_.end() ? 0 : i->second->failure;
  }

  std::size_t size() {
    std::lock_guard<std::mutex> guard{mtx_};
    return by_user_.size();
  }

private:
  pump() = default; // lives as long as the process: threads may use it late

  void start_locked() {
    if (thread_.joinable())
      return;
    wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_)
      throw error(errc::spawn_failed, std::string{"TLS: no eventfd: "}
                                        + std::strerror(errno));
    try {
      thread_ = std::thread{[this] { run(); }};
    } catch (const std::system_error& e) {
      wake_.reset();
      throw error(errc::spawn_failed, "TLS: no thread: " + e.code().message());
    }
    pid_ = ::getpid();
    // Stopped before OpenSSL's own exit handler (registered earlier, by
    // the session made before the first connection) frees its state.
    static std::atomic<pump*> current{nullptr};
    if (current.exchange(this) == nullptr)
      std::atexit([] {
        if (auto* p = current.load(); p != nullptr && p->pid_ == ::getpid())
          p->stop();
      });
  }

  void stop() {
    std::unique_lock<std::mutex> guard{mtx_};
    if (!thread_.joinable() || stopping_)
      return;
    stopping_ = true;
    guard.unlock();
    wake();
    thread_.join();
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof(one));
  }

  // Records how TCP ended (under the lock: far_end_failure reads it).
  void end_input(connection& c, int err) {
    c.in_done = true;
    if (err != 0 && c.failure == 0) {
      std::lock_guard<std::mutex> guard{mtx_};
      c.failure = err;
    }
  }

  // Makes every step that can be made now without blocking.
  void progress(connection& c) {
    std::uint8_t buf[chunk];
    for (bool moved = true; moved;) {
      moved = false;
      // Peer -> user: decrypt one record when the last one was taken.
      if (c.to_user_at == c.to_user.size() && !c.in_done) {
        auto n = c.tls->read(buf, sizeof(buf));
        if (n > 0) {
          c.to_user.assign(buf, buf + n);
          c.to_user_at = 0;
          moved = true;
        } else if (n == -1) {
          end_input(c, 0); // close_notify
        } else if (n == -2) {
          end_input(c, EPROTO); // forged or broken: the stream ends here
        } else {
          auto got = ::recv(c.tcp.get(), buf, sizeof(buf), MSG_DONTWAIT);
          if (got > 0) {
            c.tls->feed(buf, static_cast<std::size_t>(got));
            moved = true;
          } else if (got == 0) {
            end_input(c, 0); // the peer's process ended: EOF, as in plain
          } else if (errno != EAGAIN && errno != EINTR) {
            end_input(c, errno);
          }
        }
      }
      if (c.to_user_at < c.to_user.size()) {
        auto n = ::send(c.plain.get(), c.to_user.data() + c.to_user_at,
                        c.to_user.size() - c.to_user_at,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          c.to_user_at += static_cast<std::size_t>(n);
          moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          c.to_user_at = c.to_user.size(); // the user is gone: dropped
        }
      }
      if (c.in_done && c.to_user_at == c.to_user.size() && !c.user_told) {
        ::shutdown(c.plain.get(), SHUT_WR); // the user reads the end
        c.user_told = true;
      }
      // User -> peer, while the ciphertext backlog is small.
      if (!c.out_done && c.tls->output().size() < backlog) {
        auto n = ::recv(c.plain.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
          if (c.failure == 0 && !c.tls->write(buf, static_cast<std::size_t>(n)))
            end_input(c, EPROTO);
          if (c.failure != 0)
            c.tls->output().clear(); // nowhere to go: drained so writers never block
          moved = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          c.out_done = true;
          if (c.failure == 0)
            c.tls->close();
          moved = true;
        }
      }
      if (!c.tls->output().empty() && c.failure == 0) {
        auto before = c.tls->output().size();
        int err = 0;
        if (!send_some(c.tcp.get(), c.tls->output(), err)) {
          end_input(c, err);
          c.tls->output().clear();
        }
        moved = moved || c.tls->output().size() != before;
      }
      if (c.out_done && c.tls->output().empty() && !c.tcp_shut) {
        ::shutdown(c.tcp.get(), SHUT_WR);
        c.tcp_shut = true;
      }
    }
  }

  // Whether `c` is over: the user closed its end, or both streams ended.
  static bool finished(const connection& c, short plain_events) {
    bool user_gone = (plain_events & (POLLHUP | POLLERR)) != 0;
    bool flushed = c.tls->output().empty() || c.failure != 0;
    return (user_gone && flushed) || (c.in_done && c.out_done && flushed);
  }

  void run() {
    std::list<std::unique_ptr<connection>> all;
    std::vector<pollfd> fds;
    for (;;) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (stopping_)
          break;
        for (auto& c : fresh_)
          all.push_back(std::move(c));
        fresh_.clear();
      }
      fds.clear();
      fds.push_back({wake_.get(), POLLIN, 0});
      for (auto& c : all) {
        short tcp = 0, plain = 0;
        if (!c->in_done && c->to_user_at == c->to_user.size())
          tcp |= POLLIN;
        if (!c->tls->output().empty() && c->failure == 0)
          tcp |= POLLOUT;
        if (!c->out_done && c->tls->output().size() < backlog)
          plain |= POLLIN;
        if (c->to_user_at < c->to_user.size())
          plain |= POLLOUT;
        fds.push_back({c->tcp.get(), tcp, 0});
        fds.push_back({c->plain.get(), plain, 0});
      }
      // No spin before this sleep: 20 us of it changed nothing measurable
      // (a round trip through two pumps, 86-89 us either way).
      auto n = ::poll(fds.data(), fds.size(), -1);
      if (n < 0 && errno != EINTR)
        continue;
      if (fds[0].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_.get(), &count, sizeof(count));
      }
      size_t k = 1;
      for (auto i = all.begin(); i != all.end(); k += 2) {
        auto& c = **i;
        // Only where something happened: a process may hold many
        // connections, and a round trip should not pay for all of them.
        if (c.fresh || fds[k].revents != 0 || fds[k + 1].revents != 0)
          progress(c);
        c.fresh = false;
        if (finished(c, fds[k + 1].revents)) {
          std::lock_guard<std::mutex> guard{mtx_};
          by_user_.erase(c.user);
          i = all.erase(i); // closes both sockets under the lock
        } else {
          ++i;
        }
      }
    }
    std::lock_guard<std::mutex> guard{mtx_};
    by_user_.clear();
    all.clear();
    OPENSSL_thread_stop();
  }

  std::mutex mtx_;
  bool stopping_ = false; // at exit
  pid_t pid_ = 0;
  std::map<ino_t, connection*> by_user_;
  std::vector<std::unique_ptr<connection>> fresh_;
  unique_fd wake_;
  std::thread thread_;
};

// Waits for `fd` to be ready for `events` until `deadline`.
void await(int fd, short events, std::chrono::steady_clock::time_point until) {
  for (;;) {
    auto left = deadline::at(until).poll_ms();
    if (left == 0)
      throw error(errc::timeout, "the TLS handshake did not finish in time");
    pollfd p{fd, events, 0};
    auto n = ::poll(&p, 1, left);
    if (n > 0)
      return;
    if (n < 0 && errno != EINTR)
      throw error(errc::unauthenticated, "poll failed during the TLS handshake");
  }
}

} // namespace

unique_fd tls_connect(unique_fd tcp, const secret& key, purpose p,
                      std::chrono::steady_clock::time_point deadline) {
  auto tls = std::make_unique<tls_session>(false, key);
  std::uint8_t buf[chunk];
  auto flush = [&] {
    int err = 0;
    while (!tls->output().empty()) {
      if (!send_some(tcp.get(), tls->output(), err))
        throw error(errc::unauthenticated,
                    std::string{"the peer closed during the TLS handshake: "}
                      + std::strerror(err));
      if (!tls->output().empty())
        await(tcp.get(), POLLOUT, deadline);
    }
  };
  // Feeds the session what arrives by the deadline; `closed` says why an
  // end of the connection here is a refusal.
  auto receive = [&](const char* closed) {
    await(tcp.get(), POLLIN, deadline);
    auto n = ::recv(tcp.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      throw error(errc::unauthenticated, closed);
    if (n > 0)
      tls->feed(buf, static_cast<std::size_t>(n));
  };
  for (;;) {
    auto step = tls->handshake();
    flush();
    if (step == tls_session::step::done)
      break;
    if (step == tls_session::step::failed)
      throw error(errc::unauthenticated,
                  "the TLS handshake failed (the peer holds another key or "
                  "certificate, or speaks plain text): " + tls->why());
    receive("the peer closed during the TLS handshake (it holds another "
            "key or certificate, or speaks plain text)");
  }
  const std::uint8_t hello[2] = {purpose_tag, static_cast<std::uint8_t>(p)};
  if (!tls->write(hello, sizeof(hello)))
    throw error(errc::unauthenticated, "TLS: " + tls->why());
  flush();
  // The server's verdict on our certificate comes after its Finished: it
  // says 'A' once it let us in, or sends an alert.
  for (;;) {
    std::uint8_t verdict = 0;
    auto got = tls->read(&verdict, 1);
    flush();
    if (got == 1 && verdict == 'A')
      break;
    if (got != 0)
      throw error(errc::unauthenticated,
                  "the peer refused this host over TLS (it does not trust "
                  "this certificate or key): "
                    + (tls->why().empty() ? std::string{"it closed"}
                                          : tls->why()));
    receive("the peer closed the connection after the TLS handshake (it "
            "does not trust this certificate or key)");
  }
  return pump::get().add(std::move(tcp), std::move(tls));
}

unique_fd tls_adopt(unique_fd tcp, std::unique_ptr<tls_session> session) {
  return pump::get().add(std::move(tcp), std::move(session));
}

bool with_tls_transport(int user_fd, void (*fn)(int tcp, const void* arg),
                        const void* arg) {
  return pump::get().with_transport(user_fd, fn, arg);
}

int far_end_failure(int user_fd) noexcept {
  try {
    return pump::get().failure(user_fd);
  } catch (...) {
    return 0;
  }
}

std::size_t tls_connections() noexcept {
  try {
    return pump::get().size();
  } catch (...) {
    return 0;
  }
}

} // namespace actors::detail
