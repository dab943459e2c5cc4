// C entry points for interop: ONNX node checks and safetensors model files.
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../src/model_file.hpp"
#include "firewall.hpp"
#include "handles.hpp"
#include "versioned.hpp"

using slstm::capi::guard;
using slstm::capi::require_non_null;

namespace {

const slstm::Model& unwrap(const slstm_model* model) {
  require_non_null(model, "model");
  return *model->model;
}

std::string lower(const char* s) {
  std::string out;
  for (; *s; ++s) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(*s))));
  return out;
}

std::string layout_arg(const char* source_layout) {
  return source_layout == nullptr ? std::string("canonical") : std::string(source_layout);
}

slstm_onnx_lstm_node node_defaults() {
  slstm_onnx_lstm_node n{};
  n.struct_size = sizeof n;
  return n;
}
constexpr std::size_t kNodeV1 = SLSTM_V1_SIZE(slstm_onnx_lstm_node, peepholes);

slstm_onnx_gru_node gru_node_defaults() {
  slstm_onnx_gru_node n{};
  n.struct_size = sizeof n;
  return n;
}
constexpr std::size_t kGruNodeV1 = SLSTM_V1_SIZE(slstm_onnx_gru_node, activations);

// The node's direction attribute (NULL: forward); INVALID_ARGUMENT for what ONNX does not define.
slstm_direction node_direction(const char* direction) {
  if (direction == nullptr) return SLSTM_DIRECTION_FORWARD;
  const std::string d = lower(direction);
  if (d == "forward") return SLSTM_DIRECTION_FORWARD;
  if (d == "reverse") return SLSTM_DIRECTION_REVERSE;
  if (d == "bidirectional") return SLSTM_DIRECTION_BIDIRECTIONAL;
  slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, std::string("node->direction is \"") + direction +
                                              "\": ONNX defines forward, reverse and bidirectional");
}

// The node's activations: absent, or `want` once per direction (any case).
void check_activations(int32_t count, const char* const* activations,
                       const std::vector<std::string>& want, slstm_direction direction) {
  if (count < 0 || (count > 0 && activations == nullptr)) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                "node->activations: NULL or a negative count (" + std::to_string(count) + ")");
  }
  if (count == 0) return;
  const auto n = static_cast<int32_t>(want.size());
  if (count == 2 * n && direction != SLSTM_DIRECTION_BIDIRECTIONAL) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                "node->activations: " + std::to_string(count) +
                    " entries, but the node is not bidirectional");
  }
  bool ok = count == n || count == 2 * n;
  for (int32_t k = 0; ok && k < count; ++k) {
    ok = activations[k] != nullptr && lower(activations[k]) == want[static_cast<std::size_t>(k % n)];
  }
  if (!ok) {
    std::string list;
    for (const std::string& w : want) list += (list.empty() ? "" : ", ") + w;
    slstm::fail(SLSTM_ERR_UNSUPPORTED,
                "node->activations: only the default (" + list + " per direction) is supported");
  }
}

// Writes the caller's out->struct_size bytes of c (out initialised by slstm_layer_config_init).
void write_layer(const slstm_layer_config& layer, slstm_layer_config* out) {
  if (out->struct_size < SLSTM_V1_SIZE(slstm_layer_config, gru_reset_after) ||
      out->struct_size > slstm::capi::kMaxStructSize) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                "out->struct_size is " + std::to_string(out->struct_size) +
                    " (initialise it with slstm_layer_config_init)");
  }
  slstm_layer_config c = layer;
  const std::size_t size = out->struct_size;
  c.struct_size = static_cast<std::uint32_t>(size);
  std::memcpy(out, &c, size < sizeof c ? size : sizeof c);
  if (size > sizeof c) {
    std::memset(reinterpret_cast<unsigned char*>(out) + sizeof c, 0, size - sizeof c);
  }
}

void check_hidden_size(int64_t hidden_size) {
  if (hidden_size < 1 || hidden_size > SLSTM_MAX_EXTENT) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, "hidden_size must be in [1, SLSTM_MAX_EXTENT], got " +
                                                std::to_string(hidden_size));
  }
}

}  // namespace

extern "C" {

SLSTM_API void slstm_onnx_lstm_node_init_sized(slstm_onnx_lstm_node* node, size_t struct_size) {
  slstm::capi::init_sized(node, struct_size, node_defaults());
}

SLSTM_API void(slstm_onnx_lstm_node_init)(slstm_onnx_lstm_node* node) {
  slstm::capi::init_sized(node, kNodeV1, node_defaults());
}

SLSTM_API void slstm_onnx_gru_node_init_sized(slstm_onnx_gru_node* node, size_t struct_size) {
  slstm::capi::init_sized(node, struct_size, gru_node_defaults());
}

}  // extern "C"

namespace {

// What every ONNX LSTM node this library imports must not have: clip (it clips the gates'
// inputs, another function than TF's cell_clip), input_forget, activations other than the
// default.  `node` is the caller's, already read as its struct_size says.
void check_node_common(const slstm_onnx_lstm_node* node) {
  if (node->has_clip != 0) {
    slstm::fail(SLSTM_ERR_UNSUPPORTED,
                "node->clip: the node clips its cell input (clip attribute); this library "
                "computes unclipped LSTM cells");
  }
  if (node->input_forget != 0) {
    slstm::fail(SLSTM_ERR_UNSUPPORTED,
                "node->input_forget is " + std::to_string(node->input_forget) +
                    ": coupled input and forget gates are not supported");
  }
  if (node->num_activations < 0 || (node->num_activations > 0 && node->activations == nullptr)) {
    slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                "node->activations: NULL or a negative count (" +
                    std::to_string(node->num_activations) + ")");
  }
  if (node->num_activations > 0) {
    // Sigmoid, Tanh, Tanh per direction (a bidirectional node lists 6).
    static const char* const want[3] = {"sigmoid", "tanh", "tanh"};
    bool ok = node->num_activations == 3 || node->num_activations == 6;
    for (int k = 0; ok && k < node->num_activations; ++k) {
      ok = node->activations[k] != nullptr && lower(node->activations[k]) == want[k % 3];
    }
    if (!ok) {
      slstm::fail(SLSTM_ERR_UNSUPPORTED,
                  "node->activations: only Sigmoid, Tanh, Tanh (the default) is supported");
    }
  }
}

}  // namespace

extern "C" {

SLSTM_API slstm_status slstm_onnx_check_node(const slstm_onnx_lstm_node* node) {
  return guard([&] {
    require_non_null(node, "node");
    const slstm_onnx_lstm_node node_copy =
        slstm::capi::read_versioned(node, kNodeV1, "node", node_defaults());
    node = &node_copy;
    if (node->direction != nullptr && lower(node->direction) != "forward") {
      slstm::fail(SLSTM_ERR_UNSUPPORTED,
                  std::string("node->direction is \"") + node->direction +
                      "\": only \"forward\" is supported by a hidden_sizes stack (describe "
                      "the layer with slstm_onnx_lstm_node_layer instead)");
    }
    if (node->num_activations == 6) {
      slstm::fail(SLSTM_ERR_UNSUPPORTED,
                  "node->activations: 6 entries are a bidirectional node's; a hidden_sizes "
                  "stack is forward only (use slstm_onnx_lstm_node_layer)");
    }
    check_node_common(node);
    if (node->peepholes != nullptr) {
      const slstm_tensor& p = *node->peepholes;
      if (p.data == nullptr) slstm::fail(SLSTM_ERR_INVALID_ARGUMENT, "node->peepholes->data is NULL");
      if (p.ndim < 1 || p.ndim > SLSTM_MAX_DIMS) {
        slstm::fail(SLSTM_ERR_SHAPE_MISMATCH, "node->peepholes->ndim must be in 1..4");
      }
      std::size_t n = 1;
      for (int32_t d = 0; d < p.ndim; ++d) {
        n = slstm::mul_size(n, slstm::product({p.shape[d]}, "node->peepholes->shape"),
                            "node->peepholes->shape");
      }
      for (std::size_t k = 0; k < n; ++k) {
        if (p.data[k] != 0.0f) {
          slstm::fail(SLSTM_ERR_UNSUPPORTED,
                      "node->peepholes: element " + std::to_string(k) +
                          " is non-zero; a hidden_sizes stack has no peepholes (use "
                          "slstm_onnx_lstm_node_layer)");
        }
      }
    }
  });
}

SLSTM_API slstm_status slstm_onnx_lstm_node_layer(const slstm_onnx_lstm_node* node,
                                                  int64_t hidden_size,
                                                  slstm_layer_config* out) {
  return guard([&] {
    require_non_null(node, "node");
    require_non_null(out, "out");
    const slstm_onnx_lstm_node node_copy =
        slstm::capi::read_versioned(node, kNodeV1, "node", node_defaults());
    node = &node_copy;
    check_node_common(node);
    const slstm_direction direction = node_direction(node->direction);
    if (node->num_activations == 6 && direction != SLSTM_DIRECTION_BIDIRECTIONAL) {
      slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                  "node->activations: 6 entries, but the node is not bidirectional");
    }
    check_hidden_size(hidden_size);
    slstm_layer_config c{};
    c.cell = SLSTM_CELL_LSTM;
    c.hidden_size = hidden_size;
    c.direction = direction;
    c.peepholes = node->peepholes != nullptr ? 1 : 0;
    write_layer(c, out);
  });
}

SLSTM_API slstm_status slstm_onnx_gru_node_layer(const slstm_onnx_gru_node* node,
                                                 int64_t hidden_size, slstm_layer_config* out) {
  return guard([&] {
    require_non_null(node, "node");
    require_non_null(out, "out");
    const slstm_onnx_gru_node n =
        slstm::capi::read_versioned(node, kGruNodeV1, "node", gru_node_defaults());
    const slstm_direction direction = node_direction(n.direction);
    if (n.has_clip != 0) {
      slstm::fail(SLSTM_ERR_UNSUPPORTED,
                  "node->clip: the node clips its gates' inputs (clip attribute); this library "
                  "computes unclipped GRU cells");
    }
    if (n.linear_before_reset != 0 && n.linear_before_reset != 1) {
      slstm::fail(SLSTM_ERR_INVALID_ARGUMENT,
                  "node->linear_before_reset must be 0 or 1, got " +
                      std::to_string(n.linear_before_reset));
    }
    check_activations(n.num_activations, n.activations, {"sigmoid", "tanh"}, direction);
    check_hidden_size(hidden_size);
    slstm_layer_config c{};
    c.cell = SLSTM_CELL_GRU;
    c.hidden_size = hidden_size;
    c.direction = direction;
    c.gru_reset_after = static_cast<int32_t>(n.linear_before_reset);
    write_layer(c, out);
  });
}

SLSTM_API slstm_status slstm_model_file_size(const slstm_model* model,
                                             const char* source_layout, size_t* out_size) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(out_size, "out_size");
    *out_size = slstm::model_file_size(m, layout_arg(source_layout));
  });
}

SLSTM_API slstm_status slstm_model_save_memory(const slstm_model* model,
                                               const char* source_layout, void* buf,
                                               size_t capacity, size_t* out_size) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(buf, "buf");
    const size_t n = slstm::write_model_image(m, layout_arg(source_layout),
                                              static_cast<unsigned char*>(buf), capacity);
    if (out_size != nullptr) *out_size = n;
  });
}

SLSTM_API slstm_status slstm_model_save_file(const slstm_model* model, const char* path,
                                             const char* source_layout) {
  return guard([&] {
    const auto& m = unwrap(model);
    require_non_null(path, "path");
    slstm::save_model_file(m, path, layout_arg(source_layout));
  });
}

SLSTM_API slstm_status slstm_model_load_memory(const void* data, size_t size,
                                               slstm_model** out_model) {
  return guard([&] {
    require_non_null(out_model, "out_model");
    if (size > 0) require_non_null(data, "data");
    static const unsigned char empty = 0;
    auto model = slstm::read_model_image(
        size > 0 ? static_cast<const unsigned char*>(data) : &empty, size);
    *out_model = new slstm_model{std::move(model)};
  });
}

SLSTM_API slstm_status slstm_model_load_file(const char* path, slstm_model** out_model) {
  return guard([&] {
    require_non_null(out_model, "out_model");
    require_non_null(path, "path");
    auto model = slstm::load_model_file(path);
    *out_model = new slstm_model{std::move(model)};
  });
}

}  // extern "C"
