#pragma once

// Readable text for errors: a type's name and the exception being handled.

#include <string>

namespace actors::detail {

/// The readable name of a type (from `typeid(...).name()`).
std::string demangle(const char* name);

/// "type: message" of the exception being handled (call in a catch block).
std::string current_exception_text();

} // namespace actors::detail
