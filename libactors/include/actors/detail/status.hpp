#pragma once

// What an operation came to, as the library's own protocols carry it
// between processes: ok, or the errc and text of the error it failed with.
// The pool's task outcomes, the queue's answers and the lock server's
// answers are each a status plus what they return.

#include <cstdint>
#include <string>
#include <utility>

#include "actors/error.hpp"

namespace actors::detail {

struct status {
  bool ok = true;
  errc code = errc::invalid_argument; // when !ok
  std::string what;                   // when !ok

  static status failure(errc code, std::string what) {
    status result;
    result.ok = false;
    result.code = code;
    result.what = std::move(what);
    return result;
  }

  /// Throws the error it stands for.
  [[noreturn]] void raise() const {
    throw error(code, what);
  }

  /// Throws the error it stands for, if not ok.
  void check() const {
    if (!ok)
      raise();
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, status& x) {
  return f(x.ok, x.code, x.what);
}

} // namespace actors::detail
