#pragma once

// The CAF side of the links of one process: one link per peer process,
// proxies for the peers' actors, and the threads that make links and
// notice their end.
//
// Protocol: actor messages, downs, monitors, links and unlinks as frames
// (link_protocol.hpp). A proxy made for a peer's actor sends `monitor`; the
// peer attaches a functor to the actor that sends `down` with the real exit
// reason when it ends. Request ids travel unchanged; one ring per direction
// keeps messages from one sender to one receiver in order (link and unlink
// go through a helper actor and may overtake or follow them).
//
// Threads: a receiver thread per link deserializes with a proxy registry of
// its own (so every actor handle read becomes a proxy or the local actor)
// and runs the receiving actor itself through a custom execution unit, so
// that its answer is written by the same thread (link.hpp: a second
// receiver thread reads while the first runs an actor). A watcher thread
// sees the sockets end; a setup thread makes the links that are not made by
// the caller (a handle of a third process: a link to it is made on first
// sight, by name; accepted connections).
//
// Failures: a peer's death (its socket ends) kills all of its proxies with
// the reason (its exit status when it was this process's child) and answers
// every request in flight through the link with it. A request to a dead
// actor is answered with sec::request_receiver_down by the peer. A message
// holding a type CAF cannot serialize fails in the sender: a request gets
// errc::not_registered naming the type, also in replies; a one-way message
// is reported (report()). A handle of a process that no link can reach
// (another host) gives a proxy that is dead from the start, with
// errc::owner_unreachable saying why.
//
// Back-pressure: a sending thread waits while the ring is full, at most
// options::full_wait; then its request fails with errc::timeout (a one-way
// message is reported), nothing of it sent. Receiver threads never wait
// (their frames queue in the link); CAF scheduler threads wait at most
// full_wait.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <sys/types.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/proxy_registry.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <caf/system_messages.hpp>

#include "base/fd.hpp"
#include "base/poller.hpp"
#include "net/auth.hpp"
#include "link/link.hpp"

namespace actors::detail::links {

class manager;
class proxy;

/// A caller waiting for its answer on its own bell (manager::call).
struct waiter {
  caf::message_id mid; // the response it waits for
  std::atomic<std::uint32_t>* bell = nullptr;
  int slot = -1;     // in the incoming ring, or -1
  bool done = false; // guarded by peer::mtx
  caf::message result;
};

/// The CAF side of one link.
struct peer {
  std::shared_ptr<link> lnk;
  std::shared_ptr<manager> mgr; // until the link ends (then reset)
  caf::node_id node;
  pid_t pid = 0;

  std::mutex mtx;
  /// Requests sent through this link and not answered yet, by (sender id,
  /// request id): answered with the link's end reason if it ends.
  std::map<std::pair<caf::actor_id, std::uint64_t>,
           std::pair<caf::weak_actor_ptr, caf::message_id>>
      requests;
  std::unordered_map<caf::actor_id, waiter*> waiters;
  std::atomic<int> waiting{0};
  bool ended = false; // link_ended ran: `reason` is final
  caf::error reason;

  /// Link and unlink frames still to write (queued where CAF holds both
  /// actors' locks; written before any later frame to this link, so a
  /// message sent after link_to() arrives after the link).
  struct link_op {
    bool on;
    caf::strong_actor_ptr who;
    caf::actor_id target;
  };
  std::mutex ops_mtx; // ops (short, nothing else taken inside)
  std::vector<link_op> ops;
  std::mutex flush_mtx; // held while ops are written
  std::atomic<bool> has_ops{false};

  /// The reason the link ended with, once known (else none).
  caf::error end_reason() {
    std::lock_guard<std::mutex> guard{mtx};
    return reason;
  }
};

class manager final : public caf::proxy_registry::backend,
                      public link_handler,
                      public std::enable_shared_from_this<manager> {
public:
  using duration = std::chrono::steady_clock::duration;

  /// How long a connection accepted may stay silent, and then make its
  /// link (a stranger: it does not hold a thread meanwhile).
  static constexpr std::chrono::seconds hello_deadline{2};

  /// How many accepted connections may be silent at once; beyond, the
  /// oldest is closed.
  static constexpr std::size_t max_strangers = 64;

  struct options {
    /// Bytes of each ring (one per direction).
    std::size_t ring_size = 256 * 1024;
    /// How long a sending thread waits for room in a full ring.
    std::chrono::milliseconds full_wait{5000};
    /// How long making a link may take.
    std::chrono::milliseconds setup_timeout{2000};
    /// Accept links by name (abstract socket link_address(key, getpid())).
    bool listen = true;
    /// The actor a peer gets first (hello): the process's service actor.
    caf::actor service;
    /// Makes the proxy for an actor of another host, which no link reaches
    /// (CAF's BASP, over the connections to other hosts); without it such a
    /// proxy is dead from the start.
    std::function<caf::strong_actor_ptr(const caf::node_id&, caf::actor_id)>
        elsewhere;
  };

  /// Starts the links of this process in `sys`, which must outlive the
  /// manager's shutdown() and have a node id (CAF 0.17 gives one with the
  /// middleman). Throws actors::error if it cannot listen.
  static std::shared_ptr<manager> make(caf::actor_system& sys, secret key,
                                       options opts);

  ~manager() override;

  /// Ends every link (peers see `reason`), waits for the threads, kills
  /// every proxy. Call before the actor system ends, and not from an actor
  /// (it may run on a link's receiver thread, which this waits for);
  /// idempotent.
  void shutdown(const caf::error& reason);

  /// Makes a link over `fd`, a connected socket shared with a parent or
  /// child (this takes ownership); returns the peer's service actor (empty if
  /// it has none). Throws actors::error (setup.hpp).
  caf::actor adopt(int fd);

  /// Makes a link over `fd`, a socket shared with a child that may not run
  /// yet (this takes ownership): the setup starts when the child speaks, and
  /// a child that ends without a word leaves nothing behind. Never blocks.
  void adopt_later(int fd);

  /// Makes a link to process `pid` of this run, by name; returns its service
  /// actor. Throws actors::error (setup.hpp).
  caf::actor connect(pid_t pid);

  /// A blocking request from a plain thread, answered on the caller's own
  /// bell: the peer's writer wakes this thread directly (the addressed
  /// doorbell), and it reads its answer itself. `dest` must be an actor of
  /// another process (a proxy); at most `timeout` (duration::max(): no
  /// bound; zero: sent, not waited for). Errors: errc::timeout, the link's
  /// end reason, the peer's answer. The request comes from an actor of this
  /// thread's own (made on its first call, gone with the thread); a late
  /// answer to it is dropped.
  caf::expected<caf::message> call(const caf::actor& dest, caf::message msg,
                                   duration timeout);

  /// True if `dest` is an actor of another process of this host that
  /// call() can reach.
  static bool callable(const caf::actor& dest);

  /// Forgets the caller of thread `id` (called as that thread ends).
  void forget_caller(std::thread::id id);

  /// The abstract name this process listens at (empty without listen).
  const std::string& address() const noexcept {
    return address_;
  }

  caf::proxy_registry& registry() noexcept {
    return registry_;
  }

  caf::actor_system& system() noexcept {
    return sys_;
  }

  /// Replaces how a peer's end is described when it sent no `close`
  /// (default: its exit status if it is this process's child).
  void set_death_reason(std::function<caf::error(pid_t)> fn);

  /// Replaces where one-way messages that could not be sent are reported
  /// (default: a line on stderr).
  void set_report(std::function<void(const std::string&)> fn);

  /// An exit message to a proxy first goes to `fn(proxy, sender, msg)`;
  /// when it returns true, it took the message (actor processes: their
  /// guardian stops the actor, and kills its process if it does not stop).
  using exit_hook = std::function<bool(const caf::strong_actor_ptr&,
                                       const caf::strong_actor_ptr&,
                                       const caf::exit_msg&)>;
  void set_exit_hook(exit_hook fn);

  /// Proxies of actors for which `fn(address)` is true write no link or
  /// unlink frames: exit messages to them go to the exit hook, and their
  /// processes end with this one anyway (actor processes).
  void set_guarded(std::function<bool(const caf::actor_addr&)> fn);

  /// True if the proxy of `x` writes no link frames (set_guarded).
  bool guarded(const caf::actor_addr& x);

  /// Passes `x`, an exit message from `sender` to `target`, to the exit
  /// hook; true if it took it.
  bool hook_exit(const caf::strong_actor_ptr& target,
                 const caf::strong_actor_ptr& sender, const caf::exit_msg& x);

  /// How this process names itself in errors ("process PID (name)"); the
  /// default says "process PID".
  void set_self_name(std::function<std::string()> fn);

  // -- used by proxies
  // ----------------------------------------------------------

  void send(peer& p, caf::actor_id dest, caf::mailbox_element_ptr what);

  /// Queues a link (`on`) or unlink frame from local actor `who` to the
  /// proxy `target` of `p`; called with both actors' locks held, so it
  /// only queues, and asks the helper actor to write it soon.
  void queue_link_op(peer& p, bool on, caf::abstract_actor* who,
                     caf::actor_control_block* target);

  /// Writes the queued link and unlink frames of `p`.
  void flush_link_ops(peer& p);

  /// True while this thread links a proxy to a local actor for a `link`
  /// frame: CAF may then enqueue an exit_msg to the proxy with both actors'
  /// locks held (the local actor has ended), which must not be sent there.
  static bool in_link_frame() noexcept;

  /// Sends exit message `x` from `sender` to proxy `target` later, on the
  /// helper actor (see in_link_frame).
  void defer_exit(caf::strong_actor_ptr target, caf::strong_actor_ptr sender,
                  caf::exit_msg x);

  /// Answers request `mid` of `sender` with `err` (its waiter, if it waits
  /// in call(), else its mailbox).
  void bounce(peer* p, const caf::strong_actor_ptr& sender, caf::message_id mid,
              const caf::error& err);

  // -- proxy_registry::backend
  // --------------------------------------------------

  caf::strong_actor_ptr make_proxy(caf::node_id nid,
                                   caf::actor_id aid) override;
  void set_last_hop(caf::node_id*) override;

  // -- link_handler
  // -------------------------------------------------------------

  std::unique_ptr<context> make_context(link& l) override;
  bool on_frame(link& l, context& ctx, const frame& f,
                std::string& what) override;
  void after_frames(link& l, context& ctx) override;
  void on_closed(link& l, context& ctx, const caf::error& reason) override;

private:
  manager(caf::actor_system& sys, secret key, options opts);
  void init();

  struct job {
    std::shared_ptr<peer> target; // connect to it, or
    int fd = -1;                  // accept this (challenged with `sent`),
    bool inherited = false;       // or adopt it (a child's socket)
    nonce sent{};
  };

  identity me() const;
  std::shared_ptr<peer> peer_for(const caf::node_id& node);
  std::shared_ptr<peer> add_link(connection c);
  void link_ended(peer& p, const caf::error& reason);
  void write_to(peer& p, buffer& bytes, std::uint64_t dest);
  void send_down(const std::shared_ptr<peer>& p, caf::actor_id aid,
                 const caf::error& reason);
  bool deliver_to_waiter(peer& p, caf::actor_id dest, caf::message_id mid,
                         caf::message& content);
  // How the peer `pid` ended: death_reason_, else errors.hpp's.
  caf::error end_of(pid_t pid);
  // Why the link of `p`, closed, ended: known once on_closed ran; before
  // (the watcher saw the socket end, with no reason yet), end_of(pid).
  caf::error closed_reason(peer& p);
  void report(const std::string& what);
  void watch_loop();
  void setup_loop();
  void post(std::function<void()> fn); // run on the watcher thread
  void write_frame(peer& p, buffer& bytes, std::uint64_t dest);

  // Challenges `fd`, just accepted, and watches it until it answers (then
  // the setup thread takes it) or its hello_deadline passes (closed);
  // beyond max_strangers silent ones, the oldest goes. On the watcher's
  // thread.
  void watch_stranger(int fd);
  // Closes the strangers whose time is up; returns epoll_wait's timeout
  // for the next (-1: none). On the watcher's thread.
  int expire_strangers();

  // Tags of the watcher's epoll besides the links' ids.
  static constexpr std::uint64_t wake_tag = ~std::uint64_t{0};
  static constexpr std::uint64_t listen_tag = ~std::uint64_t{0} - 1;

  caf::actor_system& sys_;
  const secret key_;
  const options opts_;
  caf::proxy_registry registry_;
  caf::scoped_execution_unit unit_; // serializing, any thread
  caf::actor helper_;
  std::string address_;
  unique_fd listen_fd_;
  poller poller_{"link processes", wake_tag}; // the links, listen_fd_

  std::mutex mtx_;
  bool stopping_ = false;
  std::uint64_t next_link_id_ = 1;
  std::unordered_map<caf::node_id, std::shared_ptr<peer>> peers_;  // sends
  std::unordered_map<std::uint64_t, std::shared_ptr<peer>> links_; // all
  std::unordered_map<std::uint64_t, int> silent_; // children's, by tag
  // Connections accepted that have not sent anything yet, by tag (oldest
  // first), and when each must have: a silent stranger must not hold the
  // setup thread, which makes every link of this process in turn.
  struct stranger {
    int fd;
    nonce sent; // the challenge it was sent (begin_accept)
    std::chrono::steady_clock::time_point due;
  };
  std::map<std::uint64_t, stranger> strangers_;
  std::deque<job> jobs_;
  std::condition_variable jobs_cv_;
  std::vector<std::function<void()>> posted_;
  std::function<caf::error(pid_t)> death_reason_;
  std::function<void(const std::string&)> report_;
  exit_hook exit_hook_;
  std::function<bool(const caf::actor_addr&)> guarded_;
  std::function<std::string()> self_name_;

  // The actors that call() sends from, one per calling thread (removed when
  // the thread ends), and their ids (answers to them that no waiter takes
  // are late: dropped).
  std::mutex callers_mtx_;
  std::unordered_map<std::thread::id, std::unique_ptr<caf::scoped_actor>>
      callers_;
  std::unordered_set<caf::actor_id> caller_ids_;
  std::atomic<int> callers_count_{0};
  caf::scoped_actor& caller_of_this_thread();
  bool is_caller(caf::actor_id id);

  std::thread watcher_;
  std::thread setup_;
};

} // namespace actors::detail::links
