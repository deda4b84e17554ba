#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <sys/types.h>

// Everything an actor program uses (caf::behavior, caf::event_based_actor,
// caf::scoped_actor, atoms, ...): a program includes <actors/all.hpp> only.
#include <caf/all.hpp>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/error.hpp>
#include <caf/infer_handle.hpp>
#include <caf/replies_to.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/spawn_options.hpp>
#include <caf/type_nr.hpp>
#include <caf/typed_actor.hpp>

#include "actors/detail/closure.hpp"
#include "actors/error.hpp"
#include "actors/runtime.hpp"

namespace actors {

/// The message types of a program's own actors, registered with
/// `actors::init` in every process of the program:
/// @code
/// struct ping { int n; };
/// template <class Inspector>
/// typename Inspector::result_type inspect(Inspector& f, ping& x) {
///   return f(x.n);
/// }
///
/// int main(int argc, char** argv) {
///   actors::init(argc, argv, actors::message_types<ping, pong>{});
/// @endcode
/// A message crossing a process boundary needs its types registered (CAF
/// serializes by name). Builtins need not be: numbers, strings, atoms,
/// `std::vector`s of them, and vectors of vectors, lists, deques, sets,
/// unordered sets of `int`, `std::int64_t`, `double` or `std::string`, and
/// maps and unordered maps from `int`, `std::int64_t` or `std::string` to
/// one of those four (libactors registers these in every process). What is
/// not registered is reported, naming the type: by `spawn` for a typed
/// actor's interface; otherwise a request holding one, or answered with
/// one, fails with `errc::not_registered` (an asynchronous message holding
/// one is dropped with a line on stderr).
template <class... Ts>
struct message_types {};

namespace detail {

class child;
std::string demangle(const char* name);

/// Adds a step to the configuration of every actor system of this program;
/// throws `errc::not_initialized` once one exists.
void add_config_step(void (*step)(caf::actor_system_config&));

template <class T>
void add_message_type(caf::actor_system_config& cfg) {
  cfg.add_message_type<T>(demangle(typeid(T).name()));
}

} // namespace detail

/// `actors::init(argc, argv)` that first registers the program's own
/// message types `Ts...` (see `message_types`).
template <class... Ts>
void init(int argc, char** argv, message_types<Ts...>) {
  (detail::add_config_step(&detail::add_message_type<Ts>), ...);
  init(argc, argv);
}

/// Registers message types `Ts...` without `init`: for code that cannot
/// reach `main` (a library, a test), from a static initializer. Throws
/// `errc::not_initialized` once libactors runs.
template <class... Ts>
void add_message_types() {
  (detail::add_config_step(&detail::add_message_type<Ts>), ...);
}

/// This process's CAF actor system (started on first use), for
/// `caf::scoped_actor` and local actors.
caf::actor_system& system();

/// Makes a CAF error of `code` saying `what`: the form in which libactors'
/// errors appear as exit reasons (`down_msg::reason`, `exit_msg::reason`)
/// and as failed requests.
caf::error make_error(errc code, std::string what);

/// The `errc` of a CAF error made by libactors; empty for any other error
/// (including no error: a normal exit).
std::optional<errc> errc_of(const caf::error& err);

/// The text of any CAF error as this program's actor system renders it,
/// "normal" for no error: "actors: actor process died (actor process 4242
/// (worker) killed by signal 11 (SIGSEGV))".
std::string describe(const caf::error& err);

class pool;

/// How an actor process starts and stops, and where it runs.
struct actor_options {
  /// Its name in messages and exit reasons; "Actor-N" when empty.
  std::string name;
  /// How long the process may take until its actor runs.
  std::chrono::steady_clock::duration start_timeout = std::chrono::seconds{10};
  /// How long its actor may take to end after an exit message (from `stop`,
  /// a supervisor, a link, `send_exit`) before the process is killed.
  std::chrono::steady_clock::duration stop_timeout = std::chrono::seconds{2};
  /// Where it runs: null for a new process of this host; else on a worker
  /// process of a host that joined this pool (`pool_options::listen`), which
  /// runs the actor and nothing else until the actor ends. The pool must
  /// outlive the actor (terminating it ends the actor with
  /// `errc::connection_lost`) and must have no task timeout.
  const pool* hosts = nullptr;
  /// With `hosts`: the name of the host (its `--actors-host-name`, by
  /// default its hostname); empty: any joined host, the one running the
  /// fewest actors, avoiding a host that just lost a worker (so that a
  /// supervisor restarts the child of a lost host on another one).
  std::string host{};
};

namespace detail {

/// The non-template part of an actor process: the child and its guardian.
struct actor_host;

/// Starts the child that runs `target(guardian)` and waits until its actor
/// runs; returns the guardian (see `actor_process`).
std::shared_ptr<actor_host>
start_actor_process(const std::function<closure(const caf::actor&)>& target,
                    const actor_options& opts);

const caf::actor& guardian_of(const actor_host& host);
caf::actor actor_of(const actor_host& host);
const std::string& name_of(const actor_host& host);
pid_t pid_of(const actor_host& host);
bool join(const actor_host& host,
          std::optional<std::chrono::steady_clock::duration> timeout);
std::optional<int> exitcode_of(const actor_host& host);
void kill(const actor_host& host);

/// `register_name`, replacing what holds the name when `replace`.
void register_name(const std::string& name, const caf::actor& who,
                   bool replace);

/// In the child: spawns the actor with `make`, tells `guardian`, and returns
/// when the actor ended; a failure to spawn or an abnormal end exits with 1.
void serve_actor(const caf::actor& guardian,
                 const std::function<caf::actor(caf::actor_system&)>& make);

/// The exception handler of actors in actor processes: prints the exception
/// and ends the actor with `errc::actor_failed` naming it.
caf::error on_actor_exception(caf::scheduled_actor* self,
                              std::exception_ptr& x);

/// Installs `on_actor_exception` unless the actor set a handler of its own.
void guard_exceptions(caf::scheduled_actor::exception_handler& handler);

/// A class-based actor `T` with libactors' exception handler.
template <class T>
class guarded final : public T {
public:
  /// Constructs `T(cfg, xs...)`, then guards it.
  template <class... Ts>
  explicit guarded(caf::actor_config& cfg, Ts&&... xs)
    : T(cfg, std::forward<Ts>(xs)...) {
    guard_exceptions(this->exception_handler_);
  }
};

// Child side of a function-based actor: `fn(self, args...)`.
template <class Self, class R, class... Ps>
void run_fn_actor(code_ref fn, caf::actor guardian, std::decay_t<Ps>... args) {
  serve_actor(guardian, [&](caf::actor_system& sys) {
    auto f = reinterpret_cast<R (*)(Self, Ps...)>(
      const_cast<void*>(from_code_ref(fn)));
    if (f == nullptr)
      throw error(errc::function_not_found,
                  "the actor's function is not in this binary");
    auto body = [f, args...](Self self) mutable -> R {
      self->set_exception_handler(on_actor_exception);
      return f(self, static_cast<std::decay_t<Ps>&&>(args)...);
    };
    return caf::actor_cast<caf::actor>(sys.spawn(std::move(body)));
  });
}

// Child side of a class-based actor `T(cfg, args...)`.
template <class T, class... Ps>
void run_class_actor(caf::actor guardian, Ps... args) {
  serve_actor(guardian, [&](caf::actor_system& sys) {
    return caf::actor_cast<caf::actor>(
      sys.spawn<guarded<T>>(std::move(args)...));
  });
}

/// Each type a typed interface sends or answers, checked for registration.
template <class T>
void check_registered(caf::actor_system& sys, std::string& missing) {
  using type = typename caf::unbox_message_element<
    typename caf::detail::strip_and_convert<T>::type>::type;
  if constexpr (!std::is_void_v<type>) {
    if (caf::type_nr<type>::value != 0)
      return;
    const auto& types = sys.types();
    if (types.portable_name(0, &typeid(type)) == types.default_type_name())
      missing += (missing.empty() ? "" : ", ") + demangle(typeid(type).name());
  }
}

template <class Sig>
struct signature_check;

template <class... Is, class... Os>
struct signature_check<
  caf::typed_mpi<caf::detail::type_list<Is...>, caf::output_tuple<Os...>>> {
  static void run(caf::actor_system& sys, std::string& missing) {
    (check_registered<Is>(sys, missing), ...);
    (check_registered<Os>(sys, missing), ...);
  }
};

template <class Handle>
struct interface_check {
  static void run(caf::actor_system&, std::string&) {
    // A dynamically typed actor names no types in advance.
  }
};

template <class... Sigs>
struct interface_check<caf::typed_actor<Sigs...>> {
  static void run(caf::actor_system& sys, std::string& missing) {
    (signature_check<Sigs>::run(sys, missing), ...);
  }
};

/// Throws `errc::not_registered` naming the types of `Handle`'s interface
/// that this program did not register.
template <class Handle>
void check_interface(const actor_options& opts) {
  std::string missing;
  interface_check<Handle>::run(actors::system(), missing);
  if (!missing.empty())
    throw error(errc::not_registered,
                "cannot spawn actor"
                  + (opts.name.empty() ? "" : " " + opts.name)
                  + ": its interface uses " + missing
                  + ", not registered: add them to actors::message_types in "
                    "actors::init");
}

template <class R, class Self, class... Ps, class... Args>
closure bind_actor_fn(R (*fn)(Self, Ps...), const caf::actor& guardian,
                      Args&&... args) {
  static_assert(sizeof...(Ps) == sizeof...(Args),
                "wrong number of arguments for the actor function");
  return closure::bind(&run_fn_actor<Self, R, Ps...>,
                       to_code_ref(reinterpret_cast<const void*>(fn)),
                       guardian, std::forward<Args>(args)...);
}

template <class F>
struct self_of;

template <class... Args>
constexpr bool starts_with_options = false;

template <class First, class... Args>
constexpr bool starts_with_options<First, Args...> =
  std::is_same_v<std::decay_t<First>, actor_options>;

template <class R, class Self, class... Ps>
struct self_of<R (*)(Self, Ps...)> {
  using type = Self;
  using result = R;
};

template <class R>
struct self_of<R (*)()> {
  using type = void;
  using result = R;
};

/// What is wrong with the signature of an actor function, if anything.
enum class actor_fn_problem {
  none,
  no_self,         ///< no parameter at all
  self_of_handle,  ///< caf::stateful_actor<S, calculator>*: a handle type
  not_a_pointer,   ///< the first parameter is not a pointer
  not_event_based, ///< a pointer to something else than an event-based actor
  result_type,     ///< returns neither a behavior nor void
  untyped_self,    ///< returns a typed behavior, takes an untyped self
  typed_self,      ///< takes a typed self, returns no typed behavior
  other_interface, ///< the typed behavior of another interface
};

template <class T>
constexpr bool is_typed_behavior = false;

template <class... Sigs>
constexpr bool is_typed_behavior<caf::typed_behavior<Sigs...>> = true;

// caf::stateful_actor<S, H>* with a handle type H (CAF wants an actor class
// there: calculator::base, caf::event_based_actor); matched without
// instantiating it, which fails.
template <class T>
constexpr bool is_stateful_of_handle = false;

template <class S, class... Sigs>
constexpr bool
  is_stateful_of_handle<caf::stateful_actor<S, caf::typed_actor<Sigs...>>*> =
    true;

template <class S>
constexpr bool is_stateful_of_handle<caf::stateful_actor<S, caf::actor>*> =
  true;

/// The problem of the actor function type `Fn` (a function pointer).
template <class Fn>
constexpr actor_fn_problem actor_fn_check() {
  using self = typename self_of<Fn>::type;
  using result = typename self_of<Fn>::result;
  using impl = std::remove_pointer_t<self>;
  if constexpr (std::is_void_v<self>)
    return actor_fn_problem::no_self;
  else if constexpr (is_stateful_of_handle<self>)
    return actor_fn_problem::self_of_handle;
  else if constexpr (!std::is_pointer_v<self>)
    return actor_fn_problem::not_a_pointer;
  else if constexpr (!std::is_class_v<impl>
                     || !std::is_base_of_v<caf::scheduled_actor, impl>)
    return actor_fn_problem::not_event_based;
  else if constexpr (!std::is_void_v<result>
                     && !std::is_same_v<result, caf::behavior>
                     && !is_typed_behavior<result>)
    return actor_fn_problem::result_type;
  else if constexpr (!is_typed_behavior<typename impl::behavior_type>)
    return is_typed_behavior<result> ? actor_fn_problem::untyped_self
                                     : actor_fn_problem::none;
  else if constexpr (!is_typed_behavior<result>)
    return actor_fn_problem::typed_self;
  else if constexpr (!std::is_same_v<result, typename impl::behavior_type>)
    return actor_fn_problem::other_interface;
  else
    return actor_fn_problem::none;
}

} // namespace detail

/// A user-defined actor in its own OS process: the handle to talk to it,
/// and the process around it. Made by `actors::spawn`.
///
/// `handle()` is an ordinary CAF handle (`caf::actor` or the actor's
/// `caf::typed_actor`): `send`, `request(...).receive/then` with timeouts,
/// `monitor`, `link`, `send_exit`, and passing it in messages to actors in
/// other processes all work as with a local actor. It refers to the actor
/// itself, across a link between the two processes (shared-memory rings: a
/// message is one frame, written by the sending thread). The actor's
/// *guardian*, a small actor in the spawning process, watches its life:
/// exit messages sent to the handle from this process reach the actor
/// through it (so the stop timeout below holds), and the reason a monitor
/// or a link sees says why the actor ended:
///
/// | the actor ...                       | down_msg / exit_msg reason      |
/// |-------------------------------------|---------------------------------|
/// | returned or called `quit()`         | normal (no error)               |
/// | quit with an error `e`              | `e`                             |
/// | threw                               | `errc::actor_failed`, "type: text" |
/// | was stopped (`stop`, `send_exit`)   | that exit reason                |
/// | its process died (signal, `exit`)   | `errc::process_died`, "killed by signal 11 (SIGSEGV)" |
/// | lost its connection, process alive  | `errc::connection_lost` (the process is killed) |
///
/// Use `actors::errc_of(reason)` to tell them apart. The process's
/// `exitcode()` follows `actors::process`: 0 when the actor ended normally
/// or was asked to stop, 1 when it failed (the reason is printed to stderr),
/// `-N` when signal N ended it.
///
/// **Stopping.** An exit message to the handle (`stop()`, a supervisor, a
/// linked actor failing) reaches the actor; if it has not ended within
/// `actor_options::stop_timeout`, its process is killed. An exit message
/// `caf::exit_reason::kill` kills the process at once. Destroying an
/// `actor_process` neither stops nor waits for it (as for `process`): the
/// actor serves on through other handles (`whereis`, one passed in a
/// message) until it ends or is stopped. Actor processes are daemons: they
/// are stopped when this program exits, and they exit when it dies.
///
/// **Requests in flight** when the process dies fail at once with
/// `errc::process_died` (naming the exit code or signal), as does a request
/// to the ended handle; the request's timeout bounds only a slow answer.
///
/// **On another host** (`actor_options::hosts`): the actor runs on a worker
/// process of a host joined to that pool, as a task that takes the worker
/// until the actor ends; its handle, monitors, links, `stop` and the
/// reasons above work as for a process here (the traffic is TLS between
/// hosts). `pid()` is its worker's pid on that host; `exitcode()` is 0 or 1
/// as above, -9 once it was killed or lost. A lost host or link (its
/// workers silent for `pool_options::lost_after`, or gone) ends it with
/// `errc::connection_lost`; a supervisor whose start function places it on
/// any host restarts it on another one. `kill()` ends its worker process
/// (its host starts a fresh one).
template <class Handle>
class actor_process {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// Made by `actors::spawn`.
  explicit actor_process(std::shared_ptr<detail::actor_host> host)
    : host_(std::move(host)),
      handle_(caf::actor_cast<Handle>(detail::actor_of(*host_))) {
    // nop
  }

  /// The actor, to send it messages, monitor or link it.
  const Handle& handle() const noexcept {
    return handle_;
  }

  /// The process's name.
  const std::string& name() const noexcept {
    return detail::name_of(*host_);
  }

  /// The process's id.
  pid_t pid() const {
    return detail::pid_of(*host_);
  }

  /// Waits until the process ended; false when `timeout` ran out first.
  bool join(std::optional<duration> timeout = std::nullopt) const {
    return detail::join(*host_, timeout);
  }

  /// True until the process ended.
  bool is_alive() const {
    return !exitcode();
  }

  /// The process's exit code (see above); empty while it runs.
  std::optional<int> exitcode() const {
    return detail::exitcode_of(*host_);
  }

  /// Asks the actor to stop (exit reason `user_shutdown`) and waits until
  /// its process ended (after at most `stop_timeout` it is killed); false
  /// when `timeout` ran out first.
  bool stop(std::optional<duration> timeout = std::nullopt) const {
    caf::anon_send_exit(detail::guardian_of(*host_),
                        caf::exit_reason::user_shutdown);
    return join(timeout);
  }

  /// Kills the process (SIGKILL) at once.
  void kill() const {
    detail::kill(*host_);
  }

private:
  std::shared_ptr<detail::actor_host> host_;
  Handle handle_;
};

/// Spawns the function-based actor `fn(self, args...)` in a new OS process
/// and returns once it runs. `fn` is a plain function (or a lambda without
/// captures) whose first parameter is the actor's self pointer, as for
/// `caf::actor_system::spawn`: `caf::event_based_actor*`, a
/// `caf::stateful_actor<S>*`, or a typed actor's `pointer`; its handle type
/// follows from it. The arguments cross to the child as for
/// `actors::process` (serializable, checked at compile time).
///
/// @code
/// caf::behavior adder(caf::event_based_actor*, int base) {
///   return {[=](int x) { return base + x; }};
/// }
/// ...
/// auto p = actors::spawn(adder, 40);
/// caf::scoped_actor self{...};
/// self->request(p.handle(), std::chrono::seconds{1}, 2).receive(
///   [](int sum) { assert(sum == 42); }, [](caf::error&) {});
/// @endcode
///
/// Throws `errc::not_registered` when a typed interface uses a type not
/// registered with `message_types`, `errc::spawn_failed` when the process
/// does not start or its actor does not run within `start_timeout` (the
/// message says why: the actor's constructor threw, the process died).
///
/// `spawn` blocks its thread until the actor runs (a few ms): call it from
/// a thread of yours, a supervisor's start function, or a detached actor,
/// not from an event-based actor's handler (it would hold a scheduler
/// thread that the start needs).
template <class F, class... Args,
          class = std::enable_if_t<!std::is_same_v<std::decay_t<F>,
                                                   actor_options>>>
auto spawn(const actor_options& opts, F&& fn, Args&&... args) {
  auto f = detail::as_function_pointer(std::forward<F>(fn));
  using fn_type = decltype(f);
  using problem = detail::actor_fn_problem;
  constexpr auto found = detail::actor_fn_check<fn_type>();
  static_assert(found != problem::no_self,
                "an actor function takes its self pointer first "
                "(caf::event_based_actor*, caf::stateful_actor<S>*, or a "
                "typed actor's pointer or stateful_pointer<S>)");
  static_assert(found != problem::self_of_handle,
                "caf::stateful_actor<S, X>* takes an actor class as X, not a "
                "handle type: a typed stateful actor's self pointer is "
                "its_interface::stateful_pointer<S> (caf::stateful_actor<S, "
                "its_interface::base>*), an untyped one caf::stateful_actor<S>*");
  static_assert(found != problem::not_a_pointer,
                "the first parameter of an actor function is its self "
                "pointer, and it must be a pointer (caf::event_based_actor*, "
                "caf::stateful_actor<S>*, a typed actor's pointer or "
                "stateful_pointer<S>), not a reference, a value or another "
                "argument");
  static_assert(found != problem::not_event_based,
                "an actor process runs an event-based actor: the self "
                "pointer must point to caf::event_based_actor, "
                "caf::stateful_actor<S>, or a typed actor's base or "
                "stateful_base<S> (a blocking actor cannot be spawned)");
  static_assert(found != problem::result_type,
                "an actor function returns its behavior: caf::behavior (or "
                "void) for an untyped actor, the interface's behavior_type "
                "for a typed one");
  static_assert(found != problem::untyped_self,
                "this actor function returns a typed behavior, so its self "
                "pointer must be the typed actor's: its_interface::pointer "
                "or its_interface::stateful_pointer<S>, not an untyped one");
  static_assert(found != problem::typed_self,
                "this actor function takes a typed actor's self pointer, so "
                "it must return that interface's behavior_type "
                "(caf::typed_behavior<...>), not caf::behavior or void");
  static_assert(found != problem::other_interface,
                "this actor function returns the behavior_type of another "
                "interface than that of its self pointer");
  if constexpr (found == problem::none) {
    using handle = caf::infer_handle_from_fun_t<fn_type>;
    detail::check_interface<handle>(opts);
    auto target = [&](const caf::actor& guardian) {
      return detail::bind_actor_fn(f, guardian, std::forward<Args>(args)...);
    };
    return actor_process<handle>{detail::start_actor_process(target, opts)};
  } else {
    // Not compiled (a static_assert above failed): no further errors.
    return actor_process<caf::actor>{nullptr};
  }
}

/// `spawn(actor_options{}, fn, args...)`.
template <class F, class... Args,
          class = std::enable_if_t<!std::is_same_v<std::decay_t<F>,
                                                   actor_options>>>
auto spawn(F&& fn, Args&&... args) {
  // Qualified: a lookup by argument would instantiate the self pointer's
  // class, before spawn can say what is wrong with it.
  return actors::spawn(actor_options{}, std::forward<F>(fn),
                       std::forward<Args>(args)...);
}

/// Spawns the class-based actor `T` (derived from `caf::event_based_actor`
/// or a typed actor's `base`, constructed as `T(cfg, args...)`) in a new OS
/// process; otherwise as the function-based `spawn`.
template <class T, class... Args,
          class = std::enable_if_t<std::is_base_of_v<caf::scheduled_actor, T>>>
auto spawn(const actor_options& opts, Args&&... args) {
  using handle = caf::infer_handle_from_class_t<T>;
  detail::check_interface<handle>(opts);
  auto target = [&](const caf::actor& guardian) {
    return detail::closure::bind(
      &detail::run_class_actor<T, std::decay_t<Args>...>, guardian,
      std::forward<Args>(args)...);
  };
  return actor_process<handle>{detail::start_actor_process(target, opts)};
}

/// `spawn<T>(actor_options{}, args...)`.
template <class T, class... Args,
          class = std::enable_if_t<std::is_base_of_v<caf::scheduled_actor, T>
                                   && !detail::starts_with_options<Args...>>,
          class = void>
auto spawn(Args&&... args) {
  return spawn<T>(actor_options{}, std::forward<Args>(args)...);
}

/// Registers `who` under `name` for every process of this run (the program
/// the user started keeps the table); the entry is removed when the actor
/// ends. Throws `errc::name_taken` when a living actor holds the name,
/// `errc::timeout` when the table does not answer within 5 s.
void register_name(const std::string& name, const caf::actor& who);

/// `register_name` for a typed handle.
template <class Handle,
          class = std::enable_if_t<!std::is_same_v<Handle, caf::actor>>>
void register_name(const std::string& name, const Handle& who) {
  register_name(name, caf::actor_cast<caf::actor>(who));
}

/// The actor registered under `name` by any process of this run, or an
/// invalid handle when there is none. Throws `errc::timeout` when the
/// table does not answer within 5 s.
caf::actor whereis(const std::string& name);

/// `whereis` as a typed handle (unchecked: the caller names the interface).
template <class Handle>
Handle whereis(const std::string& name) {
  return caf::actor_cast<Handle>(whereis(name));
}

} // namespace actors
