// The hybrid tier of the persistent kernel (cuda.hybrid=on, cuda/session_init.cpp) on the
// FAKE CUDA runtime, which records the L2 access policy windows its persistent launches carry
// and the persisting set-aside (cudaLimitPersistingL2CacheSize) the sessions hold: the
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
// raised to what the session wants while it lives, and given back when it ends.
TEST_CASE("a hybrid-tier session's launches carry an L2 window over its W_h with the hit ratio "
          "the persisting set-aside holds, which it raises while it lives",
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
  CHECK(set_aside() == 0u);
  // A smaller window (H = 1100: 19360000 bytes) fits a set-aside of its size whole.
  cuda_fake::clear_l2_windows();
  const t::Model small = t::random_model(5, {1100}, 26003, 1.0f);
  t::Session s = hybrid_session(small.get(), 1, "cuda.persistent=layers;cuda.hybrid=on");
  CHECK(t::json_value(t::describe_json(s.get()), "l2_window_bytes") == "19360000");
  CHECK(set_aside() == 19360000u);
  run_call(s.get(), small.get(), 1);
  const std::vector<cuda_fake::L2WindowSeen> seen = cuda_fake::l2_windows();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].bytes == 19360000u);
  CHECK(seen[0].hit_ratio == 1.0f);
}

TEST_CASE("a session below the set-aside it wants raises it to its widest window only, and "
          "gives back the device's set-aside when it ends",
          "[cuda-fake][hybrid]") {
  REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 1000) == cudaSuccess);
  const t::Model m = t::random_model(5, {1100}, 26004, 1.0f);
  {
    t::Session s = hybrid_session(m.get(), 1, "cuda.persistent=on;cuda.hybrid=on");
    CHECK(set_aside() == 19360000u);
  }
  CHECK(set_aside() == 1000u);
}

// The set-aside is the device's, shared by the sessions: none lowers it while another holds
// more, and the last to end gives back what the device had before the first raised it.
TEST_CASE("sessions never lower the set-aside another one holds, and the last to end gives "
          "back the device's",
          "[cuda-fake][hybrid]") {
  REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 1000) == cudaSuccess);
  const t::Model big = t::random_model(5, {2048}, 26007, 1.0f);
  const t::Model small = t::random_model(5, {1100}, 26008, 1.0f);
  const char* config = "cuda.persistent=layers;cuda.hybrid=on";
  t::Session first = hybrid_session(small.get(), 1, config);
  CHECK(set_aside() == 19360000u);
  t::Session second = hybrid_session(big.get(), 1, config);
  CHECK(set_aside() == cuda_fake::kMaxPersistingL2);
  t::Session third = hybrid_session(small.get(), 1, config);
  CHECK(set_aside() == cuda_fake::kMaxPersistingL2);  // (third wanted less: not lowered)
  second.reset();
  CHECK(set_aside() == cuda_fake::kMaxPersistingL2);  // first and third still hold it
  first.reset();
  CHECK(set_aside() == cuda_fake::kMaxPersistingL2);
  third.reset();
  CHECK(set_aside() == 1000u);
}

// A set-aside the application changed while sessions held it is the application's: the
// sessions leave it as it is when they end.
TEST_CASE("a set-aside changed by someone else while a session holds it is left as it is when "
          "the session ends",
          "[cuda-fake][hybrid]") {
  REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 0) == cudaSuccess);
  const t::Model m = t::random_model(5, {1100}, 26009, 1.0f);
  {
    t::Session s = hybrid_session(m.get(), 1, "cuda.persistent=layers;cuda.hybrid=on");
    CHECK(set_aside() == 19360000u);
    REQUIRE(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 5000000) == cudaSuccess);
  }
  CHECK(set_aside() == 5000000u);
  // And a session that finds the application's value below what it wants raises it, and
  // gives that value back.
  {
    t::Session s = hybrid_session(m.get(), 1, "cuda.persistent=layers;cuda.hybrid=on");
    CHECK(set_aside() == 19360000u);
  }
  CHECK(set_aside() == 5000000u);
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
