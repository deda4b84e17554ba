// H2 — actors on other hosts, under a supervisor that outlives a host.
//
// Not a seed scenario: the actor side of H1. A pool listens for worker
// hosts; a supervisor places its two children, "left" and "right", on
// them (actor_options::hosts: any joined host, the one running the fewest
// actors), so each host runs one. Then the host of "left" is killed: the
// supervisor learns it from the child's end (errc::connection_lost) and
// starts "left" again, on the host that is left. Worker hosts run this
// same program in the worker role:
//
//     h02_actors_across_hosts --actors-worker OWNER:PORT --actors-key-file KEY
//                             --actors-host-name east
//
// Run as is, the demo starts two such hosts itself on this machine
// (127.0.0.1), named east and west, so that it runs anywhere.
//
// What it shows: each child answers from a worker process of its host; the
// host's loss restarts the child elsewhere (one restart), and it answers
// again under the name its supervisor registered.

#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/all.hpp"

extern char** environ;

using where_atom = caf::atom_constant<caf::atom("where")>;

// readme: begin hosts-actor
// Answers where it runs: its worker process and that process's parent,
// the worker host.
caf::behavior placed(caf::event_based_actor*) {
  return {[](where_atom) {
    return std::vector<int>{static_cast<int>(::getpid()),
                            static_cast<int>(::getppid())};
  }};
}
// readme: end hosts-actor

namespace {

// Starts this program as worker host `name` joined to the pool at `address`.
pid_t start_worker_host(const std::string& address, const std::string& key,
                        const std::string& name) {
  std::string self = "/proc/self/exe";
  std::vector<std::string> args{self, "--actors-worker", address,
                                "--actors-key-file", key,
                                "--actors-host-name", name,
                                "--actors-processes", "2"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ)
      != 0)
    return -1;
  return pid;
}

// The worker host (its pid) running the actor registered as `name`.
int host_of(const std::string& name) {
  caf::scoped_actor self{actors::system()};
  int host = -1;
  self->request(actors::whereis(name), std::chrono::seconds{5},
                where_atom::value)
    .receive([&](const std::vector<int>& at) { host = at.at(1); },
             [&](caf::error& err) {
               std::cout << name << " did not answer: "
                         << actors::describe(err) << std::endl;
             });
  return host;
}

} // namespace

int main(int argc, char** argv) {
  actors::init(argc, argv); // a worker host runs here and never returns
  auto key = "/tmp/actors-h02-" + std::to_string(::getpid()) + ".key";
  actors::pool_options opts;
  opts.listen = "127.0.0.1:0";
  opts.key_file = key;
  opts.lost_after = std::chrono::seconds{1};
  actors::pool pool{1, opts};
  auto address = "127.0.0.1:" + std::to_string(pool.port());
  std::map<int, std::string> hosts; // pid -> name
  for (auto name : {"east", "west"}) {
    auto pid = start_worker_host(address, key, name);
    hosts[pid] = name;
    std::cout << "started worker host " << name << ": " << argv[0]
              << " --actors-worker " << address << " --actors-key-file "
              << key << " --actors-host-name " << name << std::endl;
  }
  int code = 1;
  if (!pool.wait_for_remote_workers(4, std::chrono::seconds{60})) {
    std::cout << "only " << pool.remote_workers()
              << " remote workers joined within 60 s" << std::endl;
  } else {
    // readme: begin hosts-supervisor
    auto on_any_host = [&pool] {
      actors::actor_options where;
      where.hosts = &pool; // a worker process of a host that joined it
      return actors::spawn(where, placed).handle();
    };
    std::vector<actors::child_spec> children(2);
    children[0].id = "left";
    children[1].id = "right";
    for (auto& child : children) {
      child.start = on_any_host;
      child.registered = true; // actors::whereis finds the current one
    }
    actors::supervisor sup{{actors::strategy::one_for_one, 3,
                            std::chrono::seconds{10}},
                           children};
    // readme: end hosts-supervisor
    auto left = host_of("left");
    auto right = host_of("right");
    std::cout << "left runs on " << hosts[left] << ", right on "
              << hosts[right] << std::endl;
    auto before = sup.child("left");
    auto killed = std::chrono::steady_clock::now();
    ::kill(left, SIGKILL); // its worker processes die with it
    std::cout << "killed host " << hosts[left] << std::endl;
    // The supervisor restarts left on the other host.
    int back = -1;
    auto deadline = killed + std::chrono::seconds{30};
    while (std::chrono::steady_clock::now() < deadline) {
      auto now = sup.child("left");
      if (now && now != before && (back = host_of("left")) > 0)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - killed)
                .count();
    if (back > 0) {
      std::cout << "left is back on " << hosts[back] << " after " << ms
                << " ms" << std::endl;
      std::cout << "right still runs on " << hosts[host_of("right")]
                << std::endl;
      std::cout << "restarts: " << sup.restarts() << std::endl;
      code = back == right && back != left ? 0 : 1;
    } else {
      std::cout << "left did not come back within 30 s" << std::endl;
    }
    sup.stop();
  }
  pool.close();
  pool.join();
  for (auto& [pid, name] : hosts) {
    int status = 0;
    for (int i = 0; i < 1000 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
      ::usleep(10000);
    if (::kill(pid, 0) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  }
  ::unlink(key.c_str());
  return code;
}
