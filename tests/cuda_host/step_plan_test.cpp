// The CUDA backend's plan arithmetic (cuda/step_plan.hpp), checked against a model of a
// device: an H100 SXM / H200 (132 SMs, 228 KB of shared memory per SM, 227 KB per CTA at
// most, 1 KB reserved per CTA, at most 8 CTAs of 256 threads per SM), or one of 114 SMs
// (H100 PCIe). The module asks the real device the same question
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor).
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "step_plan.hpp"

using namespace slstm_cuda;

namespace {

// The persistent kernel's static shared memory (its abort flag: 16 bytes, ptxas's report) is
// counted with the dynamic size against both limits.
constexpr std::size_t kStaticSmem = 16;

int hopper_ctas_per_sm(int batch, std::size_t smem) {
  if (batch < 1 || batch > 16 || smem + kStaticSmem > 227 * 1024) return 0;
  const std::size_t fit = (228 * 1024) / (smem + kStaticSmem + 1024);
  return static_cast<int>(fit < 8 ? fit : 8);
}

std::uint32_t bit(int batch) { return 1u << (batch - 1); }

LayerShape layer(int input, int hidden) { return {hidden, (input + 1 + 3) / 4 * 4}; }

}  // namespace

TEST_CASE("step plan: the fused step fits up to its shared memory, for batches up to 16",
          "[step-plan]") {
  // B = 16: 16 H + 8 x 4 x 16 floats within 48 KB -> H <= 736.
  CHECK(rec_step_fits(16, 736));
  CHECK_FALSE(rec_step_fits(16, 737));
  CHECK(rec_step_fits(9, 736));  // batch 9 runs the 16-row kernel
  CHECK(rec_step_fits(1, 12256));
  CHECK_FALSE(rec_step_fits(1, 12257));
  CHECK_FALSE(rec_step_fits(17, 1));
  CHECK_FALSE(rec_step_fits(0, 100));
  CHECK_FALSE(rec_step_fits(1, 0));
}

TEST_CASE("step plan: fused_mode never, measured-faster or always, up to 32 batches",
          "[step-plan]") {
  CHECK(plan_steps(256, 0, false, 32).fused_batches == 0);
  const StepPlan always = plan_steps(100, 2, false, 40);
  CHECK(always.fused_batches == 0xFFFFu);  // batches 1..16: the kernel's limit
  const StepPlan measured = plan_steps(512, 1, false, 4);
  CHECK_FALSE(measured.fused(1));  // B = 1, H > 256: cuBLAS's GEMV read W_h faster
  CHECK_FALSE(measured.fused(2));  // B = 2 in FP32
  CHECK(measured.fused(3));
  CHECK(measured.fused(4));
  CHECK_FALSE(measured.fused(5));  // beyond max_batch
  CHECK(plan_steps(512, 1, true, 2).fused(2));  // B = 2 with TF32 up to H = 512
}

TEST_CASE("step plan: a persistent layer needs all its CTAs resident: H = 1056 fits 132 SMs, "
          "1057 does not, 1056 does not fit 114",
          "[step-plan][persistent]") {
  const auto on132 = plan_persistent({layer(64, 1056)}, 1, 132, hopper_ctas_per_sm);
  CHECK(on132[0] == bit(1));
  CHECK(plan_persistent({layer(64, 1057)}, 1, 132, hopper_ctas_per_sm)[0] == 0);
  CHECK(plan_persistent({layer(64, 1056)}, 1, 114, hopper_ctas_per_sm)[0] == 0);
  CHECK(plan_persistent({layer(64, 912)}, 1, 114, hopper_ctas_per_sm)[0] == bit(1));
  // 2048 units: 256 CTAs of ~280 KB each: never.
  CHECK(plan_persistent({layer(64, 2048)}, 4, 132, hopper_ctas_per_sm)[0] == 0);
}

TEST_CASE("step plan: persistent layers share the SMs first to last, and batches stop at 16 "
          "and at max_batch",
          "[step-plan][persistent]") {
  // Two layers of 1024 units: 128 CTAs of ~137 KB each, one per SM: only the first fits.
  const auto two = plan_persistent({layer(1024, 1024), layer(1024, 1024)}, 1, 132,
                                   hopper_ctas_per_sm);
  CHECK(two[0] == bit(1));
  CHECK(two[1] == 0);
  // Small layers: every batch up to min(max_batch, 16) where the fused step fits.
  const auto small = plan_persistent({layer(8, 40), layer(40, 24)}, 20, 132, hopper_ctas_per_sm);
  CHECK(small[0] == 0xFFFFu);
  CHECK(small[1] == 0xFFFFu);
  CHECK(plan_persistent({layer(8, 40)}, 3, 132, hopper_ctas_per_sm)[0] == 0x7u);
  // B = 16 with H = 737: the fused step (the fallback) does not fit, so neither does this.
  const auto wide = plan_persistent({layer(8, 737)}, 16, 132, hopper_ctas_per_sm);
  CHECK((wide[0] & bit(16)) == 0);
  CHECK((wide[0] & bit(8)) != 0);
}

TEST_CASE("step plan: the seed's stack is one persistent launch, layer 0 included, for every "
          "batch up to 16",
          "[step-plan][persistent]") {
  const std::vector<LayerShape> seed = {layer(128, 100), layer(100, 200), layer(200, 300)};
  const StackPlan p = plan_stack(seed, 16, 132, hopper_ctas_per_sm);
  CHECK(p.batches == 0xFFFFu);
  CHECK(p.x0_batches == 0xFFFFu);
  CHECK(plan_stack(seed, 10, 132, hopper_ctas_per_sm).batches == 0x3FFu);
}

TEST_CASE("step plan: a wide input keeps layer 0 on the input GEMM, and a stack that does not fit "
          "at once, one layer, or more than 8 layers is not one launch",
          "[step-plan][persistent]") {
  // Layer 0 with 4000 inputs: 32 x 4012 floats of [W_x | W_h] rows exceed a CTA's 227 KB.
  const StackPlan wide = plan_stack({layer(4000, 8), layer(8, 8)}, 1, 132, hopper_ctas_per_sm);
  CHECK(wide.batches == bit(1));
  CHECK(wide.x0_batches == 0);
  // 2 x 1024 with [W_x | W_h] for layer 1: 256 CTAs of > 227 KB: no.
  CHECK(plan_stack({layer(1024, 1024), layer(1024, 1024)}, 1, 132, hopper_ctas_per_sm).batches ==
        0);
  CHECK(plan_stack({layer(8, 8)}, 4, 132, hopper_ctas_per_sm).batches == 0);
  const std::vector<LayerShape> nine(9, layer(8, 8));
  CHECK(plan_stack(nine, 4, 132, hopper_ctas_per_sm).batches == 0);
  const std::vector<LayerShape> eight(8, layer(8, 8));
  CHECK(plan_stack(eight, 4, 132, hopper_ctas_per_sm).batches == 0xFu);
  // All CTAs at once or not at all: 4 layers of 256 (input 256) are 128 CTAs of ~68 KB,
  // three per SM: 43 SMs hold them (129), 42 do not (126).
  const std::vector<LayerShape> four(4, layer(256, 256));
  CHECK(persistent_smem_bytes(1, 256, 260) == (32 * 516 + 516 + 32) * 4);
  CHECK(plan_stack(four, 1, 43, hopper_ctas_per_sm).batches == bit(1));
  CHECK(plan_stack(four, 1, 42, hopper_ctas_per_sm).batches == 0);
}

TEST_CASE("step plan: the persistent kernel's sizes", "[step-plan][persistent]") {
  CHECK(persistent_ctas(1) == 1);
  CHECK(persistent_ctas(8) == 1);
  CHECK(persistent_ctas(9) == 2);
  CHECK(persistent_sync_words(3) == 4 * 32);
  // B = 4, H = 100, no input columns: (32 x 100 + 4 x 100 + 32 x 4) floats.
  CHECK(persistent_smem_bytes(4, 100, 0) == (3200 + 400 + 128) * 4);
  // B = 3 runs the 4-row kernel; 104 input columns join each row.
  CHECK(persistent_smem_bytes(3, 100, 104) == (32 * 204 + 4 * 204 + 128) * 4);
}
