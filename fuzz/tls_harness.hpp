#pragma once

// What the two TLS targets share (tls_server.cpp, tls_client.cpp): the
// input's layout, one side of a connection driven as libactors drives it
// (net/listener.cpp's serve_tls and the pump, net/tls.cpp's tls_connect
// and the pump), deterministic randomness, and the conversations between
// two in-process sessions that the seeds are cut from.
//
// The input: byte 0 is the mode, then 2 * n bytes of chunk lengths, then
// the peer's ciphertext:
//   bits 0-1: n, the number of cuts: the ciphertext arrives in n + 1
//             chunks; chunk i < n is as long as the i-th big-endian u16
//             after byte 0 (or what is left), the last one is the rest;
//   bit 2:    the side's user echoes each piece it reads (a write after
//             each read);
//   bit 3:    the side closes at the end (a close_notify).
// After each chunk: feed(), then handshake() until it reports done; then
// read() (the purpose bytes first, then as the pump does).
//
// Randomness: OpenSSL's RAND_bytes and RAND_priv_bytes (hello randoms,
// ephemeral keys) come from a counter-based stream per side, restarted for
// each session. So a side fed the peer's half of a conversation recorded in
// make_seeds sends what it sent then, and the recorded bytes stay valid
// after its ServerHello or ClientHello: the seeds reach the end of the
// handshake and the records after it (a random stream would stop every
// input at the first Finished). Only for fuzzing: the keys are known.

#define OPENSSL_SUPPRESS_DEPRECATED // RAND_METHOD: the stream below
#include <openssl/rand.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "net/auth.hpp"
#include "net/tls.hpp"
#include "seeds.hpp"

namespace fuzz::tls {

using actors::detail::purpose;
using actors::detail::secret;
using actors::detail::tls_session;

inline secret key_of(std::uint8_t salt) {
  secret k;
  for (std::size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<std::uint8_t>(i * 11 + salt);
  return k;
}

/// The key of every session under test.
inline const secret& key() {
  static const secret k = key_of(5);
  return k;
}

/// Another run's key (the seeds of a refused handshake).
inline const secret& other_key() {
  static const secret k = key_of(6);
  return k;
}

// -- deterministic randomness ---------------------------------------------------

enum class stream { other, client, server };

struct rng_state {
  std::uint64_t counter[3] = {0, 0, 0};
  int current = 0;
};

inline rng_state& rng() {
  static rng_state s;
  return s;
}

inline int rng_bytes(unsigned char* buf, int num) {
  auto& s = rng();
  for (int i = 0; i < num;) {
    // splitmix64 of (stream, counter)
    auto z = (static_cast<std::uint64_t>(s.current + 1) << 56)
             + s.counter[s.current]++;
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int k = 0; k < 8 && i < num; ++k, ++i)
      buf[i] = static_cast<unsigned char>(z >> (8 * k));
  }
  return 1;
}

inline int rng_seed(const void*, int) {
  return 1;
}

inline int rng_add(const void*, int, double) {
  return 1;
}

inline int rng_status() {
  return 1;
}

/// Makes OpenSSL's randomness the streams above, for the whole process.
inline void deterministic_randomness() {
  static RAND_METHOD method;
  method.seed = rng_seed;
  method.bytes = rng_bytes;
  method.cleanup = nullptr;
  method.add = rng_add;
  method.pseudorand = rng_bytes;
  method.status = rng_status;
  if (RAND_set_rand_method(&method) != 1)
    fail("RAND_set_rand_method");
  unsigned char probe[16], again[16];
  rng().current = 0;
  rng().counter[0] = 0;
  RAND_bytes(probe, sizeof(probe));
  rng().counter[0] = 0;
  RAND_priv_bytes(again, sizeof(again));
  if (std::memcmp(probe, again, sizeof(probe)) != 0)
    fail("OpenSSL does not take its randomness from the fuzzer's stream");
}

/// Draws from `s` from now on (from its start when `restart`).
inline void use(stream s, bool restart = false) {
  auto i = static_cast<int>(s);
  rng().current = i;
  if (restart)
    rng().counter[i] = 0;
}

/// Makes the TLS contexts of both keys now, so that no session under test
/// draws the randomness that making them takes (ticket keys).
inline void warm_up() {
  use(stream::other);
  for (auto* k : {&key(), &other_key()}) {
    tls_session a{true, *k};
    tls_session b{false, *k};
  }
}

// -- the input ------------------------------------------------------------------

constexpr std::uint8_t echo_flag = 4;
constexpr std::uint8_t close_flag = 8;

struct chunk {
  const std::uint8_t* data;
  std::size_t size;
};

struct input {
  std::uint8_t mode = 0;
  std::vector<chunk> chunks;
};

inline input split(const std::uint8_t* data, std::size_t size) {
  input in;
  if (size == 0)
    return in;
  in.mode = data[0];
  std::size_t cuts = data[0] & 3;
  std::size_t pos = 1;
  std::size_t lengths[3] = {0, 0, 0};
  for (std::size_t i = 0; i < cuts; ++i, pos += 2)
    if (pos + 1 < size)
      lengths[i] = static_cast<std::size_t>(data[pos]) << 8 | data[pos + 1];
  pos = std::min(pos, size);
  for (std::size_t i = 0; i < cuts; ++i) {
    auto n = std::min(lengths[i], size - pos);
    in.chunks.push_back({data + pos, n});
    pos += n;
  }
  in.chunks.push_back({data + pos, size - pos});
  return in;
}

/// An input of `mode` (its cut bits set here) delivering `pieces` in turn
/// (at most 4, each but the last under 64 KiB).
inline bytes encode(std::uint8_t mode, const std::vector<bytes>& pieces) {
  if (pieces.empty() || pieces.size() > 4)
    fail("encode: 1 to 4 pieces");
  bytes out{static_cast<std::uint8_t>((mode & ~3u) | (pieces.size() - 1))};
  for (std::size_t i = 0; i + 1 < pieces.size(); ++i) {
    if (pieces[i].size() > 0xffff)
      fail("encode: a piece over 64 KiB");
    out.push_back(static_cast<std::uint8_t>(pieces[i].size() >> 8));
    out.push_back(static_cast<std::uint8_t>(pieces[i].size()));
  }
  for (auto& p : pieces)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

/// `whole` cut at the given offsets (clamped, in order).
inline std::vector<bytes> cut(const bytes& whole,
                              std::vector<std::size_t> at) {
  std::vector<bytes> out;
  std::size_t from = 0;
  for (auto to : at) {
    to = std::clamp(to, from, whole.size());
    out.emplace_back(whole.begin() + static_cast<std::ptrdiff_t>(from),
                     whole.begin() + static_cast<std::ptrdiff_t>(to));
    from = to;
  }
  out.emplace_back(whole.begin() + static_cast<std::ptrdiff_t>(from),
                   whole.end());
  return out;
}

inline bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

// -- coverage of what OpenSSL did -------------------------------------------------

// OpenSSL is not instrumented: what it did to an input shows here, as
// extra features for libFuzzer (reset before each input): the step each
// chunk ended in, and the reason of a refusal (which check stopped it).
constexpr std::size_t extra_size = 4096;
__attribute__((used, section("__libfuzzer_extra_counters")))
static std::uint8_t extra_counters[extra_size];

inline void note(std::uint64_t what, const std::string& text = {}) {
  std::uint64_t h = 14695981039346656037ull ^ what;
  for (unsigned char c : text)
    h = (h ^ c) * 1099511628211ull;
  h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
  extra_counters[(h ^ (h >> 32)) % extra_size] = 1;
}

// -- one side, driven as libactors drives it --------------------------------------------

/// What a side did with an input.
struct outcome {
  bool done = false;       // the handshake finished
  bool failed = false;     // ... or failed
  bool accepted = false;   // the purpose was read and valid (server)
  bool rejected = false;   // ... or not
  std::size_t read = 0;    // application bytes read after the purpose
  bool peer_closed = false; // a close_notify arrived
  bool broken = false;      // a record failed (read() gave -2)

  bool operator==(const outcome& o) const {
    return done == o.done && failed == o.failed && accepted == o.accepted
           && rejected == o.rejected && read == o.read
           && peer_closed == o.peer_closed && broken == o.broken;
  }
};

inline const std::uint8_t reply[] = {'o', 'k'};

// The checked calls.

inline void checked_write(tls_session& s, const std::uint8_t* data,
                          std::size_t size) {
  auto before = s.output().size();
  if (s.write(data, size)) {
    if (size > 0 && s.output().size() <= before)
      fail("write() succeeded but queued no ciphertext");
  } else {
    note(10, s.why());
    if (s.why().empty())
      fail("write() failed without a reason");
  }
}

inline long checked_read(tls_session& s, std::uint8_t* buf, std::size_t size) {
  auto n = s.read(buf, size);
  if (n < -2 || n > static_cast<long>(size))
    fail("read() returned more than asked or an unknown code");
  if (n == -2 && s.why().empty())
    fail("read() failed without a reason");
  note(20 + static_cast<std::uint64_t>(n < 0 ? -n : n > 0 ? 3 : 0),
       n == -2 ? s.why() : std::string{});
  return n;
}

/// Reads after the purpose, as the pump does (a record at a time, up to
/// 16 KiB), until nothing is ready; false once the stream ended.
inline bool read_on(tls_session& s, const input& in, outcome& o) {
  static std::uint8_t buf[16 * 1024];
  for (;;) {
    auto n = checked_read(s, buf, sizeof(buf));
    if (n == 0)
      return true;
    if (n == -1) {
      o.peer_closed = true;
      return false;
    }
    if (n == -2) {
      o.broken = true;
      return false;
    }
    o.read += static_cast<std::size_t>(n);
    if (in.mode & echo_flag)
      checked_write(s, buf, static_cast<std::size_t>(n));
  }
}

/// Advances the handshake after a chunk; the output would go to the peer.
inline tls_session::step shake(tls_session& s, std::size_t chunk_index) {
  auto step = s.handshake();
  note(30 + chunk_index * 4 + static_cast<std::uint64_t>(step));
  if (step == tls_session::step::failed) {
    note(40, s.why());
    if (s.why().empty())
      fail("handshake() failed without a reason");
  }
  s.output().clear();
  return step;
}

/// The listener's side: serve_tls on each chunk (the handshake, then 'P'
/// and the purpose), then the pump with a user that answers "ok" (and
/// echoes, by the mode).
inline outcome serve(const input& in) {
  use(stream::server, true);
  tls_session s{true, key()};
  outcome o;
  std::uint8_t head[2] = {0, 0};
  std::size_t got = 0;
  bool open = true; // the connection goes on
  for (std::size_t i = 0; i < in.chunks.size() && open; ++i) {
    s.feed(in.chunks[i].data, in.chunks[i].size);
    if (!o.done) {
      auto step = shake(s, i);
      if (step == tls_session::step::failed) {
        o.failed = true;
        break; // serve_tls sends the alert and closes
      }
      o.done = step == tls_session::step::done;
      if (!o.done)
        continue;
    }
    if (!o.accepted) {
      while (got < 2) {
        auto n = checked_read(s, head + got, 2 - got);
        if (n == 0)
          break;
        if (n < 0) {
          o.broken = n == -2;
          o.peer_closed = n == -1;
          open = false;
          break;
        }
        got += static_cast<std::size_t>(n);
      }
      if (got < 2)
        continue;
      bool known = std::any_of(std::begin(actors::detail::all_purposes),
                               std::end(actors::detail::all_purposes),
                               [&](purpose p) {
                                 return static_cast<std::uint8_t>(p) == head[1];
                               });
      if (head[0] != 'P' || !known) {
        o.rejected = true;
        break; // serve_tls closes
      }
      o.accepted = true;
      note(50 + head[1]);
      checked_write(s, reply, sizeof(reply)); // tls_adopt: the user answers
      s.output().clear();
    }
    open = read_on(s, in, o);
    s.output().clear();
  }
  if (o.accepted && (in.mode & close_flag))
    s.close(); // the user closed its end
  return o;
}

/// The connecting side: tls_connect (the handshake, then 'P' and the
/// purpose), then the pump with a user that sends "ok" (and echoes, by the
/// mode).
inline outcome connect(const input& in, purpose p = purpose::node) {
  use(stream::client, true);
  tls_session c{false, key()};
  outcome o;
  if (c.handshake() != tls_session::step::want_more || c.output().empty())
    fail("a client's first handshake() sent no ClientHello");
  c.output().clear();
  bool open = true;
  for (std::size_t i = 0; i < in.chunks.size() && open; ++i) {
    c.feed(in.chunks[i].data, in.chunks[i].size);
    if (!o.done) {
      auto step = shake(c, i);
      if (step == tls_session::step::failed) {
        o.failed = true;
        break; // tls_connect throws unauthenticated
      }
      o.done = step == tls_session::step::done;
      if (!o.done)
        continue;
      const std::uint8_t hello[2] = {'P', static_cast<std::uint8_t>(p)};
      if (!c.write(hello, sizeof(hello))) {
        note(60, c.why());
        break; // tls_connect throws unauthenticated
      }
      checked_write(c, reply, sizeof(reply));
      c.output().clear();
    }
    open = read_on(c, in, o);
    c.output().clear();
  }
  if (o.done && (in.mode & close_flag))
    c.close();
  return o;
}

// -- conversations, for the seeds -----------------------------------------------------

/// A client and a server session in this process, each with its own
/// randomness stream restarted as the targets restart it, and what each
/// sent.
class pair {
public:
  pair(const secret& client_key, const secret& server_key) {
    use(stream::client, true);
    client_ = std::make_unique<tls_session>(false, client_key);
    use(stream::server, true);
    server_ = std::make_unique<tls_session>(true, server_key);
  }

  bytes client_hello, server_flight, client_finished;

  /// The handshake: true if both ends finished it.
  bool handshake() {
    use(stream::client);
    if (client_->handshake() != tls_session::step::want_more)
      return false;
    client_hello = take(*client_);
    use(stream::server);
    server_->feed(client_hello.data(), client_hello.size());
    auto s = server_->handshake();
    server_flight = take(*server_);
    if (s != tls_session::step::want_more)
      return false;
    use(stream::client);
    client_->feed(server_flight.data(), server_flight.size());
    auto c = client_->handshake();
    client_finished = take(*client_);
    if (c != tls_session::step::done)
      return false;
    use(stream::server);
    server_->feed(client_finished.data(), client_finished.size());
    return server_->handshake() == tls_session::step::done
           && take(*server_).empty();
  }

  /// The records of `data` from the client (or the server).
  bytes client_sends(const bytes& data) {
    return sends(*client_, stream::client, data);
  }
  bytes server_sends(const bytes& data) {
    return sends(*server_, stream::server, data);
  }

  /// A close_notify from the client (or the server).
  bytes client_closes() {
    use(stream::client);
    client_->close();
    return take(*client_);
  }
  bytes server_closes() {
    use(stream::server);
    server_->close();
    return take(*server_);
  }

private:
  static bytes take(tls_session& s) {
    bytes out = std::move(s.output());
    s.output().clear();
    return out;
  }

  bytes sends(tls_session& s, stream which, const bytes& data) {
    use(which);
    if (!s.write(data.data(), data.size()))
      fail("a seed's session could not write");
    return take(s);
  }

  std::unique_ptr<tls_session> client_, server_;
};

inline bytes text(const char* s) {
  return bytes(s, s + std::strlen(s));
}

inline bytes filled(std::size_t n, std::uint8_t first) {
  bytes out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::uint8_t>(first + i * 13);
  return out;
}

/// A seed and what the side under test must do with it (checked when the
/// seeds are made: the recorded conversation replays).
struct expected_seed {
  bytes input;
  outcome expect;
};

/// Adds the seeds that replay as expected to `seeds`; fails on one that
/// does not (the randomness is not deterministic, or the side changed).
template <class Drive>
void check_and_add(std::vector<bytes>& seeds,
                   const std::vector<expected_seed>& made, Drive drive) {
  for (auto& m : made) {
    auto in = split(m.input.data(), m.input.size());
    auto got = drive(in);
    if (!(got == m.expect)) {
      std::fprintf(stderr,
                   "seed %zu of %zu: done %d failed %d accepted %d rejected "
                   "%d read %zu closed %d broken %d, expected %d %d %d %d "
                   "%zu %d %d\n",
                   static_cast<std::size_t>(&m - made.data()), made.size(),
                   got.done, got.failed, got.accepted, got.rejected, got.read,
                   got.peer_closed, got.broken, m.expect.done,
                   m.expect.failed, m.expect.accepted, m.expect.rejected,
                   m.expect.read, m.expect.peer_closed, m.expect.broken);
      fail("a seed does not replay as recorded");
    }
    seeds.push_back(m.input);
  }
}

} // namespace fuzz::tls
