// The CPU fast path (DESIGN §4 "CPU path", issue 6): the backend, its workspaces and the
// schedule of a call.  The parts live beside it in src/cpu/: thread_pool.hpp (the workers),
// step_kernels*.{hpp,cpp} (the kernels per ISA, GEMM loops apart from the cell epilogues),
// simd_math.hpp (vector exp/sigmoid/tanh), packing.{hpp,cpp} (the packed weights),
// fast_plan.{hpp,cpp} (kernel, threads; the plan), split.{hpp,cpp} (the per-call split and
// its thresholds), calibration.{hpp,cpp} (the machine parameters they derive from).
//
// Structure, per layer (layer by layer over the whole sequence):
//   1. Input projection: one GEMM over all B*T rows of the layer's input, G = X * Wx^T,
//      shared out among the workers by hidden-unit groups (each streams only its part of Wx)
//      or, with few groups, by rows, on the library's own register-blocked kernels (AVX-512,
//      AVX2 or portable, the same family as step 2's), which read the caller's rows in place
//      and write G directly in the layout the fused step reads.  Why not OpenBLAS: its result
//      for one row depends on how many rows the call has (its kernels for the last rows of
//      a matrix add up in another order: measured with Debian's 0.3.21 on the AVX2 kernels,
//      a row alone differed by ~1e-7 from the same row among 4 or more), so a step's result
//      depended on the call's length and chunked streaming was not exact (issue 13); and
//      Debian 12's OpenBLAS does not recognise recent Xeons (e.g. model 0xCF) and falls back
//      to its SSE3 kernel, ~6x below our AVX-512 one.  G's rows are in a worker share's own
//      batch-major order (see Share).
//   2. Per step, the recurrent GEMM h_prev * Wh^T runs on a register-blocked micro-kernel
//      over pre-packed weights, whose cell epilogue (step_kernels.hpp) applies the gate
//      math, the bias (forget_bias folded in) and the sequence-length mask in the same
//      kernel while the four gate sums are still in registers ("fused gate loop").
//      Two ways to share a step:
//      - unit split: each worker owns a contiguous range of 16-unit groups for every batch
//        row, and one barrier per step publishes the new h; a worker done with its own
//        groups takes those of another that nobody has started yet (large groups only), so
//        a core the machine delays does not hold up every step;
//      - batch split (B >= 5 rows per worker, T >= 8, each layer's Wh <= 1.5 MB, measured on
//        an AVX-512 Xeon and an AVX2 EPYC alike: split.hpp): each worker runs its own batch
//        rows through every layer, projection included, with no barrier at all: batch rows
//        never interact.
//      For B <= 4 the kernel runs as a blocked GEMV (one weight stream per step, every batch
//      row served from it).  A call of one step (T = 1: slstm_session_step, a frame of a
//      stream) in FP32 projects each group's input inside the step, by the worker that steps
//      the group (fuse_projection): one barrier per layer instead of three.  A call without
//      initial_state starts every layer from h = 0: its first step skips the recurrent
//      product, whose sums would all be +0 (StepArgs::h_zero; the same bits, and a T = 1 call
//      from the zero state, the seed's single call, in half the time).
//   A group's packed weights serve all its blocks of rows from L2, in both GEMMs; while
//   one group runs, its blocks fetch the next group's weights into L2 (when both fit in
//   this core's L2), so no block waits on L3 for its weights (Prefetch in step_kernels.hpp).
//   Kernels, picked per CPU (choose_kernel): AVX-512, else AVX2+FMA, else portable
//   (plain C++ loops the compiler vectorises), each for both GEMMs; all take both splits.
//
// Packing (once per session): packing.hpp.
//
// Threads: a persistent pool of num_threads workers (0 = one per usable CPU; the calling thread is
// worker 0; capped at the number of 16-unit groups of the widest layer) created with the
// session, or with cpu.pool=shared the process-wide pool that such sessions share (one call on it
// at a time; a call that finds it taken runs on its own thread alone: thread_pool.hpp SharedPool);
// a call wakes them, never creates one.  How many a call uses, and which split, is chosen from the
// shape and the session's thresholds (choose_split, split.hpp: enough
// recurrent work per worker between two barriers; enough projection work to pay for waking
// a worker), which cpu.calibration derives from the machine's measured barrier cost and kernel
// rates (default), or takes from constants (fixed: those of a 2-vCPU AVX-512 Xeon,
// where the AVX2 and portable kernels always take every worker).
//
// Determinism: every element of G, and every gate sum of a step, is one chain of
// multiply-adds in increasing k computed by one worker with the same instructions whichever
// row block, split, worker or call it falls in; the gate math is element-wise.  So a step's
// result depends only on its inputs (the step's x, the carried c and h, the weights): not
// on B or T, the layout, the row's batch neighbours, the split, the thread count, or where
// a sequence was cut into calls.  Streaming in chunks and slstm_session_step are therefore
// bitwise equal to one call, on every kernel (tests/test_streaming.cpp).  Different kernels
// (AVX-512, AVX2, portable, reference) differ from one another by rounding.
//
// Gate math: simd_math.hpp and gate_math.hpp.  Accuracy against float64: README "Accuracy".
#include "fast_backend.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "buffer.hpp"
#include "calibration.hpp"
#include "fast_plan.hpp"
#include "packing.hpp"
#include "rounding.hpp"
#include "step_kernels.hpp"
#include "thread_pool.hpp"

namespace slstm::cpu {
namespace {

constexpr std::int64_t kChunkBytes = 768 * 1024;  // projection inputs kept in L2 per chunk
                                                  // (at least; AMX: exactly)
constexpr std::int64_t kStreamChunkBytes = 16 << 20;  // ... streamed per group (chunk_rows)
// Workspace bytes a window of steps of a long call keeps where no W_x streams
// (allocate_workspace, cpu.workspace_mib auto): twice a core's L2 for each worker (the
// window's rows are spread over the workers' caches), at least 1 MiB.  Measured on an
// AVX-512 Xeon (L2 2 MiB a core; FP32; windows of 2, 4, 8 and 16 MiB): at 1 thread 4 MiB the
// fastest or level on every shape (16 MiB up to 1.10x slower on the seed stack's long
// calls), at 2 threads 4 and 8 MiB level (16 MiB up to 1.05x slower, 2 MiB up to 1.04x at
// B = 64-128).  Where a W_x streams, short windows cost 5-8 % (L2 x 1024 B = 64, H = 2048
// B = 16: more passes over W_x), hence kAutoCpuWorkspaceMib there
// (bench/results/cpu-workspace.md).
std::int64_t cache_window_bytes(int workers) {
  return std::max<std::int64_t>(2 * l2_cache_bytes() * workers, std::int64_t{1} << 20);
}
// ... at least this many on AMX tiles: there the steps are short and a window's fixed costs
// (its projection converting rows to bfloat16 codes, tile loads) weigh more.  Measured on
// the same Xeon (BF16, 4 / 8 / 16 / 32 MiB): the seed stack's long calls 1.04x (1 thread)
// and 1.02x (2 threads) faster at 16 MiB than at twice the L2 per worker, 4 x 512 B = 64
// 0.98x; 32 MiB no better at 1 thread (bench/results/cpu-workspace.md).
constexpr std::int64_t kAmxWindowBytes = std::int64_t{16} << 20;
constexpr std::int64_t kWidenBlocks = 32;         // widen_wx: blocks of rows in the chunk
constexpr std::int64_t kKeepBlocks = 4;           // keeps_wh: blocks of rows in the step

class CpuFastBackend final : public HostBackend {
 public:
  CpuFastBackend(ModelPtr model, const SessionConfig& config, KernelChoice kernel)
      : HostBackend(std::move(model)),
        kernel_(kernel.kernel),
        precision_(config.precision),
        spin_ns_(config.settings.cpu_spin_us * 1000) {
    const Model& m = *model_;
    const bool shared = config.settings.cpu_pool == Settings::CpuPool::kShared;
    const bool caller = config.thread_pool.parallel_for != nullptr;
    int P = choose_threads(m, caller ? caller_threads(config) : config.num_threads);
    const AmxChoice amx = choose_amx(config.settings, kernel_, precision_);
    amx_ = amx.use;
    block_rows_ = amx_ ? kMaxAmxRows : kMaxNb;
    std::string calibration;
    try {
      for (std::size_t l = 0; l < m.layers().size(); ++l) {
        layers_.push_back(
            pack_layer(m, l, kernel_, precision_, config.settings.cpu_wh16, amx_));
      }
      if (caller) {
        caller_ = std::make_unique<CallerPool>(config.thread_pool,
                                               config.settings.cpu_pool_join_us * 1000);
      } else if (shared) {
        shared_ = acquire_shared_pool(usable_cpus());
        P = std::min(P, shared_->pool.size());
      } else {
        pool_ = std::make_unique<Pool>(P);
      }
      allocate_workspace(config, P);  // (after the packing: window_ asks the packed layers)
      if (amx_) {
        for (const PackedLayer& p : layers_) {
          const std::int64_t kp = p.kx_tiles * kAmxK;
          xb_per_worker_ = std::max(xb_per_worker_, amx_chunk_rows(kp) * kp);
        }
        xb_ = allocate(product({P, xb_per_worker_}, "workspace") / 2 + 1, false);
        amx_sums_ = allocate(product({P, kAmxSums}, "workspace"), false);
      }
      for (const PackedLayer& p : layers_) {
        if (p.wx16_storage) wx_panel_per_worker_ = std::max(wx_panel_per_worker_, p.I * kRow);
        if (keeps_wh(p)) wx_panel_per_worker_ = std::max(wx_panel_per_worker_, p.H * kRow);
      }
      if (wx_panel_per_worker_ > 0) {
        wx_panel_ = allocate(product({P, wx_panel_per_worker_}, "workspace"), false);
      }
      next_group_ = std::make_unique<Counter64[]>(static_cast<std::size_t>(P));
      workers_ = P;
      for (const PackedLayer& p : layers_) work_.push_back({p.I, p.H, p.wh_bytes()});
      step_ahead_.assign(layers_.size(), 0);
      if (config.settings.cpu_calibration_measured) {
        // The machine's parameters (measured once per process: calibration.hpp).
        const Machine machine = measure_machine(kernel_, P);
        thresholds_ = derive_thresholds(machine);
        calibration = "measured (cpu.calibration=measured, once per process): " +
                      describe_machine(machine, P);
      } else {
        thresholds_ = fixed_thresholds(kernel_ == Kernel::kAvx512);
        calibration = "fixed (cpu.calibration=fixed): the constants measured on a 2-vCPU "
                      "AVX-512 Xeon";
      }
    } catch (const std::system_error& e) {
      fail(SLSTM_ERR_OUT_OF_MEMORY,
           std::string("cannot create the CPU fast-path worker threads: ") + e.what());
    } catch (...) {
      rethrow_as_out_of_memory("cannot allocate the CPU fast-path workspace");
    }
    plan_ = describe_fast_plan(config, kernel, P, layers_, thresholds_, calibration);
    plan_.precision = precision_name(precision_);
    if (rounds_operands(precision_)) {
      plan_.params.emplace_back(
          "operands", std::string("weights rounded to ") + precision_name(precision_) +
                          " once; x and h rounded where they enter a product; sums float32; " +
                          (amx_ ? "W_h stored in 16 bits as AMX tiles"
                           : layers_[0].wx16_storage
                               ? std::string("W_h stored in 16 bits, W_x too") +
                                     (kernel_ == Kernel::kAvx512
                                          ? " (a group's codes over the L1D's " +
                                                std::to_string(l1d_bytes_ / 1024) +
                                                " KB converted once where " +
                                                std::to_string(kKeepBlocks) +
                                                " or more blocks of rows read them)"
                                          : std::string())
                           : layers_[0].wh16_storage ? "W_h stored in 16 bits"
                           : stores_wh16(kernel_, precision_)
                               ? "W_h stored as float32 (cpu.wh16=off)"
                               : "W_h stored as float32 (what this kernel reads)"));
    }
    plan_.params.emplace_back("amx", amx.why);
    plan_.params.emplace_back(
        "window", window_ == config.max_time
                      ? "every call's steps at once (" + window_reason_ + ")"
                      : "calls of more than " + std::to_string(window_) +
                            " steps at max_batch (at a smaller batch, of more than its share "
                            "of " + std::to_string(max_rows_) + " rows) in windows of equal "
                            "numbers of steps, each from the state the one before left (" +
                            window_reason_ + ")");
    plan_.params.emplace_back(
        "pool", caller   ? describe_caller_pool(config, P)
                : shared ? describe_shared_pool(shared_->pool.size())
                         : describe_session_pool(P));
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      plan_.layers[l].params.emplace_back("projection", projection_rule(layers_[l]));
    }
    set_host_memory(held_bytes());
  }

  // The plan, with how many calls so far ran alone because their workers were asleep (or,
  // on the caller's pool, with a smaller team than asked), and how many in the batch split.
  Plan plan() const override {
    Plan p = caller_ ? with_short_team_count(plan_, short_team_)
                     : with_alone_count(plan_, alone_asleep_);
    p.params.emplace_back("calls_batch_split",
                          std::to_string(batch_split_.load(std::memory_order_relaxed)));
    return p;
  }

  // What the session holds beside the model: packed weights, workspaces, state.
  std::int64_t held_bytes() const {
    std::int64_t n = slstm::held_bytes(layers_) + slstm::held_bytes(work_) +
                     slstm::held_bytes(step_ahead_) +
                     workers_ * static_cast<std::int64_t>(sizeof(Counter64));  // next_group_
    for (const PackedLayer& p : layers_) n += p.bytes();
    n += slstm::held_bytes(window_lengths_);
    for (const Buffer* b : {&g_, &y_[0], &y_[1], &state_, &h_alt_[0], &h_alt_[1], &xq_, &hq_[0],
                            &hq_[1], &hb_[0], &hb_[1], &wx_panel_, &xb_, &amx_sums_, &stage_in_,
                            &stage_out_}) {
      n += slstm::held_bytes(*b);
    }
    return n;
  }

  void forward(const ForwardCall& call) override {
    const FlushDenormals flush;  // as TensorFlow's kernels (thread_pool.hpp)
    load_initial_state(call, state_.get());
    ran_batch_split_ = false;
    if (call.time * call.batch > max_rows_) {
      run_windows(call);
    } else if (call.time > 0) {
      run(call, call.time);
    }
    if (ran_batch_split_) batch_split_.fetch_add(1, std::memory_order_relaxed);
    store_final_state(call, state_.get());
  }

 private:
  // Runs `call` (call.batch x call.time <= max_rows_) from the packed state in state_, leaving
  // its final state there, its work shared as a call of `split_time` steps would share it
  // (a window: as the whole call, whose steps the split's rules weigh).
  void run(const ForwardCall& call, std::int64_t split_time) {
    call_ = &call;
    split_time_ = split_time;
    x0_ = call.input;
    if (rounds_operands(precision_) && !amx_) {  // (AMX: its projection rounds x itself)
      round_floats(precision_, call.input, xq_.get(),
                   static_cast<std::size_t>(call.batch * call.time * model_->input_size()));
      x0_ = xq_.get();
    }
    if (caller_) {
      run_on_caller(call);
    } else if (shared_) {
      // The shared pool if it is free, else this thread alone (same numbers either way).
      std::unique_lock<std::mutex> taken(shared_->taken, std::try_to_lock);
      if (taken.owns_lock()) {
        run_on(shared_->pool, call);
      } else {
        split_ = choose_split(call.batch, split_time_, work_, 1, thresholds_);
        plan_steps();
        job(this, 0);
      }
    } else {
      run_on(*pool_, call);
    }
    ran_batch_split_ = ran_batch_split_ || split_.split_batch;
    epoch_base_ += layers_.size() * static_cast<std::uint64_t>(call.time);
    call_ = nullptr;
  }

  // A call of more rows than the workspaces hold (max_rows_, cpu.workspace_mib): windows of
  // equal numbers of steps, each run as a call of its own from the state the one before
  // left.  The same bits as one call: every step reads what MultiRNNCell's order gives it
  // (a row's length cut to each window; only the first window starts from the zero state).
  // A batch-major call's rows go through the staging buffers, a time-major one's windows
  // are slices of its buffers.
  void run_windows(const ForwardCall& call) {
    const std::int64_t B = call.batch, T = call.time;
    const std::int64_t I = model_->input_size(), W = model_->output_size();
    const std::int64_t most = std::max<std::int64_t>(max_rows_ / B, 1);  // steps a window
    const std::int64_t windows = (T + most - 1) / most;
    const bool staged = call.layout == SLSTM_BATCH_MAJOR;
    const auto bytes = [](std::int64_t floats) {
      return static_cast<std::size_t>(floats) * sizeof(float);
    };
    ForwardCall sub = call;
    for (std::int64_t k = 0; k < windows; ++k) {
      const std::int64_t t0 = T * k / windows, n = T * (k + 1) / windows - t0;
      sub.time = n;
      if (call.lengths != nullptr) {
        for (std::int64_t b = 0; b < B; ++b) {
          window_lengths_[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(
              std::clamp<std::int64_t>(call.lengths[b] - t0, 0, n));
        }
        sub.lengths = window_lengths_.data();
      }
      if (staged) {
        for (std::int64_t b = 0; b < B; ++b) {
          std::memcpy(stage_in_.get() + b * n * I, call.input + (b * T + t0) * I, bytes(n * I));
        }
        sub.input = stage_in_.get();
        sub.output = call.output != nullptr ? stage_out_.get() : nullptr;
      } else {
        sub.input = call.input + t0 * B * I;
        sub.output = call.output != nullptr ? call.output + t0 * B * W : nullptr;
      }
      run(sub, T);
      if (staged && call.output != nullptr) {
        for (std::int64_t b = 0; b < B; ++b) {
          std::memcpy(call.output + (b * T + t0) * W, stage_out_.get() + b * n * W,
                      bytes(n * W));
        }
      }
      sub.initial_state = state_.get();  // (not null: no later window starts from zeros)
    }
  }

  // G, the inner layers' outputs, the packed state and the other h buffer, for the
  // session's largest call.
  void allocate_workspace(const SessionConfig& config, int workers) {
    const Model& m = *model_;
    max_h_inner_ = 1;  // widest non-last layer (its outputs are a workspace)
    for (std::size_t l = 0; l + 1 < m.layers().size(); ++l) {
      max_h_inner_ = std::max(max_h_inner_, m.layer(l).hidden_size);
    }
    for (const Layer& layer : m.layers()) {
      max_groups_ = std::max(max_groups_, (layer.hidden_size + kGroup - 1) / kGroup);
    }
    // Steps per window at max_batch rows (run_windows; a call of fewer rows takes as many
    // more steps as the rows allow).  cpu.workspace_mib=N: as many as N MiB hold beside the
    // staging rows (at least one).  auto: as many as cache_window_bytes hold (the window's
    // workspaces then stay in cache between its projection and its steps), except where a
    // layer's W_x does not stay in L2: windows cut its passes over W_x (chunk_rows), so as
    // many as kAutoCpuWorkspaceMib hold.  max_time where the whole call's workspaces fit.
    const bool rounding = rounds_operands(precision_) && !amx_;
    const double row_floats = static_cast<double>(max_groups_ * kRow + 2 * max_h_inner_ +
                                                  (rounding ? m.input_size() : 0));
    const double staging_floats = static_cast<double>(m.input_size() + m.output_size());
    const double batch = static_cast<double>(config.max_batch);
    bool streams = false;  // some layer's W_x beyond twice the L2
    for (const PackedLayer& p : layers_) streams = streams || l2_groups(p) < p.groups;
    std::int64_t auto_bytes = cache_window_bytes(workers);
    std::string why = "twice a core's L2 of " + std::to_string(l2_cache_bytes() >> 10) +
                      " KB for each of the session's " + std::to_string(workers) +
                      " workers: a window's workspaces kept in their caches";
    if (streams) {
      auto_bytes = Settings::kAutoCpuWorkspaceMib << 20;
      why = "a W_x beyond twice the L2: the fewest passes";
    } else if (amx_ && auto_bytes < kAmxWindowBytes) {
      auto_bytes = kAmxWindowBytes;
      why = "AMX tiles: windows of at least 16 MiB";
    }
    const double budget = config.settings.cpu_workspace_mib > 0
                              ? static_cast<double>(config.settings.cpu_workspace_mib << 20)
                              : static_cast<double>(auto_bytes);
    window_reason_ =
        config.settings.cpu_workspace_mib > 0
            ? "cpu.workspace_mib " + std::to_string(config.settings.cpu_workspace_mib)
            : "cpu.workspace_mib auto: " +
                  (auto_bytes % (1 << 20) == 0 ? std::to_string(auto_bytes >> 20) + " MiB"
                                               : std::to_string(auto_bytes >> 10) + " KiB") +
                  " (" + why + ")";
    std::int64_t steps = config.max_time;
    if (batch * static_cast<double>(config.max_time) * row_floats * sizeof(float) > budget) {
      steps = static_cast<std::int64_t>(budget / sizeof(float) /
                                        (batch * (row_floats + staging_floats)));
    }
    window_ = std::clamp<std::int64_t>(steps, 1, config.max_time);
    max_rows_ = config.max_batch * window_;
    if (window_ < config.max_time) {
      stage_in_ = allocate(product({max_rows_, m.input_size()}, "workspace"), false);
      stage_out_ = allocate(product({max_rows_, m.output_size()}, "workspace"), false);
      window_lengths_.resize(static_cast<std::size_t>(config.max_batch));
    }
    const std::int64_t max_rows = config.max_batch * window_;
    g_ = allocate(product({max_rows, max_groups_, kRow}, "workspace"), false);
    y_[0] = allocate(product({max_rows, max_h_inner_}, "workspace"), false);
    y_[1] = allocate(product({max_rows, max_h_inner_}, "workspace"), false);
    state_ = allocate(m.state_count(config.max_batch));
    for (Buffer& b : h_alt_) {
      b = allocate(product({config.max_batch, m.max_hidden()}, "workspace"));
    }
    if (rounds_operands(precision_) && !amx_) {  // (AMX: hb_ and xb_ instead)
      xq_ = allocate(product({max_rows, m.input_size()}, "workspace"), false);
      for (Buffer& b : hq_) b = allocate(product({config.max_batch, m.max_hidden()}, "workspace"));
    }
    if (amx_) {
      kp_max_ = (m.max_hidden() + kAmxK - 1) / kAmxK * kAmxK;
      for (Buffer& b : hb_) b = allocate(product({config.max_batch, kp_max_}, "workspace") / 2 + 1);
    }
  }

  // The rows one worker works on: batch rows [b0, b1) of the call, all T steps.  The
  // workspaces (G, the inner layers' outputs, the other h buffer) hold them in a region of
  // their own, rows in the worker's order (b - b0) * T + t and each layer's own row length:
  // in the batch split the workers run through the layers at their own pace, and a row
  // length that changes with the layer must not make their regions overlap.
  struct Share {
    std::int64_t b0 = 0, b1 = 0;
    float* g = nullptr;        // G region: local row i at g + i * (groups * 64)
    float* y_inner[2] = {};    // outputs of the inner layers l, in y_inner[l % 2]
    // The other h buffer of even and odd layers, batch row b at h_alt[l % 2] + b * H (b in
    // [b0, b1)): a layer's last h is moved out of it after the layer's barrier while the next
    // layer steps (run_unit_share).
    float* h_alt[2] = {};
    float* hq[2] = {};         // BF16/FP16: the rounded h the products read (two, as h)
    std::uint16_t* hb[2] = {};  // AMX: the same as bfloat16 codes, kp_max_ per row
  };

  Share share(std::int64_t b0, std::int64_t b1) const {
    const std::int64_t T = call_->time;
    Share sh;
    sh.b0 = b0;
    sh.b1 = b1;
    sh.g = g_.get() + b0 * T * max_groups_ * kRow;
    for (int i = 0; i < 2; ++i) sh.y_inner[i] = y_[i].get() + b0 * T * max_h_inner_;
    for (int i = 0; i < 2; ++i) sh.h_alt[i] = h_alt_[i].get() + b0 * model_->max_hidden();
    for (int i = 0; i < 2; ++i) {
      if (hq_[i]) sh.hq[i] = hq_[i].get() + b0 * model_->max_hidden();
      if (hb_[i]) sh.hb[i] = codes(hb_[i]) + b0 * kp_max_;
    }
    return sh;
  }

  // One layer of the running call, for one share.
  struct LayerView {
    const PackedLayer* p = nullptr;
    const Share* sh = nullptr;
    const float* x = nullptr;  // input rows: the call's input (layer 0) or the share's
    bool x_local = false;      //   region of the previous layer's outputs (x_local)
    float* y = nullptr;        // output rows: the call's output (last layer, may be null)
    bool y_local = false;      //   or the share's region (y_local)
    float* c = nullptr;        // [B][H] cell state, updated in place
    float* h_state = nullptr;  // [B][H] h in the packed state
    float* h_alt = nullptr;    // [B][H] view of the other h buffer (rows of the share only)
    float* hq[2] = {};         // [B][H] views of the rounded h buffers (BF16/FP16 only)
    std::uint16_t* hb[2] = {};  // [B][kp] views of their codes (AMX only), kp = k_tiles * 32
    std::int64_t kp = 0;
  };

  LayerView view(const Share& sh, std::size_t l, std::size_t state_off) const {
    LayerView v;
    v.p = &layers_[l];
    v.sh = &sh;
    v.x = l == 0 ? x0_ : sh.y_inner[(l - 1) % 2];
    v.x_local = l > 0;
    v.y_local = l + 1 < layers_.size();
    v.y = v.y_local ? sh.y_inner[l % 2] : call_->output;
    v.c = state_.get() + state_off;
    v.h_state = v.c + call_->batch * v.p->H;
    v.h_alt = sh.h_alt[l % 2] - sh.b0 * v.p->H;  // so that v.h_alt + b * H is in the share's
                                                 // region
    v.kp = v.p->k_tiles * kAmxK;
    for (int i = 0; i < 2; ++i) {
      if (sh.hq[i]) v.hq[i] = sh.hq[i] - sh.b0 * v.p->H;
      if (sh.hb[i]) v.hb[i] = sh.hb[i] - sh.b0 * v.kp;
    }
    return v;
  }

  // Row of (batch row b, step t): in the share's region, or in the caller's layout.
  std::int64_t local_row(const Share& sh, std::int64_t b, std::int64_t t) const {
    return (b - sh.b0) * call_->time + t;
  }
  std::int64_t call_row(std::int64_t b, std::int64_t t) const {
    return call_->layout == SLSTM_TIME_MAJOR ? t * call_->batch + b : b * call_->time + t;
  }

  // Rows per chunk of project() over `rows` rows and `groups` groups of p's W_x (the plan's
  // per-layer "projection" says it: projection_rule).
  // Where those groups stay in L2 from one chunk to the next (up to twice its size: the
  // chunks then re-read them from L2 or just beyond), chunks whose inputs stay in L2
  // beside them (chunk_bytes_).  Where they do not, each chunk streams them all from L3
  // once, and it pays to have few chunks even when the inputs then stream from L3 per group
  // instead (a block's 6 rows are 1/32 byte per FLOP, read in order): every row in one
  // chunk up to kStreamChunkBytes of inputs, else the fewest chunks of at most that, of
  // equal numbers of blocks.  Measured on an AMX Xeon VM (2 threads, FP32, I = H, T = 25,
  // against the L2 chunks; bench/results/cpu-large-batch.md): H = 2048 B = 16 / 32 / 64 /
  // 128 1.03-1.09x, H = 1536 B = 16 / 64 and H = 1024 B = 128 1.05x; H = 512 (2 MB a
  // worker) 0.93x at B = 64 T = 100, hence the L2 rule there.
  std::int64_t chunk_rows(const PackedLayer& p, std::int64_t rows, std::int64_t groups) const {
    if (groups <= l2_groups(p)) return l2_chunk_rows(p);
    const std::int64_t most = stream_pass_rows(p);
    const std::int64_t blocks = (rows + kMaxNb - 1) / kMaxNb;
    const std::int64_t chunks = (rows + most - 1) / most;
    return std::max<std::int64_t>((blocks + chunks - 1) / chunks, 1) * kMaxNb;
  }
  // One group of p's W_x as stored (float32, or 16-bit codes).
  static std::int64_t wx_group_bytes(const PackedLayer& p) {
    return p.I * kRow * (p.wx16_storage ? 2 : 4);
  }
  // The most groups of p's W_x within twice a core's L2 (chunk_rows' first case).
  std::int64_t l2_groups(const PackedLayer& p) const {
    return 2 * l2_bytes_ / wx_group_bytes(p);
  }
  // Rows per chunk beside groups near L2 (chunk_bytes_ of float32 inputs), and the most rows
  // per pass otherwise (kStreamChunkBytes of them); whole blocks of rows.
  std::int64_t l2_chunk_rows(const PackedLayer& p) const {
    return std::clamp<std::int64_t>(chunk_bytes_ / (4 * p.I) / kMaxNb, 8, 64) * kMaxNb;
  }
  static std::int64_t stream_pass_rows(const PackedLayer& p) {
    return std::max<std::int64_t>(kStreamChunkBytes / (4 * p.I) / kMaxNb, 1) * kMaxNb;
  }
  // The plan's per-layer "projection": chunk_rows' rule with this layer's numbers.
  std::string projection_rule(const PackedLayer& p) const {
    if (p.wxamx_storage) {
      return "AMX: chunks of " + std::to_string(amx_chunk_rows(p.kx_tiles * kAmxK)) +
             " rows, their bfloat16 codes kept in L2";
    }
    const std::string l2 = "twice the core's L2 of " + std::to_string(l2_bytes_ >> 10) + " KB";
    const std::string chunks = "chunks of " + std::to_string(l2_chunk_rows(p)) + " rows";
    const std::string pass =
        "one pass over up to " + std::to_string(stream_pass_rows(p)) + " rows";
    const std::int64_t fit = l2_groups(p);
    if (fit >= p.groups) {
      return chunks + " (all " + std::to_string(p.groups) + " groups of W_x within " + l2 + ")";
    }
    if (fit == 0) return pass + " (one group of W_x exceeds " + l2 + ")";
    return pass + " where a worker projects more than " + std::to_string(fit) + " of the " +
           std::to_string(p.groups) + " groups of W_x (" + l2 + "), else " + chunks;
  }

  // G[i][g*64 ..] = x(i) . Wx_g for the share's local rows i in [i0, i1) and groups g in
  // [g0, g1), by worker `worker` (its scratch, on AMX): chunks of rows (chunk_rows), the
  // groups inside, blocks of kMaxNb rows innermost.  Each group's weights come from L3 once
  // per chunk and serve every block of it from L2: the longer the chunk, the fewer trips
  // (48 rows -> 384 rows measured +8% on one core with 4 MB of weights).
  void project(const LayerView& v, std::int64_t i0, std::int64_t i1, std::int64_t g0,
               std::int64_t g1, int worker) const {
    const PackedLayer& p = *v.p;
    if (p.wxamx_storage) {
      project_amx(v, i0, i1, g0, g1, worker);
      return;
    }
    const std::int64_t T = call_->time, ld_g = p.groups * kRow;
    const std::int64_t slab = p.I * kRow;  // one group's packed Wx
    // Wx as float32, or (a BF16 / FP16 session on the AVX2 / AVX-512 kernels) as 16-bit codes.
    const std::uint16_t* const codes = p.wx16();
    const auto* const base = codes != nullptr ? static_cast<const void*>(codes) : p.wx.get();
    const std::int64_t slab_bytes = wx_group_bytes(p);
    const std::int64_t kChunk = chunk_rows(p, i1 - i0, g1 - g0);
    for (std::int64_t c0 = i0; c0 < i1; c0 += kChunk) {
      const std::int64_t c1 = std::min(i1, c0 + kChunk);
      const std::int64_t blocks = (c1 - c0 + kMaxNb - 1) / kMaxNb;
      for (std::int64_t gi = g0; gi < g1; ++gi) {
        const char* w = static_cast<const char*>(base) + gi * slab_bytes;
        // What follows this group: the next one, or the first again for the next chunk.
        const char* next = !fetch_ahead(slab_bytes, slab_bytes * (g1 - g0)) ? nullptr
                           : gi + 1 < g1 ? w + slab_bytes
                           : c1 < i1     ? static_cast<const char*>(base) + g0 * slab_bytes
                                         : nullptr;
        // 16-bit W_x: the kernels read the codes (half the bytes to stream: a call of one
        // step 1.5-2x faster at H = 1024-2048), except for a chunk of several blocks of rows
        // whose codes do not stay in L1: on the AVX-512 kernels (keeps_wx) the first block
        // stores the group's weights widened to float32 as it reads them, on AVX2 (widen_wx)
        // they are widened first; the other blocks read the float32 values from L2.
        const bool avx512 = kernel_ == Kernel::kAvx512;
        const bool keep = codes != nullptr && avx512 && keeps_wx(p, blocks);
        const bool widen = codes != nullptr && !avx512 && widen_wx(p, blocks);
        float* const panel =
            keep || widen ? wx_panel_.get() + worker * wx_panel_per_worker_ : nullptr;
        const auto* const w16 = reinterpret_cast<const std::uint16_t*>(w);
        if constexpr (kHaveX86Kernels) {
          if (widen) widen_codes_avx2(w16, p.wh16_is_bf16, panel, slab);
        }
        const char* const wk = panel != nullptr ? reinterpret_cast<const char*>(panel) : w;
        for (std::int64_t j = 0; j < blocks; ++j) {
          const std::int64_t r0 = c0 + row_cut(c1 - c0, j, blocks);
          const int nb = static_cast<int>(c0 + row_cut(c1 - c0, j + 1, blocks) - r0);
          const float* in[kMaxNb];
          float* out[kMaxNb];
          for (int k = 0; k < nb; ++k) {
            const std::int64_t i = r0 + k;
            const std::int64_t xr = v.x_local ? i : call_row(v.sh->b0 + i / T, i % T);
            in[k] = v.x + xr * p.I;
            out[k] = v.sh->g + i * ld_g + gi * kRow;
          }
          const Prefetch ahead = prefetch_share(next, slab_bytes, j, blocks);
          const std::int64_t units = std::min(kGroup, p.H - gi * kGroup);
          if constexpr (kHaveX86Kernels) {  // (codes: packed for the AVX kernels only)
            if (codes != nullptr && !widen && !(keep && j > 0)) {
              if (avx512) {
                project_block16_avx512(w16, p.wh16_is_bf16, in, p.I, out, nb, ahead, panel);
              } else {
                project_block16_avx2(w16, p.wh16_is_bf16, in, p.I, out, nb, ahead, units);
              }
              continue;
            }
          }
          project_block(reinterpret_cast<const float*>(wk), in, p.I, out, nb, kernel_, ahead,
                        units);
        }
      }
    }
  }

  // Whether the projection of a chunk of `blocks` blocks of rows over layer p's 16-bit W_x
  // widens each group's codes to float32 first (project(), the AVX2 kernels): when the chunk
  // is long enough for the widening (one pass over the group) to pay off against the
  // conversions in every block, and a group's codes do not stay in L1 (exceed the core's L1D,
  // l1d_cache_bytes), where the kernels would read them from.  Measured with the AVX-512
  // kernels, which did the same until 0.19.9 (2 threads, BF16, widened against the codes
  // read by the kernels; L1D 48 KB): chunks of 32 blocks at I = 1024 1.05x, 64 at I = 512
  // 1.05x, 17 at I = 1024 0.96x, 100 at I = 256 (32 KB of codes a group) 0.93x
  // (bench/results/cpu-wx16.md).
  bool widen_wx(const PackedLayer& p, std::int64_t blocks) const {
    return blocks >= kWidenBlocks && p.I * kRow * 2 > l1d_bytes_;
  }

  // The same on the AVX-512 kernels, where the first block of rows widens the codes as it
  // reads them (project_block16_avx512's `keep`): from kKeepBlocks blocks of rows, as the
  // step's W_h (keeps_wh).
  bool keeps_wx(const PackedLayer& p, std::int64_t blocks) const {
    return blocks >= kKeepBlocks && p.I * kRow * 2 > l1d_bytes_;
  }

  // Worker w's part (of P) of the projection of a share that P workers split.  Each element
  // is one dot product in a fixed k order whoever computes it, so the split never changes a
  // bit.  By groups when there are enough of them (each worker then streams only its part
  // of Wx) or too few blocks of rows to go round (a single call of a few rows: by rows, one
  // worker would stream all of Wx while the others wait), else by rows.
  void project_part(const LayerView& v, int w, int P) const {
    const PackedLayer& p = *v.p;
    const std::int64_t rows = (v.sh->b1 - v.sh->b0) * call_->time;
    const std::int64_t blocks = (rows + kMaxNb - 1) / kMaxNb;
    if (p.groups >= 4 * P || blocks < P) {
      project(v, 0, rows, p.groups * w / P, p.groups * (w + 1) / P, w);
    } else {
      project(v, std::min(rows, blocks * w / P * kMaxNb),
              std::min(rows, blocks * (w + 1) / P * kMaxNb), 0, p.groups, w);
    }
  }

  // Rows of x codes per chunk of the AMX projection (row length kp codes): what stays in L2
  // (kChunkBytes), in whole tiles of rows.
  static std::int64_t amx_chunk_rows(std::int64_t kp) {
    return std::clamp<std::int64_t>(kChunkBytes / (2 * kp) / kMaxAmxRows, 1, 12) * kMaxAmxRows;
  }

  // project() on AMX (a BF16 session, choose_amx): per chunk of rows, their codes into worker
  // w's scratch (zero from I to kp), then per group its tiles over blocks of 32 rows, each
  // block's sums stored straight into G.
  void project_amx(const LayerView& v, std::int64_t i0, std::int64_t i1, std::int64_t g0,
                   std::int64_t g1, int worker) const {
    const PackedLayer& p = *v.p;
    const std::int64_t kp = p.kx_tiles * kAmxK, chunk = amx_chunk_rows(kp);
    const std::int64_t T = call_->time, ld_g = p.groups * kRow;
    const std::int64_t slab = p.kx_tiles * 4 * kAmxTile;  // one group's codes
    std::uint16_t* xs = codes(xb_) + worker * xb_per_worker_;
    for (std::int64_t c0 = i0; c0 < i1; c0 += chunk) {
      const std::int64_t c1 = std::min(i1, c0 + chunk);
      for (std::int64_t i = c0; i < c1; ++i) {
        const std::int64_t xr = v.x_local ? i : call_row(v.sh->b0 + i / T, i % T);
        std::uint16_t* row = xs + (i - c0) * kp;
        round_to_codes(precision_, v.x + xr * p.I, row, static_cast<std::size_t>(p.I));
        std::fill(row + p.I, row + kp, std::uint16_t{0});
      }
      if constexpr (kHaveX86Kernels) {  // (AMX tiles are packed on x86-64 builds only)
        project_rows_amx(p.wxamx() + g0 * slab, g1 - g0, xs, kp, p.kx_tiles,
                         v.sh->g + c0 * ld_g + g0 * kRow, ld_g, c1 - c0);
      }
    }
  }

  static void job(void* self, int worker) { static_cast<CpuFastBackend*>(self)->run(worker); }

  // The call on `pool`, split as choose_split says, except that a call that finds every
  // worker asleep runs on this thread alone where waking them would cost it more than they
  // would take off (alone_when_asleep, split.hpp); it wakes them to spin for the next call
  // meanwhile (nudge; not with cpu.spin_us=0), as a call they took part in does.  The plan
  // counts such calls (calls_alone_asleep).
  void run_on(Pool& pool, const ForwardCall& call) {
    if (pool.orphaned()) {  // in a child process, whose pool has no workers (thread_pool.hpp)
      split_ = choose_split(call.batch, split_time_, work_, 1, thresholds_);
      plan_steps();
      job(this, 0);
      return;
    }
    split_ = choose_split(call.batch, split_time_, work_, workers_, thresholds_);
    if (split_.workers > 1 && pool.sleeping() == pool.size() - 1 &&
        alone_when_asleep(call.batch, split_time_, work_, split_.workers, thresholds_)) {
      split_ = choose_split(call.batch, split_time_, work_, 1, thresholds_);
      if (spin_ns_ > 0) pool.nudge(spin_ns_);
      alone_asleep_.fetch_add(1, std::memory_order_relaxed);
    }
    plan_steps();
    pool.run(&CpuFastBackend::job, this, split_.workers, spin_ns_);
  }

  // The call on the caller's pool: a team of up to the split's workers (CallerPool), the
  // split chosen again for the team that formed (choose_team).  The plan counts calls whose
  // team came out smaller than asked (calls_short_team).
  void run_on_caller(const ForwardCall& call) {
    split_ = choose_split(call.batch, split_time_, work_, workers_, thresholds_);
    if (split_.workers <= 1) {
      plan_steps();
      job(this, 0);
      return;
    }
    const int want = split_.workers;
    if (caller_->run(&CpuFastBackend::job, &CpuFastBackend::choose_team, this, want) < want) {
      short_team_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  static int choose_team(void* self, int k) {
    CpuFastBackend& b = *static_cast<CpuFastBackend*>(self);
    if (k < b.split_.workers) {
      b.split_ = choose_split(b.call_->batch, b.split_time_, b.work_, k, b.thresholds_);
    }
    b.plan_steps();
    return b.split_.workers;
  }

  // Per layer, for the call's split: whether its steps fetch the next group's weights ahead
  // (a worker's groups: every group in the batch split, its share of them in the unit split).
  void plan_steps() {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const PackedLayer& p = layers_[l];
      const std::int64_t group = slab_bytes_of(p);
      const std::int64_t mine =
          split_.split_batch ? p.groups : (p.groups + split_.active - 1) / split_.active;
      step_ahead_[l] = fetch_ahead(group, group * mine) ? 1 : 0;
    }
  }

  // Bytes of one group's packed W_h.
  static std::int64_t slab_bytes_of(const PackedLayer& p) {
    if (p.wamx_storage) return p.k_tiles * 4 * kAmxTile * 2;
    return p.H * kRow * static_cast<std::int64_t>(p.wh ? sizeof(float) : sizeof(std::uint16_t));
  }

  static std::uint16_t* codes(const Buffer& b) { return reinterpret_cast<std::uint16_t*>(b.get()); }

  // Whether a worker's steps run its groups forwards and backwards in turn: when its share
  // of W_h (of `workers`) does not stay in its L2 from one step to the next, a pass in the
  // same order would find none of it there (each line evicted before its turn comes again),
  // while the way back starts with the groups the last step left in L2 (measured on one
  // AVX-512 core streaming 1.6-8 MB: 5-30 % less time a step).  Only the order changes:
  // each group is computed as before, so the numbers do not.
  bool snake_order(const PackedLayer& p, int workers) const {
    const double share = p.wh_bytes() / std::max(1, workers);
    return 2.0 * share > static_cast<double>(l2_bytes_);
  }

  // Whether step() has the AVX-512 kernels widen W_h's codes a group at a time (wh_keep) for
  // kKeepBlocks blocks of rows or more: 16-bit W_h whose group's codes do not stay in L1
  // (exceed the core's L1D, l1d_cache_bytes: where the next blocks would read them from; the
  // float32 values would not).  Measured on
  // an AVX-512 Xeon (2 threads, BF16, against the codes read by every block): H = 512
  // B = 128 1.06x, H = 1024 B = 64 1.04x, 3 blocks at H = 512 0.97x, H = 256 and 300 (32
  // and 38 KB of codes a group; L1D 48 KB) 0.96-0.97x (bench/results/cpu-wx16.md).
  bool keeps_wh(const PackedLayer& p) const {
    return kernel_ == Kernel::kAvx512 && p.wh16_storage && !p.wamx_storage &&
           p.H * kRow * 2 > l1d_bytes_;
  }

  // Whether a kernel fetches the next group's weights (`group` bytes each) into L2 while it
  // works on the current group's (Prefetch): when the worker's groups (`share` bytes in all)
  // do not stay in its L2 from one pass to the next -- else the lines are there already and
  // the prefetches only take load slots -- and two groups fit.
  bool fetch_ahead(std::int64_t group, std::int64_t share) const {
    return 2 * share > l2_bytes_ && 2 * group <= l2_bytes_;
  }

  // Step t of layer v for groups [g0, g1) and the share's batch rows (its blocks of rows
  // [j0, j1) only, where j1 >= 0), in increasing order or (`down`) decreasing, by worker
  // `worker` (its AMX scratch); g_after: the group this worker is likely to take after the
  // last one (its weights fetched ahead), or -1.
  void step(const LayerView& v, std::int64_t t, std::int64_t g0, std::int64_t g1, int worker,
            std::int64_t g_after = -1, bool down = false, std::int64_t j0 = 0,
            std::int64_t j1 = -1) const {
    const ForwardCall& call = *call_;
    const PackedLayer& p = *v.p;
    const std::int64_t ld_g = p.groups * kRow, b0 = v.sh->b0, b1 = v.sh->b1;
    float* h_buf[2] = {v.h_state, v.h_alt};
    const bool rounding = rounds_operands(precision_);
    StepArgs a;
    a.H = p.H;
    a.h_prev = h_buf[t % 2];
    a.h_next = h_buf[(t + 1) % 2];
    a.h_gemm = rounding ? v.hq[t % 2] : a.h_prev;
    a.c = v.c;
    a.cell = p.cell;
    // The call's first step from the zero state: no recurrent product (StepArgs::h_zero).
    a.h_zero = t == 0 && call.initial_state == nullptr;
    const std::int64_t blocks = row_blocks(*v.sh);
    // Where block j starts: on AMX after j whole blocks (tiles of 16 rows are full but in
    // the last), else cut evenly (row_cut).
    const auto cut = [&](std::int64_t j) {
      return p.wamx_storage ? std::min(b1 - b0, j * block_rows_) : row_cut(b1 - b0, j, blocks);
    };
    const std::int64_t slab_bytes = slab_bytes_of(p);
    const bool ahead = step_ahead_[static_cast<std::size_t>(v.p - layers_.data())] != 0;
    const auto slab = [&](std::int64_t gi) -> const void* {
      if (gi < 0 || !ahead) return nullptr;
      if (p.wamx_storage) return p.wamx() + gi * p.k_tiles * 4 * kAmxTile;
      if (p.wh) return p.wh.get() + gi * p.H * kRow;
      return p.wh16() + gi * p.H * kRow;
    };
    if (p.wamx_storage) {
      a.hb = v.hb[t % 2];
      a.hb_next = v.hb[(t + 1) % 2];
      a.sums = amx_sums_.get() + worker * kAmxSums;
      a.ldh = v.kp;
      a.k_tiles = p.k_tiles;
    }
    // Groups [gi, gi + n) at a time: one, or on AMX up to kAmxGroups (step_block_amx).
    const std::int64_t per = p.wamx_storage ? kAmxGroups : 1;
    const std::int64_t j_end = j1 >= 0 ? std::min(j1, blocks) : blocks;
    // 16-bit W_h on the AVX-512 kernels, kKeepBlocks blocks of rows or more: the first block
    // stores the group's weights widened to float32 as it reads them (StepArgs::wh_keep), the
    // others read those (the same values: the same bits) instead of converting them again.
    float* const keep = keeps_wh(p) && j_end - j0 >= kKeepBlocks
                            ? wx_panel_.get() + worker * wx_panel_per_worker_
                            : nullptr;
    for (std::int64_t k = 0; k < g1 - g0; k += per) {
      const std::int64_t n = std::min(per, g1 - g0 - k);
      const std::int64_t gi = down ? g1 - k - n : g0 + k;
      a.unit0 = gi * kGroup;
      a.units = std::min(kGroup, p.H - a.unit0);
      if (p.wamx_storage) {
        a.wamx = p.wamx() + gi * p.k_tiles * 4 * kAmxTile;
      } else if (p.wh) {
        a.wh = p.wh.get() + gi * p.H * kRow;
      } else {
        a.wh = nullptr;
        a.wh16 = p.wh16() + gi * p.H * kRow;
        a.wh16_is_bf16 = p.wh16_is_bf16;
        a.wh_keep = keep;
      }
      a.bias = p.bias.get() + gi * kRow;
      const void* next = slab(k + n < g1 - g0 ? (down ? gi - 1 : gi + n) : g_after);
      for (std::int64_t j = j0; j < j_end; ++j) {
        if (keep != nullptr && j > j0) {  // (the first block stored the group's weights)
          a.wh = keep;
          a.wh16 = nullptr;
          a.wh_keep = nullptr;
        }
        const std::int64_t r0 = b0 + cut(j);
        const int nb = static_cast<int>(b0 + cut(j + 1) - r0);
        a.b0 = r0;
        a.next = prefetch_share(next, slab_bytes, j, blocks);
        for (int i = 0; i < nb; ++i) {
          const std::int64_t b = r0 + i;
          const std::int64_t local = local_row(*v.sh, b, t);
          a.g_row[i] = v.sh->g + local * ld_g + gi * kRow;
          a.out_row[i] = v.y ? v.y + (v.y_local ? local : call_row(b, t)) * p.H : nullptr;
          a.active[i] = call.lengths == nullptr || t < call.lengths[b];
        }
        if constexpr (kHaveX86Kernels) {  // (AMX tiles are packed on x86-64 builds only)
          if (a.wamx) {
            // (It writes the next step's operand, h's codes, itself; the next layer's
            // projection rounds its input as it reads it.)
            step_block_amx(a, nb, static_cast<int>(n));
            continue;
          }
        }
        step_block(a, nb, kernel_);
        if (rounding) {
          // The next step's product operand, and the next layer's input (an inner layer's
          // outputs are read by nothing else), rounded by the worker that computed them.
          const auto units = static_cast<std::size_t>(a.units);
          for (int i = 0; i < nb; ++i) {
            const std::int64_t off = (r0 + i) * p.H + a.unit0;
            round_floats(precision_, a.h_next + off, v.hq[(t + 1) % 2] + off, units);
            if (v.y_local && a.out_row[i]) {
              round_floats(precision_, a.out_row[i] + a.unit0, a.out_row[i] + a.unit0, units);
            }
          }
        }
      }
    }
  }

  // BF16/FP16: the rounded h of step 0 (the carried state) for batch rows [b0, b1).
  void round_initial_h(const LayerView& v, std::int64_t b0, std::int64_t b1) const {
    if (!rounds_operands(precision_) || b1 <= b0) return;
    const std::int64_t H = v.p->H;
    if (v.p->wamx_storage) {
      // The codes, and zeros from H to kp in both buffers (the tiles read them).
      for (std::int64_t b = b0; b < b1; ++b) {
        round_to_codes(precision_, v.h_state + b * H, v.hb[0] + b * v.kp,
                       static_cast<std::size_t>(H));
        for (std::uint16_t* hb : v.hb) {
          std::fill(hb + b * v.kp + H, hb + (b + 1) * v.kp, std::uint16_t{0});
        }
      }
      return;
    }
    round_floats(precision_, v.h_state + b0 * H, v.hq[0] + b0 * H,
                 static_cast<std::size_t>((b1 - b0) * H));
  }

  // After T steps: when T is odd the final h is in the other buffer; move units [u0, u1) of
  // the share's rows into the packed state.
  void settle_h(const LayerView& v, std::int64_t u0, std::int64_t u1) const {
    const std::int64_t H = v.p->H;
    if (call_->time % 2 == 0 || u1 <= u0) return;
    for (std::int64_t b = v.sh->b0; b < v.sh->b1; ++b) {
      std::memcpy(v.h_state + b * H + u0, v.h_alt + b * H + u0,
                  static_cast<std::size_t>(u1 - u0) * sizeof(float));
    }
  }

  void run(int w) {
    if (split_.split_batch) {
      run_batch_share(w);
    } else {
      run_unit_share(w);
    }
  }

  // Worker w's part when the units are split: per layer, its part of the input projection
  // (all split_.workers), then, for the first split_.active workers, the recurrence over a
  // contiguous range of the layer's 16-unit groups for every batch row, one barrier between
  // two steps and one after the layer.  A call of one step (fuse_projection) projects each
  // group's input in the step, by whoever steps the group: one barrier per layer.
  void run_unit_share(int w) {
    const std::int64_t T = call_->time;
    const int P = split_.workers, A = split_.active;
    const Share sh = share(0, call_->batch);
    std::size_t state_off = 0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const LayerView v = view(sh, l, state_off);
      const PackedLayer& p = *v.p;
      const bool fused = fuse_projection(p);
      if (!fused) {
        project_part(v, w, P);
        round_initial_h(v, call_->batch * w / P, call_->batch * (w + 1) / P);
        layer_barrier_.wait(P);  // all of G (and the rounded h) written before a step reads it
      }
      const std::int64_t blocks = row_blocks(sh);
      if (w < A && by_blocks(p, blocks, A)) {
        // Worker w's share of the (group, block of rows) pairs, in group order, every other
        // step backwards (snake_order); groups whole where the share has them whole.
        const std::int64_t items = p.groups * blocks;
        const std::int64_t i0 = items * w / A, i1 = items * (w + 1) / A;
        // (A share may be empty: fewer pairs than workers.  It still meets the barriers.)
        const std::int64_t first = i0 / blocks, last = i1 > i0 ? (i1 - 1) / blocks : first - 1;
        for (std::int64_t t = 0; t < T; ++t) {
          const bool down = snake_order(p, A) && t % 2 == 1;
          for (std::int64_t k = 0; k <= last - first; ++k) {
            const std::int64_t g = down ? last - k : first + k;
            const std::int64_t j0 = std::max(i0 - g * blocks, std::int64_t{0});
            const std::int64_t j1 = std::min(i1 - g * blocks, blocks);
            const std::int64_t after = k < last - first ? (down ? g - 1 : g + 1) : -1;
            if (fused) project(v, row_cut(sh.b1 - sh.b0, j0, blocks),
                               row_cut(sh.b1 - sh.b0, j1, blocks), g, g + 1, w);
            step(v, t, g, g + 1, w, after, false, j0, j1);
          }
          if (t + 1 < T) step_barrier_.wait(A);
        }
      } else if (w < A) {
        for (std::int64_t t = 0; t < T; ++t) {
          // This step's number, the same on every worker.
          const std::uint64_t epoch = epoch_base_ + l * static_cast<std::uint64_t>(T) +
                                      static_cast<std::uint64_t>(t) + 1;
          // Own groups first (their weights are in this core's cache), then, when a group is
          // worth moving (split_.steal), whatever the other workers have not started yet: a worker
          // the machine delays does not hold up the step.  Each group is still computed whole
          // by one worker.
          // Every other step runs the groups backwards (snake_order).
          const bool down = snake_order(p, A) && t % 2 == 1;
          for (int k = 0; k < (split_.steal ? A : 1); ++k) {
            const int owner = (w + k) % A;
            const std::int64_t owner_begin = p.groups * owner / A;
            const std::int64_t owner_end = p.groups * (owner + 1) / A;
            // (AMX: up to kAmxGroups at a time, whose tiles run before their epilogues.)
            const std::int64_t want = p.wamx_storage ? kAmxGroups : 1;
            std::int64_t n = 0;
            for (std::int64_t g; (g = grab(p, owner, A, epoch, down, want, n)) >= 0;) {
              const std::int64_t after = down ? (g > owner_begin ? g - 1 : -1)
                                              : (g + n < owner_end ? g + n : -1);
              if (fused) project(v, 0, sh.b1 - sh.b0, g, g + n, w);
              step(v, t, g, g + n, w, after);
            }
          }
          // h_next complete before anyone reads it (after the last step, the layer barrier).
          if (t + 1 < T) step_barrier_.wait(A);
        }
      }
      layer_barrier_.wait(P);  // this layer's outputs (and h) complete before the next layer
      if (w < A) {
        // (After the barrier: every group is complete, stolen ones too, and no step reads
        // this layer's h any more.  The next layer has the other h_alt buffer, and the one
        // after it starts after the next barrier, which this worker reaches after this.)
        const std::int64_t g0 = p.groups * w / A, g1 = p.groups * (w + 1) / A;
        settle_h(v, g0 * kGroup, std::min(g1 * kGroup, p.H));
      }
      state_off += static_cast<std::size_t>(2 * call_->batch * p.H);
    }
  }

  // Blocks of rows a step cuts the share's batch rows into (step()).
  std::int64_t row_blocks(const Share& sh) const {
    return (sh.b1 - sh.b0 + block_rows_ - 1) / block_rows_;
  }

  // Whether the A recurrent workers share a step of layer p by (group, block of rows) pairs
  // instead of whole groups: when the groups do not divide evenly among them (one worker
  // would have a whole group more), a group has several blocks of rows, and no group is
  // worth stealing (stealing evens out the groups otherwise).  A block's sums are computed
  // as in a whole group (same kernel, same chains): the same bits.
  bool by_blocks(const PackedLayer& p, std::int64_t blocks, int A) const {
    return A > 1 && blocks > 1 && p.groups % A != 0 && !split_.steal && !p.wamx_storage;
  }

  // Whether a call projects layer p's input inside its steps (run_unit_share): a call of one
  // step whose projection and recurrence the same workers share (each group's projection
  // then costs its stepper what a worker of project_part would have spent on it, and saves a
  // barrier), in FP32 (the 16-bit sessions round h for the whole batch before the step).
  // Each element of G is computed by the same kernel in the same order as in project_part:
  // the same bits.
  bool fuse_projection(const PackedLayer& p) const {
    return call_->time == 1 && split_.active == split_.workers && !rounds_operands(precision_) &&
           !p.wxamx_storage;
  }

  // The next groups of `owner`'s share (of A) for the step numbered `epoch`: up to `want`
  // consecutive ones, how many in `took`, the lowest returned, or -1 when all are taken;
  // `down`: from the share's last group to its first.  The owner's counter holds
  // (step number mod 2^40) << 24 | how many groups were taken (a layer has fewer than 2^24
  // groups: its weights would not fit in memory otherwise); whoever finds it tagged with an
  // earlier step starts it at 0.
  std::int64_t grab(const PackedLayer& p, int owner, int A, std::uint64_t epoch, bool down,
                    std::int64_t want, std::int64_t& took) {
    std::atomic<std::uint64_t>& next = next_group_[owner].v;
    const std::int64_t g0 = p.groups * owner / A, g1 = p.groups * (owner + 1) / A;
    const std::uint64_t tag = (epoch & ((std::uint64_t{1} << 40) - 1)) << 24;
    std::uint64_t cur = next.load(std::memory_order_acquire);
    for (;;) {
      if ((cur >> 24) != (tag >> 24)) {
        next.compare_exchange_weak(cur, tag, std::memory_order_acq_rel,
                                   std::memory_order_acquire);
        continue;  // started (by us or another worker), or cur reloaded: look again
      }
      const std::int64_t taken = static_cast<std::int64_t>(cur & 0xffffffu);
      if (taken >= g1 - g0) return -1;
      const std::int64_t take = std::min(want, g1 - g0 - taken);
      if (next.compare_exchange_weak(cur, cur + static_cast<std::uint64_t>(take),
                                     std::memory_order_acq_rel, std::memory_order_acquire)) {
        took = take;
        return down ? g1 - taken - take : g0 + taken;
      }
    }
  }

  // Worker w's part when the batch is split: batch rows [b0, b1) through every layer, all
  // units, projection included.  Batch rows never interact, so there is no barrier at all.
  void run_batch_share(int w) {
    const std::int64_t B = call_->batch, T = call_->time;
    const Share sh = share(B * w / split_.active, B * (w + 1) / split_.active);
    if (sh.b1 <= sh.b0) return;
    std::size_t state_off = 0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const LayerView v = view(sh, l, state_off);
      project(v, 0, (v.sh->b1 - v.sh->b0) * T, 0, v.p->groups, w);
      round_initial_h(v, v.sh->b0, v.sh->b1);
      const bool snake = snake_order(*v.p, 1);
      for (std::int64_t t = 0; t < T; ++t) {
        step(v, t, 0, v.p->groups, w, -1, snake && t % 2 == 1);
      }
      settle_h(v, 0, v.p->H);
      state_off += static_cast<std::size_t>(2 * B * v.p->H);
    }
  }

  Kernel kernel_ = Kernel::kPortable;
  Precision precision_ = Precision::kFp32;
  std::int64_t spin_ns_ = 0;  // cpu.spin_us, in nanoseconds
  std::atomic<std::uint64_t> alone_asleep_{0};  // calls run alone, the workers asleep
  std::atomic<std::uint64_t> short_team_{0};    // caller's pool: calls of a smaller team
  std::atomic<std::uint64_t> batch_split_{0};   // calls that ran the batch split
  bool ran_batch_split_ = false;                // ... the current call (a window) did

  std::vector<PackedLayer> layers_;
  Buffer g_;       // input projections, [rows][groups*64] split in per-worker blocks
  Buffer y_[2];    // outputs of the non-last layers, ping-pong
  Buffer state_;   // packed state (c, h per layer) for up to max_batch rows
  Buffer h_alt_[2];  // the other half of the h double buffer (even and odd layers)
  Buffer xq_;      // BF16/FP16: the call's input rounded (layer 0's product operand)
  Buffer hq_[2];   // BF16/FP16: the rounded h the recurrent products read, two as h
  Buffer hb_[2];   // AMX: the same as bfloat16 codes, rows of kp_max_ (zero beyond H)
  bool amx_ = false;               // the recurrent products on AMX tiles (choose_amx)
  int block_rows_ = kMaxNb;        // batch rows per step kernel block (kMaxAmxRows on AMX)
  std::int64_t kp_max_ = 0;        // AMX: the widest layer's H rounded up to kAmxK
  // 16-bit W_x: per worker, one group's weights widened to float32 (project()).
  Buffer wx_panel_;
  std::int64_t wx_panel_per_worker_ = 0;  // floats per worker in wx_panel_
  Buffer xb_;  // AMX: per worker, a projection chunk's input rows as bfloat16 codes
  std::int64_t xb_per_worker_ = 0;  // codes per worker in xb_
  Buffer amx_sums_;  // AMX: per worker, the gate sums of a step call (kAmxSums floats)
  // Steps per window: a longer call runs in windows (run_windows), its batch-major rows
  // through stage_in_ / stage_out_ and its lengths cut to the window in window_lengths_.
  std::int64_t window_ = 1;
  std::int64_t max_rows_ = 1;   // rows the workspaces hold: max_batch x window_
  std::string window_reason_;   // (the plan's window)
  Buffer stage_in_, stage_out_;
  std::vector<std::int32_t> window_lengths_;
  const float* x0_ = nullptr;  // layer 0's input rows: the call's, or xq_
  std::int64_t max_groups_ = 0, max_h_inner_ = 0;
  std::unique_ptr<Pool> pool_;          // the session's own workers (cpu.pool=session), or
  std::shared_ptr<SharedPool> shared_;  // the process-wide ones (cpu.pool=shared), or
  std::unique_ptr<CallerPool> caller_;  // the caller's (options->thread_pool)
  int workers_ = 1;                     // the most workers a call of this session uses
  const ForwardCall* call_ = nullptr;
  std::int64_t split_time_ = 0;  // the steps choose_split weighs: call_'s, or its whole call's
  std::vector<LayerWork> work_;  // the layers as choose_split sees them
  Thresholds thresholds_;        // its thresholds (cpu.calibration)
  CallSplit split_;  // how the current call shares its work (choose_split)
  Barrier step_barrier_;   // among the split_.active recurrent workers, once per step
  // Per worker: the next group of its share that nobody has taken yet (see grab()), tagged
  // with a step number: epoch_base_ (advanced by L*T per call) + l*T + t + 1.
  struct alignas(64) Counter64 { std::atomic<std::uint64_t> v{0}; };
  std::unique_ptr<Counter64[]> next_group_;
  std::uint64_t epoch_base_ = 0;
  Barrier layer_barrier_;  // among all split_.workers, around each layer's recurrence
  std::int64_t l2_bytes_ = l2_cache_bytes();    // one core's L2 (fetch_ahead, snake_order)
  std::int64_t l1d_bytes_ = l1d_cache_bytes();  // its L1D (keeps_wh, keeps_wx, widen_wx)
  // The projection's inputs per chunk of rows where its groups of W_x stay near L2
  // (chunk_rows): kChunkBytes, or three quarters of a larger L2.  (Measured on an AVX-512
  // Xeon with 2 MB of L2 while it served every W_x, 0.19.10: FP32 H = 1536-2048 B = 4-64
  // 1.02-1.09x against 768 KB, H <= 1024 level; bench/results/cpu-large-batch.md.)
  std::int64_t chunk_bytes_ = std::max(kChunkBytes, l2_bytes_ / 4 * 3);
  std::vector<char> step_ahead_;              // per layer, this call: plan_steps()
};

}  // namespace
}  // namespace slstm::cpu

namespace slstm {

std::unique_ptr<Backend> make_cpu_fast_backend(ModelPtr model, const SessionConfig& config) {
  const cpu::KernelChoice kernel = cpu::choose_kernel(config.settings);
  return std::make_unique<cpu::CpuFastBackend>(std::move(model), config, kernel);
}

}  // namespace slstm
