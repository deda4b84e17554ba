// M1 — A manager: a pool fills a shared dict, a list collects who did what.
//
// Not a seed scenario: what Python users do with `multiprocessing.Manager()`
// (demos/python/m01_manager.py). The manager is a process of its own whose
// dict and list are actors; each task gets their handles as arguments, and
// every call it makes is a request to that process. The namespace holds a
// counter that the tasks raise under a lock.
//
// What it shows: the dict holds every word's length, in the order the
// words were first seen; the list holds one entry per task; the counter is
// exact; after shutdown a call fails at once with a typed error.
//
// Run it: build/demos/m01_manager

#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"

using lengths = actors::shared_dict<std::string, int>;
using workers = actors::shared_list<int>;

// Records one word's length, the worker that did it, and counts it.
int measure(lengths d, workers who, actors::shared_namespace ns,
            actors::lock guard, std::string word) {
  d.setdefault(word, static_cast<int>(word.size()));
  who.append(static_cast<int>(::getpid()));
  std::lock_guard<actors::lock> hold{guard};
  ns.set("counted", ns.get<int>("counted") + 1);
  return 0;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::manager m;
  auto d = m.dict<std::string, int>();
  auto who = m.list<int>();
  auto ns = m.make_namespace();
  ns.set("counted", 0);
  auto guard = actors::make_lock();
  std::vector<std::string> words{"actors", "pool",  "queue", "pipe",
                                 "lock",   "actors", "manager", "dict"};
  std::vector<std::tuple<lengths, workers, actors::shared_namespace,
                         actors::lock, std::string>>
    tasks;
  for (auto& w : words)
    tasks.emplace_back(d, who, ns, guard, w);
  {
    actors::pool pool{2};
    pool.starmap(measure, tasks);
    pool.close();
    pool.join();
  }
  std::printf("manager process %d, this one %d\n", static_cast<int>(m.pid()),
              static_cast<int>(::getpid()));
  std::string shown;
  for (auto& [word, n] : d.items())
    shown += (shown.empty() ? "" : " ") + word + "=" + std::to_string(n);
  std::printf("dict: %s\n", shown.c_str());
  auto pids = who.to_vector();
  std::set<int> distinct(pids.begin(), pids.end());
  std::printf("list: %zu entries from %zu workers\n", pids.size(),
              distinct.size());
  std::printf("counted: %d\n", ns.get<int>("counted"));
  m.shutdown();
  try {
    d.get("pool");
    std::printf("after shutdown: still answered\n");
    return 1;
  } catch (const actors::error& e) {
    std::printf("after shutdown: %s\n",
                e.code() == actors::errc::process_died ? "process_died"
                                                       : e.what());
  }
  return 0;
}
