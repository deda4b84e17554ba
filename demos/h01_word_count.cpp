// H1 — a word count spread over this host and two worker hosts.
//
// Not a seed scenario: the seed's pools (S2-S6) on several machines. The
// owner generates a corpus, its pool listens for worker hosts, and each
// document is counted by whichever worker takes it: one of the owner's own
// processes or a process of a worker host. Worker hosts run this same
// program in the worker role:
//
//     h01_word_count --actors-worker OWNER:PORT --actors-key-file KEY
//
// Run as is, the demo starts two such hosts itself on this machine
// (127.0.0.1), so that it runs anywhere; on real machines, start the owner
// with an address they reach, copy the key file to them, and start them:
//
//     h01_word_count --listen 10.0.0.1:7000 --key-file run.key --hosts 2
//     # on each worker machine (the same build of the program):
//     h01_word_count --actors-worker 10.0.0.1:7000 --actors-key-file run.key
//
// What it shows: the counts are exact (the corpus is generated, so the
// expected total is known), and every host counted some of the documents.

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/all.hpp"

extern char** environ;

// readme: begin hosts-task
// Counts the words of one document; also says which host counted it (the
// worker process's parent: the owner, or a worker host's process).
std::pair<std::map<std::string, long>, int> count_words(std::string text) {
  std::map<std::string, long> counts;
  std::size_t i = 0;
  while (i < text.size()) {
    auto end = text.find(' ', i);
    if (end == std::string::npos)
      end = text.size();
    if (end > i)
      ++counts[text.substr(i, end - i)];
    i = end + 1;
  }
  return {counts, static_cast<int>(::getppid())};
}
// readme: end hosts-task

namespace {

// A corpus of `n` documents of 2000 words each drawn from a small
// vocabulary, the same for a given seed.
std::vector<std::string> make_corpus(int n) {
  const std::vector<std::string> words{"actor", "process", "queue", "pipe",
                                       "lock",  "pool",    "task",  "host"};
  std::mt19937 rng{42};
  std::vector<std::string> corpus;
  for (int d = 0; d < n; ++d) {
    std::string doc;
    for (int w = 0; w < 2000; ++w) {
      if (w > 0)
        doc += ' ';
      doc += words[rng() % words.size()];
    }
    corpus.push_back(std::move(doc));
  }
  return corpus;
}

// Starts this program as a worker host joined to the pool at `address`.
pid_t start_worker_host(const std::string& address, const std::string& key) {
  std::string self = "/proc/self/exe";
  std::vector<std::string> args{self,       "--actors-worker",   address,
                                "--actors-key-file", key, "--actors-processes",
                                "2"};
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

std::string option(int argc, char** argv, const std::string& name,
                   std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name)
      return argv[i + 1];
  return fallback;
}

} // namespace

int main(int argc, char** argv) {
  actors::init(argc, argv); // a worker host runs here and never returns
  auto listen = option(argc, argv, "--listen", "127.0.0.1:0");
  auto key = option(argc, argv, "--key-file",
                    "/tmp/actors-h01-" + std::to_string(::getpid()) + ".key");
  auto hosts = std::stoi(option(argc, argv, "--hosts", "2"));
  bool local_hosts = option(argc, argv, "--listen", "").empty();
  auto corpus = make_corpus(400);

  // readme: begin hosts-pool
  actors::pool_options opts;
  opts.listen = listen;  // where worker hosts join
  opts.key_file = key;   // the key they must prove (made if missing)
  actors::pool pool{2, opts};
  // readme: end hosts-pool
  std::cout << "pool listening on port " << pool.port() << " with 2 local "
            << "workers" << std::endl;
  std::vector<pid_t> started;
  if (local_hosts) {
    auto address = "127.0.0.1:" + std::to_string(pool.port());
    for (int h = 0; h < hosts; ++h) {
      started.push_back(start_worker_host(address, key));
      std::cout << "started worker host " << h + 1 << " (pid "
                << started.back() << "): " << argv[0]
                << " --actors-worker " << address << " --actors-key-file "
                << key << " --actors-processes 2" << std::endl;
    }
  }
  // Two worker processes per host.
  if (!pool.wait_for_remote_workers(static_cast<std::size_t>(2 * hosts),
                                    std::chrono::seconds{60})) {
    std::cout << "only " << pool.remote_workers()
              << " remote workers joined within 60 s" << std::endl;
    return 1;
  }
  std::cout << pool.remote_workers() << " remote workers joined" << std::endl;

  // readme: begin hosts-map
  auto results = pool.map(count_words, corpus, 10);
  std::map<std::string, long> total;
  std::map<int, int> documents_by_host;
  for (auto& [counts, host] : results) {
    for (auto& [word, n] : counts)
      total[word] += n;
    ++documents_by_host[host];
  }
  // readme: end hosts-map
  long words = 0;
  for (auto& [word, n] : total) {
    std::cout << word << ": " << n << "\n";
    words += n;
  }
  std::cout << "total words: " << words << " (expected "
            << 2000L * static_cast<long>(corpus.size()) << ")\n";
  for (auto& [host, docs] : documents_by_host) {
    auto name = host == ::getpid() ? std::string{"this host"}
                                   : "worker host pid " + std::to_string(host);
    std::cout << "documents counted by " << name << ": " << docs << "\n";
  }
  pool.close();
  pool.join();
  // The hosts end once the pool lets their workers go (within 10 s, or
  // they are killed).
  for (auto pid : started) {
    int status = 0;
    for (int i = 0; i < 1000 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
      ::usleep(10000);
    if (::kill(pid, 0) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    std::cout << "worker host " << pid << " exited with "
              << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << std::endl;
  }
  if (local_hosts)
    ::unlink(key.c_str());
  return words == 2000L * static_cast<long>(corpus.size()) ? 0 : 1;
}
