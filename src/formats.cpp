// Import and export of the framework weight layouts (DESIGN §3) to and from the canonical
// per-layer W_x [4H, I], W_h [4H, H], b [4H] in gate order i, f, g, o.
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gate_math.hpp"
#include "model.hpp"

namespace slstm {
namespace {

// TF's column block for canonical gate q: canonical i, f, g, o sit in TF's i, j, f, o at 0, 2, 1, 3.
constexpr int kTfBlock[4] = {0, 2, 1, 3};

std::string shape_str(const std::int64_t* shape, std::int32_t ndim) {
  std::string s = "[";
  for (std::int32_t d = 0; d < ndim; ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  return s + "]";
}

// One expected tensor: its name in messages and its shape.
struct Expect {
  const char* name;
  std::int32_t ndim;
  std::int64_t shape[3];
};

// Checks a caller tensor (const or mutable) against `e`; `index` is its position in the array.
template <typename Tensor>
void check_tensor(const Tensor& t, const Expect& e, std::size_t index, std::size_t layer) {
  const std::string where = "tensors[" + std::to_string(index) + "] (layer " +
                            std::to_string(layer) + " " + e.name + ")";
  if (t.data == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, where + ": data is NULL");
  if (t.ndim < 1 || t.ndim > SLSTM_MAX_DIMS) {
    fail(SLSTM_ERR_SHAPE_MISMATCH,
         where + ": ndim must be in 1.." + std::to_string(SLSTM_MAX_DIMS) + ", got " +
             std::to_string(t.ndim));
  }
  bool ok = t.ndim == e.ndim;
  for (std::int32_t d = 0; ok && d < e.ndim; ++d) ok = t.shape[d] == e.shape[d];
  if (!ok) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, where + ": expected shape " + shape_str(e.shape, e.ndim) +
                                       ", got " + shape_str(t.shape, t.ndim));
  }
}

// The tensors of one layer in `format`, in API order.  Every format here stores LSTM cells
// (LayerSpec::cell kLstm, the only kind today); a format that cannot express a layer's cell
// kind would be refused here, naming the layer.
std::vector<Expect> expected_layer(slstm_weight_format format, const LayerSpec& spec) {
  const std::int64_t in = spec.input_size, h = spec.hidden_size;
  switch (format) {
    case SLSTM_FORMAT_CANONICAL:
      return {{"W_x", 2, {4 * h, in}}, {"W_h", 2, {4 * h, h}}, {"b", 1, {4 * h, 0}}};
    case SLSTM_FORMAT_TF:
      return {{"kernel", 2, {in + h, 4 * h}}, {"bias", 1, {4 * h, 0}}};
    case SLSTM_FORMAT_PYTORCH:
      return {{"weight_ih", 2, {4 * h, in}},
              {"weight_hh", 2, {4 * h, h}},
              {"bias_ih", 1, {4 * h, 0}},
              {"bias_hh", 1, {4 * h, 0}}};
    case SLSTM_FORMAT_KERAS:
      return {{"kernel", 2, {in, 4 * h}},
              {"recurrent_kernel", 2, {h, 4 * h}},
              {"bias", 1, {4 * h}}};
    case SLSTM_FORMAT_KERAS_CUDNN:
      return {{"kernel", 2, {in, 4 * h}},
              {"recurrent_kernel", 2, {h, 4 * h}},
              {"bias", 1, {8 * h}}};
    case SLSTM_FORMAT_ONNX:
      return {{"W", 3, {1, 4 * h, in}}, {"R", 3, {1, 4 * h, h}}, {"B", 2, {1, 8 * h}}};
    case SLSTM_FORMAT_CUDNN:
      return {{"W", 2, {4 * h, in}}, {"R", 2, {4 * h, h}}, {"bW", 1, {4 * h}}, {"bR", 1, {4 * h}}};
  }
  return {};
}

// ONNX's row block for canonical gate q: canonical i, f, g, o sit in ONNX's i, o, f, c at
// 0, 2, 3, 1.
constexpr int kOnnxBlock[4] = {0, 2, 3, 1};

// Formats without a forget_bias of their own (everything but CANONICAL and TF).
bool has_forget_bias(slstm_weight_format format) {
  return format == SLSTM_FORMAT_CANONICAL || format == SLSTM_FORMAT_TF;
}

// Import of one layer in the layouts added for interop (Keras, Keras CuDNNLSTM, ONNX, cuDNN).
void import_interop_layer(slstm_weight_format format, Layer& layer, const slstm_tensor* t) {
  const std::size_t in = static_cast<std::size_t>(layer.input_size);
  const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
  const std::size_t g4 = 4 * h;
  switch (format) {
    case SLSTM_FORMAT_KERAS:  // kernel [in, 4h], recurrent_kernel [h, 4h]: transposes
      for (std::size_t r = 0; r < g4; ++r) {
        for (std::size_t k = 0; k < in; ++k) layer.w_x[r * in + k] = t[0].data[k * g4 + r];
        for (std::size_t k = 0; k < h; ++k) layer.w_h[r * h + k] = t[1].data[k * g4 + r];
        layer.bias[r] = t[2].data[r];
      }
      break;
    case SLSTM_FORMAT_KERAS_CUDNN:  // block q of a kernel, read in C order, is W_q [h, in]
      for (std::size_t q = 0; q < 4; ++q) {
        for (std::size_t u = 0; u < h; ++u) {
          const std::size_t r = q * h + u;
          for (std::size_t k = 0; k < in; ++k) {
            const std::size_t n = u * in + k;
            layer.w_x[r * in + k] = t[0].data[(n / h) * g4 + q * h + n % h];
          }
          for (std::size_t k = 0; k < h; ++k) layer.w_h[r * h + k] = t[1].data[u * g4 + q * h + k];
        }
      }
      for (std::size_t r = 0; r < g4; ++r) layer.bias[r] = t[2].data[r] + t[2].data[g4 + r];
      break;
    case SLSTM_FORMAT_ONNX:
      for (std::size_t q = 0; q < 4; ++q) {
        const std::size_t src0 = kOnnxBlock[q] * h;
        for (std::size_t u = 0; u < h; ++u) {
          const std::size_t r = q * h + u;
          std::memcpy(&layer.w_x[r * in], &t[0].data[(src0 + u) * in], in * sizeof(float));
          std::memcpy(&layer.w_h[r * h], &t[1].data[(src0 + u) * h], h * sizeof(float));
          layer.bias[r] = t[2].data[src0 + u] + t[2].data[g4 + src0 + u];
        }
      }
      break;
    case SLSTM_FORMAT_CUDNN:
      std::memcpy(layer.w_x.data(), t[0].data, layer.w_x.size() * sizeof(float));
      std::memcpy(layer.w_h.data(), t[1].data, layer.w_h.size() * sizeof(float));
      for (std::size_t r = 0; r < g4; ++r) layer.bias[r] = t[2].data[r] + t[3].data[r];
      break;
    default:
      fail(SLSTM_ERR_INTERNAL, "import_interop_layer: unexpected format");
  }
}

// Export of one layer; forget_bias `fb` goes into the f block of exactly one bias.
void export_interop_layer(slstm_weight_format format, const Model& model, std::size_t l,
                          const slstm_tensor_out* t) {
  const Layer& layer = model.layer(l);
  const std::size_t in = static_cast<std::size_t>(layer.input_size);
  const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
  const std::size_t g4 = 4 * h;
  auto folded = [&](std::size_t r) { return model.folded_bias(l, r); };
  switch (format) {
    case SLSTM_FORMAT_KERAS:
      for (std::size_t r = 0; r < g4; ++r) {
        for (std::size_t k = 0; k < in; ++k) t[0].data[k * g4 + r] = layer.w_x[r * in + k];
        for (std::size_t k = 0; k < h; ++k) t[1].data[k * g4 + r] = layer.w_h[r * h + k];
        t[2].data[r] = folded(r);
      }
      break;
    case SLSTM_FORMAT_KERAS_CUDNN:
      for (std::size_t q = 0; q < 4; ++q) {
        for (std::size_t u = 0; u < h; ++u) {
          const std::size_t r = q * h + u;
          for (std::size_t k = 0; k < in; ++k) {
            const std::size_t n = u * in + k;
            t[0].data[(n / h) * g4 + q * h + n % h] = layer.w_x[r * in + k];
          }
          for (std::size_t k = 0; k < h; ++k) t[1].data[u * g4 + q * h + k] = layer.w_h[r * h + k];
        }
      }
      for (std::size_t r = 0; r < g4; ++r) {
        t[2].data[r] = folded(r);
        t[2].data[g4 + r] = 0.0f;
      }
      break;
    case SLSTM_FORMAT_ONNX:
      for (std::size_t q = 0; q < 4; ++q) {
        const std::size_t dst0 = kOnnxBlock[q] * h;
        for (std::size_t u = 0; u < h; ++u) {
          const std::size_t r = q * h + u;
          std::memcpy(&t[0].data[(dst0 + u) * in], &layer.w_x[r * in], in * sizeof(float));
          std::memcpy(&t[1].data[(dst0 + u) * h], &layer.w_h[r * h], h * sizeof(float));
          t[2].data[dst0 + u] = folded(r);
          t[2].data[g4 + dst0 + u] = 0.0f;
        }
      }
      break;
    case SLSTM_FORMAT_CUDNN:
      std::memcpy(t[0].data, layer.w_x.data(), layer.w_x.size() * sizeof(float));
      std::memcpy(t[1].data, layer.w_h.data(), layer.w_h.size() * sizeof(float));
      for (std::size_t r = 0; r < g4; ++r) {
        t[2].data[r] = folded(r);
        t[3].data[r] = 0.0f;
      }
      break;
    default:
      fail(SLSTM_ERR_INTERNAL, "export_interop_layer: unexpected format");
  }
}

// The layer specs of an architecture (before a model exists) or of a model.
using Dims = std::vector<LayerSpec>;

Dims dims_of(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes) {
  Dims d(hidden_sizes.size());
  for (std::size_t l = 0; l < hidden_sizes.size(); ++l) {
    d[l].input_size = input_size;
    d[l].hidden_size = hidden_sizes[l];
    input_size = hidden_sizes[l];
  }
  return d;
}

Dims dims_of(const Model& model) {
  Dims d;
  d.reserve(model.layers().size());
  for (std::size_t l = 0; l < model.layers().size(); ++l) d.push_back(model.spec(l));
  return d;
}

// The format, the tensor count and every tensor's pointer and shape: checks that read no
// weight, made before anything is allocated or written.
template <typename Tensor>
void check_all(const Dims& dims, slstm_weight_format format, const Tensor* tensors,
               std::size_t num_tensors) {
  const int per_layer = tensors_per_layer(format);
  if (per_layer == 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
  }
  const std::size_t want = dims.size() * static_cast<std::size_t>(per_layer);
  if (num_tensors != want) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, "num_tensors: expected " + std::to_string(want) + " (" +
                                       std::to_string(dims.size()) + " layers x " +
                                       std::to_string(per_layer) + "), got " +
                                       std::to_string(num_tensors));
  }
  if (tensors == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, "tensors is NULL");
  for (std::size_t l = 0; l < dims.size(); ++l) {
    const auto expect = expected_layer(format, dims[l]);
    for (std::size_t k = 0; k < expect.size(); ++k) {
      check_tensor(tensors[l * per_layer + k], expect[k], l * per_layer + k, l);
    }
  }
}

// Where a format stores the bias as the sum of two vectors of 4H: (tensor, offset) of each.
struct BiasPair {
  int a, a_off, b, b_off;  // offsets in units of 4H
};
bool bias_pair(slstm_weight_format format, BiasPair* p) {
  switch (format) {
    case SLSTM_FORMAT_PYTORCH:
    case SLSTM_FORMAT_CUDNN: *p = {2, 0, 3, 0}; return true;
    case SLSTM_FORMAT_KERAS_CUDNN:
    case SLSTM_FORMAT_ONNX: *p = {2, 0, 2, 1}; return true;
    default: return false;
  }
}

std::string where(std::size_t index, std::size_t layer, const char* name) {
  return "tensors[" + std::to_string(index) + "] (layer " + std::to_string(layer) + " " + name +
         ")";
}

// Every weight must be finite, and so must every bias the format stores as a sum (a model
// that holds a NaN or an infinity could be saved but not loaded again: see the header's
// "Model files").  Reads the caller's tensors only, before anything is converted.
void check_values(const Dims& dims, slstm_weight_format format, const slstm_tensor* tensors) {
  const int per_layer = tensors_per_layer(format);
  BiasPair pair{};
  const bool summed = bias_pair(format, &pair);
  for (std::size_t l = 0; l < dims.size(); ++l) {
    const auto expect = expected_layer(format, dims[l]);
    const slstm_tensor* t = tensors + l * per_layer;
    for (std::size_t k = 0; k < expect.size(); ++k) {
      std::size_t n = 1;
      for (std::int32_t d = 0; d < expect[k].ndim; ++d) n *= static_cast<std::size_t>(expect[k].shape[d]);
      for (std::size_t e = 0; e < n; ++e) {
        if (!std::isfinite(t[k].data[e])) {
          fail(SLSTM_ERR_INVALID_ARGUMENT,
               where(l * per_layer + k, l, expect[k].name) + ": element " + std::to_string(e) +
                   " is " + (std::isnan(t[k].data[e]) ? "NaN" : "infinite") +
                   "; weights must be finite");
        }
      }
    }
    if (!summed) continue;
    const std::size_t g4 = static_cast<std::size_t>(dims[l].gate_rows());
    const float* a = t[pair.a].data + pair.a_off * g4;
    const float* b = t[pair.b].data + pair.b_off * g4;
    for (std::size_t r = 0; r < g4; ++r) {
      if (!std::isfinite(a[r] + b[r])) {
        fail(SLSTM_ERR_INVALID_ARGUMENT,
             "layer " + std::to_string(l) + ": the bias is the sum of " +
                 expect[static_cast<std::size_t>(pair.a)].name + " and " +
                 expect[static_cast<std::size_t>(pair.b)].name + ", whose element " +
                 std::to_string(r) + " overflows float32");
      }
    }
  }
}

// Exporting to a format without a forget_bias of its own folds it into the f block of one
// bias: that sum must be finite too (checked before anything is written).
void check_foldable(const Model& model, slstm_weight_format format) {
  if (has_forget_bias(format) || model.forget_bias() == 0.0f) return;
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    const Layer& layer = model.layer(l);
    const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
    for (std::size_t u = 0; u < h; ++u) {
      if (!std::isfinite(model.folded_bias(l, kGateF * h + u))) {
        fail(SLSTM_ERR_OUT_OF_RANGE,
             "format: exporting folds forget_bias into the f-gate bias, and for layer " +
                 std::to_string(l) + " unit " + std::to_string(u) + " the sum overflows float32");
      }
    }
  }
}

}  // namespace

int tensors_per_layer(slstm_weight_format format) {
  switch (format) {
    case SLSTM_FORMAT_CANONICAL: return 3;
    case SLSTM_FORMAT_TF: return 2;
    case SLSTM_FORMAT_PYTORCH: return 4;
    case SLSTM_FORMAT_KERAS: return 3;
    case SLSTM_FORMAT_KERAS_CUDNN: return 3;
    case SLSTM_FORMAT_ONNX: return 3;
    case SLSTM_FORMAT_CUDNN: return 4;
  }
  return 0;
}

ModelPtr import_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, slstm_weight_format format,
                      const slstm_tensor* tensors, std::size_t num_tensors) {
  if (tensors_per_layer(format) != 0 && !has_forget_bias(format)) forget_bias = 0.0f;
  // Every check that reads no weight comes before the model is allocated (once); the weights
  // themselves are read only once memory for them exists: a caller's tensors are as large
  // as their shapes say, and an architecture too large to allocate is refused before a
  // byte of them is read.
  Model::check_architecture(input_size, hidden_sizes, forget_bias);
  const Dims dims = dims_of(input_size, hidden_sizes);
  check_all(dims, format, tensors, num_tensors);
  auto model = std::make_shared<Model>(input_size, hidden_sizes, forget_bias);
  check_values(dims, format, tensors);
  const int per_layer = tensors_per_layer(format);
  for (std::size_t l = 0; l < model->layers().size(); ++l) {
    Layer& layer = model->mutable_layer(l);
    const std::size_t in = static_cast<std::size_t>(layer.input_size);
    const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
    const slstm_tensor* t = tensors + l * per_layer;
    switch (format) {
      case SLSTM_FORMAT_CANONICAL:
        std::memcpy(layer.w_x.data(), t[0].data, layer.w_x.size() * sizeof(float));
        std::memcpy(layer.w_h.data(), t[1].data, layer.w_h.size() * sizeof(float));
        std::memcpy(layer.bias.data(), t[2].data, layer.bias.size() * sizeof(float));
        break;
      case SLSTM_FORMAT_TF: {
        const float* kernel = t[0].data;  // [in + h, 4h]
        for (std::size_t q = 0; q < 4; ++q) {
          const std::size_t col0 = kTfBlock[q] * h;
          for (std::size_t u = 0; u < h; ++u) {
            const std::size_t r = q * h + u;
            for (std::size_t k = 0; k < in; ++k) layer.w_x[r * in + k] = kernel[k * 4 * h + col0 + u];
            for (std::size_t k = 0; k < h; ++k) {
              layer.w_h[r * h + k] = kernel[(in + k) * 4 * h + col0 + u];
            }
            layer.bias[r] = t[1].data[col0 + u];
          }
        }
        break;
      }
      case SLSTM_FORMAT_PYTORCH:
        std::memcpy(layer.w_x.data(), t[0].data, layer.w_x.size() * sizeof(float));
        std::memcpy(layer.w_h.data(), t[1].data, layer.w_h.size() * sizeof(float));
        for (std::size_t r = 0; r < 4 * h; ++r) layer.bias[r] = t[2].data[r] + t[3].data[r];
        break;
      default:
        import_interop_layer(format, layer, t);
        break;
    }
  }
  return model;
}

// ---- Any stack (docs/cells.md) -----------------------------------------------------------

namespace {

const char* format_name(slstm_weight_format format) {
  switch (format) {
    case SLSTM_FORMAT_CANONICAL: return "SLSTM_FORMAT_CANONICAL";
    case SLSTM_FORMAT_TF: return "SLSTM_FORMAT_TF";
    case SLSTM_FORMAT_PYTORCH: return "SLSTM_FORMAT_PYTORCH";
    case SLSTM_FORMAT_KERAS: return "SLSTM_FORMAT_KERAS";
    case SLSTM_FORMAT_KERAS_CUDNN: return "SLSTM_FORMAT_KERAS_CUDNN";
    case SLSTM_FORMAT_ONNX: return "SLSTM_FORMAT_ONNX";
    case SLSTM_FORMAT_CUDNN: return "SLSTM_FORMAT_CUDNN";
  }
  return "unknown";
}

// The canonical tensors of one direction of a layer (docs/cells.md), in API order.
std::vector<Expect> canonical_cell(const LayerSpec& s) {
  const std::int64_t gh = s.gate_rows();
  std::vector<Expect> e = {{"W_x", 2, {gh, s.input_size}}, {"W_h", 2, {gh, s.cell_output_size()}}};
  if (s.cell == CellKind::kGru) {
    e.push_back({"b_x", 1, {gh}});
    e.push_back({"b_h", 1, {gh}});
    return e;
  }
  e.push_back({"b", 1, {gh}});
  if (s.peepholes) e.push_back({"w_peep", 2, {3, s.hidden_size}});
  if (s.proj_size > 0) e.push_back({"W_proj", 2, {s.proj_size, s.hidden_size}});
  return e;
}

// The weight vectors of one direction (CellWeights or const CellWeights), in
// canonical_cell's order.
template <typename W>
auto canonical_vectors(W& w, const LayerSpec& s) {
  using V = decltype(&w.w_x);
  if (s.cell == CellKind::kGru) return std::vector<V>{&w.w_x, &w.w_h, &w.bias, &w.bias_h};
  std::vector<V> v = {&w.w_x, &w.w_h, &w.bias};
  if (s.peepholes) v.push_back(&w.peep);
  if (s.proj_size > 0) v.push_back(&w.w_proj);
  return v;
}

std::size_t elements(const Expect& e) {
  std::size_t n = 1;
  for (std::int32_t d = 0; d < e.ndim; ++d) n *= static_cast<std::size_t>(e.shape[d]);
  return n;
}

// Per layer: the tensors and which direction each belongs to.
struct LayerTensors {
  std::vector<Expect> expect;
  std::vector<int> direction;
};

LayerTensors layer_tensors(slstm_weight_format format, const LayerSpec& s, std::size_t l) {
  LayerTensors t;
  if (tensors_per_layer(format) == 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
  }
  if (format == SLSTM_FORMAT_CANONICAL) {
    for (int d = 0; d < s.directions(); ++d) {
      for (const Expect& e : canonical_cell(s)) {
        t.expect.push_back(e);
        t.direction.push_back(d);
      }
    }
    return t;
  }
  if (!s.is_basic_lstm()) {
    fail(SLSTM_ERR_UNSUPPORTED,
         std::string(format_name(format)) + " takes forward BasicLSTMCell layers only here, "
         "and config->layers[" + std::to_string(l) + "] is a " + cell_name(s.cell) + " layer (" +
             direction_name(s.direction) +
             "); use SLSTM_FORMAT_CANONICAL (docs/cells.md) for this layer's weights");
  }
  t.expect = expected_layer(format, s);
  t.direction.assign(t.expect.size(), 0);
  return t;
}

}  // namespace

namespace {
// Export of any stack (CANONICAL, and the formats' cells beyond BasicLSTMCell).
void export_general(const Model& model, slstm_weight_format format,
                    const slstm_tensor_out* tensors, std::size_t num_tensors) {
  std::vector<LayerTensors> per_layer;
  std::size_t want = 0;
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    per_layer.push_back(layer_tensors(format, model.spec(l), l));
    want += per_layer.back().expect.size();
  }
  if (num_tensors != want) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, "num_tensors: expected " + std::to_string(want) +
                                       " for this model in " + format_name(format) +
                                       " (slstm_format_tensors lists them), got " +
                                       std::to_string(num_tensors));
  }
  if (tensors == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, "tensors is NULL");
  std::size_t index = 0;
  for (std::size_t l = 0; l < per_layer.size(); ++l) {
    for (const Expect& e : per_layer[l].expect) check_tensor(tensors[index], e, index, l), ++index;
  }
  index = 0;
  for (std::size_t l = 0; l < per_layer.size(); ++l) {
    const Layer& layer = model.layer(l);
    for (int d = 0; d < layer.spec.directions(); ++d) {
      for (const auto* v : canonical_vectors(layer.dir(d), layer.spec)) {
        std::memcpy(tensors[index].data, v->data(), v->size() * sizeof(float));
        ++index;
      }
    }
  }
}
}  // namespace

void export_model(const Model& model, slstm_weight_format format,
                  const slstm_tensor_out* tensors, std::size_t num_tensors) {
  if (!model.all_basic()) {
    export_general(model, format, tensors, num_tensors);
    return;
  }
  check_all(dims_of(model), format, tensors, num_tensors);
  check_foldable(model, format);
  const int per_layer = tensors_per_layer(format);
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    const Layer& layer = model.layer(l);
    const std::size_t in = static_cast<std::size_t>(layer.input_size);
    const std::size_t h = static_cast<std::size_t>(layer.hidden_size);
    const slstm_tensor_out* t = tensors + l * per_layer;
    switch (format) {
      case SLSTM_FORMAT_CANONICAL:
        std::memcpy(t[0].data, layer.w_x.data(), layer.w_x.size() * sizeof(float));
        std::memcpy(t[1].data, layer.w_h.data(), layer.w_h.size() * sizeof(float));
        std::memcpy(t[2].data, layer.bias.data(), layer.bias.size() * sizeof(float));
        break;
      case SLSTM_FORMAT_TF: {
        float* kernel = t[0].data;
        for (std::size_t q = 0; q < 4; ++q) {
          const std::size_t col0 = kTfBlock[q] * h;
          for (std::size_t u = 0; u < h; ++u) {
            const std::size_t r = q * h + u;
            for (std::size_t k = 0; k < in; ++k) kernel[k * 4 * h + col0 + u] = layer.w_x[r * in + k];
            for (std::size_t k = 0; k < h; ++k) {
              kernel[(in + k) * 4 * h + col0 + u] = layer.w_h[r * h + k];
            }
            t[1].data[col0 + u] = layer.bias[r];
          }
        }
        break;
      }
      case SLSTM_FORMAT_PYTORCH:
        std::memcpy(t[0].data, layer.w_x.data(), layer.w_x.size() * sizeof(float));
        std::memcpy(t[1].data, layer.w_h.data(), layer.w_h.size() * sizeof(float));
        // The whole bias goes into bias_ih, forget_bias folded into its f block exactly once.
        for (std::size_t r = 0; r < 4 * h; ++r) {
          t[2].data[r] = model.folded_bias(l, r);
          t[3].data[r] = 0.0f;
        }
        break;
      default:
        export_interop_layer(format, model, l, t);
        break;
    }
  }
}

std::vector<TensorInfo> format_tensors(const std::vector<LayerSpec>& specs,
                                       slstm_weight_format format) {
  std::vector<TensorInfo> out;
  for (std::size_t l = 0; l < specs.size(); ++l) {
    const LayerTensors t = layer_tensors(format, specs[l], l);
    for (std::size_t k = 0; k < t.expect.size(); ++k) {
      TensorInfo info;
      info.layer = static_cast<std::int32_t>(l);
      info.direction = t.direction[k];
      info.ndim = t.expect[k].ndim;
      for (std::int32_t d = 0; d < info.ndim; ++d) info.shape[d] = t.expect[k].shape[d];
      info.name = t.expect[k].name;
      out.push_back(std::move(info));
    }
  }
  return out;
}

ModelPtr import_model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                      slstm_weight_format format, const slstm_tensor* tensors,
                      std::size_t num_tensors) {
  if (tensors_per_layer(format) != 0 && !has_forget_bias(format)) forget_bias = 0.0f;
  specs = Model::check_layers(input_size, std::move(specs), forget_bias);
  bool basic = true;
  for (const LayerSpec& s : specs) basic = basic && s.is_basic_lstm();
  if (basic && format != SLSTM_FORMAT_CANONICAL) {
    std::vector<std::int64_t> hidden;
    for (const LayerSpec& s : specs) hidden.push_back(s.hidden_size);
    return import_model(input_size, hidden, forget_bias, format, tensors, num_tensors);
  }
  // Every check that reads no weight first (as for the basic path above).
  std::vector<LayerTensors> per_layer;
  std::size_t want = 0;
  for (std::size_t l = 0; l < specs.size(); ++l) {
    per_layer.push_back(layer_tensors(format, specs[l], l));
    want += per_layer.back().expect.size();
  }
  if (num_tensors != want) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, "num_tensors: expected " + std::to_string(want) +
                                       " for this architecture in " + format_name(format) +
                                       " (slstm_format_tensors lists them), got " +
                                       std::to_string(num_tensors));
  }
  if (tensors == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, "tensors is NULL");
  std::size_t index = 0;
  for (std::size_t l = 0; l < specs.size(); ++l) {
    for (const Expect& e : per_layer[l].expect) check_tensor(tensors[index], e, index, l), ++index;
  }
  auto model = std::make_shared<Model>(input_size, std::move(specs), forget_bias);
  index = 0;
  for (std::size_t l = 0; l < per_layer.size(); ++l) {
    for (const Expect& e : per_layer[l].expect) {
      const std::size_t n = elements(e);
      for (std::size_t k = 0; k < n; ++k) {
        if (!std::isfinite(tensors[index].data[k])) {
          fail(SLSTM_ERR_INVALID_ARGUMENT,
               where(index, l, e.name) + ": element " + std::to_string(k) + " is " +
                   (std::isnan(tensors[index].data[k]) ? "NaN" : "infinite") +
                   "; weights must be finite");
        }
      }
      ++index;
    }
  }
  index = 0;
  for (std::size_t l = 0; l < per_layer.size(); ++l) {
    Layer& layer = model->mutable_layer(l);
    for (int d = 0; d < layer.spec.directions(); ++d) {
      for (auto* v : canonical_vectors(layer.dir(d), layer.spec)) {
        std::memcpy(v->data(), tensors[index].data, v->size() * sizeof(float));
        ++index;
      }
    }
  }
  return model;
}

ModelPtr random_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, std::uint64_t seed, float scale) {
  Model::check_architecture(input_size, hidden_sizes, forget_bias);
  return random_model(input_size, Model::basic_specs(input_size, hidden_sizes), forget_bias,
                      seed, scale);
}

ModelPtr random_model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                      std::uint64_t seed, float scale) {
  if (!std::isfinite(scale) || scale < 0.0f) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "scale must be finite and >= 0");
  }
  auto model = std::make_shared<Model>(input_size, std::move(specs), forget_bias);
  std::uint64_t state = seed;
  auto next = [&state]() {  // splitmix64: the same stream on every platform
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (std::size_t l = 0; l < model->layers().size(); ++l) {
    Layer& layer = model->mutable_layer(l);
    const float s = scale > 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(layer.hidden_size));
    auto fill = [&](std::vector<float>& v) {
      for (float& x : v) {
        const float u = static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        x = s * (2.0f * u - 1.0f);
      }
    };
    // A forward BasicLSTMCell layer draws w_x, w_h, bias: the same values as before layers
    // had options.  Extra tensors and the reverse direction follow.
    for (int d = 0; d < layer.spec.directions(); ++d) {
      CellWeights& w = layer.dir(d);
      for (std::vector<float>* v : {&w.w_x, &w.w_h, &w.bias, &w.bias_h, &w.peep, &w.w_proj}) {
        fill(*v);
      }
    }
  }
  return model;
}

}  // namespace slstm
