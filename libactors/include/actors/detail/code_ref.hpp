#pragma once

// Code addresses that mean the same in every process running this binary.

#include <cstdint>
#include <string>

namespace actors::detail {

/// A code address that means the same in every process running this binary:
/// the loaded module that contains it ("" for the main executable) and the
/// offset inside it. Immune to address-space randomisation.
struct code_ref {
  std::string module;
  std::uint64_t offset = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, code_ref& x) {
  return f(x.module, x.offset);
}

/// Locates `address` in a loaded module; throws `errc::function_not_found` if
/// it lies in none.
code_ref to_code_ref(const void* address);

/// The address `ref` denotes in this process, or nullptr when no loaded
/// module has that name or the offset falls outside it.
const void* from_code_ref(const code_ref& ref);

} // namespace actors::detail
