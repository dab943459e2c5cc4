// The CPU reference backend: plain loops whose only goal is to be obviously right. It runs
// the stack exactly as MultiRNNCell under dynamic_rnn does (time outermost, then each row,
// then each layer), accumulates dot products in double, and applies the shared gate math.
#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "backend.hpp"
#include "gate_math.hpp"

namespace slstm {
namespace {

class CpuReferenceBackend final : public Backend {
 public:
  CpuReferenceBackend(ModelPtr model, const SessionConfig& config) : model_(std::move(model)) {
    plan_.backend = "cpu";
    plan_.path = "reference";
    plan_.precision = "fp32";
    plan_.params = {{"threads", "1"}, {"accumulation", "double"}};
    for (std::size_t l = 0; l < model_->layers().size(); ++l) {
      plan_.layers.push_back({"reference", "plain loops, dot products in double (the oracle)",
                              {{"hidden", std::to_string(model_->layer(l).hidden_size)}}});
    }
    try {
      state_.resize(model_->state_count(config.max_batch));
      z_.resize(product({4, model_->max_hidden()}, "workspace"));
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
    const std::int64_t B = call.batch, T = call.time;
    const std::size_t n_state = m.state_count(B);
    if (call.initial_state) {
      std::memcpy(state_.data(), call.initial_state, n_state * sizeof(float));
    } else {
      std::fill_n(state_.begin(), n_state, 0.0f);
    }
    const std::size_t L = m.layers().size();
    auto c_off = [&](std::size_t l) { return m.state_offset(B, l, SLSTM_STATE_C); };
    auto h_off = [&](std::size_t l) { return m.state_offset(B, l, SLSTM_STATE_H); };
    const std::int64_t D = m.input_size(), H_out = m.output_size();
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t row = call.layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
        const bool active = call.lengths == nullptr || t < call.lengths[b];
        if (active) {
          const float* x = call.input + row * D;
          for (std::size_t l = 0; l < L; ++l) {
            const Layer& layer = m.layer(l);
            float* c = state_.data() + c_off(l) + b * layer.hidden_size;
            float* h = state_.data() + h_off(l) + b * layer.hidden_size;
            step_row(layer, m.forget_bias(), x, c, h);
            x = h;  // the next layer's input is this layer's new h
          }
        }
        if (call.output) {
          float* out = call.output + row * H_out;
          const float* h_last = state_.data() + h_off(L - 1) + b * H_out;
          for (std::int64_t u = 0; u < H_out; ++u) out[u] = active ? h_last[u] : 0.0f;
        }
      }
    }
    if (call.final_state) {
      std::memcpy(call.final_state, state_.data(), n_state * sizeof(float));
    }
  }

 private:
  // One cell on one row: c and h are updated in place (z is computed from the old h first).
  void step_row(const Layer& layer, float forget_bias, const float* x, float* c, float* h) {
    const std::int64_t I = layer.input_size, H = layer.hidden_size;
    for (std::int64_t r = 0; r < 4 * H; ++r) {
      double acc = layer.bias[r];
      const float* wx = layer.w_x.data() + r * I;
      for (std::int64_t k = 0; k < I; ++k) acc += static_cast<double>(x[k]) * wx[k];
      const float* wh = layer.w_h.data() + r * H;
      for (std::int64_t k = 0; k < H; ++k) acc += static_cast<double>(h[k]) * wh[k];
      z_[r] = static_cast<float>(acc);
    }
    for (std::int64_t u = 0; u < H; ++u) {
      lstm_cell(z_[kGateI * H + u], z_[kGateF * H + u], z_[kGateG * H + u], z_[kGateO * H + u],
                forget_bias, c[u], &c[u], &h[u]);
    }
  }

  ModelPtr model_;
  std::vector<float> state_;  // packed state for up to max_batch rows
  std::vector<float> z_;      // pre-activations of one row, 4 * max H
};

}  // namespace

std::unique_ptr<Backend> make_cpu_reference_backend(ModelPtr model, const SessionConfig& config) {
  return std::make_unique<CpuReferenceBackend>(std::move(model), config);
}

}  // namespace slstm
