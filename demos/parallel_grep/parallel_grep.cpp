// parallel_grep: the README's worked example (not from the seed). Searches
// every file under a directory tree for the lines that contain a text, on a
// pool of worker processes, with a progress bar.
//
// usage: parallel_grep TEXT [DIRECTORY]
//
// Prints PATH:LINE:CONTENT for every line that contains TEXT, sorted by path
// and line (what `grep -rnF TEXT DIRECTORY | sort` prints, for text files);
// exits as grep does: 0 when a line matched, 1 when none did, 2 on an error.

#include <actors/all.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

// readme: begin types
// A matching line. A struct crosses processes, as a task's argument or
// result, once an `inspect` overload lists its fields (CAF serializes them).
struct match {
  std::string path;
  int line = 0;
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, match& x) {
  return f(caf::meta::type_name("match"), x.path, x.line, x.text);
}

// What one task found in one file. A file that cannot be read is a result
// too (an error text), not an exception that would end the whole search.
struct file_result {
  std::vector<match> matches;
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_result& x) {
  return f(caf::meta::type_name("file_result"), x.matches, x.error);
}
// readme: end types

// readme: begin task
// The text to look for, set once in each worker process by the pool's
// initializer (Python's initializer and initargs) rather than sent with
// every file.
std::string needle;

void set_needle(std::string text) {
  needle = std::move(text);
}

// The task: a plain function, which a worker process can run because it runs
// this same program.
file_result search(std::string path) {
  file_result result;
  std::ifstream in{path, std::ios::binary};
  if (!in)
    result.error = path + ": cannot be read";
  std::string text;
  for (int line = 1; std::getline(in, text); ++line)
    if (text.find(needle) != std::string::npos)
      result.matches.push_back({path, line, text});
  return result;
}
// readme: end task

// readme: begin main
int main(int argc, char** argv) {
  actors::init(argc, argv); // first, always: the workers run this program too
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: parallel_grep TEXT [DIRECTORY]\n";
    return 2;
  }
  try {
    std::vector<std::string> files;
    for (auto& entry : std::filesystem::recursive_directory_iterator(
           argc == 3 ? argv[2] : "."))
      if (entry.is_regular_file())
        files.push_back(entry.path().string());

    actors::pool_options options;
    options.initializer(set_needle, std::string{argv[1]});
    // A file whose read hangs (a dead network mount) fails with
    // errc::timeout after a minute, caught below, instead of a hang.
    options.task_timeout = std::chrono::minutes{1};
    actors::pool pool{0, options}; // one worker process per core

    std::vector<match> found;
    std::vector<std::string> errors;
    actors::progress bar{static_cast<long long>(files.size()), "0 matches"};
    // Results as they complete, in any order; the bar counts them and is
    // closed (its last line drawn) when the loop ends.
    for (auto& result : bar.wrap(pool.imap_unordered(search, files))) {
      std::move(result.matches.begin(), result.matches.end(),
                std::back_inserter(found));
      if (!result.error.empty())
        errors.push_back(result.error);
      bar.description(std::to_string(found.size()) + " matches");
    }

    std::sort(found.begin(), found.end(), [](auto& a, auto& b) {
      return std::tie(a.path, a.line) < std::tie(b.path, b.line);
    });
    for (auto& m : found)
      std::cout << m.path << ':' << m.line << ':' << m.text << '\n';
    for (auto& e : errors)
      std::cerr << "parallel_grep: " << e << '\n';
    return !errors.empty() ? 2 : found.empty() ? 1 : 0;
  } catch (const std::exception& e) { // a lost worker, a timeout, a bad path
    std::cerr << "parallel_grep: " << e.what() << '\n';
    return 2;
  }
}
// readme: end main
