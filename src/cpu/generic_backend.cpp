// The CPU fast path for stacks beyond BasicLSTMCell (docs/cells.md): LSTM with peepholes,
// clipping and a projection, GRU in both reset variants, reverse and bidirectional layers,
// residual connections, any mix of them.  The BasicLSTMCell fast path (fast_backend.cpp) keeps
// its fused kernels; this one trades their last factor for generality.
//
// Structure: the steps of a call run batched, every active row of a step together, as
// float32 GEMMs over weights packed once per session (blocks of 32 gate rows stored
// transposed, so that a row's 32 sums stay in registers over the whole k loop and each k adds
// one contiguous slice): on AVX2+FMA CPUs an intrinsics kernel that serves 3 rows from each
// load of a slice (one FMA per product; up to 6 from each half slice of bfloat16 codes), on
// AVX-512 CPUs one that serves 6 (the same FMAs, so the same bits), elsewhere a loop the
// compiler vectorises (x86-64: SSE2, multiply then add; aarch64: NEON fused multiply-add,
// step_kernels.hpp madd),
// then the cell's pointwise math per row (on AVX2 8 units at a time with the fused kernels'
// vector sigmoid / tanh, peepholes and cell_clip included; scalar libm on the portable
// kernels).  Those kernels live in generic_kernels.cpp; this file runs them.  A stack
// whose layers all read forward runs in windows of steps, each layer over a window before
// the next (every step sees what MultiRNNCell's order gives it; the workspace holds one
// window: forward_windows); one with a reverse or bidirectional layer runs layer by layer
// over the whole sequence, each direction reading every row's valid part in its own order.
// Threads: the workers (num_threads, at most one per batch row) split the batch rows, each
// running its rows through every layer and step with its own workspace: rows never
// interact, so there is no barrier.  A call of fewer than 3 rows per thread would leave each
// worker streaming every weight for 1-2 rows (and at one row, the others idle), so then a
// stack with bidirectional layers splits the two directions between 2 workers (each every
// row; they meet twice per layer): forward_by_direction; and a stack whose step streams
// enough weights (kTeamMinBytes) runs as a team: every worker on every row, each GEMM cut
// by gate rows (32-row blocks) and the cell math by units, a barrier between the phases of
// a step (Team, step()) -- with its directions split, one team per direction.  The workers
// are the session's own, the process-wide pool's (cpu.pool=shared: a call that finds it busy
// runs alone), or a team of the tasks of the caller's pool (options->thread_pool).
//
// Determinism: every pre-activation is one chain of multiply-adds in increasing k (input
// part, then recurrent part) started from the bias, computed with the same instructions
// whichever rows share its step; the pointwise math is per element.  A step's result
// therefore depends only on its input, the carried state and the weights: chunked calls and
// slstm_session_step are bitwise equal to one call (tests/test_layers.cpp).  A call without
// initial_state skips each direction's first recurrent products (h = 0; step()'s h_zero),
// with the bits of a call from explicit zeros.
#include "generic_backend.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "buffer.hpp"
#include "calibration.hpp"
#include "fast_plan.hpp"
#include "generic_kernels.hpp"
#include "rounding.hpp"
#include "thread_pool.hpp"

namespace slstm::cpu {
namespace {

// One direction's weights as the steps read them.
struct Packed {
  PackedMatrix wx;          // W_x, all G*H rows
  PackedMatrix wh;          // W_h: LSTM all 4H rows; GRU the r and z rows (2H)
  PackedMatrix wh_n;        // GRU: W_h's n rows (H)
  PackedMatrix wproj;       // LSTM with a projection: W_proj (P rows)
  std::vector<float> bias;  // [G*H]: where each chain starts (see pack())
  std::vector<float> bh_n;  // GRU reset_after: b_h of the n block [H]
  std::vector<float> peep;  // LSTM peepholes [3H]

  std::int64_t bytes() const {  // (host_memory_bytes)
    return held_bytes(wx.store) + held_bytes(wh.store) + held_bytes(wh_n.store) +
           held_bytes(wproj.store) + held_bytes(bias) + held_bytes(bh_n) + held_bytes(peep);
  }
};

// (BF16/FP16: the weights rounded to the precision, docs/precision.md.)
Packed pack(const Model& m, std::size_t l, int d, Precision pr, bool store16, bool amx) {
  const Layer& layer = m.layer(l);
  const LayerSpec& s = layer.spec;
  const CellWeights& w = layer.dir(d);
  const std::int64_t GH = s.gate_rows(), H = s.hidden_size;
  Packed p;
  p.wx = pack_rows(w.w_x, 0, GH, s.input_size, pr, store16, amx);
  if (s.cell == CellKind::kGru) {
    p.wh = pack_rows(w.w_h, 0, 2 * H, H, pr, store16, amx);
    p.wh_n = pack_rows(w.w_h, 2 * H, H, H, pr, store16, amx);
  } else {
    p.wh = pack_rows(w.w_h, 0, GH, s.cell_output_size(), pr, store16, amx);
  }
  // LSTM: + forget_bias on f; GRU r, z: b_x + b_h; n: b_x (+ b_h when the reset comes first:
  // then b_h,n is additive; after, r scales b_h,n + W_h,n h).
  p.bias = m.step_bias(l, d);
  p.bh_n = m.step_bias_hn(l, d);
  p.peep = w.peep;
  if (s.proj_size > 0) p.wproj = pack_rows(w.w_proj, 0, s.proj_size, H, pr, store16, amx);
  return p;
}

// Batch rows per worker below which a stack with bidirectional layers splits the directions
// (the AVX2 GEMM serves rows in blocks of 3).
constexpr std::int64_t kDirectionSplitRows = 3;
// With 2 workers, a call of fewer rows than this splits the directions too: split by rows,
// each worker streams both directions' weights for half the rows, twice the bytes of one
// direction's for every row.  Measured on the 2-vCPU AVX-512 Xeon (always split against
// split by rows, min of 5 alternating rounds): bidirectional LSTM H = 1024 / 512 / 256 at
// B = 16 1.32 / 1.08 / 1.19x faster; at B = 32 mixed (2-layer LSTM H = 256 1.20, H = 512
// 1.01, 2-layer GRU H = 256 0.95), at B = 64 H = 512 0.97.  (With more workers the rule
// above stands: unmeasured there, and the directions take only 2 workers without teams.)
constexpr std::int64_t kDirectionSplitRowsTwoWorkers = 24;
// ... and so does a call of up to this many rows when a direction's W_h (of some layer) is
// larger than a core's L2: the step then streams it from L3 for every row group, and a
// worker with all the rows of one direction reuses each L2 panel of it for twice the rows
// (the AVX-512 GEMM: ~0.82 of the FMA peak at 64 rows against ~0.76 at 32, microbenchmark).
// Measured (2-vCPU AVX-512 Xeon, min of 5-8 alternating rounds, split directions / rows):
// bidirectional LSTM B = 64 H = 512 1.03, H = 1024 1.07; B = 32 H = 512 1.04; GRU B = 64
// H = 1024 1.04, H = 512 1.01; level where W_h fits L2 (2 x 256 LSTM B = 32 / 64 0.99-1.01,
// GRU 0.98), and B = 128 H = 512 0.97 (row split already gives each worker 64 rows).
constexpr std::int64_t kDirectionSplitRowsLargeWh = 64;

// The input projections of a direction's steps run ahead of the steps, as one GEMM over the
// rows of up to this many bytes of pre-activations (each weight block then serves every row
// of the chunk from cache, instead of being streamed again at every step).  Measured on an
// AVX-512 Xeon with 2 MiB of L2 a core (1 and 2 threads, GRU / LSTMP / peephole /
// bidirectional, B = 10-64): 1 and 2 MiB level, 4 MiB 1-3 % slower, 8 MiB and 512 KiB up
// to 7-8 % (bench/results/cpu-workspace.md, "The generic path's projection chunks").
constexpr std::int64_t kProjectionChunkBytes = 1 << 20;
// The same where a layer's W_x (one direction, as stored) exceeds twice a core's L2: each
// chunk then streams W_x from L3, and the fewer chunks the better (as the BasicLSTMCell
// path's chunk_rows).  Measured on an AVX-512 Xeon (2 threads, FP32, against 1 MiB): GRU
// H = I = 2048 B = 16 / 64 1.59x / 1.18x, peephole LSTM H = 2048 B = 16 1.70x, LSTMP
// H = 2048 P = 512 B = 16 1.66x, bidirectional H = 1024 B = 16 1.05x, GRU H = 1024 B = 64
// 0.99x (bench/results/cpu-large-batch.md).
constexpr std::int64_t kStreamProjectionChunkBytes = 16 << 20;
// On AMX, a GEMM converts its operand rows to bfloat16 codes in chunks of about this many
// bytes (kept in L2 while every 32-column block of the weights passes over them).
constexpr std::int64_t kAmxChunkBytes = 768 * 1024;

// A forward stack's calls of fewer than this many batch rows per thread may run as one team
// (the GEMMs cut by gate rows, the cell math by units; forward_windows): a call of fewer
// rows than threads when a step streams at least kTeamMinBytes of weights, one of 1 to 3
// rows per thread from twice that (the rows split already keeps every worker busy there),
// with one worker per kTeamBytesPerWorker.  Below, the 3-5 barriers of a step cost more than
// the split saves: measured on a 2-vCPU AVX-512 Xeon, GRU B = 1 (team / rows time): H = 128
// (384 KiB) 1.45, H = 192 (864 KiB) 0.71, H = 256 (1.5 MiB) 0.67; B = 4: 1.05 at 864 KiB,
// 0.86 at 1.5 MiB (bench/results/bench-cpu-cells.md).
constexpr std::int64_t kTeamRows = 3;
constexpr double kTeamMinBytes = 768.0 * 1024.0;
constexpr double kTeamBytesPerWorker = 384.0 * 1024.0;
constexpr std::int64_t kUnitAlign = 8;  // units per part's step (the AVX2 cell math's width)

// A worker's scratch for the GEMMs.  On AMX (gemm_amx): a chunk of up to `rows` rows of the
// operand as bfloat16 codes (row stride kp, zero past K), and their sums of a 32-column
// block.  With 16-bit weights on the AVX-512 kernels (wide_): a panel of W's blocks widened
// to float32 (gemm_rows_avx512's `wide`).
struct GemmScratch {
  Buffer codes;  // rows x kp codes (in floats' storage)
  Buffer sums;   // rows x 32 floats
  std::int64_t rows = 0, kp = 0;
  Buffer wide;   // wide_panel_floats(K) floats, or none
  std::uint16_t* code_rows() const { return reinterpret_cast<std::uint16_t*>(codes.get()); }
};

// The workers running one step together (step(), team_gemm()): worker `worker` of `workers`,
// meeting at `barrier`; one worker alone is a team of one (no barrier, every part whole).
struct Team {
  int worker = 0, workers = 1;
  Barrier* barrier = nullptr;
  std::vector<float*>* z_offset = nullptr;  // this worker's row pointers for team_gemm
  GemmScratch* scratch = nullptr;           // ... and its GEMM scratch (null: the Work's)
  bool lead() const { return worker == 0; }
  void sync() const {
    if (workers > 1) barrier->wait(workers);
  }
  // This worker's part [a, b) of [0, n), cut at multiples of `align`.
  std::pair<std::int64_t, std::int64_t> part(std::int64_t n, std::int64_t align) const {
    if (workers == 1) return {0, n};
    const std::int64_t pieces = (n + align - 1) / align;
    return {std::min(n, pieces * worker / workers * align),
            std::min(n, pieces * (worker + 1) / workers * align)};
  }
};

class CpuGenericBackend final : public HostBackend {
 public:
  CpuGenericBackend(ModelPtr model, const SessionConfig& config, const KernelChoice& kernel)
      : HostBackend(std::move(model)), precision_(config.precision) {
    const Model& m = *model_;
    const bool avx2 = kHaveX86Kernels && kernel.kernel != Kernel::kPortable;
    const bool avx512 = kHaveX86Kernels && kernel.kernel == Kernel::kAvx512;
    kernels_ = generic_kernels(kernel.kernel);
    layer_major_ = m.first_non_forward() >= 0;
    bool bidirectional = false;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      bidirectional = bidirectional || m.spec(l).directions() == 2;
    }
    plan_.backend = "cpu";
    plan_.path = "fast";
    plan_.precision = precision_name(precision_);
    plan_.params = {{"threads", "1"},
                    {"kernel", avx512 ? "avx512" : avx2 ? "avx2" : "portable"},
                    {"gemm", avx512 ? "AVX-512: a block's 32 sums in 2 zmm, up to 6 rows "
                                      "per load of a weight slice, more rows in panels "
                                      "of blocks that stay in L2"
                             : avx2 ? "AVX2: a block's 32 sums in 4 ymm, up to 3 rows per "
                                      "load of a weight slice (bfloat16 weights: up to 6, "
                                      "16 columns at a time)"
                             : kPortableFma ? "portable (compiler-vectorised, fused multiply-add)"
                                            : "portable (compiler-vectorised, multiply then add)"},
                    {"pointwise", avx2 ? "8 units at a time (AVX2 sigmoid/tanh, "
                                         "simd_math.hpp)"
                                       : "scalar (libm expf/tanhf)"},
                    {"kernel_reason", kernel.why},
                    {"order", layer_major_ ? "layer-major (a layer reads backwards)"
                                           : "windows of steps, each layer over a window "
                                             "before the next (MultiRNNCell's results)"}};
    const std::int64_t B = config.max_batch;
    const bool caller = config.thread_pool.parallel_for != nullptr;
    const bool shared = !caller && config.settings.cpu_pool == Settings::CpuPool::kShared;
    std::int64_t asked = caller                   ? caller_threads(config)
                         : config.num_threads > 0 ? config.num_threads
                                                  : usable_cpus();
    if (shared) {
      // cpu.pool=shared: the process-wide workers (thread_pool.hpp), as on the BasicLSTMCell
      // path; a session takes no more of them than the pool has.
      try {
        shared_ = acquire_shared_pool(usable_cpus());
      } catch (const std::system_error&) {
        fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot create the CPU worker threads");
      } catch (...) {
        rethrow_as_out_of_memory("cannot allocate the CPU workspace");
      }
      asked = std::min<std::int64_t>(asked, shared_->pool.size());
    }
    // A forward stack whose step streams at least kTeamMinBytes of weights may run a call of
    // few rows as a team: up to one worker per kTeamBytesPerWorker of them.
    double& step_bytes = step_bytes_;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      step_bytes += 4.0 * static_cast<double>(
                              s.gate_rows() * (s.input_size + s.cell_output_size()) +
                              s.proj_size * s.hidden_size);
      wh_over_l2_ = wh_over_l2_ || 4 * s.gate_rows() * s.cell_output_size() > l2_cache_bytes();
    }
    // (cpu.team=always: every stack, as many workers as asked; off: none.)  A stack with a
    // bidirectional layer splits its directions first: then each direction may be a team.
    const Settings::Team team_setting = config.settings.cpu_team;
    team_always_ = team_setting == Settings::Team::kAlways;
    spin_ns_ = config.settings.cpu_spin_us * 1000;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      weight_floats_ += static_cast<double>(s.directions()) *
                        static_cast<double>(s.gate_rows() * (s.input_size + s.cell_output_size()) +
                                            s.proj_size * s.hidden_size);
    }
    rates_ = fixed_thresholds(avx512);  // the fast path's fixed rates for the kernel family
    if (team_setting != Settings::Team::kOff &&
        (step_bytes >= kTeamMinBytes || team_setting == Settings::Team::kAlways)) {
      const double by_bytes = team_setting == Settings::Team::kAlways
                                  ? 256.0
                                  : std::max(2.0, step_bytes / kTeamBytesPerWorker);
      const double room = static_cast<double>(bidirectional ? asked / 2 : asked);
      team_workers_ = static_cast<int>(std::min<double>({room, by_bytes, 256.0}));
    }
    // Workers split the batch rows (rows never interact: no barrier); more than one per row
    // would idle, except that a bidirectional stack's two directions can take two workers
    // (or two teams) whatever the batch, and a team any.  The results do not depend on the
    // split (see "Determinism" above).
    const std::int64_t split_workers =
        bidirectional ? std::max<std::int64_t>(2, 2 * std::max(team_workers_, 1)) : team_workers_;
    threads_ = static_cast<int>(
        std::min<std::int64_t>({asked, std::max<std::int64_t>(B, split_workers), 256}));
    team_workers_ = std::min(team_workers_, bidirectional ? threads_ / 2 : threads_);
    if (team_workers_ < 2) team_workers_ = 0;
    plan_.params[0].second = std::to_string(threads_);
    plan_.settings = config.settings.cpu_params();
    direction_split_ = bidirectional && threads_ >= 2;
    const std::string rows_split =
        "batch rows (each worker runs its rows through every layer and step; no barrier)";
    const std::string team_text =
        team_workers_ < 2
            ? std::string()
            : "a team of " + std::to_string(team_workers_) +
                  " workers on every row (each GEMM cut by gate rows, the cell math by units; "
                  "3-5 barriers per layer and step) with " +
                  (team_always_ ? "fewer than " + std::to_string(kTeamRows) +
                                      " rows per thread (cpu.team=always)"
                   : step_bytes_ >= 2 * kTeamMinBytes
                       ? "fewer than " + std::to_string(kTeamRows) + " rows per thread"
                       : std::string("fewer rows than threads")) +
                  " (a step streams " +
                  std::to_string(static_cast<long long>(step_bytes_ / 1024.0)) +
                  " KiB of weights)";
    plan_.params.push_back(
        {"split", direction_split_
                      ? "per call: with fewer than " +
                            (threads_ != 2 ? std::to_string(kDirectionSplitRows) +
                                                 " rows per thread"
                             : wh_over_l2_
                                 ? std::to_string(kDirectionSplitRowsLargeWh + 1) +
                                       " rows (a W_h larger than the core's L2)"
                                 : std::to_string(kDirectionSplitRowsTwoWorkers) + " rows") +
                            " the directions (2 workers, each every row of "
                            "its direction, two barriers per layer" +
                            (team_text.empty() ? std::string(")")
                                               : "; each direction as " + team_text + ")") +
                            ", else batch rows"
                  : team_workers_ >= 2 ? "per call: " + team_text + ", else " + rows_split
                                       : rows_split});
    // BF16/FP16 on the AVX2 (with F16C) and AVX-512 kernels: every weight matrix as 16-bit
    // codes (a step streams half the bytes), unless cpu.wh16=off; same numbers either way.
    const bool can16 = stores_wh16(kernel.kernel, precision_);
    const bool store16 = can16 && config.settings.cpu_wh16;
    // BF16 on AMX's tiles (cpu.amx, as on the BasicLSTMCell path): every GEMM.
    const AmxChoice amx = choose_amx(config.settings, kernel.kernel, precision_);
    amx_ = amx.use;
    wide_ = store16 && avx512 && !amx_;
    if (rounds_operands(precision_)) {
      plan_.params.push_back(
          {"operands", std::string("weights rounded to ") + precision_name(precision_) +
                           " once; x, h, m and r o h rounded where they enter a product; sums "
                           "float32; " +
                           (amx_      ? "weights stored in 16 bits as AMX tiles"
                            : wide_    ? "weights stored in 16 bits, converted once per "
                                         "panel where 4 or more groups of 6 rows read it"
                            : store16 ? "weights stored in 16 bits"
                            : can16   ? "weights stored as float32 (cpu.wh16=off)"
                                      : "weights stored as float32 (what this kernel reads)")});
    }
    plan_.params.emplace_back("amx", amx.why);
    // The projections' chunks (Work::allocate): longer where a layer's W_x does not stay in L2.
    std::int64_t largest_wx = 0;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      largest_wx = std::max(largest_wx, s.gate_rows() * s.input_size * (store16 || amx_ ? 2 : 4));
    }
    const std::int64_t l2 = l2_cache_bytes();
    const bool wx_streams = largest_wx > 2 * l2;
    const std::int64_t projection_chunk_bytes =
        wx_streams ? kStreamProjectionChunkBytes : kProjectionChunkBytes;
    plan_.params.emplace_back(
        "projection",
        std::string("every layer's input products ahead of its steps, up to ") +
            std::to_string(projection_chunk_bytes >> 20) +
            " MiB of pre-activations at a time (" +
            (wx_streams ? "a layer's W_x over twice the core's L2 of " +
                              std::to_string(l2 >> 10) + " KB: fewer passes over it"
                        : "every W_x within twice the core's L2 of " + std::to_string(l2 >> 10) +
                              " KB") +
            ")");
    for (auto& [key, value] : plan_.params) {
      if (key == "gemm" && amx_) {
        value = "AMX: 32 columns of W per pass (two 16-column tiles) over blocks of up to 32 "
                "rows (two 16-row tiles) of bfloat16 codes, chunks of rows kept in L2";
      }
    }
    try {
      for (std::size_t l = 0; l < m.layers().size(); ++l) {
        const LayerSpec& s = m.spec(l);
        plan_.layers.push_back({"generic",
                                "the fused kernels run forward BasicLSTMCell layers only; "
                                "batched float32 GEMMs over packed weights",
                                {{"cell", cell_name(s.cell)},
                                 {"direction", direction_name(s.direction)},
                                 {"hidden", std::to_string(s.hidden_size)}}});
        packed_.emplace_back();
        for (int d = 0; d < s.directions(); ++d) {
          packed_.back().push_back(pack(m, l, d, precision_, store16, amx_));
        }
      }
      state_.resize(m.state_count(B));
      const std::int64_t share = (B + threads_ - 1) / threads_;
      work_.resize(static_cast<std::size_t>(threads_));
      for (std::size_t i = 0; i < work_.size(); ++i) {
        // Worker 0 may take every row of a call: alone (workers asleep: forward), with the
        // directions split, or as a team's lead (every worker works on worker 0's Work, its
        // own: team_gemm's row pointers); with the directions split, worker 1 too (or the
        // second direction's team's lead: worker team_workers_).
        const bool all_rows =
            i == 0 ||
            (direction_split_ && (i == 1 || i == static_cast<std::size_t>(team_workers_)));
        work_[i].allocate(all_rows ? B : share, config.max_time, m, rounds_operands(precision_),
                          amx_, wide_, projection_chunk_bytes, !layer_major_);
      }
      if (team_workers_ >= 2) {
        for (Work& w : work_) w.z_offset.resize(work_[0].zx_ptr.size());
      }
      if (layer_major_) {
        const std::size_t n = product({B, config.max_time, m.max_width()},
                                      "workspace (max_batch x max_time x widest layer)");
        seq_[0].resize(n);
        seq_[1].resize(n);
      }
      state_ptr_base_ = state_.data();
      seq_base_[0] = seq_[0].data();
      seq_base_[1] = seq_[1].data();
      if (caller) {
        caller_ = std::make_unique<CallerPool>(config.thread_pool,
                                               config.settings.cpu_pool_join_us * 1000);
        plan_.params.emplace_back("pool", describe_caller_pool(config, threads_));
      } else if (shared) {
        plan_.params.emplace_back("pool", describe_shared_pool(shared_->pool.size()));
      } else {
        if (threads_ > 1) pool_ = std::make_unique<Pool>(threads_);
        plan_.params.emplace_back("pool", describe_session_pool(threads_));
      }
    } catch (const std::system_error&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot create the CPU worker threads");
    } catch (...) {
      rethrow_as_out_of_memory("cannot allocate the CPU workspace");
    }
    std::int64_t bytes = held_bytes(state_) + held_bytes(seq_[0]) + held_bytes(seq_[1]) +
                         held_bytes(packed_) + held_bytes(work_);
    for (const auto& layer : packed_) {
      bytes += held_bytes(layer);
      for (const Packed& p : layer) bytes += p.bytes();
    }
    for (const Work& w : work_) bytes += w.bytes();
    set_host_memory(bytes);
  }

  // The plan, with how many calls so far ran alone because their workers were asleep.
  Plan plan() const override {
    return caller_ ? with_short_team_count(plan_, short_team_)
                   : with_alone_count(plan_, alone_asleep_);
  }

  void forward(const ForwardCall& call) override {
    const FlushDenormals flush;  // as TensorFlow's kernels (thread_pool.hpp)
    load_initial_state(call, state_.data());
    // Fewer than 3 rows per worker leave the GEMMs' row blocks short (each worker streams
    // every weight for 1-2 rows): a stack with bidirectional layers then splits the
    // directions between 2 workers instead (forward_by_direction).
    const bool by_direction =
        direction_split_ &&
        (call.batch < kDirectionSplitRows * threads_ ||
         (threads_ == 2 && (call.batch < kDirectionSplitRowsTwoWorkers ||
                            (wh_over_l2_ && call.batch <= kDirectionSplitRowsLargeWh))));
    // Likewise a call runs as a team (each direction's, with the directions split).
    const bool team =
        team_workers_ >= 2 && call.batch < kTeamRows * threads_ &&
        (team_always_ || call.batch < threads_ || step_bytes_ >= 2 * kTeamMinBytes);
    int active =
        by_direction ? 2 * (team ? team_workers_ : 1)
        : team       ? team_workers_
                     : static_cast<int>(std::min<std::int64_t>(threads_, call.batch));
    // With cpu.pool=shared, the process-wide workers if no other call holds them, else this
    // thread alone (same bits: every split gives them).
    Pool* pool = pool_.get();
    std::unique_lock<std::mutex> taken;
    if (active > 1 && shared_) {
      taken = std::unique_lock<std::mutex>(shared_->taken, std::try_to_lock);
      pool = taken.owns_lock() ? &shared_->pool : nullptr;
      if (pool == nullptr) active = 1;
    }
    if (pool != nullptr && pool->orphaned()) active = 1;  // a child process (thread_pool.hpp)
    // A call that finds every worker asleep runs on this thread alone where waking them
    // would cost it more than they would take off (split.hpp alone_when_asleep; one core's
    // time from the weights a step reads and their FLOPs for the call's rows), and wakes
    // them to spin for the next call.  Same bits: every split gives them.
    if (active > 1 && pool != nullptr && pool->sleeping() == pool->size() - 1) {
      const double rows = static_cast<double>(call.batch), T = static_cast<double>(call.time);
      const double one_core_s =
          one_core_seconds(rows * T * 2.0 * weight_floats_, T * 4.0 * weight_floats_, rates_);
      if (alone_when_asleep(one_core_s, active)) {
        active = 1;
        if (spin_ns_ > 0) pool->nudge(spin_ns_);
        alone_asleep_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    Job job{this, &call, active, active > 1 && by_direction, active > 1 && team, active};
    if (active == 1) {
      run_share(job, 0);
    } else if (caller_) {
      if (caller_->run(&CpuGenericBackend::run_member_entry, &CpuGenericBackend::choose_team,
                       &job, active) < active) {
        short_team_.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      pool->run(&CpuGenericBackend::run_share_entry, &job, active, spin_ns_);
    }
    store_final_state(call, state_.data());
  }

 private:
  // One worker's per-step workspace, for up to `rows` batch rows.
  struct Work {
    std::vector<float> z;      // pre-activations of a step's rows [rows][G*H]
    std::vector<float> aux;    // per row [H]: m, r o h, or b_h,n + W_h,n h
    std::vector<float> y[2];   // layer outputs of a window's rows (forward_windows)
    std::vector<float> xq, hq;  // BF16/FP16: a step's rows of x and h, rounded
    std::vector<float> pxq;     // BF16/FP16: a projection chunk's inputs, rounded
    std::int64_t xq_width = 0, hq_width = 0;  // their row strides
    std::vector<float*> z_ptr, zn_ptr, aux_ptr, state_ptr, c_ptr, out_ptr;
    std::vector<float*> z_offset;  // team_gemm's row pointers (its own, in a team)
    std::vector<const float*> x_ptr, aux_cptr, xq_ptr, hq_ptr;
    std::vector<std::int64_t> rows;  // the batch rows of a step
    // The input projection of up to zx_steps steps of the rows, done before their steps
    // (project_chunk): [zx_steps * rows][G*H], with its row pointers, and each step's rows.
    std::vector<float> zx;
    std::vector<float*> zx_ptr, zx_step;
    std::vector<const float*> px_ptr;
    std::int64_t zx_steps = 0;
    GemmScratch scratch;  // this worker's (gemm_amx, the widened panels)
    // `rounding`: a BF16/FP16 session (the chunk's inputs are rounded into pxq first).
    // `amx`: the GEMMs run on AMX tiles (the scratch of gemm_amx).  `wide`: the GEMMs may
    // widen 16-bit weights (gemm_rows_avx512), a panel for any layer's K.  `chunk_bytes`:
    // the projection chunk's pre-activations; `windows`: y holds a window's rows
    // (forward_windows), else it is not used.
    void allocate(std::int64_t n, std::int64_t max_time, const Model& m, bool rounding,
                  bool on_amx, bool wide, std::int64_t chunk_bytes, bool windows) {
      xq_width = std::max(m.max_width(), m.input_size());
      const std::int64_t per_row =
          std::max<std::int64_t>(4 * m.max_hidden(), rounding ? xq_width : 0);
      const std::int64_t per_step = std::max<std::int64_t>(1, n * per_row * 4);
      zx_steps = std::clamp<std::int64_t>(chunk_bytes / per_step, 1,
                                          std::max<std::int64_t>(max_time, 1));
      zx.resize(product({zx_steps, n, 4, m.max_hidden()}, "workspace"));
      if (rounding) pxq.resize(product({zx_steps, n, xq_width}, "workspace"));
      zx_ptr.resize(static_cast<std::size_t>(zx_steps * n));
      px_ptr.resize(zx_ptr.size());
      zx_step.resize(static_cast<std::size_t>(n));
      z.resize(product({n, 4, m.max_hidden()}, "workspace"));
      aux.resize(product({n, m.max_hidden()}, "workspace"));
      y[0].resize(product({windows ? zx_steps : 1, n, m.max_width()}, "workspace"));
      y[1].resize(y[0].size());
      hq_width = m.max_hidden();
      xq.resize(product({n, xq_width}, "workspace"));
      hq.resize(product({n, hq_width}, "workspace"));
      const auto r = static_cast<std::size_t>(n);
      for (auto* v : {&z_ptr, &zn_ptr, &aux_ptr, &state_ptr, &c_ptr, &out_ptr, &z_offset}) {
        v->resize(r);
      }
      for (auto* v : {&x_ptr, &aux_cptr, &xq_ptr, &hq_ptr}) v->resize(r);
      rows.resize(r);
      if (on_amx) {
        // Chunks of rows whose codes stay in L2 (kAmxChunkBytes), in whole blocks of 32
        // rows, no more than a GEMM ever gets (a projection chunk's).  K: any layer's input,
        // output or hidden size, padded to whole tiles.
        const std::int64_t K = std::max({xq_width, m.max_hidden(), std::int64_t{1}});
        GemmScratch& s = scratch;
        s.kp = (K + kAmxK - 1) / kAmxK * kAmxK;
        s.rows = std::min(
            std::clamp<std::int64_t>(kAmxChunkBytes / (2 * s.kp) / kMaxAmxRows, 1, 12) *
                kMaxAmxRows,
            zx_steps * n);
        s.codes = cpu::allocate((product({s.rows, s.kp}, "workspace") + 1) / 2, false);
        s.sums = cpu::allocate(product({s.rows, 32}, "workspace"), false);
      }
      if (wide) {
        const std::int64_t K = std::max({xq_width, m.max_hidden(), std::int64_t{1}});
        scratch.wide = cpu::allocate(static_cast<std::size_t>(wide_panel_floats(K)), false);
      }
    }
    // What it holds (host_memory_bytes).
    std::int64_t bytes() const {
      std::int64_t n = held_bytes(scratch.codes) + held_bytes(scratch.sums) +
                       held_bytes(scratch.wide) + held_bytes(rows);
      for (const auto* v : {&z, &aux, &y[0], &y[1], &xq, &hq, &pxq, &zx}) n += held_bytes(*v);
      for (const auto* v : {&z_ptr, &zn_ptr, &aux_ptr, &state_ptr, &c_ptr, &out_ptr, &z_offset,
                            &zx_ptr, &zx_step}) {
        n += held_bytes(*v);
      }
      for (const auto* v : {&x_ptr, &aux_cptr, &xq_ptr, &hq_ptr, &px_ptr}) n += held_bytes(*v);
      return n;
    }
  };

  struct Job {
    CpuGenericBackend* self;
    const ForwardCall* call;
    int workers;
    bool by_direction;  // forward_by_direction, else the batch rows split ...
    bool team;          // ... or every row by a team (forward_windows)
    int members;        // threads running the shares: `workers`, or fewer in the rows split
  };
  static void run_share_entry(void* ctx, int worker) {
    const Job& job = *static_cast<const Job*>(ctx);
    job.self->run_share(job, worker);
  }
  // On the caller's pool (CallerPool): a team of k members.  The directions split and the
  // team pass barriers and need `workers` members; with fewer, the call takes the rows split
  // (any split gives the same bits), each member running shares member, member + k, ... in
  // turn (rows never interact), each share in its own Work as with a worker of its own.
  static int choose_team(void* ctx, int k) {
    Job& job = *static_cast<Job*>(ctx);
    if (k < job.workers) {
      if (job.by_direction || job.team) {
        job.by_direction = job.team = false;
        job.workers = static_cast<int>(
            std::min<std::int64_t>(job.self->threads_, job.call->batch));
      }
      job.members = std::min(k, job.workers);
    }
    return job.members;
  }
  static void run_member_entry(void* ctx, int member) {
    const Job& job = *static_cast<const Job*>(ctx);
    for (int share = member; share < job.workers; share += job.members) {
      job.self->run_share(job, share);
    }
  }
  // Worker `worker`'s rows [b0, b1) of the call, through every layer and step.
  void run_share(const Job& job, int worker) {
    const std::int64_t B = job.call->batch;
    const std::int64_t b0 = B * worker / job.workers, b1 = B * (worker + 1) / job.workers;
    Work& w = work_[static_cast<std::size_t>(worker)];
    if (job.by_direction) {
      forward_by_direction(*job.call, worker, job.workers, job.workers / 2);
    } else if (job.team) {
      const Team team{worker, job.workers, &barrier_, &w.z_offset, &w.scratch};
      if (layer_major_) {
        forward_layer_major(*job.call, 0, B, work_[0], team);
      } else {
        forward_windows(*job.call, 0, B, work_[0], team);
      }
    } else if (layer_major_) {
      forward_layer_major(*job.call, b0, b1, w);
    } else {
      forward_windows(*job.call, b0, b1, w);
    }
  }

  std::int64_t row_of(const ForwardCall& c, std::int64_t t, std::int64_t b) const {
    return c.layout == SLSTM_TIME_MAJOR ? t * c.batch + b : b * c.time + t;
  }

  // Row b's piece `kind` (0 = c, 1 = h) of direction d of layer l in a packed state of B rows.
  float* piece(std::size_t l, int d, int kind, std::int64_t B, std::int64_t b) const {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const int p = d * s.cell_state_parts() + (s.cell == CellKind::kGru ? 0 : kind);
    return state_ptr_base_ + m.state_offset(B, l, p) + b * m.state_layout().width(l, p);
  }

  // One step of direction d of layer l for the n rows w.rows[0..n): input w.x_ptr[i], the
  // cell's output (width R) written to w.out_ptr[i].
  // With `zx` (project_chunk's rows for these n rows), the input part of the chains is
  // taken from there instead of computed here: the same chains, the same bits.  The step
  // then sums into those rows in place (each is read by this step only).
  // With a team of several workers (forward_windows's gate split), every worker calls it
  // with the lead's Work `w`: the lead sets the step up, each GEMM is cut by gate rows and
  // the cell math by units (Team::part), the phases separated by the team's barrier; each
  // element gets the instructions it gets alone, so the bits do not depend on the team.
  // h_zero: every row's h is the zero state (the call's first step of this direction, no
  // initial_state): the recurrent products are skipped.  Each would add a sum of zeros (the
  // weights are finite) to a chain, which changes nothing but a -0 into +0, and no gate tells
  // -0 from +0 there: sigmoid(-0) = sigmoid(+0); tanh(-0) = -0 meets c = f * 0 + i * tanh(g)
  // (and the GRU's (1 - u) tanh(n) + u * 0) only as a term added to +0, which gives +0.
  // The outputs and states are the bits of a call from explicit zeros (tests/test_layers.cpp).
  void step(std::size_t l, int d, std::int64_t B, std::int64_t n, Work& w, bool h_zero,
            float* const* zx = nullptr, const Team& team = Team()) const {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const Packed& p = packed_[l][static_cast<std::size_t>(d)];
    const std::int64_t H = s.hidden_size, GH = s.gate_rows(), R = s.cell_output_size();
    const bool rounding = rounds_operands(precision_);
    if (team.lead()) {
      for (std::int64_t i = 0; i < n; ++i) {
        w.z_ptr[i] = zx != nullptr ? zx[i] : w.z.data() + i * GH;  // (else W_x's GEMM: bias)
        const std::int64_t b = w.rows[i];
        w.state_ptr[i] = piece(l, d, 1, B, b);
        w.c_ptr[i] = s.cell == CellKind::kLstm ? piece(l, d, 0, B, b) : nullptr;
        w.aux_ptr[i] = w.aux.data() + i * H;
        w.aux_cptr[i] = w.aux_ptr[i];
        w.zn_ptr[i] = w.z_ptr[i] + 2 * H;  // GRU: the n block
      }
      if (rounding) {
        // The products' operands x and h, rounded (the state keeps its float32 h).
        for (std::int64_t i = 0; i < n; ++i) {
          float* xr = w.xq.data() + i * w.xq_width;
          float* hr = w.hq.data() + i * w.hq_width;
          if (zx == nullptr) {  // (else projected ahead, from rounded inputs)
            round_floats(precision_, w.x_ptr[i], xr, static_cast<std::size_t>(s.input_size));
          }
          if (!h_zero) round_floats(precision_, w.state_ptr[i], hr, static_cast<std::size_t>(R));
          w.xq_ptr[i] = xr;
          w.hq_ptr[i] = hr;
        }
      }
    }
    team.sync();
    const float* const* h = rounding ? w.hq_ptr.data() : w.state_ptr.data();
    const float* const* x = rounding ? w.xq_ptr.data() : w.x_ptr.data();
    if (zx == nullptr) {
      team_gemm(team, w, w.z_ptr.data(), x, p.wx, n, false, p.bias.data());
      if (p.wx.n != p.wh.n) team.sync();  // (GRU: W_x's 3H rows are cut elsewhere than W_h's 2H)
    }
    if (!h_zero) team_gemm(team, w, w.z_ptr.data(), h, p.wh, n);
    team.sync();
    const auto [u0, u1] = team.part(H, kUnitAlign);
    if (s.cell == CellKind::kLstm) {
      for (std::int64_t i = 0; i < n; ++i) {
        if (!s.peepholes && s.cell_clip == 0.0f) {
          kernels_.lstm_plain(w.z_ptr[i], H, u0, u1, w.c_ptr[i], w.aux_ptr[i]);
        } else {
          kernels_.lstm_extras(w.z_ptr[i], H, u0, u1, w.c_ptr[i], w.aux_ptr[i],
                       s.peepholes ? p.peep.data() : nullptr, s.cell_clip);
        }
        if (s.proj_size > 0 && rounding) {  // W_proj's operand m
          round_floats(precision_, w.aux_ptr[i] + u0, w.aux_ptr[i] + u0,
                     static_cast<std::size_t>(u1 - u0));
        }
      }
      if (s.proj_size > 0) {
        team.sync();  // m complete
        // h = W_proj m into the state's h, from zero (each worker its rows of W_proj).
        team_gemm(team, w, w.state_ptr.data(), w.aux_cptr.data(), p.wproj, n, /*from_zero=*/true);
        team.sync();
        const auto [v0, v1] = team.part(R, kUnitAlign);
        for (std::int64_t i = 0; i < n; ++i) {
          if (s.proj_clip > 0.0f) {
            for (std::int64_t u = v0; u < v1; ++u) {
              w.state_ptr[i][u] = clip(w.state_ptr[i][u], s.proj_clip);
            }
          }
          std::copy(w.state_ptr[i] + v0, w.state_ptr[i] + v1, w.out_ptr[i] + v0);
        }
      } else {
        for (std::int64_t i = 0; i < n; ++i) {
          std::copy(w.aux_ptr[i] + u0, w.aux_ptr[i] + u1, w.state_ptr[i] + u0);
          std::copy(w.aux_ptr[i] + u0, w.aux_ptr[i] + u1, w.out_ptr[i] + u0);
        }
      }
    } else {
      // r and z: the recurrent part of their chains is in; their gates, and what the n
      // block's product reads.
      for (std::int64_t i = 0; i < n; ++i) {
        float* z = w.z_ptr[i];
        kernels_.gru_gates(z, u0, u1);
        kernels_.gru_gates(z, H + u0, H + u1);
        float* a = w.aux_ptr[i];
        if (s.reset_after) {
          std::copy(p.bh_n.data() + u0, p.bh_n.data() + u1, a + u0);  // b_h,n + W_h,n h ...
        } else if (!h_zero) {
          const float* hs = w.state_ptr[i];  // r o h of the float32 state h (then rounded)
          for (std::int64_t u = u0; u < u1; ++u) a[u] = z[u] * hs[u];
          if (rounding) {
            round_floats(precision_, a + u0, a + u0, static_cast<std::size_t>(u1 - u0));
          }
        }
      }
      team.sync();
      if (h_zero) {
        // (W_h,n times h = 0, or times r o h = 0)
      } else if (s.reset_after) {
        team_gemm(team, w, w.aux_ptr.data(), h, p.wh_n, n);  // ... then scaled by r
      } else {
        team_gemm(team, w, w.zn_ptr.data(), w.aux_cptr.data(), p.wh_n, n);
      }
      team.sync();
      for (std::int64_t i = 0; i < n; ++i) {
        const float* zn = w.zn_ptr[i];
        kernels_.gru_h(zn, w.z_ptr[i], s.reset_after ? w.aux_ptr[i] : nullptr, w.state_ptr[i], H, u0,
               u1);
        std::copy(w.state_ptr[i] + u0, w.state_ptr[i] + u1, w.out_ptr[i] + u0);
      }
    }
    team.sync();  // the step's state and outputs complete
  }

  // z[i] += x[i] . W for the n rows: this worker's rows of W (all of them alone).  Every
  // GEMM of a step that writes the same z is cut at the same rows, so each element's chain
  // stays with one worker.
  // from_zero: z's rows of this worker set to 0 first.  init: every row's chains start from
  // init (W.n values, a bias) instead of from z.
  // The worker's scratch is team.scratch, or w's alone.
  void team_gemm(const Team& team, Work& w, float* const* z, const float* const* x,
                 const PackedMatrix& W, std::int64_t n, bool from_zero = false,
                 const float* init = nullptr, bool widen = true) const {
    const auto [r0, r1] = team.part(W.n, kBlock);
    if (r0 >= r1) return;
    if (from_zero) {
      for (std::int64_t i = 0; i < n; ++i) std::fill(z[i] + r0, z[i] + r1, 0.0f);
    }
    float* const* zo = z;
    if (team.workers > 1) {
      float** offset = team.z_offset->data();
      for (std::int64_t i = 0; i < n; ++i) offset[i] = z[i] + r0;
      zo = offset;
    }
    const MatView v = W.rows(r0, r1);
    const float* const init_r = init != nullptr ? init + r0 : nullptr;
    GemmScratch& s = team.scratch != nullptr ? *team.scratch : w.scratch;
    if (W.amx) {
      gemm_amx(zo, x, v, n, init_r, s);
    } else {
      kernels_.gemm(zo, x, v, n, init_r, widen ? s.wide.get() : nullptr);
    }
  }

  // kernels_.gemm's product on AMX tiles (a BF16 session, choose_amx): per chunk of up to s.rows
  // rows, their x as bfloat16 codes (exact: x is rounded already), then gemm_rows_amx.
  static void gemm_amx(float* const* z, const float* const* x, const MatView& v,
                       std::int64_t nb, const float* init, GemmScratch& s) {
#if defined(__GNUC__) && defined(__x86_64__)
    std::uint16_t* const codes = s.code_rows();
    for (std::int64_t c0 = 0; c0 < nb; c0 += s.rows) {
      const std::int64_t rows = std::min(s.rows, nb - c0);
      for (std::int64_t i = 0; i < rows; ++i) {
        std::uint16_t* row = codes + i * s.kp;
        round_to_codes(Precision::kBf16, x[c0 + i], row, static_cast<std::size_t>(v.K));
        std::fill(row + v.K, row + v.k_tiles * kAmxK, std::uint16_t{0});
      }
      gemm_rows_amx(z + c0, codes, s.kp, rows, v.tiles, v.k_tiles, v.n, init, s.sums.get());
    }
#else
    (void)z, (void)x, (void)v, (void)nb, (void)init, (void)s;  // (never: amx_ needs x86-64)
#endif
  }

  void add_residual(std::size_t l, const float* x, float* y) const {  // (per row)
    const LayerSpec& s = model_->spec(l);
    if (!s.residual) return;
    for (std::int64_t u = 0; u < s.output_size(); ++u) y[u] += x[u];
  }

  // Rows [b0, b1) through every step and layer of a stack whose layers all read forward,
  // in windows of w.zx_steps steps: each layer runs the window's steps before the next layer
  // starts them (its input products for the whole window first, as project_chunk), the
  // window's outputs of one layer in w.y[l % 2] for the next.  Every step still reads what
  // MultiRNNCell's order gives it (the layer below's output of the same step, its own state
  // of the step before), and each pre-activation is the same chain whether projected ahead
  // or in the step: the bits of one step at a time, with every layer's W_x read once per
  // window instead of once per step.  In a team (the gate split), every worker runs this for
  // the same rows on the lead's Work `w`: the lead keeps the books (row lists, pointers,
  // residuals, the caller's output), step() and project_chunk() share the work.
  void forward_windows(const ForwardCall& call, std::int64_t b0, std::int64_t b1, Work& w,
                       const Team& team = Team()) const {
    const Model& m = *model_;
    const std::int64_t B = call.batch, T = call.time, D = m.input_size(), W = m.output_size();
    const std::int64_t stride = m.max_width();  // of the rows in w.y
    const std::size_t L = m.layers().size();
    const auto valid = [&](std::int64_t b, std::int64_t k) {
      return call.lengths == nullptr || k < call.lengths[b];
    };
    for (std::int64_t k0 = 0; k0 < T; k0 += w.zx_steps) {
      const std::int64_t k1 = std::min(T, k0 + w.zx_steps);
      // The window's valid (step, row) pairs, step by step: row i of every layer's buffers.
      std::int64_t nr = 0;
      if (team.lead()) {
        for (std::int64_t k = k0; k < k1; ++k) {
          for (std::int64_t b = b0; b < b1; ++b) {
            if (!valid(b, k)) continue;
            w.px_ptr[static_cast<std::size_t>(nr++)] = call.input + row_of(call, k, b) * D;
          }
        }
      } else {
        for (std::int64_t k = k0; k < k1; ++k) {
          for (std::int64_t b = b0; b < b1; ++b) nr += valid(b, k) ? 1 : 0;
        }
      }
      const float* in = nullptr;  // the layer below's rows of the window (layer 0: the call's)
      for (std::size_t l = 0; l < L && nr > 0; ++l) {
        float* const y = w.y[l % 2].data();
        // (A window of one step, as a frame's call: the layers above take their input
        // products in the step, one GEMM either way, without project_chunk's barriers.)
        const bool ahead = l == 0 || k1 - k0 > 1;
        if (team.lead() && l > 0 && ahead) {
          for (std::int64_t i = 0; i < nr; ++i) {
            w.px_ptr[static_cast<std::size_t>(i)] = in + i * stride;
          }
        }
        if (ahead) project_chunk(l, 0, nr, b1 - b0, w, team);
        std::int64_t i0 = 0;  // the step's first row in the window
        for (std::int64_t k = k0; k < k1; ++k) {
          std::int64_t n = 0;
          for (std::int64_t b = b0; b < b1; ++b) {
            if (!valid(b, k)) continue;
            if (team.lead()) {
              const std::int64_t i = i0 + n;
              w.rows[n] = b;
              w.x_ptr[n] = l == 0 ? call.input + row_of(call, k, b) * D : in + i * stride;
              w.out_ptr[n] = y + i * stride;
              w.zx_step[static_cast<std::size_t>(n)] = w.zx_ptr[static_cast<std::size_t>(i)];
            }
            ++n;
          }
          if (n == 0) break;
          step(l, 0, B, n, w, k == 0 && call.initial_state == nullptr,
               ahead ? w.zx_step.data() : nullptr, team);
          if (team.lead()) {
            for (std::int64_t i = 0; i < n; ++i) add_residual(l, w.x_ptr[i], w.out_ptr[i]);
          }
          i0 += n;
        }
        in = y;
      }
      if (call.output == nullptr || !team.lead()) continue;
      std::int64_t i = 0;
      for (std::int64_t k = k0; k < k1; ++k) {
        for (std::int64_t b = b0; b < b1; ++b) {
          float* const o = call.output + row_of(call, k, b) * W;
          if (valid(b, k)) {
            std::memcpy(o, in + i++ * stride, static_cast<std::size_t>(W) * sizeof(float));
          } else {
            std::fill_n(o, W, 0.0f);
          }
        }
      }
    }
  }

  // The layers' outputs live in seq_ with one row stride for every layer (the widest), so
  // that the rows of different workers never overlap whatever layer each worker is on (with
  // each layer's own width as the stride, the time-major layout's interleaved rows of two
  // workers on layers of different widths would).
  // In a team (a stack with reverse layers, no bidirectional one), every worker runs this
  // for the same rows on the lead's Work; the lead finishes each layer and the call.
  void forward_layer_major(const ForwardCall& call, std::int64_t b0, std::int64_t b1,
                           Work& w, const Team& team = Team()) const {
    const Model& m = *model_;
    const std::int64_t stride = m.max_width();
    const float* in = call.input;
    std::int64_t in_stride = m.input_size();
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      float* out = seq_base_[l % 2];
      for (int d = 0; d < m.spec(l).directions(); ++d) {
        run_direction(call, l, d, b0, b1, in, in_stride, out, w, team);
      }
      if (team.lead()) finish_layer(call, l, b0, b1, in, in_stride, out);
      team.sync();  // the layer's output complete before the next reads it
      in = out;
      in_stride = stride;
    }
    if (team.lead()) copy_output(call, b0, b1, in);
  }

  // Layer-major with the directions split (direction_split_): worker `worker` of 2 runs
  // direction `worker` of every bidirectional layer for every batch row (worker 0 the one
  // direction of the others), each streaming only its own direction's weights; the workers
  // meet after each layer's directions and after its residual / zeroing pass, which they
  // share by rows.  Same steps, rows and operations as forward_layer_major: the same bits.
  // With `per_direction` > 1 workers per direction (2 x per_direction workers), each
  // direction runs as a team of its own (lead: worker 0 or per_direction).
  void forward_by_direction(const ForwardCall& call, int worker, int workers,
                            int per_direction) {
    const Model& m = *model_;
    const std::int64_t B = call.batch, stride = m.max_width();
    const std::int64_t r0 = B * worker / workers, r1 = B * (worker + 1) / workers;
    const int mine = worker / per_direction;  // this worker's direction
    const Team team{worker % per_direction, per_direction,
                    &direction_barrier_[static_cast<std::size_t>(mine)],
                    &work_[static_cast<std::size_t>(worker)].z_offset,
                    &work_[static_cast<std::size_t>(worker)].scratch};
    Work& w = work_[static_cast<std::size_t>(mine * per_direction)];
    const float* in = call.input;
    std::int64_t in_stride = m.input_size();
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      float* out = seq_base_[l % 2];
      const int dirs = m.spec(l).directions();
      for (int d = mine; d < dirs; d += 2) {
        run_direction(call, l, d, 0, B, in, in_stride, out, w, team);
      }
      barrier_.wait(workers);  // both directions of every row written
      finish_layer(call, l, r0, r1, in, in_stride, out);
      barrier_.wait(workers);  // the layer's output complete before the next reads it
      in = out;
      in_stride = stride;
    }
    copy_output(call, r0, r1, in);
  }


  // The input part of the pre-activations of n rows (w.px_ptr: their inputs) of direction d
  // of layer l into w.zx_ptr: each chain started from the bias, k increasing, as step()
  // computes it.  `step_rows`: the rows of each step.  The product widens 16-bit weights
  // (gemm_rows_avx512) only where the steps have more than one group of 6 rows: else the
  // widened panel pushes out of L2 the W_h that such steps, bound by its stream, read from
  // there (measured 0.95-0.97x on GRU H = 512 B = 4 and a bidirectional H = 512 B = 4).
  // In a team, the lead sets the rows up and the product is cut by gate rows (team_gemm).
  void project_chunk(std::size_t l, int d, std::int64_t n, std::int64_t step_rows, Work& w,
                     const Team& team = Team()) const {
    const Packed& p = packed_[l][static_cast<std::size_t>(d)];
    const std::int64_t GH = model_->spec(l).gate_rows();
    if (team.lead()) {
      if (rounds_operands(precision_)) {  // the product's operand x, rounded (BF16/FP16)
        const std::int64_t width = model_->spec(l).input_size;
        for (std::int64_t i = 0; i < n; ++i) {
          float* xr = w.pxq.data() + i * width;
          round_floats(precision_, w.px_ptr[static_cast<std::size_t>(i)], xr,
                     static_cast<std::size_t>(width));
          w.px_ptr[static_cast<std::size_t>(i)] = xr;
        }
      }
      for (std::int64_t i = 0; i < n; ++i) {
        w.zx_ptr[static_cast<std::size_t>(i)] = w.zx.data() + i * GH;
      }
    }
    team.sync();
    team_gemm(team, w, w.zx_ptr.data(), w.px_ptr.data(), p.wx, n, false, p.bias.data(),
              step_rows > 6);
    team.sync();
  }

  // Direction d of layer l over every step for rows [b0, b1): reads `in` (row stride
  // in_stride), writes the cell's output into its half of `out` (row stride max_width()).
  // The input projections of w.zx_steps steps at a time run first (project_chunk).
  // In a team, every worker runs this with the lead's Work: the lead keeps the books.
  void run_direction(const ForwardCall& call, std::size_t l, int d, std::int64_t b0,
                     std::int64_t b1, const float* in, std::int64_t in_stride, float* out,
                     Work& w, const Team& team = Team()) const {
    const LayerSpec& s = model_->spec(l);
    const std::int64_t B = call.batch, T = call.time, stride = model_->max_width();
    const std::int64_t R = s.cell_output_size();
    const bool backwards = s.direction == Direction::kReverse || d == 1;
    const auto len_of = [&](std::int64_t b) { return call.lengths ? call.lengths[b] : T; };
    for (std::int64_t k0 = 0; k0 < T; k0 += w.zx_steps) {
      const std::int64_t k1 = std::min(T, k0 + w.zx_steps);
      std::int64_t nr = 0;  // the chunk's valid rows, in the order its steps take them
      for (std::int64_t k = k0; k < k1; ++k) {
        for (std::int64_t b = b0; b < b1; ++b) {
          if (k >= len_of(b)) continue;
          const std::int64_t t = backwards ? len_of(b) - 1 - k : k;
          if (team.lead()) {
            w.px_ptr[static_cast<std::size_t>(nr)] = in + row_of(call, t, b) * in_stride;
          }
          ++nr;
        }
      }
      if (nr == 0) return;  // rows' lengths only shrink the active set as k grows
      project_chunk(l, d, nr, b1 - b0, w, team);
      std::int64_t next = 0;  // the chunk's next projected row
      for (std::int64_t k = k0; k < k1; ++k) {
        std::int64_t n = 0;
        for (std::int64_t b = b0; b < b1; ++b) {
          if (k >= len_of(b)) continue;
          const std::int64_t t = backwards ? len_of(b) - 1 - k : k;
          if (team.lead()) {
            w.rows[n] = b;
            w.x_ptr[n] = in + row_of(call, t, b) * in_stride;
            w.out_ptr[n] = out + row_of(call, t, b) * stride + d * R;
            w.zx_step[static_cast<std::size_t>(n)] = w.zx_ptr[static_cast<std::size_t>(next++)];
          }
          ++n;
        }
        if (n == 0) return;
        step(l, d, B, n, w, k == 0 && call.initial_state == nullptr, w.zx_step.data(), team);
      }
    }
  }

  // Layer l's output rows [b0, b1) completed: the residual added on valid steps, zeros past
  // each row's length.
  void finish_layer(const ForwardCall& call, std::size_t l, std::int64_t b0, std::int64_t b1,
                    const float* in, std::int64_t in_stride, float* out) const {
    const std::int64_t T = call.time, stride = model_->max_width();
    const std::int64_t W = model_->spec(l).output_size();
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t len = call.lengths ? call.lengths[b] : T;
      for (std::int64_t t = 0; t < T; ++t) {
        float* y = out + row_of(call, t, b) * stride;
        if (t < len) {
          add_residual(l, in + row_of(call, t, b) * in_stride, y);
        } else {
          std::fill_n(y, W, 0.0f);
        }
      }
    }
  }

  // The last layer's rows [b0, b1) (row stride max_width()) into the caller's output.
  void copy_output(const ForwardCall& call, std::int64_t b0, std::int64_t b1,
                   const float* last) const {
    if (call.output == nullptr) return;
    const std::int64_t T = call.time, stride = model_->max_width();
    const std::int64_t W = model_->output_size();
    for (std::int64_t b = b0; b < b1; ++b) {
      for (std::int64_t t = 0; t < T; ++t) {
        std::memcpy(call.output + row_of(call, t, b) * W, last + row_of(call, t, b) * stride,
                    static_cast<std::size_t>(W) * sizeof(float));
      }
    }
  }

  Precision precision_ = Precision::kFp32;
  GenericKernels kernels_;  // the GEMM and the cells' math of the session's kernel
  bool amx_ = false;  // every GEMM on AMX tiles (a BF16 session, choose_amx): gemm_amx
  bool wide_ = false;  // 16-bit weights on the AVX-512 kernels: GemmScratch::wide per worker
  bool layer_major_ = false;
  bool direction_split_ = false;  // a bidirectional layer and >= 2 threads (forward())
  bool wh_over_l2_ = false;       // some layer's W_h (one direction) is larger than a core's L2
  int team_workers_ = 0;          // a team's size (>= 2), or 0: no team (forward())
  bool team_always_ = false;      // cpu.team=always
  double step_bytes_ = 0.0;       // the weights a step of the stack streams
  mutable Barrier barrier_;       // forward_by_direction's workers, or a team's
  mutable Barrier direction_barrier_[2];  // forward_by_direction's teams, one per direction
  int threads_ = 1;
  std::vector<std::vector<Packed>> packed_;  // [layer][direction]
  std::vector<float> state_;                 // packed state of up to max_batch rows
  std::vector<float> seq_[2];                // layer outputs of a call (layer-major)
  // Where the workers write (rows disjoint between workers): state_ and seq_'s data.
  float* state_ptr_base_ = nullptr;
  float* seq_base_[2] = {nullptr, nullptr};
  std::vector<Work> work_;                   // one per worker
  std::unique_ptr<Pool> pool_;               // workers 1.. (worker 0 is the caller), or
  std::shared_ptr<SharedPool> shared_;       // the process-wide ones (cpu.pool=shared), or
  std::int64_t spin_ns_ = 0;                 // cpu.spin_us, in nanoseconds
  std::atomic<std::uint64_t> alone_asleep_{0};  // calls run alone, the workers asleep
  std::unique_ptr<CallerPool> caller_;       // the caller's pool (options->thread_pool)
  std::atomic<std::uint64_t> short_team_{0};  // calls of a smaller team than asked
  double weight_floats_ = 0.0;               // every layer's weights (both directions)
  Thresholds rates_;                         // one core's rates, for alone_when_asleep
};

}  // namespace
}  // namespace slstm::cpu

namespace slstm {

std::unique_ptr<Backend> make_cpu_generic_backend(ModelPtr model, const SessionConfig& config) {
  const cpu::KernelChoice kernel = cpu::choose_kernel(config.settings);
  return std::make_unique<cpu::CpuGenericBackend>(std::move(model), config, kernel);
}

}  // namespace slstm

