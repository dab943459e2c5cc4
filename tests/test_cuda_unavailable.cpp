// Selecting the CUDA backend. Where it cannot run (no module, no driver, no device), the
// availability query and session creation fail cleanly with SLSTM_ERR_BACKEND_UNAVAILABLE
// and a reason, and write nothing. Where it can run, the same test checks the positive case
// instead, so it never passes vacuously.
#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "support.hpp"

namespace {

bool cuda_usable(std::string* reason) {
  const slstm_status st = slstm_backend_available(SLSTM_BACKEND_CUDA);
  *reason = slstm_last_error();
  REQUIRE((st == SLSTM_OK || st == SLSTM_ERR_BACKEND_UNAVAILABLE));
  return st == SLSTM_OK;
}

slstm_session_options cuda_options() {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 3;
  o.max_time = 4;
  return o;
}

}  // namespace

TEST_CASE("selecting the CUDA backend where it cannot run fails cleanly with the reason "
          "(or, where it can, gives the reference's numbers)", "[api][backend][cuda]") {
  t::Model m = t::random_model(5, {7, 3}, 42);
  std::string reason;
  const bool usable = cuda_usable(&reason);
  const slstm_session_options o = cuda_options();
  slstm_session* const sentinel = reinterpret_cast<slstm_session*>(&reason);
  slstm_session* s = sentinel;
  if (!usable) {
    INFO("availability query said: " << reason);
    CHECK(!reason.empty());
    CHECK(reason.find("SLSTM_BACKEND_CUDA") != std::string::npos);
    CHECK(slstm_session_create(m.get(), &o, &s) == SLSTM_ERR_BACKEND_UNAVAILABLE);
    CHECK(s == sentinel);  // nothing written to out_session
    const std::string create_reason = slstm_last_error();
    CHECK(!create_reason.empty());
    CHECK(create_reason == reason);
    // The query has no side effect: asking again gives the same answer.
    std::string again;
    CHECK(!cuda_usable(&again));
    CHECK(again == reason);
    // The CPU backend keeps working in the same process.
    t::Session cpu = t::session(m.get(), 3, 4);
    CHECK(cpu != nullptr);
  } else {
    // Positive case: a CUDA session runs and matches the CPU reference.
    REQUIRE(slstm_session_create(m.get(), &o, &s) == SLSTM_OK);
    REQUIRE(s != sentinel);
    t::Session gpu(s);
    slstm_backend kind = SLSTM_BACKEND_CPU;
    REQUIRE(slstm_session_backend(gpu.get(), &kind) == SLSTM_OK);
    CHECK(kind == SLSTM_BACKEND_CUDA);
    slstm_session_options ro = t::options(3, 4);
    ro.cpu_path = SLSTM_CPU_PATH_REFERENCE;
    slstm_session* r = nullptr;
    REQUIRE(slstm_session_create(m.get(), &ro, &r) == SLSTM_OK);
    t::Session ref(r);
    const std::vector<float> input = t::random_vector(3 * 4 * 5, 7);
    t::Call c = t::call_of(3, 4, input);
    const t::Run want = t::forward_ok(ref.get(), m.get(), c);
    const t::Run got = t::forward_ok(gpu.get(), m.get(), c);
    CHECK(t::rel_err(got.output, want.output) <= 1e-5);
    CHECK(t::rel_err(got.final_state, want.final_state) <= 1e-5);
  }
}

TEST_CASE("an out-of-range CUDA device index is rejected without a session",
          "[api][backend][cuda]") {
  t::Model m = t::random_model(2, {2}, 43);
  slstm_session_options o = cuda_options();
  o.device = 1 << 20;
  slstm_session* const sentinel = reinterpret_cast<slstm_session*>(&o);
  slstm_session* s = sentinel;
  CHECK(slstm_session_create(m.get(), &o, &s) == SLSTM_ERR_BACKEND_UNAVAILABLE);
  CHECK(s == sentinel);
  CHECK(std::string(slstm_last_error()).find("SLSTM_BACKEND_CUDA") != std::string::npos);
}

// Without the NVIDIA driver's library nothing CUDA can run, and the CUDA module (with cuBLAS
// and the CUDA runtime, whose load-time constructors make ~75,000 allocations) is not loaded
// to find that out: the query answers from the driver's absence, naming it.
TEST_CASE("without the NVIDIA driver's library the CUDA query answers without loading the "
          "CUDA module", "[api][backend][cuda]") {
  const char* named = std::getenv("SLSTM_CUDA_MODULE");
  if (named != nullptr && named[0] != '\0') {
    WARN("SKIPPED: SLSTM_CUDA_MODULE names a module, which is loaded without the driver check");
    return;
  }
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  const slstm_status st = slstm_backend_available(SLSTM_BACKEND_CUDA);
  const std::string reason = slstm_last_error();
  if (reason.find("this build of libstacklstm has no CUDA backend") != std::string::npos) {
    if (driver != nullptr) dlclose(driver);
    WARN("SKIPPED: this build has no CUDA module to leave unloaded");
    return;
  }
  if (driver != nullptr) {
    dlclose(driver);
    INFO(reason);
    CHECK(reason.find("no NVIDIA driver is installed") == std::string::npos);
    return;
  }
  REQUIRE(st == SLSTM_ERR_BACKEND_UNAVAILABLE);
  CHECK(reason.find("no NVIDIA driver is installed (libcuda.so.1 cannot be loaded") !=
        std::string::npos);
  std::ifstream maps("/proc/self/maps");
  REQUIRE(maps);
  std::string line, loaded;
  while (std::getline(maps, line)) {
    for (const char* lib : {"libstacklstm_cuda", "libcublas", "libcudart"}) {
      if (line.find(lib) != std::string::npos) loaded = line;
    }
  }
  CHECK(loaded.empty());
}
