// The GPU suite's main: skip visibly (exit 77, ctest's SKIP_RETURN_CODE) where no GPU is
// usable, run the Catch2 session otherwise.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "stacklstm/stacklstm.h"

int main(int argc, char** argv) {
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    std::printf("SKIPPED: no usable GPU: %s\n", slstm_last_error());
    std::fflush(stdout);
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
