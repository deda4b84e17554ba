// libFuzzer target: a queue hub (libactors/src/queue/hub_*.cpp) reached by a
// stranger. The hub serves an abstract Unix socket whose name any local
// process can read in /proc/net/unix; until a connection has sent a hello
// with the hub's 128-bit key and a one-word memfd of its own, the hub reads
// its frames, [u32 size][u8 kind][body], and must answer nothing, land
// nothing, allocate no more than a hello's size whatever a header claims,
// and hang up. The input is what the stranger sends, after which it hangs
// up its side.
//
// Checked after each input, beside ASan and UBSan: not one byte comes back,
// the hub closes the connection within 5 s, and the queue it serves is
// still empty and unclosed.
//
// Not fuzzed, by design: frames after a correct hello. Only a process of
// the run holds the key (queue handles carry it), and its frames name the
// code that loads an item by its offset in the binary, as a pool worker's
// do: see channel_frames.cpp.

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wire/channel.hpp"
#include "queue/queue_core.hpp"
#include "queue/queue_hub.hpp"
#include "io.hpp"
#include "seeds.hpp"

using namespace actors::detail;
using fuzz::bytes;
using fuzz::fail;

namespace {

constexpr std::uint64_t queue_id = 1;

struct served {
  queue_hub hub;
  std::shared_ptr<queue_core> core = std::make_shared<queue_core>(0, nullptr);
  served() {
    hub.add(queue_id, core);
  }
};

served& target() {
  static served instance;
  return instance;
}

int dial(const std::string& name) {
  auto fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                                    + name.size());
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0)
    fail("cannot connect to the hub");
  return fd;
}

// Frames as a stranger would write them (through a channel and a socket
// pair, so that the bytes are the library's own encoding).
template <class... Ts>
bytes frame(std::uint8_t kind, Ts... xs) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    fail("socketpair");
  {
    channel ch{pair[0]};
    if (ch.put(kind, xs...) || !ch.flush(true))
      fail("cannot write a frame");
  }
  bytes out(4096);
  auto n = ::recv(pair[1], out.data(), out.size(), 0);
  ::close(pair[1]);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

void make_seeds(std::vector<bytes>& seeds) {
  namespace k = hub_frame;
  // A hello with a guessed key, and with the guessed key and no word.
  seeds.push_back(frame(k::hello, std::uint64_t{1}, std::uint64_t{2},
                        std::int32_t{-1}));
  seeds.push_back(frame(k::hello, std::uint64_t{0}, std::uint64_t{0},
                        std::int32_t{0}));
  // Operations before any hello.
  seeds.push_back(frame(k::get, std::uint64_t{1}, queue_id, std::int64_t{0}));
  seeds.push_back(frame(k::size, std::uint64_t{1}, queue_id));
  seeds.push_back(frame(k::close, std::uint64_t{1}, queue_id));
  // A header claiming 4 GiB, and half a header.
  seeds.push_back({0xff, 0xff, 0xff, 0xff, k::hello});
  seeds.push_back({0x14, 0x00});
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked(make_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  auto& t = target();
  auto fd = dial(t.hub.address());
  // The hub may hang up before all of it was sent.
  fuzz::send_until_closed(fd, data, size);
  ::shutdown(fd, SHUT_WR);
  // Nothing may come back, and the hub must hang up.
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    auto ready = ::poll(&p, 1, 5000);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready == 0)
      fail("the hub kept a stranger's connection open for 5 s");
    char byte;
    auto n = ::recv(fd, &byte, 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0)
      fail("the hub answered a stranger");
    break; // 0, or a reset: hung up
  }
  ::close(fd);
  auto s = t.core->snapshot();
  if (s.size != 0 || s.getters != 0 || s.putters != 0)
    fail("a stranger reached the queue");
  std::vector<value> none;
  if (!t.core->put_buffered(none))
    fail("a stranger closed the queue");
  return 0;
}
