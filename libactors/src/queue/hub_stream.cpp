// The paths to other hosts: on the hub's side, adopting an authenticated
// stream (serve_stream) and reading it; on the client's side, the
// connector (set_remote_hub) and each thread's streams to owners' nodes.

#include "queue/hub_client.hpp"
#include "queue/hub_server.hpp"

#include "base/random.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "node/call.hpp"
#include "node/runtime.hpp"
#include "queue/hub_connection.hpp"

namespace actors::detail {

namespace {

// A stream's frames are small requests and answers: no Nagle delay (40 ms
// per frame with delayed acknowledgements). Nothing on a Unix socket.
void no_delay(int fd) {
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

// Streams by the node they reach; null: the connector said that node is on
// this host.
thread_local std::map<caf::node_id, std::unique_ptr<hub_client>> streams;

std::atomic<bool> remote_set{false};
std::mutex remote_mtx;
std::shared_ptr<const hub_connector> remote_connect;
// The nodes of other hosts this process reaches on their own (reach_hub_of).
std::map<caf::node_id, std::shared_ptr<const std::function<int()>>> routes;

} // namespace

void queue_hub::serve_stream(int fd) {
  if (fd < 0)
    throw error(errc::invalid_argument, "serve_stream: no socket");
  unique_fd stream{fd};
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  no_delay(fd);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stop_)
      return;
    streams_.push_back(std::move(stream));
    note_self();
  }
  // The hub's thread adopts it (accept_all).
  poller_.wake();
}

bool queue_hub::read_stream(const std::shared_ptr<conn>& c) {
  if (auto i = conns_.find(c->ch.fd()); i == conns_.end() || i->second != c)
    return false; // dropped already
  // Read through a buffer of the hub's and fed to the channel, so that what
  // the channel holds grows with what arrived, not with what a frame's
  // header announces.
  constexpr std::size_t chunk = 256 * 1024;
  if (!scratch_)
    scratch_.reset(new char[chunk]);
  // A bounded number of reads per turn (epoll reports the rest again): the
  // other connections' turn comes too.
  for (int round = 0; round < 16; ++round) {
    auto n = ::recv(c->ch.fd(), scratch_.get(), chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) {
      // Its end: what it sent before is served (and put) first.
      put_batch(c);
      drop(c);
      return false;
    }
    c->ch.feed(scratch_.get(), static_cast<std::size_t>(n));
    while (auto f = c->ch.next()) {
      if (!serve(c, *f)) {
        put_batch(c);
        drop(c);
        return false;
      }
    }
    if (static_cast<std::size_t>(n) < chunk)
      break;
  }
  put_batch(c);
  return true;
}

// -- client -----------------------------------------------------------------

void set_remote_hub(hub_connector connect) {
  std::shared_ptr<const hub_connector> fresh;
  if (connect)
    fresh = std::make_shared<const hub_connector>(std::move(connect));
  std::lock_guard<std::mutex> guard{remote_mtx};
  remote_set.store(fresh != nullptr || !routes.empty(),
                   std::memory_order_release);
  remote_connect = std::move(fresh);
}

void reach_hub_of(const caf::node_id& node, std::function<int()> connect) {
  std::lock_guard<std::mutex> guard{remote_mtx};
  routes[node] = std::make_shared<const std::function<int()>>(
    std::move(connect));
  remote_set.store(true, std::memory_order_release);
}

bool remote_hub_set() noexcept {
  return remote_set.load(std::memory_order_acquire);
}

hub_client* hub_client::existing(const caf::node_id& owner) {
  auto i = streams.find(owner);
  return i == streams.end() ? nullptr : i->second.get();
}

hub_client* hub_client::over_stream(const caf::node_id& owner) {
  if (auto i = streams.find(owner); i != streams.end())
    return i->second.get();
  std::shared_ptr<const hub_connector> connect;
  std::shared_ptr<const std::function<int()>> route;
  {
    std::lock_guard<std::mutex> guard{remote_mtx};
    connect = remote_connect;
    if (auto i = routes.find(owner); i != routes.end())
      route = i->second;
  }
  auto fd = route ? (*route)() : connect ? (*connect)(owner) : -1;
  if (fd < 0) {
    streams.emplace(owner, nullptr); // on this host: the local path
    return nullptr;
  }
  std::unique_ptr<hub_client> fresh{new hub_client(fd, owner)};
  // Names this node first, and waits until the hub has read that: from
  // then on, the end of this node's hold on a pipe waits for the end of
  // this stream, and so for everything it sent (when_drained).
  auto self = runtime::get().system().node();
  auto req = fresh->next_req_++;
  fresh->ch_.put(hub_frame::peer, req, self);
  fresh->send();
  fresh->await(req, 0);
  return streams.emplace(owner, std::move(fresh)).first->second.get();
}

void hub_client::forget_stream(const caf::node_id& owner) {
  streams.erase(owner);
}

hub_client::hub_client(int fd, const caf::node_id& owner)
  : ch_(fd), owner_(owner) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Sends and reads block, without a timeout of the socket's own (one
  // left from a handshake): calls keep their deadlines, and the stream's
  // keepalives and user timeout end it if its host is gone.
  if (auto flags = ::fcntl(fd, F_GETFL); flags >= 0 && (flags & O_NONBLOCK))
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  timeval none{};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
  no_delay(fd);
}

} // namespace actors::detail
