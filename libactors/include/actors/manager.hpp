#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/actor_process.hpp"
#include "actors/ask.hpp"
#include "actors/detail/closure.hpp"
#include "actors/detail/value.hpp"
#include "actors/error.hpp"
#include "actors/lock.hpp"
#include "actors/queue.hpp"
#include "actors/sync.hpp"

namespace actors {

namespace detail {

/// A key as a manager's objects keep it: its serialized bytes (two keys
/// are equal when their bytes are).
using key_bytes = std::vector<char>;

template <class K>
key_bytes to_key(const K& k) {
  static_assert(caf::detail::is_serializable<K>::value,
                "a key must be serializable (a builtin, a standard container "
                "or a type with an inspect overload)");
  key_bytes out;
  caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr), out};
  auto copy = k;
  if (auto err = sink(copy))
    throw error(errc::invalid_argument,
                "a key that cannot be serialized: " + to_string(err));
  return out;
}

template <class K>
K from_key(const key_bytes& bytes) {
  K result;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                  bytes};
  if (auto err = source(result))
    throw error(errc::type_mismatch,
                "a key of another type than the handle expects");
  return result;
}

///@{
/// The operations of a manager's objects.
using mgr_make_atom = caf::atom_constant<caf::atom("mgr_make")>;
using mgr_set_atom = caf::atom_constant<caf::atom("mgr_set")>;
using mgr_get_atom = caf::atom_constant<caf::atom("mgr_get")>;
using mgr_has_atom = caf::atom_constant<caf::atom("mgr_has")>;
using mgr_pop_atom = caf::atom_constant<caf::atom("mgr_pop")>;
using mgr_size_atom = caf::atom_constant<caf::atom("mgr_size")>;
using mgr_clear_atom = caf::atom_constant<caf::atom("mgr_clear")>;
using mgr_items_atom = caf::atom_constant<caf::atom("mgr_items")>;
using mgr_append_atom = caf::atom_constant<caf::atom("mgr_append")>;
using mgr_setdef_atom = caf::atom_constant<caf::atom("mgr_setdef")>;
using mgr_call_atom = caf::atom_constant<caf::atom("mgr_call")>;
using mgr_port_atom = caf::atom_constant<caf::atom("mgr_port")>;
///@}

/// What a manager makes.
enum class shared_kind : std::uint8_t { dict, list };

/// Throws the `actors::error` for a call `what` on a manager's object that
/// failed with `err`.
[[noreturn]] void shared_call_failed(const caf::error& err, const char* what);

/// The handle under every proxy: the object's actor in the manager's
/// process, and the bound of each call.
class shared_object {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// No object: every call fails with `errc::invalid_argument`.
  shared_object() = default;

  /// The object whose actor is `obj`.
  explicit shared_object(caf::actor obj) : obj_(std::move(obj)) {
    // nop
  }

  /// The object's actor (in the manager's process).
  const caf::actor& actor() const noexcept {
    return obj_;
  }

  /// Asks the object `xs...` and returns its answer of type `R`; throws
  /// the `actors::error` of a failure, naming the call `what`.
  template <class R, class... Ts>
  R call(const char* what, Ts&&... xs) const {
    if (!obj_)
      throw error(errc::invalid_argument,
                  std::string{what} + " on an empty proxy");
    std::optional<duration> timeout;
    if (timeout_ns_ >= 0)
      timeout = std::chrono::nanoseconds{timeout_ns_};
    auto answer = ask<R>(obj_, timeout, std::forward<Ts>(xs)...);
    if (!answer)
      shared_call_failed(answer.error(), what);
    if constexpr (!std::is_void_v<R>)
      return std::move(*answer);
  }

  /// Bounds each later call by `timeout` (none: no bound).
  void bound(std::optional<duration> timeout) noexcept {
    timeout_ns_
        = timeout ? std::max<std::int64_t>(
              0, std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout)
                     .count())
                  : -1;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 shared_object& x) {
    return f(x.obj_, x.timeout_ns_);
  }

private:
  caf::actor obj_;
  std::int64_t timeout_ns_ = -1; // none
};

/// What every proxy of a manager's object is: the object's handle, the
/// bound of its calls, and how it is serialized (proxies travel).
template <class Derived>
class proxy_base {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// Bounds every later call of this handle (none: no bound).
  Derived& timeout(std::optional<duration> t) noexcept {
    obj_.bound(t);
    return static_cast<Derived&>(*this);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, Derived& x) {
    return f(static_cast<proxy_base&>(x).obj_);
  }

protected:
  /// An empty handle.
  proxy_base() = default;

  /// The handle of the object whose actor is `obj`.
  explicit proxy_base(caf::actor obj) : obj_(std::move(obj)) {
    // nop
  }

  shared_object obj_; ///< the object's actor and the bound of each call
};

} // namespace detail

class manager;

/// A dict in a manager's process (Python's `DictProxy`): every call is a
/// request to it, from whichever process of the run holds the handle.
///
/// @code
/// actors::manager m;
/// auto d = m.dict<std::string, int>();
/// d.set("apples", 3);
/// assert(d.get("apples") == 3);
/// @endcode
///
/// Keys are equal when their serialized forms are (strings, numbers,
/// tuples and vectors of them; not unordered containers). Keys and values
/// are any serializable types (`inspect`); values may hold handles
/// (queues, pipe ends, actors, other proxies). Iteration (`keys`, `values`,
/// `items`) is in insertion order, as in Python, and returns a copy taken
/// at one moment. Each call is atomic: `setdefault` and `pop` test and
/// change in one step. A missing key is `errc::not_found` (`KeyError`);
/// the manager's process gone, `errc::process_died`. Calls wait without
/// bound unless `timeout` set one (then `errc::timeout`).
template <class K, class V>
class shared_dict : public detail::proxy_base<shared_dict<K, V>> {
public:
  /// An empty handle (every call fails); exists to be assigned or
  /// deserialized.
  shared_dict() = default;

  /// `d[k] = v`.
  void set(const K& k, V v) const {
    this->obj_.template call<void>("set", detail::mgr_set_atom::value,
                                   detail::to_key(k),
                                   detail::value::make(std::move(v)));
  }

  /// `d[k]`; `errc::not_found` when it holds no `k`.
  V get(const K& k) const {
    return this->obj_
        .template call<detail::value>("get", detail::mgr_get_atom::value,
                                      detail::to_key(k))
        .template take<V>();
  }

  /// `d.get(k, fallback)`.
  V get(const K& k, V fallback) const {
    auto found
        = this->obj_
              .template call<detail::value>("get", detail::mgr_get_atom::value,
                                            detail::to_key(k), true)
              .template take<std::vector<detail::value>>();
    return found.empty() ? fallback : found.front().template take<V>();
  }

  /// `k in d`.
  bool contains(const K& k) const {
    return this->obj_.template call<bool>(
        "contains", detail::mgr_has_atom::value, detail::to_key(k));
  }

  /// `d.pop(k)`: removes `k` and returns its value; `errc::not_found`.
  V pop(const K& k) const {
    return this->obj_
        .template call<detail::value>("pop", detail::mgr_pop_atom::value,
                                      detail::to_key(k))
        .template take<V>();
  }

  /// `del d[k]`; `errc::not_found` when it holds no `k`.
  void erase(const K& k) const {
    pop(k);
  }

  /// `d.setdefault(k, v)`: the value of `k`, first set to `v` if missing.
  V setdefault(const K& k, V v) const {
    return this->obj_
        .template call<detail::value>(
            "setdefault", detail::mgr_setdef_atom::value, detail::to_key(k),
            detail::value::make(std::move(v)))
        .template take<V>();
  }

  /// `len(d)`.
  std::size_t size() const {
    return this->obj_.template call<std::uint64_t>(
        "size", detail::mgr_size_atom::value);
  }

  /// `d.clear()`.
  void clear() const {
    this->obj_.template call<void>("clear", detail::mgr_clear_atom::value);
  }

  ///@{
  /// `d.items()`, `d.keys()`, `d.values()`: copies, in insertion order.
  std::vector<std::pair<K, V>> items() const {
    std::vector<std::pair<K, V>> result;
    for (auto& [k, v] : snapshot())
      result.emplace_back(detail::from_key<K>(k), v.template take<V>());
    return result;
  }
  std::vector<K> keys() const {
    std::vector<K> result;
    for (auto& kv : snapshot())
      result.push_back(detail::from_key<K>(kv.first));
    return result;
  }
  std::vector<V> values() const {
    std::vector<V> result;
    for (auto& kv : snapshot())
      result.push_back(kv.second.template take<V>());
    return result;
  }
  ///@}

private:
  friend class manager;

  using detail::proxy_base<shared_dict>::proxy_base;

  std::vector<std::pair<detail::key_bytes, detail::value>> snapshot() const {
    return this->obj_
        .template call<detail::value>("items", detail::mgr_items_atom::value)
        .template take<
            std::vector<std::pair<detail::key_bytes, detail::value>>>();
  }
};

/// A list in a manager's process (Python's `ListProxy`): `append`,
/// `get(i)`, `set(i, x)`, `pop(i)` (negative indices count from the end,
/// as in Python), `size`, `clear`, `extend`, `to_vector` (a copy). An index
/// outside the list is `errc::not_found` (`IndexError`). As `shared_dict`
/// otherwise.
template <class T>
class shared_list : public detail::proxy_base<shared_list<T>> {
public:
  /// An empty handle (every call fails).
  shared_list() = default;

  /// `l.append(x)`.
  void append(T x) const {
    this->obj_.template call<void>("append", detail::mgr_append_atom::value,
                                   detail::value::make(std::move(x)));
  }

  /// `l.extend(xs)`, in one step.
  void extend(std::vector<T> xs) const {
    std::vector<detail::value> items;
    for (auto& x : xs)
      items.push_back(detail::value::make(std::move(x)));
    this->obj_.template call<void>("extend", detail::mgr_append_atom::value,
                                   detail::value::make(std::move(items)), true);
  }

  /// `l[i]`.
  T get(std::int64_t i) const {
    return this->obj_
        .template call<detail::value>("get", detail::mgr_get_atom::value, i)
        .template take<T>();
  }

  /// `l[i] = x`.
  void set(std::int64_t i, T x) const {
    this->obj_.template call<void>("set", detail::mgr_set_atom::value, i,
                                   detail::value::make(std::move(x)));
  }

  /// `l.pop(i)` (the last one by default).
  T pop(std::int64_t i = -1) const {
    return this->obj_
        .template call<detail::value>("pop", detail::mgr_pop_atom::value, i)
        .template take<T>();
  }

  /// `len(l)`.
  std::size_t size() const {
    return this->obj_.template call<std::uint64_t>(
        "size", detail::mgr_size_atom::value);
  }

  /// `l.clear()` (Python's `del l[:]`).
  void clear() const {
    this->obj_.template call<void>("clear", detail::mgr_clear_atom::value);
  }

  /// `l[:]`: a copy.
  std::vector<T> to_vector() const {
    auto items = this->obj_
                     .template call<detail::value>(
                         "to_vector", detail::mgr_items_atom::value)
                     .template take<std::vector<detail::value>>();
    std::vector<T> result;
    result.reserve(items.size());
    for (auto& v : items)
      result.push_back(v.template take<T>());
    return result;
  }

private:
  friend class manager;

  using detail::proxy_base<shared_list>::proxy_base;
};

/// Python's `manager.Namespace()`: named attributes of any serializable
/// types, `ns.set("x", 1)` for `ns.x = 1`, `ns.get<int>("x")` for `ns.x`
/// (`errc::not_found` when it has none, `errc::type_mismatch` when it holds
/// another type). As `shared_dict` otherwise.
class shared_namespace : public detail::proxy_base<shared_namespace> {
public:
  /// An empty handle (every call fails).
  shared_namespace() = default;

  /// `ns.name = x`.
  template <class T>
  void set(const std::string& name, T x) const {
    this->obj_.template call<void>("set", detail::mgr_set_atom::value,
                                   detail::to_key(name),
                                   detail::value::make(std::move(x)));
  }

  /// `ns.name`.
  template <class T>
  T get(const std::string& name) const {
    return this->obj_
        .template call<detail::value>("get", detail::mgr_get_atom::value,
                                      detail::to_key(name))
        .template take<T>();
  }

  /// `hasattr(ns, name)`.
  bool contains(const std::string& name) const {
    return this->obj_.template call<bool>(
        "contains", detail::mgr_has_atom::value, detail::to_key(name));
  }

  /// `del ns.name`; `errc::not_found` when it has none.
  void erase(const std::string& name) const {
    this->obj_.template call<detail::value>(
        "erase", detail::mgr_pop_atom::value, detail::to_key(name));
  }

private:
  friend class manager;

  using detail::proxy_base<shared_namespace>::proxy_base;
};

/// Python's `manager.Value(typecode, x)`: one value of `T` in the
/// manager's process, `get()` and `set(x)` (its `.value`). As `shared_dict`
/// otherwise.
template <class T>
class shared_value : public detail::proxy_base<shared_value<T>> {
public:
  /// An empty handle (every call fails).
  shared_value() = default;

  /// `v.value`.
  T get() const {
    return this->obj_
        .template call<detail::value>("get", detail::mgr_get_atom::value,
                                      detail::key_bytes{})
        .template take<T>();
  }

  /// `v.value = x`.
  void set(T x) const {
    this->obj_.template call<void>("set", detail::mgr_set_atom::value,
                                   detail::key_bytes{},
                                   detail::value::make(std::move(x)));
  }

private:
  friend class manager;

  using detail::proxy_base<shared_value>::proxy_base;
};

namespace detail {

/// The object of one of a manager's objects of a user's class, in the
/// manager's process: set for the thread that runs a call on it.
struct object_slot {
  std::shared_ptr<void> object;         ///< none until it is made
  const std::type_info* type = nullptr; ///< the class of `object`
  bool wrong_type = false; ///< a call was made through a proxy of another type
};

/// The slot of the object whose call this thread runs (null elsewhere).
object_slot* current_object() noexcept;

/// Runs in the manager's process: makes the object of a `proxy<T>`.
template <class T, class... As>
void construct_object(As... xs) {
  auto* slot = current_object();
  slot->object = std::make_shared<T>(std::move(xs)...);
  slot->type = &typeid(T);
}

/// The object a call runs on, which must be a `T`.
template <class T>
T& object_of_call() {
  auto* slot = current_object();
  if (slot->type == nullptr || *slot->type != typeid(T)) {
    slot->wrong_type = true;
    throw error(errc::type_mismatch,
                "a call made through a proxy of another class than its "
                "object's");
  }
  return *static_cast<T*>(slot->object.get());
}

/// Runs member function `M` of the object of the call: a plain function,
/// so that it can be bound into a closure and sent to the manager.
template <auto M, class T, class R, class... Ps>
struct member_call {
  using object = T;               ///< the class of the method
  using result = std::decay_t<R>; ///< what comes back (a copy)
  /// The call, on the object of the call.
  static result run(std::decay_t<Ps>... xs) {
    return (object_of_call<T>().*M)(static_cast<Ps&&>(xs)...);
  }
};

template <auto M, class = decltype(M)>
struct member_of;

template <auto M, class T, class R, class... Ps>
struct member_of<M, R (T::*)(Ps...)> : member_call<M, T, R, Ps...> {};

template <auto M, class T, class R, class... Ps>
struct member_of<M, R (T::*)(Ps...) const> : member_call<M, T, R, Ps...> {};

template <auto M, class T, class R, class... Ps>
struct member_of<M, R (T::*)(Ps...) noexcept> : member_call<M, T, R, Ps...> {};

template <auto M, class T, class R, class... Ps>
struct member_of<M, R (T::*)(Ps...) const noexcept>
    : member_call<M, T, R, Ps...> {};

/// What the library's own objects are made with in a manager's process.
template <class T>
queue<T> make_queue_there(long maxsize) {
  return queue<T>{maxsize};
}
template <class T>
joinable_queue<T> make_joinable_queue_there(long maxsize) {
  return joinable_queue<T>{maxsize};
}
inline condition make_condition_there() {
  return make_condition();
}
inline barrier make_barrier_there(std::size_t parties) {
  return make_barrier(parties);
}

} // namespace detail

/// An object of a class of yours in a manager's process (Python's proxy of
/// a class given to `BaseManager.register`): `call<&T::method>(args...)`
/// runs the method there and returns its result, from whichever process of
/// the run holds the handle.
///
/// @code
/// struct counter {
///   int n;
///   explicit counter(int start) : n(start) {}
///   int add(int k) { return n += k; }
///   int get() const { return n; }
/// };
///
/// actors::manager m;
/// auto c = m.make<counter>(10);   // constructed in the manager's process
/// c.call<&counter::add>(5);        // 15
/// assert(c.call<&counter::get>() == 15);
/// @endcode
///
/// The object's calls run one at a time, in the order they arrive, on a
/// thread of the object's own in the manager's process: each call is
/// atomic, and a call that blocks (a queue's `get`, a lock) holds up only
/// its object. Arguments and results are copied (they must be
/// serializable: builtins, standard containers, types with `inspect`,
/// including the library's handles); reference parameters bind to the
/// copy, and a reference result is returned by value. An exception thrown
/// by the method arrives as `errc::task_failed` naming its type and
/// message (Python re-raises it); the manager's process gone, as
/// `errc::process_died`. Calls wait without bound unless `timeout` set one
/// (then `errc::timeout`; the call may still run).
template <class T>
class proxy : public detail::proxy_base<proxy<T>> {
public:
  /// An empty handle (every call fails).
  proxy() = default;

  /// Runs the member function `M` of `T` (const or not) on the object, in
  /// the manager's process, with `args...`, and returns its result.
  template <auto M, class... Args>
  auto call(Args&&... args) const {
    using member = detail::member_of<M>;
    static_assert(std::is_same_v<typename member::object, T>,
                  "call<&C::method>: the method of another class than the "
                  "proxy's");
    using result = typename member::result;
    auto answer = this->obj_.template call<detail::value>(
        "call", detail::mgr_call_atom::value,
        detail::value::make(detail::closure::bind_task(
            &member::run, std::forward<Args>(args)...)));
    if constexpr (!std::is_void_v<result>)
      return answer.template take<result>();
  }

private:
  friend class manager;

  using detail::proxy_base<proxy>::proxy_base;
};

/// Where a manager serves programs of other hosts (Python's
/// `BaseManager(address, authkey)`); by default it serves this run only.
struct manager_options {
  /// "HOST:PORT" its process listens on for `manager::connect` from other
  /// hosts ("0.0.0.0:0": every address, a free port: see `port()`); empty:
  /// it does not listen.
  std::string listen;
  /// The key file a client must prove it holds (32 bytes, mode 600; made
  /// with a fresh key when missing, as a pool's): required with `listen`.
  std::string key_file;
};

/// A process that owns shared objects and serves them to every process of
/// the run: Python's `multiprocessing.Manager()` (a `SyncManager`). Its
/// objects are actors in that process, and each proxy (`shared_dict`,
/// `shared_list`, `shared_namespace`, `shared_value`, and `proxy<T>` of an
/// object of a class of yours made by `make<T>`) is a handle to one:
/// every call is a request, answered in the order it arrives, so each call
/// is atomic. Proxies are copied freely, passed to processes and pool tasks
/// as arguments, put into queues and stored in other shared objects.
///
/// @code
/// void count(actors::shared_dict<std::string, int> d, std::string word) {
///   d.set(word, static_cast<int>(word.size()));
/// }
///
/// actors::manager m;
/// auto d = m.dict<std::string, int>();
/// actors::process p{count, d, std::string{"hello"}};
/// p.start();
/// p.join();
/// assert(d.get("hello") == 5);
/// @endcode
///
/// **Lifetime.** The constructor starts the manager's process (an actor
/// process, "SyncManager-N") and returns once it serves. `shutdown()`, or
/// the destructor (Python's `with Manager() as m:`), stops it; the objects
/// go with it, and a call through a proxy then fails at once with
/// `errc::process_died`, as it does when the process is killed. A program
/// that exits stops its managers.
///
/// **Speed.** A call is one round trip to the manager's process over the
/// link between the two processes (shared memory): see the bench rows
/// `manager dict set+get` and `manager list append`.
///
/// **Other hosts.** With `manager_options::listen`, the manager's process
/// listens there, and a program of another host joins it with
/// `manager::connect(address, key_file)`, proving the key (TLS 1.3 with
/// the key as its pre-shared key between hosts: see docs/security.md).
/// What the two share is published by name: `publish("jobs", q)` on one
/// side, `lookup<queue<int>>("jobs")` on the other (Python's
/// `register("get_jobs", callable=...)` and `m.get_jobs()`). A connected
/// manager makes objects in the serving process as the owner's does, and
/// its proxies, and the queues, events and semaphores the manager made,
/// work from the connected program: proxies over CAF's BASP on the
/// connection, the others over a stream to the manager's queue hub (a
/// child of that program connects on its own). Locks, conditions and
/// barriers, and queues made by other processes, stay on their host.
/// When the serving process ends, or its host is lost (within 5 s), every
/// call fails with `errc::owner_unreachable` or `errc::process_died`.
class manager {
public:
  /// Starts the manager's process; throws `errc::spawn_failed` when it
  /// cannot.
  manager();

  /// Starts the manager's process, serving other hosts as `opts` says;
  /// `errc::invalid_argument` for a bad address or key file, and
  /// `errc::spawn_failed` when it cannot listen there.
  explicit manager(const manager_options& opts);

  /// Python's `BaseManager(address, authkey).connect()`: the manager
  /// serving at `address` ("HOST:PORT") on another host, proving the key in
  /// `key_file`. `errc::unauthenticated` for a wrong key,
  /// `errc::owner_unreachable` when nothing answers within `timeout`.
  /// `shutdown()` of a connected manager only lets go of it.
  static manager connect(const std::string& address,
                         const std::string& key_file,
                         std::chrono::steady_clock::duration timeout
                         = std::chrono::seconds{10});

  /// Bounds every later call of the manager itself by `t` (`std::nullopt`:
  /// back to the defaults below): `make<T>` (whose constructor is your
  /// code and may block), `dict()`, `list()`, `queue()` and the other
  /// makers, `publish` and `lookup`; past it they throw `errc::timeout`
  /// (what was asked may still happen in the manager's process). By default `make<T>` and the
  /// makers of the library's objects wait without bound, `dict()`,
  /// `list()`, `make_namespace()` and `value()` up to 10 s, and `publish`
  /// and `lookup` without bound. The proxies have bounds of their own.
  manager& timeout(std::optional<std::chrono::steady_clock::duration> t) {
    timeout_ = t;
    return *this;
  }

  /// The port it listens on for other hosts (`manager_options::listen`);
  /// `errc::invalid_argument` when it does not.
  std::uint16_t port() const;

  /// Makes `x` (a proxy, a queue, any serializable value) known as `name`
  /// to every program using this manager, also connected ones; replaces
  /// what had that name.
  template <class T>
  void publish(const std::string& name, T x) const {
    bounded().call<void>(
        "publish", detail::mgr_set_atom::value, detail::to_key(name),
        detail::value::make(std::move(x)));
  }

  /// What was published as `name`: `errc::not_found` when nothing was,
  /// `errc::type_mismatch` when it is not a `T`.
  template <class T>
  T lookup(const std::string& name) const {
    return bounded()
        .call<detail::value>("lookup", detail::mgr_get_atom::value,
                             detail::to_key(name))
        .template take<T>();
  }

  /// Stops the manager's process (see **Lifetime**).
  ~manager();

  ///@{
  /// A manager moves and does not copy: one handle per manager process.
  manager(manager&&) noexcept;
  manager& operator=(manager&&) noexcept;
  ///@}
  manager(const manager&) = delete;
  manager& operator=(const manager&) = delete;

  /// `manager.dict()`: a new, empty dict.
  template <class K, class V>
  shared_dict<K, V> dict() const {
    return shared_dict<K, V>{make_kind(detail::shared_kind::dict)};
  }

  /// `manager.list()`: a new, empty list.
  template <class T>
  shared_list<T> list() const {
    return shared_list<T>{make_kind(detail::shared_kind::list)};
  }

  /// `manager.Namespace()`: a new namespace without attributes.
  shared_namespace make_namespace() const {
    return shared_namespace{make_kind(detail::shared_kind::dict)};
  }

  /// `manager.Value(typecode, x)`: a new value holding `x`.
  template <class T>
  shared_value<T> value(T x) const {
    shared_value<T> result{make_kind(detail::shared_kind::dict)};
    result.set(std::move(x));
    return result;
  }

  /// Python's `register(typeid, callable)` and the call of the registered
  /// name in one: constructs a `T` from `args...` in the manager's process
  /// and returns its proxy. No registration is needed: any class whose
  /// constructor's arguments are serializable will do (pass them as the
  /// types it takes, e.g. `std::string`, not a string literal). A
  /// constructor that throws is `errc::task_failed`.
  template <class T, class... Args>
  proxy<T> make(Args&&... args) const {
    auto made = make_there(detail::closure::bind_task(
        &detail::construct_object<T, std::decay_t<Args>...>,
        std::forward<Args>(args)...));
    return proxy<T>{std::move(made.first)};
  }

  ///@{
  /// Python's `manager.Queue()`, `JoinableQueue()`, `Lock()`, `RLock()`,
  /// `Event()`, `Semaphore()`, `BoundedSemaphore()`, `Condition()` and
  /// `Barrier()`: the library's own objects, made by the manager's process,
  /// which owns them (they live as long as it does; when it dies, calls on
  /// them fail as on any object whose owner died). They are the ordinary
  /// handles, with the ordinary speed, not proxies.
  template <class T>
  actors::queue<T> queue(long maxsize = unbounded) const {
    return made_there(&detail::make_queue_there<T>, maxsize);
  }
  template <class T>
  actors::joinable_queue<T> joinable_queue(long maxsize = unbounded) const {
    return made_there(&detail::make_joinable_queue_there<T>, maxsize);
  }
  mutex lock() const {
    return made_there(&make_lock);
  }
  actors::rlock rlock() const {
    return made_there(&make_rlock);
  }
  actors::event event() const {
    return made_there(&make_event);
  }
  actors::semaphore semaphore(long value = 1) const {
    return made_there(&make_semaphore, value);
  }
  actors::bounded_semaphore bounded_semaphore(long value = 1) const {
    return made_there(&make_bounded_semaphore, value);
  }
  actors::condition condition() const {
    return made_there(&detail::make_condition_there);
  }
  actors::barrier barrier(std::size_t parties) const {
    return made_there(&detail::make_barrier_there, parties);
  }
  ///@}

  /// Stops the manager's process, waiting up to `timeout` (it is killed
  /// after 2 s); true when it has ended. Harmless when it has already.
  bool shutdown(std::optional<std::chrono::steady_clock::duration> timeout
                = std::chrono::seconds{5});

  /// The manager's process id (`errc::invalid_argument` for a connected
  /// manager: its process runs on another host).
  pid_t pid() const;

  /// Whether its process still runs (a connected manager: whether this
  /// program still holds it).
  bool is_alive() const;

private:
  struct connected {};
  explicit manager(connected) {}

  /// The manager's actor (in its process, or of another host).
  const caf::actor& handle() const;

  /// The manager's actor, with the bound of `timeout()`.
  detail::shared_object bounded() const {
    detail::shared_object x{handle()};
    x.bound(timeout_);
    return x;
  }

  caf::actor make_kind(detail::shared_kind kind) const;

  /// Runs `construct` on a new object of the manager's process: the
  /// object's actor and what `construct` returned.
  std::pair<caf::actor, detail::value>
  make_there(detail::closure construct) const;

  template <class H, class... Ps, class... Args>
  H made_there(H (*make)(Ps...), Args&&... args) const {
    return make_there(
               detail::closure::bind_task(make, std::forward<Args>(args)...))
        .second.template take<H>();
  }

  std::unique_ptr<actor_process<caf::actor>> process_;
  caf::actor actor_; // the manager's actor
  std::optional<std::chrono::steady_clock::duration> timeout_; // of its calls
};

} // namespace actors
