#pragma once

// Seeds of a fuzz target, written by the target itself when run with
// ACTORS_FUZZ_SEEDS=DIR (it then writes them into DIR and exits): the seeds
// in fuzz/corpus/ were made so, and .ci/fuzz makes fresh ones for the
// binary it built (a channel frame names code by its offset in the binary).

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/stat.h>

namespace fuzz {

using bytes = std::vector<std::uint8_t>;

/// Runs `make(seeds)` and writes each seed into $ACTORS_FUZZ_SEEDS, named by
/// a hash of its content, then exits; does nothing without the variable.
template <class F>
void write_seeds_if_asked(F make) {
  auto dir = std::getenv("ACTORS_FUZZ_SEEDS");
  if (dir == nullptr)
    return;
  std::string path{dir};
  for (size_t slash = 1; slash != std::string::npos;) {
    slash = path.find('/', slash + 1);
    auto prefix = path.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      std::perror(prefix.c_str());
      std::exit(1);
    }
  }
  std::vector<bytes> seeds;
  make(seeds);
  for (auto& seed : seeds) {
    std::uint64_t h = 14695981039346656037ull; // FNV-1a
    for (auto b : seed)
      h = (h ^ b) * 1099511628211ull;
    char name[32];
    std::snprintf(name, sizeof(name), "%016llx",
                  static_cast<unsigned long long>(h));
    auto file = path + "/" + name;
    auto* f = std::fopen(file.c_str(), "wb");
    if (f == nullptr
        || std::fwrite(seed.data(), 1, seed.size(), f) != seed.size()) {
      std::perror(file.c_str());
      std::exit(1);
    }
    std::fclose(f);
  }
  std::printf("%zu seeds written to %s\n", seeds.size(), dir);
  std::exit(0);
}

/// Stops the run with a message: libFuzzer reports it as a crash and saves
/// the input.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

} // namespace fuzz
