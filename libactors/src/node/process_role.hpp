#pragma once

// What this process is in the run: the owner (the default), a child of
// another node (started by process/, on the descriptors below), or a peer
// joined over TCP (a worker process of another host). Set while the
// process starts, by actors::init (init/), the child entry points
// (process/child_main.cpp) and the runtime, and read where a child or a
// peer behaves differently. API: process_role::local().

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <sys/types.h>

#include <caf/actor.hpp>

#include "net/auth.hpp"

namespace actors::detail {

/// The descriptors a child finds its connection to its parent node, its
/// lifeline and, when started with one, its direct channel on.
constexpr int child_socket_fd = 3;
constexpr int child_lifeline_fd = 4;
constexpr int child_channel_fd = 5;

/// How long a child may take to connect and hold its task.
constexpr auto bootstrap_timeout = std::chrono::seconds{10};

/// Where a worker process of another host finds the pool's node.
struct remote_owner {
  std::string host;
  std::uint16_t port = 0;
  secret key{};
  std::chrono::milliseconds lost_after{5000}; // a silent link is lost
};

struct process_role {
  /// actors::init ran in this process.
  std::atomic<bool> initialized{false};

  /// A runtime exists in this process (and with it CAF's threads).
  std::atomic<bool> runtime_started{false};

  /// A child whose task held no actor handle: its runtime starts when
  /// first needed, connected on child_socket_fd.
  std::atomic<bool> lazy_child{false};

  /// A worker process of another host: it joins `owner` when first needed.
  std::atomic<bool> lazy_peer{false};
  remote_owner owner; // set before lazy_peer

  /// Run once such a process joined the pool's node (`parent` is then its
  /// service actor): init/ sets up queues across hosts here.
  std::function<void()> on_joined;

  /// This child's end of its direct channel, until taken; -1 otherwise.
  std::atomic<int> channel{-1};

  /// The process's name (Python's current_process().name).
  std::string name = "MainProcess";

  /// Whether this child is a daemon (terminated when its parent exits).
  bool daemon = false;

  /// A child's parent (Python's parent_process()); 0 and empty otherwise.
  pid_t parent_pid = 0;
  std::string parent_name;
  bool parent_daemon = false;

  /// In a child or peer: the parent node's service actor.
  caf::actor parent;

  /// This process's role (never destroyed: read until the process ends).
  static process_role& local() {
    static auto* role = new process_role;
    return *role;
  }
};

} // namespace actors::detail
