// The unit tests' main: doctest's own. No actors::init, so no fork server
// and no child process: every unit test runs inside this one process.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
