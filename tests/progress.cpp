// actors::progress: the line it draws, and bars advanced from threads and
// from other processes, as seen in a non-terminal (a pipe). What a person
// sees on a terminal is tested in terminal.cpp.

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;

namespace {

using actors::progress;

int columns(const std::string& s) {
  int n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

void advance(actors::progress bar, int n) {
  for (int i = 0; i < n; ++i)
    bar.update();
}

// Two bars: one advanced by 4 threads and 2 processes, one by hand with a
// changing description; prints everything on a pipe (stderr is the pipe).
int bars_to_pipe(int, char**) {
  ::dup2(STDOUT_FILENO, STDERR_FILENO);
  {
    actors::progress shared{6000, "shared"};
    actors::progress manual{std::nullopt, "manual"};
    std::vector<actors::process> procs;
    for (int i = 0; i < 2; ++i)
      procs.emplace_back(advance, shared, 1000);
    for (auto& p : procs)
      p.start();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([shared] { advance(shared, 1000); });
    for (int i = 0; i < 7; ++i) {
      manual.description("step " + std::to_string(i));
      manual.update(3);
    }
    for (auto& t : threads)
      t.join();
    for (auto& p : procs)
      if (!p.join(30s) || p.exitcode() != 0)
        return 1;
    manual.close();
    std::printf("after manual\n");
    std::fflush(stdout);
  } // shared: closed by its last copy here
  std::printf("after shared\n");
  return 0;
}

support::helper_mode bars_to_pipe_mode{"bars-to-pipe", bars_to_pipe};

} // namespace

TEST_CASE("format_meter draws tqdm's line") {
  CHECK(progress::format_meter(45, 100, 2s, "desc", 60, false)
        == "desc:  45%|#######         | 45/100 [00:02<00:02, 22.50it/s]");
  CHECK(progress::format_meter(45, std::nullopt, 2s, "desc", 60, false)
        == "desc: 45it [00:02, 22.50it/s]");
  // Nothing done yet: no rate, no ETA.
  CHECK(progress::format_meter(0, 10, 0s, "", 40, false)
        == "  0%|            | 0/10 [00:00<?, ?it/s]");
  // Slower than one per second: seconds per item; hours when long.
  CHECK(progress::format_meter(2, 4, 5000s, "", 50, false)
        == " 50%|####     | 2/4 [1:23:20<1:23:20, 2500.00s/it]");
  // More than the total: a full bar, the true count.
  CHECK(progress::format_meter(12, 10, 1s, "", 40, false)
        == "100%|###| 12/10 [00:01<00:00, 12.00it/s]");
  // Block characters with eighths: 1/16 of 7 columns is 3/8 of one.
  CHECK(progress::format_meter(1, 16, 1s, "", 42, true)
        == "  6%|▍      | 1/16 [00:01<00:15, 1.00it/s]");
  CHECK(progress::format_meter(10, 16, 1s, "", 42, true)
        == " 62%|███▏ | 10/16 [00:01<00:00, 10.00it/s]");
}

TEST_CASE("format_meter fits any width, the description giving way first") {
  std::string long_desc(200, 'd');
  for (int width = 20; width <= 200; ++width) {
    auto line = progress::format_meter(37, 1000, 3s, long_desc, width, true);
    CHECK(columns(line) <= width);
    CHECK(line.find("37/1000") != std::string::npos);
  }
  auto line = progress::format_meter(370, 1000, 3s, long_desc, 100, false);
  CHECK(line.find("..: ") != std::string::npos);
  CHECK(line.find('#') != std::string::npos); // room was left for the bar
}

TEST_CASE("bars advanced from 4 threads and 2 processes count exactly") {
  auto helper = support::subprocess::helper("bars-to-pipe", {}, true);
  auto out = helper.read_all(60s);
  REQUIRE(helper.wait(10s) == 0);
  INFO(out);
  // Not a terminal: plain lines, no control characters at all.
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(out.find('\r') == std::string::npos);
  auto manual = out.find("step 6: 21it [");
  auto after_manual = out.find("after manual\n");
  auto shared = out.find("shared: 100%|");
  auto after_shared = out.find("after shared\n");
  REQUIRE(manual != std::string::npos);
  REQUIRE(shared != std::string::npos);
  CHECK(out.find("| 6000/6000 [") != std::string::npos);
  // close() returns once the final line is out.
  CHECK(manual < after_manual);
  CHECK(shared < after_shared);
}

TEST_CASE("a wrapped range advances by one per element and closes at its end") {
  auto helper = support::subprocess::helper("wrapped-range", {}, true);
  auto out = helper.read_all(60s);
  REQUIRE(helper.wait(10s) == 0);
  INFO(out);
  CHECK(out.find("sum 4950\n") != std::string::npos);
  auto bar = out.find("wrapped: 100%|");
  REQUIRE(bar != std::string::npos);
  CHECK(out.find("| 100/100 [") != std::string::npos);
  CHECK(bar < out.find("after loop\n"));
}

namespace {

int wrapped_range(int, char**) {
  ::dup2(STDOUT_FILENO, STDERR_FILENO);
  actors::progress bar{100, "wrapped"};
  long sum = 0;
  for (long long x : bar.wrap(actors::range(100)))
    sum += x;
  // The loop's end closed the bar: its line is out before this one.
  std::printf("after loop\nsum %ld\n", sum);
  return 0;
}

support::helper_mode wrapped_range_mode{"wrapped-range", wrapped_range};

} // namespace
