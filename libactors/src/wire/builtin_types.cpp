// The message types an actor program need not register: standard
// containers of builtins. CAF 0.17 numbers the builtins themselves and a
// few containers (std::vector<char>, std::vector<std::string>,
// std::set<std::string>, std::map<std::string, std::string>); any other
// type travels by a name that every process must have registered, or the
// message is dropped. libactors registers these in every process, under
// short names (each message carries the names of its types):
//
//   std::vector<E>        E any builtin: bool, every integer type, float,
//                         double, long double, caf::atom_value
//   std::vector<std::vector<E>>, std::list<E>, std::deque<E>, std::set<E>,
//   std::unordered_set<E> E one of int, int64_t, double, std::string
//   std::map<K, V>, std::unordered_map<K, V>
//                         K one of int, int64_t, std::string;
//                         V one of int, int64_t, double, std::string
//
// Each costs its instantiation of CAF's type-erased value (about 0.3 s of
// compile time): every combination would be thousands. Anything else is
// registered by the program (actors::message_types), or its send fails
// with errc::not_registered naming it (actor_process.cpp).

#include "wire/serializable.hpp"

#include "actors/detail/value.hpp"

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <typeindex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/make_type_erased_value.hpp>
#include <caf/type_nr.hpp>

namespace actors::detail {

namespace {

template <class T>
struct named {
  using type = T;
  const char* name;
};

// Registers `T` as `name`, unless CAF numbers it. (Only `T`:
// add_message_type would add std::vector<T> and caf::stream<T> too, each
// costing as much.)
template <class T>
void add(caf::actor_system_config& cfg, const std::string& name) {
  if constexpr (caf::type_nr<T>::value == 0) {
    cfg.type_names_by_rtti.emplace(std::type_index(typeid(T)), name);
    cfg.value_factories_by_name.emplace(name,
                                        &caf::make_type_erased_value<T>);
    cfg.value_factories_by_rtti.emplace(std::type_index(typeid(T)),
                                        &caf::make_type_erased_value<T>);
  }
}

template <class... Ts, class F>
void each(std::tuple<named<Ts>...> xs, F fn) {
  std::apply([&](auto... x) { (fn(x), ...); }, xs);
}

template <class T>
using type_of = typename T::type;

} // namespace

void add_builtin_message_types(caf::actor_system_config& cfg) {
  auto numbers = std::make_tuple(
    named<bool>{"bool"}, named<signed char>{"signed char"},
    named<unsigned char>{"unsigned char"}, named<short>{"short"},
    named<unsigned short>{"unsigned short"}, named<int>{"int"},
    named<unsigned>{"unsigned"}, named<long>{"long"},
    named<unsigned long>{"unsigned long"}, named<long long>{"long long"},
    named<unsigned long long>{"unsigned long long"}, named<float>{"float"},
    named<double>{"double"}, named<long double>{"long double"},
    named<caf::atom_value>{"caf::atom_value"});
  each(numbers, [&](auto e) {
    add<std::vector<type_of<decltype(e)>>>(cfg, std::string{"std::vector<"}
                                                  + e.name + ">");
  });
  auto elements = std::make_tuple(named<int>{"int"},
                                  named<std::int64_t>{"long"},
                                  named<double>{"double"},
                                  named<std::string>{"std::string"});
  each(elements, [&](auto e) {
    using t = type_of<decltype(e)>;
    auto of = std::string{"<"} + e.name + ">";
    add<std::vector<std::vector<t>>>(cfg, "std::vector<std::vector" + of
                                            + ">");
    add<std::list<t>>(cfg, "std::list" + of);
    add<std::deque<t>>(cfg, "std::deque" + of);
    add<std::set<t>>(cfg, "std::set" + of);
    add<std::unordered_set<t>>(cfg, "std::unordered_set" + of);
  });
  // A type-erased value of any serializable type (a manager's items).
  add<value>(cfg, "actors::value");
  auto keys = std::make_tuple(named<int>{"int"}, named<std::int64_t>{"long"},
                              named<std::string>{"std::string"});
  each(keys, [&](auto k) {
    each(elements, [&](auto v) {
      using key = type_of<decltype(k)>;
      using t = type_of<decltype(v)>;
      auto of = std::string{"<"} + k.name + "," + v.name + ">";
      add<std::map<key, t>>(cfg, "std::map" + of);
      add<std::unordered_map<key, t>>(cfg, "std::unordered_map" + of);
    });
  });
}

} // namespace actors::detail
