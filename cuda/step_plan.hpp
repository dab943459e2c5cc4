// The arithmetic of the CUDA backend's step plan: which recurrent step path may run a layer
// for a batch, and what the small-batch kernels need (threads, shared memory, CTAs). Plain
// C++ (no CUDA header): the module's planning uses it with the device's occupancy, and the
// CPU test suite checks it with a model of a device (tests/cuda_host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace slstm_cuda {

// The small-batch kernels (the fused step, the persistent kernel): 256 threads, one warp
// per hidden unit, so a block or CTA serves kRecWarps units.
constexpr int kRecThreads = 256;
constexpr int kRecWarps = kRecThreads / 32;
// The fused step stages h_prev in at most this much shared memory (no opt-in needed).
constexpr std::size_t kRecMaxSmem = 48 * 1024;
// The largest batch of the small-batch kernels, and of a whole-stack persistent launch.
constexpr int kRecMaxBatch = 16;
constexpr int kMaxStackLayers = 8;
// Words between two CTAs' flags in the persistent kernel's sync buffer: one 128-byte line.
constexpr int kPersistFlagStride = 32;

// The kernels' batch capacity for `batch` rows (1, 2, 4, 8 or 16; 0 above 16).
inline int rec_bmax(int batch) {
  return batch <= 1 ? 1 : batch <= 2 ? 2 : batch <= 4 ? 4 : batch <= 8 ? 8 : batch <= 16 ? 16 : 0;
}

// The fused step's shared memory for a batch capacity and H, and whether it runs (batch,
// hidden): batch <= 16 and its shared memory within kRecMaxSmem.
std::size_t rec_smem_bytes(int bmax, int hidden);
bool rec_step_fits(int batch, int hidden);
// Where the fused step beat cuBLAS + the step kernel on an H100 (bench/results/
// gpu-fused-step.md): everywhere the recurrent GEMM is small (seed: 5.4x); not where
// streaming W_h dominates (B <= 2 with large H, B >= 3 with the largest H), there cuBLAS's
// GEMV-like kernels read it faster.
bool rec_step_preferred(int batch, int hidden, bool tf32);

// Which recurrent step a layer runs for a batch of b rows: the fused kernel where bit b-1 of
// fused_batches is set, else a cuBLAS GEMM + the step kernel; with cuda.persistent, where
// bit b-1 of persistent_batches is set, the persistent kernel (one launch per chunk, the
// fused step's numbers bit for bit; should it fail, those batches run the fused step).
struct StepPlan {
  static constexpr int kPlannedBatches = 32;
  std::uint32_t fused_batches = 0;
  std::uint32_t persistent_batches = 0;
  // cuda.cluster=on: the persistent batches whose launch is ONE thread-block cluster of
  // cluster_ctas CTAs, each with cluster_units units (plan_cluster).
  std::uint32_t cluster_batches = 0;
  int cluster_ctas = 0;
  int cluster_units = 0;
  // cuda.hybrid=on: the persistent batches of the hybrid tier (plan_hybrid), whose CTAs hold
  // the first hybrid_resident columns of their W_h rows in shared memory.
  std::uint32_t hybrid_batches = 0;
  int hybrid_resident = 0;
  static bool has(std::uint32_t mask, int batch) {
    return batch >= 1 && batch <= kPlannedBatches && ((mask >> (batch - 1)) & 1u) != 0;
  }
  bool fused(int batch) const { return has(fused_batches, batch); }
  bool persistent(int batch) const { return has(persistent_batches, batch); }
  bool cluster(int batch) const { return has(cluster_batches, batch); }
  bool hybrid(int batch) const { return has(hybrid_batches, batch); }
};

// The fused-step plan of a layer of `hidden` units for batches up to max_batch: fused_mode
// 0 never, 1 where rec_step_preferred, 2 wherever it fits.
StepPlan plan_steps(int hidden, int fused_mode, bool tf32, std::int64_t max_batch);

// The persistent kernel: CTAs of a layer, unsigned words of a launch's flags, and the dynamic
// shared memory of a CTA of a layer (its units' rows of [W_x | W_h] -- x_cols = 0: W_h only
// --, the staged [input | h] rows, the reduction).
int persistent_ctas(int hidden);
std::size_t persistent_sync_words(int ctas);
std::size_t persistent_smem_bytes(int batch, int hidden, int x_cols);
// The same for a layer of the hybrid tier (x_cols 0): `resident` of the H columns of each of
// its W_h rows in shared memory (the rest read from global memory every step).
std::size_t persistent_resident_smem_bytes(int batch, int hidden, int resident);

// What the persistent plans need of a layer, and of the device: how many CTAs of the batch's
// kernel with `smem` bytes of shared memory each one SM holds at once (0: none).
struct LayerShape {
  int hidden = 0;
  int ld_x = 0;  // the row length of its augmented input (input size + 1, padded to 4)
};
using CtasPerSm = std::function<int(int batch, std::size_t smem)>;

// cuda.persistent: per layer, the batches b <= min(max_batch, 16) whose steps run in
// per-layer persistent launches: where the fused step also fits (the fallback, the same
// bits) and the device holds the layer's CTAs, first layer to last while the SMs their CTAs
// take add up to at most `sms` (so that the layers of a wavefront are resident together).
std::vector<std::uint32_t> plan_persistent(const std::vector<LayerShape>& layers,
                                           std::int64_t max_batch, int sms,
                                           const CtasPerSm& per_sm);

// cuda.hybrid=on: the persistent kernel also for layers plan_persistent leaves out (`full`:
// its masks) because their CTAs with all of W_h do not fit the device. Per batch b <=
// min(max_batch, 16) where the fused step fits, after the layers of `full` have taken their
// SMs, first layer to last: a layer's CTAs share the SMs left, k = ceil(CTAs / SMs left) to
// an SM, each with the largest `resident` (columns of each W_h row in shared memory, 0..H)
// for which the device holds k of them; the layer takes ceil(CTAs / k) SMs. A layer's
// resident columns are the least over its batches (one shape per layer); none where even 0
// does not fit. The rest of each row is read from global memory every step (through L2,
// with an L2-persisting window where the device has one).
struct HybridPlan {
  std::uint32_t batches = 0;
  int resident = 0;
};
std::vector<HybridPlan> plan_hybrid(const std::vector<LayerShape>& layers,
                                    const std::vector<std::uint32_t>& full,
                                    std::int64_t max_batch, int sms, const CtasPerSm& per_sm);

// cuda.persistent=on, 2 to kMaxStackLayers layers: the batches b <= min(max_batch, 16) for
// which the whole stack is ONE persistent launch (every layer's CTAs resident at once, each
// with the shared memory of the largest: layers >= 1 hold [W_x | W_h]), and those for which
// layer 0 holds its [W_x | W_h] too (x0: no input GEMM before the launch) -- preferred where
// both fit.
struct StackPlan {
  std::uint32_t batches = 0;
  std::uint32_t x0_batches = 0;
};
StackPlan plan_stack(const std::vector<LayerShape>& layers, std::int64_t max_batch, int sms,
                     const CtasPerSm& per_sm);

// ---- The cluster tier of the persistent kernel (cuda.cluster=on; persistent_cluster.cu): a
// layer on ONE thread-block cluster of at most kClusterMaxCtas CTAs (16: the non-portable
// size Hopper allows; 8 is portable), `units` units per CTA (its 8 warps take them in turn),
// W_h's rows of its units in shared memory, h pushed into every CTA's shared memory and one
// cluster barrier per step instead of the grid's step flags.
constexpr int kClusterMaxCtas = 16;
constexpr int kClusterPortableCtas = 8;
struct ClusterShape {
  int ctas = 0;
  int units = 0;  // per CTA; the last CTA may have fewer
};
// The cluster of a layer of `hidden` units with at most max_ctas CTAs: a CTA per kRecWarps
// units while there are fewer than max_ctas of them, else max_ctas sharing the units evenly.
ClusterShape cluster_shape(int hidden, int max_ctas);
// A CTA's dynamic shared memory: its units' four rows of W_h, h of every batch row twice
// (this step's and the next, written by the cluster's CTAs), c of its units, the reduction.
std::size_t cluster_smem_bytes(int batch, int hidden, int units);
// Whether the device launches one cluster of `ctas` CTAs of the batch's kernel with `smem`
// bytes of dynamic shared memory each.
using ClusterFits = std::function<bool(int batch, int ctas, std::size_t smem)>;
// The layer's cluster plan among its persistent batches: the shape of kClusterMaxCtas CTAs
// where the device launches it for some batch, else of kClusterPortableCtas; the batches it
// launches for. Nothing (batches 0) where neither does.
struct ClusterPlan {
  std::uint32_t batches = 0;
  ClusterShape shape;
};
ClusterPlan plan_cluster(int hidden, std::uint32_t persistent_batches, const ClusterFits& fits);

// ---- The persistent kernel's waits (used by the kernel itself, and by the CPU tests'
// simulation of its CTAs under arbitrary schedules). A launch runs `layers` layers on
// consecutive CTAs (begin(i): the first CTA of layer i; `ctas` in all) for steps [t0, t1).
#if defined(__CUDACC__)
#define SLSTM_HOST_DEVICE __host__ __device__
#else
#define SLSTM_HOST_DEVICE
#endif

// The layer of CTA `cta`: the last whose first CTA is at or before it.
template <typename Begin>
SLSTM_HOST_DEVICE inline int persistent_layer_of(Begin begin, int layers, int cta) {
  int li = 0;
  for (int i = 1; i < layers; ++i) {
    if (cta >= begin(i)) li = i;
  }
  return li;
}

// What a CTA of layer li waits for before step t: every flag of CTAs [own_begin, own_end)
// at least own_step (its layer done with step t - 1: they have read the h buffer step t
// overwrites and written the one it reads; nothing at the launch's first step), and every
// flag of [prev_begin, prev_end) at least prev_step (the layer below, when it runs in the
// launch and feeds this layer's own input projection, done with step t: its output row t is
// written). A flag holds the number of steps its CTA has published.
struct PersistentWait {
  int own_begin = 0, own_end = 0;
  unsigned own_step = 0;
  int prev_begin = 0, prev_end = 0;
  unsigned prev_step = 0;
  SLSTM_HOST_DEVICE bool any() const { return own_end > own_begin || prev_end > prev_begin; }
};
template <typename Begin>
SLSTM_HOST_DEVICE inline PersistentWait persistent_wait(Begin begin, int layers, int ctas, int li,
                                                        bool own_input, int t, int t0) {
  PersistentWait w;
  w.own_begin = begin(li);
  w.own_end = t > t0 ? (li + 1 < layers ? begin(li + 1) : ctas) : w.own_begin;
  w.own_step = static_cast<unsigned>(t);
  w.prev_begin = own_input && li > 0 ? begin(li - 1) : w.own_begin;
  w.prev_end = w.own_begin;
  w.prev_step = static_cast<unsigned>(t + 1);
  return w;
}

// The last wait of a launch that ends the call with the last h in h_odd (finalize): its
// layer's CTAs all done with step t1 - 1, so that none reads h_even any more.
template <typename Begin>
SLSTM_HOST_DEVICE inline PersistentWait persistent_final_wait(Begin begin, int layers, int ctas,
                                                              int li, int t1) {
  PersistentWait w;
  w.own_begin = begin(li);
  w.own_end = li + 1 < layers ? begin(li + 1) : ctas;
  w.own_step = static_cast<unsigned>(t1);
  w.prev_begin = w.prev_end = w.own_begin;
  return w;
}

}  // namespace slstm_cuda
