// The model file's metadata (__metadata__, all strings) read into the architecture
// (src/model_file/reader.hpp, read_architecture): format and version first, then the sizes
// and the layers' cells, then (format_version 2) each layer's direction and options, then
// forget_bias (decimal, correctly rounded, locale-independent) and source_layout; a
// version-2 stack is then checked by Model::check_layers, as slstm_model_create checks it.
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
// BasicLSTMCell (what libstacklstm 0.1 computes); "cells" optional and all "lstm"; none of
// the version-2 layer keys. Version 2 (libstacklstm 0.4): any stack of docs/cells.md, every
// layer key below required. A file of a higher version is refused as written by a newer
// library; so is, in any version, a cell kind or direction this library does not know, so
// that a later library may add those to version 2 (a new layer key needs version 3: readers
// of version 2 ignore metadata they do not know).
constexpr const char* kNewestFormatVersion = "2";
// The cell kinds and directions this library reads from a file.
constexpr CellKind kReadableCells[] = {CellKind::kLstm, CellKind::kGru};
constexpr Direction kReadableDirections[] = {Direction::kForward, Direction::kReverse,
                                             Direction::kBidirectional};
// The per-layer metadata keys of format_version 2 beyond hidden_sizes and cells (each a
// comma-separated list with one entry per layer), in the order the writer puts them.
constexpr const char* kLayerKeys[] = {"directions", "residual",  "peepholes",      "cell_clip",
                                      "proj_sizes", "proj_clip", "gru_reset_after"};

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
  const std::string newest = kNewestFormatVersion;
  return is_well_formed_version(v) &&
         (v.size() != newest.size() ? v.size() > newest.size() : v > newest);
}

[[noreturn]] void refuse_newer_version(const std::string& v) {
  fail(SLSTM_ERR_UNSUPPORTED,
       "model file: format_version " + v.substr(0, 16) + (v.size() > 16 ? "..." : "") +
           " is not supported: the file was written by a newer libstacklstm (this one reads "
           "format_version 1 to " + kNewestFormatVersion + "); load it with a newer library");
}

// "format" is ours and "format_version" one this library reads; returns the version.
int check_format(const Header& header) {
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
  return version == "1" ? 1 : 2;
}

// A name as "cells" and "directions" spell them: 1 to 32 of [a-z0-9_].
bool is_name(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

// The value of `table` whose name is `name` (cell_name / direction_name), if any.
template <class Kind, std::size_t N>
bool find_named(const std::string& name, const Kind (&table)[N], const char* (*namer)(Kind),
                Kind* out) {
  for (Kind k : table) {
    if (name == namer(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}
bool find_cell(const std::string& name, CellKind* out) {
  return find_named(name, kReadableCells, &cell_name, out);
}
bool find_direction(const std::string& name, Direction* out) {
  return find_named(name, kReadableDirections, &direction_name, out);
}

// "a, b and c".
template <class Kind, std::size_t N>
std::string names_of(const Kind (&table)[N], const char* (*namer)(Kind)) {
  std::string out;
  for (std::size_t k = 0; k < N; ++k) {
    out += (k == 0 ? "" : k + 1 == N ? " and " : ", ") + std::string(namer(table[k]));
  }
  return out;
}

[[noreturn]] void refuse_cell(const std::string& name, std::size_t layer) {
  fail(SLSTM_ERR_UNSUPPORTED, "model file: layer " + std::to_string(layer) + " is a \"" + name +
                                  "\" cell: this libstacklstm reads " +
                                  names_of(kReadableCells, &cell_name) +
                                  " cells only; the file needs a newer library");
}

[[noreturn]] void refuse_direction(const std::string& name, std::size_t layer) {
  fail(SLSTM_ERR_UNSUPPORTED, "model file: layer " + std::to_string(layer) +
                                  " has the direction \"" + name +
                                  "\": this libstacklstm reads " +
                                  names_of(kReadableDirections, &direction_name) +
                                  " layers only; the file needs a newer library");
}

// Calls f(l, entry) for each comma-separated entry of a list.
template <class F>
void for_each_entry(const std::string& list, F&& f) {
  std::size_t start = 0;
  for (std::size_t l = 0;; ++l) {
    const std::size_t comma = list.find(',', start);
    f(l, list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return;
    start = comma + 1;
  }
}

// List metadata `key` must hold exactly one entry per layer.
void check_count(const std::string& list, const char* key, std::size_t layers) {
  const std::size_t count =
      static_cast<std::size_t>(std::count(list.begin(), list.end(), ',')) + 1;
  if (count != layers) {
    bad_file(std::string("metadata ") + key + " lists " + std::to_string(count) +
             (std::string(key) == "cells" ? " cells" : " entries") + ", hidden_sizes " +
             std::to_string(layers) + " layers");
  }
}

// Calls f(l, entry) for each entry of list metadata `key`, which must be present and hold
// exactly one entry per layer.
template <class F>
void for_each_layer(const Header& header, const char* key, std::size_t layers, F&& f) {
  const std::string& list = meta_str(header, key);
  check_count(list, key, layers);
  for_each_entry(list, f);
}

std::string entry_name(const char* key, std::size_t l) {
  return std::string("metadata ") + key + "[" + std::to_string(l) + "]";
}

// Entry l of "cells": a well-formed name (else INVALID_ARGUMENT) of a cell this library
// reads (else UNSUPPORTED: a newer library's file).
CellKind read_cell(const std::string& name, std::size_t l) {
  if (!is_name(name)) {
    bad_file(entry_name("cells", l) + " must be a cell name (1 to 32 of a-z, 0-9, _), got \"" +
             name.substr(0, 40) + "\"");
  }
  CellKind c = CellKind::kLstm;
  if (!find_cell(name, &c)) refuse_cell(name, l);
  return c;
}

// Entry l of "directions", as read_cell.
Direction read_direction(const std::string& name, std::size_t l) {
  if (!is_name(name)) {
    bad_file(entry_name("directions", l) +
             " must be a direction name (1 to 32 of a-z, 0-9, _), got \"" + name.substr(0, 40) +
             "\"");
  }
  Direction d = Direction::kForward;
  if (!find_direction(name, &d)) refuse_direction(name, l);
  return d;
}

// A 0/1 entry.
bool read_flag(const std::string& s, const char* key, std::size_t l) {
  if (s != "0" && s != "1") {
    bad_file(entry_name(key, l) + " must be 0 or 1, got \"" + s.substr(0, 40) + "\"");
  }
  return s == "1";
}

// A clip entry: a decimal (JSON number syntax) whose value is a finite float; -0 reads as 0
// (both mean no clipping; the writer writes 0), so that a clip reads back the same from
// either version.
float read_clip(const std::string& s, const char* key, std::size_t l) {
  float v = 0.0f;
  if (!parse_decimal_float(s, &v)) {
    bad_file(entry_name(key, l) + " must be a decimal number (JSON number syntax) whose value "
             "is a finite float, got \"" + s.substr(0, 40) + "\"");
  }
  return v == 0.0f ? 0.0f : v;
}

// Format version 1: "cells", when present, lists lstm for every layer (a file of 0.1 has none),
// and none of the version-2 layer keys is present; every layer is a forward BasicLSTMCell.
void read_layers_v1(const Header& header, Plan* plan) {
  const std::size_t layers = plan->hidden.size();
  const auto it = header.metadata.find("cells");
  if (it != header.metadata.end()) {
    check_count(it->second, "cells", layers);
    for_each_entry(it->second, [](std::size_t l, const std::string& name) {
      if (read_cell(name, l) != CellKind::kLstm) {
        bad_file(entry_name("cells", l) + " is \"" + name +
                 "\", which format_version 1 cannot hold (its layers are forward lstm cells; "
                 "a file with any other layer carries format_version 2)");
      }
    });
  }
  for (const char* key : kLayerKeys) {
    if (header.metadata.count(key) != 0) {
      bad_file(std::string("metadata \"") + key +
               "\" is a format_version 2 key, but the file says format_version 1 (whose "
               "layers are forward lstm cells without options)");
    }
  }
  plan->specs = Model::basic_specs(static_cast<std::int64_t>(plan->input_size), plan->hidden);
}

// Format version 2: every layer's cell, direction and options, one list entry per layer
// each (checked as a stack later, by Model::check_layers).
void read_layers_v2(const Header& header, Plan* plan) {
  const std::size_t layers = plan->hidden.size();
  std::vector<LayerSpec>& specs = plan->specs;
  specs.assign(layers, LayerSpec{});
  for (std::size_t l = 0; l < layers; ++l) specs[l].hidden_size = plan->hidden[l];
  for_each_layer(header, "cells", layers, [&](std::size_t l, const std::string& s) {
    specs[l].cell = read_cell(s, l);
  });
  for_each_layer(header, "directions", layers, [&](std::size_t l, const std::string& s) {
    specs[l].direction = read_direction(s, l);
  });
  for_each_layer(header, "residual", layers, [&](std::size_t l, const std::string& s) {
    specs[l].residual = read_flag(s, "residual", l);
  });
  for_each_layer(header, "peepholes", layers, [&](std::size_t l, const std::string& s) {
    specs[l].peepholes = read_flag(s, "peepholes", l);
  });
  for_each_layer(header, "cell_clip", layers, [&](std::size_t l, const std::string& s) {
    specs[l].cell_clip = read_clip(s, "cell_clip", l);
  });
  for_each_layer(header, "proj_sizes", layers, [&](std::size_t l, const std::string& s) {
    specs[l].proj_size =
        static_cast<std::int64_t>(parse_uint(s, entry_name("proj_sizes", l), 0, kMaxExtent));
  });
  for_each_layer(header, "proj_clip", layers, [&](std::size_t l, const std::string& s) {
    specs[l].proj_clip = read_clip(s, "proj_clip", l);
  });
  for_each_layer(header, "gru_reset_after", layers, [&](std::size_t l, const std::string& s) {
    specs[l].reset_after = read_flag(s, "gru_reset_after", l);
  });
}

// Model::check_layers's message in the file's terms: about a layer's field,
// "config->layers[<l>].<field> ..." becomes "metadata <key>[<l>] (layer <l>'s <field>) ...";
// about the whole stack's sizes, "config (weights...) ..." becomes "the stack the metadata
// describe (weights...) ..."; others stay as they are.
std::string in_file_terms(const std::string& msg) {
  static const std::string prefix = "config->layers[";
  static const std::string sizes = "config (";
  if (msg.compare(0, sizes.size(), sizes) == 0) {
    return "the stack the metadata describe" + msg.substr(sizes.size() - 2);
  }
  if (msg.compare(0, prefix.size(), prefix) != 0) return msg;
  const std::size_t close = msg.find("].", prefix.size());
  if (close == std::string::npos) return msg;
  const std::string layer = msg.substr(prefix.size(), close - prefix.size());
  std::size_t end = close + 2;
  while (end < msg.size() && ((msg[end] >= 'a' && msg[end] <= 'z') || msg[end] == '_')) ++end;
  const std::string field = msg.substr(close + 2, end - close - 2);
  const std::string key = field == "cell"          ? "cells"
                          : field == "hidden_size" ? "hidden_sizes"
                          : field == "direction"   ? "directions"
                          : field == "proj_size"   ? "proj_sizes"
                                                   : field;
  return "metadata " + key + "[" + layer + "] (layer " + layer + "'s " + field + ")" +
         msg.substr(end);
}

// The version-2 stack checked as slstm_model_create checks a config's layers (sizes, options
// that do not apply to the cell, projection and residual widths, weight sizes); the specs come
// back with every input_size set.
void check_stack(Plan* plan) {
  try {
    plan->specs = Model::check_layers(static_cast<std::int64_t>(plan->input_size),
                                      std::move(plan->specs), plan->forget_bias);
  } catch (const Error& e) {
    fail(e.status(), "model file: " + in_file_terms(e.what()));
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
  plan->version = check_format(header);
  plan->input_size =
      parse_uint(meta_str(header, "input_size"), "metadata input_size", 1, kMaxExtent);
  plan->hidden = parse_hidden_sizes(meta_str(header, "hidden_sizes"));
  if (plan->version == 1) {
    read_layers_v1(header, plan);
  } else {
    read_layers_v2(header, plan);
  }
  const std::string& fb = meta_str(header, "forget_bias");
  if (!parse_decimal_float(fb, &plan->forget_bias)) {
    bad_file("metadata forget_bias must be a decimal number (JSON number syntax) whose "
             "value is a finite float, got \"" + fb.substr(0, 40) + "\"");
  }
  const auto sl = header.metadata.find("source_layout");
  if (sl != header.metadata.end()) check_source_layout(sl->second);
  if (plan->version != 1) check_stack(plan);
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
  if (cells != header.metadata.end()) {
    for_each_entry(cells->second, [](std::size_t l, const std::string& name) {
      CellKind c;
      if (l < kMaxLayers && is_name(name) && !find_cell(name, &c)) refuse_cell(name, l);
    });
  }
  const auto directions = header.metadata.find("directions");
  if (directions != header.metadata.end()) {
    for_each_entry(directions->second, [](std::size_t l, const std::string& name) {
      Direction d;
      if (l < kMaxLayers && is_name(name) && !find_direction(name, &d)) {
        refuse_direction(name, l);
      }
    });
  }
}

}  // namespace model_file
}  // namespace slstm
