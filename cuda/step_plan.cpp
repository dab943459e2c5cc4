#include "step_plan.hpp"

#include <algorithm>

namespace slstm_cuda {

std::size_t rec_smem_bytes(int bmax, int hidden) {
  return (static_cast<std::size_t>(bmax) * static_cast<std::size_t>(hidden) +
          static_cast<std::size_t>(kRecWarps) * 4 * static_cast<std::size_t>(bmax)) *
         sizeof(float);
}

bool rec_step_fits(int batch, int hidden) {
  const int bmax = rec_bmax(batch);
  return batch >= 1 && hidden >= 1 && bmax > 0 && rec_smem_bytes(bmax, hidden) <= kRecMaxSmem;
}

bool rec_step_preferred(int batch, int hidden, bool tf32) {
  // Medians of one H100 run each way, same shapes (DeepBench inference H 256..2048, B 1/2/4;
  // the seed, B = 10; H = 512, B = 16): fused/cuBLAS time was 0.85-0.89 at B = 1, H = 256;
  // 1.08-1.56 at B = 1, H >= 512; 1.12-1.75 at B = 2 in FP32 (0.75-0.93 with TF32 up to
  // H = 512); at B >= 3 0.18-1.02 up to H = 1024 (FP32 also 0.85 at H = 1536) and 1.02-1.19
  // beyond. Unmeasured (B, H) fall to the nearest measured side of these lines.
  if (!rec_step_fits(batch, hidden)) return false;
  if (batch == 1) return hidden <= 256;
  if (batch == 2) return tf32 && hidden <= 512;
  return hidden <= (tf32 ? 1024 : 1536);
}

StepPlan plan_steps(int hidden, int fused_mode, bool tf32, std::int64_t max_batch) {
  StepPlan plan;
  // Without the fused step's second h buffer (see Session::allocate_layer): never fused.
  if (fused_mode == 0 || !rec_step_fits(1, hidden)) return plan;
  const int n = static_cast<int>(std::min<std::int64_t>(max_batch, StepPlan::kPlannedBatches));
  for (int b = 1; b <= n; ++b) {
    const bool fused =
        fused_mode == 2 ? rec_step_fits(b, hidden) : rec_step_preferred(b, hidden, tf32);
    if (fused) plan.fused_batches |= 1u << (b - 1);
  }
  return plan;
}

int persistent_ctas(int hidden) { return (hidden + kRecWarps - 1) / kRecWarps; }

std::size_t persistent_sync_words(int ctas) {
  return static_cast<std::size_t>(ctas + 1) * kPersistFlagStride;
}

std::size_t persistent_smem_bytes(int batch, int hidden, int x_cols) {
  const auto k = static_cast<std::size_t>(hidden) + static_cast<std::size_t>(x_cols);
  const auto bmax = static_cast<std::size_t>(rec_bmax(batch));
  return (static_cast<std::size_t>(kRecWarps) * 4 * k + bmax * k +
          static_cast<std::size_t>(kRecWarps) * 4 * bmax) *
         sizeof(float);
}

std::size_t persistent_resident_smem_bytes(int batch, int hidden, int resident) {
  const auto bmax = static_cast<std::size_t>(rec_bmax(batch));
  const auto warps = static_cast<std::size_t>(kRecWarps);
  return (warps * 4 * static_cast<std::size_t>(resident) +
          bmax * static_cast<std::size_t>(hidden) + warps * 4 * bmax) *
         sizeof(float);
}

namespace {

// The SMs a layer's persistent CTAs with all of W_h take for batch b (0: the device does not
// hold one).
int full_sms(int b, int hidden, const CtasPerSm& per_sm) {
  const int fit = per_sm(b, persistent_smem_bytes(b, hidden, 0));
  return fit < 1 ? 0 : (persistent_ctas(hidden) + fit - 1) / fit;
}

}  // namespace

std::vector<HybridPlan> plan_hybrid(const std::vector<LayerShape>& layers,
                                    const std::vector<std::uint32_t>& full,
                                    std::int64_t max_batch, int sms, const CtasPerSm& per_sm) {
  std::vector<HybridPlan> plans(layers.size());
  std::vector<int> least(layers.size(), -1);
  const int n = static_cast<int>(std::min<std::int64_t>(max_batch, kRecMaxBatch));
  for (int b = 1; b <= n; ++b) {
    int taken = 0;  // by the layers of `full`, as plan_persistent counted them
    for (std::size_t l = 0; l < layers.size(); ++l) {
      if (StepPlan::has(full[l], b)) taken += full_sms(b, layers[l].hidden, per_sm);
    }
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const int hidden = layers[l].hidden;
      if (StepPlan::has(full[l], b) || !rec_step_fits(b, hidden) || taken >= sms) continue;
      const int ctas = persistent_ctas(hidden);
      const int k = (ctas + (sms - taken) - 1) / (sms - taken);
      const auto holds = [&](int resident) {
        return per_sm(b, persistent_resident_smem_bytes(b, hidden, resident)) >= k;
      };
      if (!holds(0)) continue;
      int lo = 0, hi = hidden;  // holds(lo); the largest resident that holds is in [lo, hi]
      while (lo < hi) {
        const int mid = hi - (hi - lo) / 2;
        if (holds(mid)) lo = mid;
        else hi = mid - 1;
      }
      taken += (ctas + k - 1) / k;
      plans[l].batches |= 1u << (b - 1);
      least[l] = least[l] < 0 ? lo : std::min(least[l], lo);
    }
  }
  for (std::size_t l = 0; l < layers.size(); ++l) plans[l].resident = std::max(least[l], 0);
  return plans;
}

std::vector<std::uint32_t> plan_persistent(const std::vector<LayerShape>& layers,
                                           std::int64_t max_batch, int sms,
                                           const CtasPerSm& per_sm) {
  std::vector<std::uint32_t> masks(layers.size(), 0);
  const int n = static_cast<int>(std::min<std::int64_t>(max_batch, kRecMaxBatch));
  for (int b = 1; b <= n; ++b) {
    int sms_taken = 0;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const int hidden = layers[l].hidden;
      if (!rec_step_fits(b, hidden)) continue;
      const int need = full_sms(b, hidden, per_sm);
      if (need < 1 || sms_taken + need > sms) continue;
      sms_taken += need;
      masks[l] |= 1u << (b - 1);
    }
  }
  return masks;
}

ClusterShape cluster_shape(int hidden, int max_ctas) {
  ClusterShape s;
  if (hidden < 1 || max_ctas < 1) return s;
  s.ctas = std::min(max_ctas, (hidden + kRecWarps - 1) / kRecWarps);
  s.units = (hidden + s.ctas - 1) / s.ctas;
  s.ctas = (hidden + s.units - 1) / s.units;  // (no CTA without units)
  return s;
}

std::size_t cluster_smem_bytes(int batch, int hidden, int units) {
  const auto h = static_cast<std::size_t>(hidden);
  const auto u = static_cast<std::size_t>(units);
  const auto bmax = static_cast<std::size_t>(rec_bmax(batch));
  return (u * 4 * h + 2 * bmax * h + u * bmax + static_cast<std::size_t>(kRecWarps) * 4 * bmax) *
         sizeof(float);
}

ClusterPlan plan_cluster(int hidden, std::uint32_t persistent_batches, const ClusterFits& fits) {
  for (const int max_ctas : {kClusterMaxCtas, kClusterPortableCtas}) {
    ClusterPlan plan;
    plan.shape = cluster_shape(hidden, max_ctas);
    if (plan.shape.ctas < 1) return ClusterPlan{};
    for (int b = 1; b <= kRecMaxBatch; ++b) {
      if (StepPlan::has(persistent_batches, b) &&
          fits(b, plan.shape.ctas, cluster_smem_bytes(b, hidden, plan.shape.units))) {
        plan.batches |= 1u << (b - 1);
      }
    }
    if (plan.batches != 0) return plan;
  }
  return ClusterPlan{};
}

StackPlan plan_stack(const std::vector<LayerShape>& layers, std::int64_t max_batch, int sms,
                     const CtasPerSm& per_sm) {
  StackPlan plan;
  if (layers.size() < 2 || layers.size() > static_cast<std::size_t>(kMaxStackLayers)) return plan;
  const int n = static_cast<int>(std::min<std::int64_t>(max_batch, kRecMaxBatch));
  for (int b = 1; b <= n; ++b) {
    for (const bool x0 : {true, false}) {
      std::size_t smem = 0;
      std::int64_t ctas = 0;
      for (std::size_t l = 0; l < layers.size(); ++l) {
        const int x_cols = l > 0 || x0 ? layers[l].ld_x : 0;
        smem = std::max(smem, persistent_smem_bytes(b, layers[l].hidden, x_cols));
        ctas += persistent_ctas(layers[l].hidden);
      }
      const int fit = per_sm(b, smem);
      if (fit >= 1 && ctas <= static_cast<std::int64_t>(fit) * sms) {
        plan.batches |= 1u << (b - 1);
        if (x0) plan.x0_batches |= 1u << (b - 1);
        break;
      }
    }
  }
  return plan;
}

}  // namespace slstm_cuda
