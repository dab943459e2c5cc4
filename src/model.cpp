#include "model.hpp"
#include "number_text.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace slstm {

namespace {

std::string num(std::int64_t v) { return std::to_string(v); }

// Checks one layer's fields (not its sizes' products); `at` names it ("config->layers[2]").
void check_layer_fields(const LayerSpec& s, const std::string& at) {
  if (s.cell != CellKind::kLstm && s.cell != CellKind::kGru) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".cell: unknown value " + num(static_cast<std::int32_t>(s.cell)));
  }
  if (s.direction != Direction::kForward && s.direction != Direction::kReverse &&
      s.direction != Direction::kBidirectional) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".direction: unknown value " + num(static_cast<std::int32_t>(s.direction)));
  }
  if (s.hidden_size < 1 || s.hidden_size > SLSTM_MAX_EXTENT) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".hidden_size must be in [1, SLSTM_MAX_EXTENT], got " + num(s.hidden_size));
  }
  if (s.cell == CellKind::kGru) {
    const char* lstm_only = s.peepholes           ? "peepholes"
                            : s.cell_clip != 0.0f ? "cell_clip"
                            : s.proj_size != 0    ? "proj_size"
                            : s.proj_clip != 0.0f ? "proj_clip"
                                                  : nullptr;
    if (lstm_only) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           at + "." + lstm_only + ": a GRU layer has no " + lstm_only +
               " (LSTM only); leave it at its default");
    }
    return;
  }
  if (s.reset_after) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".gru_reset_after: an LSTM layer has no reset gate (GRU only); leave it 0");
  }
  if (s.proj_size < 0 || s.proj_size > s.hidden_size) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".proj_size must be in [0, hidden_size = " + num(s.hidden_size) +
             "] (0 = no projection; a projection larger than the cell is refused), got " +
             num(s.proj_size));
  }
  if (!std::isfinite(s.cell_clip) || s.cell_clip < 0.0f) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".cell_clip must be finite and >= 0 (0 = no clipping), got " +
             float_text(s.cell_clip));
  }
  if (!std::isfinite(s.proj_clip) || s.proj_clip < 0.0f) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".proj_clip must be finite and >= 0 (0 = no clipping), got " +
             float_text(s.proj_clip));
  }
  if (s.proj_clip > 0.0f && s.proj_size == 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         at + ".proj_clip is " + float_text(s.proj_clip) +
             " but the layer has no projection (proj_size 0): nothing to clip");
  }
}

// What every stack is checked for first: its input width, its number of layers, the forget
// bias (the messages name the C API's config fields).
void check_stack(std::int64_t input_size, std::size_t num_layers, float forget_bias) {
  if (input_size < 1 || input_size > SLSTM_MAX_EXTENT) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "config->input_size must be in [1, SLSTM_MAX_EXTENT = " +
                                         std::to_string(SLSTM_MAX_EXTENT) + "], got " +
                                         std::to_string(input_size));
  }
  if (num_layers == 0 || num_layers > SLSTM_MAX_LAYERS) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "config->num_layers must be in [1, SLSTM_MAX_LAYERS = " +
                                         std::to_string(SLSTM_MAX_LAYERS) + "], got " +
                                         std::to_string(num_layers));
  }
  if (!std::isfinite(forget_bias)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "config->forget_bias must be finite");
  }
}

// Floats of one direction's weights, checked.
std::size_t cell_floats(const LayerSpec& s, const char* what) {
  const std::int64_t gh = s.gates() * s.hidden_size;  // <= 4 * 2^40: no overflow
  std::size_t n = add_size(product({gh, s.input_size}, what),
                           product({gh, s.cell_output_size()}, what), what);
  n = add_size(n, static_cast<std::size_t>(gh) * (s.cell == CellKind::kGru ? 2 : 1), what);
  if (s.peepholes) n = add_size(n, product({3, s.hidden_size}, what), what);
  if (s.proj_size > 0) n = add_size(n, product({s.proj_size, s.hidden_size}, what), what);
  return n;
}

// Model::check_layers; `sizes` names what the weight sizes come from in the messages about
// their products ("config", or "config->hidden_sizes" for a stack given by its sizes).
std::vector<LayerSpec> check_specs(std::int64_t input_size, std::vector<LayerSpec> specs,
                                   float forget_bias, const std::string& sizes) {
  check_stack(input_size, specs.size(), forget_bias);
  const std::string layer_what = sizes + " (weights of a layer)";
  const std::string total_what = sizes + " (weights)";
  const std::string bytes_what = sizes + " (weight bytes)";
  std::int64_t in = input_size;
  std::size_t total = 0;
  for (std::size_t l = 0; l < specs.size(); ++l) {
    LayerSpec& s = specs[l];
    const std::string at = "config->layers[" + std::to_string(l) + "]";
    check_layer_fields(s, at);
    s.input_size = in;
    if (s.residual && s.output_size() != in) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           at + ".residual: the residual connection adds the layer's input (width " + num(in) +
               ") to its output (width " + num(s.output_size()) + "); they must be equal");
    }
    const std::size_t cell = cell_floats(s, layer_what.c_str());
    total = add_size(total, mul_size(cell, static_cast<std::size_t>(s.directions()),
                                     total_what.c_str()),
                     total_what.c_str());
    mul_size(total, sizeof(float), bytes_what.c_str());
    in = s.output_size();
  }
  return specs;
}

void allocate(CellWeights& w, const LayerSpec& s) {
  const std::size_t gh = static_cast<std::size_t>(s.gates() * s.hidden_size);
  w.w_x.assign(gh * static_cast<std::size_t>(s.input_size), 0.0f);
  w.w_h.assign(gh * static_cast<std::size_t>(s.cell_output_size()), 0.0f);
  w.bias.assign(gh, 0.0f);
  if (s.cell == CellKind::kGru) w.bias_h.assign(gh, 0.0f);
  if (s.peepholes) w.peep.assign(static_cast<std::size_t>(3 * s.hidden_size), 0.0f);
  if (s.proj_size > 0) {
    w.w_proj.assign(static_cast<std::size_t>(s.proj_size * s.hidden_size), 0.0f);
  }
}

}  // namespace

std::vector<LayerSpec> Model::basic_specs(std::int64_t input_size,
                                          const std::vector<std::int64_t>& hidden_sizes) {
  std::vector<LayerSpec> specs(hidden_sizes.size());
  for (std::size_t l = 0; l < hidden_sizes.size(); ++l) {
    specs[l].input_size = input_size;
    specs[l].hidden_size = hidden_sizes[l];
    input_size = hidden_sizes[l];
  }
  return specs;
}

void Model::check_architecture(std::int64_t input_size,
                               const std::vector<std::int64_t>& hidden_sizes, float forget_bias) {
  check_stack(input_size, hidden_sizes.size(), forget_bias);
  for (std::size_t l = 0; l < hidden_sizes.size(); ++l) {
    const std::int64_t h = hidden_sizes[l];
    if (h < 1 || h > SLSTM_MAX_EXTENT) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, "config->hidden_sizes[" + std::to_string(l) +
                                           "] must be in [1, SLSTM_MAX_EXTENT], got " +
                                           std::to_string(h));
    }
  }
  // The sizes' products and their total, as for layer specs, named for hidden_sizes.
  check_specs(input_size, basic_specs(input_size, hidden_sizes), forget_bias,
              "config->hidden_sizes");
}

std::vector<LayerSpec> Model::check_layers(std::int64_t input_size, std::vector<LayerSpec> specs,
                                           float forget_bias) {
  return check_specs(input_size, std::move(specs), forget_bias, "config");
}

Model::Model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
             float forget_bias)
    : Model(input_size, (check_architecture(input_size, hidden_sizes, forget_bias),
                         basic_specs(input_size, hidden_sizes)),
            forget_bias) {}

Model::Model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias)
    : input_size_(input_size), forget_bias_(forget_bias) {
  specs = check_layers(input_size, std::move(specs), forget_bias);
  layers_.resize(specs.size());
  try {
    for (std::size_t l = 0; l < specs.size(); ++l) {
      Layer& layer = layers_[l];
      const LayerSpec& s = specs[l];
      max_hidden_ = std::max({max_hidden_, s.hidden_size, s.cell_output_size()});
      max_width_ = std::max({max_width_, input_size, max_hidden_, s.output_size()});
      layer.spec = s;
      layer.input_size = s.input_size;
      layer.hidden_size = s.hidden_size;
      allocate(layer, s);
      if (s.directions() == 2) allocate(layer.reverse, s);
    }
  } catch (...) {
    rethrow_as_out_of_memory("cannot allocate the model's weights");
  }
  state_layout_ = StateLayout(specs);
}

std::vector<float> Model::folded_bias(std::size_t l) const {
  std::vector<float> b(layers_[l].bias.size());
  for (std::size_t r = 0; r < b.size(); ++r) b[r] = folded_bias(l, r);
  return b;
}

std::vector<float> Model::step_bias(std::size_t l, int d) const {
  const Layer& layer = layers_[l];
  const LayerSpec& s = layer.spec;
  const std::size_t GH = static_cast<std::size_t>(s.gate_rows());
  const std::size_t H = static_cast<std::size_t>(s.hidden_size);
  std::vector<float> b(GH);
  for (std::size_t r = 0; r < GH; ++r) {
    b[r] = folded_bias(layer, r, d);
    if (s.cell == CellKind::kGru && (r < 2 * H || !s.reset_after)) b[r] += layer.dir(d).bias_h[r];
  }
  return b;
}

std::vector<float> Model::step_bias_hn(std::size_t l, int d) const {
  const Layer& layer = layers_[l];
  const LayerSpec& s = layer.spec;
  if (s.cell != CellKind::kGru || !s.reset_after) return {};
  const std::vector<float>& bh = layer.dir(d).bias_h;
  return std::vector<float>(bh.begin() + 2 * s.hidden_size, bh.end());
}

std::int64_t Model::first_non_basic() const {
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (!layers_[l].spec.is_basic_lstm()) return static_cast<std::int64_t>(l);
  }
  return -1;
}

std::int64_t Model::first_non_forward() const {
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (layers_[l].spec.direction != Direction::kForward) return static_cast<std::int64_t>(l);
  }
  return -1;
}

}  // namespace slstm
