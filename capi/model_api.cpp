// C entry points for models: creation from weights or seeded random values, export, queries.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "firewall.hpp"
#include "handles.hpp"
#include "versioned.hpp"

using slstm::capi::guard;
using slstm::capi::require_non_null;

namespace {

slstm_model_config config_defaults() {
  slstm_model_config c{};
  c.struct_size = sizeof c;
  c.forget_bias = 1.0f;
  return c;
}
constexpr std::size_t kConfigV1 = SLSTM_V1_SIZE(slstm_model_config, forget_bias);

slstm_layer_config layer_defaults() {
  slstm_layer_config c{};
  c.struct_size = sizeof c;
  c.cell = SLSTM_CELL_LSTM;
  c.direction = SLSTM_DIRECTION_FORWARD;
  return c;
}
constexpr std::size_t kLayerV1 = SLSTM_V1_SIZE(slstm_layer_config, gru_reset_after);

// A 0/1 flag of the caller's, or SLSTM_ERR_INVALID_ARGUMENT naming it.
bool flag(std::int32_t v, const std::string& name) {
  if (v != 0 && v != 1) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, name + " must be 0 or 1, got " + std::to_string(v));
  }
  return v == 1;
}

// The caller's config (read as its struct_size says) and its stack, after the checks every
// creation path needs.  `specs` is empty when the stack is given by hidden_sizes (`hidden`).
struct Config {
  slstm_model_config c;
  std::vector<std::int64_t> hidden;
  std::vector<slstm::LayerSpec> specs;
};

// The caller's array of layer configs.  Its elements are the caller's sizeof apart, which is
// their struct_size (a caller built against another header has another sizeof): element 0's
// struct_size is the stride, and every element must carry the same one.
std::vector<slstm::LayerSpec> read_layers(const slstm_model_config& config) {
  std::vector<slstm::LayerSpec> specs;
  const std::uint32_t stride = config.layers[0].struct_size;
  const auto* base = reinterpret_cast<const unsigned char*>(config.layers);
  for (std::int32_t l = 0; l < config.num_layers; ++l) {
    const std::string at = "config->layers[" + std::to_string(l) + "]";
    const auto* layer = reinterpret_cast<const slstm_layer_config*>(
        base + static_cast<std::size_t>(l) * stride);
    if (l > 0 && layer->struct_size != stride) {
      slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                  at + "->struct_size is " + std::to_string(layer->struct_size) +
                      ", config->layers[0]'s is " + std::to_string(stride) +
                      ": the elements of one array have one size (initialise each with "
                      "slstm_layer_config_init)");
    }
    const slstm_layer_config c =
        slstm::capi::read_versioned(layer, kLayerV1, at.c_str(), layer_defaults());
    slstm::LayerSpec s;
    s.cell = static_cast<slstm::CellKind>(c.cell);
    s.direction = static_cast<slstm::Direction>(c.direction);
    s.hidden_size = c.hidden_size;
    s.residual = flag(c.residual, at + ".residual");
    s.peepholes = flag(c.peepholes, at + ".peepholes");
    s.cell_clip = c.cell_clip;
    s.proj_size = c.proj_size;
    s.proj_clip = c.proj_clip;
    s.reset_after = flag(c.gru_reset_after, at + ".gru_reset_after");
    specs.push_back(s);
  }
  return specs;
}

Config read_config(const slstm_model_config* given) {
  require_non_null(given, "config");
  const slstm_model_config config_copy =
      slstm::capi::read_versioned(given, kConfigV1, "config", config_defaults());
  const slstm_model_config* config = &config_copy;
  // Checked before the sizes are copied: the copy must not be the first thing that fails.
  if (config->num_layers < 1 || config->num_layers > SLSTM_MAX_LAYERS) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, "config->num_layers must be in [1, SLSTM_MAX_LAYERS = " +
                                                std::to_string(SLSTM_MAX_LAYERS) + "], got " +
                                                std::to_string(config->num_layers));
  }
  if (config->layers != nullptr) {
    if (config->hidden_sizes != nullptr) {
      slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                  "config->hidden_sizes must be NULL when config->layers is given (each layer's "
                  "hidden_size is in config->layers)");
    }
    return {config_copy, {}, read_layers(config_copy)};
  }
  require_non_null(config->hidden_sizes, "config->hidden_sizes");
  return {config_copy,
          std::vector<std::int64_t>(config->hidden_sizes, config->hidden_sizes + config->num_layers),
          {}};
}

// The stack of a config as layer specs, checked (input sizes set).
std::vector<slstm::LayerSpec> config_specs(const Config& c) {
  if (c.specs.empty()) {
    slstm::Model::check_architecture(c.c.input_size, c.hidden, c.c.forget_bias);
    return slstm::Model::basic_specs(c.c.input_size, c.hidden);
  }
  return slstm::Model::check_layers(c.c.input_size, c.specs, c.c.forget_bias);
}

slstm_layer_config layer_config(const slstm::LayerSpec& s) {
  slstm_layer_config c = layer_defaults();
  c.cell = static_cast<slstm_cell>(s.cell);
  c.hidden_size = s.hidden_size;
  c.direction = static_cast<slstm_direction>(s.direction);
  c.residual = s.residual ? 1 : 0;
  c.peepholes = s.peepholes ? 1 : 0;
  c.cell_clip = s.cell_clip;
  c.proj_size = s.proj_size;
  c.proj_clip = s.proj_clip;
  c.gru_reset_after = s.reset_after ? 1 : 0;
  return c;
}

// The caller's output struct's size, checked: at least `v1`, at most kMaxStructSize.
template <typename T>
std::size_t out_size(const T* out, std::size_t v1, const char* name) {
  const std::uint32_t size = out->struct_size;
  if (size < v1 || size > slstm::capi::kMaxStructSize) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                std::string(name) + "->struct_size is " + std::to_string(size) + ", expected " +
                    std::to_string(sizeof(T)) + " (set it to sizeof before the call)");
  }
  return size;
}

// Writes `value` into the caller's struct of `size` bytes (zeros past what we know).
template <typename T>
void write_sized(T* out, std::size_t size, T value) {
  value.struct_size = static_cast<std::uint32_t>(size);
  const std::size_t known = size < sizeof(T) ? size : sizeof(T);
  std::memcpy(out, &value, known);
  if (size > known) std::memset(reinterpret_cast<unsigned char*>(out) + known, 0, size - known);
}

slstm_model* wrap(slstm::ModelPtr model) { return new slstm_model{std::move(model)}; }

const slstm::Model& unwrap(const slstm_model* model) {
  require_non_null(model, "model");
  return *model->model;
}

}  // namespace

extern "C" {

SLSTM_API slstm_status slstm_format_tensors_per_layer(slstm_weight_format format,
                                                      int32_t* out_count) {
  return guard([&] {
    require_non_null(out_count, "out_count");
    const int n = slstm::tensors_per_layer(format);
    if (n == 0) {
      slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
    }
    *out_count = n;
  });
}

SLSTM_API void slstm_layer_config_init_sized(slstm_layer_config* layer, size_t struct_size) {
  slstm::capi::init_sized(layer, struct_size, layer_defaults());
}

SLSTM_API slstm_status slstm_format_tensors(const slstm_model_config* config,
                                            slstm_weight_format format,
                                            slstm_tensor_info* infos, size_t capacity,
                                            size_t* out_count) {
  return guard([&] {
    require_non_null(out_count, "out_count");
    const Config c = read_config(config);
    const auto tensors = slstm::format_tensors(config_specs(c), format);
    // infos NULL: the count alone, whatever the capacity (the header's promise).
    const std::size_t n = infos == nullptr ? 0 : std::min(capacity, tensors.size());
    // The elements are the caller's sizeof apart: infos[0].struct_size is the stride, and
    // every element must carry the same one (checked before anything is written).
    const std::size_t stride =
        n > 0 ? out_size(&infos[0], SLSTM_V1_SIZE(slstm_tensor_info, name), "infos[0]") : 0;
    auto* base = reinterpret_cast<unsigned char*>(infos);
    auto at = [&](std::size_t k) { return reinterpret_cast<slstm_tensor_info*>(base + k * stride); };
    for (std::size_t k = 1; k < n; ++k) {
      if (at(k)->struct_size != stride) {
        slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                    "infos[" + std::to_string(k) + "].struct_size is " +
                        std::to_string(at(k)->struct_size) + ", infos[0]'s is " +
                        std::to_string(stride) + ": set every element's to sizeof(slstm_tensor_info)");
      }
    }
    for (std::size_t k = 0; k < n; ++k) {
      slstm_tensor_info info{};
      info.layer = tensors[k].layer;
      info.direction = tensors[k].direction;
      info.ndim = tensors[k].ndim;
      for (int d = 0; d < SLSTM_MAX_DIMS; ++d) info.shape[d] = tensors[k].shape[d];
      std::snprintf(info.name, sizeof info.name, "%s", tensors[k].name.c_str());
      write_sized(at(k), stride, info);
    }
    *out_count = tensors.size();
  });
}

SLSTM_API void slstm_model_config_init_sized(slstm_model_config* config, size_t struct_size) {
  slstm::capi::init_sized(config, struct_size, config_defaults());
}

SLSTM_API void(slstm_model_config_init)(slstm_model_config* config) {
  slstm::capi::init_sized(config, kConfigV1, config_defaults());
}

SLSTM_API slstm_status slstm_model_create(const slstm_model_config* config,
                                          slstm_weight_format format,
                                          const slstm_tensor* tensors, size_t num_tensors,
                                          slstm_model** out_model) {
  return guard([&] {
    require_non_null(out_model, "out_model");
    const Config c = read_config(config);
    auto model = c.specs.empty()
                     ? slstm::import_model(c.c.input_size, c.hidden, c.c.forget_bias, format,
                                           tensors, num_tensors)
                     : slstm::import_model(c.c.input_size, c.specs, c.c.forget_bias, format,
                                           tensors, num_tensors);
    *out_model = wrap(std::move(model));
  });
}

SLSTM_API slstm_status slstm_model_create_random(const slstm_model_config* config,
                                                 uint64_t seed, float scale,
                                                 slstm_model** out_model) {
  return guard([&] {
    require_non_null(out_model, "out_model");
    const Config c = read_config(config);
    *out_model = wrap(
        c.specs.empty()
            ? slstm::random_model(c.c.input_size, c.hidden, c.c.forget_bias, seed, scale)
            : slstm::random_model(c.c.input_size, c.specs, c.c.forget_bias, seed, scale));
  });
}

SLSTM_API void slstm_model_destroy(slstm_model* model) { delete model; }

SLSTM_API slstm_status slstm_model_export(const slstm_model* model, slstm_weight_format format,
                                          const slstm_tensor_out* tensors,
                                          size_t num_tensors) {
  return guard([&] { slstm::export_model(unwrap(model), format, tensors, num_tensors); });
}

SLSTM_API slstm_status slstm_model_num_layers(const slstm_model* model, int32_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    *out = m.num_layers();
  });
}

SLSTM_API slstm_status slstm_model_input_size(const slstm_model* model, int64_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    *out = m.input_size();
  });
}

namespace {
void check_layer(const slstm::Model& m, int32_t layer) {
  if (layer < 0 || layer >= m.num_layers()) {
    slstm::fail(SLSTM_ERR_OUT_OF_RANGE, "layer must be in [0, " +
                                            std::to_string(m.num_layers()) + "), got " +
                                            std::to_string(layer));
  }
}
void check_batch(int64_t batch) {
  if (batch < 1) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, "batch must be >= 1, got " + std::to_string(batch));
  }
}
// The packed state of `batch` rows, whole, must be addressable in bytes (the queries' offsets
// and counts are then exact); the message names batch.
constexpr const char* kBatchState = "batch (rows of the packed state, in bytes)";
}  // namespace

SLSTM_API slstm_status slstm_model_hidden_size(const slstm_model* model, int32_t layer,
                                               int64_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    check_layer(m, layer);
    *out = m.layer(static_cast<size_t>(layer)).hidden_size;
  });
}

SLSTM_API slstm_status slstm_model_forget_bias(const slstm_model* model, float* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    *out = m.forget_bias();
  });
}

SLSTM_API slstm_status slstm_model_state_count(const slstm_model* model, int64_t batch,
                                               size_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    check_batch(batch);
    *out = m.state_count(batch, kBatchState);
  });
}

SLSTM_API slstm_status slstm_model_state_offset(const slstm_model* model, int64_t batch,
                                                int32_t layer, slstm_state_part part,
                                                size_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    check_batch(batch);
    check_layer(m, layer);
    if (part != SLSTM_STATE_C && part != SLSTM_STATE_H) {
      slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, "part: unknown value " + std::to_string(part));
    }
    m.state_count(batch, kBatchState);  // the whole state, not just this offset
    const int piece = m.state_layout().find(static_cast<size_t>(layer), part);
    if (piece < 0) {
      slstm::fail(SLSTM_ERR_OUT_OF_RANGE,
                  "part: layer " + std::to_string(layer) + " is a " +
                      slstm::cell_name(m.spec(static_cast<size_t>(layer)).cell) +
                      " layer, whose state has no c (use slstm_model_state_piece)");
    }
    *out = m.state_offset(batch, static_cast<size_t>(layer), piece);
  });
}

SLSTM_API slstm_status slstm_model_layer(const slstm_model* model, int32_t layer,
                                         slstm_layer_config* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    check_layer(m, layer);
    const std::size_t size = out_size(out, kLayerV1, "out");
    write_sized(out, size, layer_config(m.spec(static_cast<size_t>(layer))));
  });
}

SLSTM_API slstm_status slstm_model_output_size(const slstm_model* model, int64_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    *out = m.output_size();
  });
}

SLSTM_API slstm_status slstm_model_state_pieces(const slstm_model* model, int64_t* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    *out = m.state_layout().pieces();
  });
}

SLSTM_API slstm_status slstm_model_state_piece(const slstm_model* model, int64_t batch,
                                               int64_t index, slstm_state_piece* out) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out, "out");
    check_batch(batch);
    const slstm::StateLayout& s = m.state_layout();
    if (index < 0 || index >= s.pieces()) {
      slstm::fail(SLSTM_ERR_OUT_OF_RANGE, "index must be in [0, " + std::to_string(s.pieces()) +
                                              "), got " + std::to_string(index));
    }
    const std::size_t size = out_size(out, SLSTM_V1_SIZE(slstm_state_piece, count), "out");
    m.state_count(batch, kBatchState);
    std::int64_t k = index;
    std::size_t l = 0;
    while (k >= s.parts(l)) k -= s.parts(l++);
    const int p = static_cast<int>(k);
    slstm_state_piece piece{};
    piece.layer = static_cast<int32_t>(l);
    piece.direction = s.direction(l, p);
    piece.part = static_cast<slstm_state_part>(s.kind(l, p));
    piece.width = s.width(l, p);
    piece.offset = s.offset(batch, l, p);
    piece.count = static_cast<std::size_t>(batch) * static_cast<std::size_t>(piece.width);
    write_sized(out, size, piece);
  });
}

}  // extern "C"
