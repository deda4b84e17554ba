// S5 — processing the files of a directory tree with a pool.
//
// The Python it mirrors (seed, "多进程处理文件的demo"):
//
//     file_list = [all files under a directory, from os.walk]
//     each = len(file_list) // num_processes
//     for i in range(num_processes):
//         start, end = each * i, (each * (i + 1) if i < n - 1 else len)
//         asyncResult.append(pool.apply_async(process,
//                                             [(file_list, start, end)]))
//     pool.close(); pool.join()
//     for result in asyncResult: print(result.get()[0])
//
// What it shows: the same over a real directory tree that the demo creates
// in a fresh temporary directory; every file is processed exactly once (each
// task returns the files it handled and their sizes). Where the seed's
// workers each draw a tqdm bar of their own on the same terminal (and
// overwrite each other), here each slice gets an actors::progress bar,
// created by the owner and passed to the worker process, which advances it
// per file: one live line per worker on standard error.
//
// Run it: build/demos/s05_pool_files [number of files]

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
namespace fs = std::filesystem;

// Processes files [start, end) of the list: here, measures their size
// (and takes a millisecond per file, so that the bars have time to move).
std::vector<std::pair<std::string, long long>>
process(std::vector<std::string> files, long start, long end,
        actors::progress bar) {
  std::vector<std::pair<std::string, long long>> result;
  for (long i = start; i < end; ++i) {
    result.emplace_back(files[i],
                        static_cast<long long>(fs::file_size(files[i])));
    demo::sleep_seconds(0.001);
    bar.update();
  }
  return result;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  int count = argc > 1 ? std::atoi(argv[1]) : 500;
  // A tree of `count` files in nested directories, in a fresh temp dir.
  auto root = fs::temp_directory_path()
              / ("actors-s05-" + std::to_string(::getpid()));
  for (int i = 0; i < count; ++i) {
    auto dir = root / ("d" + std::to_string(i % 7)) / ("e" + std::to_string(i % 3));
    fs::create_directories(dir);
    std::ofstream file{dir / ("f" + std::to_string(i) + ".txt")};
    file << std::string(static_cast<size_t>(i % 100), 'x');
  }
  std::vector<std::string> file_list;
  for (auto& entry : fs::recursive_directory_iterator(root))
    if (entry.is_regular_file())
      file_list.push_back(entry.path().string());
  std::sort(file_list.begin(), file_list.end());

  const long num_processes = 2;
  long each = static_cast<long>(file_list.size()) / num_processes;
  actors::pool pool{num_processes};
  std::vector<actors::async_result<
    std::vector<std::pair<std::string, long long>>>> results;
  std::vector<actors::progress> bars;
  for (long i = 0; i < num_processes; ++i) {
    long start = each * i;
    long end = i < num_processes - 1 ? each * (i + 1)
                                     : static_cast<long>(file_list.size());
    bars.emplace_back(end - start, "worker " + std::to_string(i + 1));
    results.push_back(
      pool.apply_async(process, file_list, start, end, bars.back()));
  }
  pool.close();
  pool.join();
  for (auto& bar : bars)
    bar.close();
  long processed = 0;
  long long bytes = 0;
  std::vector<std::string> seen;
  for (auto& r : results) {
    auto part = r.get();
    std::cout << "first of slice: " << part.front().first << std::endl;
    for (auto& [file, size] : part) {
      seen.push_back(file);
      bytes += size;
      ++processed;
    }
  }
  std::sort(seen.begin(), seen.end());
  bool exactly_once = seen == file_list;
  std::cout << "files " << file_list.size() << " processed " << processed
            << " bytes " << bytes << " exactly once " << exactly_once
            << std::endl;
  fs::remove_all(root);
  return exactly_once ? 0 : 1;
}
// readme: end tour
