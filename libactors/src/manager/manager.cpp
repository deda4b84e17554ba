// actors::manager (actors/manager.hpp): an actor process whose actor makes
// the shared objects, each an actor of that process: a dict (also a
// namespace and a value) keeps its entries in insertion order with an index
// by key bytes; a list is a vector. Items stay type-erased values there,
// serialized as they came, and go back the same way. An object of a
// user's class (or a queue, lock, ... made there) is made and called by
// closures run on a detached actor of its own, which holds the object.

#include "actors/manager.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "base/exception_text.hpp"
#include "net/auth.hpp"
#include "net/listener.hpp"
#include "node/process_role.hpp"
#include "node/runtime.hpp"
#include "queue/hub_client.hpp"
#include "queue/queue_hub.hpp"

namespace actors {

namespace detail {

namespace {

struct dict_state {
  using entries = std::list<std::pair<key_bytes, value>>;
  entries items;
  std::map<key_bytes, entries::iterator> index;

  static constexpr const char* name = "shared_dict";
};

caf::error no_key(const char* what) {
  return make_error(errc::not_found,
                    std::string{what} + ": the dict holds no such key");
}

caf::behavior dict_actor(caf::stateful_actor<dict_state>* self) {
  auto& st = self->state;
  return {
    [&st](mgr_set_atom, key_bytes& k, value& v) {
      auto i = st.index.find(k);
      if (i != st.index.end()) {
        i->second->second = std::move(v);
        return;
      }
      st.items.emplace_back(k, std::move(v));
      st.index.emplace(std::move(k), std::prev(st.items.end()));
    },
    [&st](mgr_get_atom, const key_bytes& k) -> caf::result<value> {
      auto i = st.index.find(k);
      if (i == st.index.end())
        return no_key("get");
      return i->second->second;
    },
    [&st](mgr_get_atom, const key_bytes& k, bool) {
      // The form with a fallback: none or one value.
      std::vector<value> found;
      auto i = st.index.find(k);
      if (i != st.index.end())
        found.push_back(i->second->second);
      return value::make(std::move(found));
    },
    [&st](mgr_has_atom, const key_bytes& k) {
      return st.index.count(k) > 0;
    },
    [&st](mgr_pop_atom, const key_bytes& k) -> caf::result<value> {
      auto i = st.index.find(k);
      if (i == st.index.end())
        return no_key("pop");
      auto v = std::move(i->second->second);
      st.items.erase(i->second);
      st.index.erase(i);
      return v;
    },
    [&st](mgr_setdef_atom, key_bytes& k, value& v) {
      auto i = st.index.find(k);
      if (i != st.index.end())
        return i->second->second;
      st.items.emplace_back(k, v);
      st.index.emplace(std::move(k), std::prev(st.items.end()));
      return v;
    },
    [&st](mgr_size_atom) {
      return static_cast<std::uint64_t>(st.items.size());
    },
    [&st](mgr_clear_atom) {
      st.items.clear();
      st.index.clear();
    },
    [&st](mgr_items_atom) {
      std::vector<std::pair<key_bytes, value>> copy{st.items.begin(),
                                                     st.items.end()};
      return value::make(std::move(copy));
    },
  };
}

struct list_state {
  std::vector<value> items;

  static constexpr const char* name = "shared_list";

  // Python's index rules: negative counts from the end.
  bool at(std::int64_t i, std::size_t& out) const {
    auto n = static_cast<std::int64_t>(items.size());
    if (i < 0)
      i += n;
    if (i < 0 || i >= n)
      return false;
    out = static_cast<std::size_t>(i);
    return true;
  }
};

caf::error no_index(const char* what, std::int64_t i, std::size_t size) {
  return make_error(errc::not_found,
                    std::string{what} + ": index " + std::to_string(i)
                      + " is outside a list of " + std::to_string(size));
}

caf::behavior list_actor(caf::stateful_actor<list_state>* self) {
  auto& st = self->state;
  return {
    [&st](mgr_append_atom, value& v) { st.items.push_back(std::move(v)); },
    [&st](mgr_append_atom, value& many, bool) -> caf::result<void> {
      auto all = many.take<std::vector<value>>();
      for (auto& v : all)
        st.items.push_back(std::move(v));
      return caf::unit;
    },
    [&st](mgr_get_atom, std::int64_t i) -> caf::result<value> {
      std::size_t at;
      if (!st.at(i, at))
        return no_index("get", i, st.items.size());
      return st.items[at];
    },
    [&st](mgr_set_atom, std::int64_t i, value& v) -> caf::result<void> {
      std::size_t at;
      if (!st.at(i, at))
        return no_index("set", i, st.items.size());
      st.items[at] = std::move(v);
      return caf::unit;
    },
    [&st](mgr_pop_atom, std::int64_t i) -> caf::result<value> {
      std::size_t at;
      if (!st.at(i, at))
        return no_index("pop", i, st.items.size());
      auto v = std::move(st.items[at]);
      st.items.erase(st.items.begin() + static_cast<std::ptrdiff_t>(at));
      return v;
    },
    [&st](mgr_size_atom) {
      return static_cast<std::uint64_t>(st.items.size());
    },
    [&st](mgr_clear_atom) { st.items.clear(); },
    [&st](mgr_items_atom) { return value::make(st.items); },
  };
}

// A connection to or from another host is lost after this long in silence.
constexpr std::chrono::milliseconds lost_after{5000};

thread_local object_slot* current_slot = nullptr;

struct object_state {
  object_slot slot;

  static constexpr const char* name = "shared_object";
};

// Runs `call` (a closure in a value) on the object in `slot`: its result,
// or errc::task_failed with the exception's type and message.
caf::expected<value> run_on(object_slot& slot, value& call) {
  try {
    auto fn = call.take<closure>();
    if (fn.carries_ends())
      take_ends(fn); // blocks: this actor has a thread of its own
    struct scope {
      explicit scope(object_slot& s) {
        current_slot = &s;
      }
      ~scope() {
        current_slot = nullptr;
      }
    } in{slot};
    return fn();
  } catch (...) {
    auto text = current_exception_text();
    if (slot.wrong_type) {
      slot.wrong_type = false;
      return make_error(errc::type_mismatch, text);
    }
    return make_error(errc::task_failed, text);
  }
}

// An object's actor: the first message makes the object (its answer
// carries the actor, for the proxy); a queue or lock made this way needs
// no actor after that, and it ends.
caf::behavior object_actor(caf::stateful_actor<object_state>* self) {
  return {
    [self](mgr_make_atom, value& construct) -> caf::result<value> {
      auto made = run_on(self->state.slot, construct);
      if (!self->state.slot.object)
        self->quit();
      if (!made)
        return std::move(made.error());
      return value::make(std::make_pair(caf::actor_cast<caf::actor>(self),
                                        std::move(*made)));
    },
    [self](mgr_call_atom, value& call) -> caf::result<value> {
      return run_on(self->state.slot, call);
    },
  };
}

struct manager_state {
  std::map<key_bytes, value> names; // what was published
  std::unique_ptr<listener> server;

  static constexpr const char* name = "manager";
};

// The manager's own actor: makes objects, which live as long as its
// process (they are not linked to their proxies: a proxy may travel), and
// keeps what was published by name. Given an address (`host` not empty)
// it listens there for programs of other hosts proving `key`: BASP for its
// actors (they join with this actor published), its queue hub for the
// queues it made.
caf::behavior manager_actor(caf::stateful_actor<manager_state>* self,
                            std::string host, std::uint16_t port,
                            std::vector<char> key) {
  auto& st = self->state;
  if (!host.empty()) {
    secret k{};
    if (key.size() != k.size())
      throw error(errc::invalid_argument, "a manager's key is 32 bytes");
    std::memcpy(k.data(), key.data(), k.size());
    caf::weak_actor_ptr me = self->ctrl();
    st.server = std::make_unique<listener>(
      k,
      [me](int fd, purpose p) {
        watch_link(fd, lost_after);
        if (p == purpose::hub) {
          queue_hub::local().serve_stream(fd);
        } else if (auto strong = me.lock(); strong && p == purpose::node) {
          runtime::get().accept_node(fd, caf::actor_cast<caf::actor>(strong));
        } else {
          ::close(fd); // a worker or a listener's client knocked here
        }
      },
      std::chrono::seconds{2}, host, port);
  }
  return {
    [self](mgr_make_atom, std::uint8_t kind) -> caf::result<caf::actor> {
      switch (static_cast<shared_kind>(kind)) {
        case shared_kind::dict:
          return caf::actor_cast<caf::actor>(self->spawn(dict_actor));
        case shared_kind::list:
          return caf::actor_cast<caf::actor>(self->spawn(list_actor));
      }
      return make_error(errc::invalid_argument, "no such kind of object");
    },
    [self](mgr_make_atom, value& construct) {
      auto obj = self->spawn<caf::detached>(object_actor);
      return self->delegate(obj, mgr_make_atom::value, std::move(construct));
    },
    [self](mgr_set_atom, key_bytes& k, value& v) {
      self->state.names[std::move(k)] = std::move(v);
    },
    [self](mgr_get_atom, const key_bytes& k) -> caf::result<value> {
      auto i = self->state.names.find(k);
      if (i == self->state.names.end())
        return make_error(errc::not_found,
                          "nothing was published under that name");
      return i->second;
    },
    [self](mgr_port_atom) -> caf::result<std::uint16_t> {
      if (!self->state.server)
        return make_error(errc::invalid_argument,
                          "the manager does not listen for other hosts "
                          "(manager_options::listen)");
      return self->state.server->port();
    },
  };
}

} // namespace

object_slot* current_object() noexcept {
  return current_slot;
}

void shared_call_failed(const caf::error& err, const char* what) {
  auto code = errc_of(err).value_or(errc::owner_unreachable);
  throw error(code, std::string{"shared object: "} + what + ": "
                      + describe(err));
}

} // namespace detail

namespace {

// Starts a manager's process, listening at `host:port` with `key` unless
// `host` is empty.
std::unique_ptr<actor_process<caf::actor>>
start_manager(const std::string& host, std::uint16_t port,
              std::vector<char> key) {
  static std::atomic<int> counter{0};
  actor_options opts;
  opts.name = "SyncManager-" + std::to_string(++counter);
  return std::make_unique<actor_process<caf::actor>>(
    actors::spawn(opts, detail::manager_actor, host, port, std::move(key)));
}

} // namespace

manager::manager() : process_(start_manager({}, 0, {})) {
  actor_ = process_->handle();
}

manager::manager(const manager_options& opts) {
  if (opts.listen.empty()) {
    process_ = start_manager({}, 0, {});
  } else {
    if (opts.key_file.empty())
      throw error(errc::invalid_argument,
                  "manager_options::listen needs a key_file: the key the "
                  "other hosts prove");
    auto where = detail::split_address(opts.listen);
    auto key = detail::load_or_make_secret(opts.key_file);
    process_ = start_manager(where.first, where.second,
                             std::vector<char>(key.begin(), key.end()));
  }
  actor_ = process_->handle();
}

manager manager::connect(const std::string& address,
                         const std::string& key_file,
                         std::chrono::steady_clock::duration timeout) {
  auto [host, port] = detail::split_address(address);
  auto key = detail::read_secret(key_file);
  auto ms = std::max(std::chrono::milliseconds{1},
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                       timeout));
  auto fd = detail::connect_authenticated(host, port, key,
                                          detail::purpose::node, ms);
  detail::watch_link(fd, detail::lost_after);
  manager result{connected{}};
  result.actor_ = detail::runtime::get().connect_node(fd, ms);
  // Its queues: over a stream to its hub, proving the same key.
  detail::reach_hub_of(result.actor_->node(), [host = host, port = port,
                                               key] {
    auto stream = detail::connect_authenticated(host, port, key,
                                                detail::purpose::hub,
                                                detail::bootstrap_timeout);
    detail::watch_link(stream, detail::lost_after);
    return stream;
  });
  return result;
}

manager::~manager() {
  if (process_)
    shutdown();
}

manager::manager(manager&&) noexcept = default;

manager& manager::operator=(manager&& other) noexcept {
  if (this != &other) {
    if (process_)
      shutdown();
    process_ = std::move(other.process_);
    actor_ = std::move(other.actor_);
    timeout_ = other.timeout_;
  }
  return *this;
}

bool manager::shutdown(std::optional<std::chrono::steady_clock::duration> timeout) {
  actor_ = nullptr;
  if (!process_)
    return true;
  return process_->stop(timeout);
}

pid_t manager::pid() const {
  if (!process_)
    throw error(errc::invalid_argument,
                actor_ ? "a connected manager's process runs on another host"
                       : "a moved-from manager has no process");
  return process_->pid();
}

bool manager::is_alive() const {
  return process_ ? process_->is_alive() : static_cast<bool>(actor_);
}

std::uint16_t manager::port() const {
  auto port = ask<std::uint16_t>(handle(), std::chrono::seconds{10},
                                 detail::mgr_port_atom::value);
  if (!port)
    detail::shared_call_failed(port.error(), "port");
  return *port;
}

const caf::actor& manager::handle() const {
  if (!actor_)
    throw error(errc::invalid_argument,
                "a manager that was shut down or moved from");
  return actor_;
}

caf::actor manager::make_kind(detail::shared_kind kind) const {
  auto made = ask<caf::actor>(handle(),
                              timeout_.value_or(std::chrono::seconds{10}),
                              detail::mgr_make_atom::value,
                              static_cast<std::uint8_t>(kind));
  if (!made)
    detail::shared_call_failed(made.error(), "make");
  return std::move(*made);
}

std::pair<caf::actor, detail::value>
manager::make_there(detail::closure construct) const {
  auto made = ask<detail::value>(handle(), timeout_,
                                 detail::mgr_make_atom::value,
                                 detail::value::make(std::move(construct)));
  if (!made)
    detail::shared_call_failed(made.error(), "make");
  return made->take<std::pair<caf::actor, detail::value>>();
}

} // namespace actors
