// The CPU reference backend: plain loops whose only goal is to be obviously right. A stack
// whose layers all read forward runs exactly as MultiRNNCell under dynamic_rnn does (time
// outermost, then each row, then each layer); a stack with a reverse or bidirectional layer
// runs layer after layer over the whole sequence (docs/cells.md).  Dot products accumulate in
// double; the LSTM's pointwise math is the shared gate_math.hpp.
#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "backend.hpp"
#include "gate_math.hpp"

namespace slstm {
namespace {

// acc + sum_k a[k] * w[k], added in double in order k = 0, 1, ...
double dot(const float* a, const float* w, std::int64_t n, double acc = 0.0) {
  for (std::int64_t k = 0; k < n; ++k) acc += static_cast<double>(a[k]) * w[k];
  return acc;
}

float clip(float v, float bound) { return bound > 0.0f ? std::min(std::max(v, -bound), bound) : v; }

class CpuReferenceBackend final : public HostBackend {
 public:
  CpuReferenceBackend(ModelPtr model, const SessionConfig& config)
      : HostBackend(std::move(model)), precision_(config.precision) {
    const Model& m = *model_;
    plan_.backend = "cpu";
    plan_.path = "reference";
    plan_.precision = precision_name(precision_);
    plan_.params = {{"threads", "1"}, {"accumulation", "double"}};
    if (rounds_operands(precision_)) {
      plan_.params.push_back({"operands", std::string("weights, x, h, m and r o h rounded to ") +
                                              precision_name(precision_) +
                                              " (round to nearest even), products in double"});
    }
    layer_major_ = m.first_non_forward() >= 0;
    plan_.params.push_back({"order", layer_major_ ? "layer-major (a layer reads backwards)"
                                                  : "time-major (MultiRNNCell)"});
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      plan_.layers.push_back(
          {"reference", "plain loops, dot products in double (the oracle)",
           {{"cell", cell_name(s.cell)},
            {"direction", direction_name(s.direction)},
            {"hidden", std::to_string(s.hidden_size)}}});
    }
    try {
      // The products' weights: the model's, or their rounding (BF16, FP16), per layer and
      // direction.
      for (std::size_t l = 0; l < m.layers().size(); ++l) {
        mats_.emplace_back();
        for (int d = 0; d < m.spec(l).directions(); ++d) {
          const CellWeights& w = m.layer(l).dir(d);
          Mats mt{w.w_x.data(), w.w_h.data(), w.w_proj.data()};
          if (rounds_operands(precision_)) {
            rounded_.push_back(rounded(w.w_x));
            mt.w_x = rounded_.back().data();
            rounded_.push_back(rounded(w.w_h));
            mt.w_h = rounded_.back().data();
            rounded_.push_back(rounded(w.w_proj));
            mt.w_proj = rounded_.back().data();
          }
          mats_.back().push_back(mt);
        }
      }
      xq_.resize(static_cast<std::size_t>(std::max(m.max_width(), m.input_size())));
      hq_.resize(xq_.size());
      state_.resize(m.state_count(config.max_batch));
      const std::size_t w = static_cast<std::size_t>(m.max_width());
      z_.resize(product({4, m.max_hidden()}, "workspace"));
      zh_.resize(z_.size());
      m_.resize(static_cast<std::size_t>(m.max_hidden()));
      y_[0].resize(w);
      y_[1].resize(w);
      if (layer_major_) {
        const std::size_t n = product({config.max_batch, config.max_time, m.max_width()},
                                      "workspace (max_batch x max_time x widest layer)");
        seq_[0].resize(n);
        seq_[1].resize(n);
      }
    } catch (...) {
      rethrow_as_out_of_memory("cannot allocate the CPU workspace");
    }
    set_host_memory(held_bytes());
  }

  void forward(const ForwardCall& call) override {
    load_initial_state(call, state_.data());
    if (layer_major_) {
      forward_layer_major(call);
    } else {
      forward_time_major(call);
    }
    store_final_state(call, state_.data());
  }

 private:
  struct Mats {  // the weights of one direction's products (see the constructor)
    const float* w_x;
    const float* w_h;
    const float* w_proj;
  };

  // Row `b` of direction `d`'s state pieces of layer `l` for a batch of B: (c, h) or (h).
  struct RowState {
    float* c = nullptr;  // LSTM only
    float* h = nullptr;
  };
  RowState row_state(std::size_t l, int d, std::int64_t B, std::int64_t b) {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const int base = d * s.cell_state_parts();
    RowState r;
    for (int p = 0; p < s.cell_state_parts(); ++p) {
      float* piece = state_.data() + m.state_offset(B, l, base + p) +
                     b * m.state_layout().width(l, base + p);
      (s.state_part_kind(p) == 0 ? r.c : r.h) = piece;
    }
    return r;
  }

  // Time outermost, then each row, then each layer (every layer reads forward).
  void forward_time_major(const ForwardCall& call) {
    const Model& m = *model_;
    const std::int64_t B = call.batch, T = call.time;
    const std::size_t L = m.layers().size();
    const std::int64_t D = m.input_size(), W_out = m.output_size();
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t row = call.layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
        const bool active = call.lengths == nullptr || t < call.lengths[b];
        const float* x = call.input + row * D;
        if (active) {
          for (std::size_t l = 0; l < L; ++l) {
            float* y = y_[l % 2].data();
            step_layer_direction(l, 0, x, row_state(l, 0, B, b), y);
            add_residual(l, x, y);
            x = y;  // the next layer's input is this layer's output
          }
        }
        if (call.output) {
          float* out = call.output + row * W_out;
          for (std::int64_t u = 0; u < W_out; ++u) out[u] = active ? x[u] : 0.0f;
        }
      }
    }
  }

  // Layer after layer over the whole sequence; each direction of a layer reads every row's
  // valid part in its own order.  Sequences live in the call's layout.
  void forward_layer_major(const ForwardCall& call) {
    const Model& m = *model_;
    const std::int64_t B = call.batch, T = call.time;
    const std::size_t L = m.layers().size();
    auto row_of = [&](std::int64_t t, std::int64_t b) {
      return call.layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
    };
    const float* in = call.input;
    std::int64_t in_width = m.input_size();
    for (std::size_t l = 0; l < L; ++l) {
      const LayerSpec& s = m.spec(l);
      const std::int64_t R = s.cell_output_size(), W = s.output_size();
      float* out = seq_[l % 2].data();
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t len = call.lengths ? call.lengths[b] : T;
        for (int d = 0; d < s.directions(); ++d) {
          const bool backwards = s.direction == Direction::kReverse || d == 1;
          const RowState st = row_state(l, d, B, b);
          for (std::int64_t k = 0; k < len; ++k) {
            const std::int64_t t = backwards ? len - 1 - k : k;
            const float* x = in + row_of(t, b) * in_width;
            step_layer_direction(l, d, x, st, out + row_of(t, b) * W + d * R);
          }
        }
        for (std::int64_t t = 0; t < T; ++t) {
          float* y = out + row_of(t, b) * W;
          if (t < len) {
            add_residual(l, in + row_of(t, b) * in_width, y);
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

  void add_residual(std::size_t l, const float* x, float* y) const {
    const LayerSpec& s = model_->spec(l);
    if (!s.residual) return;
    for (std::int64_t u = 0; u < s.output_size(); ++u) y[u] += x[u];
  }

  // One cell (direction d of layer l) on one row: the state is updated in place (every
  // pre-activation is computed from the old state first) and the cell's output (width
  // cell_output_size) is written to y.
  void step_layer_direction(std::size_t l, int d, const float* x, RowState st, float* y) {
    const Model& m = *model_;
    const Layer& layer = m.layer(l);
    const LayerSpec& s = layer.spec;
    const CellWeights& w = layer.dir(d);
    const Mats& mt = mats_[l][static_cast<std::size_t>(d)];
    // The products' activation operands: x and the carried h, rounded (BF16, FP16) or not.
    const float* xp = x;
    const float* hp = st.h;
    if (rounds_operands(precision_)) {
      round_into(precision_, x, xq_.data(), static_cast<std::size_t>(s.input_size));
      round_into(precision_, st.h, hq_.data(), static_cast<std::size_t>(s.cell_output_size()));
      xp = xq_.data();
      hp = hq_.data();
    }
    if (s.cell == CellKind::kGru) {
      step_gru(s, w, mt, xp, hp, st.h);
    } else {
      step_lstm(s, w, mt, m.forget_bias(), xp, hp, st.c, st.h);
    }
    std::copy_n(st.h, s.cell_output_size(), y);
  }

  // x, hp: the products' operands (rounded in BF16/FP16 sessions); h: the state, updated.
  void step_lstm(const LayerSpec& s, const CellWeights& w, const Mats& mt, float forget_bias,
                 const float* x, const float* hp, float* c, float* h) {
    const std::int64_t I = s.input_size, H = s.hidden_size, R = s.cell_output_size();
    for (std::int64_t r = 0; r < 4 * H; ++r) {
      double acc = dot(x, mt.w_x + r * I, I, w.bias[r]);
      acc = dot(hp, mt.w_h + r * R, R, acc);
      z_[r] = static_cast<float>(acc);
    }
    if (!s.peepholes && s.cell_clip == 0.0f && s.proj_size == 0) {
      // BasicLSTMCell's arithmetic, shared with every backend (the unit's h is its m).
      for (std::int64_t u = 0; u < H; ++u) {
        lstm_cell(z_[kGateI * H + u], z_[kGateF * H + u], z_[kGateG * H + u],
                  z_[kGateO * H + u], forget_bias, c[u], &c[u], &h[u]);
      }
      return;
    }
    const float* wi = s.peepholes ? w.peep.data() : nullptr;
    const float* wf = s.peepholes ? w.peep.data() + H : nullptr;
    const float* wo = s.peepholes ? w.peep.data() + 2 * H : nullptr;
    float* m = s.proj_size > 0 ? m_.data() : h;
    for (std::int64_t u = 0; u < H; ++u) {
      const float c_prev = c[u];
      const float zi = z_[kGateI * H + u] + (wi ? wi[u] * c_prev : 0.0f);
      const float zf = z_[kGateF * H + u] + forget_bias + (wf ? wf[u] * c_prev : 0.0f);
      float cn = c_prev * sigmoidf(zf) + sigmoidf(zi) * tanhf(z_[kGateG * H + u]);
      cn = clip(cn, s.cell_clip);
      const float zo = z_[kGateO * H + u] + (wo ? wo[u] * cn : 0.0f);
      c[u] = cn;
      m[u] = tanhf(cn) * sigmoidf(zo);
    }
    if (s.proj_size > 0) {
      round_into(precision_, m, m, static_cast<std::size_t>(H));  // W_proj's operand
      for (std::int64_t p = 0; p < R; ++p) {
        h[p] = clip(static_cast<float>(dot(m, mt.w_proj + p * H, H)), s.proj_clip);
      }
    }
  }

  // x, hp: the products' operands (rounded in BF16/FP16 sessions); h: the state, updated.
  void step_gru(const LayerSpec& s, const CellWeights& w, const Mats& mt, const float* x,
                const float* hp, float* h) {
    const std::int64_t I = s.input_size, H = s.hidden_size;
    // r and z: one sum each of input part, recurrent part and both biases.
    for (std::int64_t r = 0; r < 2 * H; ++r) {
      double acc = static_cast<double>(w.bias[r]) + w.bias_h[r];
      acc = dot(x, mt.w_x + r * I, I, acc);
      acc = dot(hp, mt.w_h + r * H, H, acc);
      z_[r] = sigmoidf(static_cast<float>(acc));  // z_[0, H) = r, z_[H, 2H) = z
    }
    const float* rg = z_.data();
    const std::int64_t n0 = 2 * H;
    for (std::int64_t u = 0; u < H; ++u) {
      const float* wxn = mt.w_x + (n0 + u) * I;
      const float* whn = mt.w_h + (n0 + u) * H;
      const double xn = dot(x, wxn, I, w.bias[n0 + u]);
      if (s.reset_after) {
        const float hn = static_cast<float>(dot(hp, whn, H, w.bias_h[n0 + u]));
        zh_[u] = tanhf(static_cast<float>(xn) + rg[u] * hn);
      } else {
        // W_h,n (r o h_prev): each term's r o h rounded to float first, as a framework would
        // (and then to the precision's format: it is the product's operand).
        double acc = xn + w.bias_h[n0 + u];
        for (std::int64_t k = 0; k < H; ++k) {
          acc += static_cast<double>(round_to(precision_, rg[k] * h[k])) * whn[k];
        }
        zh_[u] = tanhf(static_cast<float>(acc));
      }
    }
    for (std::int64_t u = 0; u < H; ++u) {
      const float z = z_[H + u];
      h[u] = (1.0f - z) * zh_[u] + z * h[u];
    }
  }

  // What the session holds beside the model (the weights' rounding, the workspaces).
  std::int64_t held_bytes() const {
    std::int64_t n = slstm::held_bytes(mats_) + slstm::held_bytes(rounded_);
    for (const auto& v : mats_) n += slstm::held_bytes(v);
    for (const auto& v : rounded_) n += slstm::held_bytes(v);
    for (const auto* v : {&xq_, &hq_, &state_, &z_, &zh_, &m_, &y_[0], &y_[1], &seq_[0],
                          &seq_[1]}) {
      n += slstm::held_bytes(*v);
    }
    return n;
  }

  std::vector<float> rounded(const std::vector<float>& w) const {
    std::vector<float> r(w.size());
    round_into(precision_, w.data(), r.data(), w.size());
    return r;
  }

  Precision precision_ = Precision::kFp32;
  std::vector<std::vector<Mats>> mats_;  // [layer][direction]
  std::vector<std::vector<float>> rounded_;  // the rounded weights mats_ points into
  std::vector<float> xq_, hq_;  // a row's rounded x and h (BF16, FP16)
  bool layer_major_ = false;
  std::vector<float> state_;   // packed state for up to max_batch rows
  std::vector<float> z_;       // pre-activations (or gates) of one row, 4 * max H
  std::vector<float> zh_;      // a GRU's candidate of one row
  std::vector<float> m_;       // an LSTM's unprojected output of one row
  std::vector<float> y_[2];    // layer outputs of one row (time-major order)
  std::vector<float> seq_[2];  // layer outputs of a whole call (layer-major order)
};

}  // namespace

std::unique_ptr<Backend> make_cpu_reference_backend(ModelPtr model, const SessionConfig& config) {
  return std::make_unique<CpuReferenceBackend>(std::move(model), config);
}

}  // namespace slstm
