// libFuzzer target: the client side of TLS 1.3 between hosts
// (libactors/src/net/tls.cpp, tls_session), as tls_connect runs it on the
// bytes of the host it connects to (a pool worker, a queue stream, BASP,
// actors::client), and as the pump goes on with it.
//
// Each input is one connection: the server's ciphertext, in up to four
// chunks (layout: tls_harness.hpp). A client tls_session with a fixed key
// sends its ClientHello, is fed each chunk and handshake() is called until
// it reports done; then it writes 'P' and the purpose, as tls_connect
// does, and the user's "ok"; the rest is read as the pump reads it, echoed
// back by the mode, and closed by the mode.
//
// Checked, beside ASan, UBSan and LeakSanitizer: the first handshake()
// sends a ClientHello, read() never returns more than asked or an unknown
// code, a successful write() queues ciphertext, and every failure has a
// reason. The seeds are cut from a real conversation between a client and
// a server session of this process (the randomness is a fixed stream, so
// the client under test sends the recorded ClientHello and the recorded
// server flight is valid for it): the whole flight, in pieces and cut
// short, records after it, a forged one, a close_notify, the alert of a
// server with another key, and plain text (a loopback owner's greeting).

#include "tls_harness.hpp"

using namespace fuzz::tls;
using fuzz::bytes;
using fuzz::fail;

namespace {

outcome make(bool done, std::size_t read = 0, bool closed = false,
             bool broken = false) {
  outcome o;
  o.done = done;
  o.read = read;
  o.peer_closed = closed;
  o.broken = broken;
  return o;
}

pair shaken() {
  pair p{key(), key()};
  if (!p.handshake())
    fail("the seeds' handshake between two sessions failed");
  return p;
}

void make_seeds(std::vector<bytes>& seeds) {
  std::vector<expected_seed> made;
  {
    auto p = shaken();
    auto answer = p.server_sends(text("ok\n"));
    auto bye = p.server_closes();
    made.push_back({encode(0, {cat({p.server_flight, answer, bye})}),
                    make(true, 3, true)});
  }
  {
    auto p = shaken();
    auto& flight = p.server_flight;
    auto answer = p.server_sends(text("ok\n"));
    auto more = p.server_sends(filled(17000, 3));
    auto bye = p.server_closes();
    // In pieces: a record header alone, part of the flight, the rest of it
    // with a bit of the next record, the rest.
    made.push_back({encode(echo_flag | close_flag,
                           cut(cat({flight, answer, more, bye}),
                               {5, 100, flight.size() + 3})),
                    make(true, 17003, true)});
    made.push_back({encode(0, {flight, answer, more, bye}),
                    make(true, 17003, true)});
    made.push_back({encode(0, {flight}), make(true)});
    made.push_back(
      {encode(0, {bytes(flight.begin(),
                        flight.begin()
                          + static_cast<std::ptrdiff_t>(flight.size() / 2))}),
       make(false)});
    auto forged = answer;
    forged[forged.size() / 2] ^= 0x80;
    made.push_back({encode(echo_flag, {cat({flight, forged})}),
                    make(true, 0, false, true)});
    // A replayed record.
    made.push_back({encode(0, {cat({flight, answer, answer})}),
                    make(true, 3, false, true)});
  }
  // A server with another key: its alert.
  {
    pair p{key(), other_key()};
    if (p.handshake())
      fail("a handshake between two keys succeeded");
    auto o = make(false);
    o.failed = true;
    made.push_back({encode(0, {p.server_flight}), o});
  }
  // Plain text: a loopback owner's greeting (magic and nonce).
  {
    auto greeting = text("ACTORS01");
    auto nonce = filled(32, 1);
    greeting.insert(greeting.end(), nonce.begin(), nonce.end());
    auto o = make(false);
    o.failed = true;
    made.push_back({encode(0, {greeting}), o});
  }
  made.push_back({encode(0, {bytes{}}), make(false)});
  check_and_add(seeds, made, [](const input& in) { return connect(in); });
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deterministic_randomness();
  warm_up();
  fuzz::write_seeds_if_asked(make_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  if (size == 0)
    return -1;
  connect(split(data, size));
  return 0;
}
