// The lock server of a pool's process: serves the lock operations of
// threads of other hosts (lock_server.hpp has the protocol).

#include "lock/lock_server.hpp"

#include "base/deadline.hpp"
#include "lock/arena.hpp"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "wire/channel.hpp"

namespace actors::detail {

namespace {

// The statistics, and the descriptors being served (lock_server_cut_all).
struct server_state {
  std::mutex mtx;
  std::condition_variable changed;
  lock_server_stats stats;
  std::set<int> fds;

  static server_state& get() {
    static auto* instance = new server_state; // serving threads outlive main
    return *instance;
  }

  template <class F>
  void update(F fn) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      fn(stats);
    }
    changed.notify_all();
  }
};

// Counts an acquisition that waits while it waits.
struct waiting_scope {
  explicit waiting_scope(bool waits) : waits_(waits) {
    if (waits_)
      server_state::get().update([](lock_server_stats& s) { ++s.waiting; });
  }
  ~waiting_scope() {
    if (waits_)
      server_state::get().update([](lock_server_stats& s) { --s.waiting; });
  }
  waiting_scope(const waiting_scope&) = delete;
  waiting_scope& operator=(const waiting_scope&) = delete;

private:
  bool waits_;
};

// Registers a connection being served for as long as it is (ended before
// its descriptor is closed, so that a cut never hits a reused number).
struct serving_scope {
  explicit serving_scope(int fd) : fd_(fd) {
    auto& st = server_state::get();
    st.update([&](lock_server_stats&) { st.fds.insert(fd_); });
  }
  ~serving_scope() {
    auto& st = server_state::get();
    st.update([&](lock_server_stats& s) {
      st.fds.erase(fd_);
      --s.active;
    });
  }
  serving_scope(const serving_scope&) = delete;
  serving_scope& operator=(const serving_scope&) = delete;

private:
  int fd_;
};

// How long a waiting acquisition waits before it looks whether its client
// is still there: a client that vanished is noticed within this (plus the
// link's lost_after when its host vanished without a word).
constexpr std::int64_t slice_ns = 200'000'000;

// Requests are a few numbers: a bigger frame is not from a client of ours.
constexpr std::uint32_t max_frame = 256;

// Whether the client is gone: its end closed, the link failed, or it sent
// something while it should wait for an answer (not one of ours).
bool client_gone(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  int n;
  while ((n = ::poll(&p, 1, 0)) < 0 && errno == EINTR) {
  }
  return n != 0;
}

// Acquires `m` for the client within `timeout_ns` (-1: forever), in slices
// between which it looks whether the client is still there; `gone` tells
// that it is not (then the result is ETIMEDOUT).
int acquire_for(pthread_mutex_t* m, std::int64_t timeout_ns, int fd,
                bool& gone) {
  if (timeout_ns == 0)
    return take_native(m, true, nullptr);
  deadline until;
  if (auto t = wire_timeout(timeout_ns))
    until = deadline{*t};
  for (;;) {
    if (until.passed())
      return ETIMEDOUT;
    deadline slice{std::chrono::nanoseconds{slice_ns}};
    auto next = until.bounded() && until.when() < slice.when() ? until : slice;
    auto at = next.monotonic();
    auto rc = take_native(m, false, &at);
    if (rc != ETIMEDOUT)
      return rc;
    if (client_gone(fd)) {
      gone = true;
      return ETIMEDOUT;
    }
  }
}

using answer = lock_answer;

answer failure(errc code, std::string text) {
  answer a;
  static_cast<status&>(a) = status::failure(code, std::move(text));
  return a;
}

// The mutex of `ref`, or why not.
pthread_mutex_t* find(const lock_handle_ref& ref, answer& a) {
  try {
    return map_lock(ref);
  } catch (const error& e) {
    if (e.code() == errc::owner_unreachable) {
      a.outcome = lock_protocol::not_on_this_host;
      a.what = e.what();
    } else {
      a = failure(static_cast<errc>(e.code().value()), e.what());
    }
    return nullptr;
  }
}

void serve(int fd) {
  channel ch{fd};
  serving_scope serving{fd};
  lock_handle_ref ref;
  for (;;) {
    if (auto size = ch.next_size(); size && *size > max_frame)
      return; // not our protocol
    auto f = ch.next();
    if (!f) {
      if (!ch.fill(true))
        return; // the client is gone: whatever it held, it held till it died
      continue;
    }
    answer a;
    bool keep_on_loss = true; // what to do with a lock got for a lost client
    pthread_mutex_t* taken = nullptr;
    if (f->kind == lock_protocol::acquire_frame) {
      std::int64_t timeout_ns = 0;
      if (ch.get(*f, ref.pid, ref.fd, ref.arena, ref.slot, timeout_ns))
        return;
      if (auto* m = find(ref, a)) {
        bool gone = false;
        int rc;
        {
          waiting_scope waiting{timeout_ns != 0};
          rc = acquire_for(m, timeout_ns, fd, gone);
        }
        if (gone)
          return;
        switch (rc) {
          case 0:
            a.outcome = lock_protocol::acquired;
            taken = m;
            keep_on_loss = false;
            break;
          case EOWNERDEAD:
            a.outcome = lock_protocol::owner_died;
            taken = m;
            break;
          case ETIMEDOUT:
          case EBUSY:
            a.outcome = lock_protocol::not_acquired;
            break;
          case EDEADLK:
            if (timeout_ns >= 0) { // bounded: not acquired, as here
              a.outcome = lock_protocol::not_acquired;
              break;
            }
            a = failure(errc::would_deadlock,
                        "this thread holds the lock already (use an rlock "
                        "to acquire it again)");
            break;
          default:
            a = failure(errc::invalid_argument,
                        std::string{"the lock cannot be acquired: "}
                          + std::strerror(rc));
        }
      }
    } else if (f->kind == lock_protocol::release_frame) {
      if (ch.get(*f, ref.pid, ref.fd, ref.arena, ref.slot))
        return;
      if (auto* m = find(ref, a)) {
        if (pthread_mutex_unlock(m) == 0)
          a.outcome = lock_protocol::released;
        else
          a = failure(errc::not_owner, "this thread does not hold the lock");
      }
    } else {
      return; // not our protocol
    }
    server_state::get().update([](lock_server_stats& s) { ++s.requests; });
    // A client that vanished while it waited does not get the lock it
    // asked for: it is released as if never taken. (Taken over from a dead
    // holder, it stays held, so that the next acquirer is told.)
    auto lost = (taken && client_gone(fd))
                || ch.put(lock_protocol::answer_frame, a)
                || !ch.flush(true);
    if (lost) {
      if (taken && !keep_on_loss)
        pthread_mutex_unlock(taken);
      return;
    }
  }
}

} // namespace

void serve_lock_stream(int fd) {
  server_state::get().update([](lock_server_stats& s) {
    ++s.connections;
    ++s.active;
  });
  try {
    std::thread{[fd] {
      serve(fd);
      // The thread ends here: the kernel's robust list marks the mutexes it
      // still holds as left by a dead owner.
    }}.detach();
  } catch (const std::system_error&) {
    // No thread to be had: the client sees its connection end.
    server_state::get().update([](lock_server_stats& s) { --s.active; });
    ::close(fd);
  }
}

lock_server_stats lock_server_statistics() {
  auto& st = server_state::get();
  std::lock_guard<std::mutex> guard{st.mtx};
  return st.stats;
}

bool lock_server_await(const std::function<bool(const lock_server_stats&)>& pred,
                       std::chrono::milliseconds timeout) {
  auto& st = server_state::get();
  std::unique_lock<std::mutex> guard{st.mtx};
  return st.changed.wait_for(guard, timeout, [&] { return pred(st.stats); });
}

void lock_server_cut_all() {
  auto& st = server_state::get();
  std::lock_guard<std::mutex> guard{st.mtx};
  for (auto fd : st.fds)
    ::shutdown(fd, SHUT_RDWR);
}

} // namespace actors::detail
