// Code addresses, closures and type-erased values: what lets functions and
// data cross between processes running the same binary.

#include "actors/detail/closure.hpp"
#include "actors/detail/queue_ref.hpp"
#include "actors/detail/value.hpp"

#include <array>
#include <cstring>

#include <link.h>

#include <caf/sec.hpp>

#include "actors/error.hpp"
#include "wire/node_context.hpp"
#include "wire/serializable.hpp"

namespace actors::detail {

namespace {

struct module_search {
  // Input: either an address to locate or a module name to find.
  std::uintptr_t address = 0;
  const std::string* name = nullptr;
  // Output.
  bool found = false;
  std::string module;
  std::uintptr_t base = 0;
  std::uintptr_t size = 0; // end of the last loaded segment, relative to base
};

int visit(dl_phdr_info* info, size_t, void* data) {
  auto& search = *static_cast<module_search*>(data);
  std::string module = info->dlpi_name ? info->dlpi_name : "";
  if (search.name != nullptr && module != *search.name)
    return 0;
  std::uintptr_t end = 0;
  bool contains = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD)
      continue;
    auto lo = info->dlpi_addr + ph.p_vaddr;
    auto hi = lo + ph.p_memsz;
    end = std::max<std::uintptr_t>(end, ph.p_vaddr + ph.p_memsz);
    if (search.address >= lo && search.address < hi)
      contains = true;
  }
  if (search.name == nullptr && !contains)
    return 0;
  search.found = true;
  search.module = std::move(module);
  search.base = info->dlpi_addr;
  search.size = end;
  return 1; // stop iterating
}

} // namespace

callable::~callable() {
  // nop
}

code_ref to_code_ref(const void* address) {
  module_search search;
  search.address = reinterpret_cast<std::uintptr_t>(address);
  dl_iterate_phdr(visit, &search);
  if (!search.found)
    throw error(errc::function_not_found,
                "a function to run in another process lies in no loaded "
                "module");
  return {std::move(search.module), search.address - search.base};
}

const void* from_code_ref(const code_ref& ref) {
  // Every item of a stream names the same few loaders: remember the last
  // few found (modules stay loaded while their code is named).
  struct known {
    code_ref ref;
    const void* address = nullptr;
  };
  thread_local std::array<known, 8> cache;
  thread_local std::size_t next = 0;
  for (auto& k : cache)
    if (k.address != nullptr && k.ref.offset == ref.offset
        && k.ref.module == ref.module)
      return k.address;
  module_search search;
  search.name = &ref.module;
  dl_iterate_phdr(visit, &search);
  if (!search.found || ref.offset >= search.size)
    return nullptr;
  auto address = reinterpret_cast<const void*>(search.base + ref.offset);
  cache[next++ % cache.size()] = known{ref, address};
  return address;
}

// Wire format: a flag (an empty closure travels too: "no initializer"),
// then the loader's and the function's code_refs and the arguments.
caf::error inspect(caf::serializer& f, closure& x) {
  bool present = x.call_ != nullptr;
  if (auto err = f(present); err || !present)
    return err;
  auto* origin = x.call_->origin();
  if (origin == nullptr) // a call of this process only (a thread pool's)
    return caf::sec::state_not_serializable;
  if (auto err = f(origin->loader, origin->fn))
    return err;
  return x.call_->save(f);
}

caf::error inspect(caf::deserializer& f, closure& x) {
  bool present = false;
  if (auto err = f(present); err || !present) {
    x.call_.reset();
    return err;
  }
  call_origin origin;
  if (auto err = f(origin.loader, origin.fn))
    return err;
  auto loader = from_code_ref(origin.loader);
  auto fn = from_code_ref(origin.fn);
  if (loader == nullptr || fn == nullptr)
    return caf::sec::runtime_error;
  std::unique_ptr<callable> call;
  auto load = reinterpret_cast<call_loader>(const_cast<void*>(loader));
  // Its pipe ends are taken by the thread that runs it (take_ends).
  end_pass_scope carry{end_pass::carry};
  if (auto err = load(f, fn, std::move(origin), call))
    return err;
  x.call_ = std::move(call);
  x.carries_ends_ = carry.saw_ends();
  return caf::none;
}

void inspect(caf::detail::stringification_inspector& f, closure& x) {
  auto* origin = x.call_ ? x.call_->origin() : nullptr;
  code_ref none;
  auto& fn = origin ? origin->fn : none;
  f(caf::meta::type_name("closure"), fn.module, fn.offset);
}

} // namespace actors::detail

namespace actors::detail {

value_base::~value_base() {
  // nop
}

// Wire format: a flag (empty values travel too: the result of a void
// function), then the loader's code_ref and the boxed object.
caf::error inspect(caf::serializer& f, value& x) {
  bool present = x.ptr_ != nullptr;
  if (auto err = f(present); err || !present)
    return err;
  auto ref = x.ptr_->loader();
  if (auto err = f(ref))
    return err;
  return x.ptr_->save(f);
}

caf::error inspect(caf::deserializer& f, value& x) {
  bool present = false;
  if (auto err = f(present); err || !present) {
    x.ptr_.reset();
    return err;
  }
  code_ref ref;
  if (auto err = f(ref))
    return err;
  auto loader = from_code_ref(ref);
  if (loader == nullptr)
    return caf::sec::runtime_error;
  auto load = reinterpret_cast<value_loader>(const_cast<void*>(loader));
  return load(f, x.ptr_);
}

void inspect(caf::detail::stringification_inspector& f, value& x) {
  f(caf::meta::type_name("value"), static_cast<bool>(x.ptr_));
}

} // namespace actors::detail

// -- serializable -------------------------------------------------------------

namespace actors::detail {

namespace {

// A serializer that writes nothing: serializing into it finds what cannot
// be serialized without copying any bytes.
class discard final : public caf::serializer {
public:
  using caf::serializer::serializer;

  caf::error begin_object(uint16_t&, std::string&) override {
    return caf::none;
  }
  caf::error end_object() override {
    return caf::none;
  }
  caf::error begin_sequence(size_t&) override {
    return caf::none;
  }
  caf::error end_sequence() override {
    return caf::none;
  }
  caf::error apply_raw(size_t, void*) override {
    return caf::none;
  }

protected:
  caf::error apply_impl(int8_t&) override {
    return caf::none;
  }
  caf::error apply_impl(uint8_t&) override {
    return caf::none;
  }
  caf::error apply_impl(int16_t&) override {
    return caf::none;
  }
  caf::error apply_impl(uint16_t&) override {
    return caf::none;
  }
  caf::error apply_impl(int32_t&) override {
    return caf::none;
  }
  caf::error apply_impl(uint32_t&) override {
    return caf::none;
  }
  caf::error apply_impl(int64_t&) override {
    return caf::none;
  }
  caf::error apply_impl(uint64_t&) override {
    return caf::none;
  }
  caf::error apply_impl(float&) override {
    return caf::none;
  }
  caf::error apply_impl(double&) override {
    return caf::none;
  }
  caf::error apply_impl(long double&) override {
    return caf::none;
  }
  caf::error apply_impl(std::string&) override {
    return caf::none;
  }
  caf::error apply_impl(std::u16string&) override {
    return caf::none;
  }
  caf::error apply_impl(std::u32string&) override {
    return caf::none;
  }
};

template <class T>
caf::error check(T& x) {
  discard sink{node_context::system()};
  return sink(x);
}

} // namespace

caf::error serializable(value& x) {
  return check(x);
}

caf::error serializable(closure& x) {
  return check(x);
}

} // namespace actors::detail

