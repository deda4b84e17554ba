// The main of every test binary: libactors' init first (test binaries start
// child processes of themselves), then helper roles, then doctest with a
// watchdog around each test case.

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "actors/runtime.hpp"
#include "subprocess.hpp"
#include "watchdog.hpp"

namespace {

// Test cases that started, so that a filter matching none fails the run
// instead of passing vacuously.
int started_cases = 0;

struct watchdog_listener : doctest::IReporter {
  explicit watchdog_listener(const doctest::ContextOptions&) {
  }
  void test_case_start(const doctest::TestCaseData& tc) override {
    ++started_cases;
    support::arm_watchdog(std::chrono::seconds{60}, tc.m_name);
  }
  void test_case_end(const doctest::CurrentTestCaseStats&) override {
    support::disarm_watchdog();
  }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

} // namespace

REGISTER_LISTENER("watchdog", 1, watchdog_listener);

int main(int argc, char** argv) {
  actors::init(argc, argv);
  if (auto rc = support::run_helper_mode(argc, argv))
    return *rc;
  doctest::Context context{argc, argv};
  auto result = context.run();
  bool filtered = false;
  for (int i = 1; i < argc; ++i)
    filtered |= std::strncmp(argv[i], "--test-case=", 12) == 0;
  if (result == 0 && filtered && started_cases == 0 && !context.shouldExit()) {
    std::fprintf(stderr, "no test case matched the filter\n");
    return 1;
  }
  return result;
}
