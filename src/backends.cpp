#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.hpp"
#include "cuda_module.hpp"
#include "number_text.hpp"
#if defined(SLSTM_HAVE_CPU_FAST)
#include "cpu/fast_backend.hpp"
#include "cpu/generic_backend.hpp"
#endif

namespace slstm {

namespace {

class HostSlotStates final : public SlotStates {
 public:
  HostSlotStates(Backend& backend, const Model& model, std::int64_t max_slots,
                 std::int64_t max_batch)
      : backend_(backend), layout_(model.state_layout()), row_(layout_.row_floats()) {
    const std::size_t states = product({max_slots, row_}, "options->max_slots");
    mul_size(states, sizeof(float), "options->max_slots");
    const std::size_t scratch = model.state_count(max_batch);
    try {
      states_.assign(states, 0.0f);
      scratch_.assign(scratch, 0.0f);
    } catch (...) {
      rethrow_as_out_of_memory("cannot allocate the states of options->max_slots = " +
                               std::to_string(max_slots) + " stream slots");
    }
  }

  void write(std::int64_t slot, const float* state, slstm_memory) override {
    float* dst = slot_state(slot);
    if (state == nullptr) {
      std::fill_n(dst, row_, 0.0f);
    } else {
      std::memcpy(dst, state, static_cast<std::size_t>(row_) * sizeof(float));
    }
  }

  void read(std::int64_t slot, float* state, slstm_memory) const override {
    std::memcpy(state, states_.data() + slot * row_, static_cast<std::size_t>(row_) * sizeof(float));
  }

  // The host memory the states take (host_memory_bytes).
  std::int64_t bytes() const { return held_bytes(states_) + held_bytes(scratch_); }

  void forward(const ForwardCall& call, const std::int64_t* slots) override {
    const std::int64_t B = call.batch;
    move_rows(B, slots, /*gather=*/true);
    ForwardCall c = call;
    c.initial_state = scratch_.data();
    c.final_state = scratch_.data();
    backend_.forward(c);
    move_rows(B, slots, /*gather=*/false);
  }

 private:
  float* slot_state(std::int64_t slot) { return states_.data() + slot * row_; }

  // Each piece (layer, c or h) of slot slots[i]'s state <-> row i of that piece in the
  // packed scratch state of B rows.
  void move_rows(std::int64_t B, const std::int64_t* slots, bool gather) {
    for (std::size_t l = 0; l < layout_.num_layers(); ++l) {
      for (int p = 0; p < layout_.parts(l); ++p) {
        const std::int64_t w = layout_.width(l, p);
        const std::size_t bytes = static_cast<std::size_t>(w) * sizeof(float);
        float* block = scratch_.data() + layout_.offset(B, l, p);
        for (std::int64_t i = 0; i < B; ++i) {
          float* slot_piece = slot_state(slots[i]) + layout_.row_offset(l, p);
          if (gather) {
            std::memcpy(block + i * w, slot_piece, bytes);
          } else {
            std::memcpy(slot_piece, block + i * w, bytes);
          }
        }
      }
    }
  }

  Backend& backend_;
  const StateLayout& layout_;  // the model's, which the session keeps alive
  std::int64_t row_;           // floats of one slot's state
  std::vector<float> states_;  // slot s at states_[s * row_]
  std::vector<float> scratch_;  // packed state of up to max_batch rows
};

}  // namespace

std::unique_ptr<SlotStates> make_host_slot_states(Backend& backend, const Model& model,
                                                  std::int64_t max_slots,
                                                  std::int64_t max_batch) {
  return std::make_unique<HostSlotStates>(backend, model, max_slots, max_batch);
}

std::unique_ptr<SlotStates> HostBackend::make_slot_states(std::int64_t max_slots,
                                                          std::int64_t max_batch) {
  auto slots = std::make_unique<HostSlotStates>(*this, *model_, max_slots, max_batch);
  count_host_memory(slots->bytes());
  return slots;
}

void HostBackend::set_host_memory(std::int64_t bytes) {
  host_memory_ = bytes;
  for (auto& [key, value] : plan_.params) {
    if (key == "host_memory_bytes") {
      value = std::to_string(bytes);
      return;
    }
  }
  plan_.params.emplace_back("host_memory_bytes", std::to_string(bytes));
}

void HostBackend::count_host_memory(std::int64_t bytes) { set_host_memory(host_memory_ + bytes); }

void HostBackend::load_initial_state(const ForwardCall& call, float* state) const {
  const std::size_t n = model_->state_count(call.batch);
  if (call.initial_state) {
    std::memcpy(state, call.initial_state, n * sizeof(float));
  } else {
    std::fill_n(state, n, 0.0f);
  }
}

void HostBackend::store_final_state(const ForwardCall& call, const float* state) const {
  if (call.final_state) {
    std::memcpy(call.final_state, state, model_->state_count(call.batch) * sizeof(float));
  }
}

std::unique_ptr<SlotStates> Backend::make_slot_states(std::int64_t max_slots, std::int64_t) {
  fail(SLSTM_ERR_UNSUPPORTED,
       "options->max_slots is " + std::to_string(max_slots) +
           (kind() == SLSTM_BACKEND_CUDA
                ? ": stream slots on the CUDA backend have not run on a GPU yet; the "
                  "keyed setting cuda.slots=on enables them (untested), else use max_slots "
                  "0 there, or the CPU backend"
                : ": this backend has no stream slots"));
}

void require_backend(slstm_backend kind) {
  switch (kind) {
    case SLSTM_BACKEND_CPU: return;
    case SLSTM_BACKEND_CUDA: require_cuda_backend(); return;
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "backend: unknown value " + std::to_string(kind));
}

void require_cpu_fast_path() {
#if !defined(SLSTM_HAVE_CPU_FAST)
  fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
       "options->cpu_path SLSTM_CPU_PATH_FAST: this build of libstacklstm has no CPU fast path");
#endif
}

namespace {
// "layer 2 (gru, bidirectional) is not a forward BasicLSTMCell": what CUDA does not run yet.
std::string non_basic_layer(const Model& m) {
  const auto l = static_cast<std::size_t>(m.first_non_basic());
  const LayerSpec& s = m.spec(l);
  std::string what = std::string(cell_name(s.cell)) + ", " + direction_name(s.direction);
  if (s.peepholes) what += ", peepholes";
  if (s.cell_clip > 0.0f) what += ", cell_clip";
  if (s.proj_size > 0) what += ", proj_size";
  if (s.residual) what += ", residual";
  return "layer " + std::to_string(l) + " (" + what + ") is not a forward BasicLSTMCell";
}
}  // namespace

namespace {
// The precisions a backend and path run (docs/precision.md); anything else is refused here,
// before anything is allocated: a session never runs in another precision than asked.
void require_precision(slstm_backend kind, const Model& m, const SessionConfig& config) {
  const Precision p = config.precision;
  const std::string name = std::string("options->precision ") + precision_name(p);
  if (kind == SLSTM_BACKEND_CUDA) {
    if (!rounds_operands(p)) return;
    if (config.settings.cuda_generic == Settings::Generic::kOff) {
      fail(SLSTM_ERR_UNSUPPORTED,
           name + ": on the CUDA backend BF16 and FP16 run on the generic path only, which "
                  "the keyed setting cuda.generic=on enables (not yet run on a GPU); the CPU "
                  "backend runs them too");
    }
  } else if (p == Precision::kTf32) {
    fail(SLSTM_ERR_UNSUPPORTED, name + ": TF32 is a CUDA tensor-core format; the CPU backend "
                                       "runs FP32, BF16 and FP16");
  }
  if (p == Precision::kFp16) {
    // A weight beyond binary16's range would become inf in every product it enters.
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const Layer& layer = m.layer(l);
      for (int d = 0; d < layer.spec.directions(); ++d) {
        const CellWeights& w = layer.dir(d);
        const std::pair<const char*, const std::vector<float>*> mats[] = {
            {"W_x", &w.w_x}, {"W_h", &w.w_h}, {"W_proj", &w.w_proj}};
        for (const auto& [what, v] : mats) {
          for (std::size_t k = 0; k < v->size(); ++k) {
            if (std::fabs((*v)[k]) >= kFp16Overflow) {
              fail(SLSTM_ERR_UNSUPPORTED,
                   name + ": layer " + std::to_string(l) + (d ? " (reverse)" : "") + " " +
                       what + " element " + std::to_string(k) + " is " +
                       float_text((*v)[k]) + ", beyond binary16's range (65504)");
            }
          }
        }
      }
    }
  }
}
}  // namespace

std::unique_ptr<Backend> make_backend(slstm_backend kind, ModelPtr model,
                                      const SessionConfig& config) {
  require_backend(kind);
  require_precision(kind, *model, config);
  if (!model->all_basic()) {
    // docs/cells.md, "Where each feature runs".
    if (kind == SLSTM_BACKEND_CUDA) {
      if (config.settings.cuda_generic != Settings::Generic::kOff) {
        return make_cuda_backend(std::move(model), config);  // the generic path
      }
      fail(SLSTM_ERR_UNSUPPORTED,
           "backend SLSTM_BACKEND_CUDA runs forward BasicLSTMCell stacks by default, and " +
               non_basic_layer(*model) +
               " (the keyed setting cuda.generic=on runs every stack on CUDA's generic path, "
               "not yet run on a GPU; the CPU backend runs every stack)");
    }
    if (config.cpu_path == SLSTM_CPU_PATH_REFERENCE) {
      return make_cpu_reference_backend(std::move(model), config);
    }
#if defined(SLSTM_HAVE_CPU_FAST)
    if (config.cpu_path == SLSTM_CPU_PATH_AUTO || config.cpu_path == SLSTM_CPU_PATH_FAST) {
      return make_cpu_generic_backend(std::move(model), config);
    }
#else
    if (config.cpu_path == SLSTM_CPU_PATH_AUTO) {
      return make_cpu_reference_backend(std::move(model), config);
    }
#endif
  }
  if (kind == SLSTM_BACKEND_CUDA) return make_cuda_backend(std::move(model), config);
  switch (config.cpu_path) {
#if defined(SLSTM_HAVE_CPU_FAST)
    case SLSTM_CPU_PATH_AUTO:
    case SLSTM_CPU_PATH_FAST: return make_cpu_fast_backend(std::move(model), config);
    case SLSTM_CPU_PATH_REFERENCE: return make_cpu_reference_backend(std::move(model), config);
#else
    case SLSTM_CPU_PATH_AUTO:
    case SLSTM_CPU_PATH_REFERENCE: return make_cpu_reference_backend(std::move(model), config);
    case SLSTM_CPU_PATH_FAST: require_cpu_fast_path(); break;
#endif
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "options->cpu_path: unknown value " +
                                       std::to_string(config.cpu_path));
}

}  // namespace slstm
