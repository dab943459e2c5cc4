// Shared helpers of the anchor programs (cudnn_anchor, ceilings): the grid, statistics, CSV,
// CUDA error checks and the clean "no CUDA device" exit.  Host code only.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace anchors {

// ---- errors -------------------------------------------------------------------------------
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    throw CudaError(std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                    cudaGetErrorString(e) + ")");
  }
}
#define ANCHORS_CUDA(call) ::anchors::cuda_check((call), #call)

// Exit code of every anchor program when the machine has no usable CUDA device (no driver,
// no device, a driver older than the runtime).  0: the programs are meant to be run blindly
// by scripts and CI on machines without a GPU; the message on stdout says what happened.
constexpr int kNoDeviceExit = 0;

// Returns normally when device `dev` can be used; otherwise prints
// "no CUDA device: <reason>" and exits with kNoDeviceExit.
inline void require_device_or_exit(const char* program, int dev) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  std::string reason;
  if (e != cudaSuccess) {
    reason = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
  } else if (count == 0) {
    reason = "cudaGetDeviceCount() found 0 devices";
  } else if (dev < 0 || dev >= count) {
    reason = "device " + std::to_string(dev) + " requested, " + std::to_string(count) +
             " present";
  } else {
    e = cudaSetDevice(dev);
    if (e == cudaSuccess) e = cudaFree(nullptr);  // create the context now
    if (e != cudaSuccess) {
      reason = std::string("cannot use device ") + std::to_string(dev) + ": " +
               cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    }
  }
  if (!reason.empty()) {
    std::printf("%s: no CUDA device: %s\n", program, reason.c_str());
    std::fflush(stdout);
    std::exit(kNoDeviceExit);
  }
}

// ---- the grid -----------------------------------------------------------------------------
struct Shape {
  std::string name;
  std::vector<int> hidden;  // one per layer
  int input = 0;            // D
  int batch = 0;
  int time = 0;
  bool small = false;

  int layers() const { return static_cast<int>(hidden.size()); }
  bool equal_sizes() const {
    return std::all_of(hidden.begin(), hidden.end(), [&](int h) { return h == hidden[0]; });
  }
  int layer_input(int l) const { return l == 0 ? input : hidden[static_cast<size_t>(l) - 1]; }
  // Σ 8·B·T·H_l·(I_l + H_l): the multiply-adds of both GEMMs, 2 FLOPs each.
  double flops() const {
    double f = 0;
    for (int l = 0; l < layers(); ++l) {
      f += 8.0 * batch * time * hidden[static_cast<size_t>(l)] *
           (layer_input(l) + hidden[static_cast<size_t>(l)]);
    }
    return f;
  }
  std::string hidden_str() const {
    std::string s;
    for (size_t i = 0; i < hidden.size(); ++i) s += (i ? ":" : "") + std::to_string(hidden[i]);
    return s;
  }
};

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

inline std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

inline int to_int(const std::string& s, const char* what) {
  try {
    size_t pos = 0;
    long v = std::stol(trim(s), &pos);
    if (pos != trim(s).size() || v < 0 || v > 1000000000L) throw std::invalid_argument(s);
    return static_cast<int>(v);
  } catch (const std::exception&) {
    throw std::runtime_error(std::string("bad ") + what + ": '" + s + "'");
  }
}

inline std::vector<int> parse_sizes(const std::string& s) {
  std::vector<int> v;
  for (const auto& p : split(s, s.find(':') != std::string::npos ? ':' : ',')) {
    int h = to_int(p, "hidden size");
    if (h < 1) throw std::runtime_error("hidden sizes must be >= 1");
    v.push_back(h);
  }
  if (v.empty()) throw std::runtime_error("no hidden sizes in '" + s + "'");
  return v;
}

// Reads grid.csv: name,hidden,input,batch,time,small ('#' comments, blank lines skipped).
inline std::vector<Shape> load_grid(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open grid file '" + path + "'");
  std::vector<Shape> grid;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ',');
    if (f.size() < 5) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": expected 6 fields");
    }
    Shape s;
    s.name = trim(f[0]);
    s.hidden = parse_sizes(trim(f[1]));
    s.input = to_int(f[2], "input");
    s.batch = to_int(f[3], "batch");
    s.time = to_int(f[4], "time");
    s.small = f.size() > 5 && trim(f[5]) == "1";
    if (s.input < 1 || s.batch < 1 || s.time < 1) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": sizes must be >= 1");
    }
    grid.push_back(s);
  }
  return grid;
}

// ---- statistics ---------------------------------------------------------------------------
struct Stats {
  double median = 0, p10 = 0, p90 = 0, min = 0;
  int n = 0;
};

inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return v[lo] * (1 - frac) + v[hi] * frac;
}

inline Stats stats_of(const std::vector<double>& v) {
  Stats s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  s.median = quantile(v, 0.5);
  s.p10 = quantile(v, 0.1);
  s.p90 = quantile(v, 0.9);
  s.min = *std::min_element(v.begin(), v.end());
  return s;
}

// ---- CSV ----------------------------------------------------------------------------------
inline std::string csv_field(const std::string& s) {
  bool quote = s.find_first_of(",\"\n\r") != std::string::npos;
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += "\"\"";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out + "\"";
}

inline std::string fmt(double v, int prec = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// Writes CSV lines to a file (or stdout when the path is empty or "-"), flushed line by line
// so a run cut short still leaves every finished row.
class CsvOut {
 public:
  explicit CsvOut(const std::string& path) {
    if (path.empty() || path == "-") {
      f_ = stdout;
    } else {
      f_ = std::fopen(path.c_str(), "w");
      if (!f_) throw std::runtime_error("cannot write '" + path + "'");
      own_ = true;
    }
  }
  ~CsvOut() {
    if (own_) std::fclose(f_);
  }
  CsvOut(const CsvOut&) = delete;
  CsvOut& operator=(const CsvOut&) = delete;
  void row(const std::vector<std::string>& fields) {
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
    std::fprintf(f_, "%s\n", line.c_str());
    std::fflush(f_);
  }
  bool is_stdout() const { return f_ == stdout; }

 private:
  std::FILE* f_ = nullptr;
  bool own_ = false;
};

}  // namespace anchors
