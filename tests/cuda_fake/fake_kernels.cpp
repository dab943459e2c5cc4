// Host emulations of the CUDA module's kernels (the launchers of cuda/kernels.cuh, defined
// on the GPU by cuda/kernels.cu and cuda/persistent.cu) for the fake module
// (tests/cuda_fake): each launch queues a closure on the FAKE runtime's stream
// (fake_runtime.cpp) that does what the kernel's header comment says, on the host, after
// range-checking every buffer it reads or writes, and returns cudaGetLastError() as the real
// launchers do. The persistent kernel is a model of its launch semantics: the argument
// checks, steps [t0, t1) of every layer (own-input layers included), the h parity and
// `finalize`, and a launch that would wait with timeout_ns <= 0 giving up (*status = 1, its
// results NaN).
//
// Not emulated: the kernels' own parallelism (their races, shared memory, warp reductions,
// the persistent kernel's flags and co-residency: the sync words are range-checked, never
// used), their exact rounding (sums here are in double, so results match the CPU reference
// to ~1e-6, not the GPU's bits; the fused step and the persistent kernel do share one
// arithmetic here, so tests that compare their bits still can), cudaFuncGetAttributes and
// occupancy (persistent_ctas_per_sm, fake_device_model.cpp: the formula of an H100). The
// kernels' own source runs in the module slstm_cuda_fake_sim instead (tests/cuda_sim).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "fake_device.hpp"
#include "gate_math.hpp"
#include "kernels.cuh"

namespace slstm_cuda {
namespace {

using cuda_fake::require_device;

constexpr std::size_t kF = sizeof(float);

// The bytes of `rows` rows of `cols` floats, `stride` floats apart.
std::size_t rows_bytes(std::int64_t rows, std::int64_t stride, std::int64_t cols) {
  return rows < 1 ? 0 : static_cast<std::size_t>((rows - 1) * stride + cols) * kF;
}

// The cell on pre-activations z[q] (gate order i, f, g, o): updates c, returns the new h.
float cell(const float z[4], float* c) {
  float c_next = 0.0f, h_next = 0.0f;
  slstm::lstm_cell(z[slstm::kGateI], z[slstm::kGateF], z[slstm::kGateG], z[slstm::kGateO],
                   0.0f, *c, &c_next, &h_next);
  *c = c_next;
  return h_next;
}

// acc + sum_k w[row, k] * v[k] for k < n, in double.
double dot(const float* w, std::int64_t row, std::int64_t n, const float* v, double acc = 0.0) {
  for (std::int64_t k = 0; k < n; ++k) acc += static_cast<double>(w[row * n + k]) * v[k];
  return acc;
}

// Queues `work` as the kernel `name`; returns what the launch reports.
cudaError_t launch(cudaStream_t stream, const char* name, std::function<void()> work) {
  (void)cuda_fake::enqueue(stream, name, std::move(work));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_pack_input(cudaStream_t stream, const float* src, float* dst, int batch,
                              int time, int depth, int ld, bool batch_major) {
  const std::int64_t rows = static_cast<std::int64_t>(time) * batch;
  if (rows * depth == 0) return cudaSuccess;
  return launch(stream, "pack_input", [=] {
    require_device(src, static_cast<std::size_t>(rows * depth) * kF, "pack_input src");
    require_device(dst, rows_bytes(rows, ld, depth), "pack_input dst");
    for (std::int64_t row = 0; row < rows; ++row) {  // dst row t * B + b
      const std::int64_t t = row / batch, b = row % batch;
      const std::int64_t from = batch_major ? b * time + t : row;
      for (std::int64_t k = 0; k < depth; ++k) dst[row * ld + k] = src[from * depth + k];
    }
  });
}

cudaError_t launch_fill_column(cudaStream_t stream, float* dst, std::int64_t rows, int ld,
                               int col, float value) {
  if (rows == 0) return cudaSuccess;
  return launch(stream, "fill_column", [=] {
    require_device(dst, rows_bytes(rows, ld, col + 1), "fill_column");
    for (std::int64_t r = 0; r < rows; ++r) dst[r * ld + col] = value;
  });
}

cudaError_t launch_lstm_step(cudaStream_t stream, const float* z, const float* bias, float* c,
                             float* h, float* y, std::int64_t y_stride, const std::int32_t* len,
                             int t, int batch, int hidden) {
  const std::int64_t B = batch, H = hidden;
  if (B * H == 0) return cudaSuccess;
  return launch(stream, "lstm_step", [=] {
    require_device(len, static_cast<std::size_t>(B) * sizeof(std::int32_t), "step len");
    require_device(z, static_cast<std::size_t>(B * 4 * H) * kF, "step z");
    if (bias != nullptr) require_device(bias, static_cast<std::size_t>(4 * H) * kF, "step bias");
    require_device(c, static_cast<std::size_t>(B * H) * kF, "step c");
    require_device(h, static_cast<std::size_t>(B * H) * kF, "step h");
    if (y != nullptr) require_device(y, rows_bytes(B, y_stride, H), "step y");
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t u = 0; u < H; ++u) {
        float out = 0.0f;
        if (t < len[b]) {
          float zq[4];
          for (std::int64_t q = 0; q < 4; ++q) {
            const std::int64_t r = q * H + u;
            zq[q] = bias != nullptr ? z[b * 4 * H + r] + bias[r] : z[b * 4 * H + r];
          }
          out = cell(zq, &c[b * H + u]);
          h[b * H + u] = out;
        }
        if (y != nullptr) y[b * y_stride + u] = out;
      }
    }
  });
}

cudaError_t launch_lstm_rec_step(cudaStream_t stream, const float* wh, const float* z,
                                 const float* bias, const float* h_prev, float* h_next, float* c,
                                 float* y, std::int64_t y_stride, const std::int32_t* len, int t,
                                 int batch, int hidden) {
  if (!rec_step_fits(batch, hidden)) return cudaErrorInvalidValue;
  const std::int64_t B = batch, H = hidden;
  return launch(stream, "rec_step", [=] {
    const auto state = static_cast<std::size_t>(B * H) * kF;
    require_device(wh, static_cast<std::size_t>(4 * H * H) * kF, "rec_step wh");
    require_device(len, static_cast<std::size_t>(B) * sizeof(std::int32_t), "rec_step len");
    require_device(z, static_cast<std::size_t>(B * 4 * H) * kF, "rec_step z");
    if (bias != nullptr) {
      require_device(bias, static_cast<std::size_t>(4 * H) * kF, "rec_step bias");
    }
    require_device(c, state, "rec_step c");
    require_device(h_prev, state, "rec_step h_prev");
    require_device(h_next, state, "rec_step h_next");
    if (y != nullptr) require_device(y, rows_bytes(B, y_stride, H), "rec_step y");
    const std::vector<float> hs(h_prev, h_prev + B * H);  // read before any write
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t u = 0; u < H; ++u) {
        float zq[4];
        for (std::int64_t q = 0; q < 4; ++q) {
          const std::int64_t r = q * H + u;
          zq[q] = z[b * 4 * H + r] + static_cast<float>(dot(wh, r, H, &hs[b * H]));
          if (bias != nullptr) zq[q] += bias[r];
        }
        float out = 0.0f;
        if (t < len[b]) {
          out = cell(zq, &c[b * H + u]);
          h_next[b * H + u] = out;
        } else {
          h_next[b * H + u] = hs[b * H + u];
        }
        if (y != nullptr) y[b * y_stride + u] = out;
      }
    }
  });
}

namespace {

// One step t of one layer of a persistent launch over batch B, lengths len.
void persistent_step(const PersistentLayer& L, int t, std::int64_t B, const std::int32_t* len) {
  const std::int64_t H = L.hidden, KX = L.wx != nullptr ? L.ld_x : 0;
  const auto state = static_cast<std::size_t>(B * H) * kF;
  const bool even = (t & 1) == 0;
  const float* h_prev = even ? L.h_even : L.h_odd;
  float* h_next = even ? L.h_odd : L.h_even;
  require_device(L.wh, static_cast<std::size_t>(4 * H * H) * kF, "persistent wh");
  require_device(h_prev, state, "persistent h_prev");
  require_device(h_next, state, "persistent h_next");
  require_device(L.c, state, "persistent c");
  if (L.bias != nullptr) {
    require_device(L.bias, static_cast<std::size_t>(4 * H) * kF, "persistent bias");
  }
  const float* src = KX > 0 ? L.src + t * L.src_step : nullptr;
  const float* z = KX > 0 ? nullptr : L.z + t * L.z_step;
  if (KX > 0) {
    require_device(L.wx, static_cast<std::size_t>(4 * H * KX) * kF, "persistent wx");
    require_device(src, static_cast<std::size_t>(B * KX) * kF, "persistent src");
  } else {
    require_device(z, static_cast<std::size_t>(B * 4 * H) * kF, "persistent z");
  }
  float* y = L.y != nullptr ? L.y + t * L.y_step : nullptr;
  if (y != nullptr) require_device(y, rows_bytes(B, L.y_stride, H), "persistent y");
  const std::vector<float> hs(h_prev, h_prev + B * H);
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t u = 0; u < H; ++u) {
      float zq[4];
      for (std::int64_t q = 0; q < 4; ++q) {
        const std::int64_t r = q * H + u;
        if (KX > 0) {  // [W_x | W_h] over [input row | h], one sum
          const double x_part = dot(L.wx, r, KX, &src[b * KX]);
          zq[q] = static_cast<float>(dot(L.wh, r, H, &hs[b * H], x_part));
        } else {  // launch_lstm_rec_step's arithmetic
          zq[q] = z[b * 4 * H + r] + static_cast<float>(dot(L.wh, r, H, &hs[b * H]));
        }
        if (L.bias != nullptr) zq[q] += L.bias[r];
      }
      float out = 0.0f;
      if (t < len[b]) {
        out = cell(zq, &L.c[b * H + u]);
        h_next[b * H + u] = out;
      } else {
        h_next[b * H + u] = hs[b * H + u];
      }
      if (y != nullptr) y[b * L.y_stride + u] = out;
    }
  }
}

}  // namespace

cudaError_t launch_lstm_persistent(cudaStream_t stream, const PersistentArgs& args,
                                   std::size_t smem, bool cooperative, const L2Window& window) {
  if (const cudaError_t e = cuda_fake::take_fault("lstm_persistent_kernel", nullptr);
      e != cudaSuccess) {
    return e;  // (a refused launch: cudaLaunchKernelExC's error)
  }
  if (rec_bmax(args.batch) == 0 || args.layers < 1 || args.layers > kMaxStackLayers ||
      args.t0 < 0 || args.t1 <= args.t0) {
    return cudaErrorInvalidValue;
  }
  const PersistentLayer& last = args.layer[args.layers - 1];
  if (last.hidden < 1) return cudaErrorInvalidValue;
  const int ctas = last.cta_begin + persistent_ctas(last.hidden);
  // What the kernel relies on: consecutive CTAs per layer, shared memory for each layer.
  for (int l = 0; l < args.layers; ++l) {
    const PersistentLayer& L = args.layer[l];
    const int begin = l == 0 ? 0 : args.layer[l - 1].cta_begin +
                                       persistent_ctas(args.layer[l - 1].hidden);
    if (L.cta_begin != begin) return cudaErrorInvalidValue;
    const int x_cols = L.wx != nullptr ? L.ld_x : 0;
    // The hybrid tier: resident columns of W_h only for a layer without its own projection.
    if (L.resident < -1 || L.resident > L.hidden || (L.resident >= 0 && x_cols > 0)) {
      return cudaErrorInvalidValue;
    }
    const std::size_t need = L.resident >= 0
                                 ? persistent_resident_smem_bytes(args.batch, L.hidden, L.resident)
                                 : persistent_smem_bytes(args.batch, L.hidden, x_cols);
    if (need > smem) return cudaErrorInvalidValue;
  }
  if (window.bytes > 0) {
    if (window.base == nullptr || !(window.hit_ratio > 0.0f) || window.hit_ratio > 1.0f) {
      return cudaErrorInvalidValue;
    }
    require_device(window.base, window.bytes, "persistent L2 window");
    cuda_fake::note_l2_window(window.base, window.bytes, window.hit_ratio);
  }
  if (cooperative && ctas > persistent_ctas_per_sm(args.batch, smem) * cuda_fake::kSmCount) {
    return cudaErrorNotSupported;  // (a cooperative launch too large to be resident)
  }
  // A CTA waits across steps, for the layer before it (own-input layers after the first),
  // and before a finalize that moves h back into the state's buffer.
  bool waits = args.t1 - args.t0 > 1;
  for (int l = 1; l < args.layers; ++l) waits = waits || args.layer[l].wx != nullptr;
  const bool move_back = args.finalize && ((args.t1 - 1) & 1) == 0;
  waits = waits || move_back;
  return launch(stream, "persistent", [a = args, ctas, waits, move_back] {
    const std::int64_t B = a.batch;
    require_device(a.len, static_cast<std::size_t>(B) * sizeof(std::int32_t), "persistent len");
    require_device(a.sync, persistent_sync_words(ctas) * sizeof(unsigned), "persistent sync");
    if (waits && a.timeout_ns <= 0) {  // every wait gives up at once
      require_device(a.status, sizeof(int), "persistent status", true);
      *a.status = 1;
      for (int l = 0; l < a.layers; ++l) {
        const PersistentLayer& L = a.layer[l];
        const std::int64_t n = B * L.hidden;
        for (float* p : {L.h_even, L.h_odd, L.c}) {
          require_device(p, static_cast<std::size_t>(n) * kF, "persistent state");
          for (std::int64_t i = 0; i < n; ++i) p[i] = std::numeric_limits<float>::quiet_NaN();
        }
      }
      return;
    }
    for (int t = a.t0; t < a.t1; ++t) {
      for (int l = 0; l < a.layers; ++l) persistent_step(a.layer[l], t, B, a.len);
    }
    if (move_back) {
      for (int l = 0; l < a.layers; ++l) {
        const PersistentLayer& L = a.layer[l];
        for (std::int64_t i = 0; i < B * L.hidden; ++i) L.h_even[i] = L.h_odd[i];
      }
    }
  });
}

cudaError_t launch_lstm_cluster(cudaStream_t stream, const ClusterArgs& args, int ctas,
                                std::size_t smem) {
  if (const cudaError_t e = cuda_fake::take_fault("lstm_cluster_kernel", nullptr);
      e != cudaSuccess) {
    return e;  // (a refused launch: cudaLaunchKernelExC's error)
  }
  const PersistentLayer& L = args.layer;
  if (rec_bmax(args.batch) == 0 || L.wx != nullptr || L.hidden < 1 || args.units < 1 ||
      ctas < 1 || ctas > kClusterMaxCtas ||
      static_cast<std::int64_t>(ctas) * args.units < L.hidden || args.t0 < 0 ||
      args.t1 <= args.t0 ||
      smem < cluster_smem_bytes(args.batch, L.hidden, args.units)) {
    return cudaErrorInvalidValue;
  }
  if (!cluster_launchable(args.batch, ctas, smem)) return cudaErrorNotSupported;
  // The persistent kernel's steps (the same arithmetic); the last h where the fused step's
  // parity leaves it, and in h_even too with finalize.
  return launch(stream, "cluster", [a = args] {
    const std::int64_t B = a.batch;
    require_device(a.len, static_cast<std::size_t>(B) * sizeof(std::int32_t), "cluster len");
    for (int t = a.t0; t < a.t1; ++t) persistent_step(a.layer, t, B, a.len);
    if (a.finalize && ((a.t1 - 1) & 1) == 0) {
      for (std::int64_t i = 0; i < B * a.layer.hidden; ++i) a.layer.h_even[i] = a.layer.h_odd[i];
    }
  });
}

cudaError_t launch_slot_copy(cudaStream_t stream, float* slots, float* packed,
                             const std::int64_t* ids, const std::int64_t* off, int pieces,
                             std::int64_t row_floats, int batch, bool to_packed) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * row_floats;
  if (n == 0 || pieces < 1) return cudaSuccess;
  return launch(stream, "slot_copy", [=] {
    require_device(ids, static_cast<std::size_t>(batch) * sizeof(std::int64_t), "slot ids");
    require_device(off, static_cast<std::size_t>(pieces + 1) * sizeof(std::int64_t),
                   "slot offsets");
    require_device(packed, static_cast<std::size_t>(n) * kF, "slot packed");
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t b = i / row_floats, j = i % row_floats;
      int lo = 0, hi = pieces - 1;  // the last p with off[p] <= j
      while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (off[mid] <= j) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      const std::int64_t width = off[lo + 1] - off[lo];
      float* p = packed + batch * off[lo] + b * width + (j - off[lo]);
      float* s = slots + ids[b] * row_floats + j;
      require_device(s, kF, "slot row");
      if (to_packed) {
        *p = *s;
      } else {
        *s = *p;
      }
    }
  });
}

}  // namespace slstm_cuda
