// The plan's memory (device_memory_bytes, blas_workspace_bytes, pinned_memory_bytes) on the
// FAKE CUDA runtime (tests/cuda_fake), which knows every allocation's size: it is exactly
// what the session's creation (and its stream slots') allocated, under the settings that
// allocate more or other things. The generic path's case runs on the simulated module
// ([memory-sim]), which has that path.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "../support.hpp"
#include "fake_device.hpp"
#include "stacklstm/stacklstm.h"

namespace {

struct Memory {
  long long device = 0, workspace = 0, pinned = 0;
};

Memory plan_memory(const slstm_session* s) {
  const std::string plan = t::describe_json(s);
  INFO(plan);
  Memory m;
  m.device = std::stoll(t::json_value(plan, "device_memory_bytes"));
  m.workspace = std::stoll(t::json_value(plan, "blas_workspace_bytes"));
  m.pinned = std::stoll(t::json_value(plan, "pinned_memory_bytes"));
  return m;
}

// A session of `config` (and max_slots) made here: the plan's memory equals what the fake
// runtime saw allocated while it was made; returns the plan's numbers.
Memory check_plan_memory(const slstm_model* m, const char* config, std::int64_t max_slots = 0) {
  INFO("settings \"" << config << "\", " << max_slots << " slots");
  slstm_session_options o = t::options(3, 5);
  o.backend = SLSTM_BACKEND_CUDA;
  o.config = config;
  o.max_slots = max_slots;
  const cuda_fake::Resources before = cuda_fake::live_resources();
  slstm_session* raw = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &raw);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  t::Session s(raw);
  const cuda_fake::Resources after = cuda_fake::live_resources();
  const Memory got = plan_memory(s.get());
  CHECK(got.device == after.device_bytes - before.device_bytes);
  CHECK(got.pinned == after.pinned_bytes - before.pinned_bytes);
  CHECK(got.workspace > 0);
  CHECK(got.workspace < got.device);
  return got;
}

constexpr long long kMiB = 1 << 20;

// cuBLAS's workspace per handle: 32 MiB from Hopper on (the fake device's compute capability
// 9 by default), 4 MiB before.
long long workspace_each() {
  const char* cc = std::getenv("SLSTM_CUDA_FAKE_CC_MAJOR");
  return cc != nullptr && std::atoi(cc) < 9 ? 4 * kMiB : 32 * kMiB;
}

}  // namespace

TEST_CASE("the plan's memory is what the session allocated, its cuBLAS workspaces among it",
          "[cuda-fake][memory]") {
  const t::Model m = t::random_model(7, {33, 20, 9}, 25001, 1.0f);
  // One workspace per cuBLAS handle: a recurrent one per layer, a projection one per layer
  // above the first.
  const Memory plain = check_plan_memory(m.get(), "");
  CHECK(plain.workspace == 5 * workspace_each());
  CHECK(plain.pinned > 0);  // (the lengths' staging)
  for (const char* config : {"cuda.persistent=on", "cuda.tune=on;cuda.persistent=layers",
                             "cuda.graphs=off;cuda.fused=never"}) {
    CHECK(check_plan_memory(m.get(), config).workspace == plain.workspace);
  }
  // cuda.staging=on adds its pinned buffer: input and output rows and two states of 3 x 5.
  const Memory staged = check_plan_memory(m.get(), "cuda.staging=on");
  CHECK(staged.device == plain.device);
  CHECK(staged.pinned - plain.pinned ==
        4 * (3 * 5 * (7 + 9) + 2 * static_cast<long long>(t::state_count(m.get(), 3))));
  // cuda.blas_workspace_mib sets each workspace's size.
  const Memory small = check_plan_memory(m.get(), "cuda.blas_workspace_mib=2");
  CHECK(small.workspace == 5 * 2 * kMiB);
  CHECK(plain.device - small.device == plain.workspace - small.workspace);
}

TEST_CASE("stream slots add their device memory to the plan's", "[cuda-fake][memory]") {
  const t::Model m = t::random_model(7, {33, 20, 9}, 25101, 1.0f);
  const Memory none = check_plan_memory(m.get(), "cuda.slots=on");
  const Memory slots = check_plan_memory(m.get(), "cuda.slots=on", 100);
  // At least 100 packed states of one row; their ids and offsets besides.
  CHECK(slots.device - none.device >=
        100 * 4 * static_cast<long long>(t::state_count(m.get(), 1)));
}

TEST_CASE("the generic path's plan reports what its session allocated", "[cuda-fake][memory-sim]") {
  const t::Model m = t::random_stack(7, t::layer_zoo()[3], 25201);
  const Memory got = check_plan_memory(m.get(), "cuda.generic=always");
  CHECK(got.workspace == workspace_each());  // its one cuBLAS handle
  const Memory small = check_plan_memory(m.get(), "cuda.generic=always;cuda.blas_workspace_mib=3");
  CHECK(small.workspace == 3 * kMiB);
}
