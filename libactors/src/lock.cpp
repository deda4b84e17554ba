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

#include "actors/lock.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

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
      if (::getrandom(&head->id, sizeof(head->id), 0) != sizeof(head->id))
        head->id = static_cast<std::uint64_t>(pid) << 32 ^ ::time(nullptr);
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
    auto path = "/proc/" + std::to_string(ref.pid) + "/fd/"
                + std::to_string(ref.fd);
    auto opened = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (opened < 0)
      throw gone(std::strerror(errno));
    // The pid may have been reused: only an arena of the right size and id
    // is the lock's.
    struct stat st;
    if (::fstat(opened, &st) != 0
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
};

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
  if (ref_.slot == 0)
    throw error(errc::invalid_argument, "the lock handle is empty");
  auto* base = arenas::get().of(ref_);
  auto* m = &reinterpret_cast<slot*>(base + ref_.slot * slot_size)->mtx;
  __atomic_store_n(&mapped_, m, __ATOMIC_RELEASE);
  return m;
}

lock_handle::acquired lock_handle::acquire(std::optional<duration> timeout) {
  if (timeout && *timeout < duration::zero())
    throw error(errc::invalid_argument, "a timeout must not be negative");
  auto* m = native();
  int rc;
  if (!timeout) {
    rc = pthread_mutex_lock(m);
  } else if (*timeout == duration::zero()) {
    rc = pthread_mutex_trylock(m);
    // Its holder asking again is an error, as for lock() (glibc records the
    // holder's thread id).
    if (rc == EBUSY && m->__data.__owner == ::gettid())
      rc = EDEADLK;
  } else {
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout)
                .count();
    timespec deadline;
    deadline.tv_sec = now.tv_sec + static_cast<time_t>(ns / 1000000000);
    deadline.tv_nsec = now.tv_nsec + static_cast<long>(ns % 1000000000);
    if (deadline.tv_nsec >= 1000000000) {
      deadline.tv_sec += 1;
      deadline.tv_nsec -= 1000000000;
    }
    rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &deadline);
  }
  switch (rc) {
    case 0:
      return acquired::yes;
    case EOWNERDEAD:
      pthread_mutex_consistent(m);
      return acquired::previous_owner_died;
    case ETIMEDOUT:
    case EBUSY:
      return acquired::no;
    case EDEADLK:
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
