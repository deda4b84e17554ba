// Locks: robust, process-shared pthread mutexes in memory shared by the
// processes of a run.
//
// Each process that creates locks keeps them in an arena of its own: a
// memfd mapped shared, a header and then one slot per lock, never reused.
// A handle names the arena (the creating process's pid and the memfd's
// descriptor number there) and the slot; a process that receives one maps
// the arena once through /proc/PID/fd/N. Locking is then a futex operation
// in shared memory, as for Python's locks, and the kernel's robust-mutex
// list releases a lock whose holder thread or process ends (EOWNERDEAD for
// the next acquirer, which is told). An error-checking mutex refuses a
// second acquisition by its holder (EDEADLK) instead of waiting forever; a
// recursive one counts them.
//
// Across hosts: in a worker process of another host (runtime::
// owner_elsewhere()), a lock this process did not make is used through the
// lock server of the pool's process (lock_server.hpp), over one connection
// per thread; a lock the server does not find on its host is one of this
// host, used here as any other.

#include "actors/lock.hpp"

#include "base/random.hpp"
#include "lock/lock_server.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <utility>

#include <poll.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/auth.hpp"
#include "wire/channel.hpp"
#include "node/runtime.hpp"

namespace actors {

namespace {

struct slot {
  pthread_mutex_t mtx;
};

struct header {
  std::uint64_t id;                // random: tells this arena from any other
  std::atomic<std::uint32_t> next; // the next free slot
};

// 16384 locks per creating process; the memfd is sparse, a page is only
// backed once a lock on it is made.
constexpr std::uint32_t capacity = 16384;
constexpr std::size_t slot_size = 64;
constexpr std::size_t arena_size = slot_size * (capacity + 1);

static_assert(sizeof(slot) <= slot_size && sizeof(header) <= slot_size);

class arenas {
public:
  static arenas& get() {
    static auto* instance = new arenas; // never destroyed: locks outlive main
    return *instance;
  }

  // This process's arena: its ref without the slot, and its base; made on
  // first use.
  std::pair<detail::lock_handle_ref, char*> own() {
    std::lock_guard<std::mutex> guard{mtx_};
    auto pid = static_cast<std::int32_t>(::getpid());
    // A child forked by the fork server has a copy of this table: its own
    // arena is the one made by its own pid.
    if (own_.first != pid) {
      auto fd = ::memfd_create("actors-locks", MFD_CLOEXEC);
      if (fd < 0 || ::ftruncate(fd, arena_size) != 0)
        throw error(errc::spawn_failed,
                    std::string{"cannot make shared memory for locks: "}
                      + std::strerror(errno));
      auto* base = map(fd);
      auto* head = new (base) header;
      head->id = detail::random_value<std::uint64_t>();
      head->next = 0;
      own_ = {pid, fd};
      own_id_ = head->id;
      mapped_[own_] = base;
    }
    detail::lock_handle_ref ref;
    ref.pid = own_.first;
    ref.fd = own_.second;
    ref.arena = own_id_;
    return {ref, mapped_[own_]};
  }

  // Whether `ref` is a lock of this host that this process uses directly
  // even as a worker of another host's pool: one it made, or one the
  // pool's host said is not its own.
  bool here(const detail::lock_handle_ref& ref) {
    std::lock_guard<std::mutex> guard{mtx_};
    return (own_.first == ::getpid() && own_id_ == ref.arena)
           || here_.count(ref.arena) > 0;
  }

  void mark_here(std::uint64_t arena) {
    std::lock_guard<std::mutex> guard{mtx_};
    here_.insert(arena);
  }

  // The arena of `ref`, mapped here.
  char* of(const detail::lock_handle_ref& ref) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = mapped_.find({ref.pid, ref.fd});
    if (i != mapped_.end()
        && reinterpret_cast<header*>(i->second)->id == ref.arena)
      return i->second;
    auto gone = [&](const std::string& why) {
      return error(errc::owner_unreachable,
                   "the process that made the lock (pid "
                     + std::to_string(ref.pid)
                     + ") is gone, and with it the lock's memory: " + why);
    };
    if (ref.pid <= 0 || ref.fd < 0)
      throw gone("no such process");
    auto path = "/proc/" + std::to_string(ref.pid) + "/fd/"
                + std::to_string(ref.fd);
    // Only an arena of the right kind, size and id is the lock's: the pid
    // may have been reused, and a handle may come from another host (or
    // from anyone holding the key): nothing else is opened, let alone a
    // device or a pipe.
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
      throw gone(std::strerror(errno));
    if (!S_ISREG(st.st_mode) || static_cast<std::size_t>(st.st_size) != arena_size)
      throw gone("its memory is not there");
    auto opened = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (opened < 0)
      throw gone(std::strerror(errno));
    if (::fstat(opened, &st) != 0 || !S_ISREG(st.st_mode)
        || static_cast<std::size_t>(st.st_size) != arena_size) {
      ::close(opened);
      throw gone("its memory is not there");
    }
    auto* base = map(opened);
    ::close(opened);
    if (reinterpret_cast<header*>(base)->id != ref.arena) {
      ::munmap(base, arena_size);
      throw gone("its memory is not there");
    }
    // Replaces the mapping of an arena that has gone (its pid reused): the
    // old one stays mapped, since handles may still point into it.
    mapped_[{ref.pid, ref.fd}] = base;
    return base;
  }

private:
  static char* map(int fd) {
    auto* p = ::mmap(nullptr, arena_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     fd, 0);
    if (p == MAP_FAILED)
      throw error(errc::spawn_failed,
                  std::string{"cannot map the shared memory of locks: "}
                    + std::strerror(errno));
    return static_cast<char*>(p);
  }

  std::mutex mtx_;
  std::pair<std::int32_t, std::int32_t> own_{-1, -1};
  std::uint64_t own_id_ = 0;
  std::map<std::pair<std::int32_t, std::int32_t>, char*> mapped_;
  std::set<std::uint64_t> here_;
};

} // namespace

namespace detail {

pthread_mutex_t* map_lock(const lock_handle_ref& ref) {
  if (ref.slot == 0)
    throw error(errc::invalid_argument, "the lock handle is empty");
  auto* base = arenas::get().of(ref);
  auto made = reinterpret_cast<header*>(base)->next.load();
  if (ref.slot > capacity || ref.slot > made)
    throw error(errc::invalid_argument,
                "the lock handle names no lock (slot "
                  + std::to_string(ref.slot) + ")");
  return &reinterpret_cast<slot*>(base + ref.slot * slot_size)->mtx;
}

timespec monotonic_after(std::int64_t ns) {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  timespec deadline;
  deadline.tv_sec = now.tv_sec + static_cast<time_t>(ns / 1000000000);
  deadline.tv_nsec = now.tv_nsec + static_cast<long>(ns % 1000000000);
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000;
  }
  return deadline;
}

int take_native(pthread_mutex_t* m, bool once, const timespec* deadline) {
  int rc;
  if (once) {
    rc = pthread_mutex_trylock(m);
    // Its holder asking again: EDEADLK, as for a wait (glibc records the
    // holder's thread id); the caller says what that means.
    if (rc == EBUSY && m->__data.__owner == ::gettid())
      rc = EDEADLK;
  } else if (deadline == nullptr) {
    rc = pthread_mutex_lock(m);
  } else {
    rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, deadline);
  }
  if (rc == EOWNERDEAD)
    pthread_mutex_consistent(m);
  return rc;
}

} // namespace detail

namespace {

// -- the client side across hosts --------------------------------------------

// One thread's connection to the lock server of the pool's host. A forked
// copy of this process must not speak on its parent's connection, nor keep
// it open (the server would not see its client end): at fork, the copy's
// descriptor is replaced by /dev/null and the link marked stale.
struct lock_link {
  std::unique_ptr<detail::channel> ch;
  pid_t pid = 0; // the process that connected

  lock_link();
  ~lock_link();
};

struct link_registry {
  std::mutex mtx;
  std::set<lock_link*> all;

  static link_registry& get() {
    static auto* instance = [] {
      auto* r = new link_registry; // never destroyed: threads outlive main
      ::pthread_atfork([] { link_registry::get().mtx.lock(); },
                       [] { link_registry::get().mtx.unlock(); },
                       [] {
                         auto& self = link_registry::get();
                         auto null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
                         for (auto* l : self.all) {
                           if (l->ch && null >= 0)
                             ::dup3(null, l->ch->fd(), O_CLOEXEC);
                           l->pid = 0;
                         }
                         if (null >= 0)
                           ::close(null);
                         self.mtx.unlock();
                       });
      return r;
    }();
    return *instance;
  }
};

lock_link::lock_link() {
  auto& r = link_registry::get();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.all.insert(this);
}

lock_link::~lock_link() {
  auto& r = link_registry::get();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.all.erase(this);
  ch.reset(); // the server sees this thread end
}

using owner_ref = detail::runtime::remote_owner;

std::string where(const owner_ref& owner) {
  return owner.host + ":" + std::to_string(owner.port);
}

// The pool's host to ask about `ref`, or null to use it here.
const owner_ref* route(const detail::lock_handle_ref& ref) {
  auto* owner = detail::runtime::owner_elsewhere();
  if (owner == nullptr || arenas::get().here(ref))
    return nullptr;
  return owner;
}

struct answer {
  std::uint8_t outcome = detail::lock_protocol::failed;
  std::int32_t code = 0;
  std::string text;
};

// Asks the lock server of `owner` (kind, ref[, timeout_ns]) and waits for
// its answer; errc::owner_unreachable, naming what happened, when the
// server cannot be reached or its answer does not come.
answer ask(const owner_ref& owner, std::uint8_t kind,
           const detail::lock_handle_ref& ref, std::int64_t timeout_ns) {
  thread_local lock_link link;
  auto pid = ::getpid();
  if (link.ch && link.pid != pid)
    link.ch.reset(); // a forked copy's: /dev/null by now
  if (!link.ch) {
    int fd;
    try {
      fd = detail::connect_authenticated(
        owner.host, owner.port, owner.key, detail::purpose::lock,
        std::max(owner.lost_after, std::chrono::milliseconds{1000}));
    } catch (const error& e) {
      throw error(errc::owner_unreachable,
                  "the lock's host " + where(owner)
                    + " (the pool's) cannot be reached: " + e.what());
    }
    detail::watch_link(fd, owner.lost_after);
    link.ch = std::make_unique<detail::channel>(fd);
    link.pid = pid;
  }
  auto& ch = *link.ch;
  auto lost = [&](const std::string& what) {
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(ch.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    link.ch.reset();
    return error(errc::owner_unreachable,
                 "the connection to the lock's host " + where(owner)
                   + " (the pool's) was lost " + what + " ("
                   + (err != 0 ? std::strerror(err) : "closed") + ")"
                   + "; the locks this thread held there are released as "
                     "if it had died");
  };
  caf::error err;
  if (kind == detail::lock_protocol::acquire_frame) {
    auto r = ref;
    err = ch.put(kind, r.pid, r.fd, r.arena, r.slot, timeout_ns);
  } else {
    auto r = ref;
    err = ch.put(kind, r.pid, r.fd, r.arena, r.slot);
  }
  if (err || !ch.flush(true))
    throw lost("sending a request");
  // The server answers an acquisition by its timeout: waiting longer than
  // that and a lost link's bound means the answer will not come.
  auto until = std::chrono::steady_clock::time_point::max();
  constexpr std::int64_t ages = std::int64_t{1} << 60; // 36 years: forever
  if (timeout_ns >= 0 && timeout_ns < ages)
    until = std::chrono::steady_clock::now()
            + std::chrono::nanoseconds{timeout_ns} + owner.lost_after
            + std::chrono::seconds{1};
  for (;;) {
    if (auto f = ch.next()) {
      answer a;
      if (f->kind != detail::lock_protocol::answer_frame
          || ch.get(*f, a.outcome, a.code, a.text))
        throw lost("(a malformed answer)");
      return a;
    }
    int wait_ms = -1;
    if (until != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        throw lost("waiting for an answer");
      wait_ms = static_cast<int>(
        std::min<std::int64_t>(left.count() + 1, INT32_MAX));
    }
    pollfd p{ch.fd(), POLLIN, 0};
    auto n = ::poll(&p, 1, wait_ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0 && !ch.fill(false))
      throw lost("waiting for an answer");
  }
}

// The error the lock server answered.
[[noreturn]] void fail(const answer& a) {
  if (a.outcome != detail::lock_protocol::failed || a.code <= 0)
    throw error(errc::owner_unreachable,
                "the lock's host (the pool's) gave an answer not understood "
                "here: "
                  + std::to_string(a.outcome));
  throw error(static_cast<errc>(a.code), a.text);
}

// The lock of `ref`, which the pool's host says is not its own
// (`pool_says`): one of this host, used here from now on; or reachable
// from nowhere.
void local_after_all(const detail::lock_handle_ref& ref,
                     const std::string& pool_says) {
  try {
    detail::map_lock(ref);
  } catch (const error& e) {
    if (e.code() != errc::owner_unreachable)
      throw;
    throw error(errc::owner_unreachable,
                "the lock is on neither the pool's host nor this one: the "
                "pool's host says: "
                  + pool_says + "; this host: " + e.what());
  }
  arenas::get().mark_here(ref.arena);
}

} // namespace

namespace detail {

template <class Handle>
Handle make_lock_of_type(int type) {
  auto [ref, base] = arenas::get().own();
  auto* head = reinterpret_cast<header*>(base);
  auto index = head->next.fetch_add(1) + 1;
  if (index > capacity)
    throw error(errc::invalid_argument,
                "a process can make at most " + std::to_string(capacity)
                  + " locks");
  auto* s = new (base + index * slot_size) slot;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, type);
  pthread_mutex_init(&s->mtx, &attr);
  pthread_mutexattr_destroy(&attr);
  Handle result;
  result.ref_ = ref;
  result.ref_.slot = index;
  return result;
}

pthread_mutex_t* lock_handle::native() const {
  // Threads may share one handle: the cache is read and written atomically.
  if (auto* m = __atomic_load_n(&mapped_, __ATOMIC_ACQUIRE))
    return m;
  auto* m = map_lock(ref_);
  __atomic_store_n(&mapped_, m, __ATOMIC_RELEASE);
  return m;
}

lock_handle::acquired lock_handle::acquire(std::optional<duration> timeout) {
  if (timeout && *timeout < duration::zero())
    timeout = duration::zero(); // as Python: a negative timeout is zero
  if (ref_.slot == 0)
    throw error(errc::invalid_argument, "the lock handle is empty");
  if (auto* owner = route(ref_)) {
    auto ns = timeout ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                          *timeout)
                          .count()
                      : std::int64_t{-1};
    auto a = ask(*owner, lock_protocol::acquire_frame, ref_, ns);
    switch (a.outcome) {
      case lock_protocol::not_acquired:
        return acquired::no;
      case lock_protocol::acquired:
        return acquired::yes;
      case lock_protocol::owner_died:
        return acquired::previous_owner_died;
      case lock_protocol::not_on_this_host:
        local_after_all(ref_, a.text);
        break; // one of this host
      default:
        fail(a);
    }
  }
  auto* m = native();
  timespec deadline;
  bool once = timeout && *timeout == duration::zero();
  if (timeout && !once)
    deadline = monotonic_after(
      std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count());
  switch (auto rc = take_native(m, once, timeout && !once ? &deadline : nullptr)) {
    case 0:
      return acquired::yes;
    case EOWNERDEAD:
      return acquired::previous_owner_died;
    case ETIMEDOUT:
    case EBUSY:
      return acquired::no;
    case EDEADLK:
      // Held by this thread: a bounded call cannot get it, an unbounded
      // one would wait for itself forever.
      if (timeout)
        return acquired::no;
      throw error(errc::would_deadlock,
                  "this thread holds the lock already (use an rlock to "
                  "acquire it again)");
    default:
      throw error(errc::invalid_argument,
                  std::string{"the lock cannot be acquired: "}
                    + std::strerror(rc));
  }
}

void lock_handle::release() {
  if (ref_.slot == 0)
    throw error(errc::invalid_argument, "the lock handle is empty");
  if (auto* owner = route(ref_)) {
    auto a = ask(*owner, lock_protocol::release_frame, ref_, 0);
    if (a.outcome == lock_protocol::released)
      return;
    if (a.outcome != lock_protocol::not_on_this_host)
      fail(a);
    local_after_all(ref_, a.text);
  }
  if (pthread_mutex_unlock(native()) != 0)
    throw error(errc::not_owner, "this thread does not hold the lock");
}

} // namespace detail

mutex make_lock() {
  return detail::make_lock_of_type<mutex>(PTHREAD_MUTEX_ERRORCHECK);
}

rlock make_rlock() {
  return detail::make_lock_of_type<rlock>(PTHREAD_MUTEX_RECURSIVE);
}

} // namespace actors
