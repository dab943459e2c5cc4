#include "model.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace slstm {

void Model::check_architecture(std::int64_t input_size,
                               const std::vector<std::int64_t>& hidden_sizes, float forget_bias) {
  if (input_size < 1 || input_size > SLSTM_MAX_EXTENT) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "config->input_size must be in [1, SLSTM_MAX_EXTENT = " +
                                         std::to_string(SLSTM_MAX_EXTENT) + "], got " +
                                         std::to_string(input_size));
  }
  if (hidden_sizes.empty() || hidden_sizes.size() > SLSTM_MAX_LAYERS) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "config->num_layers must be in [1, SLSTM_MAX_LAYERS = " +
                                         std::to_string(SLSTM_MAX_LAYERS) + "], got " +
                                         std::to_string(hidden_sizes.size()));
  }
  if (!std::isfinite(forget_bias)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "config->forget_bias must be finite");
  }
  std::int64_t in = input_size;
  std::size_t total = 0;
  for (std::size_t l = 0; l < hidden_sizes.size(); ++l) {
    const std::int64_t h = hidden_sizes[l];
    if (h < 1 || h > SLSTM_MAX_EXTENT) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, "config->hidden_sizes[" + std::to_string(l) +
                                           "] must be in [1, SLSTM_MAX_EXTENT], got " +
                                           std::to_string(h));
    }
    // 4H * (I + H) floats per layer, and the running total, must fit (and be allocatable).
    const std::size_t wx = product({4, h, in}, "config->hidden_sizes (weights of a layer)");
    const std::size_t wh = product({4, h, h}, "config->hidden_sizes (weights of a layer)");
    total = add_size(total, add_size(wx, wh, "config (weights)"), "config (weights)");
    mul_size(total, sizeof(float), "config (weight bytes)");
    in = h;
  }
}

Model::Model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
             float forget_bias)
    : input_size_(input_size), forget_bias_(forget_bias) {
  check_architecture(input_size, hidden_sizes, forget_bias);
  for (std::int64_t h : hidden_sizes) max_hidden_ = std::max(max_hidden_, h);
  std::int64_t in = input_size;
  layers_.resize(hidden_sizes.size());
  try {
    for (std::size_t l = 0; l < hidden_sizes.size(); ++l) {
      Layer& layer = layers_[l];
      const std::int64_t h = hidden_sizes[l];
      layer.input_size = in;
      layer.hidden_size = h;
      layer.w_x.assign(static_cast<std::size_t>(4 * h * in), 0.0f);
      layer.w_h.assign(static_cast<std::size_t>(4 * h * h), 0.0f);
      layer.bias.assign(static_cast<std::size_t>(4 * h), 0.0f);
      in = h;
    }
  } catch (const std::bad_alloc&) {
    fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the model's weights");
  } catch (const std::length_error&) {
    fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the model's weights");
  }
  std::vector<LayerSpec> specs;
  for (std::size_t l = 0; l < layers_.size(); ++l) specs.push_back(spec(l));
  state_layout_ = StateLayout(specs);
}

std::vector<float> Model::folded_bias(std::size_t l) const {
  std::vector<float> b(layers_[l].bias.size());
  for (std::size_t r = 0; r < b.size(); ++r) b[r] = folded_bias(l, r);
  return b;
}

LayerSpec Model::spec(std::size_t l) const {
  LayerSpec s;
  s.input_size = layers_[l].input_size;
  s.hidden_size = layers_[l].hidden_size;
  return s;
}

}  // namespace slstm
