// Model files in the safetensors format: writer and a validating reader.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a
// multiple of 8), then the tensor bytes. Every value read from a file is checked before it
// is used: the reader allocates nothing whose size is not backed by bytes of the image.
#include "model_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace slstm {
namespace {

using json = nlohmann::json;

constexpr const char* kFormatTag = "stacklstm";
constexpr const char* kFormatVersion = "1";
constexpr std::uint64_t kMaxHeader = SLSTM_MODEL_FILE_MAX_HEADER;
constexpr std::size_t kMaxLayers = 100000;
constexpr std::size_t kMaxJsonElements = 1000000;  // bounds the parsed header's memory
constexpr std::size_t kMaxJsonDepth = 3;           // {tensor: {shape: [..]}}
constexpr std::uint64_t kMaxExtent = std::uint64_t{1} << 40;
constexpr const char* kPieces[3] = {"W_x", "W_h", "b"};

[[noreturn]] void bad_file(const std::string& what) {
  fail(SLSTM_ERR_INVALID_ARGUMENT, "model file: " + what);
}

void require_little_endian() {
  const std::uint32_t one = 1;
  unsigned char b = 0;
  std::memcpy(&b, &one, 1);
  if (b != 1) fail(SLSTM_ERR_UNSUPPORTED, "model files need a little-endian host");
}

std::string check_source_layout(const std::string& s) {
  if (s.size() > 256) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "source_layout is longer than 256 bytes");
  }
  for (char ch : s) {
    if (ch < 0x20 || ch > 0x7e) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, "source_layout must be printable ASCII");
    }
  }
  return s;
}

std::string tensor_name(std::size_t layer, int piece) {
  return "layers." + std::to_string(layer) + "." + kPieces[piece];
}

// Expected shape of piece (0 W_x, 1 W_h, 2 b) of a layer.
std::vector<std::uint64_t> piece_shape(int piece, std::uint64_t in, std::uint64_t h) {
  if (piece == 0) return {4 * h, in};
  if (piece == 1) return {4 * h, h};
  return {4 * h};
}

std::string shape_text(const std::vector<std::uint64_t>& s) {
  std::string t = "[";
  for (std::size_t k = 0; k < s.size(); ++k) t += (k ? ", " : "") + std::to_string(s[k]);
  return t + "]";
}

std::string format_float(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

json build_header(const Model& model, const std::string& source_layout, std::size_t* data_size) {
  std::string hidden;
  for (const Layer& layer : model.layers()) {
    if (!hidden.empty()) hidden += ",";
    hidden += std::to_string(layer.hidden_size);
  }
  json header = json::object();
  header["__metadata__"] = {{"format", kFormatTag},
                            {"format_version", kFormatVersion},
                            {"input_size", std::to_string(model.input_size())},
                            {"hidden_sizes", hidden},
                            {"forget_bias", format_float(model.forget_bias())},
                            {"source_layout", source_layout}};
  std::size_t offset = 0;
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    const Layer& layer = model.layer(l);
    const std::vector<float>* parts[3] = {&layer.w_x, &layer.w_h, &layer.bias};
    for (int p = 0; p < 3; ++p) {
      const std::size_t bytes = mul_size(parts[p]->size(), sizeof(float), "model file size");
      const auto shape = piece_shape(p, static_cast<std::uint64_t>(layer.input_size),
                                     static_cast<std::uint64_t>(layer.hidden_size));
      const std::size_t end = add_size(offset, bytes, "model file size");
      header[tensor_name(l, p)] = {{"dtype", "F32"}, {"shape", shape},
                                   {"data_offsets", {offset, end}}};
      offset = end;
    }
  }
  *data_size = offset;
  return header;
}

std::string header_text(const Model& model, const std::string& source_layout,
                        std::size_t* data_size) {
  std::string text = build_header(model, source_layout, data_size).dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  return text;
}

// ---- reading ------------------------------------------------------------------------------

struct TensorEntry {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

std::size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F64") return 8;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float element(const unsigned char* p, const std::string& dtype) {
  if (dtype == "F32") {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  if (dtype == "F64") {
    double v;
    std::memcpy(&v, p, 8);
    if (!std::isfinite(v) || std::fabs(v) > 3.4028234663852886e38) return NAN;
    return static_cast<float>(v);
  }
  std::uint16_t u;
  std::memcpy(&u, p, 2);
  if (dtype == "F16") return half_to_float(u);
  const std::uint32_t bits = static_cast<std::uint32_t>(u) << 16;  // BF16
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// A decimal integer in [lo, hi], digits only (no sign, no spaces, no leading zeros).
std::uint64_t parse_uint(const std::string& s, const std::string& what, std::uint64_t lo,
                         std::uint64_t hi) {
  const bool digits = !s.empty() && s.size() <= 19 &&
                      std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || (s.size() > 1 && s[0] == '0')) {
    bad_file(what + " must be a decimal integer, got \"" + s.substr(0, 40) + "\"");
  }
  const std::uint64_t v = std::stoull(s);
  if (v < lo || v > hi) {
    bad_file(what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
             "], got " + s);
  }
  return v;
}

json parse_header(const unsigned char* text, std::size_t n) {
  // Limits enforced while parsing: nesting depth, element count, duplicate keys. (Array
  // lengths are bounded by the element count and checked by read_uint_array.)
  std::vector<std::set<std::string>> keys;  // one per open object
  std::size_t depth = 0, elements = 0;
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) -> bool {
    if (++elements > kMaxJsonElements) {
      bad_file("header has more than " + std::to_string(kMaxJsonElements) + " JSON elements");
    }
    switch (event) {
      case json::parse_event_t::object_start:
        if (++depth > kMaxJsonDepth) bad_file("header JSON is nested too deeply");
        keys.emplace_back();
        break;
      case json::parse_event_t::array_start:
        if (++depth > kMaxJsonDepth) bad_file("header JSON is nested too deeply");
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        --depth;
        break;
      case json::parse_event_t::array_end:
        --depth;
        break;
      case json::parse_event_t::key: {
        const std::string k = parsed.get<std::string>();
        if (!keys.empty() && !keys.back().insert(k).second) {
          bad_file("header has the key \"" + k.substr(0, 80) + "\" twice");
        }
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + n, cb);
  } catch (const json::exception& e) {
    bad_file(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) bad_file("header is not a JSON object");
  return header;
}

std::vector<std::uint64_t> read_uint_array(const json& v, const std::string& what,
                                           std::size_t min_len, std::size_t max_len) {
  if (!v.is_array() || v.size() < min_len || v.size() > max_len) {
    bad_file(what + " must be an array of " +
             (min_len == max_len ? std::to_string(min_len)
                                 : std::to_string(min_len) + ".." + std::to_string(max_len)) +
             " non-negative integers");
  }
  std::vector<std::uint64_t> out;
  for (const json& e : v) {
    if (!e.is_number_unsigned()) bad_file(what + " must hold non-negative integers");
    out.push_back(e.get<std::uint64_t>());
  }
  return out;
}

TensorEntry read_entry(const std::string& name, const json& v) {
  const std::string where = "tensor \"" + name.substr(0, 80) + "\"";
  if (!v.is_object()) bad_file(where + ": entry is not a JSON object");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets") {
      bad_file(where + ": unknown field \"" + it.key().substr(0, 40) + "\"");
    }
  }
  for (const char* k : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(k)) bad_file(where + ": missing \"" + k + "\"");
  }
  TensorEntry t;
  t.name = name;
  if (!v["dtype"].is_string()) bad_file(where + ": dtype is not a string");
  t.dtype = v["dtype"].get<std::string>();
  if (dtype_size(t.dtype) == 0) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: " + where + ": dtype \"" + t.dtype.substr(0, 16) +
                                    "\" is not supported (F32, F64, F16, BF16)");
  }
  t.shape = read_uint_array(v["shape"], where + ": shape", 0, SLSTM_MAX_DIMS);
  const auto offs = read_uint_array(v["data_offsets"], where + ": data_offsets", 2, 2);
  t.begin = offs[0];
  t.end = offs[1];
  return t;
}

// "layers.<l>.<piece>" -> (l, piece), or false.
bool parse_name(const std::string& name, std::size_t num_layers, std::size_t* layer, int* piece) {
  const std::string prefix = "layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return false;
  const std::string num = name.substr(prefix.size(), dot - prefix.size());
  if (num.empty() || num.size() > 6 || (num.size() > 1 && num[0] == '0')) return false;
  if (!std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  const std::size_t l = std::stoul(num);
  if (l >= num_layers) return false;
  const std::string rest = name.substr(dot + 1);
  for (int p = 0; p < 3; ++p) {
    if (rest == kPieces[p]) {
      *layer = l;
      *piece = p;
      return true;
    }
  }
  return false;
}

}  // namespace

std::size_t model_file_size(const Model& model, const std::string& source_layout) {
  std::size_t data_size = 0;
  const std::string text = header_text(model, check_source_layout(source_layout), &data_size);
  return add_size(add_size(8, text.size(), "model file size"), data_size, "model file size");
}

std::size_t write_model_image(const Model& model, const std::string& source_layout,
                              unsigned char* buf, std::size_t capacity) {
  require_little_endian();
  std::size_t data_size = 0;
  const std::string text = header_text(model, check_source_layout(source_layout), &data_size);
  const std::size_t total =
      add_size(add_size(8, text.size(), "model file size"), data_size, "model file size");
  if (capacity < total) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, "capacity: the model file needs " + std::to_string(total) +
                                       " bytes, got " + std::to_string(capacity));
  }
  const std::uint64_t n = text.size();
  for (int k = 0; k < 8; ++k) buf[k] = static_cast<unsigned char>((n >> (8 * k)) & 0xffu);
  std::memcpy(buf + 8, text.data(), text.size());
  unsigned char* p = buf + 8 + text.size();
  for (const Layer& layer : model.layers()) {
    for (const std::vector<float>* v : {&layer.w_x, &layer.w_h, &layer.bias}) {
      std::memcpy(p, v->data(), v->size() * sizeof(float));
      p += v->size() * sizeof(float);
    }
  }
  return total;
}

ModelPtr read_model_image(const unsigned char* data, std::size_t size) {
  require_little_endian();
  if (size < 8) {
    bad_file("is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | data[k];
  if (n > kMaxHeader) {
    bad_file("header length " + std::to_string(n) + " exceeds the limit of " +
             std::to_string(kMaxHeader) + " bytes");
  }
  if (n > size - 8) {
    bad_file("header length " + std::to_string(n) + " runs past the end of the file (" +
             std::to_string(size) + " bytes)");
  }
  const std::size_t header_len = static_cast<std::size_t>(n);
  const std::size_t data_size = size - 8 - header_len;
  const unsigned char* body = data + 8 + header_len;
  const json header = parse_header(data + 8, header_len);

  // Metadata: the architecture.
  if (!header.contains("__metadata__")) bad_file("header has no \"__metadata__\"");
  const json& meta = header["__metadata__"];
  if (!meta.is_object()) bad_file("\"__metadata__\" is not a JSON object");
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    if (!it.value().is_string()) {
      bad_file("metadata \"" + it.key().substr(0, 40) + "\" is not a string");
    }
  }
  auto meta_str = [&](const char* key) -> std::string {
    if (!meta.contains(key)) bad_file(std::string("metadata has no \"") + key + "\"");
    return meta[key].get<std::string>();
  };
  const std::string tag = meta_str("format");
  if (tag != kFormatTag) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: metadata format is \"" + tag.substr(0, 40) +
                                    "\", expected \"" + kFormatTag + "\"");
  }
  const std::string version = meta_str("format_version");
  if (version != kFormatVersion) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: format_version \"" + version.substr(0, 16) +
                                    "\" is not supported (this library reads " +
                                    kFormatVersion + ")");
  }
  const std::uint64_t input_size = parse_uint(meta_str("input_size"), "metadata input_size", 1,
                                              kMaxExtent);
  std::vector<std::int64_t> hidden;
  {
    const std::string hs = meta_str("hidden_sizes");
    std::size_t start = 0;
    while (true) {
      if (hidden.size() >= kMaxLayers) {
        bad_file("metadata hidden_sizes has more than " + std::to_string(kMaxLayers) + " layers");
      }
      const std::size_t comma = hs.find(',', start);
      const std::string item = hs.substr(start, comma == std::string::npos ? std::string::npos
                                                                           : comma - start);
      hidden.push_back(static_cast<std::int64_t>(
          parse_uint(item, "metadata hidden_sizes[" + std::to_string(hidden.size()) + "]", 1,
                     kMaxExtent)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  float forget_bias = 0.0f;
  {
    const std::string fb = meta_str("forget_bias");
    char* end = nullptr;
    errno = 0;
    const double v = fb.empty() ? NAN : std::strtod(fb.c_str(), &end);
    if (fb.empty() || end != fb.c_str() + fb.size() || !std::isfinite(v) ||
        std::fabs(v) > 3.4028234663852886e38 || std::isspace(static_cast<unsigned char>(fb[0]))) {
      bad_file("metadata forget_bias must be a finite decimal number, got \"" + fb.substr(0, 40) +
               "\"");
    }
    forget_bias = static_cast<float>(v);
  }
  if (meta.contains("source_layout")) check_source_layout(meta["source_layout"].get<std::string>());

  // Tensors: exactly layers.<l>.{W_x, W_h, b} for every layer.
  const std::size_t L = hidden.size();
  std::vector<TensorEntry> found(3 * L);
  std::vector<bool> seen(3 * L, false);
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    std::size_t l = 0;
    int p = 0;
    if (!parse_name(it.key(), L, &l, &p)) {
      bad_file("unexpected tensor \"" + it.key().substr(0, 80) + "\" (a model of " +
               std::to_string(L) + " layers has layers.<l>.W_x, .W_h and .b)");
    }
    found[3 * l + p] = read_entry(it.key(), it.value());
    seen[3 * l + p] = true;
  }
  for (std::size_t k = 0; k < 3 * L; ++k) {
    if (!seen[k]) bad_file("tensor \"" + tensor_name(k / 3, static_cast<int>(k % 3)) + "\" is missing");
  }
  // Shapes against the architecture, byte ranges inside the data section.
  std::uint64_t in = input_size;
  for (std::size_t l = 0; l < L; ++l) {
    const std::uint64_t h = static_cast<std::uint64_t>(hidden[l]);
    for (int p = 0; p < 3; ++p) {
      const TensorEntry& t = found[3 * l + p];
      const auto want = piece_shape(p, in, h);
      if (t.shape != want) {
        fail(SLSTM_ERR_SHAPE_MISMATCH, "model file: tensor \"" + t.name + "\" has shape " +
                                           shape_text(t.shape) + ", the architecture needs " +
                                           shape_text(want));
      }
      std::size_t bytes = dtype_size(t.dtype);
      for (std::uint64_t d : t.shape) {
        bytes = mul_size(bytes, static_cast<std::size_t>(d), "model file tensor size");
      }
      if (t.begin > t.end || t.end > data_size) {
        bad_file("tensor \"" + t.name + "\" data_offsets [" + std::to_string(t.begin) + ", " +
                 std::to_string(t.end) + "] are not inside the data section (" +
                 std::to_string(data_size) + " bytes)");
      }
      if (t.end - t.begin != bytes) {
        bad_file("tensor \"" + t.name + "\" data_offsets span " +
                 std::to_string(t.end - t.begin) + " bytes, its dtype and shape need " +
                 std::to_string(bytes));
      }
    }
    in = h;
  }
  // No overlap, no hole: sorted by begin, the ranges tile [0, data_size).
  std::vector<const TensorEntry*> order;
  for (const auto& t : found) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t pos = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry* t : order) {
    if (t->begin < pos) {
      bad_file("tensors \"" + prev->name + "\" and \"" + t->name + "\" overlap");
    }
    if (t->begin > pos) {
      bad_file("bytes [" + std::to_string(pos) + ", " + std::to_string(t->begin) +
               ") of the data section belong to no tensor");
    }
    pos = t->end;
    prev = t;
  }
  if (pos != data_size) {
    bad_file("bytes [" + std::to_string(pos) + ", " + std::to_string(data_size) +
             ") of the data section belong to no tensor");
  }

  // Every size is now backed by the image: build and fill the model.
  auto model = std::make_shared<Model>(static_cast<std::int64_t>(input_size), hidden, forget_bias);
  for (std::size_t l = 0; l < L; ++l) {
    Layer& layer = model->mutable_layer(l);
    std::vector<float>* parts[3] = {&layer.w_x, &layer.w_h, &layer.bias};
    for (int p = 0; p < 3; ++p) {
      const TensorEntry& t = found[3 * l + p];
      const std::size_t es = dtype_size(t.dtype);
      const unsigned char* src = body + t.begin;
      std::vector<float>& dst = *parts[p];
      for (std::size_t k = 0; k < dst.size(); ++k) {
        const float v = element(src + k * es, t.dtype);
        if (!std::isfinite(v)) {
          bad_file("tensor \"" + t.name + "\" element " + std::to_string(k) +
                   " is not a finite float32");
        }
        dst[k] = v;
      }
    }
  }
  return model;
}

void save_model_file(const Model& model, const std::string& path,
                     const std::string& source_layout) {
  const std::size_t size = model_file_size(model, source_layout);
  std::vector<unsigned char> image(size);
  write_model_image(model, source_layout, image.data(), image.size());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         "path: cannot create \"" + path + "\": " + std::strerror(errno));
  }
  const std::size_t wrote = std::fwrite(image.data(), 1, image.size(), f);
  const int err = wrote == image.size() ? 0 : errno;
  if (std::fclose(f) != 0 || wrote != image.size()) {
    fail(SLSTM_ERR_BACKEND_FAILURE,
         "path: writing \"" + path + "\" failed: " + std::strerror(err ? err : errno));
  }
}

ModelPtr load_model_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: cannot open \"" + path + "\": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: \"" + path + "\" is not a regular file");
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: cannot open \"" + path + "\": " + std::strerror(errno));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> guard(f, &std::fclose);
  std::vector<unsigned char> image;
  unsigned char chunk[1 << 16];
  while (true) {  // read to EOF (the size may change under us; trust what we read)
    const std::size_t got = std::fread(chunk, 1, sizeof chunk, f);
    image.insert(image.end(), chunk, chunk + got);
    if (got < sizeof chunk) break;
  }
  if (std::ferror(f)) {
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: reading \"" + path + "\" failed");
  }
  return read_model_image(image.data(), image.size());
}

}  // namespace slstm
