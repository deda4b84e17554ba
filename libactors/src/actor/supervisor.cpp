// The supervisor actor: Erlang/OTP's strategies, restart types and restart
// intensity over CAF monitors. It is detached (a thread of its own) because
// starting a child process and stopping one are blocking steps; while it
// restarts, requests to it wait.

#include "actors/supervisor.hpp"

#include <csignal>
#include <cstring>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/actor_process.hpp"
#include "actors/detail/timeout.hpp"
#include "base/exception_text.hpp"
#include "node/runtime.hpp"
#include "process/supervision.hpp"

namespace actors {

namespace detail {

namespace {

using init_atom = caf::atom_constant<caf::atom("a_init")>;
using which_atom = caf::atom_constant<caf::atom("a_which")>;
using count_atom = caf::atom_constant<caf::atom("a_count")>;

struct supervised {
  child_spec spec;
  caf::actor handle; // while it runs
};

struct supervisor_state {
  std::vector<supervised> children;
  restart_intensity intensity{0, {}};
  int restarts = 0;
  static constexpr const char* name = "actors.supervisor";
};

bool is_shutdown(const caf::error& reason) {
  return !reason
         || (reason.category() == caf::atom("exit")
             && reason.code()
                  == static_cast<std::uint8_t>(
                    caf::exit_reason::user_shutdown));
}

using self_ptr = caf::stateful_actor<supervisor_state>*;

// Starts child `i`; throws what its start function threw.
void start_child(self_ptr self, std::size_t i) {
  auto& c = self->state.children[i];
  auto handle = c.spec.start();
  if (!handle)
    throw error(errc::spawn_failed,
                "the start function of child " + c.spec.id
                  + " returned an invalid handle");
  self->monitor(handle);
  if (c.spec.registered)
    register_name(c.spec.id, handle, true);
  c.handle = std::move(handle);
}

// Stops child `i` and waits until it ended: politely, then killed after
// its shutdown time.
void stop_child(self_ptr self, std::size_t i) {
  auto& c = self->state.children[i];
  if (!c.handle)
    return;
  auto handle = std::move(c.handle);
  c.handle = nullptr;
  self->demonitor(handle);
  caf::scoped_actor waiter{self->system()};
  waiter->monitor(handle);
  caf::anon_send_exit(handle, caf::exit_reason::user_shutdown);
  bool ended = false;
  waiter->receive([&](caf::down_msg&) { ended = true; },
                  caf::after(detail::at_most_forever(c.spec.shutdown))
                    >> [] {});
  if (ended)
    return;
  caf::anon_send_exit(handle, caf::exit_reason::kill);
  waiter->receive([](caf::down_msg&) {},
                  caf::after(std::chrono::seconds{5}) >> [] {});
}

// Stops the running children from the last down to `first`.
void stop_children(self_ptr self, std::size_t first = 0) {
  auto& children = self->state.children;
  for (auto i = children.size(); i-- > first;)
    stop_child(self, i);
}

caf::behavior supervisor_actor(self_ptr self, supervisor_options opts,
                               std::vector<child_spec> specs) {
  self->state.intensity = restart_intensity{opts.intensity, opts.period};
  for (auto& spec : specs)
    self->state.children.push_back({std::move(spec), nullptr});
  auto escalate = [=](const std::string& last) {
    stop_children(self);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                opts.period)
                .count();
    self->quit(make_error(errc::escalated,
                          "more than " + std::to_string(opts.intensity)
                            + " restarts within " + std::to_string(ms)
                            + " ms; last: " + last));
  };
  // Starts the children from `first` to `last` that do not run (in
  // order), each failure to start counting as one more restart.
  auto restart_from = [=](std::size_t first, std::size_t last) {
    auto& children = self->state.children;
    for (auto i = first; i <= last && i < children.size(); ++i) {
      while (!children[i].handle) {
        try {
          start_child(self, i);
        } catch (...) {
          ++self->state.restarts;
          if (!self->state.intensity.allow())
            return escalate("child " + children[i].spec.id
                            + " did not start: " + current_exception_text());
        }
      }
    }
  };
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& children = self->state.children;
    std::size_t k = 0;
    while (k < children.size() && children[k].handle.address() != dm.source)
      ++k;
    if (k == children.size())
      return; // a child stopped on purpose
    children[k].handle = nullptr;
    auto type = children[k].spec.type;
    if (type == restart::temporary) {
      children.erase(children.begin() + static_cast<std::ptrdiff_t>(k));
      return;
    }
    if (type == restart::transient && is_shutdown(dm.reason))
      return;
    auto last = "child " + children[k].spec.id + " ended: "
                + describe(dm.reason);
    ++self->state.restarts;
    if (!self->state.intensity.allow())
      return escalate(last);
    auto first = k;
    if (opts.how == strategy::one_for_all)
      first = 0;
    if (opts.how != strategy::one_for_one) {
      stop_children(self, first);
      // Temporary siblings stopped by the strategy are not restarted.
      for (auto i = children.size(); i-- > first;)
        if (i != k && children[i].spec.type == restart::temporary)
          children.erase(children.begin() + static_cast<std::ptrdiff_t>(i));
    }
    auto end = opts.how == strategy::one_for_one ? k : children.size() - 1;
    restart_from(first, end);
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    if (!em.reason)
      return; // a linked actor ended normally
    stop_children(self);
    self->quit(std::move(em.reason));
  });
  return {
    [=](init_atom) -> caf::result<bool> {
      auto& children = self->state.children;
      for (std::size_t i = 0; i < children.size(); ++i) {
        try {
          start_child(self, i);
        } catch (...) {
          auto what = "child " + children[i].spec.id
                      + " did not start: " + current_exception_text();
          stop_children(self);
          self->quit(make_error(errc::spawn_failed, what));
          return make_error(errc::spawn_failed, what);
        }
      }
      return true;
    },
    [=](which_atom, const std::string& id) {
      for (auto& c : self->state.children)
        if (c.spec.id == id)
          return c.handle;
      return caf::actor{};
    },
    [=](count_atom) { return self->state.restarts; },
  };
}

} // namespace

} // namespace detail

supervisor::supervisor(supervisor_options opts,
                       std::vector<child_spec> children) {
  std::set<std::string> ids;
  for (auto& c : children)
    if (c.id.empty() || !c.start || !ids.insert(c.id).second)
      throw error(errc::invalid_argument,
                  "every child of a supervisor needs a unique id and a "
                  "start function");
  if (opts.intensity < 0 || opts.period <= duration::zero())
    throw error(errc::invalid_argument,
                "a supervisor's intensity must not be negative and its "
                "period must be positive");
  auto& sys = detail::runtime::get().system();
  handle_ = sys.spawn<caf::detached>(detail::supervisor_actor, opts,
                                     std::move(children));
  caf::scoped_actor self{sys};
  std::string failure;
  self->request(handle_, caf::infinite, detail::init_atom::value)
    .receive([](bool) {},
             [&](caf::error& err) {
               failure = errc_of(err) == errc::spawn_failed
                           ? err.context().get_as<std::string>(0)
                           : sys.render(err);
             });
  if (!failure.empty()) {
    wait(std::nullopt);
    handle_ = nullptr;
    throw error(errc::spawn_failed, "supervisor: " + failure);
  }
}

supervisor::supervisor(supervisor&&) noexcept = default;

supervisor& supervisor::operator=(supervisor&& other) noexcept {
  if (this != &other) {
    if (handle_ && !reason_)
      stop();
    handle_ = std::move(other.handle_);
    reason_ = std::move(other.reason_);
  }
  return *this;
}

supervisor::~supervisor() {
  if (handle_ && !reason_)
    stop();
}

caf::actor supervisor::child(const std::string& id) const {
  caf::scoped_actor self{detail::runtime::get().system()};
  caf::actor result;
  self->request(handle_, caf::infinite, detail::which_atom::value, id)
    .receive([&](caf::actor& found) { result = std::move(found); },
             [](caf::error&) {});
  return result;
}

int supervisor::restarts() const {
  caf::scoped_actor self{detail::runtime::get().system()};
  int result = 0;
  self->request(handle_, caf::infinite, detail::count_atom::value)
    .receive([&](int n) { result = n; }, [](caf::error&) {});
  return result;
}

bool supervisor::wait(std::optional<duration> timeout) {
  if (reason_)
    return true;
  caf::scoped_actor self{detail::runtime::get().system()};
  self->monitor(handle_);
  bool ended = false;
  auto on_down = [&](caf::down_msg& dm) {
    reason_ = std::move(dm.reason);
    ended = true;
  };
  timeout = detail::finite(timeout);
  if (timeout)
    self->receive(on_down, caf::after(*timeout) >> [] {});
  else
    self->receive(on_down);
  return ended;
}

std::optional<caf::error> supervisor::reason() const {
  return reason_;
}

void supervisor::stop() {
  if (!handle_ || reason_)
    return;
  caf::anon_send_exit(handle_, caf::exit_reason::user_shutdown);
  wait(std::nullopt);
}

} // namespace actors
