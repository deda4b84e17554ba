#pragma once

// Memory shared by the processes of a host: `value<T>` and `array<T>`
// (Python's `Value`, `Array`, `RawValue`, `RawArray`), passed to processes
// as handles, and `shared_memory` (Python's
// `multiprocessing.shared_memory.SharedMemory`), found by name.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>

#include "actors/error.hpp"
#include "actors/lock.hpp"

namespace actors {

namespace detail {

/// A block of zeroed memory shared by the processes of this host: a memfd
/// of the process that made it, mapped by every process that receives a
/// handle (through /proc/PID/fd/N, as it arrives). The block lives while
/// a handle to it does in the making process, or a process maps it.
class shared_block {
public:
  /// An empty handle.
  shared_block() = default;

  /// A new block of `size` zero bytes. Throws `errc::spawn_failed` when
  /// the OS refuses the memory or a descriptor.
  static shared_block make(std::size_t size);

  /// The block's bytes. Throws `errc::invalid_argument` for an empty
  /// handle, `errc::owner_unreachable` when the block could not be mapped
  /// here (its maker had dropped it, or this is another host).
  std::byte* data() const;

  /// The size given when it was made.
  std::size_t size() const noexcept {
    return static_cast<std::size_t>(ref_.size);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 shared_block& x) {
    auto attach = caf::meta::load_callback([&x]() -> caf::error {
      x.attach();
      return caf::none;
    });
    return f(x.ref_.pid, x.ref_.fd, x.ref_.id, x.ref_.size, attach);
  }

private:
  struct state;

  // Maps the block of ref_ here, or records why it cannot be.
  void attach();

  struct {
    std::int32_t pid = 0;  // the making process
    std::int32_t fd = -1;  // its descriptor of the block
    std::uint64_t id = 0;  // random: tells this block from any other
    std::uint64_t size = 0;
  } ref_;
  std::shared_ptr<state> state_; // the mapping, or why there is none
};

/// What `value` and `array` share: the block, and the lock that guards it
/// (none for a raw one).
class shared_cells {
public:
  /// The lock (Python's `get_lock()`); `errc::invalid_argument` for a raw
  /// one.
  rlock& get_lock() const {
    if (!locked_)
      throw error(errc::invalid_argument,
                  "a raw value or array has no lock");
    return lock_;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 shared_cells& x) {
    return f(x.block_, x.lock_, x.locked_);
  }

protected:
  shared_cells() = default;

  /// `bytes` of new shared memory, guarded by `l` unless it is null.
  shared_cells(std::size_t bytes, const rlock* l)
    : block_(shared_block::make(bytes)) {
    if (l != nullptr) {
      lock_ = *l;
      locked_ = true;
    }
  }

  /// `fn()` under the lock, unless raw.
  template <class F>
  auto guarded(F fn) const -> decltype(fn()) {
    if (!locked_)
      return fn();
    std::lock_guard<rlock> guard{lock_};
    return fn();
  }

  shared_block block_;  ///< the memory
  mutable rlock lock_;  ///< a handle: locking it changes nothing of ours
  bool locked_ = false; ///< false: raw, `lock_` is empty
};

} // namespace detail

/// One `T` in memory shared by the processes of this host: Python's
/// `multiprocessing.Value` (and `RawValue`, made by `make_raw_value`).
///
/// @code
/// void add(actors::value<long> counter) {
///   for (int i = 0; i < 1000; ++i) {
///     std::lock_guard<actors::rlock> guard{counter.get_lock()};
///     counter.set(counter.get() + 1);
///   }
/// }
///
/// auto counter = actors::make_value<long>(0);
/// actors::process p{add, counter};
/// @endcode
///
/// `T` is trivially copyable (the compiler checks). A handle can be copied,
/// passed to processes and pool tasks and put into queues; every copy, in
/// every process of the host, reaches the same `T`. `get` and `set` take
/// the value's lock, as Python's `.value` does, so one of them is never
/// torn; a read-modify-write such as `+= 1` needs the lock held around it
/// (as in Python). A raw value has no lock: `get_lock` throws
/// `errc::invalid_argument`, and `get`/`set` are plain reads and writes
/// (use `std::atomic_ref`-safe types, or your own lock, across processes).
/// `data()` is Python's `get_obj()`: the `T` itself, without the lock.
///
/// The memory lives while a handle to it lives in the process that made
/// it, or a process that received one still has it: keep one in the maker
/// until the others have theirs (they map it as the handle arrives). A
/// value is used on the host where it was made (`errc::owner_unreachable`
/// elsewhere).
template <class T>
class value : public detail::shared_cells {
  static_assert(std::is_trivially_copyable<T>::value,
                "a shared value must be trivially copyable");

public:
  /// An empty handle; `make_value` and `make_raw_value` make one.
  value() = default;

  /// The value (under the lock, unless raw).
  T get() const {
    return guarded([this] { return *data(); });
  }

  /// Sets the value (under the lock, unless raw).
  void set(const T& x) const {
    guarded([&] { *data() = x; });
  }

  /// The shared `T` itself, without the lock (Python's `get_obj()`).
  T* data() const {
    return reinterpret_cast<T*>(block_.data());
  }

  // get_lock(): the lock that `get` and `set` take (detail::shared_cells).

private:
  template <class U>
  friend value<U> make_value(const U&, const rlock&);
  template <class U>
  friend value<U> make_raw_value(const U&);

  value(const T& init, const rlock* l) : shared_cells(sizeof(T), l) {
    *data() = init;
  }
};

/// A shared value `init` with the lock `l` (Python's `Value(..., lock=l)`).
template <class T>
value<T> make_value(const T& init, const rlock& l) {
  return value<T>{init, &l};
}

/// A shared value `init` with a lock of its own (Python's `Value`).
template <class T>
value<T> make_value(const T& init = T{}) {
  return make_value(init, make_rlock());
}

/// A shared value `init` without a lock (Python's `RawValue`).
template <class T>
value<T> make_raw_value(const T& init = T{}) {
  return value<T>{init, nullptr};
}

/// `size()` `T`s in memory shared by the processes of this host: Python's
/// `multiprocessing.Array` (and `RawArray`, made by `make_raw_array`).
///
/// @code
/// auto squares = actors::make_array<double>(1000);
/// pool.map(fill_slice, ...);  // each task gets `squares` and a range
/// double first = squares[0];
/// @endcode
///
/// A handle as `value`'s, with the same lifetime and host rules. `get(i)`,
/// `set(i, x)` and `to_vector()` take the array's lock (unless raw) and
/// check the index (`errc::invalid_argument`, Python's `IndexError`);
/// `operator[]`, `data()`, `begin()` and `end()` reach the memory directly,
/// without the lock or a check, for loops over a slice that one process
/// owns.
template <class T>
class array : public detail::shared_cells {
  static_assert(std::is_trivially_copyable<T>::value,
                "a shared array's elements must be trivially copyable");

public:
  /// The element type.
  using value_type = T;

  /// An empty handle; `make_array` and `make_raw_array` make one.
  array() = default;

  /// The number of elements.
  std::size_t size() const noexcept {
    return block_.size() / sizeof(T);
  }

  /// Element `i` (under the lock, unless raw).
  T get(std::size_t i) const {
    check(i);
    return guarded([&] { return data()[i]; });
  }

  /// Sets element `i` (under the lock, unless raw).
  void set(std::size_t i, const T& x) const {
    check(i);
    guarded([&] { data()[i] = x; });
  }

  /// A copy of every element (under the lock, unless raw): Python's `a[:]`.
  std::vector<T> to_vector() const {
    return guarded([this] { return std::vector<T>(begin(), end()); });
  }

  ///@{
  /// The shared elements themselves, without the lock or a check.
  T* data() const {
    return reinterpret_cast<T*>(block_.data());
  }
  T& operator[](std::size_t i) const {
    return data()[i];
  }
  T* begin() const {
    return data();
  }
  T* end() const {
    return data() + size();
  }
  ///@}

  // get_lock(): the lock that `get`, `set` and `to_vector` take
  // (detail::shared_cells).

private:
  template <class U>
  friend array<U> make_raw_array(std::size_t);
  template <class U>
  friend array<U> make_array(std::size_t, const rlock&);

  array(std::size_t n, const rlock* l) : shared_cells(bytes(n), l) {
    // nop
  }

  static std::size_t bytes(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T))
      throw error(errc::invalid_argument, "an array of " + std::to_string(n)
                                            + " elements is too large");
    return n * sizeof(T);
  }

  void check(std::size_t i) const {
    if (i >= size())
      throw error(errc::invalid_argument,
                  "index " + std::to_string(i) + " of an array of "
                    + std::to_string(size()));
  }
};

/// A shared array of `n` elements of zero bytes, without a lock (Python's
/// `RawArray(typecode, n)`). The memory is taken page by page as it is
/// written.
template <class T>
array<T> make_raw_array(std::size_t n) {
  return array<T>{n, nullptr};
}

/// A shared array of `n` elements of zero bytes with the lock `l`.
template <class T>
array<T> make_array(std::size_t n, const rlock& l) {
  return array<T>{n, &l};
}

/// A shared array of `n` elements of zero bytes with a lock of its own
/// (Python's `Array(typecode, n)`).
template <class T>
array<T> make_array(std::size_t n) {
  return make_array<T>(n, make_rlock());
}

/// A shared array holding a copy of `init`, without a lock (Python's
/// `RawArray(typecode, initializer)`).
template <class T>
array<T> make_raw_array(const std::vector<T>& init) {
  auto result = make_raw_array<T>(init.size());
  std::copy(init.begin(), init.end(), result.begin());
  return result;
}

/// A shared array holding a copy of `init`, with the lock `l`.
template <class T>
array<T> make_array(const std::vector<T>& init, const rlock& l) {
  auto result = make_array<T>(init.size(), l);
  std::copy(init.begin(), init.end(), result.begin());
  return result;
}

/// A shared array holding a copy of `init`, with a lock of its own
/// (Python's `Array(typecode, initializer)`).
template <class T>
array<T> make_array(const std::vector<T>& init) {
  return make_array(init, make_rlock());
}

/// A named block of memory that processes of this host attach to by its
/// name: Python's `multiprocessing.shared_memory.SharedMemory`.
///
/// @code
/// auto block = actors::shared_memory::create(1 << 20);  // a new name
/// auto numbers = block.view<double>();   // 131072 doubles, zero
/// actors::process p{work_on, block.name()};
/// // in work_on(std::string name):
/// auto same = actors::shared_memory::attach(name);
/// @endcode
///
/// A POSIX shared memory object (`/dev/shm/NAME`), as Python's. `create`
/// makes it (zero bytes; `errc::invalid_argument` when the name is taken,
/// Python's `FileExistsError`), `attach` maps an existing one
/// (`errc::invalid_argument` when there is none, `FileNotFoundError`).
/// `close()` (or the destructor) unmaps it from this process; `unlink()`
/// removes the name, once, while processes that have it mapped keep their
/// memory until they close it.
///
/// **Who cleans up.** As Python's resource tracker: a block made with
/// `track` (the default) and not unlinked is unlinked when the process
/// that created it ends. At a normal exit (libactors' exit sequence, or
/// `std::exit`) that process does it itself. For any other end (a signal,
/// SIGKILL included, or `_exit`) a tracker does: at the first such block a
/// process creates, the program is started again in the tracker role
/// (`actors::init` runs it; it ignores SIGINT and SIGTERM, in a session of
/// its own), which learns each name and, when its creator is gone, unlinks
/// what is left with a line on stderr naming each, and exits. Names are 1
/// to 250 characters without '/' or a line break (`errc::invalid_argument`).
class shared_memory {
public:
  /// No block.
  shared_memory() = default;

  /// A new block of `size` bytes (at least 1) named `name`, or a new
  /// random name ("actors_" and 16 hex digits) when empty. With `track`,
  /// this process unlinks it at its exit unless it was unlinked already.
  static shared_memory create(std::size_t size, std::string name = {},
                              bool track = true);

  /// The existing block `name`, mapped here.
  static shared_memory attach(const std::string& name);

  ///@{
  /// One handle per mapping: it moves, and unmaps when it goes.
  shared_memory(shared_memory&& other) noexcept;
  shared_memory& operator=(shared_memory&& other) noexcept;
  shared_memory(const shared_memory&) = delete;
  shared_memory& operator=(const shared_memory&) = delete;
  ~shared_memory();
  ///@}

  /// The name others attach with (without the leading '/').
  const std::string& name() const noexcept {
    return name_;
  }

  /// The size in bytes.
  std::size_t size() const noexcept {
    return size_;
  }

  /// The bytes (Python's `buf`); `errc::invalid_argument` after `close`.
  std::byte* buf() const;

  /// The bytes as `size() / sizeof(T)` elements of a trivially copyable
  /// `T` (what Python users do with a numpy array over `buf`).
  template <class T>
  struct typed_view {
    T* data;           ///< the first element
    std::size_t count; ///< how many

    ///@{
    /// A range of `count` elements, indexed without a check.
    T* begin() const {
      return data;
    }
    T* end() const {
      return data + count;
    }
    std::size_t size() const {
      return count;
    }
    T& operator[](std::size_t i) const {
      return data[i];
    }
    ///@}
  };

  /// A view of the bytes as `T`s.
  template <class T>
  typed_view<T> view() const {
    static_assert(std::is_trivially_copyable<T>::value,
                  "a view over shared memory needs a trivially copyable T");
    return {reinterpret_cast<T*>(buf()), size_ / sizeof(T)};
  }

  /// Unmaps the block from this process; `buf()` is then an error. Closing
  /// twice does nothing.
  void close();

  /// Removes the name: nobody can attach any more; the memory goes when
  /// the last process that has it mapped closes it. `errc::invalid_argument`
  /// when the name is gone already (Python's `FileNotFoundError`).
  void unlink();

private:
  std::string name_;
  std::size_t size_ = 0;
  void* memory_ = nullptr;
};

} // namespace actors
