// The CUDA backend's generic path (cuda.generic, docs/cuda-generic.md): every kind of layer
// against the CPU reference.  Tagged [cuda-generic]: the CPU runs of the suite leave these
// cases out; ctest runs them (tests/CMakeLists.txt) on the real CUDA module, skipped
// visibly where there is no GPU, and on the emulated module of tests/cuda_emu ("cuda-emu:"),
// which runs the generic path's engine and per-element math in host memory on every
// machine.  Cases tagged [cuda-emu] run on the emulated module only (it takes host pointers
// as device memory).  Device buffers and caller streams on a GPU: tests/gpu/test_gpu.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "../cuda/generic_cells.cuh"
#include "support.hpp"

using Catch::Matchers::Contains;

namespace {

// FP32 on the GPU against the float64 reference: the BasicLSTMCell GPU suite's bound.
constexpr double kTolerance = 1e-5;

// A session on the CPU reference path, of the given precision.
t::Session reference_session(const slstm_model* m, std::int64_t B, std::int64_t T,
                             std::int32_t precision = SLSTM_PRECISION_DEFAULT) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  o.precision = precision;
  o.max_batch = B;
  o.max_time = T;
  slstm_session* s = nullptr;
  INFO(slstm_last_error());
  REQUIRE(slstm_session_create(m, &o, &s) == SLSTM_OK);
  return t::Session(s);
}

// Runs `c` on the CUDA session `gpu` and on a reference session: CHECKs that the CUDA run
// wrote every element and is within `tol` of the reference (output and final state).
// Returns the reference's run.
t::Run check_against_reference(slstm_session* gpu, const slstm_model* m, const t::Call& c,
                               double tol = kTolerance) {
  t::Session ref = reference_session(m, c.batch, c.time);
  const t::Run want = t::forward_ok(ref.get(), m, c);
  const t::Run got = t::forward_ok(gpu, m, c);
  CHECK(t::count_poison(got.output) == 0);
  CHECK(t::rel_err(got.output, want.output) < tol);
  CHECK(t::rel_err(got.final_state, want.final_state) < tol);
  return want;
}

bool forward_only(const std::vector<slstm_layer_config>& layers) {
  for (const auto& l : layers) {
    if (l.direction != SLSTM_DIRECTION_FORWARD) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("cuda.generic=on runs every kind of layer within 1e-5 of the CPU reference, both "
          "layouts, with lengths 0, 1, T-1, T and initial states",
          "[cuda-generic]") {
  const std::int64_t B = 5, T = 7, D = 6;
  int stack = 0;
  for (const auto& layers : t::layer_zoo()) {
    INFO("stack " << stack);
    const t::Model m = t::random_stack(D, layers, 60 + static_cast<std::uint64_t>(stack++));
    t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on");
    if (!gpu) return;
    t::Session ref = reference_session(m.get(), B, T);
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 17);
    const auto init = t::random_vector(t::state_count(m.get(), B), 18, -0.5f, 0.5f);
    const std::vector<std::int32_t> len = {7, 0, 1, 6, 3};
    const std::int64_t W = t::output_size(m.get());
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      INFO("layout " << (layout == SLSTM_TIME_MAJOR ? "time-major" : "batch-major"));
      t::Call c = t::call_of(B, T, x, layout);
      c.lengths = &len;
      c.initial_state = &init;
      const t::Run want = t::forward_ok(ref.get(), m.get(), c);
      const t::Run got = t::forward_ok(gpu.get(), m.get(), c);
      CHECK(t::count_poison(got.output) == 0);
      CHECK(t::count_poison(got.final_state) == 0);
      CHECK(t::rel_err(got.output, want.output) < kTolerance);
      CHECK(t::rel_err(got.final_state, want.final_state) < kTolerance);
      for (std::int64_t b = 0; b < B; ++b) {  // past a row's length: exactly 0
        for (std::int64_t t = len[b]; t < T; ++t) {
          const std::int64_t row = layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
          for (std::int64_t u = 0; u < W; ++u) CHECK(got.output[row * W + u] == 0.0f);
        }
      }
      // Row 1 has length 0: its state is the initial state, bit for bit.
      const t::Run no_lengths = [&] {
        t::Call all = t::call_of(B, T, x, layout);
        all.initial_state = &init;
        return t::forward_ok(gpu.get(), m.get(), all);
      }();
      const t::Run ref_all = [&] {
        t::Call all = t::call_of(B, T, x, layout);
        all.initial_state = &init;
        return t::forward_ok(ref.get(), m.get(), all);
      }();
      CHECK(t::rel_err(no_lengths.output, ref_all.output) < kTolerance);
      CHECK(t::rel_err(no_lengths.final_state, ref_all.final_state) < kTolerance);
    }
  }
}

TEST_CASE("a row of length 0 keeps its initial state bit for bit on the generic path",
          "[cuda-generic]") {
  const std::int64_t B = 3, T = 4, D = 5;
  const auto layers = t::layer_zoo()[3];  // bidirectional LSTM, residual GRU, LSTMP
  const t::Model m = t::random_stack(D, layers, 5);
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on");
  if (!gpu) return;
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 3);
  const auto init = t::random_vector(t::state_count(m.get(), B), 4);
  const std::vector<std::int32_t> len = {0, 4, 0};
  t::Call c = t::call_of(B, T, x);
  c.lengths = &len;
  c.initial_state = &init;
  const t::Run r = t::forward_ok(gpu.get(), m.get(), c);
  std::int64_t pieces = 0;
  REQUIRE(slstm_model_state_pieces(m.get(), &pieces) == SLSTM_OK);
  REQUIRE(pieces == 2 * 2 + 1 * 2 + 2);
  for (std::int64_t p = 0; p < pieces; ++p) {
    slstm_state_piece piece{};
    piece.struct_size = sizeof(piece);
    REQUIRE(slstm_model_state_piece(m.get(), B, p, &piece) == SLSTM_OK);
    const auto width = static_cast<std::size_t>(piece.width);
    for (std::size_t b : {0u, 2u}) {
      const std::size_t at = piece.offset + b * width;
      CHECK(t::bitwise_equal(&r.final_state[at], &init[at], width));
    }
  }
}

TEST_CASE("a forward stack on the generic path runs one step per call as in one call, within "
          "1e-5",
          "[cuda-generic]") {
  const std::int64_t B = 3, T = 6, D = 4;
  for (const auto& layers : t::layer_zoo()) {
    if (!forward_only(layers)) continue;
    const t::Model m = t::random_stack(D, layers, 9);
    t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on");
    if (!gpu) return;
    const std::int64_t W = t::output_size(m.get());
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 11);
    const t::Run whole = t::forward_ok(gpu.get(), m.get(), t::call_of(B, T, x, SLSTM_TIME_MAJOR));
    std::vector<float> state(t::state_count(m.get(), B), 0.0f);
    for (std::int64_t t = 0; t < T; ++t) {
      const std::vector<float> xt(x.begin() + t * B * D, x.begin() + (t + 1) * B * D);
      t::Call c = t::call_of(B, 1, xt);
      c.initial_state = &state;
      const t::Run r = t::forward_ok(gpu.get(), m.get(), c);
      const std::vector<float> want(whole.output.begin() + t * B * W,
                                    whole.output.begin() + (t + 1) * B * W);
      CHECK(t::rel_err(r.output, want) < kTolerance);
      state = r.final_state;
    }
    CHECK(t::rel_err(state, whole.final_state) < kTolerance);
  }
}

TEST_CASE("cuda.generic=always runs a BasicLSTMCell stack on the generic path, within 1e-5 of "
          "the reference",
          "[cuda-generic]") {
  const std::int64_t B = 4, T = 5;
  const t::Model m = t::random_model(9, {8, 12, 6}, 21);
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=always");
  if (!gpu) return;
  CHECK(t::json_value(t::describe_json(gpu.get()), "path") == "generic");
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * 9), 2);
  const std::vector<std::int32_t> len = {5, 2, 0, 4};
  t::Call c = t::call_of(B, T, x);
  c.lengths = &len;
  check_against_reference(gpu.get(), m.get(), c);
}

TEST_CASE("the generic path's plan names the path, the setting and each layer's cell and "
          "direction",
          "[cuda-generic]") {
  const t::Model m = t::random_stack(3, t::layer_zoo()[4], 1);  // LSTM, bidirectional GRU
  t::Session gpu = t::cuda_session(m.get(), 2, 3, "cuda.generic=on");
  if (!gpu) return;
  const std::string plan = t::describe_json(gpu.get());
  CHECK(t::json_value(plan, "backend") == "cuda");
  CHECK(t::json_value(plan, "path") == "generic");
  CHECK(t::json_value(plan, "cuda.generic") == "on (config)");
  CHECK_THAT(plan, Contains("\"gru\""));
  CHECK_THAT(plan, Contains("\"bidirectional\""));
}

// The plan's "graphs" says whether calls replay captured graphs: a capture that fails makes
// the session go on with plain launches and the same numbers, so only the plan tells.
TEST_CASE("the generic path records its calls as CUDA graphs, and its plan says so",
          "[cuda-generic]") {
  const std::int64_t B = 3, T = 5, D = 4;
  const t::Model m = t::random_stack(D, t::layer_zoo()[3], 21);  // every kind of operation
  for (const char* config : {"cuda.generic=on", "cuda.generic=on;cuda.graphs=off"}) {
    INFO(config);
    t::Session gpu = t::cuda_session(m.get(), B, T, config);
    if (!gpu) return;
    const bool graphs = std::string(config).find("graphs=off") == std::string::npos;
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 22);
    const std::vector<std::int32_t> full = {5, 5, 5}, ragged = {3, 0, 2};  // two graphs
    for (const auto* len : {&full, &ragged, &full}) {  // two shapes, one of them replayed
      t::Call c = t::call_of(B, T, x);
      c.lengths = len;
      check_against_reference(gpu.get(), m.get(), c);
    }
    const std::string g = t::json_value(t::describe_json(gpu.get()), "graphs");
    if (graphs) {
      CHECK(g.rfind("on: ", 0) == 0);  // (not "off: a capture failed (...)")
    } else {
      CHECK(g == "off (cuda.graphs=off)");
    }
  }
}

TEST_CASE("time 0 on the generic path returns the initial state, or zeros", "[cuda-generic]") {
  const t::Model m = t::random_stack(3, t::layer_zoo()[0], 2);
  t::Session gpu = t::cuda_session(m.get(), 2, 3, "cuda.generic=on");
  if (!gpu) return;
  const auto init = t::random_vector(t::state_count(m.get(), 2), 6);
  const std::vector<float> none;
  t::Call c = t::call_of(2, 0, none);
  c.initial_state = &init;
  CHECK(t::bitwise_equal(t::forward_ok(gpu.get(), m.get(), c).final_state, init));
  c.initial_state = nullptr;
  const t::Run zeros = t::forward_ok(gpu.get(), m.get(), c);
  CHECK(zeros.final_state == std::vector<float>(init.size(), 0.0f));
}

TEST_CASE("allow_tf32 on the generic path stays within 1e-3 of the reference", "[cuda-generic]") {
  const std::int64_t B = 3, T = 4, D = 6;
  const t::Model m = t::random_stack(D, t::layer_zoo()[0], 8);
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on", 1);
  if (!gpu) return;
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 1);
  check_against_reference(gpu.get(), m.get(), t::call_of(B, T, x), 1e-3);
}

TEST_CASE("hidden sizes of a few hundred on the generic path stay within 1e-5 of the "
          "reference",
          "[cuda-generic]") {
  const std::int64_t B = 3, T = 9, D = 40;
  slstm_layer_config p = t::lstm_layer(260);
  p.proj_size = 130;
  p.peepholes = 1;
  const std::vector<slstm_layer_config> layers = {
      t::with_direction(t::gru_layer(200, true), SLSTM_DIRECTION_BIDIRECTIONAL), p,
      t::gru_layer(129, false)};
  const t::Model m = t::random_stack(D, layers, 33);
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on");
  if (!gpu) return;
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 34);
  const std::vector<std::int32_t> len = {9, 8, 1};
  t::Call c = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
  c.lengths = &len;
  check_against_reference(gpu.get(), m.get(), c);
}

TEST_CASE("without cuda.generic the CUDA backend refuses a stack beyond BasicLSTMCell, naming "
          "the layer and the setting",
          "[cuda-generic]") {
  const t::Model m = t::random_stack(3, t::layer_zoo()[1], 1);  // one GRU layer
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    WARN("SKIPPED: no usable GPU: " << slstm_last_error());
    return;
  }
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 2;
  o.max_time = 2;
  for (const char* config : {static_cast<const char*>(nullptr), "cuda.generic=off"}) {
    o.config = config;
    slstm_session* s = nullptr;
    CHECK(slstm_session_create(m.get(), &o, &s) == SLSTM_ERR_UNSUPPORTED);
    CHECK(s == nullptr);
    CHECK_THAT(std::string(slstm_last_error()), Contains("layer 0 (gru, forward)"));
    CHECK_THAT(std::string(slstm_last_error()), Contains("cuda.generic=on"));
  }
}

TEST_CASE("cell_clip and proj_clip that bind on the generic path give the reference's numbers",
          "[cuda-generic]") {
  const std::int64_t B = 2, T = 5, D = 4;
  slstm_layer_config p = t::lstm_layer(6);
  p.peepholes = 1;
  p.cell_clip = 0.05f;
  p.proj_size = 3;
  p.proj_clip = 0.02f;
  const t::Model m = t::random_stack(D, {p}, 12);
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on");
  if (!gpu) return;
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 13, -3.0f, 3.0f);
  const t::Run want = check_against_reference(gpu.get(), m.get(), t::call_of(B, T, x));
  // The clips bind: some projected output sits on the bound (so the check above tests them).
  float largest = 0.0f;
  for (float v : want.output) largest = std::max(largest, std::fabs(v));
  CHECK(largest == 0.02f);
}

namespace {

// Three streams in slots: two chunks of calls over different subsets (in a different row
// order each time); every output and every slot's final state, in order.
std::vector<float> run_streams(slstm_session* s, const slstm_model* m) {
  const std::size_t n_state = t::state_count(m, 1);
  const std::int64_t D = t::input_size(m), W = t::output_size(m);
  std::vector<float> out;
  std::int64_t ids[3];
  for (int k = 0; k < 3; ++k) {
    const auto init = t::random_vector(n_state, 70 + static_cast<std::uint64_t>(k));
    REQUIRE(slstm_session_slot_open(s, init.data(), init.size(), SLSTM_MEMORY_HOST, &ids[k]) ==
            SLSTM_OK);
  }
  const std::vector<std::vector<std::int64_t>> chunks = {{ids[2], ids[0]},
                                                         {ids[0], ids[1], ids[2]}};
  std::uint64_t seed = 80;
  for (const auto& slots : chunks) {
    const auto B = static_cast<std::int64_t>(slots.size());
    const std::int64_t T = 3;
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), seed++);
    std::vector<float> y(static_cast<std::size_t>(B * T * W));
    slstm_slot_forward_args a;
    slstm_slot_forward_args_init(&a);
    a.batch = B;
    a.slot_ids = slots.data();
    a.slot_ids_count = slots.size();
    a.time = T;
    a.input = x.data();
    a.input_count = x.size();
    a.output = y.data();
    a.output_count = y.size();
    INFO(slstm_last_error());
    REQUIRE(slstm_session_slot_forward(s, &a) == SLSTM_OK);
    out.insert(out.end(), y.begin(), y.end());
  }
  for (std::int64_t id : ids) {
    std::vector<float> st(n_state);
    REQUIRE(slstm_session_slot_get_state(s, id, st.data(), st.size(), SLSTM_MEMORY_HOST) ==
            SLSTM_OK);
    out.insert(out.end(), st.begin(), st.end());
  }
  return out;
}

}  // namespace

TEST_CASE("stream slots on the generic path (cuda.slots=on) follow the CPU reference's slots",
          "[cuda-generic]") {
  const t::Model m = t::random_stack(4, t::layer_zoo()[0], 31);  // LSTMP, residual GRU, GRU
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    WARN("SKIPPED: no usable GPU: " << slstm_last_error());
    return;
  }
  auto with_slots = [&](slstm_backend backend, const char* config) {
    slstm_session_options o;
    slstm_session_options_init(&o);
    o.backend = backend;
    o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
    o.max_batch = 3;
    o.max_time = 3;
    o.max_slots = 4;
    o.config = config;
    slstm_session* s = nullptr;
    INFO(slstm_last_error());
    REQUIRE(slstm_session_create(m.get(), &o, &s) == SLSTM_OK);
    return t::Session(s);
  };
  t::Session gpu = with_slots(SLSTM_BACKEND_CUDA, "cuda.generic=on;cuda.slots=on");
  t::Session ref = with_slots(SLSTM_BACKEND_CPU, nullptr);
  CHECK(t::rel_err(run_streams(gpu.get(), m.get()), run_streams(ref.get(), m.get())) <
        kTolerance);
}

TEST_CASE("device-memory calls on the generic path read each call's own buffers, with the "
          "compute replayed (graphs) and without",
          "[cuda-emu]") {
  const std::int64_t B = 3, T = 4, D = 5;
  const t::Model m = t::random_stack(D, t::layer_zoo()[3], 41);  // bidirectional, residual
  for (const char* config : {"cuda.generic=on", "cuda.generic=on;cuda.graphs=off"}) {
    INFO(config);
    t::Session s = t::cuda_session(m.get(), B, T, config);  // device-memory calls only
    if (!s) return;
    t::Session h = t::cuda_session(m.get(), B, T, config);  // host-memory calls only
    const std::vector<std::int32_t> len = {4, 3, 0};
    std::vector<float> previous;
    // Every call's buffers alive at once (distinct addresses: a freed buffer's address may
    // come back for the next one, and a stale pointer would then read the right data).
    std::vector<std::vector<float>> xs, inits;
    for (std::uint64_t k = 0; k < 3; ++k) {
      xs.push_back(t::random_vector(static_cast<std::size_t>(B * T * D), 50 + k));
      inits.push_back(t::random_vector(t::state_count(m.get(), B), 60 + k));
    }
    for (std::size_t k = 0; k < 3; ++k) {
      const auto& x = xs[k];
      const auto& init = inits[k];
      t::Call c = t::call_of(B, T, x);
      c.lengths = &len;
      c.initial_state = &init;
      const t::Run host = t::forward_ok(h.get(), m.get(), c);
      c.memory = SLSTM_MEMORY_DEVICE;  // (host pointers: the emulated module's memory)
      const t::Run dev = t::forward_ok(s.get(), m.get(), c);
      CHECK(t::bitwise_equal(dev.output, host.output));
      CHECK(t::bitwise_equal(dev.final_state, host.final_state));
      CHECK_FALSE(t::bitwise_equal(dev.output, previous));  // each call its own input
      previous = dev.output;
    }
  }
}

namespace {

// A tier of the persistent kernel behind `key`=on (its plan params `params`, the reason's
// words `words`): the emulated module has no persistent kernel, so every layer reports none
// (the first param "none", the others "0"), and the numbers are those of a session without
// the setting; the params only where the setting and the persistent kernel are both on.
void check_tier_none_on_emu(const std::string& key, const std::vector<std::string>& params,
                            const char* words) {
  const std::int64_t B = 2, T = 3, D = 4;
  const t::Model m = t::random_model(D, {5, 6}, 12);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 13);
  t::Session plain = t::cuda_session(m.get(), B, T, "");
  if (!plain) return;
  const t::Run want = t::forward_ok(plain.get(), m.get(), t::call_of(B, T, x));
  {
    t::Session s = t::cuda_session(m.get(), B, T, (key + "=on;cuda.persistent=layers").c_str());
    for (int pass = 0; pass < 2; ++pass) {  // at creation, and read again after a call
      const std::string plan = t::describe_json(s.get());
      INFO(plan);
      CHECK(t::json_value(plan, key) == "on (config)");
      for (std::size_t i = 0; i < params.size(); ++i) {
        const std::string none = i == 0 ? "none" : "0";
        CHECK(t::json_values(plan, params[i]) == std::vector<std::string>{none, none});
      }
      CHECK_THAT(plan, !Contains(words));
      const t::Run got = t::forward_ok(s.get(), m.get(), t::call_of(B, T, x));
      CHECK(t::bitwise_equal(got.output, want.output));
      CHECK(t::bitwise_equal(got.final_state, want.final_state));
    }
  }
  for (const std::string& config : {std::string("cuda.persistent=layers"), key + "=on",
                                    key + "=on;cuda.generic=always;cuda.persistent=on"}) {
    INFO(config);
    t::Session s = t::cuda_session(m.get(), B, T, config.c_str());
    const std::string plan = t::describe_json(s.get());
    INFO(plan);
    for (const std::string& p : params) CHECK(t::json_values(plan, p).empty());
  }
}

}  // namespace

// cuda.cluster=on (module ABI v6, session_layer_cluster).
TEST_CASE("cuda.cluster=on with the persistent kernel: the plan reports each layer's cluster "
          "batches and CTAs (none on the emulated module), and nothing without it",
          "[cuda-emu]") {
  check_tier_none_on_emu("cuda.cluster", {"cluster_batches", "cluster_ctas"},
                         "thread-block cluster");
}

// cuda.hybrid=on (module ABI v7, session_layer_hybrid).
TEST_CASE("cuda.hybrid=on with the persistent kernel: the plan reports each layer's hybrid "
          "batches, resident columns and L2 window (none on the emulated module), and nothing "
          "without it",
          "[cuda-emu]") {
  check_tier_none_on_emu("cuda.hybrid", {"hybrid_batches", "hybrid_resident", "l2_window_bytes"},
                         "hybrid tier");
}

TEST_CASE("BF16 and FP16 on the generic path: within the written tolerance of FP32, and the "
          "CPU reference's rounding of the same precision",
          "[cuda-generic][precision]") {
  // Every rounded operand of docs/precision.md (x, h, LSTMP's m, a reset-before GRU's r o h,
  // both directions of a bidirectional layer), lengths 0 / 1 / T (tests/test_precision.cpp's
  // stack and bounds).
  slstm_layer_config p = t::lstm_layer(21);
  p.proj_size = 7;
  p.peepholes = 1;
  const std::vector<slstm_layer_config> layers = {
      t::gru_layer(19, false), t::gru_layer(6, true), p,
      t::with_direction(t::lstm_layer(5), SLSTM_DIRECTION_BIDIRECTIONAL)};
  const t::Model m = t::random_stack(4, layers, 2);
  const std::int64_t B = 3, T = 8;
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * 4), 3);
  const std::vector<std::int32_t> lengths = {8, 0, 1};
  t::Call call = t::call_of(B, T, x);
  call.lengths = &lengths;
  t::Session f = reference_session(m.get(), B, T, SLSTM_PRECISION_FP32);
  const t::Run fp32 = t::forward_ok(f.get(), m.get(), call);
  for (std::int32_t precision : {SLSTM_PRECISION_BF16, SLSTM_PRECISION_FP16}) {
    INFO("precision " << precision);
    t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on", 0, precision);
    if (!gpu) return;
    CHECK(t::json_value(t::describe_json(gpu.get()), "precision") ==
          (precision == SLSTM_PRECISION_BF16 ? "bf16" : "fp16"));
    t::Session twin_session = reference_session(m.get(), B, T, precision);
    const t::Run got = t::forward_ok(gpu.get(), m.get(), call);
    const t::Run twin = t::forward_ok(twin_session.get(), m.get(), call);
    CHECK(t::count_poison(got.output) == 0);
    const double u = precision == SLSTM_PRECISION_BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
    const double tolerance = u * (1.0 + std::sqrt(21.0 + 21.0) / 4.0);
    const double err = t::max_abs_diff(got.output, fp32.output);
    const double twin_err = t::max_abs_diff(got.output, twin.output);
    INFO("error " << err << ", difference from the CPU reference of the same precision "
                  << twin_err << ", tolerance " << tolerance);
    CHECK(err > 0.0);  // the operands were rounded
    CHECK(err <= tolerance);
    CHECK(t::max_abs_diff(got.final_state, fp32.final_state) <= tolerance);
    CHECK(twin_err <= err / 8);
  }
}

TEST_CASE("BF16 on CUDA runs a BasicLSTMCell stack on the generic path with cuda.generic=on, "
          "and is refused without it, naming the setting",
          "[cuda-generic][precision]") {
  const t::Model m = t::random_model(6, {9, 5}, 4);
  const std::int64_t B = 2, T = 5;
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on", 0, SLSTM_PRECISION_BF16);
  if (!gpu) return;
  CHECK(t::json_value(t::describe_json(gpu.get()), "path") == "generic");
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * 6), 5);
  t::Session twin = reference_session(m.get(), B, T, SLSTM_PRECISION_BF16);
  t::Session fp32 = reference_session(m.get(), B, T, SLSTM_PRECISION_FP32);
  const t::Run got = t::forward_ok(gpu.get(), m.get(), t::call_of(B, T, x));
  const double err =
      t::max_abs_diff(got.output, t::forward_ok(fp32.get(), m.get(), t::call_of(B, T, x)).output);
  CHECK(err > 0.0);
  CHECK(t::max_abs_diff(got.output, t::forward_ok(twin.get(), m.get(), t::call_of(B, T, x)).output) <=
        err / 8);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = B;
  o.max_time = T;
  o.precision = SLSTM_PRECISION_BF16;
  slstm_session* s = nullptr;
  CHECK(slstm_session_create(m.get(), &o, &s) == SLSTM_ERR_UNSUPPORTED);
  CHECK(s == nullptr);
  CHECK_THAT(std::string(slstm_last_error()), Contains("options->precision"));
  CHECK_THAT(std::string(slstm_last_error()), Contains("cuda.generic=on"));
}

namespace {

// A forward call of the whole sequence with 16-bit input and output codes (data_type) in
// "device" memory (the emulated module's memory is host memory).
slstm_status forward16(slstm_session* s, const slstm_model* m, slstm_data_type type,
                       std::int64_t B, std::int64_t T, const std::vector<std::uint16_t>& x,
                       std::vector<std::uint16_t>* y, std::vector<float>* fin,
                       slstm_memory memory = SLSTM_MEMORY_DEVICE) {
  y->assign(static_cast<std::size_t>(B * T * t::output_size(m)), 0xffffu);
  fin->assign(t::state_count(m, B), std::numeric_limits<float>::quiet_NaN());
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = B;
  a.time = T;
  a.memory = memory;
  a.data_type = type;
  a.input = reinterpret_cast<const float*>(x.data());
  a.input_count = x.size();
  a.output = reinterpret_cast<float*>(y->data());
  a.output_count = y->size();
  a.final_state = fin->data();
  a.final_state_count = fin->size();
  return slstm_session_forward(s, &a);
}

}  // namespace

TEST_CASE("16-bit input and output on the generic path: the float call on the input's values, "
          "its output rounded",
          "[cuda-emu]") {
  const std::int64_t B = 3, T = 5, D = 6;
  const t::Model m = t::random_stack(D, t::layer_zoo()[4], 7);  // LSTM, bidirectional GRU
  t::Session gpu = t::cuda_session(m.get(), B, T, "cuda.generic=on");
  if (!gpu) return;
  const auto xf = t::random_vector(static_cast<std::size_t>(B * T * D), 8);
  for (slstm_data_type type : {SLSTM_DATA_BF16, SLSTM_DATA_F16}) {
    INFO("data_type " << type);
    const std::int32_t format = type == SLSTM_DATA_BF16 ? slstm_cuda::generic::kOperandsBf16
                                                        : slstm_cuda::generic::kOperandsFp16;
    std::vector<std::uint16_t> x(xf.size());
    std::vector<float> values(xf.size());
    for (std::size_t i = 0; i < xf.size(); ++i) {
      x[i] = slstm_cuda::generic::operand_code(format, xf[i]);
      values[i] = slstm_cuda::generic::operand_value(format, x[i]);
    }
    std::vector<std::uint16_t> y;
    std::vector<float> fin;
    INFO(slstm_last_error());
    REQUIRE(forward16(gpu.get(), m.get(), type, B, T, x, &y, &fin) == SLSTM_OK);
    const t::Run want = t::forward_ok(gpu.get(), m.get(), t::call_of(B, T, values));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      wrong += y[i] != slstm_cuda::generic::operand_code(format, want.output[i]) ? 1 : 0;
    }
    CHECK(wrong == 0);
    CHECK(t::bitwise_equal(fin, want.final_state));  // the state stays float
  }
}

TEST_CASE("16-bit input and output are refused in host memory and on the basic path, naming "
          "data_type, before anything is written",
          "[cuda-generic]") {
  const std::int64_t B = 2, T = 3, D = 4;
  const t::Model m = t::random_model(D, {5}, 9);
  const std::vector<std::uint16_t> x(static_cast<std::size_t>(B * T * D), 0x3f80);  // 1.0
  std::vector<std::uint16_t> y;
  std::vector<float> fin;
  t::Session generic = t::cuda_session(m.get(), B, T, "cuda.generic=always");
  if (!generic) return;
  CHECK(forward16(generic.get(), m.get(), SLSTM_DATA_BF16, B, T, x, &y, &fin,
                  SLSTM_MEMORY_HOST) == SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("SLSTM_MEMORY_DEVICE"));
  CHECK(y == std::vector<std::uint16_t>(y.size(), 0xffffu));
  t::Session basic = t::cuda_session(m.get(), B, T, nullptr);
  CHECK(forward16(basic.get(), m.get(), SLSTM_DATA_F16, B, T, x, &y, &fin) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("data_type SLSTM_DATA_F16"));
  CHECK_THAT(std::string(slstm_last_error()), Contains("cuda.generic"));
  CHECK(y == std::vector<std::uint16_t>(y.size(), 0xffffu));
  for (float v : fin) CHECK(std::isnan(v));  // untouched
}

TEST_CASE("the CUDA plan gives the defaults: its own stream, chunk auto, no tuning file, "
          "persistent off", "[cuda-generic]") {
  const t::Model m = t::random_model(3, {8}, 31);
  t::Session gpu = t::cuda_session(m.get(), 2, 3, "cuda.generic=always");
  if (!gpu) return;
  const std::string plan = t::describe_json(gpu.get());
  INFO(plan);
  CHECK(t::json_value(plan, "stream") == "own");
  CHECK(t::json_value(plan, "cuda.chunk") == "auto");
  CHECK(t::json_value(plan, "cuda.tune_file") == "none");
  CHECK(t::json_value(plan, "cuda.persistent") == "off");
  CHECK(t::json_value(plan, "cuda.fused") == "auto");
}

TEST_CASE("the CUDA plan gives each cuda.* setting as the config says it", "[cuda-generic]") {
  const t::Model m = t::random_model(3, {8}, 32);
  t::Session gpu = t::cuda_session(
      m.get(), 2, 3,
      "cuda.generic=always cuda.fused=never cuda.persistent=layers cuda.chunk=auto");
  if (!gpu) return;
  const std::string plan = t::describe_json(gpu.get());
  INFO(plan);
  CHECK(t::json_value(plan, "cuda.generic") == "always (config)");
  CHECK(t::json_value(plan, "cuda.fused") == "never (config)");
  CHECK(t::json_value(plan, "cuda.persistent") == "layers (config)");
  CHECK(t::json_value(plan, "cuda.chunk") == "auto (config)");
}

TEST_CASE("the CUDA plan gives the environment's overrides: 0 or empty is off, layers and "
          "always as named", "[cuda-generic]") {
  const t::Model m = t::random_model(3, {8}, 33);
  setenv("SLSTM_CUDA_PERSISTENT", "", 1);
  setenv("SLSTM_CUDA_TUNE", "", 1);
  setenv("SLSTM_CUDA_GRAPHS", "0", 1);
  setenv("SLSTM_CUDA_FUSED", "0", 1);
  t::Session off = t::cuda_session(m.get(), 2, 3, "cuda.generic=always");
  setenv("SLSTM_CUDA_PERSISTENT", "layers", 1);
  setenv("SLSTM_CUDA_GENERIC", "always", 1);
  t::Session layers = off ? t::cuda_session(m.get(), 2, 3, nullptr) : t::Session();
  for (const char* e : {"SLSTM_CUDA_PERSISTENT", "SLSTM_CUDA_TUNE", "SLSTM_CUDA_GRAPHS",
                        "SLSTM_CUDA_FUSED", "SLSTM_CUDA_GENERIC"}) {
    unsetenv(e);
  }
  if (!off) return;
  const std::string plan_off = t::describe_json(off.get());
  INFO(plan_off);
  CHECK(t::json_value(plan_off, "cuda.persistent") == "off (SLSTM_CUDA_PERSISTENT)");
  CHECK(t::json_value(plan_off, "cuda.tune") == "off (SLSTM_CUDA_TUNE)");
  CHECK(t::json_value(plan_off, "cuda.graphs") == "off (SLSTM_CUDA_GRAPHS)");
  CHECK(t::json_value(plan_off, "cuda.fused") == "never (SLSTM_CUDA_FUSED)");
  const std::string plan_layers = t::describe_json(layers.get());
  INFO(plan_layers);
  CHECK(t::json_value(plan_layers, "path") == "generic");
  CHECK(t::json_value(plan_layers, "cuda.generic") == "always (SLSTM_CUDA_GENERIC)");
  CHECK(t::json_value(plan_layers, "cuda.persistent") == "layers (SLSTM_CUDA_PERSISTENT)");
}

TEST_CASE("cuda.generic=always runs a stack beyond BasicLSTMCell on the generic path",
          "[cuda-generic]") {
  const t::Model m = t::random_stack(3, t::layer_zoo()[4], 34);  // LSTM, bidirectional GRU
  t::Session gpu = t::cuda_session(m.get(), 2, 3, "cuda.generic=always");
  if (!gpu) return;
  CHECK(t::json_value(t::describe_json(gpu.get()), "path") == "generic");
}

TEST_CASE("the CUDA plan's precision is tf32 with allow_tf32 = 1", "[cuda-generic]") {
  const t::Model m = t::random_model(3, {8}, 35);
  t::Session gpu = t::cuda_session(m.get(), 2, 3, "cuda.generic=always", 1);
  if (!gpu) return;
  CHECK(t::json_value(t::describe_json(gpu.get()), "precision") == "tf32");
}

TEST_CASE("the generic path's plan runs layer by layer, without a wavefront chunk",
          "[cuda-generic]") {
  const t::Model m = t::random_model(3, {8}, 36);
  t::Session gpu = t::cuda_session(m.get(), 2, 3, "cuda.generic=always");
  if (!gpu) return;
  const std::string plan = t::describe_json(gpu.get());
  INFO(plan);
  CHECK_THAT(plan, !Contains("wavefront_chunk"));
  CHECK(t::json_value(plan, "order") == "layer by layer, each direction over the whole sequence");
}

TEST_CASE("the generic path's layers give the cuda.generic value that put them there",
          "[cuda-generic]") {
  const t::Model m = t::random_stack(3, t::layer_zoo()[4], 37);  // LSTM, bidirectional GRU
  t::Session always = t::cuda_session(m.get(), 2, 3, "cuda.generic=always");
  if (!always) return;
  CHECK_THAT(t::describe_json(always.get()),
             Contains("\"cuda.generic=always: every stack on the generic path\""));
  t::Session on = t::cuda_session(m.get(), 2, 3, "cuda.generic=on");
  CHECK_THAT(t::describe_json(on.get()),
             Contains("\"cuda.generic=on and a stack beyond forward BasicLSTMCell"));
}
