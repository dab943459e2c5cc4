// Behaviour specific to the CPU fast path (issue 6): its thread-count option, its small-batch
// (GEMV) path against its large-batch (GEMM) path, and determinism with threads.  The rest of
// the suite already runs against the fast path (ctest prefix "cpu-fast: ").  These cases run
// once, in the fast run, and pass with a note where the library was built without the fast
// path.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

// True when this run should exercise the fast path (it is built in and not the reference
// run); otherwise the case has nothing to check.
bool fast_path_run() {
  if (t::cpu_path_under_test() == SLSTM_CPU_PATH_REFERENCE) return false;
  t::Model m = t::random_model(3, {4}, 1);
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m.get(), &o, &s);
  slstm_session_destroy(s);
  if (st == SLSTM_ERR_BACKEND_UNAVAILABLE) {
    WARN("this build has no CPU fast path");
    return false;
  }
  REQUIRE(st == SLSTM_OK);
  return true;
}

t::Session session_with(const slstm_model* model, std::int64_t max_batch, std::int64_t max_time,
                        slstm_cpu_path path, std::int32_t threads) {
  slstm_session_options o = t::options(max_batch, max_time);
  o.cpu_path = path;
  o.num_threads = threads;
  slstm_session* s = nullptr;
  INFO(slstm_last_error());
  REQUIRE(slstm_session_create(model, &o, &s) == SLSTM_OK);
  return t::Session(s);
}

// Rows [b0, b0 + n) of a batch-major [B, T, H] tensor.
std::vector<float> rows_of(const std::vector<float>& v, std::int64_t b0, std::int64_t n,
                           std::int64_t row_size) {
  return std::vector<float>(v.begin() + b0 * row_size, v.begin() + (b0 + n) * row_size);
}

}  // namespace

TEST_CASE("the fast path gives the same result whatever num_threads is", "[cpu-fast]") {
  if (!fast_path_run()) return;
  constexpr std::int64_t D = 20, B = 5, T = 7;
  t::Model m = t::random_model(D, {40, 70, 33}, 11);
  const std::vector<float> x = t::random_vector(B * T * D, 12);
  const std::vector<float> s0 = t::random_vector(t::state_count(m.get(), B), 13);
  t::Call call = t::call_of(B, T, x);
  call.initial_state = &s0;
  t::Session one = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 1);
  const t::Run want = t::forward_ok(one.get(), m.get(), call);
  for (std::int32_t threads : {2, 3, 4}) {
    t::Session s = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, threads);
    const t::Run got = t::forward_ok(s.get(), m.get(), call);
    INFO("num_threads " << threads);
    CHECK(t::bitwise_equal(got.output, want.output));
    CHECK(t::bitwise_equal(got.final_state, want.final_state));
  }
}

namespace {

// Runs `call` on fast sessions with 1..4 threads: one thread obeys the accuracy rule at every
// step (t::check_within_accuracy), and every thread count agrees with it bitwise (on every
// kernel).
void check_fast_agrees_across_threads(const slstm_model* m, const t::Call& call) {
  t::Session one = session_with(m, call.batch, call.time, SLSTM_CPU_PATH_FAST, 1);
  const t::Run base = t::check_within_accuracy(one.get(), m, call);
  for (std::int32_t threads : {2, 3, 4}) {
    t::Session s = session_with(m, call.batch, call.time, SLSTM_CPU_PATH_FAST, threads);
    const t::Run got = t::forward_ok(s.get(), m, call);
    INFO("num_threads " << threads);
    CHECK(t::bitwise_equal(got.output, base.output));
    CHECK(t::bitwise_equal(got.final_state, base.final_state));
  }
}

}  // namespace

TEST_CASE("many batch rows over a long sequence (the batch split) match one thread and obey "
          "the accuracy rule, both layouts, mixed lengths", "[cpu-fast]") {
  if (!fast_path_run()) return;
  // 21 rows: >= 5 rows per worker up to 4 workers; T >= 8; small Wh: the workers split the
  // batch. Row counts per worker differ (21 / 2, 3, 4) and lengths cover 0, 1, T-1, T.
  constexpr std::int64_t D = 19, B = 21, T = 11;
  t::Model m = t::random_model(D, {40, 70, 17}, 71);
  const std::vector<float> x = t::random_vector(B * T * D, 72);
  const std::vector<float> s0 = t::random_vector(t::state_count(m.get(), B), 73);
  std::vector<std::int32_t> lengths(B);
  for (std::int64_t b = 0; b < B; ++b) {
    lengths[static_cast<std::size_t>(b)] = static_cast<std::int32_t>((b * 7) % (T + 1));
  }
  lengths[0] = 0;
  lengths[1] = 1;
  lengths[2] = T - 1;
  lengths[3] = T;
  for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
    t::Call call = t::call_of(B, T, x, layout);
    call.initial_state = &s0;
    call.lengths = &lengths;
    INFO("layout " << (layout == SLSTM_TIME_MAJOR ? "time-major" : "batch-major"));
    check_fast_agrees_across_threads(m.get(), call);
  }
}

TEST_CASE("many batch rows with large recurrent weights (the unit split) match one thread and "
          "obey the accuracy rule", "[cpu-fast]") {
  if (!fast_path_run()) return;
  // H = 330: Wh is 330 x 1320 floats (1.7 MB), too large for the batch split; 21 groups of
  // 16 units (the last one 10 wide) shared among the workers, 3 blocks of rows per group,
  // each group big enough (14 x 330 x 64 multiply-adds) for an idle worker to take it over.
  constexpr std::int64_t D = 9, B = 14, T = 9;
  t::Model m = t::random_model(D, {330}, 81);
  const std::vector<float> x = t::random_vector(B * T * D, 82);
  const std::vector<std::int32_t> lengths = {9, 0, 8, 1, 9, 5, 9, 2, 7, 9, 3, 9, 6, 9};
  t::Call call = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
  call.lengths = &lengths;
  check_fast_agrees_across_threads(m.get(), call);
}

TEST_CASE("a step shared by pairs of a group and a block of rows (uneven groups, none worth "
          "stealing) matches one thread, in calls of one step and of a few", "[cpu-fast]") {
  if (!fast_path_run()) return;
  // 13 rows: 3 blocks of rows per group.  H = 40 (3 groups) makes the smallest group (13 x 40
  // x 64 multiply-adds) too small to steal, so the call does not steal; H = 330 (21 groups)
  // gives every worker a step worth a barrier.  The group counts are odd, and 3 and 4 workers
  // start and end their shares inside a group; the third layer (24 units: a group of 8 after
  // a whole one) moves the second's last h out while it steps.  T = 1 projects inside the
  // step; T = 3 (too short for the batch split) does not.
  constexpr std::int64_t D = 9, B = 13;
  t::Model m = t::random_model(D, {40, 330, 24}, 91);
  for (std::int64_t T : {1, 3}) {
    const std::vector<float> x = t::random_vector(B * T * D, 92);
    const std::vector<float> s0 = t::random_vector(t::state_count(m.get(), B), 93);
    std::vector<std::int32_t> lengths(B);
    for (std::int64_t b = 0; b < B; ++b) {
      lengths[static_cast<std::size_t>(b)] = static_cast<std::int32_t>((b * 5) % (T + 1));
    }
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      t::Call call = t::call_of(B, T, x, layout);
      call.initial_state = &s0;
      call.lengths = &lengths;
      INFO("T " << T << ", layout " << (layout == SLSTM_TIME_MAJOR ? "time-major" : "batch-major"));
      check_fast_agrees_across_threads(m.get(), call);
    }
  }
}

TEST_CASE("a worker whose share of W_h does not stay in L2 runs its groups forwards and "
          "backwards in turn, with the same numbers", "[cpu-fast]") {
  if (!fast_path_run()) return;
  // (On a core with 2 MiB of L2, as this project's machines: W_h shares above 1 MiB.) Odd T:
  // both directions, the last step backwards. The unit split (H = 520: 4.3 MB, every thread
  // count, workers taking over each other's groups at B = 14; the GEMV path at B = 3) and the
  // batch split (H = 270: 1.2 MB, each worker all of it).
  constexpr std::int64_t D = 9, T = 7;
  for (const std::int64_t H : {520, 270}) {
    const std::int64_t B = H == 270 ? 21 : 14;
    t::Model m = t::random_model(D, {H}, 91);
    const std::vector<float> x = t::random_vector(B * T * D, 92);
    std::vector<std::int32_t> lengths(static_cast<std::size_t>(B));
    for (std::int64_t b = 0; b < B; ++b) {
      lengths[static_cast<std::size_t>(b)] = static_cast<std::int32_t>((b * 3) % (T + 1));
    }
    for (const std::int64_t rows : {B, std::int64_t{3}}) {
      INFO("H " << H << ", rows " << rows);
      const std::vector<float> xr(x.begin(), x.begin() + rows * T * D);
      const std::vector<std::int32_t> lr(lengths.begin(), lengths.begin() + rows);
      t::Call call = t::call_of(rows, T, xr, SLSTM_BATCH_MAJOR);
      call.lengths = &lr;
      check_fast_agrees_across_threads(m.get(), call);
    }
  }
}

TEST_CASE("an input projection whose W_x does not stay in L2 streams many rows per pass over "
          "it, with the numbers of short calls", "[cpu-fast]") {
  if (!fast_path_run()) return;
  // I = 8192, H = 40: 3 groups of packed W_x, 6.3 MB (over twice an L2 of up to 3 MB).  Such
  // a projection takes every row of a call in one pass over W_x, up to 16 MiB of inputs a
  // pass: on one thread 720 rows (23.6 MB) make two passes of 360, calls of 40 steps one of
  // 120.  A few rows against the reference (one and two threads), then the long call
  // against the same sequence in six calls that carry the state, bit for bit.
  constexpr std::int64_t D = 8192, B = 3, T = 240, kCut = 40;
  t::Model m = t::random_model(D, {40}, 97);
  const std::vector<float> x = t::random_vector(B * T * D, 98);
  {
    const std::vector<float> few(x.begin(), x.begin() + 2 * 3 * D);
    const t::Call call = t::call_of(2, 3, few);
    for (std::int32_t threads : {1, 2}) {
      INFO("num_threads " << threads);
      t::Session s = session_with(m.get(), 2, 3, SLSTM_CPU_PATH_FAST, threads);
      t::check_within_accuracy(s.get(), m.get(), call);
    }
  }
  t::Session s = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 1);
  const t::Run whole = t::forward_ok(s.get(), m.get(), t::call_of(B, T, x, SLSTM_TIME_MAJOR));
  std::vector<float> state;
  for (std::int64_t t0 = 0; t0 < T; t0 += kCut) {
    INFO("steps from " << t0);
    const std::vector<float> part(x.begin() + t0 * B * D, x.begin() + (t0 + kCut) * B * D);
    t::Call call = t::call_of(B, kCut, part, SLSTM_TIME_MAJOR);
    if (t0 > 0) call.initial_state = &state;
    const t::Run got = t::forward_ok(s.get(), m.get(), call);
    const std::size_t n = got.output.size();
    CHECK(t::bitwise_equal(got.output.data(), whole.output.data() + t0 / kCut * n, n));
    state = got.final_state;
  }
  CHECK(t::bitwise_equal(state, whole.final_state));
}

TEST_CASE("a call longer than cpu.workspace_mib holds runs in windows of steps with the bits "
          "of one call", "[cpu-fast][plan]") {
  if (!fast_path_run()) return;
  // H = 128 (8 groups), max_batch 6: a step's rows take ~20 KB of workspace, so 1 MiB holds
  // ~50 steps and a call of 150 runs as 3 windows of 50; lengths end before, at and after
  // a window's edge.  Against a session whose workspace holds the whole call.
  constexpr std::int64_t D = 16, B = 6, T = 150;
  t::Model m = t::random_model(D, {128, 40}, 101);
  const std::vector<float> x = t::random_vector(B * T * D, 102);
  const std::vector<std::int32_t> lengths = {0, 1, 49, 50, 51, 150};
  const std::vector<float> init = t::random_vector(t::state_count(m.get(), B), 103);
  for (std::int32_t precision : {SLSTM_PRECISION_DEFAULT, SLSTM_PRECISION_BF16}) {
    slstm_session_options o = t::options(B, T);
    o.cpu_path = SLSTM_CPU_PATH_FAST;
    o.precision = precision;
    slstm_session* raw = nullptr;
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    t::Session whole(raw);
    o.config = "cpu.workspace_mib=1";
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    t::Session windowed(raw);
    const std::string plan = t::describe_json(windowed.get());
    INFO(t::json_value(plan, "window"));
    CHECK(t::json_value(plan, "window").rfind("calls of more than ", 0) == 0);
    CHECK(t::json_value(t::describe_json(whole.get()), "window").rfind("every call's", 0) == 0);
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      for (int variant = 0; variant < 2; ++variant) {
        INFO("precision " << precision << ", layout " << layout << ", variant " << variant);
        t::Call call = t::call_of(B, T, x, layout);
        if (variant == 1) {
          call.lengths = &lengths;
          call.initial_state = &init;
        }
        t::check_same_bits(windowed.get(), whole.get(), m.get(), call);
      }
    }
  }
}

TEST_CASE("a call in windows shares its work among the workers as the whole call would (the "
          "batch split from 8 steps on, however short its windows)", "[cpu-fast][plan]") {
  if (!fast_path_run()) return;
  // Two layers of 300 (W_h 1.44 MB: the batch split allowed), 16 rows for 2 workers.  With
  // cpu.workspace_mib=1 a row of the window takes ~9 KB (19 groups of 64 gate sums, the inner
  // layer's outputs, the staging rows): windows of fewer than 8 steps, each too short for
  // the batch split were it a call of its own.  The counter counts calls, not windows.
  constexpr std::int64_t D = 300, B = 16, T = 24;
  t::Model m = t::random_model(D, {300, 300}, 105);
  slstm_session_options o = t::options(B, T);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.num_threads = 2;
  o.config = "cpu.workspace_mib=1";
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session windowed(raw);
  const std::string json = t::describe_json(windowed.get());
  INFO(json);
  const std::string window = t::json_value(json, "window");
  REQUIRE(window.rfind("calls of more than ", 0) == 0);
  REQUIRE(std::stoll(window.substr(std::string("calls of more than ").size())) < 8);
  REQUIRE(t::json_value(json, "calls_batch_split") == "0");
  t::Session whole = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 1);
  for (std::int64_t steps : {std::int64_t{5}, T}) {
    INFO("call of " << steps << " steps");
    const std::vector<float> x = t::random_vector(B * steps * D, 106);
    const t::Call call = t::call_of(B, steps, x);
    t::check_same_bits(windowed.get(), whole.get(), m.get(), call);
  }
  // The 5-step call (one window, too short) shared its steps by units; the 24-step one, in
  // windows, by batch rows, as a whole call of 24 steps.
  CHECK(t::json_value(t::describe_json(windowed.get()), "calls_batch_split") == "1");
}

TEST_CASE("cpu.workspace_mib auto keeps a window's workspaces within twice a core's L2 for "
          "each worker unless a W_x streams, then within 256 MiB", "[cpu-fast][plan]") {
  if (!fast_path_run()) return;
  // max_batch 6 x max_time 5000 rows of H = 40 (3 groups): ~23 MB of workspaces.  With
  // I = 16 they run in windows; with I = 32768 (8 MiB a group of W_x: 3 groups beyond twice
  // any L2 under 12 MiB) the call stays whole, its one pass over W_x not cut.
  for (std::int64_t D : {16, 32768}) {
    INFO("input " << D);
    t::Model m = t::random_model(D, {40}, 104);
    t::Session s = session_with(m.get(), 6, 5000, SLSTM_CPU_PATH_FAST, 2);
    const std::string window = t::json_value(t::describe_json(s.get()), "window");
    INFO(window);
    if (D == 16) {
      const std::string more = "calls of more than ", l2_at = "twice a core's L2 of ",
                        workers_at = "for each of the session's ";
      REQUIRE(window.rfind(more, 0) == 0);
      const std::size_t at = window.find(l2_at), w_at = window.find(workers_at);
      REQUIRE(at != std::string::npos);
      REQUIRE(w_at != std::string::npos);
      const std::int64_t l2 = std::stoll(window.substr(at + l2_at.size())) * 1024;
      const std::int64_t workers = std::stoll(window.substr(w_at + workers_at.size()));
      CHECK(workers == std::stoll(t::json_value(t::describe_json(s.get()), "threads")));
      const std::int64_t budget =
          std::max<std::int64_t>(2 * l2 * workers, std::int64_t{1} << 20);
      // A row of the window: 3 groups of 64 gate sums, two floats of inner outputs (no
      // inner layer: one each), the staging rows' 16 inputs and 40 outputs.
      const std::int64_t row_bytes = (3 * 64 + 2 + 16 + 40) * 4;
      const std::int64_t steps = std::stoll(window.substr(more.size()));
      CHECK(steps * 6 * row_bytes <= budget);
      CHECK((steps + 1) * 6 * row_bytes > budget);
    } else {
      CHECK(window.rfind("every call's steps at once", 0) == 0);
      CHECK(window.find("auto: 256 MiB") != std::string::npos);
    }
  }
}

TEST_CASE("the plan gives each layer's projection passes: one pass where a worker's groups of "
          "W_x exceed twice the L2, else chunks", "[cpu-fast][plan]") {
  if (!fast_path_run()) return;
  // Layer 0: I = 8192, 3 groups of 2 MiB each (8192 x 64 floats); layer 1: I = 40, 10 KB
  // groups.  The number of groups within twice the L2 (the plan's L2, in KB) decides.
  t::Model m = t::random_model(8192, {40, 40}, 99);
  t::Session s = session_with(m.get(), 2, 3, SLSTM_CPU_PATH_FAST, 1);
  const std::vector<std::string> rules = t::json_values(t::describe_json(s.get()), "projection");
  REQUIRE(rules.size() == 2);
  const std::string l2_at = "twice the core's L2 of ";
  const std::size_t at = rules[0].find(l2_at);
  REQUIRE(at != std::string::npos);
  const std::int64_t l2_kb = std::stoll(rules[0].substr(at + l2_at.size()));
  REQUIRE(l2_kb > 0);
  const std::int64_t fit = 2 * l2_kb * 1024 / (std::int64_t{8192} * 64 * 4);
  // 16 MiB of float32 rows of 8192, in whole blocks of 6 rows: 510 rows a pass.
  const std::string pass = "one pass over up to 510 rows";
  INFO(rules[0]);
  if (fit >= 3) {
    CHECK(rules[0].rfind("chunks of ", 0) == 0);
  } else if (fit == 0) {
    CHECK(rules[0].rfind(pass + " (one group of W_x exceeds", 0) == 0);
  } else {
    CHECK(rules[0].rfind(pass + " where a worker projects more than " + std::to_string(fit) +
                             " of the 3 groups of W_x",
                         0) == 0);
  }
  INFO(rules[1]);
  CHECK(rules[1].rfind("chunks of ", 0) == 0);
  CHECK(rules[1].find("all 3 groups of W_x within " + l2_at + std::to_string(l2_kb) + " KB") !=
        std::string::npos);
}

TEST_CASE("frames that find the workers asleep or spinning give one thread's numbers",
          "[cpu-fast]") {
  if (!fast_path_run()) return;
  // The seed stack frame by frame (B = 10, T = 1), the state carried, on 2 workers: with
  // cpu.spin_us=0 and 20 ms between frames every frame finds its worker asleep and runs on
  // the calling thread alone (split.hpp alone_when_asleep); with the default spin and no
  // gap the worker takes part.  Every frame against a one-thread
  // session's, bit for bit; a 10-step call between frames wakes the worker.
  constexpr std::int64_t D = 128, B = 10;
  t::Model m = t::random_model(D, {100, 200, 300}, 95);
  t::Session one = session_with(m.get(), B, 10, SLSTM_CPU_PATH_FAST, 1);
  for (const char* config : {"cpu.spin_us=0;cpu.calibration=fixed", "cpu.spin_us=20000"}) {
    slstm_session_options o = t::options(B, 10);
    o.cpu_path = SLSTM_CPU_PATH_FAST;
    o.num_threads = 2;
    o.config = config;
    slstm_session* raw = nullptr;
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    t::Session two(raw);
    const bool gaps = std::string(config).find("spin_us=0;") != std::string::npos;
    std::vector<float> state = t::random_vector(t::state_count(m.get(), B), 96);
    for (int frame = 0; frame < 8; ++frame) {
      INFO(config << ", frame " << frame);
      if (gaps) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const std::int64_t T = frame == 4 ? 10 : 1;
      const std::vector<float> x = t::random_vector(B * T * D, 97 + frame);
      t::Call call = t::call_of(B, T, x);
      call.initial_state = &state;
      const t::Run want = t::forward_ok(one.get(), m.get(), call);
      const t::Run got = t::forward_ok(two.get(), m.get(), call);
      CHECK(t::bitwise_equal(got.output, want.output));
      REQUIRE(t::bitwise_equal(got.final_state, want.final_state));
      state = got.final_state;
    }
    if (gaps) {
      // Frames 0-3 at least found the worker asleep (it never had a job before them) and,
      // at the fixed calibration's rates (the measured ones follow the build and the
      // machine's load), are short enough to run alone.
      const std::string json = t::describe_json(two.get());
      INFO(json);
      CHECK(std::stoi(t::json_value(json, "calls_alone_asleep")) >= 1);
    }
  }
}

TEST_CASE("num_threads 0 (one per core) runs and obeys the accuracy rule", "[cpu-fast]") {
  if (!fast_path_run()) return;
  constexpr std::int64_t D = 16, B = 3, T = 9;
  t::Model m = t::random_model(D, {48, 32}, 21);
  const std::vector<float> x = t::random_vector(B * T * D, 22);
  t::Call call = t::call_of(B, T, x);
  t::Session fast = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 0);
  t::check_within_accuracy(fast.get(), m.get(), call);
}

TEST_CASE("more threads than cores and than hidden units still obey the accuracy rule",
          "[cpu-fast]") {
  if (!fast_path_run()) return;
  const std::int32_t threads =
      static_cast<std::int32_t>(4 * std::max(1u, std::thread::hardware_concurrency()) + 3);
  constexpr std::int64_t D = 5, B = 6, T = 4;
  t::Model m = t::random_model(D, {1, 17, 130}, 31);  // 1, 2 and 9 groups of 16 units
  const std::vector<float> x = t::random_vector(B * T * D, 32);
  t::Call call = t::call_of(B, T, x);
  t::Session fast = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, threads);
  t::check_within_accuracy(fast.get(), m.get(), call);
}

TEST_CASE("a small batch (B <= 4, the GEMV path) matches the same rows of a large batch",
          "[cpu-fast]") {
  if (!fast_path_run()) return;
  constexpr std::int64_t D = 24, Bbig = 13, T = 6, H = 50;
  t::Model m = t::random_model(D, {64, H}, 41);
  const std::vector<float> x = t::random_vector(Bbig * T * D, 42);
  const std::vector<std::int32_t> lengths = {6, 3, 0, 5, 6, 1, 2, 6, 4, 6, 6, 5, 3};
  t::Session s = session_with(m.get(), Bbig, T, SLSTM_CPU_PATH_FAST, 2);
  t::Call big = t::call_of(Bbig, T, x);
  big.lengths = &lengths;
  big.want_final_state = false;
  const t::Run all = t::forward_ok(s.get(), m.get(), big);
  for (std::int64_t b0 : {0, 3, 9}) {
    for (std::int64_t n = 1; n <= 4; ++n) {
      const std::vector<float> xs = rows_of(x, b0, n, T * D);
      const std::vector<std::int32_t> ls(lengths.begin() + b0, lengths.begin() + b0 + n);
      t::Call small = big;
      small.batch = n;
      small.input = &xs;
      small.lengths = &ls;
      const t::Run part = t::forward_ok(s.get(), m.get(), small);
      INFO("rows " << b0 << " .. " << b0 + n - 1);
      CHECK(t::bitwise_equal(part.output, rows_of(all.output, b0, n, T * H)));
    }
  }
}

TEST_CASE("a call from the zero state gives the bits of one from explicit zeros, first step "
          "included, in every precision and block of rows",
          "[cpu-fast]") {
  // Without initial_state the first step's recurrent product is skipped (its sums would all be
  // +0: StepArgs::h_zero); with explicit zeros it runs.  Blocks of 1..6 rows and more, a
  // partial group (H = 37, 5), rows of length 0, T = 1 (the projection inside the step) and
  // T > 1, one and two threads, FP32 and the 16-bit sessions (W_h in 16 bits).
  if (!fast_path_run()) return;
  constexpr std::int64_t D = 21;
  t::Model m = t::random_model(D, {37, 16, 5}, 61);
  for (const std::int32_t precision :
       {SLSTM_PRECISION_DEFAULT, SLSTM_PRECISION_BF16, SLSTM_PRECISION_FP16}) {
    for (const std::int32_t threads : {1, 2}) {
      slstm_session_options o = t::options(13, 4);
      o.cpu_path = SLSTM_CPU_PATH_FAST;
      o.num_threads = threads;
      o.precision = precision;
      slstm_session* raw = nullptr;
      const slstm_status st = slstm_session_create(m.get(), &o, &raw);
      t::Session s(raw);
      if (st == SLSTM_ERR_UNSUPPORTED && precision != SLSTM_PRECISION_DEFAULT) continue;
      INFO(slstm_last_error());
      REQUIRE(st == SLSTM_OK);
      for (const std::int64_t B : {1, 2, 3, 4, 5, 6, 7, 13}) {
        for (const std::int64_t T : {1, 4}) {
          INFO("precision " << precision << ", " << threads << " threads, B = " << B
                            << ", T = " << T);
          const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 62);
          std::vector<std::int32_t> len;
          for (std::int64_t b = 0; b < B; ++b) {
            len.push_back(static_cast<std::int32_t>(T - b % 2));
          }
          t::Call absent = t::call_of(B, T, x);
          absent.lengths = &len;
          t::check_zero_state_bits(s.get(), m.get(), absent);
        }
      }
    }
  }
}

TEST_CASE("a multi-threaded fast session is bitwise identical run to run", "[cpu-fast]") {
  if (!fast_path_run()) return;
  constexpr std::int64_t D = 32, B = 9, T = 12;
  t::Model m = t::random_model(D, {96, 64}, 51);
  const std::vector<float> x = t::random_vector(B * T * D, 52);
  const std::vector<float> s0 = t::random_vector(t::state_count(m.get(), B), 53);
  t::Call call = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
  call.initial_state = &s0;
  t::Session s = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 3);
  const t::Run first = t::forward_ok(s.get(), m.get(), call);
  for (int i = 0; i < 20; ++i) {
    t::Session other = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 3);
    const t::Run again = t::forward_ok(i % 2 ? s.get() : other.get(), m.get(), call);
    CHECK(t::bitwise_equal(again.output, first.output));
    CHECK(t::bitwise_equal(again.final_state, first.final_state));
  }
}

TEST_CASE("multi-threaded fast sessions run concurrently from several threads", "[cpu-fast]") {
  if (!fast_path_run()) return;
  constexpr std::int64_t D = 16, B = 4, T = 10;
  t::Model m = t::random_model(D, {80, 40}, 61);
  const std::vector<float> x = t::random_vector(B * T * D, 62);
  t::Call call = t::call_of(B, T, x);
  t::Session solo = session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 2);
  const t::Run want = t::forward_ok(solo.get(), m.get(), call);
  constexpr int kThreads = 3;
  std::vector<t::Session> sessions;
  for (int i = 0; i < kThreads; ++i) {
    sessions.push_back(session_with(m.get(), B, T, SLSTM_CPU_PATH_FAST, 2));
  }
  std::vector<int> same(kThreads, 0);
  std::vector<std::thread> pool;
  for (int i = 0; i < kThreads; ++i) {
    pool.emplace_back([&, i] {
      // No Catch2 macros off the main thread: record, check afterwards.
      slstm_session* s = sessions[static_cast<std::size_t>(i)].get();
      std::vector<float> out(want.output.size());
      slstm_forward_args a;
      slstm_forward_args_init(&a);
      a.batch = B;
      a.time = T;
      a.input = x.data();
      a.input_count = x.size();
      a.output = out.data();
      a.output_count = out.size();
      int ok = 1;
      for (int r = 0; r < 25; ++r) {
        ok &= slstm_session_forward(s, &a) == SLSTM_OK && t::bitwise_equal(out, want.output);
      }
      same[static_cast<std::size_t>(i)] = ok;
    });
  }
  for (std::thread& th : pool) th.join();
  for (int i = 0; i < kThreads; ++i) CHECK(same[static_cast<std::size_t>(i)] == 1);
}

TEST_CASE("the fast path's AVX-512 kernels give the AVX2 kernels' bits in both GEMMs",
          "[cpu-fast]") {
  // Both kernels' sums are FMA chains in increasing k from zero (the projection's and the
  // step's alike) and their epilogues the same polynomial math: equal bits, for whole and
  // partial groups (H = 37), blocks of 1..6 rows and more, rows past their length.  A
  // projection on other instructions (a product, then a sum) would differ.  (Runs where
  // SLSTM_CPU_KERNEL forces a kernel: that wins.)
  if (!fast_path_run() || !t::kernel_under_test().empty()) return;
  const std::int64_t D = 21, T = 5;
  t::Model m = t::random_model(D, {37, 16}, 77);
  for (const std::int64_t B : {1, 4, 7}) {
    INFO("B = " << B);
    slstm_session_options o = t::options(B, T);
    o.cpu_path = SLSTM_CPU_PATH_FAST;
    o.num_threads = 1;
    o.config = "cpu.kernel=avx512";
    slstm_session* raw = nullptr;
    const slstm_status st = slstm_session_create(m.get(), &o, &raw);
    t::Session wide(raw);
    if (st == SLSTM_ERR_UNSUPPORTED) {
      WARN("skipped: this CPU has no AVX-512 (" << slstm_last_error() << ")");
      return;
    }
    REQUIRE(st == SLSTM_OK);
    o.config = "cpu.kernel=avx2";
    raw = nullptr;
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    t::Session narrow(raw);
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 78);
    std::vector<std::int32_t> len;
    for (std::int64_t b = 0; b < B; ++b) len.push_back(static_cast<std::int32_t>(T - b % 3));
    t::Call c = t::call_of(B, T, x);
    c.lengths = &len;
    t::check_same_bits(wide.get(), narrow.get(), m.get(), c);
  }
}
