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

TEST_CASE("step plan: a hybrid-tier CTA's shared memory holds `resident` columns of its W_h "
          "rows, the staged h and the reduction",
          "[step-plan][persistent][hybrid]") {
  // B = 4, H = 2048, 643 columns: (32 x 643 + 4 x 2048 + 32 x 4) floats.
  CHECK(persistent_resident_smem_bytes(4, 2048, 643) == (32 * 643 + 4 * 2048 + 128) * 4);
  CHECK(persistent_resident_smem_bytes(3, 100, 0) == (4 * 100 + 128) * 4);
  // All the columns: the grid tier's size.
  CHECK(persistent_resident_smem_bytes(2, 300, 300) == persistent_smem_bytes(2, 300, 0));
}

TEST_CASE("step plan: the hybrid tier runs H = 2048 at two CTAs per SM with as many columns of "
          "W_h on chip as fit, on 132 SMs and on 114",
          "[step-plan][persistent][hybrid]") {
  const std::vector<LayerShape> one = {layer(64, 2048)};
  const std::vector<std::uint32_t> full = plan_persistent(one, 16, 132, hopper_ctas_per_sm);
  REQUIRE(full[0] == 0);
  // 256 CTAs on 132 SMs: 2 to an SM, each within 228 KB / 2 - 1 KB - 16 bytes. At B = 4 (and
  // 3) the staged h takes 4 x 2048 floats: 643 columns; B = 1: 838. B >= 5: the fused step
  // (the fallback) does not fit. The layer keeps the least: 643.
  const auto h132 = plan_hybrid(one, full, 16, 132, hopper_ctas_per_sm);
  CHECK(h132[0].batches == 0xFu);
  CHECK(h132[0].resident == 643);
  CHECK(plan_hybrid(one, full, 1, 132, hopper_ctas_per_sm)[0].resident == 838);
  CHECK(plan_hybrid(one, full, 2, 132, hopper_ctas_per_sm)[0].resident == 773);
  // 114 SMs: 3 to an SM.
  CHECK(plan_hybrid(one, full, 1, 114, hopper_ctas_per_sm)[0].resident == 534);
  CHECK(plan_hybrid(one, full, 4, 114, hopper_ctas_per_sm)[0].resident == 339);
  // Just past the grid tier: H = 1100, 138 CTAs.
  const std::vector<LayerShape> h1100 = {layer(64, 1100)};
  const auto f1100 = plan_persistent(h1100, 1, 132, hopper_ctas_per_sm);
  REQUIRE(f1100[0] == 0);
  const auto p1100 = plan_hybrid(h1100, f1100, 1, 132, hopper_ctas_per_sm);
  CHECK(p1100[0].batches == bit(1));
  CHECK(p1100[0].resident == 868);
}

TEST_CASE("step plan: the hybrid tier leaves the grid tier's layers alone and shares the SMs "
          "they leave, first layer to last",
          "[step-plan][persistent][hybrid]") {
  // A layer the grid tier holds stays there, however many SMs it leaves free.
  const std::vector<LayerShape> small = {layer(64, 100)};
  const auto small_full = plan_persistent(small, 4, 132, hopper_ctas_per_sm);
  REQUIRE(small_full[0] == 0xFu);
  CHECK(plan_hybrid(small, small_full, 4, 132, hopper_ctas_per_sm)[0].batches == 0);
  // [1024, 2048]: the first layer on the grid tier (128 SMs); the second would need 64 CTAs
  // to an SM on the 4 left: none.
  const std::vector<LayerShape> mixed = {layer(64, 1024), layer(1024, 2048)};
  const auto full = plan_persistent(mixed, 1, 132, hopper_ctas_per_sm);
  REQUIRE(full[0] == bit(1));
  const auto p = plan_hybrid(mixed, full, 1, 132, hopper_ctas_per_sm);
  CHECK(p[0].batches == 0);
  CHECK(p[1].batches == 0);
  CHECK(p[1].resident == 0);
  // [2048, 2048]: the first takes 128 SMs at two CTAs each, the second none.
  const std::vector<LayerShape> two = {layer(64, 2048), layer(2048, 2048)};
  const auto p2 = plan_hybrid(two, plan_persistent(two, 1, 132, hopper_ctas_per_sm), 1, 132,
                              hopper_ctas_per_sm);
  CHECK(p2[0].batches == bit(1));
  CHECK(p2[0].resident == 838);
  CHECK(p2[1].batches == 0);
  // [1100, 1100] on 276 SMs: 138 SMs each, one CTA per SM: every column on chip.
  const std::vector<LayerShape> pair = {layer(64, 1100), layer(1100, 1100)};
  const auto p3 = plan_hybrid(pair, {0, 0}, 1, 276, hopper_ctas_per_sm);
  CHECK(p3[0].batches == bit(1));
  CHECK(p3[0].resident == 1100);
  CHECK(p3[1].batches == bit(1));
  CHECK(p3[1].resident == 1100);
}

TEST_CASE("step plan: the hybrid tier needs the fused step (its fallback) and a device that "
          "holds its CTAs with no column on chip",
          "[step-plan][persistent][hybrid]") {
  const std::vector<LayerShape> huge = {layer(64, 12257)};  // the fused step: H <= 12256 at B = 1
  CHECK(plan_hybrid(huge, {0}, 1, 132, hopper_ctas_per_sm)[0].batches == 0);
  // 1532 CTAs on 132 SMs: 12 to an SM, more than the 8 of 256 threads an SM holds.
  const std::vector<LayerShape> big = {layer(64, 12256)};
  CHECK(plan_hybrid(big, {0}, 1, 132, hopper_ctas_per_sm)[0].batches == 0);
  const auto nothing = [](int, std::size_t) { return 0; };
  CHECK(plan_hybrid({layer(64, 2048)}, {0}, 4, 132, nothing)[0].batches == 0);
  // No SM: none.
  CHECK(plan_hybrid({layer(64, 2048)}, {0}, 4, 0, hopper_ctas_per_sm)[0].batches == 0);
}

namespace {

// One cluster launches where each CTA's shared memory is within the opt-in limit (227 KB)
// and the cluster has at most max_ctas CTAs (16 on Hopper with the non-portable size, 8
// portably).
ClusterFits cluster_fits(int max_ctas) {
  return [max_ctas](int, int ctas, std::size_t smem) {
    return ctas <= max_ctas && smem <= 227 * 1024;
  };
}

}  // namespace

TEST_CASE("step plan: a cluster takes a CTA per 8 units up to its size, then shares the units "
          "evenly, with no CTA left empty",
          "[step-plan][cluster]") {
  CHECK(cluster_shape(1, 16).ctas == 1);
  CHECK(cluster_shape(1, 16).units == 1);
  CHECK(cluster_shape(100, 16).ctas == 13);  // the seed's first layer: 13 CTAs of 8 units
  CHECK(cluster_shape(100, 16).units == 8);
  CHECK(cluster_shape(256, 16).ctas == 16);
  CHECK(cluster_shape(256, 16).units == 16);
  CHECK(cluster_shape(257, 16).units == 17);
  CHECK(cluster_shape(130, 8).ctas == 8);
  CHECK(cluster_shape(130, 8).units == 17);
  CHECK(cluster_shape(0, 16).ctas == 0);
  for (const int max_ctas : {16, 8, 3}) {
    for (int h = 1; h <= 600; ++h) {
      const ClusterShape s = cluster_shape(h, max_ctas);
      INFO("H " << h << ", at most " << max_ctas << " CTAs: " << s.ctas << " x " << s.units);
      REQUIRE(s.ctas >= 1);
      REQUIRE(s.ctas <= max_ctas);
      REQUIRE(s.ctas * s.units >= h);
      REQUIRE((s.ctas - 1) * s.units < h);  // the last CTA has units
      if (h <= 8 * max_ctas) REQUIRE(s.units <= 8);
    }
  }
}

TEST_CASE("step plan: a cluster CTA's shared memory is its units' W_h rows, h twice, their c and "
          "the reduction",
          "[step-plan][cluster]") {
  // 16 units x 4 x 256 + 2 x 4 x 256 + 16 x 4 + 8 x 16 floats.
  CHECK(cluster_smem_bytes(4, 256, 16) == 74496);
  CHECK(cluster_smem_bytes(3, 256, 16) == 74496);  // batch 3 runs the 4-row kernel
  CHECK(cluster_smem_bytes(1, 1, 1) == (4 + 2 + 1 + 32) * 4);
}

TEST_CASE("step plan: the cluster tier takes the persistent batches one cluster of 16 CTAs holds, "
          "up to H = 464 at batch 4 in 227 KB",
          "[step-plan][cluster]") {
  const std::uint32_t b124 = bit(1) | bit(2) | bit(4);
  const ClusterPlan at464 = plan_cluster(464, b124, cluster_fits(16));
  CHECK(at464.batches == b124);  // not batch 3: not a persistent batch
  CHECK(at464.shape.ctas == 16);
  CHECK(at464.shape.units == 29);
  CHECK(cluster_smem_bytes(4, 464, 29) <= 227 * 1024);
  CHECK(cluster_smem_bytes(4, 465, 30) > 227 * 1024);
  // H = 465 at batch 4 fits neither 16 CTAs nor 8; batch 1 still fits 16 (B = 1 up to 470).
  CHECK(plan_cluster(465, bit(4), cluster_fits(16)).batches == 0);
  CHECK(plan_cluster(465, bit(4), cluster_fits(16)).shape.ctas == 0);
  CHECK(plan_cluster(470, bit(1), cluster_fits(16)).batches == bit(1));
  CHECK(plan_cluster(480, bit(1), cluster_fits(16)).batches == 0);
  CHECK(plan_cluster(256, 0, cluster_fits(16)).batches == 0);  // no persistent batch
}

TEST_CASE("step plan: where the device refuses 16 CTAs the cluster tier takes the portable 8",
          "[step-plan][cluster]") {
  const ClusterPlan p = plan_cluster(256, bit(1), cluster_fits(8));
  CHECK(p.batches == bit(1));
  CHECK(p.shape.ctas == 8);
  CHECK(p.shape.units == 32);
  const ClusterPlan none = plan_cluster(256, bit(1), [](int, int, std::size_t) { return false; });
  CHECK(none.batches == 0);
  CHECK(none.shape.ctas == 0);
}
