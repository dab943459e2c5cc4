#include "args.hpp"

#include <cerrno>
#include <cstdlib>

#include "util.hpp"

namespace slstm_cli {

std::string ParsedArgs::get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::int64_t ParsedArgs::get_int(const std::string& name, std::int64_t fallback, std::int64_t lo,
                                 std::int64_t hi) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  return parse_int(it->second, "--" + name, lo, hi);
}

std::string ParsedArgs::get_choice(const std::string& name, const std::string& fallback,
                                   const std::vector<std::string>& choices) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  for (const std::string& c : choices) {
    if (c == it->second) return c;
  }
  std::string list;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    list += (i == 0 ? "" : (i + 1 == choices.size() ? " or " : ", ")) + choices[i];
  }
  throw UsageError("--" + name + " must be " + list + ", got \"" + one_line(it->second) + "\"");
}

std::int64_t parse_int(const std::string& text, const std::string& what, std::int64_t lo,
                       std::int64_t hi) {
  const std::string range = " (" + std::to_string(lo) + " to " + std::to_string(hi) + ")";
  bool ok = !text.empty();
  for (std::size_t i = 0; ok && i < text.size(); ++i) {
    const char c = text[i];
    ok = (c >= '0' && c <= '9') || (i == 0 && c == '-' && text.size() > 1);
  }
  if (!ok) {
    throw UsageError(what + " needs an integer" + range + ", got \"" + one_line(text) + "\"");
  }
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno == ERANGE || v < lo || v > hi) {
    throw UsageError(what + " must be between " + std::to_string(lo) + " and " +
                     std::to_string(hi) + ", got " + one_line(text));
  }
  return static_cast<std::int64_t>(v);
}

bool wants_help(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--") return false;
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

ParsedArgs parse_args(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs) {
  ParsedArgs out;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      out.positionals.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    const OptionSpec* spec = nullptr;
    std::string inline_value;
    bool has_inline = false;
    std::string shown;
    if (a[1] == '-') {
      std::string name = a.substr(2);
      const std::size_t eq = name.find('=');
      if (eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        has_inline = true;
        name.resize(eq);
      }
      shown = "--" + name;
      for (const OptionSpec& s : specs) {
        if (s.name == name) spec = &s;
      }
    } else {
      shown = a.substr(0, 2);
      if (a.size() > 2) {
        inline_value = a.substr(2);
        has_inline = true;
      }
      for (const OptionSpec& s : specs) {
        if (s.short_name != 0 && s.short_name == a[1]) spec = &s;
      }
    }
    if (spec == nullptr) throw UsageError("unknown option " + one_line(shown));
    if (out.values_.count(spec->name) != 0) {
      throw UsageError("--" + spec->name + " is given more than once");
    }
    if (!spec->takes_value) {
      if (has_inline) throw UsageError("--" + spec->name + " takes no value");
      out.values_[spec->name] = "1";
      continue;
    }
    if (has_inline) {
      out.values_[spec->name] = inline_value;
    } else {
      if (i + 1 >= args.size()) throw UsageError(one_line(shown) + " needs a value");
      out.values_[spec->name] = args[++i];
    }
  }
  return out;
}

}  // namespace slstm_cli
