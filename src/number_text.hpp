// Numbers in the library's text (error messages, session plans, model files), written with
// std::to_chars: independent of the process's locale, where printf's %g and std::to_string
// write "1,5" under a comma-decimal LC_NUMERIC (an application's setlocale(LC_ALL, "")).
#pragma once

#include <charconv>
#include <string>

namespace slstm {

// The shortest decimal that reads back as exactly v ("nan", "inf" as such).
inline std::string float_text(float v) {
  char buf[64];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// v with `digits` (0 to 17) digits after the point.
inline std::string fixed_text(double v, int digits) {
  char buf[352];  // (DBL_MAX has 309 digits before the point; + sign, point and 17 digits)
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed,
                               digits < 0 ? 0 : digits > 17 ? 17 : digits);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}

// v to `digits` (1 to 17) significant digits, as printf's %.<digits>g.
inline std::string general_text(double v, int digits) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general,
                               digits < 1 ? 1 : digits > 17 ? 17 : digits);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}

}  // namespace slstm
