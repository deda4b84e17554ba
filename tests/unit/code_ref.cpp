// actors/detail/code_ref.hpp and closure.hpp: a function's code ref
// resolves back to the same function in this binary, a closure survives
// serialization within it, and a ref that names nothing is refused.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <unistd.h>

#include "actors/detail/closure.hpp"
#include "actors/detail/code_ref.hpp"
#include "actors/detail/value.hpp"
#include "actors/error.hpp"

using actors::detail::closure;
using actors::detail::code_ref;
using actors::detail::from_code_ref;
using actors::detail::to_code_ref;
using actors::detail::value;

namespace {

int twice(int x) {
  return 2 * x;
}

std::string greet(std::string name, int times) {
  std::string result;
  for (int i = 0; i < times; ++i)
    result += "hi " + name + ";";
  return result;
}

template <class T>
std::vector<char> save(T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE_FALSE(sink(x));
  return buf;
}

template <class T>
caf::error load(const std::vector<char>& buf, T& x) {
  caf::binary_deserializer source{nullptr, buf};
  return source(x);
}

} // namespace

TEST_CASE("code_ref: a function's ref resolves to the same function") {
  auto ref = to_code_ref(reinterpret_cast<const void*>(&twice));
  CHECK(ref.offset != 0);
  CHECK(from_code_ref(ref) == reinterpret_cast<const void*>(&twice));
  auto other = to_code_ref(reinterpret_cast<const void*>(&greet));
  CHECK(other.module == ref.module);
  CHECK(other.offset != ref.offset);
  CHECK(from_code_ref(other) == reinterpret_cast<const void*>(&greet));
}

TEST_CASE("code_ref: a function of another module (libc) resolves too") {
  auto* fn = reinterpret_cast<const void*>(&::getpid);
  auto ref = to_code_ref(fn);
  CHECK(from_code_ref(ref) == fn);
}

TEST_CASE("code_ref: a ref naming no module or past its end is refused") {
  auto ref = to_code_ref(reinterpret_cast<const void*>(&twice));
  code_ref unknown{"/no/such/module.so", ref.offset};
  CHECK(from_code_ref(unknown) == nullptr);
  code_ref past{ref.module, std::uint64_t{1} << 62};
  CHECK(from_code_ref(past) == nullptr);
}

TEST_CASE("code_ref: an address in no module has no ref") {
  std::vector<char> heap(64);
  try {
    to_code_ref(heap.data());
    FAIL("an address on the heap has a code ref");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::function_not_found);
  }
}

TEST_CASE("closure: serialized and loaded in this binary, it runs the same") {
  auto c = closure::bind_task(greet, std::string{"bob"}, 2);
  auto buf = save(c);
  closure back;
  REQUIRE_FALSE(load(buf, back));
  REQUIRE(back);
  auto result = back();
  CHECK(result.take<std::string>() == "hi bob;hi bob;");
  auto d = closure::bind_task(twice, 21);
  auto buf2 = save(d);
  closure back2;
  REQUIRE_FALSE(load(buf2, back2));
  CHECK(back2().take<int>() == 42);
}

TEST_CASE("closure: an empty closure travels as empty") {
  closure c;
  auto buf = save(c);
  closure back = closure::bind(twice, 1);
  REQUIRE_FALSE(load(buf, back));
  CHECK_FALSE(back);
}

TEST_CASE("closure: a ref spoiled on the way is refused") {
  auto c = closure::bind_task(twice, 5);
  auto buf = save(c);
  // The function's code ref is the last module string and offset before the
  // argument (4 bytes): spoil the offset (all ones in either byte order),
  // whatever module it names.
  REQUIRE(buf.size() > 12);
  auto at = buf.size() - 4 - 8;
  auto bad = ~std::uint64_t{0};
  std::memcpy(buf.data() + at, &bad, sizeof(bad));
  closure back;
  CHECK(load(buf, back));
  CHECK_FALSE(back);
}

TEST_CASE("value: a value survives serialization in this binary") {
  auto v = value::make(std::vector<int>{1, 2, 3});
  auto buf = save(v);
  value back;
  REQUIRE_FALSE(load(buf, back));
  CHECK(back.take<std::vector<int>>() == std::vector<int>{1, 2, 3});
}
