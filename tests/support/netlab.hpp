#pragma once

// Simulated hosts for tests across machines (issue 8): one Linux network
// namespace per host, built as root and torn down without a trace. Host 0
// is the owner's host; it holds a bridge, br0, with owner_address()
// (10.213.0.1/24). Each worker host i has one veth link to it: port v<i> on
// the bridge, eth0 with address(i) (10.213.0.(i+1)/24) in the worker's
// namespace. So a worker reaches the owner, and the other workers, only
// over its own link, which cut() takes down. Nothing is added to the root
// namespace: the lab's traffic never leaves the lab, and the root namespace
// has no route into it.
//
// Cleanup: the destructor kills every process in the lab and deletes its
// namespaces (which deletes the links and the bridge with them); a test
// ended by the watchdog does the same in the watchdog's exit path. A test
// process killed outright (SIGKILL, a CTest timeout) leaves its namespaces,
// and the processes in them, to the next lab's sweep(): a lab's namespaces
// are named after its process (pid and start time), and sweep() deletes
// those whose process is gone.

#include <optional>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace support {

class netlab {
public:
  /// The address of host 0, the owner's host: the bridge's.
  static constexpr const char* owner_ip = "10.213.0.1";

  /// The lab's subnet (private, RFC 1918; each lab has its own copy).
  static constexpr const char* subnet = "10.213.0.0/24";

  /// The exit code of a test that skip_if_unavailable() ended; CTest calls
  /// it skipped where the test has it as SKIP_RETURN_CODE.
  static constexpr int skip_code = 77;

  /// Why no lab can be built here (not root, no `ip` binary, `ip netns add`
  /// or a bridge or veth link failing in a probe namespace), or nothing.
  /// Probes once per process.
  static std::optional<std::string> unavailable();

  /// If unavailable(), prints why and ends the process with skip_code:
  /// the first statement of a test case that needs a lab, in a test
  /// registered with actors_add_test(... SKIP_RETURN_CODE 77).
  static void skip_if_unavailable();

  /// Builds `hosts` hosts (1 to 253), after a sweep(); host 0 is the
  /// owner's. Throws, having removed what it built, if an `ip` command
  /// fails (the message has the command and its output).
  explicit netlab(int hosts);

  netlab(const netlab&) = delete;
  netlab& operator=(const netlab&) = delete;

  /// Kills every process of the lab (SIGKILL) and waits until each has
  /// ended, then deletes the namespaces. Never throws; reports on stderr
  /// what it could not remove. Processes started by run() stay zombies
  /// until their handles reap them.
  ~netlab();

  /// The number of hosts.
  int hosts() const noexcept {
    return static_cast<int>(names_.size());
  }

  /// The network namespace of `host`, a name of /run/netns.
  const std::string& name(int host) const;

  /// The IPv4 address of `host`: 10.213.0.(host+1).
  std::string address(int host) const;

  /// The address at which every worker host reaches the owner (owner_ip).
  static std::string owner_address() {
    return owner_ip;
  }

  /// Starts `path` with `args` in `host`, in a process group of its own,
  /// with `env` ("NAME=value") added to the environment; its stdout is
  /// captured, and its stderr too with `with_stderr`. The handle kills its
  /// group and reaps it when dropped.
  subprocess run(int host, const std::string& path,
                 const std::vector<std::string>& args = {},
                 const std::vector<std::string>& env = {},
                 bool with_stderr = false);

  /// Starts this test binary in helper mode `mode` in `host`, as run().
  subprocess helper(int host, const std::string& mode,
                    const std::vector<std::string>& args = {},
                    const std::vector<std::string>& env = {},
                    bool with_stderr = false);

  /// Kills (SIGKILL) every process in `host`'s namespace, whoever started
  /// it, and returns once all have ended; throws if some still run after
  /// 10 s. The host keeps its network and can run processes again. Unlike
  /// a power loss, its kernel stays up and closes the killed processes'
  /// connections (peers see FIN or RST): cut() first for silence.
  void kill_host(int host);

  /// Cuts worker host `host` (1 and up) off: its bridge port v<host> goes
  /// down, as if its cable were pulled at the switch. Its eth0 stays up,
  /// with its address and route, but loses carrier; every packet between
  /// it and the other hosts, either way, is dropped without an RST or an
  /// ICMP error. A new connection fails with EHOSTUNREACH once ARP went
  /// unanswered (about 3 s), or times out where the peer's ARP entry was
  /// still fresh (the owner's, say); an established one stalls, and goes
  /// on after restore() unless TCP gave up meanwhile. Other hosts are not
  /// affected.
  void cut(int host);

  /// Brings worker host `host`'s link back up, as it was before cut().
  void restore(int host);

  /// Removes the namespaces, and kills the processes in them, of labs
  /// whose process no longer exists (crashed or killed test runs).
  static void sweep();

  /// Runs `ip` with `args` and returns its output (stdout and stderr);
  /// throws, naming the command and its output, if it fails or takes more
  /// than 10 s.
  static std::string ip(const std::vector<std::string>& args);

private:
  void check_worker(int host) const;

  std::vector<std::string> names_;
};

} // namespace support
