// libFuzzer target: a direct channel (libactors/src/wire/channel.cpp) reading
// its stream, frames [u32 size][u8 kind][body], with fill() and next(), and
// the bodies the pool reads from them with channel::get (pool.cpp): in a
// worker, a task (u64 id, closure); in the owner, an outcome (outcome, u32
// microseconds) or an initializer's failure (a string); other kinds (a
// remote worker's empty alive frame among them) are skipped. Bodies are read
// with the library's own inspect functions (closure, value, outcome), as
// CAF-serialized values, without an actor system (as a worker does before
// its node starts).
//
// Byte 0 of the input sets the chunk size (1 to 256 bytes); the rest is the
// stream, written into a socket pair chunk by chunk, the channel reading
// after each chunk, so that frames arrive split at every point. At the end
// the writer hangs up.
//
// Checked after each input, beside ASan and UBSan: the channel yields
// exactly the complete frames of the stream, in order, with their bytes, and
// nothing of a trailing incomplete one; it stays open while the writer is
// and ends when the writer hangs up.
//
// Not fuzzed, by design:
// * A closure or value names the code that loads it by its address in the
//   binary (module + offset): the channel's peer is the process's own
//   parent or child, running the same binary. A body naming a loader at an
//   arbitrary offset would have that code called. So a body is read in
//   full only when it names no loader or one this binary made (closures of
//   the three functions and values of the four types below; libFuzzer's
//   comparison tracing finds their offsets, and .ci/fuzz writes seeds made
//   by the binary it built); otherwise only its code references are read
//   and resolved (from_code_ref), never called.
// * A frame header declaring more than 1 MiB is cut to its size modulo
//   1 MiB + 1: the channel allocates a frame's declared size (up to 4 GiB,
//   by design) before the body arrives, which would only exhaust memory.

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/detail/closure.hpp"
#include "actors/detail/pool_core.hpp"
#include "actors/detail/value.hpp"
#include "wire/channel.hpp"
#include "seeds.hpp"
#include "pool/worker.hpp" // the kinds of frames on a pool worker's channel

using namespace actors::detail;
using fuzz::bytes;
using fuzz::fail;

namespace {


constexpr std::uint32_t max_frame = 1 << 20;

// -- the code this binary knows ------------------------------------------------

int add(int a, int b) {
  return a + b;
}

std::size_t count_words(std::vector<std::string> words, std::string sep) {
  return words.size() + sep.size();
}

using table = std::map<std::string, std::vector<double>>;

double weigh(table t, std::uint64_t scale) {
  return static_cast<double>(t.size() * scale);
}

closure sample_task(int i) {
  switch (i) {
    case 0:
      return closure::bind_task(add, 2, 3);
    case 1:
      return closure::bind_task(count_words,
                                std::vector<std::string>{"a", "bc", ""},
                                std::string{", "});
    default:
      return closure::bind_task(weigh, table{{"x", {1.5, -2.0}}, {"", {}}},
                                std::uint64_t{7});
  }
}

value sample_value(int i) {
  switch (i) {
    case 0:
      return value::make(42);
    case 1:
      return value::make(std::string{"a result"});
    case 2:
      return value::make(std::vector<std::uint64_t>{1, 2, 3});
    default:
      return value::make(table{{"k", {0.25}}});
  }
}

template <class T>
bytes serialize(T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (sink(x))
    fail("cannot serialize a sample");
  return bytes(buf.begin(), buf.end());
}

bool same(const code_ref& x, const code_ref& y) {
  return x.module == y.module && x.offset == y.offset;
}

// The loaders of the sample closures and values, read back from their
// serialized form (flag, loader, ...).
struct known_code {
  std::vector<code_ref> calls;
  std::vector<code_ref> values;
  known_code() {
    for (int i = 0; i < 3; ++i) {
      auto c = sample_task(i);
      auto buf = serialize(c);
      caf::binary_deserializer source{nullptr, buf};
      bool present = false;
      code_ref loader;
      if (source(present, loader) || !present)
        fail("cannot read a sample closure back");
      calls.push_back(loader);
    }
    for (int i = 0; i < 4; ++i) {
      auto v = sample_value(i);
      auto buf = serialize(v);
      caf::binary_deserializer source{nullptr, buf};
      bool present = false;
      code_ref loader;
      if (source(present, loader) || !present)
        fail("cannot read a sample value back");
      values.push_back(loader);
    }
  }
  static bool among(const std::vector<code_ref>& xs, const code_ref& x) {
    for (auto& y : xs)
      if (same(x, y))
        return true;
    return false;
  }
};

const known_code& known() {
  static known_code instance;
  return instance;
}

// -- reading bodies as the pool does ---------------------------------------------

void read_body(channel& ch, const channel::frame& f) {
  // A first look, to see which code the body names.
  caf::binary_deserializer peek{nullptr, f.data, f.size};
  switch (f.kind) {
    case task_frame: { // a worker: ch.get(frame, id, call)
      std::uint64_t id = 0;
      bool present = false;
      if (peek(id, present))
        return; // the real read fails the same way: see a seed
      if (present) {
        code_ref loader, fn;
        if (peek(loader, fn))
          return;
        if (!known_code::among(known().calls, loader)) {
          from_code_ref(loader);
          from_code_ref(fn);
          return;
        }
      }
      closure call;
      auto err = ch.get(f, id, call);
      if (!err && static_cast<bool>(call) != present)
        fail("a task read back differs from its flag");
      return;
    }
    case outcome_frame: { // the owner: ch.get(frame, outcome, micros)
      std::uint64_t task = 0;
      bool ok = false;
      bool present = false;
      if (peek(task, ok, present))
        return;
      if (present) {
        code_ref loader;
        if (peek(loader))
          return;
        if (!known_code::among(known().values, loader)) {
          from_code_ref(loader);
          return;
        }
      }
      outcome o;
      std::uint32_t micros = 0;
      auto err = ch.get(f, o, micros);
      if (!err && o.task != task)
        fail("an outcome read back differs from its first look");
      return;
    }
    case init_failed_frame: { // the owner: ch.get(frame, what)
      std::string what;
      ch.get(f, what);
      return;
    }
    default:
      return; // the pool ignores other kinds
  }
}

// -- seeds: frames as the library writes them -----------------------------------

template <class F>
bytes frames(F put_all) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    fail("socketpair");
  {
    channel ch{fds[0]};
    put_all(ch);
    if (!ch.flush(true))
      fail("cannot write seed frames");
  } // closes fds[0]
  bytes result;
  char buf[4096];
  for (;;) {
    auto n = ::read(fds[1], buf, sizeof(buf));
    if (n <= 0)
      break;
    result.insert(result.end(), buf, buf + n);
  }
  ::close(fds[1]);
  return result;
}

bytes with_chunk(std::uint8_t chunk, const bytes& stream) {
  bytes result{chunk};
  result.insert(result.end(), stream.begin(), stream.end());
  return result;
}

void make_seeds(std::vector<bytes>& seeds) {
  std::vector<bytes> streams;
  for (int i = 0; i < 3; ++i)
    streams.push_back(frames([&](channel& ch) {
      std::uint64_t id = static_cast<std::uint64_t>(i) + 1;
      auto call = sample_task(i);
      ch.put(task_frame, id, call);
    }));
  streams.push_back(frames([](channel& ch) {
    std::uint64_t id = 9;
    closure none;
    ch.put(task_frame, id, none);
  }));
  for (int i = 0; i < 4; ++i)
    streams.push_back(frames([&](channel& ch) {
      outcome o;
      o.task = static_cast<std::uint64_t>(i) + 1;
      o.ok = true;
      o.result = sample_value(i);
      std::uint32_t micros = 1500;
      ch.put(outcome_frame, o, micros);
    }));
  streams.push_back(frames([](channel& ch) {
    outcome o;
    o.task = 5;
    o.ok = false;
    o.code = actors::errc::task_failed;
    o.what = "std::runtime_error: boom";
    std::uint32_t micros = 0;
    ch.put(outcome_frame, o, micros);
  }));
  streams.push_back(frames([](channel& ch) {
    std::string what = "std::logic_error: the initializer failed";
    ch.put(init_failed_frame, what);
  }));
  // Several frames in a row, one of a kind the pool ignores.
  streams.push_back(frames([](channel& ch) {
    std::uint64_t id = 1;
    auto call = sample_task(0);
    ch.put(task_frame, id, call);
    outcome o;
    o.task = 1;
    o.ok = true;
    o.result = sample_value(0);
    std::uint32_t micros = 3;
    ch.put(outcome_frame, o, micros);
    std::string junk = "ignored";
    ch.put(200, junk);
    ch.put(alive_frame); // a remote worker's proof of life: empty
    std::string what = "x";
    ch.put(init_failed_frame, what);
  }));
  // Edge cases by hand: an empty frame, a header cut short, a frame
  // declaring 4 GiB, a frame whose body ends early.
  streams.push_back(bytes{0, 0, 0, 0, init_failed_frame});
  streams.push_back(bytes{3, 0, 0});
  streams.push_back(bytes{0xff, 0xff, 0xff, 0xff, task_frame, 1, 2, 3});
  streams.push_back(bytes{40, 0, 0, 0, outcome_frame, 1, 0, 0, 0});
  for (auto& s : streams) {
    seeds.push_back(with_chunk(255, s));
    seeds.push_back(with_chunk(0, s));
    seeds.push_back(with_chunk(6, s));
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked(make_seeds);
  known(); // computed once, outside the inputs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  if (size == 0)
    return -1;
  size_t chunk = static_cast<size_t>(data[0]) + 1;
  bytes stream(data + 1, data + size);
  // The frames the stream holds, walked here independently of the channel;
  // oversized declarations are cut (see above).
  struct expected {
    std::uint8_t kind;
    size_t offset;
    size_t size;
  };
  std::vector<expected> want;
  for (size_t pos = 0; stream.size() - pos >= 5;) {
    std::uint32_t n;
    std::memcpy(&n, stream.data() + pos, sizeof(n));
    if (n > max_frame) {
      n %= max_frame + 1;
      std::memcpy(stream.data() + pos, &n, sizeof(n));
    }
    if (stream.size() - pos - 5 < n)
      break;
    want.push_back({stream[pos + 4], pos + 5, n});
    pos += 5 + n;
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    fail("socketpair");
  size_t got = 0;
  {
    channel ch{fds[0]};
    auto drain = [&] {
      while (auto f = ch.next()) {
        if (got == want.size())
          fail("the channel yielded a frame the stream does not hold");
        auto& w = want[got++];
        if (f->kind != w.kind || f->size != w.size
            || (w.size > 0
                && std::memcmp(f->data, stream.data() + w.offset, w.size)
                     != 0))
          fail("the channel yielded a frame that differs from the stream's");
        read_body(ch, *f);
      }
    };
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      auto n = std::min(chunk, stream.size() - pos);
      if (::write(fds[1], stream.data() + pos, n) != static_cast<ssize_t>(n))
        fail("cannot write a chunk");
      if (!ch.fill(false))
        fail("the channel ended while its writer was open");
      drain();
    }
    ::shutdown(fds[1], SHUT_WR);
    for (int round = 0;; ++round) {
      auto open = ch.fill(false);
      drain();
      if (!open)
        break;
      if (round == 8)
        fail("the channel does not end when its writer hangs up");
    }
  } // closes fds[0]
  ::close(fds[1]);
  if (got != want.size())
    fail("the channel missed a complete frame");
  return 0;
}
