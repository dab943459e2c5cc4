// `stacklstm inspect MODEL.safetensors`: what a model file holds, and its SHA-256.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "sha256.hpp"
#include "util.hpp"

namespace slstm_cli {

const char* const kInspectHelp =
    "usage: stacklstm inspect MODEL.safetensors [--json]\n"
    "\n"
    "Loads the model file (every check the library makes on load applies) and prints its\n"
    "architecture (input size, each layer's cell and hidden size, forget bias), what the file\n"
    "records (format version, source layout, other metadata), its tensors (name, dtype, shape,\n"
    "bytes), the parameter count, the packed state's size and the file's SHA-256.\n"
    "\n"
    "  --json       one JSON object instead of text (keys in docs/cli.md)\n"
    "  -h, --help   this text\n"
    "\n"
    "example: stacklstm inspect model.safetensors --json\n";

std::string shortest_float(float v) {
  char buf[48];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return buf;
}

namespace {

struct TensorInfo {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t bytes = 0;
  std::uint64_t elements = 0;
};

// The safetensors JSON header (the library has validated the file already; this reads what
// the C API does not report: the metadata, dtypes and the tensor table).
nlohmann::json read_header(const std::string& path) {
  struct Closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Failure("cannot open " + quoted(path) + ": " + std::strerror(errno));
  unsigned char len8[8];
  if (std::fread(len8, 1, 8, f.get()) != 8) throw Failure(quoted(path) + ": cannot read its header");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len8[i];
  if (n > SLSTM_MODEL_FILE_MAX_HEADER) throw Failure(quoted(path) + ": header too large");
  std::string text(static_cast<std::size_t>(n), '\0');
  if (n > 0 && std::fread(&text[0], 1, text.size(), f.get()) != text.size()) {
    throw Failure(quoted(path) + ": cannot read its header");
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) throw Failure(quoted(path) + ": its header is not a JSON object");
  return j;
}

std::string dims(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::uint64_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  return 1;
}

const char* direction_text(slstm_direction d) {
  switch (d) {
    case SLSTM_DIRECTION_FORWARD: return "forward";
    case SLSTM_DIRECTION_REVERSE: return "reverse";
    case SLSTM_DIRECTION_BIDIRECTIONAL: return "bidirectional";
  }
  return "unknown";
}

std::int64_t output_width(const slstm_layer_config& c) {
  const std::int64_t w = c.proj_size > 0 ? c.proj_size : c.hidden_size;
  return c.direction == SLSTM_DIRECTION_BIDIRECTIONAL ? 2 * w : w;
}

// "lstm, hidden 6, projection 3, peepholes, bidirectional (input 5)".
std::string describe_layer(const slstm_layer_config& c, std::int64_t input) {
  std::string s = c.cell == SLSTM_CELL_GRU
                      ? std::string("gru (reset ") + (c.gru_reset_after ? "after" : "before") + ")"
                      : "lstm";
  s += ", hidden " + std::to_string(c.hidden_size);
  if (c.proj_size > 0) s += ", projection " + std::to_string(c.proj_size);
  if (c.peepholes) s += ", peepholes";
  if (c.cell_clip > 0.0f) s += ", cell_clip " + shortest_float(c.cell_clip);
  if (c.proj_clip > 0.0f) s += ", proj_clip " + shortest_float(c.proj_clip);
  if (c.direction != SLSTM_DIRECTION_FORWARD) s += std::string(", ") + direction_text(c.direction);
  if (c.residual) s += ", residual";
  return s + " (input " + std::to_string(input) + ")";
}

// Each layer's parameter count: the sizes of its canonical tensors.
std::vector<std::uint64_t> layer_parameters(const stacklstm::Model& model) {
  std::vector<slstm_layer_config> layers;
  for (std::int32_t l = 0; l < model.num_layers(); ++l) layers.push_back(model.layer(l));
  std::vector<std::uint64_t> n(layers.size(), 0);
  for (const slstm_tensor_info& t :
       stacklstm::Model::format_tensors(SLSTM_FORMAT_CANONICAL, model.input_size(),
                                        stacklstm::Layers(layers))) {
    std::uint64_t e = 1;
    for (int d = 0; d < t.ndim; ++d) e *= static_cast<std::uint64_t>(t.shape[d]);
    n[static_cast<std::size_t>(t.layer)] += e;
  }
  return n;
}

}  // namespace

int inspect_command(const std::vector<std::string>& args) {
  const ParsedArgs a = parse_args(args, {{"json", 0, false}});
  if (a.positionals.size() != 1) {
    throw UsageError(a.positionals.empty() ? "needs MODEL.safetensors"
                                           : "takes one model file, got " +
                                                 std::to_string(a.positionals.size()) + " words");
  }
  const std::string& path = a.positionals[0];
  const stacklstm::Model model = load_model(path);
  nlohmann::json header = read_header(path);
  std::map<std::string, std::string> meta;
  if (header.contains("__metadata__") && header["__metadata__"].is_object()) {
    for (const auto& kv : header["__metadata__"].items()) {
      if (kv.value().is_string()) meta[kv.key()] = kv.value().get<std::string>();
    }
  }
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::uint64_t> dtype_counts;
  std::uint64_t tensor_bytes = 0, parameters = 0;
  for (const auto& kv : header.items()) {
    if (kv.key() == "__metadata__" || !kv.value().is_object()) continue;
    TensorInfo t;
    t.name = kv.key();
    t.dtype = kv.value().value("dtype", std::string("?"));
    t.elements = 1;
    for (const auto& d : kv.value().value("shape", nlohmann::json::array())) {
      t.shape.push_back(d.get<std::int64_t>());
      t.elements *= d.get<std::uint64_t>();
    }
    t.bytes = t.elements * dtype_size(t.dtype);
    tensor_bytes += t.bytes;
    parameters += t.elements;
    ++dtype_counts[t.dtype];
    tensors.push_back(std::move(t));
  }
  // Tensors in layer order: layers.<l>.W_x, W_h, b ... (numeric l, the forward cell's before
  // the reverse cell's `layers.<l>.reverse.*`, then the canonical order of the names).
  auto layer_of = [](const std::string& n) -> long long {
    if (n.compare(0, 7, "layers.") != 0) return -1;
    return std::atoll(n.c_str() + 7);
  };
  std::stable_sort(tensors.begin(), tensors.end(), [&](const TensorInfo& x, const TensorInfo& y) {
    const long long lx = layer_of(x.name), ly = layer_of(y.name);
    if (lx != ly) return lx < ly;
    const bool revx = x.name.find(".reverse.") != std::string::npos;
    const bool revy = y.name.find(".reverse.") != std::string::npos;
    if (revx != revy) return revy;
    static const std::map<std::string, int> rank = {{"W_x", 0}, {"W_h", 1},   {"b", 2},
                                                    {"b_x", 2}, {"b_h", 3},   {"w_peep", 3},
                                                    {"W_proj", 4}};
    const auto suffix = [](const std::string& n) { return n.substr(n.rfind('.') + 1); };
    const auto rx = rank.find(suffix(x.name)), ry = rank.find(suffix(y.name));
    const int ix = rx == rank.end() ? 9 : rx->second, iy = ry == rank.end() ? 9 : ry->second;
    return ix != iy ? ix < iy : x.name < y.name;
  });

  const std::int32_t layers = model.num_layers();
  const std::vector<std::int64_t> hidden = model.hidden_sizes();
  std::vector<std::string> cells;  // as the model reads (a file may leave "cells" out)
  for (std::int32_t l = 0; l < layers; ++l) {
    cells.push_back(model.layer(l).cell == SLSTM_CELL_GRU ? "gru" : "lstm");
  }
  const std::string sha = sha256_file_hex(path);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    throw Failure("cannot read " + quoted(path) + ": " + std::strerror(errno));
  }
  const std::uint64_t file_bytes = static_cast<std::uint64_t>(st.st_size);
  const std::string forget_bias = shortest_float(model.forget_bias());
  const std::size_t state_per_seq = model.state_count(1);
  auto meta_or = [&](const std::string& k, const std::string& dflt) {
    return meta.count(k) ? meta[k] : dflt;
  };

  if (a.has("json")) {
    nlohmann::json j;
    j["path"] = path;
    j["file_bytes"] = file_bytes;
    j["sha256"] = sha;
    j["file_format"] = "safetensors";
    j["format"] = meta_or("format", "");
    j["format_version"] = meta_or("format_version", "");
    j["source_layout"] = meta_or("source_layout", "");
    j["input_size"] = model.input_size();
    j["num_layers"] = layers;
    j["hidden_sizes"] = hidden;
    j["cells"] = cells;
    nlohmann::json ls = nlohmann::json::array();
    for (std::int32_t l = 0; l < layers; ++l) {
      const slstm_layer_config c = model.layer(l);
      ls.push_back({{"cell", cells[static_cast<std::size_t>(l)]},
                    {"hidden_size", c.hidden_size},
                    {"direction", direction_text(c.direction)},
                    {"residual", c.residual == 1},
                    {"peepholes", c.peepholes == 1},
                    {"cell_clip", nlohmann::json::parse(shortest_float(c.cell_clip))},
                    {"proj_size", c.proj_size},
                    {"proj_clip", nlohmann::json::parse(shortest_float(c.proj_clip))},
                    {"gru_reset_after", c.gru_reset_after == 1}});
    }
    j["layers"] = ls;
    j["output_size"] = model.output_size();
    j["forget_bias"] = nlohmann::json::parse(forget_bias);
    j["parameters"] = parameters;
    j["tensor_count"] = tensors.size();
    j["tensor_bytes"] = tensor_bytes;
    j["dtypes"] = dtype_counts;
    j["state_floats_per_sequence"] = state_per_seq;
    j["metadata"] = meta;
    nlohmann::json ts = nlohmann::json::array();
    for (const TensorInfo& t : tensors) {
      ts.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"bytes", t.bytes}});
    }
    j["tensors"] = ts;
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return kExitOk;
  }

  std::string dtypes;
  for (const auto& kv : dtype_counts) {
    dtypes += (dtypes.empty() ? "" : ", ") + kv.first + " x" + std::to_string(kv.second);
  }
  std::printf("model file      %s\n", path.c_str());
  std::printf("size            %s\n", human_bytes(file_bytes).c_str());
  std::printf("sha256          %s\n", sha.c_str());
  std::printf("format          safetensors, %s format_version %s\n",
              meta_or("format", "?").c_str(), meta_or("format_version", "?").c_str());
  std::printf("source layout   %s\n", meta_or("source_layout", "(not recorded)").c_str());
  std::printf("input size      %lld\n", static_cast<long long>(model.input_size()));
  std::printf("layers          %d\n", layers);
  std::int64_t in = model.input_size();
  const std::vector<std::uint64_t> per_layer = layer_parameters(model);
  for (std::int32_t l = 0; l < layers; ++l) {
    const slstm_layer_config c = model.layer(l);
    std::printf("  layer %-7d %s, %llu parameters\n", l,
                describe_layer(c, in).c_str(),
                static_cast<unsigned long long>(per_layer[static_cast<std::size_t>(l)]));
    in = output_width(c);
  }
  std::printf("output size     %lld\n", static_cast<long long>(model.output_size()));
  std::printf("forget bias     %s\n", forget_bias.c_str());
  std::printf("parameters      %llu\n", static_cast<unsigned long long>(parameters));
  std::printf("state           %zu floats per sequence (every layer's c and h, or h)\n",
              state_per_seq);
  std::printf("tensors         %zu (%s), %s\n", tensors.size(), dtypes.c_str(),
              human_bytes(tensor_bytes).c_str());
  for (const TensorInfo& t : tensors) {
    std::printf("  %-24s %-5s %-14s %llu bytes\n", t.name.c_str(), t.dtype.c_str(),
                dims(t.shape).c_str(), static_cast<unsigned long long>(t.bytes));
  }
  bool other = false;
  for (const auto& kv : meta) {
    if (kv.first == "format" || kv.first == "format_version" || kv.first == "source_layout" ||
        kv.first == "input_size" || kv.first == "hidden_sizes" || kv.first == "cells" ||
        kv.first == "forget_bias" || kv.first == "directions" || kv.first == "residual" ||
        kv.first == "peepholes" || kv.first == "cell_clip" || kv.first == "proj_sizes" ||
        kv.first == "proj_clip" || kv.first == "gru_reset_after") {
      continue;
    }
    if (!other) std::printf("other metadata\n");
    other = true;
    std::printf("  %s = %s\n", one_line(kv.first).c_str(), one_line(kv.second).c_str());
  }
  return kExitOk;
}

}  // namespace slstm_cli
