// The model: architecture plus canonical weights (DESIGN §3). Immutable once built and
// shared (std::shared_ptr<const Model>) by every session made from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common.hpp"
#include "layer_spec.hpp"
#include "state_layout.hpp"

namespace slstm {

struct Layer {
  std::int64_t input_size = 0;   // I
  std::int64_t hidden_size = 0;  // H
  std::vector<float> w_x;        // [4H, I] row-major, gate blocks i, f, g, o
  std::vector<float> w_h;        // [4H, H]
  std::vector<float> bias;       // [4H], forget_bias NOT included
};

class Model {
 public:
  // Validates the architecture (sizes >= 1, finite forget_bias, no overflow) and allocates
  // zeroed weights; the converters fill them before the model is shared.
  Model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
        float forget_bias);
  // The constructor's checks alone (allocates nothing): sizes within the limits, finite
  // forget_bias, weight bytes representable.
  static void check_architecture(std::int64_t input_size,
                                 const std::vector<std::int64_t>& hidden_sizes,
                                 float forget_bias);

  std::int64_t input_size() const { return input_size_; }
  std::int32_t num_layers() const { return static_cast<std::int32_t>(layers_.size()); }
  const Layer& layer(std::size_t l) const { return layers_[l]; }
  Layer& mutable_layer(std::size_t l) { return layers_[l]; }
  const std::vector<Layer>& layers() const { return layers_; }
  float forget_bias() const { return forget_bias_; }
  void set_forget_bias(float fb) { forget_bias_ = fb; }
  std::int64_t output_size() const { return layers_.back().hidden_size; }
  std::int64_t max_hidden() const { return max_hidden_; }

  // Layer l's description (cell kind, sizes, direction, data types).
  LayerSpec spec(std::size_t l) const;
  // Layer l's bias with forget_bias folded into the f block (bias[r] + (f ? forget_bias :
  // 0)): the one place the folding is written, for every backend and every export to a
  // format without a forget_bias of its own.
  float folded_bias(std::size_t l, std::size_t r) const {
    const Layer& layer = layers_[l];
    const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
    return layer.bias[r] + (r >= h && r < 2 * h ? forget_bias_ : 0.0f);
  }
  std::vector<float> folded_bias(std::size_t l) const;
  // Where each layer's state lives in a packed state.
  const StateLayout& state_layout() const { return state_layout_; }
  // Floats in a packed state of `batch` rows (checked), and the offset of one layer's c / h
  // block (of a batch whose state_count succeeded).
  std::size_t state_count(std::int64_t batch) const { return state_layout_.count(batch); }
  std::size_t state_offset(std::int64_t batch, std::size_t layer, int part) const {
    return state_layout_.offset(batch, layer, part);
  }

 private:
  std::int64_t input_size_;
  std::int64_t max_hidden_ = 0;
  float forget_bias_;
  std::vector<Layer> layers_;
  StateLayout state_layout_;
};

using ModelPtr = std::shared_ptr<const Model>;

// Format conversion (src/formats.cpp). `tensors` are validated against the architecture.
int tensors_per_layer(slstm_weight_format format);  // 0 for an unknown format
ModelPtr import_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, slstm_weight_format format,
                      const slstm_tensor* tensors, std::size_t num_tensors);
void export_model(const Model& model, slstm_weight_format format,
                  const slstm_tensor_out* tensors, std::size_t num_tensors);
ModelPtr random_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, std::uint64_t seed, float scale);

}  // namespace slstm
