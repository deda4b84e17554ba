// Workers of other hosts (worker.hpp): connections authenticated at the
// pool's listener are admitted here. A worker greets (hello: program id,
// host, pid) and is welcomed (the initializer, lost_after) or refused; it
// then takes a worker slot of its own (a free one, or a new one) and is fed
// as a local worker process (process_workers.cpp), but its death is not
// charged to a restart budget (the pool does not replace it: its host
// does), and a worker from which nothing arrived for lost_after is lost.
// The listener also carries the other links of other hosts: nodes (actor
// handles in tasks), queue and pipe streams, and locks.

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include "base/deadline.hpp"
#include "net/tls.hpp"
#include "lock/lock_server.hpp"
#include "node/runtime.hpp"
#include "pool/pool_state.hpp"
#include "pool/worker.hpp"
#include "queue/queue_hub.hpp"

namespace actors::detail {

void pool_state::on_connection(int fd, purpose p) {
  watch_link(fd, opts.lost_after);
  if (p == purpose::node) {
    runtime::get().accept_node(fd); // BASP, for actor handles in tasks
    return;
  }
  if (p == purpose::hub) {
    queue_hub::local().serve_stream(fd); // queues and pipes
    return;
  }
  if (p == purpose::lock) {
    serve_lock_stream(fd); // a thread of another host using our locks
    return;
  }
  if (p != purpose::worker) {
    ::close(fd); // a client of an actors::listener knocked on a pool's port
    return;
  }
  std::lock_guard<std::mutex> guard{mtx};
  auto w = std::find_if(workers.begin(), workers.end(),
                        [](const worker& x) { return x.vacant; });
  if (w == workers.end()) {
    w = workers.emplace(workers.end());
    w->tasks = &table.add_worker();
    w->remote = true;
    w->wake_fd = make_wake_fd();
  } else if (w->thread.joinable()) {
    w->thread.join(); // its last worker has left (vacant is its last act)
  }
  w->vacant = false;
  w->hosting = false;
  w->shutting = false;
  w->hosted.clear();
  w->tasks->retiring = false;
  w->idle = false;
  w->woken = false;
  auto self = shared_from_this();
  w->thread = own_thread([self, &w = *w, fd] { self->remote_loop(w, fd); });
}

// Serves the remote worker on `fd` in slot `w` until it leaves or is lost;
// then its tasks are retried on the others.
void pool_state::remote_loop(worker& w, int fd) {
  std::vector<delivery> out;
  {
    channel ch{fd};
    std::string host;
    std::uint32_t pid = 0;
    auto why = greet(ch, host, pid);
    auto who = std::to_string(pid) + " on " + host;
    bool closing = false;
    {
      std::lock_guard<std::mutex> guard{mtx};
      closing = why.empty() && (ended() || stopping);
      if (why.empty() && !closing) {
        w.host = host;
        w.pid = pid;
        w.link = fd;
        ++remote_workers;
        joined.notify_all();
      }
    }
    if (closing) {
      ch.put(closed_frame);
      ch.flush(true);
    } else if (!why.empty()) {
      if (!ch.put(refused_frame, why))
        ch.flush(true);
    } else if (welcome(ch)) {
      auto joined_at = clock::now();
      auto stopped = feed(w, ch, out);
      // Encrypted, the stream's user sees an end; the pump knows why.
      auto reason = lost_reason(ch.failure() != 0 ? ch.failure()
                                                  : far_end_failure(fd));
      std::lock_guard<std::mutex> guard{mtx};
      w.link = -1;
      --remote_workers;
      // A host that ends loses its workers one after the other, and the
      // tasks of the first may have moved to the next meanwhile: one event,
      // one charge. A worker that joined after its host's last loss (a
      // process started in a dead one's place) is charged as usual, so a
      // task that kills every process that runs it still fails.
      auto same_loss = lost_since(w.host, joined_at);
      if (!stopped && !w.tasks->retiring)
        note_loss(w.host);
      if (!stopped || !w.tasks->taken.empty())
        on_worker_lost(w, "worker " + who + " " + reason, false, out,
                       same_loss ? std::optional<last_run>{last_run{}}
                                 : std::nullopt);
    } else {
      std::lock_guard<std::mutex> guard{mtx};
      w.link = -1;
      --remote_workers;
    }
  }
  deliver(out);
  std::lock_guard<std::mutex> guard{mtx};
  w.vacant = true;
}

// Reads a joining worker's hello (within lost_after); returns why it may
// not join (empty if it may) and sets its host's name and its pid.
std::string pool_state::greet(channel& ch, std::string& host,
                              std::uint32_t& pid) {
  deadline until{opts.lost_after};
  for (;;) {
    if (auto f = ch.next()) {
      std::string id;
      if (f->kind != hello_frame || ch.get(*f, id, host, pid))
        return "it did not greet as a worker";
      if (id != program_id())
        return "it runs another program (build " + id
               + ") than the pool (build " + program_id()
               + "): tasks are code of the pool's program";
      return {};
    }
    pollfd p{ch.fd(), POLLIN, 0};
    if (until.passed() || ::poll(&p, 1, until.poll_ms()) == 0)
      return "it did not greet within "
             + std::to_string(opts.lost_after.count()) + " ms";
    if (!ch.fill(false))
      return "it left before greeting";
  }
}

void pool_state::note_loss(const std::string& host) {
  auto now = clock::now();
  auto forget = now - 2 * opts.lost_after;
  losses.erase(std::remove_if(losses.begin(), losses.end(),
                              [&](const auto& x) {
                                return x.first == host || x.second < forget;
                              }),
               losses.end());
  losses.emplace_back(host, now);
}

bool pool_state::lost_since(const std::string& host,
                            clock::time_point since) const {
  auto forget = clock::now() - 2 * opts.lost_after;
  return std::any_of(losses.begin(), losses.end(), [&](const auto& x) {
    return x.first == host && x.second >= since && x.second >= forget;
  });
}

std::uint64_t pool_state::host_actor(const std::string& host, closure target,
                                     std::shared_ptr<result_sink> sink,
                                     std::string& where) {
  std::lock_guard<std::mutex> guard{mtx};
  if (opts.task_timeout)
    throw error(errc::spawn_failed,
                "a pool with a task timeout cannot run actors on its hosts: "
                "an actor runs until it ends");
  if (ended() || closed || stopping)
    throw error(errc::spawn_failed,
                "the pool whose hosts would run the actor is "
                  + std::string{ended() ? "terminated or broken" : "closed"});
  auto recent = [&](const std::string& name) {
    auto forget = clock::now() - 2 * opts.lost_after;
    return std::any_of(losses.begin(), losses.end(), [&](const auto& x) {
      return x.first == name && x.second >= forget;
    });
  };
  auto actors_on = [&](const std::string& name) {
    return std::count_if(workers.begin(), workers.end(), [&](const worker& x) {
      return x.remote && x.link >= 0 && x.hosting && x.host == name;
    });
  };
  // Best first: not just lost a worker, fewest actors on its host, idle,
  // fewest tasks held.
  worker* best = nullptr;
  auto rank = [&](worker& x) {
    return std::make_tuple(recent(x.host), actors_on(x.host), !x.idle,
                           x.tasks->taken.size());
  };
  std::vector<std::string> seen;
  for (auto& x : workers) {
    if (!x.remote || x.link < 0 || x.vacant)
      continue;
    if (std::find(seen.begin(), seen.end(), x.host) == seen.end())
      seen.push_back(x.host);
    if (x.hosting || x.shutting || (!host.empty() && x.host != host))
      continue;
    if (best == nullptr || rank(x) < rank(*best))
      best = &x;
  }
  if (best == nullptr) {
    std::string joined;
    for (auto& name : seen)
      joined += (joined.empty() ? "" : ", ") + name;
    auto serves = host.empty() ? !seen.empty()
                               : std::find(seen.begin(), seen.end(), host)
                                   != seen.end();
    if (serves)
      throw error(errc::spawn_failed,
                  "every worker process of "
                    + (host.empty() ? "the joined hosts" : "host " + host)
                    + " runs an actor already (start hosts with more "
                      "--actors-processes)");
    throw error(errc::spawn_failed,
                (host.empty() ? "no worker host" : "no host named " + host)
                  + " serves the pool (joined now: "
                  + (joined.empty() ? "none" : joined) + ")");
  }
  auto& w = *best;
  w.hosting = true;
  auto id = table.submit_to(*w.tasks, {target, std::move(sink)});
  w.hosted.emplace_back(id, std::move(target));
  wake_feeder(w);
  where = std::to_string(w.pid) + " on " + w.host;
  return id;
}

// Sends the welcome; false if the worker is gone already.
bool pool_state::welcome(channel& ch) {
  auto ms = static_cast<std::uint32_t>(opts.lost_after.count());
  if (auto err = ch.put(welcome_frame, opts.initializer, ms)) {
    auto why = "the pool's initializer cannot be sent: " + render(err);
    ch.put(refused_frame, why);
    ch.flush(true);
    return false;
  }
  return ch.flush(true);
}

// Why a remote worker's connection ended, from its error (errno).
std::string pool_state::lost_reason(int err) const {
  if (err == ETIMEDOUT)
    return "was lost: no answer from its host for "
           + std::to_string(opts.lost_after.count())
           + " ms (the host is down, stopped or hung, or the link is cut)";
  if (err != 0)
    return std::string{"was lost: "} + std::strerror(err);
  return "disconnected (its process or host ended)";
}

// A remote worker sends alive frames (worker.hpp); a local one's death
// shows at once as the end of its channel.
int pool_state::silence_left(const worker& w, const channel& ch) const {
  if (!w.remote)
    return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(
    ch.heard() + opts.lost_after - clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, INT_MAX));
}

// Silent for lost_after: its host is stopped or hung, or the link is cut,
// even if its kernel answers TCP's keepalives. It is told to retire (a
// fresh process takes its place should the host resume) and its connection
// is dropped, as a cut one (ETIMEDOUT).
bool pool_state::silent(const worker& w, channel& ch) {
  if (!w.remote || clock::now() < ch.heard() + opts.lost_after)
    return false;
  if (!ch.put(retire_frame))
    ch.flush(false);
  ch.abandon(ETIMEDOUT);
  return true;
}

} // namespace actors::detail
