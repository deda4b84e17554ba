// Progress bars as a person sees them: demos run in a real pseudo-terminal
// (a detached tmux session of a fixed size), whose screen is captured and
// checked, while they run and after they end.

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "support/subprocess.hpp"

using namespace std::chrono_literals;

namespace {

// Runs `command` and returns its stdout.
std::string run(const std::string& command) {
  std::string out;
  std::FILE* p = ::popen(command.c_str(), "r");
  REQUIRE_MESSAGE(p != nullptr, "cannot run " << command);
  std::array<char, 4096> buf;
  while (auto n = std::fread(buf.data(), 1, buf.size(), p))
    out.append(buf.data(), n);
  ::pclose(p);
  return out;
}

// A terminal of `cols` x `rows` running `command` on a private tmux
// server, torn down by the destructor whatever happened.
class terminal {
public:
  terminal(const std::string& command, int cols, int rows)
    : tmux_("env LC_ALL=C.UTF-8 TERM=xterm-256color tmux -f /dev/null -L actors-test-"
            + std::to_string(::getpid())) {
    REQUIRE_MESSAGE(std::system("command -v tmux >/dev/null") == 0,
                    "tmux is missing: ./run.sh test installs it");
    auto rc = std::system((tmux_ + " new-session -d -s t -x "
                           + std::to_string(cols) + " -y " + std::to_string(rows)
                           + " 'env LC_ALL=C.UTF-8 ACTORS_DEMO_SCALE="
                           + scale_ + " " + command
                           + "; echo EXIT=$?; sleep 600'")
                            .c_str());
    REQUIRE(rc == 0);
  }
  ~terminal() {
    [[maybe_unused]] auto rc = std::system((tmux_ + " kill-server").c_str());
  }

  static void scale(std::string s) {
    scale_ = std::move(s);
  }

  // The screen's lines, trailing blanks cut.
  std::vector<std::string> screen() const {
    std::vector<std::string> lines;
    std::istringstream in{run(tmux_ + " capture-pane -p -t t")};
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      lines.push_back(line);
    }
    while (!lines.empty() && lines.back().empty())
      lines.pop_back();
    return lines;
  }

  // Waits (bounded) for the command's end; returns the final screen.
  std::vector<std::string> finish() const {
    std::vector<std::string> lines;
    bool ended = support::eventually(
      [&] {
        lines = screen();
        for (auto& l : lines)
          if (l.rfind("EXIT=", 0) == 0)
            return true;
        return false;
      },
      60s);
    REQUIRE_MESSAGE(ended, "the demo did not end within 60 s");
    return lines;
  }

private:
  std::string tmux_;
  static inline std::string scale_ = "1";
};

std::string demo(const std::string& name) {
  return std::string{ACTORS_DEMO_DIR} + "/" + name;
}

int columns(const std::string& s) {
  int n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

// The count of a bar line "...| n/total [...", if it is one.
std::optional<long> count_of(const std::string& line, const std::string& total) {
  auto at = line.find("/" + total + " [");
  if (at == std::string::npos || line.find("%|") == std::string::npos)
    return std::nullopt;
  auto begin = at;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1])))
    --begin;
  if (begin == at || begin < 2 || line.compare(begin - 2, 2, "| ") != 0)
    return std::nullopt;
  return std::stol(line.substr(begin, at - begin));
}

std::vector<std::string> bar_lines(const std::vector<std::string>& screen) {
  std::vector<std::string> bars;
  for (auto& l : screen)
    if (l.find("%|") != std::string::npos)
      bars.push_back(l);
  return bars;
}

std::string dump(const std::vector<std::string>& screen) {
  std::string s = "screen:\n";
  for (auto& l : screen)
    s += "|" + l + "\n";
  return s;
}

} // namespace

TEST_CASE("S10 on a terminal: one bar, live, redrawn in place, latest result shown") {
  terminal::scale("3"); // 1.5 s of progress: time to watch it move
  terminal term{demo("s10_thread_pool"), 100, 20};
  // While it runs: a partly filled bar.
  std::vector<std::string> seen;
  bool live = support::eventually(
    [&] {
      seen = term.screen();
      for (auto& l : seen) {
        auto n = count_of(l, "10");
        if (l.rfind("result=", 0) == 0 && n && *n >= 1 && *n <= 9)
          return true;
      }
      return false;
    },
    30s);
  CHECK_MESSAGE(live, dump(seen));
  auto lines = term.finish();
  INFO(dump(lines));
  auto bars = bar_lines(lines);
  REQUIRE(bars.size() == 1); // every redraw replaced the line
  CHECK(bars[0].rfind("result=90: 100%|████", 0) == 0);
  CHECK(bars[0].find("| 10/10 [") != std::string::npos);
  CHECK(columns(bars[0]) <= 100);
  CHECK(columns(bars[0]) >= 90); // it used the terminal's width
  auto at = std::find(lines.begin(), lines.end(), bars[0]);
  REQUIRE(at + 1 < lines.end());
  CHECK(at[1] == "results: 0 None None 30 None None 60 None None 90");
  CHECK(std::find(lines.begin(), lines.end(), "EXIT=0") != lines.end());
}

TEST_CASE("S10 on a narrow terminal: the bar fits 40 columns") {
  terminal::scale("0.2");
  terminal term{demo("s10_thread_pool"), 40, 10};
  auto lines = term.finish();
  INFO(dump(lines));
  auto bars = bar_lines(lines);
  REQUIRE(bars.size() == 1);
  CHECK(columns(bars[0]) <= 40);
  CHECK(bars[0].find("10/10") != std::string::npos);
  CHECK(std::find(lines.begin(), lines.end(), "EXIT=0") != lines.end());
}

TEST_CASE("S5 on a terminal: one live bar per worker process") {
  terminal::scale("1");
  terminal term{demo("s05_pool_files") + " 2000", 100, 20};
  // While it runs: both workers' bars on screen, both partly done.
  std::vector<std::string> seen;
  bool live = support::eventually(
    [&] {
      seen = term.screen();
      int moving = 0;
      for (auto& l : seen) {
        auto n = count_of(l, "1000");
        moving += (l.rfind("worker 1: ", 0) == 0 || l.rfind("worker 2: ", 0) == 0)
                  && n && *n < 1000;
      }
      return moving == 2;
    },
    30s);
  CHECK_MESSAGE(live, dump(seen));
  auto lines = term.finish();
  INFO(dump(lines));
  auto bars = bar_lines(lines);
  REQUIRE(bars.size() == 2);
  CHECK(bars[0].rfind("worker 1: 100%|", 0) == 0);
  CHECK(bars[1].rfind("worker 2: 100%|", 0) == 0);
  CHECK(bars[0].find("| 1000/1000 [") != std::string::npos);
  CHECK(bars[1].find("| 1000/1000 [") != std::string::npos);
  auto at = std::find(lines.begin(), lines.end(), bars[0]);
  CHECK(at[1] == bars[1]); // adjacent lines
  CHECK(std::find(lines.begin(), lines.end(),
                  "files 2000 processed 2000 bytes 99000 exactly once 1")
        != lines.end());
  CHECK(std::find(lines.begin(), lines.end(), "EXIT=0") != lines.end());
}
