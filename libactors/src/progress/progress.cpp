// Progress bars: one drawing actor per process (the board) keeps the bars
// created there and draws them on standard error.
//
// Protocol (all one-way, so an update never waits; ids are per board):
//   (p_open, id, total, description)   total < 0: none
//   (p_add, id, n)  (p_desc, id, text)  (p_total, id, n)
//   (p_tick)                            a redraw that was held back
// except closing, a call (see call.hpp) answered once the final state is on
// screen, so that what the program prints next comes after it:
//   (p_close, call id, id) -> ok()
// On a terminal the board keeps a block of lines, one per bar, and redraws
// it in place (carriage return, cursor up, clear to end of line) at most
// every 100 ms; once every bar of the block is closed, it ends the block
// with a newline and forgets them. Elsewhere it prints plain lines.

#include "actors/progress.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <sys/ioctl.h>
#include <unistd.h>

#include <caf/event_based_actor.hpp>

#include "node/call.hpp"
#include "node/runtime.hpp"

namespace actors {

namespace {

using p_open = caf::atom_constant<caf::atom("p_open")>;
using p_add = caf::atom_constant<caf::atom("p_add")>;
using p_desc = caf::atom_constant<caf::atom("p_desc")>;
using p_total = caf::atom_constant<caf::atom("p_total")>;
using p_close = caf::atom_constant<caf::atom("p_close")>;
using p_tick = caf::atom_constant<caf::atom("p_tick")>;

using clock = std::chrono::steady_clock;

constexpr auto redraw_interval = std::chrono::milliseconds{100};
constexpr auto plain_interval = std::chrono::seconds{5};

struct bar {
  std::uint64_t id = 0;
  std::string description;
  long long n = 0;
  std::optional<long long> total;
  clock::time_point start = clock::now();
  std::optional<clock::time_point> closed; // when
  // Plain output: when and at which count the last line was printed.
  clock::time_point printed_at = clock::now();
  long long printed_n = -1;

  std::string line(int width, bool unicode) const {
    return progress::format_meter(n, total, closed.value_or(clock::now()) - start,
                                  description, width, unicode);
  }
};

struct board {
  int fd = STDERR_FILENO;
  bool tty = ::isatty(STDERR_FILENO) == 1;
  bool unicode = false;
  std::vector<bar> bars; // on a terminal: the block on screen, top first
  std::size_t lines = 0; // lines of the block drawn so far
  clock::time_point last_draw;
  bool tick_pending = false;

  board() {
    for (auto* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
      if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
        std::string s{v};
        unicode = s.find("UTF-8") != std::string::npos
                  || s.find("utf8") != std::string::npos
                  || s.find("utf-8") != std::string::npos;
        break;
      }
    }
  }

  bar* find(std::uint64_t id) {
    for (auto& b : bars)
      if (b.id == id)
        return &b;
    return nullptr;
  }

  int width() const {
    winsize ws{};
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
      return ws.ws_col;
    if (const char* cols = std::getenv("COLUMNS"))
      if (int n = std::atoi(cols); n > 0)
        return n;
    return 80;
  }

  void write_all(const std::string& s) const {
    const char* p = s.data();
    auto left = s.size();
    while (left > 0) {
      auto n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return; // stderr is gone: drawing is best effort
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  void draw() {
    last_draw = clock::now();
    if (bars.empty())
      return;
    std::string out;
    if (tty) {
      // Stay one column short of the edge: a full line would wrap on some
      // terminals and break the cursor arithmetic.
      auto w = std::max(width() - 1, 10);
      if (lines > 0) {
        out += '\r';
        if (lines > 1)
          out += "\x1b[" + std::to_string(lines - 1) + "A";
      }
      for (std::size_t i = 0; i < bars.size(); ++i) {
        out += bars[i].line(w, unicode);
        out += "\x1b[K";
        if (i + 1 < bars.size())
          out += '\n';
      }
      lines = bars.size();
      if (std::all_of(bars.begin(), bars.end(),
                      [](const bar& b) { return b.closed.has_value(); })) {
        out += '\n';
        bars.clear();
        lines = 0;
      }
    } else {
      auto now = clock::now();
      for (auto& b : bars) {
        bool due = b.closed || (now - b.printed_at >= plain_interval
                                && b.n != b.printed_n);
        if (!due)
          continue;
        out += b.line(80, false);
        out += '\n';
        b.printed_at = now;
        b.printed_n = b.n;
      }
      bars.erase(std::remove_if(bars.begin(), bars.end(),
                                [](const bar& b) {
                                  return b.closed.has_value();
                                }),
                 bars.end());
    }
    write_all(out);
  }

  void close_all() {
    for (auto& b : bars)
      if (!b.closed)
        b.closed = clock::now();
    draw();
  }
};

caf::behavior board_actor(caf::event_based_actor* self) {
  auto st = std::make_shared<board>();
  // The final state of every bar still open when this process ends.
  self->attach_functor([st] { st->close_all(); });
  // Draws now, or within the redraw interval.
  auto changed = [self, st](bool now) {
    auto since = clock::now() - st->last_draw;
    if (now || (!st->tick_pending && since >= redraw_interval)) {
      st->draw();
    } else if (!st->tick_pending) {
      st->tick_pending = true;
      self->delayed_send(self, redraw_interval - since, p_tick::value);
    }
  };
  return {
    [=](p_open, std::uint64_t id, long long total,
        const std::string& description) {
      bar b;
      b.id = id;
      b.description = description;
      if (total >= 0)
        b.total = total;
      st->bars.push_back(std::move(b));
      changed(false);
    },
    [=](p_add, std::uint64_t id, long long n) {
      if (auto* b = st->find(id); b && !b->closed) {
        b->n += n;
        changed(false);
      }
    },
    [=](p_desc, std::uint64_t id, const std::string& text) {
      if (auto* b = st->find(id); b && !b->closed) {
        b->description = text;
        changed(false);
      }
    },
    [=](p_total, std::uint64_t id, long long n) {
      if (auto* b = st->find(id); b && !b->closed) {
        b->total = n;
        changed(false);
      }
    },
    [=](p_close, std::uint64_t call, std::uint64_t id) {
      if (auto* b = st->find(id); b && !b->closed) {
        b->closed = clock::now();
        changed(true);
      }
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 caf::ok_atom::value, call, caf::message{});
    },
    [=](p_tick) {
      st->tick_pending = false;
      st->draw();
    },
  };
}

// This process's board, started with its first bar. The handle is never
// destroyed: releasing an actor from a static destructor at exit would run
// CAF's cleanup after its thread-local state is gone (the runtime ends the
// board itself at shutdown).
const caf::actor& this_board() {
  static const caf::actor* instance = new caf::actor{
    detail::runtime::get().spawn_service(
      [](caf::actor_system& sys) { return sys.spawn(board_actor); })};
  return *instance;
}

void close_bar(const caf::actor& board, std::uint64_t id) {
  detail::caller::for_this_thread().call(board, std::chrono::seconds{1},
                                        p_close::value, id);
}

// Closes the bar when the creating process's last copy of it is gone.
class closer {
public:
  closer(caf::actor board, std::uint64_t id)
    : board_(std::move(board)), id_(id) {
  }
  closer(const closer&) = delete;
  closer& operator=(const closer&) = delete;
  ~closer() {
    try {
      close_bar(board_, id_);
    } catch (...) {
      // the process is ending: its board draws every open bar itself
    }
  }

private:
  caf::actor board_;
  std::uint64_t id_;
};

// Columns on screen: UTF-8 continuation bytes take none.
int columns(const std::string& s) {
  int n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

std::string format_time(double seconds) {
  auto total = static_cast<long long>(seconds);
  auto h = total / 3600, m = (total / 60) % 60, s = total % 60;
  char buf[32];
  if (h > 0)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", h, m, s);
  else
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld", m, s);
  return buf;
}

std::string format_rate(long long n, double seconds) {
  if (n <= 0 || seconds <= 0)
    return "?it/s";
  auto rate = static_cast<double>(n) / seconds;
  char buf[32];
  if (rate >= 1)
    std::snprintf(buf, sizeof(buf), "%.2fit/s", rate);
  else
    std::snprintf(buf, sizeof(buf), "%.2fs/it", 1 / rate);
  return buf;
}

// `s` cut to at most `width` columns.
std::string cut(const std::string& s, int width) {
  std::string out;
  int n = 0;
  for (unsigned char c : s) {
    bool starts = (c & 0xC0) != 0x80;
    if (starts && n == width)
      break;
    n += starts;
    out += static_cast<char>(c);
  }
  return out;
}

} // namespace

progress::progress(std::optional<long long> total, std::string description)
  : board_(this_board()) {
  static std::atomic<std::uint64_t> next_id{1};
  id_ = next_id++;
  caf::anon_send(board_, p_open::value, id_, total ? *total : -1LL,
                 std::move(description));
  closer_ = std::make_shared<closer>(board_, id_);
}

void progress::update(long long n) const {
  if (board_)
    caf::anon_send(board_, p_add::value, id_, n);
}

void progress::description(std::string text) const {
  if (board_)
    caf::anon_send(board_, p_desc::value, id_, std::move(text));
}

void progress::total(long long n) const {
  if (board_)
    caf::anon_send(board_, p_total::value, id_, n);
}

void progress::close() const {
  if (board_)
    close_bar(board_, id_);
}

std::string progress::format_meter(long long n, std::optional<long long> total,
                                   duration elapsed,
                                   const std::string& description, int width,
                                   bool unicode) {
  auto secs = std::chrono::duration<double>(elapsed).count();
  auto prefix = description.empty() ? std::string{} : description + ": ";
  auto rate = format_rate(n, secs);
  if (!total || *total <= 0) {
    auto tail = std::to_string(n) + "it [" + format_time(secs) + ", " + rate
                + "]";
    return cut(prefix + tail, width);
  }
  double frac = std::clamp(static_cast<double>(n) / static_cast<double>(*total),
                           0.0, 1.0);
  char pct[8];
  std::snprintf(pct, sizeof(pct), "%3.0f%%", frac * 100);
  std::string eta = "?";
  if (n > 0 && secs > 0)
    eta = format_time(std::max(0.0, static_cast<double>(*total - n) * secs
                                      / static_cast<double>(n)));
  auto right = "| " + std::to_string(n) + "/" + std::to_string(*total) + " ["
               + format_time(secs) + "<" + eta + ", " + rate + "]";
  // The description gives way first, then the bar.
  auto fixed = columns(pct) + 1 + columns(right);
  auto room_for_prefix = width - fixed - 10;
  if (columns(prefix) > room_for_prefix)
    prefix = room_for_prefix > 4 ? cut(prefix, room_for_prefix - 3) + "..: "
                                 : std::string{};
  auto bar_width = width - columns(prefix) - fixed;
  if (bar_width < 1)
    return cut(prefix + pct + right, width);
  std::string bar;
  if (unicode) {
    static const char* parts[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    auto eighths = static_cast<long long>(frac * bar_width * 8);
    auto full = eighths / 8;
    for (long long i = 0; i < full; ++i)
      bar += "█";
    bar += parts[eighths % 8];
    bar += std::string(static_cast<std::size_t>(
                         bar_width - full - (eighths % 8 != 0 ? 1 : 0)),
                       ' ');
  } else {
    auto full = static_cast<int>(frac * bar_width);
    bar = std::string(static_cast<std::size_t>(full), '#')
          + std::string(static_cast<std::size_t>(bar_width - full), ' ');
  }
  return prefix + pct + "|" + bar + right;
}

} // namespace actors
