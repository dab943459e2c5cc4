// The CPU fast path for stacks beyond BasicLSTMCell (docs/cells.md): LSTM with peepholes,
// clipping and a projection, GRU in both reset variants, reverse and bidirectional layers,
// residual connections, any mix of them.  The BasicLSTMCell fast path (fast_backend.cpp) keeps
// its fused kernels; this one trades their last factor for generality.
//
// Structure: the steps of a call run batched, every active row of a step together, as
// float32 GEMMs over weights packed once per session (blocks of 32 gate rows stored
// transposed, so that a row's 32 sums stay in registers over the whole k loop and each k adds
// one contiguous slice; the compiler vectorises it: AVX2+FMA where the CPU has it, SSE2
// otherwise), then the cell's pointwise math per row.  A stack
// whose layers all read forward runs time step by time step (MultiRNNCell's order, no
// sequence-sized workspace); one with a reverse or bidirectional layer runs layer by layer
// over the whole sequence, each direction reading every row's valid part in its own order.
// One thread.
//
// Determinism: every pre-activation is one chain of multiply-adds in increasing k (input
// part, then recurrent part) started from the bias, computed with the same instructions
// whichever rows share its step; the pointwise math is per element.  A step's result
// therefore depends only on its input, the carried state and the weights: chunked calls and
// slstm_session_step are bitwise equal to one call (tests/test_layers.cpp).
#include "generic_backend.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "../gate_math.hpp"
#include "fast_plan.hpp"

namespace slstm::cpu {
namespace {

// A weight matrix W [n, K] (rows r0..r0+n of a layer's W_x, W_h or W_proj) packed for
// gemm_rows: blocks of kBlock rows of W, each stored transposed and contiguous ([K][kBlock],
// the last block zero-padded), so that a block's k-th slice is one contiguous load and a
// row's kBlock sums stay in registers over the whole k loop.
constexpr std::int64_t kBlock = 32;

struct PackedMatrix {
  std::vector<float> data;  // [blocks][K][kBlock]
  std::int64_t K = 0, n = 0;
};

PackedMatrix pack_rows(const std::vector<float>& w, std::int64_t r0, std::int64_t n,
                       std::int64_t K) {
  PackedMatrix p;
  p.K = K;
  p.n = n;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  p.data.assign(static_cast<std::size_t>(blocks * K * kBlock), 0.0f);
  for (std::int64_t r = 0; r < n; ++r) {
    float* dst = p.data.data() + (r / kBlock) * K * kBlock + r % kBlock;
    const float* src = w.data() + (r0 + r) * K;
    for (std::int64_t k = 0; k < K; ++k) dst[k * kBlock] = src[k];
  }
  return p;
}

// z[b][0..n) += sum_k x[b][k] * W[0..n)[k], k = 0, 1, ..., K-1 in that order, for b < nb:
// every element one chain of multiply-adds in increasing k, whatever nb or the block.
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline void gemm_rows_body(float* const* z, const float* const* x, const PackedMatrix& w,
                           std::int64_t nb) {
  const std::int64_t K = w.K;
  for (std::int64_t i0 = 0; i0 < w.n; i0 += kBlock) {
    const std::int64_t valid = std::min(kBlock, w.n - i0);
    const float* __restrict blk = w.data.data() + (i0 / kBlock) * K * kBlock;
    for (std::int64_t b = 0; b < nb; ++b) {
      float acc[kBlock];
      for (std::int64_t i = 0; i < kBlock; ++i) acc[i] = i < valid ? z[b][i0 + i] : 0.0f;
      const float* __restrict xb = x[b];
      for (std::int64_t k = 0; k < K; ++k) {
        const float a = xb[k];
        const float* __restrict wk = blk + k * kBlock;
        for (std::int64_t i = 0; i < kBlock; ++i) acc[i] += a * wk[i];
      }
      for (std::int64_t i = 0; i < valid; ++i) z[b][i0 + i] = acc[i];
    }
  }
}

using GemmRows = void (*)(float* const*, const float* const*, const PackedMatrix&,
                          std::int64_t);

void gemm_rows_portable(float* const* z, const float* const* x, const PackedMatrix& w,
                        std::int64_t nb) {
  gemm_rows_body(z, x, w, nb);
}

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2,fma"))) void gemm_rows_avx2(float* const* z, const float* const* x,
                                                        const PackedMatrix& w, std::int64_t nb) {
  gemm_rows_body(z, x, w, nb);
}
#endif

float clip(float v, float bound) {
  return bound > 0.0f ? std::min(std::max(v, -bound), bound) : v;
}

// One direction's weights as the steps read them.
struct Packed {
  PackedMatrix wx;          // W_x, all G*H rows
  PackedMatrix wh;          // W_h: LSTM all 4H rows; GRU the r and z rows (2H)
  PackedMatrix wh_n;        // GRU: W_h's n rows (H)
  PackedMatrix wproj;       // LSTM with a projection: W_proj (P rows)
  std::vector<float> bias;  // [G*H]: where each chain starts (see pack())
  std::vector<float> bh_n;  // GRU reset_after: b_h of the n block [H]
  std::vector<float> peep;  // LSTM peepholes [3H]
};

Packed pack(const Model& m, std::size_t l, int d) {
  const Layer& layer = m.layer(l);
  const LayerSpec& s = layer.spec;
  const CellWeights& w = layer.dir(d);
  const std::int64_t GH = s.gate_rows(), H = s.hidden_size;
  Packed p;
  p.wx = pack_rows(w.w_x, 0, GH, s.input_size);
  if (s.cell == CellKind::kGru) {
    p.wh = pack_rows(w.w_h, 0, 2 * H, H);
    p.wh_n = pack_rows(w.w_h, 2 * H, H, H);
  } else {
    p.wh = pack_rows(w.w_h, 0, GH, s.cell_output_size());
  }
  p.bias.resize(static_cast<std::size_t>(GH));
  for (std::int64_t r = 0; r < GH; ++r) {
    p.bias[r] = m.folded_bias(layer, static_cast<std::size_t>(r), d);  // LSTM: + forget_bias on f
  }
  if (s.cell == CellKind::kGru) {
    // r, z: b_x + b_h; n: b_x (+ b_h when the reset comes first: then b_h,n is additive).
    for (std::int64_t r = 0; r < GH; ++r) {
      if (r < 2 * H || !s.reset_after) p.bias[r] += w.bias_h[r];
    }
    if (s.reset_after) p.bh_n.assign(w.bias_h.begin() + 2 * H, w.bias_h.end());
  }
  p.peep = w.peep;
  if (s.proj_size > 0) p.wproj = pack_rows(w.w_proj, 0, s.proj_size, H);
  return p;
}

class CpuGenericBackend final : public Backend {
 public:
  CpuGenericBackend(ModelPtr model, const SessionConfig& config, const KernelChoice& kernel)
      : model_(std::move(model)) {
    const Model& m = *model_;
#if defined(__GNUC__) && defined(__x86_64__)
    const bool avx2 = kernel.kernel != Kernel::kPortable;
    gemm_ = avx2 ? gemm_rows_avx2 : gemm_rows_portable;
#else
    const bool avx2 = false;
    gemm_ = gemm_rows_portable;
#endif
    layer_major_ = m.first_non_forward() >= 0;
    plan_.backend = "cpu";
    plan_.path = "fast";
    plan_.precision = "fp32";
    plan_.params = {{"threads", "1"},
                    {"kernel", avx2 ? "avx2" : "portable"},
                    {"kernel_reason", kernel.why},
                    {"order", layer_major_ ? "layer-major (a layer reads backwards)"
                                           : "time-major (MultiRNNCell)"}};
    const std::int64_t B = config.max_batch;
    try {
      for (std::size_t l = 0; l < m.layers().size(); ++l) {
        const LayerSpec& s = m.spec(l);
        plan_.layers.push_back({"generic",
                                "the fused kernels run forward BasicLSTMCell layers only; "
                                "batched float32 GEMMs over packed weights",
                                {{"cell", cell_name(s.cell)},
                                 {"direction", direction_name(s.direction)},
                                 {"hidden", std::to_string(s.hidden_size)}}});
        packed_.emplace_back();
        for (int d = 0; d < s.directions(); ++d) packed_.back().push_back(pack(m, l, d));
      }
      state_.resize(m.state_count(B));
      const std::size_t rows = static_cast<std::size_t>(B);
      z_.resize(product({B, 4, m.max_hidden()}, "workspace"));
      aux_.resize(product({B, m.max_hidden()}, "workspace"));
      y_[0].resize(product({B, m.max_width()}, "workspace"));
      y_[1].resize(y_[0].size());
      for (auto* v : {&z_ptr_, &aux_ptr_, &state_ptr_, &c_ptr_, &out_ptr_}) v->resize(rows);
      x_ptr_.resize(rows);
      aux_cptr_.resize(rows);
      rows_.resize(rows);
      if (layer_major_) {
        const std::size_t n = product({B, config.max_time, m.max_width()},
                                      "workspace (max_batch x max_time x widest layer)");
        seq_[0].resize(n);
        seq_[1].resize(n);
      }
    } catch (const std::bad_alloc&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU workspace");
    } catch (const std::length_error&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU workspace");
    }
  }

  slstm_backend kind() const override { return SLSTM_BACKEND_CPU; }

  std::unique_ptr<SlotStates> make_slot_states(std::int64_t max_slots,
                                               std::int64_t max_batch) override {
    return make_host_slot_states(*this, *model_, max_slots, max_batch);
  }

  void forward(const ForwardCall& call) override {
    const Model& m = *model_;
    const std::size_t n_state = m.state_count(call.batch);
    if (call.initial_state) {
      std::memcpy(state_.data(), call.initial_state, n_state * sizeof(float));
    } else {
      std::fill_n(state_.begin(), n_state, 0.0f);
    }
    if (layer_major_) {
      forward_layer_major(call);
    } else {
      forward_time_major(call);
    }
    if (call.final_state) std::memcpy(call.final_state, state_.data(), n_state * sizeof(float));
  }

 private:
  std::int64_t row_of(const ForwardCall& c, std::int64_t t, std::int64_t b) const {
    return c.layout == SLSTM_TIME_MAJOR ? t * c.batch + b : b * c.time + t;
  }

  // Row b's piece `kind` (0 = c, 1 = h) of direction d of layer l in a packed state of B rows.
  float* piece(std::size_t l, int d, int kind, std::int64_t B, std::int64_t b) {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const int p = d * s.cell_state_parts() + (s.cell == CellKind::kGru ? 0 : kind);
    return state_.data() + m.state_offset(B, l, p) + b * m.state_layout().width(l, p);
  }

  // One step of direction d of layer l for the n rows rows_[0..n): input x_ptr_[i], the cell's
  // output (width R) written to out_ptr_[i].
  void step(std::size_t l, int d, std::int64_t B, std::int64_t n) {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const Packed& p = packed_[l][static_cast<std::size_t>(d)];
    const std::int64_t H = s.hidden_size, GH = s.gate_rows(), R = s.cell_output_size();
    for (std::int64_t i = 0; i < n; ++i) {
      z_ptr_[i] = z_.data() + i * GH;
      std::memcpy(z_ptr_[i], p.bias.data(), static_cast<std::size_t>(GH) * sizeof(float));
      const std::int64_t b = rows_[i];
      state_ptr_[i] = piece(l, d, 1, B, b);
      c_ptr_[i] = s.cell == CellKind::kLstm ? piece(l, d, 0, B, b) : nullptr;
      aux_ptr_[i] = aux_.data() + i * H;
    }
    const float* const* h = state_ptr_.data();
    gemm_(z_ptr_.data(), x_ptr_.data(), p.wx, n);
    if (s.cell == CellKind::kLstm) {
      gemm_(z_ptr_.data(), h, p.wh, n);
      for (std::int64_t i = 0; i < n; ++i) lstm_pointwise(s, p, z_ptr_[i], c_ptr_[i], aux_ptr_[i]);
      if (s.proj_size > 0) {
        for (std::int64_t i = 0; i < n; ++i) std::fill_n(state_ptr_[i], R, 0.0f);
        for (std::int64_t i = 0; i < n; ++i) aux_cptr_[i] = aux_ptr_[i];
        gemm_(state_ptr_.data(), aux_cptr_.data(), p.wproj, n);
        if (s.proj_clip > 0.0f) {
          for (std::int64_t i = 0; i < n; ++i) {
            for (std::int64_t u = 0; u < R; ++u) state_ptr_[i][u] = clip(state_ptr_[i][u], s.proj_clip);
          }
        }
      } else {
        for (std::int64_t i = 0; i < n; ++i) std::copy_n(aux_ptr_[i], H, state_ptr_[i]);
      }
    } else {
      // r and z: the recurrent part of their chains.
      gemm_(z_ptr_.data(), h, p.wh, n);
      for (std::int64_t i = 0; i < n; ++i) {
        float* z = z_ptr_[i];
        for (std::int64_t u = 0; u < 2 * H; ++u) z[u] = sigmoidf(z[u]);
        float* a = aux_ptr_[i];
        if (s.reset_after) {
          std::copy_n(p.bh_n.data(), H, a);  // b_h,n + W_h,n h, then scaled by r
        } else {
          for (std::int64_t u = 0; u < H; ++u) a[u] = z[u] * h[i][u];  // r o h
        }
      }
      for (std::int64_t i = 0; i < n; ++i) {
        z_ptr_[i] += 2 * H;  // the n block
        aux_cptr_[i] = aux_ptr_[i];
      }
      if (s.reset_after) {
        gemm_(aux_ptr_.data(), h, p.wh_n, n);
      } else {
        gemm_(z_ptr_.data(), aux_cptr_.data(), p.wh_n, n);
      }
      for (std::int64_t i = 0; i < n; ++i) {
        float* zn = z_ptr_[i];
        const float* rz = zn - 2 * H;
        float* hh = state_ptr_[i];
        for (std::int64_t u = 0; u < H; ++u) {
          const float cand = s.reset_after ? tanhf(zn[u] + rz[u] * aux_ptr_[i][u]) : tanhf(zn[u]);
          const float upd = rz[H + u];
          hh[u] = (1.0f - upd) * cand + upd * hh[u];
        }
      }
    }
    for (std::int64_t i = 0; i < n; ++i) std::copy_n(state_ptr_[i], R, out_ptr_[i]);
  }

  // The LSTM's pointwise math on one row: c updated in place, the unprojected output into m.
  static void lstm_pointwise(const LayerSpec& s, const Packed& p, const float* z, float* c,
                             float* m) {
    const std::int64_t H = s.hidden_size;
    if (!s.peepholes && s.cell_clip == 0.0f) {
      for (std::int64_t u = 0; u < H; ++u) {
        lstm_cell(z[kGateI * H + u], z[kGateF * H + u], z[kGateG * H + u], z[kGateO * H + u],
                  0.0f, c[u], &c[u], &m[u]);  // forget_bias is in z's chain already
      }
      return;
    }
    const float* wi = s.peepholes ? p.peep.data() : nullptr;
    for (std::int64_t u = 0; u < H; ++u) {
      const float c_prev = c[u];
      const float zi = z[kGateI * H + u] + (wi ? wi[u] * c_prev : 0.0f);
      const float zf = z[kGateF * H + u] + (wi ? wi[H + u] * c_prev : 0.0f);
      float cn = c_prev * sigmoidf(zf) + sigmoidf(zi) * tanhf(z[kGateG * H + u]);
      cn = clip(cn, s.cell_clip);
      const float zo = z[kGateO * H + u] + (wi ? wi[2 * H + u] * cn : 0.0f);
      c[u] = cn;
      m[u] = tanhf(cn) * sigmoidf(zo);
    }
  }

  void add_residual(std::size_t l, const float* x, float* y) const {
    const LayerSpec& s = model_->spec(l);
    if (!s.residual) return;
    for (std::int64_t u = 0; u < s.output_size(); ++u) y[u] += x[u];
  }

  void forward_time_major(const ForwardCall& call) {
    const Model& m = *model_;
    const std::int64_t B = call.batch, T = call.time, D = m.input_size(), W = m.output_size();
    const std::size_t L = m.layers().size();
    for (std::int64_t t = 0; t < T; ++t) {
      std::int64_t n = 0;
      for (std::int64_t b = 0; b < B; ++b) {
        if (call.lengths == nullptr || t < call.lengths[b]) rows_[n++] = b;
      }
      const float* in = nullptr;
      std::int64_t in_width = D;
      for (std::size_t l = 0; l < L; ++l) {
        const std::int64_t w = m.spec(l).output_size();
        float* y = y_[l % 2].data();
        for (std::int64_t i = 0; i < n; ++i) {
          x_ptr_[i] = l == 0 ? call.input + row_of(call, t, rows_[i]) * D : in + i * in_width;
          out_ptr_[i] = y + i * w;
        }
        step(l, 0, B, n);
        for (std::int64_t i = 0; i < n; ++i) add_residual(l, x_ptr_[i], out_ptr_[i]);
        in = y;
        in_width = w;
      }
      if (call.output == nullptr) continue;
      for (std::int64_t b = 0; b < B; ++b) std::fill_n(call.output + row_of(call, t, b) * W, W, 0.0f);
      for (std::int64_t i = 0; i < n; ++i) {
        std::memcpy(call.output + row_of(call, t, rows_[i]) * W, in + i * W,
                    static_cast<std::size_t>(W) * sizeof(float));
      }
    }
  }

  void forward_layer_major(const ForwardCall& call) {
    const Model& m = *model_;
    const std::int64_t B = call.batch, T = call.time;
    const float* in = call.input;
    std::int64_t in_width = m.input_size();
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      const std::int64_t R = s.cell_output_size(), W = s.output_size();
      float* out = seq_[l % 2].data();
      for (int d = 0; d < s.directions(); ++d) {
        const bool backwards = s.direction == Direction::kReverse || d == 1;
        for (std::int64_t k = 0; k < T; ++k) {
          std::int64_t n = 0;
          for (std::int64_t b = 0; b < B; ++b) {
            const std::int64_t len = call.lengths ? call.lengths[b] : T;
            if (k >= len) continue;
            const std::int64_t t = backwards ? len - 1 - k : k;
            rows_[n] = b;
            x_ptr_[n] = in + row_of(call, t, b) * in_width;
            out_ptr_[n] = out + row_of(call, t, b) * W + d * R;
            ++n;
          }
          if (n == 0) break;  // rows' lengths only shrink the active set as k grows
          step(l, d, B, n);
        }
      }
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t len = call.lengths ? call.lengths[b] : T;
        for (std::int64_t t = 0; t < T; ++t) {
          float* y = out + row_of(call, t, b) * W;
          if (t < len) {
            add_residual(l, in + row_of(call, t, b) * in_width, y);
          } else {
            std::fill_n(y, W, 0.0f);
          }
        }
      }
      in = out;
      in_width = W;
    }
    if (call.output) {
      std::memcpy(call.output, in, static_cast<std::size_t>(B * T * in_width) * sizeof(float));
    }
  }

  ModelPtr model_;
  GemmRows gemm_ = nullptr;
  bool layer_major_ = false;
  std::vector<std::vector<Packed>> packed_;  // [layer][direction]
  std::vector<float> state_;                 // packed state of up to max_batch rows
  std::vector<float> z_;                     // pre-activations of a step's rows [B][G*H]
  std::vector<float> aux_;                   // per row [H]: m, r o h, or b_h,n + W_h,n h
  std::vector<float> y_[2];                  // layer outputs of a step's rows (time-major)
  std::vector<float> seq_[2];                // layer outputs of a call (layer-major)
  std::vector<float*> z_ptr_, aux_ptr_, state_ptr_, c_ptr_, out_ptr_;
  std::vector<const float*> x_ptr_, aux_cptr_;
  std::vector<std::int64_t> rows_;  // the batch rows of a step
};

}  // namespace
}  // namespace slstm::cpu

namespace slstm {

std::unique_ptr<Backend> make_cpu_generic_backend(ModelPtr model, const SessionConfig& config) {
  const cpu::KernelChoice kernel = cpu::choose_kernel(config.settings);
  return std::make_unique<cpu::CpuGenericBackend>(std::move(model), config, kernel);
}

}  // namespace slstm
