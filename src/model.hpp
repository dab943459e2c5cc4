// The model: architecture plus canonical weights (DESIGN §3). Immutable once built and
// shared (std::shared_ptr<const Model>) by every session made from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "layer_spec.hpp"
#include "state_layout.hpp"

namespace slstm {

// One direction's weights, in the canonical layout of docs/cells.md.
struct CellWeights {
  std::vector<float> w_x;     // [G*H, I] row-major, gate blocks in canonical order (LSTM i, f,
                              // g, o; GRU r, z, n)
  std::vector<float> w_h;     // [G*H, R], R = proj_size or H
  std::vector<float> bias;    // [G*H]; LSTM: forget_bias NOT included; GRU: b_x
  std::vector<float> bias_h;  // GRU: b_h [3H]; LSTM: empty
  std::vector<float> peep;    // LSTM with peepholes: [3H] = w_i, w_f, w_o diagonals; else empty
  std::vector<float> w_proj;  // LSTM with a projection: [P, H]; else empty
};

struct Layer : CellWeights {      // the forward (or only) direction's weights
  std::int64_t input_size = 0;   // I
  std::int64_t hidden_size = 0;  // H
  LayerSpec spec;                // everything about the layer (input_size, hidden_size too)
  CellWeights reverse;           // a bidirectional layer's reverse cell; else empty
  const CellWeights& dir(int d) const { return d == 0 ? *this : reverse; }
  CellWeights& dir(int d) { return d == 0 ? *this : reverse; }
};

class Model {
 public:
  // Validates the architecture (sizes >= 1, finite forget_bias, no overflow) and allocates
  // zeroed weights; the converters fill them before the model is shared.  A stack of forward
  // BasicLSTMCell layers of the given hidden sizes.
  Model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
        float forget_bias);
  // Any stack (docs/cells.md).  specs[l].input_size is ignored: it is set from the stack.
  Model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias);
  // The constructor's checks alone (allocates nothing): sizes within the limits, finite
  // forget_bias, weight bytes representable.
  static void check_architecture(std::int64_t input_size,
                                 const std::vector<std::int64_t>& hidden_sizes,
                                 float forget_bias);
  // The same for layer specs, whose messages name config->layers[l].<field>; returns the
  // specs with every input_size set from the stack.
  static std::vector<LayerSpec> check_layers(std::int64_t input_size,
                                             std::vector<LayerSpec> specs, float forget_bias);
  // Forward BasicLSTMCell specs of the given hidden sizes.
  static std::vector<LayerSpec> basic_specs(std::int64_t input_size,
                                            const std::vector<std::int64_t>& hidden_sizes);

  std::int64_t input_size() const { return input_size_; }
  std::int32_t num_layers() const { return static_cast<std::int32_t>(layers_.size()); }
  const Layer& layer(std::size_t l) const { return layers_[l]; }
  Layer& mutable_layer(std::size_t l) { return layers_[l]; }
  const std::vector<Layer>& layers() const { return layers_; }
  float forget_bias() const { return forget_bias_; }
  void set_forget_bias(float fb) { forget_bias_ = fb; }
  // Width of the stack's output (the last layer's output width).
  std::int64_t output_size() const { return layers_.back().spec.output_size(); }
  std::int64_t max_hidden() const { return max_hidden_; }  // max over layers of H and P
  // The widest vector of a step: the input, any layer's H, P or output width.
  std::int64_t max_width() const { return max_width_; }

  // Layer l's description (cell kind, sizes, direction, options, data types).
  const LayerSpec& spec(std::size_t l) const { return layers_[l].spec; }
  // Whether every layer is a forward BasicLSTMCell (what the fast and CUDA paths run), and
  // if not, the first layer that is not (-1 when all are).
  bool all_basic() const { return first_non_basic() < 0; }
  std::int64_t first_non_basic() const;
  // Whether a layer reads the sequence backwards (reverse or bidirectional): such a model
  // needs the whole sequence in one call.  The first such layer, or -1.
  std::int64_t first_non_forward() const;
  // Layer l's bias with forget_bias folded into the f block (bias[r] + (f ? forget_bias :
  // 0)): the one place the folding is written, for every backend and every export to a
  // format without a forget_bias of its own.
  float folded_bias(std::size_t l, std::size_t r) const {
    return folded_bias(layers_[l], r, 0);
  }
  // The same for direction `d` of layer `layer` (a GRU's bias is returned as stored).
  float folded_bias(const Layer& layer, std::size_t r, int d) const {
    const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
    const bool f = layer.spec.cell == CellKind::kLstm && r >= h && r < 2 * h;
    return layer.dir(d).bias[r] + (f ? forget_bias_ : 0.0f);
  }
  std::vector<float> folded_bias(std::size_t l) const;
  // What every step of direction d of layer l adds to its pre-activations [G*H]: LSTM the
  // folded bias; GRU b_x + b_h, except the n block's b_h when the reset comes after the
  // recurrent product (then r scales b_h,n + W_h,n h: step_bias_hn).  The generic paths'
  // bias (CPU and CUDA).
  std::vector<float> step_bias(std::size_t l, int d) const;
  // GRU with the reset after: the n block's b_h [H]; else empty.
  std::vector<float> step_bias_hn(std::size_t l, int d) const;
  // Where each layer's state lives in a packed state.
  const StateLayout& state_layout() const { return state_layout_; }
  // Floats in a packed state of `batch` rows (checked), and the offset of piece `part`
  // (StateLayout's index: for an LSTM layer 0 = c, 1 = h of the first direction) of a batch
  // whose state_count succeeded.
  std::size_t state_count(std::int64_t batch, const char* what = "state size") const {
    return state_layout_.count(batch, what);
  }
  std::size_t state_offset(std::int64_t batch, std::size_t layer, int part) const {
    return state_layout_.offset(batch, layer, part);
  }

 private:
  std::int64_t input_size_;
  std::int64_t max_hidden_ = 0;
  std::int64_t max_width_ = 0;
  float forget_bias_;
  std::vector<Layer> layers_;
  StateLayout state_layout_;
};

using ModelPtr = std::shared_ptr<const Model>;

// Format conversion (src/formats.cpp). `tensors` are validated against the architecture.
int tensors_per_layer(slstm_weight_format format);  // 0 for an unknown format (basic layers)
ModelPtr import_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, slstm_weight_format format,
                      const slstm_tensor* tensors, std::size_t num_tensors);
// Any stack: `specs` as for Model's constructor (checked there).
ModelPtr import_model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                      slstm_weight_format format, const slstm_tensor* tensors,
                      std::size_t num_tensors);
// One tensor a format takes for an architecture (slstm_format_tensors).
struct TensorInfo {
  std::int32_t layer = 0;
  std::int32_t direction = 0;  // 0 forward/only, 1 reverse half, -1 both (ONNX)
  std::int32_t ndim = 0;
  std::int64_t shape[SLSTM_MAX_DIMS] = {};
  std::string name;
};
// The tensors `format` takes for the checked stack `specs`, in API order; throws
// SLSTM_ERR_INVALID_ARGUMENT for an unknown format and SLSTM_ERR_UNSUPPORTED (naming the layer
// and field) for a layer the format cannot express.
std::vector<TensorInfo> format_tensors(const std::vector<LayerSpec>& specs,
                                       slstm_weight_format format);
void export_model(const Model& model, slstm_weight_format format,
                  const slstm_tensor_out* tensors, std::size_t num_tensors);
ModelPtr random_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, std::uint64_t seed, float scale);
// The same for any stack: `specs` as for Model's constructor (checked there).
ModelPtr random_model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                      std::uint64_t seed, float scale);

}  // namespace slstm
