// libFuzzer target: the server side of TLS 1.3 between hosts
// (libactors/src/net/tls.cpp, tls_session), as the listener's serve_tls
// (net/listener.cpp) runs it on the bytes of whoever connects to the
// owner's port from another host, and as the pump goes on with it.
//
// Each input is one connection: the client's ciphertext, in up to four
// chunks (layout: tls_harness.hpp). A server tls_session with a fixed key
// is fed each chunk and handshake() is called until it reports done; then
// 'P' and the purpose are read (up to 2 bytes, over as many reads as the
// records take), a wrong one ends the connection as serve_tls does; after
// a valid one the user answers "ok" (write()), and the rest is read as the
// pump reads it, echoed back by the mode, and closed by the mode.
//
// Checked, beside ASan, UBSan and LeakSanitizer: read() never returns more
// than asked or an unknown code, a successful write() queues ciphertext,
// and every failure has a reason. The seeds are cut from a real
// conversation between a client and a server session of this process (the
// randomness is a fixed stream, so the recorded Finished and records are
// valid for the server under test): a ClientHello alone, the whole
// handshake, each purpose and a wrong one, records in pieces, a replayed
// and a forged record, a close_notify, another key's ClientHello, plain text.

#include "tls_harness.hpp"

using namespace fuzz::tls;
using fuzz::bytes;
using fuzz::fail;

namespace {

outcome make(bool done, bool accepted = false, std::size_t read = 0,
             bool closed = false, bool broken = false) {
  outcome o;
  o.done = done;
  o.accepted = accepted;
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
  auto u8 = [](purpose p) { return static_cast<std::uint8_t>(p); };
  {
    auto p = shaken();
    auto& ch = p.client_hello;
    auto& fin = p.client_finished;
    auto head = p.client_sends({'P', u8(purpose::node)});
    auto data = p.client_sends(text("hello"));
    auto bye = p.client_closes();
    auto all = cat({ch, fin, head, data, bye});
    made.push_back({encode(0, {all}), make(true, true, 5, true)});
    // In pieces: a record header alone, the rest of the ClientHello, the
    // Finished with a byte of the next record, the rest.
    made.push_back({encode(echo_flag | close_flag,
                           cut(all, {5, ch.size(), ch.size() + fin.size() + 1})),
                    make(true, true, 5, true)});
    made.push_back({encode(0, {ch}), make(false)});
    made.push_back({encode(0, {ch, fin}), make(true)});
    made.push_back({encode(close_flag, {cat({ch, fin, head})}),
                    make(true, true)});
    // A replayed record, and a forged one.
    made.push_back({encode(0, {cat({ch, fin, head, data, data})}),
                    make(true, true, 5, false, true)});
    auto forged = data;
    forged.back() ^= 1;
    made.push_back({encode(0, {cat({ch, fin, head, forged})}),
                    make(true, true, 0, false, true)});
  }
  {
    // 'P' and the purpose in two records; then 17000 bytes (2 records).
    auto p = shaken();
    auto tag = p.client_sends({'P'});
    auto kind = p.client_sends({u8(purpose::worker)});
    auto big = p.client_sends(filled(17000, 7));
    auto bye = p.client_closes();
    made.push_back({encode(echo_flag, {p.client_hello,
                                       cat({p.client_finished, tag}),
                                       cat({kind, big}), bye}),
                    make(true, true, 17000, true)});
  }
  for (auto k : {purpose::hub, purpose::lock, purpose::connection}) {
    auto p = shaken();
    auto head = p.client_sends({'P', u8(k)});
    auto data = p.client_sends(filled(100, u8(k)));
    made.push_back({encode(echo_flag, {cat({p.client_hello,
                                            p.client_finished, head, data})}),
                    make(true, true, 100)});
  }
  // Wrong purposes: another tag, an unknown purpose.
  for (bytes head : {bytes{'X', 0}, bytes{'P', 200}}) {
    auto p = shaken();
    auto rec = p.client_sends(head);
    auto o = make(true);
    o.rejected = true;
    made.push_back(
      {encode(0, {cat({p.client_hello, p.client_finished, rec})}), o});
  }
  // Another run's key: the PSK binder is wrong.
  {
    pair p{other_key(), key()};
    if (p.handshake())
      fail("a handshake between two keys succeeded");
    auto o = make(false);
    o.failed = true;
    made.push_back({encode(0, {p.client_hello}), o});
  }
  // Plain text: the key handshake's proof (a loopback peer's), HTTP.
  {
    auto o = make(false);
    o.failed = true;
    made.push_back({encode(0, {filled(64, 0x41)}), o});
    made.push_back(
      {encode(0, {text("GET / HTTP/1.1\r\nHost: x\r\n\r\n")}), o});
  }
  made.push_back({encode(0, {bytes{}}), make(false)});
  check_and_add(seeds, made, [](const input& in) { return serve(in); });
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
  auto o = serve(split(data, size));
  if (o.accepted && !o.done)
    fail("a purpose was read before the handshake finished");
  return 0;
}
