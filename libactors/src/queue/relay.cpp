// actors::listener and actors::client (actors/detail/relay.hpp): a socket
// to another program, authenticated with the key handshake (net/auth.hpp,
// purpose::connection), becomes a pipe of this process. Two threads per
// socket relay it: one reads frames ([u32 size][u8 kind][the T], the
// channel's framing) into the pipe's inbox, the other takes what the end
// sends from its outbox and writes it. The user's end is a pipe end like any
// other: it waits with wait(), passes to children and ends as pipes end.

#include "actors/detail/relay.hpp"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>

#include <sys/socket.h>

#include "actors/error.hpp"
#include "base/deadline.hpp"
#include "base/fd.hpp"
#include "net/auth.hpp"
#include "net/listener.hpp"
#include "node/runtime.hpp"
#include "wire/channel.hpp"

namespace actors::detail {

namespace {

constexpr std::uint8_t item_frame = 1;

// One item's body as the codec writes and reads it.
struct coded {
  const relay_codec* codec;
  value* item;

  friend caf::error inspect(caf::serializer& f, coded& x) {
    return x.codec->save(f, *x.item);
  }

  friend caf::error inspect(caf::deserializer& f, coded& x) {
    return x.codec->load(f, *x.item);
  }
};

struct relay {
  relay(int fd, relay_codec c) : ch(fd), codec(c) {
    // nop
  }

  channel ch; // closes the socket with the relay, after both threads
  relay_codec codec;
  queue_ref inbox;  // what arrives; the user's end reads it
  queue_ref outbox; // what the user's end sends
  int running = 2;  // threads (under relays::mtx)
};

// Every relay of this process that has a thread running, so that the exit
// sequence can stop them.
struct relays {
  std::mutex mtx;
  std::condition_variable ended;
  std::list<std::shared_ptr<relay>> live;
  bool stopping = false;
  bool hooked = false;

  static relays& local() {
    static auto* instance = new relays;
    return *instance;
  }

  // A relay's thread has ended: it drops its reference under the lock, and
  // the last one forgets the relay, which goes then (its socket, its queue
  // handles), before stop_all() can see it gone.
  void finished(std::shared_ptr<relay> r) {
    std::lock_guard<std::mutex> guard{mtx};
    if (--r->running == 0)
      live.remove(r);
    r.reset();
    ended.notify_all();
  }

  void stop_all() {
    std::unique_lock<std::mutex> guard{mtx};
    stopping = true;
    for (auto& r : live) {
      r->outbox.close();                 // the writer's get ends
      ::shutdown(r->ch.fd(), SHUT_RDWR); // and the reader's recv
    }
    ended.wait_for(guard, std::chrono::seconds{2}, [&] { return live.empty(); });
  }
};

void read_loop(relay& r) {
  try {
    while (r.ch.fill(true)) {
      while (auto f = r.ch.next()) {
        value item;
        coded body{&r.codec, &item};
        if (f->kind != item_frame || r.ch.get(*f, body) || !item)
          throw error(errc::invalid_argument, "a malformed frame");
        r.inbox.put(std::move(item), std::nullopt);
      }
    }
  } catch (const std::exception&) {
    // A malformed frame ends the connection; so does an end nobody reads.
  }
  // Nothing more comes: the end receives what arrived, then end of pipe.
  ::shutdown(r.ch.fd(), SHUT_RD);
  r.inbox.detach(holder_role::writer);
}

void write_loop(relay& r) {
  try {
    for (;;) {
      auto item = r.outbox.get(std::nullopt);
      coded body{&r.codec, &item};
      if (auto err = r.ch.put(item_frame, body)) {
        std::fprintf(stderr,
                     "libactors: a connection's item cannot be serialized "
                     "(%s); the connection ends\n",
                     to_string(err).c_str());
        break;
      }
      if (!r.ch.flush(true))
        break;
    }
  } catch (const std::exception&) {
    // No process holds the end any more: the pipe has ended.
  }
  // The far side reads its end of pipe; the end's sends now fail.
  r.ch.shutdown_write();
  r.outbox.detach(holder_role::reader);
}

} // namespace

std::pair<queue_ref, queue_ref> relay_socket(int fd, relay_codec codec) {
  auto r = std::make_shared<relay>(fd, codec);
  r->inbox = queue_ref::make(0, /*buffered=*/true);
  r->outbox = queue_ref::make(0, /*buffered=*/true);
  // The user's end reads the inbox and writes the outbox; the relay the
  // other way round.
  r->inbox.attach(holder_role::reader);
  r->inbox.attach(holder_role::writer);
  r->outbox.attach(holder_role::writer);
  r->outbox.attach(holder_role::reader);
  auto& all = relays::local();
  std::lock_guard<std::mutex> guard{all.mtx};
  if (all.stopping)
    throw error(errc::closed, "the program is exiting");
  if (!all.hooked) {
    runtime::get().at_shutdown(shutdown_step::stop_servers,
                               [&all] { all.stop_all(); });
    all.hooked = true;
  }
  auto run = [&all](std::shared_ptr<relay> self, void (*loop)(relay&)) {
    return [&all, self = std::move(self), loop]() mutable {
      loop(*self);
      all.finished(std::move(self));
    };
  };
  try {
    std::thread{run(r, read_loop)}.detach();
  } catch (const std::system_error& e) {
    throw error(errc::spawn_failed,
                std::string{"no thread for a connection: "} + e.what());
  }
  try {
    std::thread{run(r, write_loop)}.detach();
  } catch (const std::system_error& e) {
    // The reader ends with the socket; it then forgets the relay.
    --r->running;
    all.live.push_back(r);
    ::shutdown(fd, SHUT_RDWR);
    throw error(errc::spawn_failed,
                std::string{"no thread for a connection: "} + e.what());
  }
  all.live.push_back(r);
  return {r->inbox, r->outbox};
}

// -- listening ------------------------------------------------------------------

struct connection_listener::state {
  std::mutex mtx;
  std::condition_variable ready;
  std::deque<unique_fd> accepted;
  bool closed = false;
  std::string host;
  std::uint16_t port = 0;
  std::unique_ptr<listener> net;

  // Connections not accepted yet beyond this are dropped (Python's backlog).
  static constexpr std::size_t backlog = 64;
};

connection_listener::connection_listener(const std::string& address,
                                         const std::string& key_file)
  : state_(std::make_shared<state>()) {
  auto [host, port] = split_address(address);
  auto key = load_or_make_secret(key_file);
  state_->host = host;
  // The callback may run until the listener is destroyed: it holds the
  // state weakly.
  std::weak_ptr<state> weak = state_;
  state_->net = std::make_unique<listener>(
    key,
    [weak](int fd, purpose p) {
      unique_fd sock{fd};
      auto st = weak.lock();
      if (!st || p != purpose::connection)
        return;
      std::lock_guard<std::mutex> guard{st->mtx};
      if (st->closed || st->accepted.size() >= state::backlog)
        return;
      st->accepted.push_back(std::move(sock));
      st->ready.notify_one();
    },
    std::chrono::seconds{2}, host, port);
  state_->port = state_->net->port();
}

connection_listener::~connection_listener() {
  close();
}

int connection_listener::accept(std::optional<duration> timeout) {
  deadline until{timeout};
  std::unique_lock<std::mutex> guard{state_->mtx};
  auto done = [&] {
    return state_->closed || !state_->accepted.empty();
  };
  if (until.bounded())
    state_->ready.wait_until(guard, until.when(), done);
  else
    state_->ready.wait(guard, done);
  if (state_->closed)
    throw error(errc::closed, "accept on a closed listener");
  if (state_->accepted.empty())
    throw error(errc::timeout, "no client connected to "
                                 + state_->host + ":"
                                 + std::to_string(state_->port)
                                 + " in time");
  auto fd = state_->accepted.front().release();
  state_->accepted.pop_front();
  return fd;
}

std::string connection_listener::address() const {
  auto host = state_->host.find(':') != std::string::npos
                ? "[" + state_->host + "]"
                : state_->host;
  return host + ":" + std::to_string(state_->port);
}

void connection_listener::close() {
  std::unique_ptr<listener> net;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (state_->closed)
      return;
    state_->closed = true;
    state_->accepted.clear();
    state_->ready.notify_all();
    net = std::move(state_->net);
  }
  // Stops the listener's thread (its callback takes the mutex) and closes
  // the port.
  net.reset();
}

int connect_client(const std::string& address, const std::string& key_file,
                   duration timeout) {
  auto [host, port] = split_address(address);
  auto key = read_secret(key_file);
  return connect_authenticated(
    host, port, key, purpose::connection,
    std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
}

} // namespace actors::detail
