// The main of the test executables that run on the FAKE CUDA runtime (tests/cuda_fake):
// slstm_cuda_fake_gpu_tests (the GPU suite's cases, tests/gpu/test_gpu.cpp) and
// slstm_cuda_fake_tests (the stress tests of this folder). It says, before and after the
// run, that the results come from the fake runtime on the host, not from a GPU, and fails
// (never skips) unless the CUDA backend loads and the module it loaded ($SLSTM_CUDA_MODULE,
// which must name the fake module) made its CUDA calls to this fake runtime. A test spec
// that matches no test case fails too (Catch2's --warn NoTests, always on here).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>

#include "fake_device.hpp"
#include "stacklstm/stacklstm.h"

int main(int argc, char** argv) {
  Catch::Session session;
  const int parsed = session.applyCommandLine(argc, argv);
  if (parsed != 0) return parsed;
  Catch::ConfigData& config = session.configData();
  if (config.listTests || config.listTags || config.listReporters || config.listTestNamesOnly ||
      config.showHelp) {
    return session.run();
  }
  config.warnings = static_cast<Catch::WarnAbout::What>(config.warnings |
                                                        Catch::WarnAbout::NoTests);
  const char* module = std::getenv("SLSTM_CUDA_MODULE");
  std::printf("cuda-fake: the FAKE CUDA runtime on the host (tests/cuda_fake), NOT a GPU; "
              "seed %llu; module %s\n",
              static_cast<unsigned long long>(cuda_fake::seed()),
              module != nullptr ? module : "(unset)");
  std::fflush(stdout);
  if (module == nullptr || module[0] == '\0') {
    std::printf("cuda-fake: FAILED: SLSTM_CUDA_MODULE must name the fake module "
                "(libslstm_cuda_fake.so)\n");
    return 1;
  }
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    std::printf("cuda-fake: FAILED: the fake module did not load: %s\n", slstm_last_error());
    return 1;
  }
  if (cuda_fake::api_calls() == 0) {
    std::printf("cuda-fake: FAILED: the module loaded made no call to the fake runtime\n");
    return 1;
  }
  const int rc = session.run();
  std::printf("cuda-fake: %s on the FAKE CUDA runtime (host emulation), not on a GPU\n",
              rc == 0 ? "passed" : "FAILED");
  return rc;
}
