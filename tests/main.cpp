// The suite's main: Catch2's, after choosing the fast path's kernel for this run
// ($SLSTM_TEST_CPU_PATH = fast-portable / fast-avx2, see support.hpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support.hpp"

int main(int argc, char* argv[]) {
  t::use_cpu_kernel_under_test();
  return Catch::Session().run(argc, argv);
}
