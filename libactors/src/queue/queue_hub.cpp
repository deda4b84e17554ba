#include "queue/queue_hub.hpp"

#include "base/random.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "node/call.hpp"
#include "node/runtime.hpp"

namespace actors::detail {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t wake_tag = ~std::uint64_t{0};
constexpr std::uint32_t max_hello = 64; // body bytes
constexpr std::uint64_t listen_tag = ~std::uint64_t{0} - 1;
// A pidfd's: exit_tag | pid (a connection's tag is its descriptor).
constexpr std::uint64_t exit_tag = std::uint64_t{1} << 62;

sockaddr_un abstract_address(const std::string& name, socklen_t& len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract namespace: a leading NUL, no file, gone with its process.
  std::memcpy(addr.sun_path + 1, name.data(),
              std::min(name.size(), sizeof(addr.sun_path) - 1));
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                               + name.size());
  return addr;
}

// Maps the area process `pid` shares as its descriptor `fd` (a memfd of
// exactly a shared_area's size); null if it is not that.
shared_area* map_area(pid_t pid, std::int32_t fd) {
  if (fd < 0)
    return nullptr;
  auto path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  auto local = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (local < 0)
    return nullptr;
  struct stat st{};
  void* p = MAP_FAILED;
  if (::fstat(local, &st) == 0 && S_ISREG(st.st_mode)
      && st.st_size == static_cast<off_t>(sizeof(shared_area)))
    p = ::mmap(nullptr, sizeof(shared_area), PROT_READ | PROT_WRITE,
               MAP_SHARED, local, 0);
  ::close(local);
  return p == MAP_FAILED ? nullptr : static_cast<shared_area*>(p);
}

// A stream's frames are small requests and answers: no Nagle delay (40 ms
// per frame with delayed acknowledgements). Nothing on a Unix socket.
void no_delay(int fd) {
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

} // namespace

// -- server ---------------------------------------------------------------------

struct queue_hub::conn {
  conn(int fd, pid_t peer, bool over_stream)
    : ch(fd), pid(peer), stream(over_stream) {
    // nop
  }

  channel ch;
  const pid_t pid; // a local client's (0 for a stream)
  const bool stream; // served by serve_stream: no hello, no area
  // Guarded by the hub's reader_, as is the input side of ch.
  bool authenticated = false;
  bool fresh = true;  // nothing served yet (a stream may name its node)
  caf::node_id node; // the node a stream named
  std::optional<decltype(timers_)::iterator> deadline;
  // Guarded by out: the output side of ch and what the connection holds.
  std::mutex out;
  bool dead = false;
  bool want_out = false;
  std::shared_ptr<queue_core> parked_core;
  std::uint64_t parked_serial = 0;
  // A local peer's hello falls due then (guarded by reader_).
  clock_type::time_point hello_by;
  std::shared_ptr<queue_core> flight_core;
  value flight;
  std::uint64_t flight_seq = 0;
  std::uint64_t next_seq = 1;
  // The memory a local peer shares (mapped from its memfd at hello), and
  // how much of its ring the hub has read (guarded by reader_).
  shared_area* area = nullptr;
  std::uint64_t consumed = 0;
  bool dead_end = false; // being dropped

  ~conn() {
    if (area != nullptr)
      ::munmap(area, sizeof(*area));
  }
};

// The clients to tell when a queue closes: the local ones that said their
// hello (counted in their areas) and the streams (sent `closed`). Its lock
// is taken last (a queue may close on any thread, amid anything), before
// a connection's `out` only.
struct queue_hub::watchers {
  std::mutex mtx;
  int epoll_fd = -1;
  std::vector<std::shared_ptr<conn>> conns;

  void add(const std::shared_ptr<conn>& c) {
    std::lock_guard<std::mutex> guard{mtx};
    conns.push_back(c);
  }

  void remove(const std::shared_ptr<conn>& c) {
    std::lock_guard<std::mutex> guard{mtx};
    conns.erase(std::remove(conns.begin(), conns.end(), c), conns.end());
  }

  void clear() {
    std::lock_guard<std::mutex> guard{mtx};
    conns.clear();
  }

  void closed(std::uint64_t qid);
};

namespace {

// Writes one frame to `c` (its `out` lock held) and hands what fits to the
// kernel; the hub writes the rest when the socket has room.
template <class Conn, class... Ts>
caf::error emit(Conn& c, int epoll_fd, std::uint8_t kind, Ts&... xs) {
  if (auto err = c.ch.put(kind, xs...))
    return err;
  c.ch.flush(false);
  if (c.ch.pending() && !c.want_out) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = static_cast<std::uint64_t>(c.ch.fd());
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.ch.fd(), &ev);
    c.want_out = true;
  }
  return caf::none;
}

// Answers request `req` on `c` with `x`; an item goes in flight. False if
// `c` is gone (or the item cannot be written), so the item stays queued.
template <class Conn>
bool answer(Conn& c, int epoll_fd, std::uint64_t req, q_outcome&& x,
            const std::shared_ptr<queue_core>& core) {
  std::lock_guard<std::mutex> guard{c.out};
  if (c.dead)
    return false;
  c.parked_core.reset();
  if (!x.ok) {
    auto code = static_cast<std::uint8_t>(x.code);
    emit(c, epoll_fd, hub_frame::fail, req, code, x.what);
    return true;
  }
  if (x.item) {
    auto seq = c.next_seq++;
    if (auto err = emit(c, epoll_fd, hub_frame::item, req, seq, x.item)) {
      auto code = static_cast<std::uint8_t>(errc::invalid_argument);
      std::string what = "an item that cannot be serialized";
      emit(c, epoll_fd, hub_frame::fail, req, code, what);
      return false;
    }
    c.flight_core = core;
    c.flight = std::move(x.item);
    c.flight_seq = seq;
    return true;
  }
  emit(c, epoll_fd, hub_frame::ok, req, x.flag);
  return true;
}

} // namespace

void queue_hub::watchers::closed(std::uint64_t qid) {
  std::lock_guard<std::mutex> guard{mtx};
  for (auto& c : conns) {
    if (c->area != nullptr) {
      // Seen by the client's next put before it trusts that qid is open.
      c->area->closes.fetch_add(1, std::memory_order_seq_cst);
      continue;
    }
    std::lock_guard<std::mutex> out{c->out};
    if (!c->dead)
      emit(*c, epoll_fd, hub_frame::closed, qid);
  }
}

queue_hub::queue_hub() {
  key0_ = random_value<std::uint64_t>();
  key1_ = random_value<std::uint64_t>();
  char name[64];
  std::snprintf(name, sizeof(name), "actors-hub-%d-%016llx",
                static_cast<int>(::getpid()),
                static_cast<unsigned long long>(random_value<std::uint64_t>()));
  address_ = name;
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        0);
  socklen_t len = 0;
  auto addr = abstract_address(address_, len);
  if (listen_fd_ < 0
      || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0
      || ::listen(listen_fd_, 128) != 0) {
    auto err = errno;
    if (listen_fd_ >= 0)
      ::close(listen_fd_);
    // Out of descriptors or memory: what a new thing of the OS needs.
    auto code = err == EMFILE || err == ENFILE || err == ENOBUFS
                    || err == ENOMEM
                  ? errc::spawn_failed
                  : errc::invalid_argument;
    throw error(code, std::string{"cannot serve queues: "}
                        + std::strerror(err));
  }
  auto fail = [this](const std::string& what) {
    auto text = what + ": " + std::strerror(errno);
    for (int fd : {listen_fd_, epoll_fd_, wake_fd_})
      if (fd >= 0)
        ::close(fd);
    throw error(errc::spawn_failed, "cannot serve queues: " + text);
  };
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    fail("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0)
    fail("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_tag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
    fail("epoll_ctl");
  ev.data.u64 = listen_tag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0)
    fail("epoll_ctl");
  watchers_ = std::make_shared<watchers>();
  watchers_->epoll_fd = epoll_fd_;
  try {
    thread_ = std::thread{[this] { run(); }};
  } catch (const std::system_error& e) {
    errno = e.code().value();
    fail("a thread");
  }
}

void queue_hub::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stop_)
      return;
    stop_ = true;
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
  thread_.join();
  std::lock_guard<std::mutex> guard{reader_};
  stopped_ = true;
  for (auto& [fd, c] : conns_) {
    std::lock_guard<std::mutex> guard{c->out};
    c->dead = true;
  }
  watchers_->clear();
  conns_.clear();
  rings_.clear();
  pending_.clear();
  pending_count_ = 0;
  std::lock_guard<std::mutex> streams_guard{mtx_};
  for (auto fd : streams_)
    ::close(fd);
  streams_.clear();
  for (auto& [pid, w] : exits_)
    ::close(w.fd);
  exits_.clear();
}

queue_hub::~queue_hub() {
  stop();
  ::close(listen_fd_);
  ::close(epoll_fd_);
  ::close(wake_fd_);
}

void queue_hub::add(std::uint64_t id, std::shared_ptr<queue_core> core) {
  core->on_close([w = watchers_, id] { w->closed(id); });
  std::lock_guard<std::mutex> guard{mtx_};
  cores_.emplace(id, std::move(core));
  note_self();
}

void queue_hub::note_self() {
  // Not at exit, when the actor system may be gone: by then a queue was
  // made here. (A hub without a runtime, as in a fuzzer, has no node.)
  if (!self_ && runtime::started())
    self_ = runtime::get().system().node();
}

std::shared_ptr<queue_core> queue_hub::find(std::uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = cores_.find(id);
  return i == cores_.end() ? nullptr : i->second;
}

void queue_hub::serve_stream(int fd) {
  if (fd < 0)
    throw error(errc::invalid_argument, "serve_stream: no socket");
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  no_delay(fd);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stop_) {
      ::close(fd);
      return;
    }
    streams_.push_back(fd);
    note_self();
  }
  // The hub's thread adopts it (accept_all).
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
}

namespace {

// The OS process of `node` if it runs on the host of node `here`, else 0
// (a pid of another host means nothing there).
pid_t local_pid(const caf::node_id& node, const caf::node_id& here) {
  using data = caf::node_id::default_data;
  if (!node || node->implementation_id() != data::class_id || !here
      || here->implementation_id() != data::class_id)
    return 0;
  auto& theirs = static_cast<const data&>(*node);
  auto& ours = static_cast<const data&>(*here);
  if (theirs.host_id() != ours.host_id())
    return 0;
  return static_cast<pid_t>(theirs.process_id());
}

} // namespace

void queue_hub::when_drained(const caf::node_id& node,
                             std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto pid = local_pid(node, self_);
    drained_.push_back(drain_wait{pid, node, std::move(fn)});
  }
  // The hub thread first accepts what is waiting, so a connection the
  // process made just before it ended counts too.
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
}

bool queue_hub::when_exited(const caf::node_id& node,
                            std::function<void()> fn) {
  std::unique_lock<std::mutex> guard{mtx_};
  note_self();
  auto pid = local_pid(node, self_);
  if (pid <= 0 || pid == ::getpid() || stop_)
    return false;
  auto& w = exits_[pid];
  if (w.fd < 0) {
    w.fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (w.fd < 0) {
      auto ended = errno == ESRCH;
      exits_.erase(pid);
      guard.unlock();
      if (ended)
        fn();
      return ended;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = exit_tag | static_cast<std::uint64_t>(pid);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w.fd, &ev);
  }
  w.fns.push_back(std::move(fn));
  return true;
}

void queue_hub::run_drained() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto i = drained_.begin(); i != drained_.end();) {
      bool open = (i->pid != 0 && open_.count(i->pid) > 0)
                  || (i->node && open_nodes_.count(i->node) > 0);
      if (!open) {
        ready.push_back(std::move(i->fn));
        i = drained_.erase(i);
      } else {
        ++i;
      }
    }
  }
  for (auto& fn : ready)
    fn();
}

void queue_hub::accept_all() {
  std::vector<int> handed;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    handed.swap(streams_);
  }
  for (auto fd : handed) {
    // Authenticated by whoever handed it over: it may send requests now.
    auto c = std::make_shared<conn>(fd, 0, true);
    c->authenticated = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    watchers_->add(c);
    conns_.emplace(fd, std::move(c));
  }
  while (!accept_paused_) {
    auto fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // Out of descriptors (or memory): the waiting connection keeps the
        // socket readable, and epoll would wake the hub in a loop. Pause
        // accepting for a while instead (run() resumes it).
        epoll_event ev{};
        ev.data.u64 = listen_tag;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
        accept_paused_ = clock_type::now() + std::chrono::milliseconds{100};
      }
      break;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0
        || cred.uid != ::geteuid()) {
      ::close(fd);
      continue;
    }
    // At the bound, the oldest waiting goes at once.
    if (pending_.size() >= max_pending) {
      auto oldest = pending_.front();
      drop(oldest);
    }
    auto c = std::make_shared<conn>(fd, cred.pid, false);
    c->hello_by = clock_type::now() + hello_deadline;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    pending_.push_back(c);
    ++pending_count_;
    conns_.emplace(fd, std::move(c));
    std::lock_guard<std::mutex> guard{mtx_};
    ++open_[cred.pid];
  }
}

void queue_hub::resume_accepting() {
  if (!accept_paused_ || clock_type::now() < *accept_paused_)
    return;
  accept_paused_.reset();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = listen_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
}

std::chrono::steady_clock::time_point queue_hub::expire_pending() {
  auto now = clock_type::now();
  while (!pending_.empty() && pending_.front()->hello_by <= now) {
    auto overdue = pending_.front();
    drop(overdue);
  }
  return pending_.empty() ? clock_type::time_point::max()
                          : pending_.front()->hello_by;
}

std::size_t queue_hub::pending() const {
  return pending_count_.load();
}

void queue_hub::drop(const std::shared_ptr<conn>& c) {
  if (auto i = conns_.find(c->ch.fd()); i == conns_.end() || i->second != c)
    return; // dropped already
  // What it wrote before it ended is read first, like a pipe's buffer.
  if (c->authenticated && !c->dead_end) {
    c->dead_end = true;
    pull(c);
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->ch.fd(), nullptr);
  if (c->deadline)
    timers_.erase(*c->deadline);
  if (auto i = std::find(pending_.begin(), pending_.end(), c);
      i != pending_.end()) {
    pending_.erase(i);
    --pending_count_;
  }
  rings_.erase(std::remove(rings_.begin(), rings_.end(), c), rings_.end());
  watchers_->remove(c);
  std::shared_ptr<queue_core> parked;
  std::uint64_t serial = 0;
  std::shared_ptr<queue_core> flight_core;
  value flight;
  {
    std::lock_guard<std::mutex> guard{c->out};
    c->dead = true;
    parked = std::move(c->parked_core);
    serial = c->parked_serial;
    // A stream's item is taken once a frame came after it (`taken`).
    if (c->flight_core
        && (c->area == nullptr || c->area->taken.load() < c->flight_seq)) {
      flight_core = std::move(c->flight_core);
      flight = std::move(c->flight);
    }
  }
  // A caller that died waiting took nothing; an item it had not taken goes
  // back to the front of its queue.
  if (parked)
    parked->cancel(serial);
  if (flight_core)
    flight_core->requeue(std::move(flight));
  bool last = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!c->stream) {
      auto i = open_.find(c->pid);
      if (i != open_.end() && --i->second == 0) {
        open_.erase(i);
        last = true;
      }
    } else if (c->node) {
      auto i = open_nodes_.find(c->node);
      if (i != open_nodes_.end() && --i->second == 0) {
        open_nodes_.erase(i);
        last = true;
      }
    }
  }
  conns_.erase(c->ch.fd());
  if (last)
    run_drained();
}

void queue_hub::land(const std::shared_ptr<conn>& c) {
  if (batch_.empty())
    return;
  if (!batch_core_->put_buffered(batch_)) {
    std::lock_guard<std::mutex> guard{c->out};
    emit(*c, epoll_fd_, hub_frame::closed, batch_qid_);
  }
}

bool queue_hub::serve(const std::shared_ptr<conn>& c,
                      const channel::frame& f) {
  namespace k = hub_frame;
  auto& ch = c->ch;
  if (!c->authenticated) {
    std::uint64_t k0 = 0;
    std::uint64_t k1 = 0;
    std::int32_t word_fd = -1;
    if (f.kind != k::hello || ch.get(f, k0, k1, word_fd))
      return false;
    // Both halves compared without an early exit.
    if (((k0 ^ key0_) | (k1 ^ key1_)) != 0)
      return false;
    c->area = map_area(c->pid, word_fd);
    c->authenticated = c->area != nullptr;
    if (c->authenticated) {
      if (auto i = std::find(pending_.begin(), pending_.end(), c);
          i != pending_.end()) {
        pending_.erase(i);
        --pending_count_;
      }
      rings_.push_back(c);
      watchers_->add(c);
      // The hub's thread may be asleep (a waiting thread may be serving
      // this): ask for the bell until it wakes.
      c->area->doorbell.store(1, std::memory_order_seq_cst);
      // The area is mapped: what the client writes there from now on
      // outlives it. Only now may it rely on that.
      std::lock_guard<std::mutex> guard{c->out};
      std::uint64_t req = 0;
      bool flag = true;
      emit(*c, epoll_fd_, k::ok, req, flag);
    }
    return c->authenticated;
  }
  if (c->stream && std::exchange(c->fresh, false) && f.kind == k::peer) {
    // Its first frame names its node: it counts for when_drained from now
    // on, and says so (the client waits for that before anything else).
    std::uint64_t req = 0;
    caf::node_id node;
    if (ch.get(f, req, node) || !node)
      return false;
    c->node = std::move(node);
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++open_nodes_[c->node];
    }
    answer(*c, epoll_fd_, req, q_outcome{}, nullptr);
    return true;
  }
  {
    // Anything the peer sends after an item means it took the item.
    std::lock_guard<std::mutex> guard{c->out};
    c->flight_core.reset();
    c->flight = value{};
  }
  if (f.kind != k::put_buffered)
    land(c); // what this connection put before comes first
  auto reply = [&](std::uint64_t req, q_outcome&& x,
                   const std::shared_ptr<queue_core>& core) {
    answer(*c, epoll_fd_, req, std::move(x), core);
  };
  // The queue a request names, or nothing (and the request is answered).
  auto queue_for = [&](std::uint64_t req, std::uint64_t qid) {
    auto core = find(qid);
    if (!core)
      reply(req, q_outcome::fail(errc::invalid_argument, "no such queue"),
            nullptr);
    return core;
  };
  std::uint64_t req = 0;
  std::uint64_t qid = 0;
  std::int64_t ns = 0;
  value item;
  switch (f.kind) {
    case k::put_buffered: {
      // The pipe ends in it are on their way to its getter (end_loaded).
      end_pass_scope carry{end_pass::carry};
      if (ch.get(f, qid, item))
        return false;
      item.carries_ends(carry.saw_ends());
      if (qid != batch_qid_ || !batch_core_) {
        land(c);
        batch_core_ = find(qid);
        batch_qid_ = qid;
        if (!batch_core_)
          return false;
      }
      batch_.push_back(std::move(item));
      return true;
    }
    case k::sync:
      if (ch.get(f, req))
        return false;
      reply(req, q_outcome{}, nullptr);
      return true;
    case k::taken: {
      // Said by a stream client (above: it took the item in flight).
      std::uint64_t seq = 0;
      return c->stream && !ch.get(f, seq);
    }
    case k::put:
    case k::get:
    case k::poll:
    case k::join: {
      caf::error err;
      {
        end_pass_scope carry{end_pass::carry};
        err = f.kind == k::put ? ch.get(f, req, qid, ns, item)
                               : ch.get(f, req, qid, ns);
        item.carries_ends(carry.saw_ends());
      }
      if (err)
        return false;
      auto core = queue_for(req, qid);
      if (!core)
        return true;
      if (c->deadline) {
        timers_.erase(*c->deadline);
        c->deadline.reset();
      }
      std::weak_ptr<conn> weak = c;
      auto epoll_fd = epoll_fd_;
      queue_core::answer_fn later = [weak, epoll_fd, req,
                                     core](q_outcome&& x) {
        auto target = weak.lock();
        return target && answer(*target, epoll_fd, req, std::move(x), core);
      };
      bool wait = ns != 0;
      auto attempt = [&]() -> queue_core::result {
        switch (f.kind) {
          case k::put:
            return core->put(std::move(item), wait, later);
          case k::get:
            return core->get(wait, later);
          case k::poll:
            return core->poll(wait, later);
          default:
            return core->join(wait, later);
        }
      };
      auto r = attempt();
      // Not waiting and nothing there: first land what others have sent.
      if (auto* now = std::get_if<q_outcome>(&r);
          now != nullptr && !wait && f.kind != k::put
          && ((f.kind == k::get && now->code == errc::queue_empty)
              || (f.kind == k::poll && !now->flag))) {
        read_all(c.get());
        r = attempt();
      }
      if (auto* now = std::get_if<q_outcome>(&r)) {
        std::shared_ptr<queue_core> holder = core;
        if (!answer(*c, epoll_fd_, req, std::move(*now), holder)
            && now->item)
          core->requeue(std::move(now->item));
        return true;
      }
      auto serial = std::get<std::uint64_t>(r);
      {
        std::lock_guard<std::mutex> guard{c->out};
        c->parked_core = core;
        c->parked_serial = serial;
      }
      if (ns > 0)
        c->deadline = timers_.emplace(clock_type::now()
                                     + std::chrono::nanoseconds{ns},
                                   timer{core, serial, c->ch.fd()});
      return true;
    }
    case k::done:
    case k::close:
    case k::size: {
      if (ch.get(f, req, qid))
        return false;
      auto core = queue_for(req, qid);
      if (!core)
        return true;
      if (f.kind == k::done) {
        reply(req, core->task_done(), nullptr);
      } else if (f.kind == k::close) {
        core->close();
        reply(req, q_outcome{}, nullptr);
      } else {
        read_all(c.get());
        auto s = core->snapshot();
        std::lock_guard<std::mutex> guard{c->out};
        emit(*c, epoll_fd_, k::stats, req, s.size, s.maxsize, s.getters,
             s.putters);
      }
      return true;
    }
    default:
      return false;
  }
}

bool queue_hub::read_from(const std::shared_ptr<conn>& c) {
  if (c->stream)
    return read_stream(c);
  if (c->authenticated) {
    // The socket carries only doorbells now: take them, then the ring.
    char bells[256];
    bool ended = false;
    for (;;) {
      auto n = ::recv(c->ch.fd(), bells, sizeof(bells), MSG_DONTWAIT);
      if (n > 0)
        continue;
      if (n < 0 && errno == EINTR)
        continue;
      ended = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      break;
    }
    if (!pull(c) || ended) {
      drop(c);
      return false;
    }
    return true;
  }
  // Before its hello, a peer may announce no more than a hello: the hub
  // would otherwise make room for whatever size a stranger claims.
  auto oversized = [&] {
    auto size = c->ch.next_size();
    return size && *size > max_hello;
  };
  if (oversized() || !c->ch.fill(false) || oversized()) {
    drop(c);
    return false;
  }
  auto f = c->ch.next();
  if (f && !serve(c, *f)) {
    drop(c);
    return false;
  }
  // Authenticated now: it may have written into its ring already.
  if (c->authenticated && !pull(c)) {
    drop(c);
    return false;
  }
  return true;
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
      // Its end: what it sent before is served (and lands) first.
      land(c);
      drop(c);
      return false;
    }
    c->ch.feed(scratch_.get(), static_cast<std::size_t>(n));
    while (auto f = c->ch.next()) {
      if (!serve(c, *f)) {
        land(c);
        drop(c);
        return false;
      }
    }
    if (static_cast<std::size_t>(n) < chunk)
      break;
  }
  land(c);
  return true;
}

bool queue_hub::pull(const std::shared_ptr<conn>& c) {
  if (c->area == nullptr)
    return true;
  auto& area = *c->area;
  auto head = area.head.load(std::memory_order_acquire);
  auto avail = head - c->consumed;
  if (avail == 0)
    return true;
  if (avail > shared_area::ring_size)
    return false; // not a ring any more
  auto at = c->consumed % shared_area::ring_size;
  auto first = std::min<std::uint64_t>(avail, shared_area::ring_size - at);
  c->ch.feed(area.ring + at, first);
  if (avail > first)
    c->ch.feed(area.ring, avail - first);
  c->consumed = head;
  area.tail.store(head, std::memory_order_seq_cst);
  if (area.waiting.load(std::memory_order_seq_cst) != 0
      && area.waiting.exchange(0) != 0) {
    std::lock_guard<std::mutex> guard{c->out};
    emit(*c, epoll_fd_, hub_frame::room);
  }
  bool fine = true;
  while (fine)
    if (auto f = c->ch.next())
      fine = serve(c, *f);
    else
      break;
  land(c);
  return fine;
}

bool queue_hub::pull_all() {
  // A copy: pull() may drop a connection. Empty (no allocation) when no
  // ring has anything, the usual case for a waiting thread's poll.
  std::vector<std::shared_ptr<conn>> ready;
  for (auto& c : rings_)
    if (c->area->head.load(std::memory_order_acquire) != c->consumed)
      ready.push_back(c);
  for (auto& c : ready)
    if (!pull(c))
      drop(c);
  return !ready.empty();
}

bool queue_hub::ask_doorbells(bool on) {
  bool pending = false;
  for (auto& c : rings_) {
    c->area->doorbell.store(on ? 1 : 0, std::memory_order_seq_cst);
    // Seen after the store: either this sees the client's write, or the
    // client sees the request and rings.
    if (on && c->area->head.load(std::memory_order_seq_cst) != c->consumed)
      pending = true;
  }
  return pending;
}

void queue_hub::read_all(const conn* skip) {
  if (reading_all_)
    return;
  reading_all_ = true;
  accept_all();
  std::vector<std::shared_ptr<conn>> all;
  for (auto& [fd, c] : conns_)
    if (c.get() != skip)
      all.push_back(c);
  for (auto& c : all) {
    if (c->stream) {
      read_stream(c);
      continue;
    }
    if (c->authenticated) {
      if (!pull(c))
        drop(c);
      continue;
    }
    int avail = 0;
    while (::ioctl(c->ch.fd(), FIONREAD, &avail) == 0
           && avail > 0 && read_from(c) && !c->authenticated) {
      // again: a frame may span reads
    }
    if (c->authenticated && !pull(c))
      drop(c);
  }
  reading_all_ = false;
}

void queue_hub::drain() {
  std::lock_guard<std::mutex> guard{reader_};
  if (!stopped_)
    read_all(nullptr);
}

void queue_hub::handle(const epoll_event& ev) {
  auto tag = ev.data.u64;
  if (tag == listen_tag) {
    accept_all();
    return;
  }
  if (tag != wake_tag && (tag & exit_tag) != 0) {
    // A process that when_exited waits for has ended.
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      auto i = exits_.find(static_cast<pid_t>(tag & ~exit_tag));
      if (i == exits_.end())
        return;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, i->second.fd, nullptr);
      ::close(i->second.fd);
      fns = std::move(i->second.fns);
      exits_.erase(i);
    }
    for (auto& fn : fns)
      fn();
    return;
  }
  auto found = conns_.find(static_cast<int>(tag));
  if (found == conns_.end())
    return;
  auto c = found->second;
  if (ev.events & EPOLLOUT) {
    std::lock_guard<std::mutex> guard{c->out};
    c->ch.flush(false);
    if (!c->ch.pending()) {
      epoll_event again{};
      again.events = EPOLLIN;
      again.data.u64 = tag;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->ch.fd(), &again);
      c->want_out = false;
    }
  }
  if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    read_from(c);
}

bool queue_hub::poll_once() {
  std::unique_lock<std::mutex> guard{reader_, std::try_to_lock};
  if (!guard.owns_lock() || stopped_)
    return false;
  auto first = timers_.empty() ? clock_type::time_point::max()
                               : timers_.begin()->first;
  auto any = pull_all();
  epoll_event events[32];
  auto n = ::epoll_wait(epoll_fd_, events, 32, 0);
  for (int i = 0; i < n; ++i)
    if (events[i].data.u64 != wake_tag) // the hub thread's
      handle(events[i]);
  // A deadline earlier than the one the hub thread sleeps towards: tell it.
  if (!timers_.empty() && timers_.begin()->first < first) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto w = ::write(wake_fd_, &one, sizeof(one));
  }
  return any || n > 0;
}

void queue_hub::run() {
  epoll_event events[32];
  for (;;) {
    int wait_ms = -1;
    {
      std::lock_guard<std::mutex> guard{reader_};
      // The next deadline: a parked call's, a hello's, accepting's again.
      auto next = expire_pending();
      if (!timers_.empty())
        next = std::min(next, timers_.begin()->first);
      if (accept_paused_)
        next = std::min(next, *accept_paused_);
      if (next != clock_type::time_point::max()) {
        auto left = next - clock_type::now();
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        wait_ms = static_cast<int>(std::clamp<long long>(ms, 0, 1 << 30));
      }
    }
    // Serve the rings while they keep filling, then ask for doorbells and
    // sleep (unless something came meanwhile).
    for (auto until = clock_type::now() + spin_time;
         clock_type::now() < until && wait_ms != 0;) {
      {
        std::lock_guard<std::mutex> guard{reader_};
        if (stopped_)
          return;
        if (pull_all())
          until = clock_type::now() + spin_time;
      }
      relax();
    }
    {
      std::lock_guard<std::mutex> guard{reader_};
      if (ask_doorbells(true))
        wait_ms = 0;
    }
    auto n = ::epoll_wait(epoll_fd_, events, 32, wait_ms);
    if (n < 0 && errno != EINTR)
      return;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stop_)
        return;
    }
    std::lock_guard<std::mutex> guard{reader_};
    ask_doorbells(false);
    pull_all();
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == wake_tag) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof(count));
        {
          // The count just read may include stop()'s wake-up, which came
          // after the look at stop_ above: look again, or sleep forever.
          std::lock_guard<std::mutex> guard{mtx_};
          if (stop_)
            return;
        }
        accept_all();
        run_drained();
      } else {
        handle(events[i]);
      }
    }
    resume_accepting();
    expire_pending();
    auto now = clock_type::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto t = timers_.begin()->second;
      if (auto i = conns_.find(t.fd); i != conns_.end())
        i->second->deadline.reset();
      timers_.erase(timers_.begin());
      t.core->expire(t.serial);
    }
  }
}

// -- client ---------------------------------------------------------------------

namespace {

thread_local std::unordered_map<std::string, std::unique_ptr<hub_client>>
  clients;

// Streams by the node they reach; null: the connector said that node is on
// this host.
thread_local std::map<caf::node_id, std::unique_ptr<hub_client>> streams;

std::atomic<bool> remote_set{false};
std::mutex remote_mtx;
std::shared_ptr<const hub_connector> remote_connect;

} // namespace

void set_remote_hub(hub_connector connect) {
  std::shared_ptr<const hub_connector> fresh;
  if (connect)
    fresh = std::make_shared<const hub_connector>(std::move(connect));
  std::lock_guard<std::mutex> guard{remote_mtx};
  remote_set.store(fresh != nullptr, std::memory_order_release);
  remote_connect = std::move(fresh);
}

bool remote_hub_set() noexcept {
  return remote_set.load(std::memory_order_acquire);
}

hub_client* hub_client::existing(const std::string& address) {
  auto i = clients.find(address);
  return i == clients.end() ? nullptr : i->second.get();
}

hub_client* hub_client::existing(const caf::node_id& owner) {
  auto i = streams.find(owner);
  return i == streams.end() ? nullptr : i->second.get();
}

hub_client* hub_client::over_stream(const caf::node_id& owner) {
  if (auto i = streams.find(owner); i != streams.end())
    return i->second.get();
  std::shared_ptr<const hub_connector> connect;
  {
    std::lock_guard<std::mutex> guard{remote_mtx};
    connect = remote_connect;
  }
  if (!connect)
    throw error(errc::invalid_argument, "no connector for remote hubs");
  auto fd = (*connect)(owner);
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

hub_client& hub_client::of(const std::string& address, std::uint64_t key0,
                           std::uint64_t key1) {
  if (auto* known = existing(address))
    return *known;
  if (address.empty())
    throw error(errc::invalid_argument, "the handle is empty");
  auto fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len = 0;
  auto addr = abstract_address(address, len);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    auto what = std::string{"the process that owns this object is gone ("}
                + std::strerror(errno) + ")";
    if (fd >= 0)
      ::close(fd);
    throw error(errc::owner_unreachable, what);
  }
  std::unique_ptr<hub_client> fresh{new hub_client(fd, address)};
  std::int32_t area_fd = fresh->area_fd_;
  fresh->ch_.put(hub_frame::hello, key0, key1, area_fd);
  // Welcomed (request 0) once the hub has mapped the area: from then on
  // what this thread writes there reaches the hub even if it dies.
  if (!fresh->ch_.flush(true))
    throw error(errc::owner_unreachable,
                "the process that owns this object is gone");
  fresh->await(0, 0);
  auto& result = *fresh;
  clients.emplace(address, std::move(fresh));
  return result;
}

hub_client::hub_client(int fd, std::string address)
  : ch_(fd), address_(std::move(address)) {
  area_fd_ = ::memfd_create("actors-hub-area", MFD_CLOEXEC);
  void* p = MAP_FAILED;
  if (area_fd_ >= 0 && ::ftruncate(area_fd_, sizeof(shared_area)) == 0)
    p = ::mmap(nullptr, sizeof(shared_area), PROT_READ | PROT_WRITE,
               MAP_SHARED, area_fd_, 0);
  if (p == MAP_FAILED) {
    if (area_fd_ >= 0)
      ::close(area_fd_);
    throw error(errc::invalid_argument,
                std::string{"cannot make a shared area: "}
                  + std::strerror(errno));
  }
  area_ = new (p) shared_area;
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

hub_client::~hub_client() {
  if (area_ == nullptr)
    return;
  ::munmap(area_, sizeof(*area_));
  ::close(area_fd_);
}

void hub_client::ring_doorbell() {
  // Rung after every write while asked: the hub clears the request when it
  // wakes (a bell that a waiting thread of the hub's process takes instead
  // leaves the hub's thread asleep, and it must be rung again).
  if (area_->doorbell.load(std::memory_order_seq_cst) != 0) {
    char bell = 0;
    // A full socket holds bells enough; a gone hub shows at the next read.
    [[maybe_unused]] auto n = ::send(ch_.fd(), &bell, 1,
                                     MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

void hub_client::wait_for_room() {
  area_->waiting.store(1, std::memory_order_seq_cst);
  auto room = [&] {
    return area_->tail.load(std::memory_order_seq_cst) + shared_area::ring_size
           > head_;
  };
  ring_doorbell();
  while (!room()) {
    // The hub answers `waiting` with a `room` frame (or reads the ring
    // anyway); the bounded wait is a safety net, not the signal.
    pollfd p{ch_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      if (!ch_.fill(false))
        broken("gone");
      std::optional<q_outcome> none;
      while (auto f = ch_.next())
        if (!absorb(*f, 0, none))
          broken("gone");
    }
    ring_doorbell();
  }
  area_->waiting.store(0, std::memory_order_relaxed);
}

void hub_client::send() {
  if (area_ == nullptr) {
    if (!ch_.flush(true))
      broken("gone", errno);
    return;
  }
  auto [data, size] = ch_.output();
  while (size > 0) {
    auto tail = area_->tail.load(std::memory_order_acquire);
    auto room = tail + shared_area::ring_size - head_;
    if (room == 0) {
      wait_for_room();
      continue;
    }
    auto n = std::min<std::uint64_t>(room, size);
    auto at = head_ % shared_area::ring_size;
    auto first = std::min<std::uint64_t>(n, shared_area::ring_size - at);
    std::memcpy(area_->ring + at, data, first);
    std::memcpy(area_->ring, data + first, n - first);
    head_ += n;
    area_->head.store(head_, std::memory_order_seq_cst);
    ring_doorbell();
    data += n;
    size -= n;
  }
  ch_.clear_output();
}

std::string hub_client::render(const caf::error& err) {
  return runtime::get().system().render(err);
}

void hub_client::fill(bool block) {
  errno = 0; // stays 0 at the end of the stream
  if (!ch_.fill(block))
    broken("gone", errno);
}

void hub_client::broken(const char* what, int err) {
  // Forget this connection (the next call connects afresh, or finds the
  // hub gone); `this` is destroyed here.
  errc code = std::strcmp(what, "timeout") == 0 ? errc::timeout
                                                : errc::owner_unreachable;
  std::string text = code == errc::timeout
                       ? "no answer from the process that owns this object"
                       : "the process that owns this object is gone";
  if (area_ == nullptr && code != errc::timeout)
    text = std::string{"the stream to the host of the process that owns "
                       "this object ended ("}
           + (std::strcmp(what, "garbled") == 0 ? "it sent garbled frames"
              : err != 0                          ? std::strerror(err)
                                                  : "closed by the other side")
           + ")";
  if (area_ != nullptr)
    clients.erase(address_);
  else
    streams.erase(owner_);
  throw error(code, text);
}

bool hub_client::absorb(const channel::frame& f, std::uint64_t req,
                        std::optional<q_outcome>& result) {
  namespace k = hub_frame;
  std::uint64_t id = 0;
  switch (f.kind) {
    case k::room:
      return true; // wait_for_room looks at the ring itself
    case k::closed: {
      std::uint64_t qid = 0;
      if (ch_.get(f, qid))
        return false;
      closed_.insert(qid);
      return true;
    }
    case k::ok: {
      q_outcome x;
      if (ch_.get(f, id, x.flag))
        return false;
      if (id == req)
        result = std::move(x);
      return true;
    }
    case k::item: {
      q_outcome x;
      std::uint64_t seq = 0;
      if (ch_.get(f, id, seq, x.item))
        return false;
      // Taken: were this process to die now, the hub keeps it out of the
      // queue (a process that dies before this store gives it back). On a
      // stream, once `taken` is sent (not waiting for an answer; a failed
      // send shows at the next call, and the hub gives the item back).
      if (area_ != nullptr) {
        area_->taken.store(seq, std::memory_order_release);
      } else if (!ch_.put(hub_frame::taken, seq)) {
        ch_.flush(true);
      }
      if (id == req)
        result = std::move(x);
      return true;
    }
    case k::fail: {
      std::uint8_t code = 0;
      std::string what;
      if (ch_.get(f, id, code, what))
        return false;
      if (id == req)
        result = q_outcome::fail(static_cast<errc>(code), std::move(what));
      return true;
    }
    case k::stats: {
      queue_ref::stats s;
      if (ch_.get(f, id, s.size, s.maxsize, s.getters, s.putters))
        return false;
      if (id == req) {
        stats_ = s;
        result = q_outcome{};
      }
      return true;
    }
    default:
      return false;
  }
}

void hub_client::put_buffered(std::uint64_t qid, value& item) {
  // Notices that a queue closed arrive unasked: read what is there, at
  // most every 100 us (a syscall per put would cost a third of its time).
  auto now = clock_type::now();
  if (now >= next_check_) {
    next_check_ = now + std::chrono::microseconds{100};
    std::optional<q_outcome> none;
    fill(false);
    while (auto f = ch_.next())
      if (!absorb(*f, 0, none))
        broken("garbled");
  }
  if (closed_.count(qid) > 0)
    throw error(errc::closed, "put on a closed queue");
  // Unanswered only into a queue the hub has said is open since the last
  // close of one of its queues (see the top of queue_hub.hpp).
  auto closes = area_ != nullptr
                  ? area_->closes.load(std::memory_order_seq_cst)
                  : 0;
  if (auto i = vouched_.find(qid); i == vouched_.end() || i->second != closes) {
    std::int64_t ns = -1;
    auto result = call(hub_frame::put, ns, qid, ns, item);
    if (!result.ok && result.code == errc::closed)
      closed_.insert(qid);
    check(result);
    vouched_[qid] = closes;
    return;
  }
  if (auto err = ch_.put(hub_frame::put_buffered, qid, item))
    throw error(errc::invalid_argument,
                "the item cannot be serialized: " + render(err));
  send();
}

q_outcome hub_client::await(std::uint64_t req, std::int64_t ns) {
  auto deadline = ns >= 0 ? clock_type::now() + std::chrono::nanoseconds{ns}
                              + call_grace
                          : clock_type::time_point::max();
  // (Not on a stream: an answer from another host takes longer.)
  auto spin_until = area_ != nullptr
                      ? std::min(clock_type::now() + spin_time, deadline)
                      : clock_type::now();
  std::optional<q_outcome> result;
  for (;;) {
    while (auto f = ch_.next())
      if (!absorb(*f, req, result))
        broken("garbled");
    if (result)
      break;
    if (clock_type::now() < spin_until) {
      // The answer often comes within microseconds: look for it before
      // sleeping in recv (a wake-up costs tens of microseconds).
      fill(false);
      relax();
      continue;
    }
    if (deadline != clock_type::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(
                    deadline - clock_type::now())
                    .count();
      pollfd p{ch_.fd(), POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) == 0)
        broken("timeout");
    }
    fill(true);
  }
  return std::move(*result);
}

} // namespace actors::detail
