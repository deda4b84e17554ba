#pragma once

// A plain function pointer that can be sent to another process running the
// same binary.

#include "actors/detail/code_ref.hpp"
#include "actors/error.hpp"

namespace actors::detail {

template <class Signature>
class function_ref;

template <class R, class... Args>
class function_ref<R(Args...)> {
public:
  using pointer = R (*)(Args...);

  function_ref() = default;

  explicit function_ref(pointer fn)
    : fn_(fn), ref_(to_code_ref(reinterpret_cast<const void*>(fn))) {
    // nop
  }

  R operator()(Args... args) const {
    if (fn_ == nullptr) {
      // Deserialized: find the function in this process.
      auto address = from_code_ref(ref_);
      if (address == nullptr)
        throw error(errc::function_not_found,
                    "a function sent by another process is not in this "
                    "binary");
      fn_ = reinterpret_cast<pointer>(const_cast<void*>(address));
    }
    return fn_(static_cast<Args&&>(args)...);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 function_ref& x) {
    x.fn_ = nullptr; // re-resolved on first use after loading
    return f(x.ref_);
  }

private:
  mutable pointer fn_ = nullptr;
  code_ref ref_;
};

} // namespace actors::detail
