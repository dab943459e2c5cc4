#include "plan.hpp"

#include <cstdio>

namespace slstm {
namespace {

// A JSON string literal (the plan's strings are ASCII the library wrote; escape anyway).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_object(const Params& p) {
  std::string out = "{";
  for (std::size_t k = 0; k < p.size(); ++k) {
    out += (k ? ", " : "") + quoted(p[k].first) + ": " + quoted(p[k].second);
  }
  return out + "}";
}

std::string text_list(const Params& p) {
  std::string out;
  for (std::size_t k = 0; k < p.size(); ++k) {
    out += (k ? ", " : "") + p[k].first + "=" + p[k].second;
  }
  return out;
}

}  // namespace

std::string Plan::text() const {
  std::string out = "backend " + backend + ", path " + path + ", precision " + precision;
  if (!params.empty()) out += ", " + text_list(params);
  out += "\n";
  if (!settings.empty()) out += "settings: " + text_list(settings) + "\n";
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerPlan& lp = layers[l];
    out += "layer " + std::to_string(l) + ": " + lp.path;
    if (!lp.params.empty()) out += " (" + text_list(lp.params) + ")";
    if (!lp.reason.empty()) out += ": " + lp.reason;
    out += "\n";
  }
  return out;
}

std::string Plan::json() const {
  std::string out = "{\"backend\": " + quoted(backend) + ", \"path\": " + quoted(path) +
                    ", \"precision\": " + quoted(precision) + ", \"params\": " +
                    json_object(params) + ", \"settings\": " + json_object(settings) +
                    ", \"layers\": [";
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerPlan& lp = layers[l];
    out += (l ? ", " : "") + std::string("{\"path\": ") + quoted(lp.path) +
           ", \"reason\": " + quoted(lp.reason) + ", \"params\": " + json_object(lp.params) + "}";
  }
  return out + "]}";
}

}  // namespace slstm
