// The model file's writer: the header text (metadata, then one entry per tensor in file
// order) and the in-memory image (model_file_size, write_model_image).
#include "writer.hpp"

#include <charconv>
#include <cstring>
#include <vector>

#include "../layer_spec.hpp"
#include "../model_file.hpp"
#include "../number_text.hpp"
#include "format.hpp"

namespace slstm {
namespace model_file {
namespace {

// The lowest format_version that expresses the model, so that a file stays readable by as
// many libraries as can read it right. Version 1 is what libstacklstm 0.1 reads: every layer
// a forward float32 BasicLSTMCell, which is exactly what 0.1 computes, so the "cells" entry
// (which 0.1 ignores, like all metadata it does not know) is safe there. Any other stack
// (a GRU, a reverse or bidirectional layer, a residual connection, peepholes, clipping, a
// projection) is version 2, which 0.1-0.3 refuse instead of misreading it. A data type other
// than float32 has no version yet and is refused.
int format_version_for(const Model& model) {
  int version = 1;
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    const LayerSpec& s = model.spec(l);
    if (s.weight_dtype != DType::kF32 || s.compute_dtype != DType::kF32) {
      fail(SLSTM_ERR_UNSUPPORTED, "model file: layer " + std::to_string(l) + " (" +
                                      dtype_name(s.weight_dtype) +
                                      ") needs a model-file format_version this library does "
                                      "not write yet");
    }
    if (!s.is_basic_lstm()) version = 2;
  }
  return version;
}

// The shortest decimal that reads back as exactly this float (std::to_chars: independent
// of the locale, unlike printf's %g).
std::string format_float(float v) { return float_text(v); }

// A clip: 0 (no clipping) for -0 as for +0, which is also what a version-1 file (no clip keys)
// gives back; a positive clip as format_float.
std::string format_clip(float v) { return v == 0.0f ? "0" : format_float(v); }

// A JSON string literal of printable ASCII (source_layout has been checked to be that).
void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

// ,"<key>":"<f(spec 0)>,<f(spec 1)>,...": one entry per layer.
template <class F>
void append_layer_list(std::string& t, const Model& model, const char* key, F&& f) {
  t += ",\"";
  t += key;
  t += "\":\"";
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    if (l) t += ',';
    t += f(model.spec(l));
  }
  t += '"';
}

// {"__metadata__":{...}: the architecture, each layer's cell (and in version 2 its direction
// and options) and the source layout (the header's object is left open).
void append_metadata(std::string& t, const Model& model, const std::string& source_layout) {
  const int version = format_version_for(model);
  const auto flag = [](bool b) { return std::string(b ? "1" : "0"); };
  t += "{\"__metadata__\":{\"format\":\"";
  t += kFormatTag;
  t += "\",\"format_version\":\"" + std::to_string(version) + "\",\"input_size\":\"" +
       std::to_string(model.input_size()) + "\"";
  append_layer_list(t, model, "hidden_sizes",
                    [](const LayerSpec& s) { return std::to_string(s.hidden_size); });
  append_layer_list(t, model, "cells",
                    [](const LayerSpec& s) { return std::string(cell_name(s.cell)); });
  if (version >= 2) {
    append_layer_list(t, model, "directions",
                      [](const LayerSpec& s) { return std::string(direction_name(s.direction)); });
    append_layer_list(t, model, "residual", [&](const LayerSpec& s) { return flag(s.residual); });
    append_layer_list(t, model, "peepholes",
                      [&](const LayerSpec& s) { return flag(s.peepholes); });
    append_layer_list(t, model, "cell_clip",
                      [](const LayerSpec& s) { return format_clip(s.cell_clip); });
    append_layer_list(t, model, "proj_sizes",
                      [](const LayerSpec& s) { return std::to_string(s.proj_size); });
    append_layer_list(t, model, "proj_clip",
                      [](const LayerSpec& s) { return format_clip(s.proj_clip); });
    append_layer_list(t, model, "gru_reset_after",
                      [&](const LayerSpec& s) { return flag(s.reset_after); });
  }
  t += ",\"forget_bias\":\"" + format_float(model.forget_bias()) + "\",\"source_layout\":";
  append_json_string(t, source_layout);
  t += '}';
}

// ,"layers.<l>[.reverse].<piece>":{...} for every tensor, in file order; returns the data
// bytes.
std::size_t append_tensor_entries(std::string& t, const Model& model) {
  std::size_t offset = 0;
  for_each_tensor(model, [&](std::size_t l, int d, int piece, const std::vector<float>& v) {
    const std::size_t bytes = mul_size(v.size(), sizeof(float), "model file size");
    const auto shape = piece_shape(piece, model.spec(l));
    const std::size_t end = add_size(offset, bytes, "model file size");
    t += ",\"" + tensor_name(l, d, piece) + "\":{\"dtype\":\"F32\",\"shape\":[";
    for (std::size_t k = 0; k < shape.size(); ++k) {
      if (k) t += ',';
      t += std::to_string(shape[k]);
    }
    t += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  });
  return offset;
}

}  // namespace

std::string header_text(const Model& model, const std::string& source_layout,
                        std::size_t* data_size) {
  std::string t;
  t.reserve(256 + model.layers().size() * 3 * 96);
  append_metadata(t, model, source_layout);
  const std::size_t bytes = append_tensor_entries(t, model);
  t += '}';
  while (t.size() % 8 != 0) t.push_back(' ');
  *data_size = bytes;
  return t;
}

std::size_t image_size(const std::string& header, std::size_t data_size) {
  return add_size(add_size(8, header.size(), "model file size"), data_size, "model file size");
}

void encode_length(std::uint64_t n, unsigned char out[8]) {
  for (int k = 0; k < 8; ++k) out[k] = static_cast<unsigned char>((n >> (8 * k)) & 0xffu);
}

}  // namespace model_file

std::size_t model_file_size(const Model& model, const std::string& source_layout) {
  using namespace model_file;
  std::size_t data_size = 0;
  const std::string text = header_text(model, check_source_layout(source_layout), &data_size);
  return image_size(text, data_size);
}

std::size_t write_model_image(const Model& model, const std::string& source_layout,
                              unsigned char* buf, std::size_t capacity) {
  using namespace model_file;
  require_little_endian();
  std::size_t data_size = 0;
  const std::string text = header_text(model, check_source_layout(source_layout), &data_size);
  const std::size_t total = image_size(text, data_size);
  if (capacity < total) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, "capacity: the model file needs " + std::to_string(total) +
                                       " bytes, got " + std::to_string(capacity));
  }
  encode_length(text.size(), buf);
  std::memcpy(buf + 8, text.data(), text.size());
  unsigned char* p = buf + 8 + text.size();
  for_each_tensor(model, [&p](std::size_t, int, int, const std::vector<float>& v) {
    std::memcpy(p, v.data(), v.size() * sizeof(float));
    p += v.size() * sizeof(float);
  });
  return total;
}

}  // namespace slstm
