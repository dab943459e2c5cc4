// The hybrid tier of the persistent kernel (cuda.hybrid=on, cuda/session_init.cpp) on the
// FAKE CUDA runtime, which records the L2 access policy windows its persistent launches carry
// and the persisting set-aside (cudaLimitPersistingL2CacheSize) the session asks for: the
// fake device is an H100's size with an assumed set-aside of at most 37.5 MB and windows of
// at most 134213632 bytes (fake_device.hpp), not a reading of a GPU.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "../support.hpp"
#include "fake_device.hpp"
#include "stacklstm/stacklstm.h"

namespace {

t::Session hybrid_session(const slstm_model* m, std::int64_t batch, const char* config) {
  t::Session s = t::cuda_session(m, batch, 3, config);
  REQUIRE(s);
  return s;
}

std::size_t set_aside() {
  std::size_t v = 0;
  REQUIRE(cudaDeviceGetLimit(&v, cudaLimitPersistingL2CacheSize) == cudaSuccess);
  return v;
}

// One call of `batch` rows of 3 steps on s (the models here have 5 inputs); the outputs are
// the GPU suite's to check.
void run_call(slstm_session* s, const slstm_model* m, std::int64_t batch) {
  const std::int64_t T = 3, D = 5;
  const auto x = t::random_vector(static_cast<std::size_t>(batch * T * D), 26001);
  const t::Run r = t::forward_ok(s, m, t::call_of(batch, T, x));
  (void)r;
}

}  // namespace

// H = 2048: W_h is 67108864 bytes, within the largest window; the set-aside (at most 37.5 MB
// on the fake device) holds 37.5 / 67.1 of it: the window's hit ratio. The set-aside is
// raised to what the session wants and never lowered by a later session.
TEST_CASE("a hybrid-tier session's launches carry an L2 window over its W_h with the hit ratio "
          "the persisting set-aside holds, which it raises and never lowers",
          "[cuda-fake][hybrid]") {
  REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 0) == cudaSuccess);
  cuda_fake::clear_l2_windows();
  const t::Model m = t::random_model(5, {2048}, 26002, 1.0f);
  {
    t::Session s = hybrid_session(m.get(), 1, "cuda.persistent=layers;cuda.hybrid=on");
    const std::string plan = t::describe_json(s.get());
    INFO(plan);
    CHECK(t::json_value(plan, "hybrid_batches") == "1");
    CHECK(t::json_value(plan, "hybrid_resident") == "838");
    CHECK(t::json_value(plan, "l2_window_bytes") == "67108864");
    CHECK(set_aside() == cuda_fake::kMaxPersistingL2);
    run_call(s.get(), m.get(), 1);
    const std::vector<cuda_fake::L2WindowSeen> seen = cuda_fake::l2_windows();
    REQUIRE(seen.size() == 1);  // one launch: T = 3 in one chunk
    CHECK(seen[0].bytes == 67108864u);
    CHECK(seen[0].hit_ratio == Approx(37.5e6 / 67108864.0).epsilon(1e-6));
  }
  // A smaller window (H = 1100: 19360000 bytes) fits the set-aside whole; the set-aside stays.
  cuda_fake::clear_l2_windows();
  const t::Model small = t::random_model(5, {1100}, 26003, 1.0f);
  t::Session s = hybrid_session(small.get(), 1, "cuda.persistent=layers;cuda.hybrid=on");
  CHECK(t::json_value(t::describe_json(s.get()), "l2_window_bytes") == "19360000");
  run_call(s.get(), small.get(), 1);
  const std::vector<cuda_fake::L2WindowSeen> seen = cuda_fake::l2_windows();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].bytes == 19360000u);
  CHECK(seen[0].hit_ratio == 1.0f);
  CHECK(set_aside() == cuda_fake::kMaxPersistingL2);
}

TEST_CASE("a session below the set-aside it wants raises it to its widest window only",
          "[cuda-fake][hybrid]") {
  REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 1000) == cudaSuccess);
  const t::Model m = t::random_model(5, {1100}, 26004, 1.0f);
  t::Session s = hybrid_session(m.get(), 1, "cuda.persistent=on;cuda.hybrid=on");
  CHECK(set_aside() == 19360000u);
}

TEST_CASE("without cuda.hybrid, or on the grid tier, a session leaves the set-aside alone and "
          "its launches carry no window",
          "[cuda-fake][hybrid]") {
  REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 0) == cudaSuccess);
  cuda_fake::clear_l2_windows();
  const t::Model big = t::random_model(5, {1100}, 26005, 1.0f);
  const t::Model grid = t::random_model(5, {100}, 26006, 1.0f);
  for (const char* config : {"cuda.persistent=layers", "cuda.hybrid=on"}) {
    INFO(config);
    t::Session s = hybrid_session(big.get(), 1, config);
    run_call(s.get(), big.get(), 1);
  }
  t::Session g = hybrid_session(grid.get(), 2, "cuda.persistent=layers;cuda.hybrid=on");
  const std::string plan = t::describe_json(g.get());
  INFO(plan);
  CHECK(t::json_value(plan, "hybrid_batches") == "none");
  CHECK(t::json_value(plan, "persistent_batches") == "1-2");
  run_call(g.get(), grid.get(), 2);
  CHECK(set_aside() == 0u);
  CHECK(cuda_fake::l2_windows().empty());
}
