// The arenas of locks of this host; lock/arena.hpp says how they work.

#include "lock/arena.hpp"

#include "base/random.hpp"
#include "shm/shared_memory.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <utility>

#include <unistd.h>

namespace actors::detail {

namespace {

struct slot {
  pthread_mutex_t mtx;
};

struct header {
  std::uint64_t id;                // random: tells this arena from any other
  std::atomic<std::uint32_t> next; // the next free slot
};

// 16384 locks per making process; the memfd is sparse, a page is only
// backed once a lock on it is made.
constexpr std::uint32_t capacity = 16384;
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
  std::pair<lock_handle_ref, char*> own() {
    std::lock_guard<std::mutex> guard{mtx_};
    auto pid = static_cast<std::int32_t>(::getpid());
    // A child forked by the fork server has a copy of this table: its own
    // arena is the one made by its own pid.
    if (own_.first != pid) {
      auto made = make_shared_memory("actors-locks", arena_size);
      if (!made.memory)
        throw error(errc::spawn_failed,
                    std::string{"cannot make shared memory for locks: "}
                      + std::strerror(errno));
      // Both stay for the life of the process: the descriptor names the
      // arena to others, and handles point into the memory.
      auto fd = made.fd.release();
      auto* base = static_cast<char*>(made.memory.release());
      auto* head = new (base) header;
      head->id = random_value<std::uint64_t>();
      head->next = 0;
      own_ = {pid, fd};
      own_id_ = head->id;
      mapped_[own_] = base;
    }
    lock_handle_ref ref;
    ref.pid = own_.first;
    ref.fd = own_.second;
    ref.arena = own_id_;
    return {ref, mapped_[own_]};
  }

  bool is_local(const lock_handle_ref& ref) {
    std::lock_guard<std::mutex> guard{mtx_};
    return (own_.first == ::getpid() && own_id_ == ref.arena)
           || local_.count(ref.arena) > 0;
  }

  void mark_local(std::uint64_t arena) {
    std::lock_guard<std::mutex> guard{mtx_};
    local_.insert(arena);
  }

  // The arena of `ref`, mapped into this process.
  char* mapped(const lock_handle_ref& ref) {
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
    // Only an arena of the right kind, size and id is the lock's: the pid
    // may have been reused, and a handle may come from another host (or
    // from anyone holding the key).
    std::string why;
    auto memory = map_peer_memory(ref.pid, ref.fd, arena_size, why);
    if (!memory)
      throw gone(why);
    auto* base = static_cast<char*>(memory.get());
    if (reinterpret_cast<header*>(base)->id != ref.arena)
      throw gone("its memory is not there");
    // Replaces the mapping of an arena that has gone (its pid reused): the
    // old one stays mapped, since handles may still point into it.
    mapped_[{ref.pid, ref.fd}] = static_cast<char*>(memory.release());
    return base;
  }

private:
  std::mutex mtx_;
  std::pair<std::int32_t, std::int32_t> own_{-1, -1};
  std::uint64_t own_id_ = 0;
  std::map<std::pair<std::int32_t, std::int32_t>, char*> mapped_;
  std::set<std::uint64_t> local_;
};

} // namespace

void init_robust_mutex(pthread_mutex_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, type);
  pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
}

std::pair<lock_handle_ref, char*> make_slots(std::uint32_t n) {
  auto [ref, base] = arenas::get().own();
  auto* head = reinterpret_cast<header*>(base);
  // Slots are never given back: a full arena stays full.
  auto first = head->next.fetch_add(n) + 1;
  if (n == 0 || first > capacity || capacity - first + 1 < n) {
    head->next.fetch_sub(n);
    throw error(errc::invalid_argument,
                "a process can make at most " + std::to_string(capacity)
                  + " lock slots (a lock takes 1, a condition or a barrier "
                    "one per waiter and 2 or 3 besides)");
  }
  ref.slot = first;
  return {ref, base + first * slot_size};
}

lock_handle_ref make_lock_slot(int type) {
  auto [ref, memory] = make_slots(1);
  init_robust_mutex(&(new (memory) slot)->mtx, type);
  return ref;
}

char* map_slots(const lock_handle_ref& ref, std::uint32_t n) {
  if (ref.slot == 0)
    throw error(errc::invalid_argument, "the handle is empty");
  auto* base = arenas::get().mapped(ref);
  auto made = reinterpret_cast<header*>(base)->next.load();
  if (ref.slot > capacity || n > made || ref.slot > made - n + 1)
    throw error(errc::invalid_argument,
                "the handle names nothing that was made (slot "
                  + std::to_string(ref.slot) + ")");
  return base + ref.slot * slot_size;
}

pthread_mutex_t* map_lock(const lock_handle_ref& ref) {
  return &reinterpret_cast<slot*>(map_slots(ref, 1))->mtx;
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

bool lock_is_local(const lock_handle_ref& ref) {
  return arenas::get().is_local(ref);
}

void mark_lock_local(std::uint64_t arena) {
  arenas::get().mark_local(arena);
}

} // namespace actors::detail
