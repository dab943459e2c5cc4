// The strict JSON parser for the model file's header (src/model_file/json_header.hpp).
//
// No DOM: tensor names are checked as their keys arrive, duplicates found in a bitmap, no
// hashing of keys the file chooses, so time is linear in the header's size for every input.
#include "json_header.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

namespace slstm {
namespace model_file {
namespace {

// "layers.<l>.<piece>" or "layers.<l>.reverse.<piece>" with l a canonical decimal below
// SLSTM_MAX_LAYERS and piece one of kPieces -> (l, direction, piece).
bool parse_name(const std::string& name, std::uint32_t* layer, std::uint8_t* direction,
                std::uint8_t* piece) {
  static const std::string prefix = "layers.";
  static const std::string reverse = "reverse.";
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
  ++k;
  std::uint8_t d = 0;
  if (name.compare(k, reverse.size(), reverse) == 0) {
    d = 1;
    k += reverse.size();
  }
  const char* rest = name.c_str() + k;
  const std::size_t rest_len = name.size() - k;
  for (std::uint8_t p = 0; p < kNumPieces; ++p) {
    if (rest_len == std::strlen(kPieces[p]) && std::memcmp(rest, kPieces[p], rest_len) == 0) {
      *layer = static_cast<std::uint32_t>(l);
      *direction = d;
      *piece = p;
      return true;
    }
  }
  return false;
}

// A strict JSON parser (RFC 8259: UTF-8 checked, escapes decoded, surrogates paired) for
// exactly the header's schema: {"__metadata__": {key: string, ...},
// "layers.<l>[.reverse].<piece>": {"dtype": string, "shape": [uint, ...], "data_offsets":
// [uint, uint]}, ...}. A value of
// the wrong kind is rejected when its first byte is seen; tensor names are checked as their
// key arrives and duplicates found in a bitmap (no hashing of keys a file chooses). Every
// byte is looked at a bounded number of times: time is linear in the header's size, and
// the schema bounds the nesting (3), so there is no recursion.
class HeaderParser {
 public:
  HeaderParser(const unsigned char* text, std::size_t n, Header* out,
               void (*on_unexpected_tensor)(const Header&))
      : begin_(text),
        p_(text),
        end_(text + n),
        h_(out),
        on_unexpected_tensor_(on_unexpected_tensor) {}

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
      metadata_object();
    } else {
      tensor_entry(k);
    }
  }

  // The "__metadata__" object: string values only, at most kMaxMetadataEntries, keys unique.
  void metadata_object() {
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
  }

  // The entry of tensor `k`: its name checked (and not seen before) as the key arrives, then
  // {"dtype": ..., "shape": [..], "data_offsets": [begin, end]}, each field exactly once.
  void tensor_entry(const std::string& k) {
    TensorEntry t;
    if (!parse_name(k, &t.layer, &t.direction, &t.piece)) {
      if (on_unexpected_tensor_ != nullptr) on_unexpected_tensor_(*h_);
      bad_file("unexpected tensor \"" + k.substr(0, 80) +
               "\" (a model file's tensors are layers.<l>.<piece> and "
               "layers.<l>.reverse.<piece>, l < " + std::to_string(kMaxLayers) +
               ", piece one of W_x, W_h, b, b_x, b_h, w_peep, W_proj)");
    }
    mark_seen(k, t);
    require('{', [&] { return where(t) + ": entry is not a JSON object"; });
    object([&](const std::string& field) { tensor_field(t, field); });
    const char* names[3] = {"dtype", "shape", "data_offsets"};
    for (int f = 0; f < 3; ++f) {
      if ((t.fields & (1u << f)) == 0) bad_file(where(t) + ": missing \"" + names[f] + "\"");
    }
    h_->tensors.push_back(t);
  }

  // Records tensor t's name in the duplicate bitmap (one bit per possible name, grown as
  // names arrive: at most kMaxTensorSlots bits); a name given twice is refused.
  void mark_seen(const std::string& k, const TensorEntry& t) {
    const std::size_t slot =
        (std::size_t{t.layer} * kMaxDirections + t.direction) * kNumPieces + t.piece;
    if (slot / 64 >= seen_.size()) {
      seen_.resize(std::min((kMaxTensorSlots + 63) / 64,
                            std::max(slot / 64 + 1, 2 * seen_.size())), 0);
    }
    std::uint64_t& word = seen_[slot / 64];
    const std::uint64_t bit = std::uint64_t{1} << (slot % 64);
    if (word & bit) bad_file("header has the key \"" + k + "\" twice");
    word |= bit;
  }

  static std::string where(const TensorEntry& t) { return "tensor \"" + t.name() + "\""; }

  // One field of a tensor entry (the ':' consumed, the value next).
  void tensor_field(TensorEntry& t, const std::string& field) {
    int f;
    if (field == "dtype") {
      f = 0;
    } else if (field == "shape") {
      f = 1;
    } else if (field == "data_offsets") {
      f = 2;
    } else {
      bad_file(where(t) + ": unknown field \"" + field.substr(0, 40) + "\"");
    }
    if (t.fields & (1u << f)) bad_file(where(t) + ": the key \"" + field + "\" twice");
    t.fields = static_cast<std::uint8_t>(t.fields | (1u << f));
    if (f == 0) {
      t.dtype = dtype_value(t);
    } else {
      std::uint64_t* out = f == 1 ? t.shape : t.offsets;
      std::uint8_t& count = f == 1 ? t.ndim : t.noffsets;
      uint_array(t, f, out, &count, f == 1 ? SLSTM_MAX_DIMS : 2);
      if (f == 2 && count != 2) bad_file(array_what(t, f));
    }
  }

  // The dtype string of tensor t: one of the four the reader converts.
  WireDType dtype_value(const TensorEntry& t) {
    require('"', [&] { return where(t) + ": dtype is not a string"; });
    const std::string s = string();
    if (s == "F32") return WireDType::F32;
    if (s == "F64") return WireDType::F64;
    if (s == "F16") return WireDType::F16;
    if (s == "BF16") return WireDType::BF16;
    fail(SLSTM_ERR_UNSUPPORTED, "model file: " + where(t) + ": dtype \"" + s.substr(0, 16) +
                                    "\" is not supported (F32, F64, F16, BF16)");
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
  void (*on_unexpected_tensor_)(const Header&);
  std::vector<std::uint64_t> seen_;  // bit (2l+d)*kNumPieces+p: that tensor was given
};

}  // namespace

Header parse_header(const unsigned char* text, std::size_t n,
                    void (*on_unexpected_tensor)(const Header&)) {
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
  HeaderParser(text, len, &h, on_unexpected_tensor).parse();
  return h;
}

}  // namespace model_file
}  // namespace slstm
