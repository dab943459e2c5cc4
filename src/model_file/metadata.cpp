// The model file's metadata (__metadata__, all strings) read into the architecture
// (src/model_file/reader.hpp, read_architecture): format and version first, then the sizes,
// then forget_bias (decimal, correctly rounded, locale-independent) and source_layout.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

#include "model_file/reader.hpp"

namespace slstm {
namespace model_file {
namespace {

constexpr const char* kFormatVersion = "1";

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

// The value of metadata `key`, which must be present.
const std::string& meta_str(const Header& header, const char* key) {
  const auto it = header.metadata.find(key);
  if (it == header.metadata.end()) bad_file(std::string("metadata has no \"") + key + "\"");
  return it->second;
}

// "format" is ours and "format_version" one this library reads.
void check_format(const Header& header) {
  const std::string& tag = meta_str(header, "format");
  if (tag != kFormatTag) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: metadata format is \"" + tag.substr(0, 40) +
                                    "\", expected \"" + kFormatTag + "\"");
  }
  const std::string& version = meta_str(header, "format_version");
  if (version != kFormatVersion) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: format_version \"" + version.substr(0, 16) +
                                    "\" is not supported (this library reads " +
                                    kFormatVersion + ")");
  }
}

// "hidden_sizes": comma-separated decimals in [1, SLSTM_MAX_EXTENT], at most kMaxLayers.
std::vector<std::int64_t> parse_hidden_sizes(const std::string& hs) {
  std::vector<std::int64_t> hidden;
  std::size_t start = 0;
  while (true) {
    if (hidden.size() >= kMaxLayers) {
      bad_file("metadata hidden_sizes has more than " + std::to_string(kMaxLayers) +
               " layers (SLSTM_MAX_LAYERS)");
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
  return hidden;
}

}  // namespace

void read_architecture(const Header& header, Plan* plan) {
  if (!header.has_metadata) bad_file("header has no \"__metadata__\"");
  check_format(header);
  plan->input_size =
      parse_uint(meta_str(header, "input_size"), "metadata input_size", 1, kMaxExtent);
  plan->hidden = parse_hidden_sizes(meta_str(header, "hidden_sizes"));
  const std::string& fb = meta_str(header, "forget_bias");
  if (!parse_decimal_float(fb, &plan->forget_bias)) {
    bad_file("metadata forget_bias must be a decimal number (JSON number syntax) whose "
             "value is a finite float, got \"" + fb.substr(0, 40) + "\"");
  }
  const auto sl = header.metadata.find("source_layout");
  if (sl != header.metadata.end()) check_source_layout(sl->second);
}

}  // namespace model_file
}  // namespace slstm
