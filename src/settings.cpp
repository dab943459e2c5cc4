#include "settings.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.hpp"

namespace slstm {
namespace {

constexpr const char* kKnownKeys =
    "cpu.kernel, cpu.pool, cpu.calibration, cpu.wh16, cpu.amx, cpu.team, cpu.spin_us, "
    "cpu.pool_join_us, cpu.workspace_mib, cuda.graphs, "
    "cuda.chunk, cuda.fused, cuda.slots, cuda.persistent, cuda.persistent_timeout_us, "
    "cuda.tune, cuda.tune_file, cuda.generic, cuda.staging, cuda.blas_workspace_mib, "
    "cuda.cluster, cuda.hybrid";
constexpr std::size_t kMaxConfig = 4096;

[[noreturn]] void bad(const std::string& what) {
  fail(SLSTM_ERR_INVALID_ARGUMENT, "options->config: " + what);
}

bool is_separator(char c) { return c == ';' || c == ',' || c == ' ' || c == '\t' || c == '\n'; }

// A positive step count, decimal digits only.
std::int64_t parse_steps(const std::string& key, const std::string& v) {
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos ||
      v[0] == '0') {
    bad(key + " must be auto or a whole number of steps >= 1, got \"" + v + "\"");
  }
  return std::atoll(v.c_str());
}

// A whole number from 0 to `max` (at most 999999999: 9 decimal digits); one message, with the
// key's real range, for anything else.
std::int64_t parse_count(const std::string& key, const std::string& v, std::int64_t max,
                         const char* what = "") {
  const bool digits = !v.empty() && v.size() <= 9 &&
                      v.find_first_not_of("0123456789") == std::string::npos &&
                      (v.size() == 1 || v[0] != '0');
  const std::int64_t n = digits ? std::atoll(v.c_str()) : -1;
  if (n < 0 || n > max) {
    bad(key + " must be a whole number from 0 to " + std::to_string(max) + what + ", got \"" +
        v.substr(0, 64) + "\"");
  }
  return n;
}

// auto (0) or a whole number from 1 to `max` (at most 999999999: 9 decimal digits, no leading
// zero); one message, with the key's real range, for anything else.
std::int64_t parse_auto_count(const std::string& key, const std::string& v, std::int64_t max) {
  const bool digits = !v.empty() && v.size() <= 9 && v[0] != '0' &&
                      v.find_first_not_of("0123456789") == std::string::npos;
  const std::int64_t n = v == "auto" ? 0 : digits ? std::atoll(v.c_str()) : -1;
  if (n < 0 || n > max) {
    bad(key + " must be auto or a whole number from 1 to " + std::to_string(max) + ", got \"" +
        v.substr(0, 64) + "\"");
  }
  return n;
}

void set(Settings& s, const std::string& key, const std::string& v, const std::string& from) {
  if (key == "cpu.kernel") {
    if (v == "auto") s.cpu_kernel = Settings::CpuKernel::kAuto;
    else if (v == "avx512") s.cpu_kernel = Settings::CpuKernel::kAvx512;
    else if (v == "avx2") s.cpu_kernel = Settings::CpuKernel::kAvx2;
    else if (v == "portable") s.cpu_kernel = Settings::CpuKernel::kPortable;
    else bad("cpu.kernel must be auto, avx512, avx2 or portable, got \"" + v + "\"");
    s.cpu_kernel_from = from;
  } else if (key == "cpu.pool") {
    if (v == "session") s.cpu_pool = Settings::CpuPool::kSession;
    else if (v == "shared") s.cpu_pool = Settings::CpuPool::kShared;
    else bad("cpu.pool must be session or shared, got \"" + v + "\"");
    s.cpu_pool_from = from;
  } else if (key == "cpu.calibration") {
    if (v == "measured") s.cpu_calibration_measured = true;
    else if (v == "fixed") s.cpu_calibration_measured = false;
    else bad("cpu.calibration must be measured or fixed, got \"" + v + "\"");
    s.cpu_calibration_from = from;
  } else if (key == "cpu.wh16") {
    if (v == "on") s.cpu_wh16 = true;
    else if (v == "off") s.cpu_wh16 = false;
    else bad("cpu.wh16 must be on or off, got \"" + v + "\"");
    s.cpu_wh16_from = from;
  } else if (key == "cpu.amx") {
    if (v == "auto") s.cpu_amx = Settings::Amx::kAuto;
    else if (v == "on") s.cpu_amx = Settings::Amx::kOn;
    else if (v == "off") s.cpu_amx = Settings::Amx::kOff;
    else bad("cpu.amx must be auto, on or off, got \"" + v + "\"");
    s.cpu_amx_from = from;
  } else if (key == "cpu.team") {
    if (v == "auto") s.cpu_team = Settings::Team::kAuto;
    else if (v == "off") s.cpu_team = Settings::Team::kOff;
    else if (v == "always") s.cpu_team = Settings::Team::kAlways;
    else bad("cpu.team must be auto, off or always, got \"" + v + "\"");
    s.cpu_team_from = from;
  } else if (key == "cpu.spin_us") {
    s.cpu_spin_us = parse_count(key, v, Settings::kMaxCpuSpinUs, " (one second)");
    s.cpu_spin_us_from = from;
  } else if (key == "cpu.pool_join_us") {
    s.cpu_pool_join_us = parse_count(key, v, Settings::kMaxCpuPoolJoinUs);
    s.cpu_pool_join_us_from = from;
  } else if (key == "cpu.workspace_mib") {
    s.cpu_workspace_mib = parse_auto_count(key, v, Settings::kMaxCpuWorkspaceMib);
    s.cpu_workspace_mib_from = from;
  } else if (key == "cuda.graphs") {
    if (v == "on") s.cuda_graphs = true;
    else if (v == "off") s.cuda_graphs = false;
    else bad("cuda.graphs must be on or off, got \"" + v + "\"");
    s.cuda_graphs_from = from;
  } else if (key == "cuda.chunk") {
    s.cuda_chunk = v == "auto" ? 0 : parse_steps(key, v);
    s.cuda_chunk_from = from;
  } else if (key == "cuda.fused") {
    if (v == "auto") s.cuda_fused = Settings::Fused::kAuto;
    else if (v == "never") s.cuda_fused = Settings::Fused::kNever;
    else if (v == "always") s.cuda_fused = Settings::Fused::kAlways;
    else bad("cuda.fused must be auto, never or always, got \"" + v + "\"");
    s.cuda_fused_from = from;
  } else if (key == "cuda.slots") {
    if (v == "on") s.cuda_slots = true;
    else if (v == "off") s.cuda_slots = false;
    else bad("cuda.slots must be on or off, got \"" + v + "\"");
    s.cuda_slots_from = from;
  } else if (key == "cuda.persistent") {
    if (v == "on") s.cuda_persistent = Settings::Persistent::kOn;
    else if (v == "off") s.cuda_persistent = Settings::Persistent::kOff;
    else if (v == "layers") s.cuda_persistent = Settings::Persistent::kLayers;
    else bad("cuda.persistent must be off, on or layers, got \"" + v + "\"");
    s.cuda_persistent_from = from;
  } else if (key == "cuda.persistent_timeout_us") {
    s.cuda_persistent_timeout_us = parse_count(key, v, 999999999);
    s.cuda_persistent_timeout_us_from = from;
  } else if (key == "cuda.tune") {
    if (v == "on") s.cuda_tune = true;
    else if (v == "off") s.cuda_tune = false;
    else bad("cuda.tune must be on or off, got \"" + v + "\"");
    s.cuda_tune_from = from;
  } else if (key == "cuda.tune_file") {
    for (const char ch : v) {
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
        bad("cuda.tune_file: a path without control characters, got \"" + v.substr(0, 64) + "\"");
      }
    }
    s.cuda_tune_file = v;
    s.cuda_tune_file_from = from;
  } else if (key == "cuda.generic") {
    if (v == "off") s.cuda_generic = Settings::Generic::kOff;
    else if (v == "on") s.cuda_generic = Settings::Generic::kOn;
    else if (v == "always") s.cuda_generic = Settings::Generic::kAlways;
    else bad("cuda.generic must be off, on or always, got \"" + v + "\"");
    s.cuda_generic_from = from;
  } else if (key == "cuda.staging") {
    if (v == "on") s.cuda_staging = true;
    else if (v == "off") s.cuda_staging = false;
    else bad("cuda.staging must be on or off, got \"" + v + "\"");
    s.cuda_staging_from = from;
  } else if (key == "cuda.blas_workspace_mib") {
    s.cuda_blas_workspace_mib = parse_auto_count(key, v, Settings::kMaxBlasWorkspaceMib);
    s.cuda_blas_workspace_mib_from = from;
  } else if (key == "cuda.cluster") {
    if (v == "on") s.cuda_cluster = true;
    else if (v == "off") s.cuda_cluster = false;
    else bad("cuda.cluster must be on or off, got \"" + v + "\"");
    s.cuda_cluster_from = from;
  } else if (key == "cuda.hybrid") {
    if (v == "on") s.cuda_hybrid = true;
    else if (v == "off") s.cuda_hybrid = false;
    else bad("cuda.hybrid must be on or off, got \"" + v + "\"");
    s.cuda_hybrid_from = from;
  } else {
    bad("unknown key \"" + key.substr(0, 64) + "\" (known: " + kKnownKeys + ")");
  }
}

// The environment overrides, with the meanings they have always had (README "Backends").
void apply_environment(Settings& s) {
  if (const char* e = std::getenv("SLSTM_CPU_KERNEL")) {
    // Only ever a lesser kernel than the CPU's best (checked where the kernel is chosen).
    if (std::strcmp(e, "avx2") == 0) s.cpu_kernel = Settings::CpuKernel::kAvx2;
    if (std::strcmp(e, "portable") == 0) s.cpu_kernel = Settings::CpuKernel::kPortable;
    if (std::strcmp(e, "avx2") == 0 || std::strcmp(e, "portable") == 0) {
      s.cpu_kernel_from = "SLSTM_CPU_KERNEL";
    }
  }
  if (const char* e = std::getenv("SLSTM_CUDA_GRAPHS")) {
    s.cuda_graphs = std::strcmp(e, "0") != 0;
    s.cuda_graphs_from = "SLSTM_CUDA_GRAPHS";
  }
  if (const char* e = std::getenv("SLSTM_CUDA_FUSED")) {
    s.cuda_fused = std::strcmp(e, "0") == 0        ? Settings::Fused::kNever
                   : std::strcmp(e, "always") == 0 ? Settings::Fused::kAlways
                                                   : Settings::Fused::kAuto;
    s.cuda_fused_from = "SLSTM_CUDA_FUSED";
  }
  if (const char* e = std::getenv("SLSTM_CUDA_PERSISTENT")) {
    s.cuda_persistent = std::strcmp(e, "0") == 0 || e[0] == '\0' ? Settings::Persistent::kOff
                        : std::strcmp(e, "layers") == 0         ? Settings::Persistent::kLayers
                                                                : Settings::Persistent::kOn;
    s.cuda_persistent_from = "SLSTM_CUDA_PERSISTENT";
  }
  if (const char* e = std::getenv("SLSTM_CUDA_TUNE")) {
    s.cuda_tune = std::strcmp(e, "0") != 0 && e[0] != '\0';
    s.cuda_tune_from = "SLSTM_CUDA_TUNE";
  }
  if (const char* e = std::getenv("SLSTM_CUDA_GENERIC")) {
    s.cuda_generic = std::strcmp(e, "0") == 0 || e[0] == '\0' ? Settings::Generic::kOff
                     : std::strcmp(e, "always") == 0         ? Settings::Generic::kAlways
                                                             : Settings::Generic::kOn;
    s.cuda_generic_from = "SLSTM_CUDA_GENERIC";
  }
  if (const char* e = std::getenv("SLSTM_CUDA_CHUNK")) {
    const long long v = std::atoll(e);
    s.cuda_chunk = v > 0 ? v : 0;
    s.cuda_chunk_from = "SLSTM_CUDA_CHUNK";
  }
}

std::string with_origin(const std::string& value, const std::string& from) {
  return from == "default" ? value : value + " (" + from + ")";
}

const char* fused_name(Settings::Fused f) {
  switch (f) {
    case Settings::Fused::kAuto: return "auto";
    case Settings::Fused::kNever: return "never";
    case Settings::Fused::kAlways: return "always";
  }
  return "auto";
}

}  // namespace

const char* cpu_kernel_name(Settings::CpuKernel k) {
  switch (k) {
    case Settings::CpuKernel::kAuto: return "auto";
    case Settings::CpuKernel::kAvx512: return "avx512";
    case Settings::CpuKernel::kAvx2: return "avx2";
    case Settings::CpuKernel::kPortable: return "portable";
  }
  return "auto";
}

Params Settings::cpu_params() const {
  return {{"cpu.kernel", with_origin(cpu_kernel_name(cpu_kernel), cpu_kernel_from)},
          {"cpu.pool",
           with_origin(cpu_pool == CpuPool::kShared ? "shared" : "session", cpu_pool_from)},
          {"cpu.calibration", with_origin(cpu_calibration_measured ? "measured" : "fixed",
                                          cpu_calibration_from)},
          {"cpu.wh16", with_origin(cpu_wh16 ? "on" : "off", cpu_wh16_from)},
          {"cpu.amx", with_origin(cpu_amx == Amx::kAuto  ? "auto"
                                  : cpu_amx == Amx::kOn ? "on"
                                                        : "off",
                                  cpu_amx_from)},
          {"cpu.team", with_origin(cpu_team == Team::kAuto  ? "auto"
                                   : cpu_team == Team::kOff ? "off"
                                                            : "always",
                                   cpu_team_from)},
          {"cpu.spin_us", with_origin(std::to_string(cpu_spin_us), cpu_spin_us_from)},
          {"cpu.pool_join_us",
           with_origin(std::to_string(cpu_pool_join_us), cpu_pool_join_us_from)},
          {"cpu.workspace_mib",
           with_origin(cpu_workspace_mib > 0 ? std::to_string(cpu_workspace_mib) : "auto",
                       cpu_workspace_mib_from)}};
}

Params Settings::cuda_params() const {
  return {{"cuda.graphs", with_origin(cuda_graphs ? "on" : "off", cuda_graphs_from)},
          {"cuda.chunk", with_origin(cuda_chunk > 0 ? std::to_string(cuda_chunk) : "auto",
                                     cuda_chunk_from)},
          {"cuda.fused", with_origin(fused_name(cuda_fused), cuda_fused_from)},
          {"cuda.slots", with_origin(cuda_slots ? "on" : "off", cuda_slots_from)},
          {"cuda.persistent",
           with_origin(cuda_persistent == Persistent::kOn       ? "on"
                       : cuda_persistent == Persistent::kLayers ? "layers"
                                                                : "off",
                       cuda_persistent_from)},
          {"cuda.persistent_timeout_us", with_origin(std::to_string(cuda_persistent_timeout_us),
                                                     cuda_persistent_timeout_us_from)},
          {"cuda.tune", with_origin(cuda_tune ? "on" : "off", cuda_tune_from)},
          {"cuda.tune_file",
           with_origin(cuda_tune_file.empty() ? "none" : cuda_tune_file, cuda_tune_file_from)},
          {"cuda.generic",
           with_origin(cuda_generic == Generic::kOn       ? "on"
                       : cuda_generic == Generic::kAlways ? "always"
                                                          : "off",
                       cuda_generic_from)},
          {"cuda.staging", with_origin(cuda_staging ? "on" : "off", cuda_staging_from)},
          {"cuda.blas_workspace_mib",
           with_origin(cuda_blas_workspace_mib > 0 ? std::to_string(cuda_blas_workspace_mib)
                                                   : "auto",
                       cuda_blas_workspace_mib_from)},
          {"cuda.cluster", with_origin(cuda_cluster ? "on" : "off", cuda_cluster_from)},
          {"cuda.hybrid", with_origin(cuda_hybrid ? "on" : "off", cuda_hybrid_from)}};
}

Settings parse_settings(const char* config) {
  Settings s;
  if (config != nullptr) {
    const std::size_t n = strnlen(config, kMaxConfig + 1);
    if (n > kMaxConfig) bad("longer than " + std::to_string(kMaxConfig) + " bytes");
    const std::string text(config, n);
    std::vector<std::string> seen;
    std::size_t at = 0;
    while (at < text.size()) {
      if (is_separator(text[at])) {
        ++at;
        continue;
      }
      std::size_t end = at;
      while (end < text.size() && !is_separator(text[end])) ++end;
      const std::string pair = text.substr(at, end - at);
      at = end;
      const std::size_t eq = pair.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == pair.size()) {
        bad("\"" + pair.substr(0, 64) + "\" is not key=value");
      }
      const std::string key = pair.substr(0, eq);
      for (const std::string& k : seen) {
        if (k == key) bad("key \"" + key + "\" given twice");
      }
      seen.push_back(key);
      set(s, key, pair.substr(eq + 1), "config");
    }
  }
  apply_environment(s);
  return s;
}

}  // namespace slstm
