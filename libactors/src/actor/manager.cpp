// actors::manager (actors/manager.hpp): an actor process whose actor makes
// the shared objects, each an actor of that process: a dict (also a
// namespace and a value) keeps its entries in insertion order with an index
// by key bytes; a list is a vector. Items stay type-erased values there,
// serialized as they came, and go back the same way. An object of a
// user's class (or a queue, lock, ... made there) is made and called by
// closures run on a detached actor of its own, which holds the object.

#include "actors/manager.hpp"

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "base/exception_text.hpp"

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

// The manager's own actor: makes objects, which live as long as its
// process (they are not linked to their proxies: a proxy may travel).
caf::behavior manager_actor(caf::event_based_actor* self) {
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

manager::manager() {
  static std::atomic<int> counter{0};
  actor_options opts;
  opts.name = "SyncManager-" + std::to_string(++counter);
  process_ = std::make_unique<actor_process<caf::actor>>(
    actors::spawn(opts, detail::manager_actor));
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
  }
  return *this;
}

bool manager::shutdown(std::optional<std::chrono::steady_clock::duration> timeout) {
  if (!process_)
    return true;
  return process_->stop(timeout);
}

pid_t manager::pid() const {
  if (!process_)
    throw error(errc::invalid_argument, "a moved-from manager has no process");
  return process_->pid();
}

bool manager::is_alive() const {
  return process_ && process_->is_alive();
}

caf::actor manager::make_kind(detail::shared_kind kind) const {
  if (!process_)
    throw error(errc::invalid_argument, "a moved-from manager makes nothing");
  auto made = ask<caf::actor>(process_->handle(), std::chrono::seconds{10},
                              detail::mgr_make_atom::value,
                              static_cast<std::uint8_t>(kind));
  if (!made)
    detail::shared_call_failed(made.error(), "make");
  return std::move(*made);
}

std::pair<caf::actor, detail::value>
manager::make_there(detail::closure construct) const {
  if (!process_)
    throw error(errc::invalid_argument, "a moved-from manager makes nothing");
  auto made = ask<detail::value>(process_->handle(), std::nullopt,
                                 detail::mgr_make_atom::value,
                                 detail::value::make(std::move(construct)));
  if (!made)
    detail::shared_call_failed(made.error(), "make");
  return made->take<std::pair<caf::actor, detail::value>>();
}

} // namespace actors
