#pragma once

// Making a link's connection (link_protocol.hpp, "Setup"): over a socket
// inherited from the parent, or by name (an abstract Unix socket per
// process, named from the run's key and the pid) with both sides proving
// the run's key and checking the peer's uid. Each side creates its
// outgoing ring and passes its memfd; what comes back is the connected
// socket and both rings, ready for a link. Every step has the deadline.

#include <chrono>
#include <cstdint>
#include <string>

#include <sys/types.h>

#include <caf/fwd.hpp>
#include <caf/node_id.hpp>

#include "net/auth.hpp"
#include "link/ring.hpp"

namespace actors::detail::links {

using time_point = std::chrono::steady_clock::time_point;

/// Who this process is, as a hello says it.
struct identity {
  caf::node_id node;
  std::uint64_t service = 0;    // the service actor's id, or 0
  std::size_t ring_size = 0; // of the outgoing ring this side makes
};

/// A connection made, before it becomes a link.
struct connection {
  int fd = -1;
  caf::node_id node;      // the peer's
  std::uint64_t service = 0; // the peer's service actor id
  ring out;               // this side writes
  ring in;                // the peer writes
};

/// The parent's first bytes on a socket it shares with a child: the run's
/// key, so that the child can make and accept links by name (the socket is
/// the authority, as for the hello). Written before the child runs; never
/// blocks (the socket's buffer holds it).
void send_run_key(int fd, const secret& key);

/// The child's side of send_run_key: reads the key from `fd`, at most until
/// `deadline`. Throws actors::error (errc::timeout, errc::owner_unreachable).
secret read_run_key(int fd, time_point deadline);

/// The abstract socket name of process `pid` in the run whose key is
/// `key` (a tag derived from the key, never the key itself).
std::string link_address(const secret& key, pid_t pid);

/// Listens on the abstract socket `name` (non-blocking, close-on-exec).
/// Throws actors::error (errc::spawn_failed) when the name is taken or the
/// socket fails (out of descriptors).
int listen_on(const std::string& name);

/// Exchanges hellos over `fd`, a connected socket inherited from the
/// parent (or passed to the child): no key, the socket is the authority.
/// Takes ownership of `fd`. Throws actors::error (errc::timeout,
/// errc::owner_unreachable, errc::invalid_argument for a bad hello).
connection setup_inherited(int fd, const identity& me, caf::execution_unit* ctx,
                           time_point deadline);

/// Connects to the process listening at `name`, checks its uid, proves
/// `key` and checks its proof, then exchanges hellos. Throws actors::error
/// (errc::owner_unreachable when nobody listens there, errc::unauthenticated
/// for a wrong proof or uid, errc::timeout).
connection setup_connect(const std::string& name, const secret& key,
                         const identity& me, caf::execution_unit* ctx,
                         time_point deadline);

/// The accepting side of setup_connect, part one, which never waits: on
/// `fd`, an accepted socket (made non-blocking; the caller keeps it),
/// checks the peer's uid and sends the challenge; returns its nonce.
/// Throws as setup_connect does. The peer answers next: the caller may
/// wait for that without a thread (manager: a silent stranger must not
/// hold one).
nonce begin_accept(int fd);

/// Part two, once the peer answers begin_accept's challenge `sent`: reads
/// its proof and finishes the link (this takes ownership of `fd`). Throws
/// as setup_connect does.
connection finish_accept(int fd, const nonce& sent, const secret& key,
                         const identity& me, caf::execution_unit* ctx,
                         time_point deadline);

} // namespace actors::detail::links
