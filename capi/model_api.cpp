// C entry points for models: creation from weights or seeded random values, export, queries.
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

// The caller's config (read as its struct_size says) and its hidden sizes, after the checks
// every creation path needs.
struct Config {
  slstm_model_config c;
  std::vector<std::int64_t> hidden;
};
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
  require_non_null(config->hidden_sizes, "config->hidden_sizes");
  return {config_copy, std::vector<std::int64_t>(config->hidden_sizes,
                                                 config->hidden_sizes + config->num_layers)};
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
    auto model = slstm::import_model(c.c.input_size, c.hidden, c.c.forget_bias, format, tensors,
                                     num_tensors);
    *out_model = wrap(std::move(model));
  });
}

SLSTM_API slstm_status slstm_model_create_random(const slstm_model_config* config,
                                                 uint64_t seed, float scale,
                                                 slstm_model** out_model) {
  return guard([&] {
    require_non_null(out_model, "out_model");
    const Config c = read_config(config);
    *out_model =
        wrap(slstm::random_model(c.c.input_size, c.hidden, c.c.forget_bias, seed, scale));
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
    *out = m.state_count(batch);
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
    m.state_count(batch);  // the whole state must be addressable, not just this offset
    *out = m.state_offset(batch, static_cast<size_t>(layer), part);
  });
}

}  // extern "C"
