// The model file's metadata (__metadata__, all strings) read into the architecture
// (src/model_file/reader.hpp, read_architecture): format and version first, then the sizes
// and the layers' cells, then forget_bias (decimal, correctly rounded, locale-independent)
// and source_layout.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

#include "../layer_spec.hpp"
#include "reader.hpp"

namespace slstm {
namespace model_file {
namespace {

// The newest format_version this library reads. Version 1: every layer a forward float32
// LSTM (what libstacklstm 0.1 computes); "cells" optional. A file using anything else carries
// a higher version (writer.cpp), which 0.1 and this library refuse as written by a newer one.
constexpr const char* kNewestFormatVersion = "1";
// The cell kinds this library reads from a file ("cells"; no entry means lstm).
constexpr CellKind kReadableCells[] = {CellKind::kLstm};

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

// Whether v is a well-formed format_version (a decimal integer >= 1: digits only, no leading
// zero) above the newest this library reads.
bool is_well_formed_version(const std::string& v) {
  return !v.empty() && v[0] >= '1' && v[0] <= '9' &&
         std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}
bool is_newer_version(const std::string& v) {
  return is_well_formed_version(v) && v != kNewestFormatVersion;
}

[[noreturn]] void refuse_newer_version(const std::string& v) {
  fail(SLSTM_ERR_UNSUPPORTED,
       "model file: format_version " + v.substr(0, 16) + (v.size() > 16 ? "..." : "") +
           " is not supported: the file was written by a newer libstacklstm (this one reads "
           "format_version " + kNewestFormatVersion + "); load it with a newer library");
}

// "format" is ours and "format_version" one this library reads.
void check_format(const Header& header) {
  const std::string& tag = meta_str(header, "format");
  if (tag != kFormatTag) {
    fail(SLSTM_ERR_UNSUPPORTED, "model file: metadata format is \"" + tag.substr(0, 40) +
                                    "\", expected \"" + kFormatTag + "\"");
  }
  const std::string& version = meta_str(header, "format_version");
  if (!is_well_formed_version(version)) {
    bad_file("metadata format_version must be a decimal integer >= 1, got \"" +
             version.substr(0, 40) + "\"");
  }
  if (is_newer_version(version)) refuse_newer_version(version);
}

// A cell name as "cells" spells it: 1 to 32 of [a-z0-9_].
bool is_cell_name(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}
bool is_readable_cell(const std::string& name) {
  return std::any_of(std::begin(kReadableCells), std::end(kReadableCells),
                     [&](CellKind c) { return name == cell_name(c); });
}

[[noreturn]] void refuse_cell(const std::string& name, std::size_t layer) {
  std::string readable;
  for (CellKind c : kReadableCells) {
    readable += (readable.empty() ? "" : ", ") + std::string(cell_name(c));
  }
  fail(SLSTM_ERR_UNSUPPORTED, "model file: layer " + std::to_string(layer) + " is a \"" + name +
                                  "\" cell: this libstacklstm reads " + readable +
                                  " only; the file needs a newer library");
}

// Calls f(l, name) for each comma-separated entry of "cells".
template <class F>
void for_each_cell(const std::string& cells, F&& f) {
  std::size_t start = 0;
  for (std::size_t l = 0;; ++l) {
    const std::size_t comma = cells.find(',', start);
    f(l, cells.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return;
    start = comma + 1;
  }
}

// "cells" (optional: a file of libstacklstm 0.1 has none, and then every layer is an lstm):
// exactly one entry per layer, each a cell name this library reads.
void check_cells(const Header& header, std::size_t layers) {
  const auto it = header.metadata.find("cells");
  if (it == header.metadata.end()) return;
  const std::string& cells = it->second;
  const std::size_t count =
      static_cast<std::size_t>(std::count(cells.begin(), cells.end(), ',')) + 1;
  if (count != layers) {
    bad_file("metadata cells lists " + std::to_string(count) + " cells, hidden_sizes " +
             std::to_string(layers) + " layers");
  }
  for_each_cell(cells, [](std::size_t l, const std::string& name) {
    if (!is_cell_name(name)) {
      bad_file("metadata cells[" + std::to_string(l) +
               "] must be a cell name (1 to 32 of a-z, 0-9, _), got \"" + name.substr(0, 40) +
               "\"");
    }
    if (!is_readable_cell(name)) refuse_cell(name, l);
  });
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
  check_cells(header, plan->hidden.size());
  const std::string& fb = meta_str(header, "forget_bias");
  if (!parse_decimal_float(fb, &plan->forget_bias)) {
    bad_file("metadata forget_bias must be a decimal number (JSON number syntax) whose "
             "value is a finite float, got \"" + fb.substr(0, 40) + "\"");
  }
  const auto sl = header.metadata.find("source_layout");
  if (sl != header.metadata.end()) check_source_layout(sl->second);
}

void refuse_if_newer(const Header& header) {
  if (!header.has_metadata) return;
  const auto tag = header.metadata.find("format");
  if (tag != header.metadata.end() && tag->second != kFormatTag) return;
  const auto version = header.metadata.find("format_version");
  if (version != header.metadata.end() && is_newer_version(version->second)) {
    refuse_newer_version(version->second);
  }
  const auto cells = header.metadata.find("cells");
  if (cells == header.metadata.end()) return;
  for_each_cell(cells->second, [](std::size_t l, const std::string& name) {
    if (l < kMaxLayers && is_cell_name(name) && !is_readable_cell(name)) refuse_cell(name, l);
  });
}

}  // namespace model_file
}  // namespace slstm
