#pragma once

// A value of any serializable type, type-erased, that can travel in CAF
// messages between processes running the same binary, or of any movable type
// when it stays in this process. Public templates need it; users never name
// it.

#include <memory>
#include <type_traits>
#include <utility>

#include <caf/deserializer.hpp>
// caf::detail::is_serializable: CAF's own test of what it can serialize,
// which the compile-time checks of the templates below need.
#include <caf/detail/type_traits.hpp>
#include <caf/sec.hpp>
#include <caf/serializer.hpp>

#include "actors/detail/code_ref.hpp"
#include "actors/error.hpp"

namespace caf::detail {
// Declared only: CAF's to_string inspector, for which inspect() below is
// defined in the library (src/wire/closure.cpp).
class stringification_inspector;
} // namespace caf::detail

namespace actors::detail {

class value_base {
public:
  virtual ~value_base();
  /// Identifies the loader of the concrete type in every process.
  virtual const code_ref& loader() const = 0;
  virtual caf::error save(caf::serializer& sink) = 0;
};

/// Whether values of `T` can cross a process boundary.
template <class T>
constexpr bool is_portable = caf::detail::is_serializable<T>::value
                             && std::is_default_constructible_v<T>;

template <class T>
class box final : public value_base {
public:
  explicit box(T x) : x_(std::move(x)) {
    // nop
  }

  const code_ref& loader() const override {
    if constexpr (is_portable<T>) {
      // Computed once per type: it is the same for the whole run.
      static const code_ref ref = to_code_ref(
        reinterpret_cast<const void*>(&box::load));
      return ref;
    } else {
      static const code_ref none;
      return none;
    }
  }

  caf::error save(caf::serializer& sink) override {
    if constexpr (is_portable<T>)
      return sink(x_);
    else
      return caf::sec::state_not_serializable; // made by make_local
  }

  static caf::error load(caf::deserializer& source,
                         std::shared_ptr<value_base>& out) {
    T x{};
    if (auto err = source(x))
      return err;
    out = std::make_shared<box>(std::move(x));
    return caf::none;
  }

  T& get() noexcept {
    return x_;
  }

private:
  T x_;
};

using value_loader = caf::error (*)(caf::deserializer&,
                                    std::shared_ptr<value_base>&);

/// A type-erased serializable value. Copies share the boxed object; `take`
/// moves it out, so a value is taken once.
class value {
public:
  value() = default;

  template <class T>
  static value make(T x) {
    static_assert(caf::detail::is_serializable<T>::value,
                  "the type must be serializable: a builtin, a standard "
                  "container of serializable types, or a type with an "
                  "inspect overload");
    static_assert(std::is_default_constructible_v<T>,
                  "the type must be default constructible to be "
                  "deserialized");
    return make_local(std::move(x));
  }

  /// A value that never leaves this process (a thread pool's result): any
  /// movable type; serializing it fails.
  template <class T>
  static value make_local(T x) {
    value result;
    result.ptr_ = std::make_shared<box<T>>(std::move(x));
    return result;
  }

  /// Moves the boxed `T` out; throws `errc::type_mismatch` if the value holds
  /// another type.
  template <class T>
  T take() {
    auto* typed = dynamic_cast<box<T>*>(ptr_.get());
    if (typed == nullptr)
      throw error(errc::type_mismatch,
                  "a value of another type arrived than the handle expects");
    return std::move(typed->get());
  }

  explicit operator bool() const noexcept {
    return ptr_ != nullptr;
  }

  ///@{
  /// Whether the value holds pipe ends that are on their way to whoever
  /// takes it (noted by a queue when an item enters it): taking it in the
  /// queue's own process makes that process their holder (queue.cpp).
  bool carries_ends() const noexcept {
    return carries_ends_;
  }
  void carries_ends(bool yes) noexcept {
    carries_ends_ = yes;
  }
  ///@}

  friend caf::error inspect(caf::serializer& f, value& x);
  friend caf::error inspect(caf::deserializer& f, value& x);
  friend void inspect(caf::detail::stringification_inspector& f, value& x);

private:
  std::shared_ptr<value_base> ptr_;
  bool carries_ends_ = false;
};

} // namespace actors::detail
