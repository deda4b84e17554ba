#pragma once

// A function call that can be sent to another process running the same
// binary. Public templates need it; users never name it.

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/deserializer.hpp>
// caf::detail::is_serializable: CAF's own test of what it can serialize,
// which the compile-time checks of the templates below need.
#include <caf/detail/type_traits.hpp>
#include <caf/sec.hpp>
#include <caf/serializer.hpp>

#include "actors/detail/code_ref.hpp"
#include "actors/detail/value.hpp"

namespace actors::detail {

/// What identifies a call bound to a plain function in every process
/// running the binary: the code that loads its arguments, and the function.
struct call_origin {
  code_ref loader;
  code_ref fn;
};

/// A bound call, type-erased. Calling it returns the function's result as a
/// value when the call was bound to collect it, an empty value otherwise.
class callable {
public:
  virtual ~callable();
  virtual value operator()() = 0;
  /// Writes the arguments (the closure writes what identifies the call).
  virtual caf::error save(caf::serializer& sink) = 0;
  /// Where the call comes from; null for a call that stays in its process.
  virtual call_origin* origin() noexcept {
    return nullptr;
  }
};

/// Rebuilds a `callable` of a known signature from serialized arguments.
using call_loader = caf::error (*)(caf::deserializer&, const void* fn,
                                   call_origin origin,
                                   std::unique_ptr<callable>&);

template <bool Collect, class R, class... Params>
class bound_call final : public callable {
public:
  using fn_type = R (*)(Params...);
  using args_type = std::tuple<std::decay_t<Params>...>;

  bound_call(fn_type fn, args_type args, call_origin origin)
    : fn_(fn), args_(std::move(args)), origin_(std::move(origin)) {
    // nop
  }

  value operator()() override {
    if constexpr (Collect && !std::is_void_v<R>) {
      return value::make(invoke(std::index_sequence_for<Params...>{}));
    } else {
      invoke(std::index_sequence_for<Params...>{});
      return {};
    }
  }

  caf::error save(caf::serializer& sink) override {
    return std::apply([&](auto&... xs) { return sink(xs...); }, args_);
  }

  call_origin* origin() noexcept override {
    return &origin_;
  }

  static caf::error load(caf::deserializer& source, const void* fn,
                         call_origin origin, std::unique_ptr<callable>& out) {
    args_type args;
    if (auto err = std::apply([&](auto&... xs) { return source(xs...); },
                              args))
      return err;
    out = std::make_unique<bound_call>(reinterpret_cast<fn_type>(
                                         const_cast<void*>(fn)),
                                       std::move(args), std::move(origin));
    return caf::none;
  }

private:
  template <size_t... Is>
  R invoke(std::index_sequence<Is...>) {
    // Value parameters take their argument by move, references bind to it.
    return fn_(static_cast<Params&&>(std::get<Is>(args_))...);
  }

  fn_type fn_;
  args_type args_;
  call_origin origin_;
};

/// A call of any callable that stays in this process (a thread pool's task);
/// serializing it fails.
template <class F>
class local_call final : public callable {
public:
  explicit local_call(F f) : f_(std::move(f)) {
    // nop
  }

  value operator()() override {
    using result = std::decay_t<std::invoke_result_t<F&>>;
    if constexpr (std::is_void_v<result>) {
      f_();
      return {};
    } else {
      return value::make_local<result>(f_());
    }
  }

  caf::error save(caf::serializer&) override {
    return caf::sec::state_not_serializable;
  }

private:
  F f_;
};

template <class F, class = void>
struct has_unary_plus : std::false_type {};

template <class F>
struct has_unary_plus<F, std::void_t<decltype(+std::declval<F&>())>>
  : std::true_type {};

/// Turns a function, a function pointer or a lambda without captures into a
/// plain function pointer, and rejects everything else at compile time.
template <class F>
auto as_function_pointer(F&& f) {
  using fn = std::remove_reference_t<F>;
  if constexpr (std::is_function_v<fn>) {
    return &f;
  } else if constexpr (std::is_pointer_v<fn>
                       && std::is_function_v<std::remove_pointer_t<fn>>) {
    return f;
  } else {
    static_assert(has_unary_plus<fn>::value,
                  "a function that runs in another process must be a plain "
                  "function or a lambda without captures: captured state "
                  "cannot cross a process boundary, pass it as arguments");
    return +f;
  }
}

template <class Signature>
class function_ref;

/// Whether a `T` may hold a pipe end: false only for types known to hold
/// none, so that only a task that may carry ends is walked for them.
template <class T, class = void>
struct may_hold_ends : std::true_type {};

template <class T>
struct may_hold_ends<
  T, std::enable_if_t<std::is_arithmetic_v<T> || std::is_enum_v<T>>>
  : std::false_type {};

template <class C, class Tr, class A>
struct may_hold_ends<std::basic_string<C, Tr, A>> : std::false_type {};

template <class S>
struct may_hold_ends<function_ref<S>> : std::false_type {};

template <class T, class A>
struct may_hold_ends<std::vector<T, A>> : may_hold_ends<T> {};

template <class A, class B>
struct may_hold_ends<std::pair<A, B>>
  : std::disjunction<may_hold_ends<A>, may_hold_ends<B>> {};

template <class... Ts>
struct may_hold_ends<std::tuple<Ts...>>
  : std::disjunction<may_hold_ends<Ts>...> {};

class closure;

/// Hands over the pipe ends among the arguments of `x` (a task bound now
/// and sent later): from now on this process holds them on behalf of the
/// worker that runs it, as if it had sent them (queue_ref.hpp,
/// end_flight), so that the caller may close its copies at once.
void hand_over(closure& x);

/// Makes this process the holder of the pipe ends among the arguments of
/// `x`, a call received from another process (deserializing a call only
/// carries them; no-op if it carries none), and returns once the queue of
/// each has noted it (or is unreachable): whatever this process does next,
/// by whatever path, reaches those queues after its hold, and so its death
/// is seen to end its ends. Blocks; never on a thread of CAF's.
void take_ends(closure& x);

template <bool Collect, class R>
constexpr bool result_serializable() {
  if constexpr (!Collect || std::is_void_v<R>)
    return true;
  else
    return caf::detail::is_serializable<std::decay_t<R>>::value;
}

/// A call of a plain function with its arguments, which can be serialized,
/// sent to another process running the same binary, and run there; or, made
/// by `local`, a call of any callable that stays in this process. Copies
/// share the bound arguments.
class closure {
public:
  closure() = default;

  /// A call whose result is dropped (a process's target).
  template <class F, class... Args>
  static closure bind(F&& fn, Args&&... args) {
    return bind_fn<false>(as_function_pointer(std::forward<F>(fn)),
                          std::forward<Args>(args)...);
  }

  /// A call whose result comes back as a value (a pool task); the result
  /// type must be serializable.
  template <class F, class... Args>
  static closure bind_task(F&& fn, Args&&... args) {
    return bind_fn<true>(as_function_pointer(std::forward<F>(fn)),
                         std::forward<Args>(args)...);
  }

  /// A call of `fn()` that never leaves this process: any callable,
  /// including lambdas that capture; its result is moved, not serialized.
  template <class F>
  static closure local(F fn) {
    closure result;
    result.call_ = std::make_shared<local_call<F>>(std::move(fn));
    return result;
  }

  /// A call of `call`, which never leaves this process (it may be part of
  /// a larger object: a thread pool's chunk is its own task and sink).
  static closure wrap(std::shared_ptr<callable> call) {
    closure result;
    result.call_ = std::move(call);
    return result;
  }

  explicit operator bool() const noexcept {
    return call_ != nullptr;
  }

  /// Runs the call; exceptions from the function pass through.
  value operator()() const {
    return (*call_)();
  }

  /// Whether deserializing it carried pipe ends that take_ends() has not
  /// made this process's yet.
  bool carries_ends() const noexcept {
    return carries_ends_;
  }
  void carries_ends(bool yes) noexcept {
    carries_ends_ = yes;
  }

  friend caf::error inspect(caf::serializer& f, closure& x);
  friend caf::error inspect(caf::deserializer& f, closure& x);
  friend void inspect(caf::detail::stringification_inspector& f, closure& x);

private:
  template <bool Collect, class R, class... Params, class... Args>
  static closure bind_fn(R (*fn)(Params...), Args&&... args) {
    static_assert(result_serializable<Collect, R>(),
                  "the result type must be serializable to come back from "
                  "another process");
    static_assert(sizeof...(Params) == sizeof...(Args),
                  "wrong number of arguments for the function");
    static_assert((std::is_constructible_v<std::decay_t<Params>, Args&&>
                   && ...),
                  "an argument does not convert to its parameter type");
    static_assert((caf::detail::is_serializable<std::decay_t<Params>>::value
                   && ...),
                  "every parameter type must be serializable: a builtin, a "
                  "standard container of serializable types, or a type with "
                  "an inspect overload (pointers cannot cross processes)");
    static_assert((std::is_default_constructible_v<std::decay_t<Params>>
                   && ...),
                  "parameter types must be default constructible to be "
                  "deserialized in the child");
    using call = bound_call<Collect, R, Params...>;
    closure result;
    result.call_ = std::make_shared<call>(
      fn, typename call::args_type{std::forward<Args>(args)...},
      call_origin{to_code_ref(reinterpret_cast<const void*>(&call::load)),
                  to_code_ref(reinterpret_cast<const void*>(fn))});
    // A pool's task is serialized later, on another thread: what it
    // carries is handed over now. (A process's arguments are by start().)
    if constexpr (Collect
                  && std::disjunction_v<may_hold_ends<std::decay_t<Params>>...>)
      hand_over(result);
    return result;
  }

  // The call (its origin travels with it: a closure is as small as a
  // pointer, cheap to move through a pool's task table).
  std::shared_ptr<callable> call_;
  bool carries_ends_ = false;
};

} // namespace actors::detail
