// Locks of another host, the client's side: lock/remote.hpp.

#include "lock/remote.hpp"

#include "base/deadline.hpp"
#include "base/fd.hpp"
#include "lock/arena.hpp"
#include "lock/lock_server.hpp"
#include "net/auth.hpp"
#include "node/runtime.hpp"
#include "wire/channel.hpp"

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

namespace actors::detail {

namespace {

// One thread's connection to the lock server of the pool's host. A forked
// copy of this process must not speak on its parent's connection, nor keep
// it open (the server would not see its client end): at fork, the copy's
// descriptor is replaced by /dev/null and the connection marked stale.
struct server_connection {
  std::unique_ptr<channel> ch;
  pid_t pid = 0; // the process that connected

  server_connection();
  ~server_connection();
};

struct connection_registry {
  std::mutex mtx;
  std::set<server_connection*> all;

  static connection_registry& get() {
    static auto* instance = [] {
      auto* r = new connection_registry; // never destroyed: threads outlive main
      ::pthread_atfork([] { connection_registry::get().mtx.lock(); },
                       [] { connection_registry::get().mtx.unlock(); },
                       [] {
                         auto& self = connection_registry::get();
                         unique_fd null{
                           ::open("/dev/null", O_RDWR | O_CLOEXEC)};
                         for (auto* c : self.all) {
                           if (c->ch && null)
                             ::dup3(null.get(), c->ch->fd(), O_CLOEXEC);
                           c->pid = 0;
                         }
                         self.mtx.unlock();
                       });
      return r;
    }();
    return *instance;
  }
};

server_connection::server_connection() {
  auto& r = connection_registry::get();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.all.insert(this);
}

server_connection::~server_connection() {
  auto& r = connection_registry::get();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.all.erase(this);
  ch.reset(); // the server sees this thread end
}

using owner_ref = runtime::remote_owner;

std::string address_of(const owner_ref& owner) {
  return owner.host + ":" + std::to_string(owner.port);
}

// The pool's host to ask about `ref`, or null to use it here.
const owner_ref* route(const lock_handle_ref& ref) {
  auto* owner = runtime::owner_elsewhere();
  if (owner == nullptr || lock_is_local(ref))
    return nullptr;
  return owner;
}

using answer = lock_answer;

// Asks the lock server of `owner` (kind, ref[, timeout_ns]) and waits for
// its answer; errc::owner_unreachable, naming what happened, when the
// server cannot be reached or its answer does not come.
answer ask(const owner_ref& owner, std::uint8_t kind,
           const lock_handle_ref& ref, std::int64_t timeout_ns) {
  thread_local server_connection conn;
  auto pid = ::getpid();
  if (conn.ch && conn.pid != pid)
    conn.ch.reset(); // a forked copy's: /dev/null by now
  if (!conn.ch) {
    int fd;
    try {
      fd = connect_authenticated(
        owner.host, owner.port, owner.key, purpose::lock,
        std::max(owner.lost_after, std::chrono::milliseconds{1000}));
    } catch (const error& e) {
      throw error(errc::owner_unreachable,
                  "the lock's host " + address_of(owner)
                    + " (the pool's) cannot be reached: " + e.what());
    }
    watch_link(fd, owner.lost_after);
    conn.ch = std::make_unique<channel>(fd);
    conn.pid = pid;
  }
  auto& ch = *conn.ch;
  auto lost = [&](const std::string& what) {
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(ch.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    conn.ch.reset();
    return error(errc::owner_unreachable,
                 "the connection to the lock's host " + address_of(owner)
                   + " (the pool's) was lost " + what + " ("
                   + (err != 0 ? std::strerror(err) : "closed") + ")"
                   + "; the locks this thread held there are released as "
                     "if it had died");
  };
  caf::error err;
  auto r = ref;
  if (kind == lock_protocol::acquire_frame)
    err = ch.put(kind, r.pid, r.fd, r.arena, r.slot, timeout_ns);
  else
    err = ch.put(kind, r.pid, r.fd, r.arena, r.slot);
  if (err || !ch.flush(true))
    throw lost("sending a request");
  // The server answers an acquisition by its timeout: waiting longer than
  // that and a lost link's bound means the answer will not come.
  deadline until;
  if (auto t = wire_timeout(timeout_ns))
    until = deadline{std::chrono::duration_cast<deadline::duration>(
      *t + owner.lost_after + std::chrono::seconds{1})};
  for (;;) {
    if (auto f = ch.next()) {
      answer a;
      if (f->kind != lock_protocol::answer_frame
          || ch.get(*f, a))
        throw lost("(a malformed answer)");
      return a;
    }
    if (until.passed())
      throw lost("waiting for an answer");
    pollfd p{ch.fd(), POLLIN, 0};
    auto n = ::poll(&p, 1, until.poll_ms());
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0 && !ch.fill(false))
      throw lost("waiting for an answer");
  }
}

// The error the lock server answered, or an answer not understood.
[[noreturn]] void fail(const answer& a) {
  a.check();
  throw error(errc::owner_unreachable,
              "the lock's host (the pool's) gave an answer not understood "
              "here: "
                + std::to_string(a.outcome));
}

// The lock of `ref`, which the pool's host says is not its own
// (`pool_says`): one of this host, used here from now on; or reachable
// from nowhere.
void local_after_all(const lock_handle_ref& ref,
                     const std::string& pool_says) {
  try {
    map_lock(ref);
  } catch (const error& e) {
    if (e.code() != errc::owner_unreachable)
      throw;
    throw error(errc::owner_unreachable,
                "the lock is on neither the pool's host nor this one: the "
                "pool's host says: "
                  + pool_says + "; this host: " + e.what());
  }
  mark_lock_local(ref.arena);
}

} // namespace

std::optional<lock_handle::acquired>
acquire_remote(const lock_handle_ref& ref,
               std::optional<lock_handle::duration> timeout) {
  auto* owner = route(ref);
  if (owner == nullptr)
    return std::nullopt;
  auto a = ask(*owner, lock_protocol::acquire_frame, ref, timeout_ns(timeout));
  a.check();
  switch (a.outcome) {
    case lock_protocol::not_acquired:
      return lock_handle::acquired::no;
    case lock_protocol::acquired:
      return lock_handle::acquired::yes;
    case lock_protocol::owner_died:
      return lock_handle::acquired::previous_owner_died;
    case lock_protocol::not_on_this_host:
      local_after_all(ref, a.what);
      return std::nullopt; // one of this host
    default:
      fail(a);
  }
}

bool release_remote(const lock_handle_ref& ref) {
  auto* owner = route(ref);
  if (owner == nullptr)
    return false;
  auto a = ask(*owner, lock_protocol::release_frame, ref, 0);
  a.check();
  if (a.outcome == lock_protocol::released)
    return true;
  if (a.outcome != lock_protocol::not_on_this_host)
    fail(a);
  local_after_all(ref, a.what);
  return false;
}

} // namespace actors::detail
