// The main of every test binary: libactors' init first (test binaries start
// child processes of themselves), then helper roles, then doctest with a
// watchdog around each test case.

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "actors/runtime.hpp"
#include "subprocess.hpp"
#include "watchdog.hpp"

namespace {

struct watchdog_listener : doctest::IReporter {
  explicit watchdog_listener(const doctest::ContextOptions&) {
  }
  void test_case_start(const doctest::TestCaseData& tc) override {
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
  return context.run();
}
