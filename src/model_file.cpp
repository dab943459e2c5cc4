// Model files in the safetensors format: writer and a validating reader.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a
// multiple of 8), then the tensor bytes. Every value read from a file is checked before it
// is used: the reader allocates nothing whose size is not backed by bytes of the image.
//
// The header is read by a strict JSON parser written for its schema (HeaderParser), which
// keeps only what the reader needs: the metadata strings and, per tensor entry, its name (as
// layer and piece), dtype, shape and data_offsets. Time is linear in the header's size for
// every input (no DOM; tensor names checked as their keys arrive, duplicates found in a
// bitmap, no hashing of keys the file chooses).
#include "model_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace slstm {
namespace {

constexpr const char* kFormatTag = "stacklstm";
constexpr const char* kFormatVersion = "1";
constexpr std::uint64_t kMaxHeader = SLSTM_MODEL_FILE_MAX_HEADER;
constexpr std::size_t kMaxLayers = SLSTM_MAX_LAYERS;
constexpr std::uint64_t kMaxExtent = static_cast<std::uint64_t>(SLSTM_MAX_EXTENT);
constexpr std::size_t kMaxTensors = 3 * kMaxLayers;     // layers.<l>.{W_x, W_h, b}
constexpr std::size_t kMaxMetadataEntries = 1024;       // 6 are ours; others are kept unread
constexpr std::size_t kMaxJsonDepth = 3;                // {tensor: {shape: [..]}}
constexpr const char* kPieces[3] = {"W_x", "W_h", "b"};
// Bytes of tensor data converted per step when reading a file (a multiple of every dtype's
// element size).
constexpr std::size_t kChunk = std::size_t{1} << 20;

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

std::string shape_text(const std::uint64_t* s, std::size_t n) {
  std::string t = "[";
  for (std::size_t k = 0; k < n; ++k) t += (k ? ", " : "") + std::to_string(s[k]);
  return t + "]";
}

// The shortest decimal that reads back as exactly this float (std::to_chars: independent
// of the locale, unlike printf's %g).
std::string format_float(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// A JSON string literal of printable ASCII (source_layout has been checked to be that).
void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

// The header JSON, padded with spaces to a multiple of 8, written straight into a string
// (keys in layer order; the data section follows the same order).
std::string header_text(const Model& model, const std::string& source_layout,
                        std::size_t* data_size) {
  std::string t;
  t.reserve(256 + model.layers().size() * 3 * 96);
  t += "{\"__metadata__\":{\"format\":\"";
  t += kFormatTag;
  t += "\",\"format_version\":\"";
  t += kFormatVersion;
  t += "\",\"input_size\":\"" + std::to_string(model.input_size()) + "\",\"hidden_sizes\":\"";
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    if (l) t += ',';
    t += std::to_string(model.layer(l).hidden_size);
  }
  t += "\",\"forget_bias\":\"" + format_float(model.forget_bias()) + "\",\"source_layout\":";
  append_json_string(t, source_layout);
  t += '}';
  std::size_t offset = 0;
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    const Layer& layer = model.layer(l);
    const std::vector<float>* parts[3] = {&layer.w_x, &layer.w_h, &layer.bias};
    for (int p = 0; p < 3; ++p) {
      const std::size_t bytes = mul_size(parts[p]->size(), sizeof(float), "model file size");
      const auto shape = piece_shape(p, static_cast<std::uint64_t>(layer.input_size),
                                     static_cast<std::uint64_t>(layer.hidden_size));
      const std::size_t end = add_size(offset, bytes, "model file size");
      t += ",\"" + tensor_name(l, p) + "\":{\"dtype\":\"F32\",\"shape\":[";
      for (std::size_t k = 0; k < shape.size(); ++k) {
        if (k) t += ',';
        t += std::to_string(shape[k]);
      }
      t += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
      offset = end;
    }
  }
  t += '}';
  while (t.size() % 8 != 0) t.push_back(' ');
  *data_size = offset;
  return t;
}

// ---- reading: the header ------------------------------------------------------------------

enum class DType : std::uint8_t { F32, F64, F16, BF16 };

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    default: return 2;
  }
}

struct TensorEntry {
  std::uint32_t layer = 0;
  std::uint8_t piece = 0;
  std::uint8_t fields = 0;  // bit f: field f (dtype, shape, data_offsets) was given
  std::uint8_t ndim = 0;
  std::uint8_t noffsets = 0;
  DType dtype = DType::F32;
  std::uint64_t shape[SLSTM_MAX_DIMS] = {};
  std::uint64_t offsets[2] = {};

  std::string name() const { return tensor_name(layer, piece); }
  std::uint64_t begin() const { return offsets[0]; }
  std::uint64_t end() const { return offsets[1]; }
};

// "layers.<l>.<piece>" with l a canonical decimal below SLSTM_MAX_LAYERS -> (l, piece).
bool parse_name(const std::string& name, std::uint32_t* layer, std::uint8_t* piece) {
  static const std::string prefix = "layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  std::size_t k = prefix.size();
  std::uint64_t l = 0;
  const std::size_t first = k;
  while (k < name.size() && name[k] >= '0' && name[k] <= '9' && k - first < 7) {
    l = l * 10 + static_cast<std::uint64_t>(name[k] - '0');
    ++k;
  }
  const std::size_t digits = k - first;
  if (digits == 0 || (digits > 1 && name[first] == '0') || l >= kMaxLayers) return false;
  if (k >= name.size() || name[k] != '.') return false;
  const char* rest = name.c_str() + k + 1;
  const std::size_t rest_len = name.size() - k - 1;
  for (std::uint8_t p = 0; p < 3; ++p) {
    if (rest_len == std::strlen(kPieces[p]) && std::memcmp(rest, kPieces[p], rest_len) == 0) {
      *layer = static_cast<std::uint32_t>(l);
      *piece = p;
      return true;
    }
  }
  return false;
}

// What the header holds, as far as the reader needs it.
struct Header {
  bool has_metadata = false;
  std::map<std::string, std::string> metadata;  // at most kMaxMetadataEntries
  std::vector<TensorEntry> tensors;            // in the header's order, names unique
};

// A strict JSON parser (RFC 8259: UTF-8 checked, escapes decoded, surrogates paired) for
// exactly the header's schema: {"__metadata__": {key: string, ...}, "layers.<l>.<piece>":
// {"dtype": string, "shape": [uint, ...], "data_offsets": [uint, uint]}, ...}. A value of
// the wrong kind is rejected when its first byte is seen; tensor names are checked as their
// key arrives and duplicates found in a bitmap (no hashing of keys a file chooses). Every
// byte is looked at a bounded number of times: time is linear in the header's size, and
// the schema bounds the nesting (3), so there is no recursion.
class HeaderParser {
 public:
  HeaderParser(const unsigned char* text, std::size_t n, Header* out)
      : begin_(text), p_(text), end_(text + n), h_(out), seen_((kMaxTensors + 63) / 64, 0) {}

  void parse() {
    object([this](std::string& k) { top_level_value(k); });
    if (p_ != end_) syntax("bytes after the header's JSON object (only spaces may pad it)");
  }

 private:
  [[noreturn]] void syntax(const char* what) const {
    bad_file(std::string("header is not valid JSON: ") + what + " at byte " +
             std::to_string(p_ - begin_));
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  int peek() {
    ws();
    return p_ < end_ ? *p_ : -1;
  }
  void expect(char c) {
    if (peek() != static_cast<unsigned char>(c)) {
      const char what[] = {'e', 'x', 'p', 'e', 'c', 't', 'e', 'd', ' ', '\'', c, '\'', 0};
      syntax(what);
    }
    ++p_;
  }

  // Whether c can begin a JSON value.
  static bool value_start(int c) {
    return c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' ||
           c == 'f' || c == 'n';
  }
  // The next value must begin with `first`: else the schema's message (a value of another
  // kind) or a syntax error (no value at all).
  template <class Message>
  void require(char first, Message&& message) {
    const int c = peek();
    if (c == static_cast<unsigned char>(first)) return;
    if (value_start(c)) bad_file(message());
    syntax("expected a value");
  }

  // Iterates the members of the object whose '{' is next: key(k) consumes the ':' and the
  // value.
  template <class OnMember>
  void object(OnMember&& member) {
    expect('{');
    if (peek() == '}') {
      ++p_;
      return;
    }
    while (true) {
      if (peek() != '"') syntax("expected a key");
      std::string k = string();
      expect(':');
      member(k);
      const int c = peek();
      if (c != ',' && c != '}') syntax("expected ',' or '}'");
      ++p_;
      if (c == '}') return;
    }
  }

  void top_level_value(std::string& k) {
    if (k == "__metadata__") {
      if (h_->has_metadata) bad_file("header has the key \"__metadata__\" twice");
      h_->has_metadata = true;
      require('{', [] { return std::string("\"__metadata__\" is not a JSON object"); });
      object([this](std::string& key) {
        if (h_->metadata.size() >= kMaxMetadataEntries) {
          bad_file("\"__metadata__\" has more than " + std::to_string(kMaxMetadataEntries) +
                   " entries");
        }
        require('"', [&] { return "metadata \"" + key.substr(0, 40) + "\" is not a string"; });
        std::string value = string();
        const auto ins = h_->metadata.emplace(std::move(key), std::move(value));
        if (!ins.second) {
          bad_file("header has the key \"" + ins.first->first.substr(0, 80) + "\" twice");
        }
      });
      return;
    }
    TensorEntry t;
    if (!parse_name(k, &t.layer, &t.piece)) {
      bad_file("unexpected tensor \"" + k.substr(0, 80) +
               "\" (a model file has only layers.<l>.W_x, .W_h and .b, l < " +
               std::to_string(kMaxLayers) + ")");
    }
    const std::size_t slot = 3 * std::size_t{t.layer} + t.piece;
    std::uint64_t& word = seen_[slot / 64];
    const std::uint64_t bit = std::uint64_t{1} << (slot % 64);
    if (word & bit) bad_file("header has the key \"" + k + "\" twice");
    word |= bit;
    const auto where = [&t]() { return "tensor \"" + t.name() + "\""; };
    require('{', [&] { return where() + ": entry is not a JSON object"; });
    object([&](const std::string& field) {
      int f;
      if (field == "dtype") {
        f = 0;
      } else if (field == "shape") {
        f = 1;
      } else if (field == "data_offsets") {
        f = 2;
      } else {
        bad_file(where() + ": unknown field \"" + field.substr(0, 40) + "\"");
      }
      if (t.fields & (1u << f)) bad_file(where() + ": the key \"" + field + "\" twice");
      t.fields = static_cast<std::uint8_t>(t.fields | (1u << f));
      if (f == 0) {
        require('"', [&] { return where() + ": dtype is not a string"; });
        const std::string s = string();
        if (s == "F32") {
          t.dtype = DType::F32;
        } else if (s == "F64") {
          t.dtype = DType::F64;
        } else if (s == "F16") {
          t.dtype = DType::F16;
        } else if (s == "BF16") {
          t.dtype = DType::BF16;
        } else {
          fail(SLSTM_ERR_UNSUPPORTED, "model file: " + where() + ": dtype \"" + s.substr(0, 16) +
                                          "\" is not supported (F32, F64, F16, BF16)");
        }
      } else {
        std::uint64_t* out = f == 1 ? t.shape : t.offsets;
        std::uint8_t& count = f == 1 ? t.ndim : t.noffsets;
        uint_array(t, f, out, &count, f == 1 ? SLSTM_MAX_DIMS : 2);
        if (f == 2 && count != 2) bad_file(array_what(t, f));
      }
    });
    const char* names[3] = {"dtype", "shape", "data_offsets"};
    for (int f = 0; f < 3; ++f) {
      if ((t.fields & (1u << f)) == 0) bad_file(where() + ": missing \"" + names[f] + "\"");
    }
    h_->tensors.push_back(t);
  }

  static std::string array_what(const TensorEntry& t, int f) {
    return "tensor \"" + t.name() + "\": " +
           (f == 1 ? "shape must be an array of 0.." + std::to_string(SLSTM_MAX_DIMS) +
                         " non-negative integers"
                   : std::string("data_offsets must be an array of 2 non-negative integers"));
  }

  // [u, u, ...] of at most max unsigned integers that fit in 64 bits (field f of t).
  void uint_array(const TensorEntry& t, int f, std::uint64_t* out, std::uint8_t* count,
                  std::size_t max) {
    const auto what = [&]() { return array_what(t, f); };
    require('[', what);
    ++p_;
    if (peek() == ']') {
      ++p_;
      return;
    }
    while (true) {
      const int c = peek();
      if (c == '[' || c == '{') bad_file("header JSON is nested too deeply (" + what() + ")");
      if (c < '0' || c > '9') {
        if (value_start(c)) bad_file(what());  // a sign, a string, a literal
        syntax("expected a value");
      }
      if (*count >= max) bad_file(what());
      std::uint64_t v = 0;
      const unsigned char* first = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        const std::uint64_t d = static_cast<std::uint64_t>(*p_ - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) bad_file(what());
        v = v * 10 + d;
        ++p_;
      }
      if (*first == '0' && p_ - first > 1) syntax("a number with a leading zero");
      if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) bad_file(what());
      out[(*count)++] = v;
      const int n = peek();
      if (n != ',' && n != ']') syntax("expected ',' or ']'");
      ++p_;
      if (n == ']') return;
    }
  }

  // The string whose '"' is next, decoded.
  std::string string() {
    ++p_;  // the opening quote (the callers peeked it)
    std::string out;
    const unsigned char* run = p_;
    while (true) {
      if (p_ >= end_) syntax("unterminated string");
      const unsigned char c = *p_;
      if (c == '"') {
        out.append(run, p_);
        ++p_;
        return out;
      }
      if (c == '\\') {
        out.append(run, p_);
        escape(out);
        run = p_;
      } else if (c < 0x20) {
        syntax("a control character in a string");
      } else if (c < 0x80) {
        ++p_;
      } else {
        utf8();
      }
    }
  }

  unsigned hex4() {
    if (end_ - p_ < 4) syntax("a truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = *p_++;
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10u;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10u;
      } else {
        syntax("a \\u escape that is not 4 hexadecimal digits");
      }
      v = v * 16 + d;
    }
    return v;
  }

  void escape(std::string& out) {
    ++p_;  // the backslash
    if (p_ >= end_) syntax("unterminated string");
    const unsigned char c = *p_++;
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: syntax("an invalid escape");
    }
    std::uint32_t cp = hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) syntax("a lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') syntax("a lone high surrogate");
      p_ += 2;
      const std::uint32_t lo = hex4();
      if (lo < 0xDC00 || lo > 0xDFFF) syntax("a lone high surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // One multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF).
  void utf8() {
    const unsigned char c = *p_;
    int n;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      syntax("invalid UTF-8");
    }
    if (end_ - p_ <= n) syntax("invalid UTF-8");
    if (p_[1] < lo || p_[1] > hi) syntax("invalid UTF-8");
    for (int k = 2; k <= n; ++k) {
      if (p_[k] < 0x80 || p_[k] > 0xBF) syntax("invalid UTF-8");
    }
    p_ += n + 1;
  }

  const unsigned char* const begin_;
  const unsigned char* p_;
  const unsigned char* const end_;
  Header* h_;
  std::vector<std::uint64_t> seen_;  // bit 3l+p: layers.<l>.<p> was given
};

// The header bytes as the safetensors format allows them: '{' first (no byte-order mark, no
// leading whitespace), one JSON object, then only spaces (0x20) as padding. A NUL byte is
// named as such wherever it is.
Header parse_header(const unsigned char* text, std::size_t n) {
  if (n == 0 || text[0] != '{') {
    bad_file("header is not a JSON object (it must begin with '{', no byte-order mark or "
             "whitespace before it)");
  }
  if (const void* nul = std::memchr(text, 0, n)) {
    bad_file("header has a NUL byte at offset " +
             std::to_string(static_cast<const unsigned char*>(nul) - text));
  }
  std::size_t len = n;
  while (len > 0 && text[len - 1] == ' ') --len;
  Header h;
  HeaderParser(text, len, &h).parse();
  return h;
}

// A decimal integer in [lo, hi], digits only (no sign, no spaces, no leading zeros).
std::uint64_t parse_uint(const std::string& s, const std::string& what, std::uint64_t lo,
                         std::uint64_t hi) {
  const bool digits = !s.empty() && s.size() <= 19 &&
                      std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || (s.size() > 1 && s[0] == '0')) {
    bad_file(what + " must be a decimal integer, got \"" + s.substr(0, 40) + "\"");
  }
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  if (v < lo || v > hi) {
    bad_file(what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
             "], got " + s);
  }
  return v;
}

// A number in JSON's decimal syntax, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, rounded
// to the nearest float (std::from_chars: correctly rounded, independent of the locale; a
// value too small for a float becomes +-0 like any rounding). Hexadecimal, inf, nan, a
// leading '+' or spaces are refused, and so is a value that is not a finite float
// (|v| >= FLT_MAX + half an ulp).
bool parse_decimal_float(const std::string& s, float* out) {
  const char* p = s.c_str();
  const char* const end = p + s.size();
  auto digits = [&]() {
    const char* q = p;
    while (p < end && *p >= '0' && *p <= '9') ++p;
    return p - q;
  };
  const bool negative = p < end && *p == '-';
  if (negative) ++p;
  const char* const int_start = p;
  const auto n_int = digits();
  if (n_int == 0 || (n_int > 1 && *int_start == '0')) return false;
  const char* const int_end = p;
  const char* frac_start = p;
  const char* frac_end = p;
  if (p < end && *p == '.') {
    frac_start = ++p;
    if (digits() == 0) return false;
    frac_end = p;
  }
  long long exponent = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    const bool exp_negative = p < end && *p == '-';
    if (p < end && (*p == '+' || *p == '-')) ++p;
    const char* const exp_start = p;
    if (digits() == 0) return false;
    for (const char* q = exp_start; q < p; ++q) {
      exponent = std::min(exponent * 10 + (*q - '0'), 1000000000000LL);  // saturates
    }
    if (exp_negative) exponent = -exponent;
  }
  if (p != end) return false;
  float v = 0.0f;
  const auto r = std::from_chars(s.data(), end, v, std::chars_format::general);
  if (r.ptr != end) return false;
  if (r.ec == std::errc::result_out_of_range) {
    // Overflow (refused) or underflow (the nearest float is +-0): the decimal exponent of
    // the leading non-zero digit tells them apart (>= 38 or <= -46 here).
    const char* nz = std::find_if(int_start, int_end, [](char c) { return c != '0'; });
    long long e10;
    if (nz != int_end) {
      e10 = (int_end - nz) - 1;
    } else {
      nz = std::find_if(frac_start, frac_end, [](char c) { return c != '0'; });
      e10 = -(nz - frac_start) - 1;
    }
    if (e10 + exponent >= 0) return false;
    v = negative ? -0.0f : 0.0f;
  } else if (r.ec != std::errc() || !std::isfinite(v)) {
    return false;
  }
  *out = v;
  return true;
}

// ---- reading: conversion of the tensor bytes ------------------------------------------------

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

// A double rounded to float as the FPU does (round to nearest, ties to even), without the
// undefined behaviour of converting an out-of-range double: finite values below
// FLT_MAX + 2^103 (half an ulp at FLT_MAX) round to at most FLT_MAX; from there on the
// result is infinite (returned as NaN: rejected by the caller like every non-finite value).
float double_to_float(double v) {
  constexpr double kFltMax = static_cast<double>(std::numeric_limits<float>::max());
  constexpr double kLimit = kFltMax + 0x1p103;
  if (!(std::fabs(v) < kLimit)) return std::numeric_limits<float>::quiet_NaN();
  if (v > kFltMax) return std::numeric_limits<float>::max();
  if (v < -kFltMax) return -std::numeric_limits<float>::max();
  return static_cast<float>(v);
}

// Converts n elements of dtype d at src into dst; returns the index of the first element
// that is not a finite float32, or n.
std::size_t convert(const unsigned char* src, DType d, std::size_t n, float* dst) {
  switch (d) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      break;
    case DType::F64:
      for (std::size_t k = 0; k < n; ++k) {
        double v;
        std::memcpy(&v, src + 8 * k, 8);
        dst[k] = double_to_float(v);
      }
      break;
    case DType::F16:
      for (std::size_t k = 0; k < n; ++k) {
        std::uint16_t u;
        std::memcpy(&u, src + 2 * k, 2);
        dst[k] = half_to_float(u);
      }
      break;
    case DType::BF16:
      for (std::size_t k = 0; k < n; ++k) {
        std::uint16_t u;
        std::memcpy(&u, src + 2 * k, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(u) << 16;
        std::memcpy(dst + k, &bits, 4);
      }
      break;
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(dst[k])) return k;
  }
  return n;
}

// Everything the header says, validated against itself and the data section's size.
struct Plan {
  std::uint64_t input_size = 0;
  std::vector<std::int64_t> hidden;
  float forget_bias = 0.0f;
  std::vector<TensorEntry> tensors;  // sorted by begin: they tile [0, data_size)
};

Plan plan_model(const unsigned char* header_bytes, std::size_t header_len,
                std::uint64_t data_size) {
  Header header = parse_header(header_bytes, header_len);

  // Metadata: the architecture.
  if (!header.has_metadata) bad_file("header has no \"__metadata__\"");
  auto meta_str = [&](const char* key) -> const std::string& {
    const auto it = header.metadata.find(key);
    if (it == header.metadata.end()) bad_file(std::string("metadata has no \"") + key + "\"");
    return it->second;
  };
  const std::string& tag = meta_str("format");
  if (tag != kFormatTag) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: metadata format is \"" + tag.substr(0, 40) +
                                    "\", expected \"" + kFormatTag + "\"");
  }
  const std::string& version = meta_str("format_version");
  if (version != kFormatVersion) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: format_version \"" + version.substr(0, 16) +
                                    "\" is not supported (this library reads " +
                                    kFormatVersion + ")");
  }
  Plan plan;
  plan.input_size =
      parse_uint(meta_str("input_size"), "metadata input_size", 1, kMaxExtent);
  {
    const std::string& hs = meta_str("hidden_sizes");
    std::size_t start = 0;
    while (true) {
      if (plan.hidden.size() >= kMaxLayers) {
        bad_file("metadata hidden_sizes has more than " + std::to_string(kMaxLayers) +
                 " layers (SLSTM_MAX_LAYERS)");
      }
      const std::size_t comma = hs.find(',', start);
      const std::string item = hs.substr(start, comma == std::string::npos ? std::string::npos
                                                                           : comma - start);
      plan.hidden.push_back(static_cast<std::int64_t>(
          parse_uint(item, "metadata hidden_sizes[" + std::to_string(plan.hidden.size()) + "]",
                     1, kMaxExtent)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  {
    const std::string& fb = meta_str("forget_bias");
    if (!parse_decimal_float(fb, &plan.forget_bias)) {
      bad_file("metadata forget_bias must be a decimal number (JSON number syntax) whose "
               "value is a finite float, got \"" + fb.substr(0, 40) + "\"");
    }
  }
  const auto sl = header.metadata.find("source_layout");
  if (sl != header.metadata.end()) check_source_layout(sl->second);

  // Tensors: exactly layers.<l>.{W_x, W_h, b} for every layer (names are unique already).
  const std::size_t L = plan.hidden.size();
  std::vector<const TensorEntry*> found(3 * L, nullptr);
  for (const TensorEntry& t : header.tensors) {
    if (t.layer >= L) {
      bad_file("unexpected tensor \"" + t.name() + "\" (a model of " + std::to_string(L) +
               " layers has layers.<l>.W_x, .W_h and .b)");
    }
    found[3 * std::size_t{t.layer} + t.piece] = &t;
  }
  for (std::size_t k = 0; k < 3 * L; ++k) {
    if (found[k] == nullptr) {
      bad_file("tensor \"" + tensor_name(k / 3, static_cast<int>(k % 3)) + "\" is missing");
    }
  }
  // Shapes against the architecture, byte ranges inside the data section.
  std::uint64_t in = plan.input_size;
  for (std::size_t l = 0; l < L; ++l) {
    const std::uint64_t h = static_cast<std::uint64_t>(plan.hidden[l]);
    for (int p = 0; p < 3; ++p) {
      const TensorEntry& t = *found[3 * l + p];
      const auto want = piece_shape(p, in, h);
      if (t.ndim != want.size() || !std::equal(want.begin(), want.end(), t.shape)) {
        fail(SLSTM_ERR_SHAPE_MISMATCH, "model file: tensor \"" + t.name() + "\" has shape " +
                                           shape_text(t.shape, t.ndim) +
                                           ", the architecture needs " +
                                           shape_text(want.data(), want.size()));
      }
      std::size_t bytes = dtype_size(t.dtype);
      for (std::size_t d = 0; d < t.ndim; ++d) {
        bytes = mul_size(bytes, static_cast<std::size_t>(t.shape[d]), "model file tensor size");
      }
      if (t.begin() > t.end() || t.end() > data_size) {
        bad_file("tensor \"" + t.name() + "\" data_offsets [" + std::to_string(t.begin()) +
                 ", " + std::to_string(t.end()) + "] are not inside the data section (" +
                 std::to_string(data_size) + " bytes)");
      }
      if (t.end() - t.begin() != bytes) {
        bad_file("tensor \"" + t.name() + "\" data_offsets span " +
                 std::to_string(t.end() - t.begin()) + " bytes, its dtype and shape need " +
                 std::to_string(bytes));
      }
    }
    in = h;
  }
  // No overlap, no hole: sorted by begin, the ranges tile [0, data_size).
  plan.tensors = std::move(header.tensors);
  std::sort(plan.tensors.begin(), plan.tensors.end(),
            [](const TensorEntry& a, const TensorEntry& b) {
              return a.begin() != b.begin() ? a.begin() < b.begin() : a.end() < b.end();
            });
  std::uint64_t pos = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry& t : plan.tensors) {
    if (t.begin() < pos) {
      bad_file("tensors \"" + prev->name() + "\" and \"" + t.name() + "\" overlap");
    }
    if (t.begin() > pos) {
      bad_file("bytes [" + std::to_string(pos) + ", " + std::to_string(t.begin()) +
               ") of the data section belong to no tensor");
    }
    pos = t.end();
    prev = &t;
  }
  if (pos != data_size) {
    bad_file("bytes [" + std::to_string(pos) + ", " + std::to_string(data_size) +
             ") of the data section belong to no tensor");
  }
  return plan;
}

// Builds the model (its one allocation) and fills it from the data section, read front to
// back in pieces of at most kChunk bytes: next(n) returns the next n bytes.
template <class Next>
ModelPtr build_model(const Plan& plan, Next&& next) {
  auto model = std::make_shared<Model>(static_cast<std::int64_t>(plan.input_size), plan.hidden,
                                       plan.forget_bias);
  for (const TensorEntry& t : plan.tensors) {
    Layer& layer = model->mutable_layer(t.layer);
    std::vector<float>* parts[3] = {&layer.w_x, &layer.w_h, &layer.bias};
    float* dst = parts[t.piece]->data();
    const std::size_t count = parts[t.piece]->size();
    const std::size_t es = dtype_size(t.dtype);
    for (std::size_t done = 0; done < count;) {
      const std::size_t n = std::min(count - done, kChunk / es);
      const unsigned char* src = next(n * es);
      const std::size_t bad = convert(src, t.dtype, n, dst + done);
      if (bad != n) {
        bad_file("tensor \"" + t.name() + "\" element " + std::to_string(done + bad) +
                 " is not a finite float32");
      }
      done += n;
    }
  }
  return model;
}

// The header length N from the first 8 bytes, checked against the limit and the image size.
std::size_t header_length(const unsigned char* first8, std::uint64_t size) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | first8[k];
  if (n > kMaxHeader) {
    bad_file("header length " + std::to_string(n) + " exceeds the limit of " +
             std::to_string(kMaxHeader) + " bytes");
  }
  if (n > size - 8) {
    bad_file("header length " + std::to_string(n) + " runs past the end of the file (" +
             std::to_string(size) + " bytes)");
  }
  return static_cast<std::size_t>(n);
}

void check_min_size(std::uint64_t size) {
  if (size < 8) {
    bad_file("is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
}

// ---- files ------------------------------------------------------------------------------------

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Reads exactly n bytes (fewer only at the end of the file); returns the count read.
std::size_t read_full(int fd, unsigned char* buf, std::size_t n, const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, std::min<std::size_t>(n - got, std::size_t{1} << 30));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(SLSTM_ERR_BACKEND_FAILURE,
           "path: reading \"" + path + "\" failed: " + std::strerror(errno));
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

void write_full(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<std::size_t>(n, std::size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category());
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::atomic<unsigned> g_temp_counter{0};

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
  check_min_size(size);
  const std::size_t header_len = header_length(data, size);
  const std::uint64_t data_size = size - 8 - header_len;
  const Plan plan = plan_model(data + 8, header_len, data_size);
  const unsigned char* p = data + 8 + header_len;
  return build_model(plan, [&p](std::size_t n) {
    const unsigned char* q = p;
    p += n;
    return q;
  });
}

// Atomic replacement: the image goes to a new file beside the target (same directory, so the
// same file system), which is flushed to disk, then renamed over the target. Any failure
// before the rename removes the temporary and leaves the target as it was.
void save_model_file(const Model& model, const std::string& path,
                     const std::string& source_layout) {
  require_little_endian();
  std::size_t data_size = 0;
  const std::string text = header_text(model, check_source_layout(source_layout), &data_size);
  add_size(add_size(8, text.size(), "model file size"), data_size, "model file size");

  // The file the name refers to: a symbolic link is followed (its target is replaced).
  std::string target = path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    if (char* real = ::realpath(path.c_str(), nullptr)) {
      target = real;
      std::free(real);
    }
  }
  const bool exists = ::stat(target.c_str(), &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: \"" + path + "\" is not a regular file");
  }
  const std::size_t slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : target.substr(0, slash);
  const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);

  // A new file of our own (O_EXCL), named after the target and hidden; mode 0666 less the
  // umask, as fopen would create it, or the old file's mode.
  std::string temp;
  int f = -1;
  for (int attempt = 0; f < 0; ++attempt) {
    temp = (dir == "/" ? "" : dir) + "/." + base.substr(0, 160) + ".tmp-" +
           std::to_string(::getpid()) + "-" + std::to_string(g_temp_counter++);
    f = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f < 0 && (errno != EEXIST || attempt >= 100)) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "path: cannot create \"" + path + "\": " + std::strerror(errno));
    }
  }
  Fd fd(f);
  try {
    if (exists) ::fchmod(fd.get(), st.st_mode & 07777);  // best effort
    unsigned char len[8];
    const std::uint64_t n = text.size();
    for (int k = 0; k < 8; ++k) len[k] = static_cast<unsigned char>((n >> (8 * k)) & 0xffu);
    write_full(fd.get(), len, 8);
    write_full(fd.get(), text.data(), text.size());
    for (const Layer& layer : model.layers()) {
      for (const std::vector<float>* v : {&layer.w_x, &layer.w_h, &layer.bias}) {
        write_full(fd.get(), v->data(), v->size() * sizeof(float));
      }
    }
    if (::fsync(fd.get()) != 0) throw std::system_error(errno, std::generic_category());
    if (::close(fd.release()) != 0) throw std::system_error(errno, std::generic_category());
    if (::rename(temp.c_str(), target.c_str()) != 0) {
      throw std::system_error(errno, std::generic_category());
    }
  } catch (const std::system_error& e) {
    fd.reset();
    ::unlink(temp.c_str());
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: writing \"" + path + "\" failed: " +
                                        std::strerror(e.code().value()) +
                                        " (the file there before, if any, is unchanged)");
  } catch (...) {
    fd.reset();
    ::unlink(temp.c_str());
    throw;
  }
  // Make the rename itself durable (best effort: the new file is in place already).
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
}

// The header length first (8 bytes), checked against the size fstat reports; then the
// header, validated completely; only then the model's allocation and the tensor bytes, read
// front to back in kChunk pieces and converted in place (no copy of the whole file).
ModelPtr load_model_file(const std::string& path) {
  require_little_endian();
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: cannot open \"" + path + "\": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: cannot stat \"" + path + "\": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: \"" + path + "\" is not a regular file");
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t pos = 0;
  auto changed = [&]() {
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: \"" + path + "\" ended at byte " +
                                        std::to_string(pos) + " of the " + std::to_string(size) +
                                        " it had when opened (did it change while being read?)");
  };
  check_min_size(size);
  unsigned char first8[8];
  pos += read_full(fd.get(), first8, 8, path);
  if (pos != 8) changed();
  const std::size_t header_len = header_length(first8, size);
  Plan plan;
  {
    std::vector<unsigned char> header(header_len);
    pos += read_full(fd.get(), header.data(), header_len, path);
    if (pos != 8 + header_len) changed();
    plan = plan_model(header.data(), header_len, size - 8 - header_len);
  }
  // The data section through one buffer of at most kChunk bytes, refilled with as much as
  // fits (a tensor's bytes are handed out whole or in kChunk pieces, so they always fit).
  const std::uint64_t data_end = size;
  std::vector<unsigned char> buf(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - pos)));
  std::size_t lo = 0, hi = 0;  // buf[lo, hi) is read and not yet handed out
  return build_model(plan, [&](std::size_t n) {
    if (hi - lo < n) {
      std::memmove(buf.data(), buf.data() + lo, hi - lo);
      hi -= lo;
      lo = 0;
      const std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(buf.size() - hi, data_end - pos));
      const std::size_t got = read_full(fd.get(), buf.data() + hi, want, path);
      pos += got;
      hi += got;
      if (hi < n) changed();
    }
    const unsigned char* p = buf.data() + lo;
    lo += n;
    return p;
  });
}

}  // namespace slstm
