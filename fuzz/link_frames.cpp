// libFuzzer target: what a link reads from another process
// (libactors/src/link/): the bytes of its incoming ring, split into frames
// by frame_reader and read with read_message, read_reason and read_actor,
// as the link manager does, with a real actor system and proxy registry;
// and a hello read with read_hello.
//
// Byte 0 of the input sets the chunk size (1 to 256 bytes); the rest is the
// stream, written into a real ring (ring.cpp, 4 KiB, so it wraps) chunk by
// chunk and read out after each chunk, so that frames arrive split at every
// point. The same bytes, whole, are also read as a hello.
//
// Checked after each input, beside ASan and UBSan: the ring hands over
// exactly the bytes written, in order; the reader yields exactly the
// frames a reference splitter finds (kind, actor, body), in order, nothing
// of an incomplete one, and stops for good at the first bad header (an
// unknown kind, flags, a body over the bound) with a reason; every body
// reader returns (true or false) without touching memory it must not.
//
// Not fuzzed, by design: what the manager then does with a frame that
// reads well (it enqueues the message to a local actor, kills a proxy...):
// that is the tested behaviour of tests/link.cpp, not parsing. Proxies are
// not made here (the registry's backend makes none): a handle of another
// node reads as null, as a handle of an actor that is gone.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/proxy_registry.hpp>
#include <caf/scoped_execution_unit.hpp>

#include "base/error.hpp"
#include "link/frame_reader.hpp"
#include "link/frame_writer.hpp"
#include "link/ring.hpp"
#include "seeds.hpp"

using namespace actors::detail::links;
using fuzz::bytes;
using fuzz::fail;

namespace {

// The reader's bound on a body here: small, so that inputs reach it.
constexpr std::uint32_t max_body = 16 * 1024;

struct point {
  int x = 0;
  int y = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("point"), p.x, p.y);
}

struct config : caf::actor_system_config {
  config() {
    load<caf::io::middleman>(); // the node id
    set("middleman.workers", 0);
    set("scheduler.policy", caf::atom("sharing"));
    set("logger.verbosity", caf::atom("quiet"));
    add_message_type<point>("point");
    add_message_type<std::vector<char>>("std::vector<char>");
  }
};

struct no_proxies : caf::proxy_registry::backend {
  caf::strong_actor_ptr make_proxy(caf::node_id, caf::actor_id) override {
    return nullptr;
  }
  void set_last_hop(caf::node_id*) override {
    // nop
  }
};

// The process's actor system, for good (never destroyed: an actor system
// ending at exit would wait for its actors).
struct world {
  config cfg;
  caf::actor_system sys{cfg};
  no_proxies backend;
  caf::proxy_registry registry{sys, backend};
  caf::scoped_execution_unit unit{&sys};
  caf::strong_actor_ptr someone; // a local actor handles may name

  world() {
    unit.proxy_registry_ptr(&registry);
    // With an argument: CAF 0.17.6 dereferences an empty tuple for an actor
    // spawned without (UBSan; .ci/ubsan.supp has it for other builds).
    auto a = sys.spawn(
        [](caf::event_based_actor*, int) { return caf::behavior{[](int) {}}; },
        0);
    someone = caf::actor_cast<caf::strong_actor_ptr>(a);
    sys.registry().put(a.id(), someone);
  }
};

world& the_world() {
  static auto* w = new world;
  return *w;
}

void make_seeds(std::vector<bytes>& seeds) {
  auto& w = the_world();
  auto* ctx = &w.unit;
  auto add = [&](buffer& b) {
    seeds.emplace_back(b.begin(), b.end());
    b.clear();
  };
  buffer b;
  b.push_back(16); // chunk size
  write_message(
      b, ctx, 7, caf::make_message_id(), w.someone, {},
      caf::make_message(std::int32_t{1}, std::string{"x"}, point{2, 3}));
  add(b);
  b.push_back(3);
  write_message(b, ctx, 7, caf::make_message_id(5).response_id(), nullptr,
                {w.someone}, caf::make_message(std::vector<char>(100, 'a')));
  write_message(b, ctx, 8, caf::make_message_id(5), w.someone, {},
                caf::make_message(
                    actors::make_error(actors::errc::timeout, "t")));
  add(b);
  b.push_back(64);
  write_reason(b, ctx, frame_kind::down, 9,
               actors::make_error(actors::errc::actor_failed, "boom"));
  write_empty(b, frame_kind::monitor, 9);
  write_actor(b, ctx, frame_kind::link, 9, w.someone);
  write_actor(b, ctx, frame_kind::unlink, 9, w.someone);
  write_reason(b, ctx, frame_kind::close, 0, caf::exit_reason::user_shutdown);
  add(b);
  b.push_back(static_cast<char>(200));
  write_hello(b, ctx, w.sys.node(), 42);
  add(b);
  // A header claiming 4 GiB, an unknown kind, half a header.
  seeds.push_back(
      {1, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
  seeds.push_back({5, 0, 0, 0, 0, 99, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
  seeds.push_back({2, 16, 0, 0});
}

// The frames of `data` as the protocol defines them; `bad` if a header is.
struct reference {
  struct item {
    std::uint8_t kind;
    std::uint64_t dest;
    std::vector<char> body;
  };
  std::vector<item> frames;
  bool bad = false;

  reference(const std::uint8_t* data, std::size_t size) {
    std::size_t at = 0;
    while (size - at >= sizeof(frame_header)) {
      frame_header h;
      std::memcpy(&h, data + at, sizeof(h));
      if (!known_kind(h.kind) || h.flags != 0 || h.reserved != 0
          || h.size > max_body) {
        bad = true;
        return;
      }
      if (size - at - sizeof(h) < h.size)
        return;
      auto* p = reinterpret_cast<const char*>(data + at + sizeof(h));
      frames.push_back(item{h.kind, h.dest, std::vector<char>(p, p + h.size)});
      at += sizeof(h) + h.size;
    }
  }
};

// Reads a frame's body as the manager would; the results are not checked
// (any is fine), only that reading them is safe.
void read_body(const frame& f) {
  auto* ctx = &the_world().unit;
  switch (f.kind) {
  case frame_kind::message: {
    message_parts parts;
    caf::error content_error;
    read_message(f, ctx, parts, content_error);
    break;
  }
  case frame_kind::down:
  case frame_kind::close: {
    caf::error reason;
    read_reason(f, ctx, reason);
    break;
  }
  case frame_kind::link:
  case frame_kind::unlink: {
    caf::strong_actor_ptr who;
    read_actor(f, ctx, who);
    break;
  }
  default:
    break;
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked(make_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  if (size == 0)
    return 0;
  std::size_t chunk = static_cast<std::size_t>(data[0]) + 1;
  ++data;
  --size;
  auto& w = the_world();
  {
    caf::node_id node;
    std::uint64_t root = 0;
    read_hello(reinterpret_cast<const char*>(data), size, &w.unit, node, root);
  }
  reference expected{data, size};
  auto r = ring::create(4096);
  frame_reader reader{max_body};
  std::vector<char> passed; // what came out of the ring
  std::size_t next = 0;     // index into expected.frames
  bool bad = false;
  auto drain = [&] {
    for (;;) {
      auto n = r.readable();
      if (n < 0)
        fail("a ring written only by this process reads as broken");
      if (n > 0) {
        auto want = static_cast<std::size_t>(n);
        auto* p = reader.prepare(want);
        auto got = r.read_some(p, want);
        if (got != n)
          fail("the ring handed over less than it said it had");
        passed.insert(passed.end(), p, p + got);
        reader.commit(want);
      }
      frame f;
      auto res = reader.next(f);
      if (res == frame_reader::result::more) {
        if (n == 0)
          return;
        continue;
      }
      if (res == frame_reader::result::bad) {
        if (reader.what().empty())
          fail("a bad stream without a reason");
        bad = true;
        return;
      }
      if (bad)
        fail("a frame after a bad header");
      if (next >= expected.frames.size())
        fail("a frame the reference does not find");
      auto& e = expected.frames[next++];
      if (static_cast<std::uint8_t>(f.kind) != e.kind || f.dest != e.dest
          || f.size != e.body.size()
          || (f.size > 0 && std::memcmp(f.body, e.body.data(), f.size) != 0))
        fail("a frame differs from the reference's");
      read_body(f);
    }
  };
  for (std::size_t at = 0; at < size;) {
    auto n = r.write_some(reinterpret_cast<const char*>(data + at),
                          std::min(chunk, size - at));
    if (n <= 0)
      fail("an empty ring took nothing");
    at += static_cast<std::size_t>(n);
    drain();
    if (bad)
      break;
  }
  if (!bad
      && (passed.size() != size
          || (size > 0 && std::memcmp(passed.data(), data, size) != 0)))
    fail("the ring changed the bytes");
  if (next != expected.frames.size())
    fail("the reader missed a frame");
  if (bad != expected.bad)
    fail("the reader and the reference disagree on a bad header");
  return 0;
}
