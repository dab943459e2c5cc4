// Keyed backend settings (slstm_session_options.config, header "Keyed settings"): the tuning
// knobs of the backends, set through the ABI as "key=value" pairs and validated like every
// other argument.  The environment variables of the same knobs (SLSTM_CPU_KERNEL,
// SLSTM_CUDA_GRAPHS, SLSTM_CUDA_FUSED, SLSTM_CUDA_CHUNK, SLSTM_CUDA_PERSISTENT, SLSTM_CUDA_TUNE,
// SLSTM_CUDA_GENERIC) remain as overrides for
// experiments: when one is set it wins over the keyed value.
#pragma once

#include <cstdint>
#include <string>

#include "plan.hpp"

namespace slstm {

struct Settings {
  enum class CpuKernel { kAuto, kAvx512, kAvx2, kPortable };
  enum class Fused { kAuto, kNever, kAlways };
  enum class CpuPool { kSession, kShared };
  enum class Persistent { kOff, kOn, kLayers };
  enum class Generic { kOff, kOn, kAlways };

  CpuKernel cpu_kernel = CpuKernel::kAuto;  // cpu.kernel
  CpuPool cpu_pool = CpuPool::kSession;     // cpu.pool
  // cpu.calibration: the fast path's work-sharing thresholds derived from the machine's
  // measured parameters (true, "measured") or the built-in constants ("fixed")
  bool cpu_calibration_measured = true;
  // cpu.wh16: a BF16/FP16 session keeps W_h in 16 bits where its kernel reads them (AVX2,
  // AVX-512; "on"), or as float32 holding the same rounded values ("off"): same numbers
  bool cpu_wh16 = true;
  // cpu.amx: a BF16 session of a BasicLSTMCell stack on the fast path runs its recurrent
  // products on AMX's BF16 tiles where this process may use them (auto), must (on: else
  // SLSTM_ERR_UNSUPPORTED), or never (off: the AVX-512 kernels' FMAs); the generic path's
  // stacks (generic_backend.cpp) with on only
  enum class Amx { kAuto, kOn, kOff };
  Amx cpu_amx = Amx::kAuto;
  // cpu.team: the generic path's team (a forward stack's call of few rows, every worker on
  // every row): where its step's weights pay for the barriers (auto), never, or always
  enum class Team { kAuto, kOff, kAlways };
  Team cpu_team = Team::kAuto;
  // cpu.spin_us: how long the CPU workers spin after a call, ready for the next, before they
  // sleep (microseconds, 0 to kMaxCpuSpinUs)
  static constexpr std::int64_t kDefaultCpuSpinUs = 20000;
  static constexpr std::int64_t kMaxCpuSpinUs = 1000000;
  std::int64_t cpu_spin_us = kDefaultCpuSpinUs;
  // cpu.pool_join_us: with a thread pool of the caller's (slstm_session_options.thread_pool),
  // how long a call's first task waits for the others to start (microseconds, 0 to
  // kMaxCpuPoolJoinUs); the call runs on those that have started by then
  static constexpr std::int64_t kDefaultCpuPoolJoinUs = 50;
  static constexpr std::int64_t kMaxCpuPoolJoinUs = 1000000;
  std::int64_t cpu_pool_join_us = kDefaultCpuPoolJoinUs;
  // cpu.workspace_mib: the most MiB the fast path's per-step workspaces (the input
  // projections and the inner layers' outputs of a call's rows) take; a call longer than
  // they hold at max_batch runs in windows of steps (1 to kMaxCpuWorkspaceMib; 0 = auto:
  // kAutoCpuWorkspaceMib)
  static constexpr std::int64_t kAutoCpuWorkspaceMib = 256;
  static constexpr std::int64_t kMaxCpuWorkspaceMib = std::int64_t{1} << 20;
  std::int64_t cpu_workspace_mib = 0;
  bool cuda_graphs = true;                  // cuda.graphs
  std::int64_t cuda_chunk = 0;              // cuda.chunk (steps per wavefront chunk; 0 = auto)
  Fused cuda_fused = Fused::kAuto;          // cuda.fused
  bool cuda_slots = false;                  // cuda.slots (stream slots on CUDA; untested)
  Persistent cuda_persistent = Persistent::kOff;  // cuda.persistent (untested on a GPU)
  std::int64_t cuda_persistent_timeout_us = 1000000;  // cuda.persistent_timeout_us
  bool cuda_tune = false;                   // cuda.tune (plan tuned on the device; untested)
  std::string cuda_tune_file;               // cuda.tune_file ("" = none)
  // cuda.generic: stacks beyond forward BasicLSTMCell on CUDA's generic path (on), every
  // stack there (always), or refused (off; untested on a GPU)
  Generic cuda_generic = Generic::kOff;
  // cuda.staging: a host-buffer call of the basic path copies through one pinned buffer of
  // the session's (at most kMaxCudaStagingBytes) when it fits (untested on a GPU)
  bool cuda_staging = false;
  // cuda.blas_workspace_mib: each cuBLAS handle's workspace in MiB (1 to kMaxBlasWorkspaceMib;
  // 0 = auto: cuBLAS's recommendation for the device)
  std::int64_t cuda_blas_workspace_mib = 0;
  // cuda.cluster: a layer whose persistent kernel (cuda.persistent=on|layers) fits one
  // thread-block cluster runs it on the cluster kernel (no effect without; untested on a GPU)
  bool cuda_cluster = false;
  // cuda.hybrid: a layer too large for the persistent kernel's grid tier runs its hybrid tier
  // (part of W_h in shared memory, the rest through L2; no effect without cuda.persistent;
  // untested on a GPU)
  bool cuda_hybrid = false;
  static constexpr std::int64_t kMaxBlasWorkspaceMib = 1024;
  static constexpr std::int64_t kMaxCudaStagingBytes = std::int64_t{1} << 20;

  // Where each value came from, for the plan: "default", "config" or the variable's name.
  std::string cpu_kernel_from = "default", cpu_pool_from = "default",
              cpu_calibration_from = "default", cpu_wh16_from = "default",
              cpu_amx_from = "default",
              cpu_team_from = "default", cpu_spin_us_from = "default",
              cpu_pool_join_us_from = "default", cpu_workspace_mib_from = "default",
              cuda_graphs_from = "default",
              cuda_chunk_from = "default", cuda_fused_from = "default",
              cuda_slots_from = "default", cuda_persistent_from = "default",
              cuda_persistent_timeout_us_from = "default", cuda_tune_from = "default",
              cuda_tune_file_from = "default", cuda_generic_from = "default",
              cuda_staging_from = "default", cuda_blas_workspace_mib_from = "default",
              cuda_cluster_from = "default", cuda_hybrid_from = "default";

  // The settings as the plan reports them (key, value) with their origin when not default.
  Params cpu_params() const;
  Params cuda_params() const;
};

// Parses `config` ("key=value" pairs separated by ';', ',' or whitespace; NULL or "" for
// none), then applies the environment overrides.  An unknown key, a malformed pair, a
// repeated key or a bad value is SLSTM_ERR_INVALID_ARGUMENT naming it ("options->config:
// ...").  Keys of every backend are validated whichever backend the session uses.
Settings parse_settings(const char* config);

const char* cpu_kernel_name(Settings::CpuKernel k);

}  // namespace slstm
