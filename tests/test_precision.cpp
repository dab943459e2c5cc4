// Session precision (slstm_session_options.precision, docs/precision.md): BF16 and FP16 on
// the CPU backend round the products' operands (weights once, x and h where they enter a
// product) to nearest even and sum in float32 (the reference: double); everything else stays
// float32.  What a backend or path does not run is refused, never run in another precision.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "../src/precision.hpp"
#include "support.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

slstm_status make_session(const slstm_model* m, std::int32_t precision, slstm_cpu_path path,
                          t::Session& out, std::int64_t B = 4, std::int64_t T = 12) {
  slstm_session_options o = t::options(B, T);
  o.cpu_path = path;
  o.precision = precision;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &s);
  out.reset(s);
  return st;
}

t::Session session_ok(const slstm_model* m, std::int32_t precision, slstm_cpu_path path,
                      std::int64_t B = 4, std::int64_t T = 12) {
  t::Session s;
  INFO(slstm_last_error());
  REQUIRE(make_session(m, precision, path, s, B, T) == SLSTM_OK);
  return s;
}

// The written tolerance (docs/precision.md, "Accuracy"): the largest absolute difference of
// outputs and states from the FP32 reference, for weights of scale 1/sqrt(H) and inputs in
// [-1, 1]: u * (1 + sqrt(K) * max(1/4, 1/sqrt(H))), u = 2^-8 for BF16, 2^-11 for FP16, K = I + H
// of the layer where that is largest (for H >= 16 units: sqrt(K) / 4 of the widest layer).
double tolerance(std::int32_t precision, std::int64_t K, std::int64_t H = 16) {
  const double u = precision == SLSTM_PRECISION_BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  const double scale = std::max(0.25, 1.0 / std::sqrt(static_cast<double>(H)));
  return u * (1.0 + std::sqrt(static_cast<double>(K)) * scale);
}

const std::int32_t kHalf[] = {SLSTM_PRECISION_BF16, SLSTM_PRECISION_FP16};

// A time-major call of T steps split in two (the first `first` steps, then the rest from
// the state they left) gives the bits of one call; returns the one call's run.
t::Run check_two_calls_equal_one(slstm_session* s, const slstm_model* m,
                                 const std::vector<float>& x, std::int64_t B, std::int64_t T,
                                 std::int64_t D, std::int64_t first) {
  const t::Run whole = t::forward_ok(s, m, t::call_of(B, T, x, SLSTM_TIME_MAJOR));
  const auto cut = x.begin() + first * B * D;
  const std::vector<float> x1(x.begin(), cut), x2(cut, x.end());
  const t::Run a = t::forward_ok(s, m, t::call_of(B, first, x1, SLSTM_TIME_MAJOR));
  t::Call c2 = t::call_of(B, T - first, x2, SLSTM_TIME_MAJOR);
  c2.initial_state = &a.final_state;
  const t::Run b = t::forward_ok(s, m, c2);
  std::vector<float> joined = a.output;
  joined.insert(joined.end(), b.output.begin(), b.output.end());
  CHECK(t::bitwise_equal(joined, whole.output));
  CHECK(t::bitwise_equal(b.final_state, whole.final_state));
  return whole;
}

}  // namespace

TEST_CASE("bf16 rounding keeps 8 significant bits, to nearest even", "[precision][path-independent]") {
  using slstm::round_bf16;
  CHECK(round_bf16(1.0f) == 1.0f);
  CHECK(round_bf16(1.0f + std::ldexp(1.0f, -8)) == 1.0f);                        // tie: even
  CHECK(round_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));  // tie: up
  CHECK(round_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) ==
        1.0f + std::ldexp(1.0f, -7));
  CHECK(round_bf16(-3.14159265f) == -3.140625f);
  CHECK(std::isinf(round_bf16(std::numeric_limits<float>::infinity())));
  CHECK(std::isnan(round_bf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isinf(round_bf16(std::numeric_limits<float>::max())));  // rounds past the top
  CHECK(round_bf16(std::ldexp(1.0f, -133)) == std::ldexp(1.0f, -133));  // smallest subnormal
  CHECK(round_bf16(std::numeric_limits<float>::denorm_min()) == 0.0f);
}

TEST_CASE("fp16 rounding keeps 11 significant bits, subnormals from 2^-24, inf from 65520",
          "[precision][path-independent]") {
  using slstm::round_fp16;
  CHECK(round_fp16(1.0f + std::ldexp(1.0f, -11)) == 1.0f);                        // tie: even
  CHECK(round_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 1.0f + std::ldexp(1.0f, -9));
  CHECK(round_fp16(65504.0f) == 65504.0f);
  CHECK(round_fp16(65519.0f) == 65504.0f);
  CHECK(std::isinf(round_fp16(65520.0f)));
  CHECK(std::isinf(round_fp16(-1e30f)));
  CHECK(round_fp16(std::ldexp(1.0f, -24)) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(round_fp16(std::ldexp(1.0f, -25)) == 0.0f);                   // tie: even (0)
  CHECK(round_fp16(std::ldexp(1.5f, -25)) == std::ldexp(1.0f, -24));
  CHECK(round_fp16(std::ldexp(3.0f, -25)) == std::ldexp(1.0f, -23));  // 1.5 quanta: even (2)
  CHECK(std::signbit(round_fp16(-std::ldexp(1.0f, -30))));
  CHECK(std::isnan(round_fp16(std::numeric_limits<float>::quiet_NaN())));
}

#if defined(__GNUC__) && defined(__x86_64__)
namespace {
// (_mm_cvtps_ph / _mm_cvtph_ps on one lane: clang's _cvtss_sh / _cvtsh_ss are written with
// compound literals, which -Wpedantic refuses in C++.)
__attribute__((target("f16c"))) float hardware_fp16(float x) {
  const __m128i h = _mm_cvtps_ph(_mm_set_ss(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm_cvtss_f32(_mm_cvtph_ps(h));
}
}  // namespace

TEST_CASE("fp16 rounding equals the F16C conversion on every kind of float",
          "[precision][path-independent]") {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & bit_F16C) == 0) {
    WARN("this CPU has no F16C: the comparison with the hardware conversion is skipped");
    return;
  }
  std::uint64_t s = 12345;
  int mismatches = 0;
  for (int i = 0; i < 2000000; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const auto bits = static_cast<std::uint32_t>(s >> 32);
    float x;
    std::memcpy(&x, &bits, sizeof x);
    if (std::isnan(x)) continue;
    const float a = slstm::round_fp16(x), b = hardware_fp16(x);
    if (std::memcmp(&a, &b, sizeof a) != 0) ++mismatches;
  }
  // Every float near binary16's range too (exponents -30 .. 17), densely.
  for (int e = -30; e <= 17; ++e) {
    for (int k = 0; k < 4096; ++k) {
      const float x = std::ldexp(1.0f + static_cast<float>(k) / 4096.0f, e);
      const float a = slstm::round_fp16(x), b = hardware_fp16(x);
      if (std::memcmp(&a, &b, sizeof a) != 0) ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}
#endif

TEST_CASE("a BF16 or FP16 session stays within the written tolerance of the FP32 reference",
          "[precision][accuracy]") {
  t::use_cpu_kernel_under_test();
  // Odd sizes (a partial 16-unit group, a partial 6-row block), lengths {T, 0, 1, T - 1}.
  const std::int64_t D = 9, B = 4, T = 12;
  t::Model m = t::random_model(D, {37, 13, 20}, 91);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 5);
  const std::vector<std::int32_t> lengths = {12, 0, 1, 11};
  const std::vector<float> h0 = t::random_vector(t::state_count(m.get(), B), 6, -0.5f, 0.5f);
  for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
    t::Call c = t::call_of(B, T, x, layout);
    c.lengths = &lengths;
    c.initial_state = &h0;
    t::Session ref = session_ok(m.get(), SLSTM_PRECISION_FP32, SLSTM_CPU_PATH_REFERENCE);
    const t::Run want = t::forward_ok(ref.get(), m.get(), c);
    for (std::int32_t p : kHalf) {
      INFO("precision " << p << ", layout " << layout);
      t::Session s = session_ok(m.get(), p, t::cpu_path_under_test());
      const t::Run got = t::forward_ok(s.get(), m.get(), c);
      CHECK(t::count_poison(got.output) == 0);
      const double out_err = t::max_abs_diff(got.output, want.output);
      const double state_err = t::max_abs_diff(got.final_state, want.final_state);
      const double tol = tolerance(p, 37 + 37);
      INFO("output error " << out_err << ", state error " << state_err << ", tolerance " << tol);
      CHECK(out_err <= tol);
      CHECK(state_err <= tol);
      CHECK(out_err > 0.0);  // the operands were rounded: not the FP32 numbers
      // ... in the way the reference path of the same precision rounds them: far closer to
      // it than to FP32 (they differ by float32 sums, and where those put an h on the other
      // side of a rounding boundary).
      t::Session same = session_ok(m.get(), p, SLSTM_CPU_PATH_REFERENCE);
      const t::Run twin = t::forward_ok(same.get(), m.get(), c);
      const double twin_err = t::max_abs_diff(got.output, twin.output);
      INFO("difference from the reference path of the same precision " << twin_err);
      CHECK(twin_err <= out_err / 8);
      // Rows past their length: outputs 0 and the initial state kept, as in FP32.
      for (std::int64_t t = 1; t < T; ++t) {
        const std::int64_t row = layout == SLSTM_BATCH_MAJOR ? 2 * T + t : t * B + 2;
        for (std::int64_t u = 0; u < 20; ++u) CHECK(got.output[row * 20 + u] == 0.0f);
      }
    }
  }
}

TEST_CASE("a BF16 or FP16 layer of 1 or 2 units after a wide input stays within the written "
          "tolerance",
          "[precision][accuracy]") {
  // Default weights of a narrow layer are up to +-1: its products, and their rounding, are
  // larger than at 16 units and more, and so is the tolerance (max(1/4, 1/sqrt(H))).
  t::use_cpu_kernel_under_test();
  const std::int64_t D = 256, B = 64, T = 9;
  for (const std::int64_t H : {std::int64_t{1}, std::int64_t{2}}) {
    for (const bool gru : {false, true}) {
      const slstm_layer_config layer = gru ? t::gru_layer(H, true) : t::lstm_layer(H);
      t::Model m = t::random_stack(D, {layer}, static_cast<std::uint64_t>(58 + H));
      const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 9);
      const t::Call c = t::call_of(B, T, x);
      t::Session ref = session_ok(m.get(), SLSTM_PRECISION_FP32, SLSTM_CPU_PATH_REFERENCE, B, T);
      const t::Run want = t::forward_ok(ref.get(), m.get(), c);
      for (std::int32_t p : kHalf) {
        t::Session s = session_ok(m.get(), p, t::cpu_path_under_test(), B, T);
        const t::Run got = t::forward_ok(s.get(), m.get(), c);
        const double err = std::max(t::max_abs_diff(got.output, want.output),
                                    t::max_abs_diff(got.final_state, want.final_state));
        INFO((gru ? "GRU" : "LSTM") << " of " << H << " units, precision " << p << ": error "
                                    << err << ", tolerance " << tolerance(p, D + H, H));
        CHECK(err <= tolerance(p, D + H, H));
        CHECK(err > 0.0);
      }
    }
  }
}

TEST_CASE("a BF16 or FP16 session's error does not grow over a long sequence",
          "[precision][accuracy]") {
  t::use_cpu_kernel_under_test();
  const std::int64_t D = 16, B = 2, T = 1000;
  t::Model m = t::random_model(D, {64}, 17);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 8);
  const t::Call c = t::call_of(B, T, x);
  t::Session ref = session_ok(m.get(), SLSTM_PRECISION_FP32, SLSTM_CPU_PATH_REFERENCE, B, T);
  const t::Run want = t::forward_ok(ref.get(), m.get(), c);
  for (std::int32_t p : kHalf) {
    INFO("precision " << p);
    t::Session s = session_ok(m.get(), p, t::cpu_path_under_test(), B, T);
    const t::Run got = t::forward_ok(s.get(), m.get(), c);
    const double err = t::max_abs_diff(got.output, want.output);
    INFO("output error over " << T << " steps: " << err);
    CHECK(err <= tolerance(p, 64 + 64));
  }
}

TEST_CASE("a BF16 or FP16 session gives the same bits called whole, in chunks or by steps",
          "[precision][streaming]") {
  t::use_cpu_kernel_under_test();
  const std::int64_t D = 5, B = 3, T = 9;
  t::Model m = t::random_model(D, {21, 8}, 4);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 2);
  for (std::int32_t p : kHalf) {
    INFO("precision " << p);
    t::Session s = session_ok(m.get(), p, t::cpu_path_under_test(), B, T);
    check_two_calls_equal_one(s.get(), m.get(), x, B, T, D, 4);
  }
}

namespace {

// A fast-path session of `precision` with the keyed settings `config`.
t::Session fast_session(const slstm_model* m, std::int32_t precision, const char* config,
                        std::int64_t B, std::int64_t T, int threads = 0) {
  slstm_session_options o = t::options(B, T);
  if (threads > 0) o.num_threads = threads;
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.precision = precision;
  o.config = config;
  slstm_session* s = nullptr;
  INFO(slstm_last_error());
  REQUIRE(slstm_session_create(m, &o, &s) == SLSTM_OK);
  return t::Session(s);
}

}  // namespace

TEST_CASE("cpu.wh16: the AVX-512 plan converts codes once past this machine's L1D",
          "[precision][cpu-fast]") {
  // Where a group's 16-bit codes stay in L1, every block of rows reads them there; past the
  // core's L1D (as the C library reports it) the first block widens them for the others.
  t::use_cpu_kernel_under_test();
  t::Model m = t::random_model(24, {40}, 5);
  t::Session s = fast_session(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=off", 8, 3);
  const std::string plan = t::describe_json(s.get());
  INFO(plan);
  const std::string operands = t::json_value(plan, "operands");
  if (t::json_value(plan, "kernel") != "avx512") {
    CHECK_THAT(operands, !Contains("L1D"));  // the AVX2 kernels widen whole chunks
    return;
  }
#ifdef _SC_LEVEL1_DCACHE_SIZE
  const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
#else
  const long l1d = 0;
#endif
  if (l1d > 0) {
    CHECK_THAT(operands, Contains("codes over the L1D's " + std::to_string(l1d / 1024) +
                                  " KB converted once where 4 or more blocks of rows"));
  } else {  // (the library then reads sysfs, else takes 32 KB)
    CHECK_THAT(operands, Contains(" KB converted once where 4 or more blocks of rows"));
  }
}

TEST_CASE("cpu.wh16: W_h and W_x in 16 bits give the bits of float32 storage",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // Partial 16-unit groups (H = 37, 20), every block height 1..6 (B = 13: blocks of 6, 6, 1
  // and the batch split's other blocks), lengths ending inside the sequence; calls of 7
  // steps and of one (its input projection: one block of rows per group).
  const std::int64_t D = 11;
  t::Model m = t::random_model(D, {37, 64, 20}, 33);
  for (const std::int64_t T : {7, 1}) {
    for (const std::int64_t B : {1, 2, 3, 4, 5, 13}) {
      const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 9);
      std::vector<std::int32_t> lengths(static_cast<std::size_t>(B),
                                        static_cast<std::int32_t>(T));
      lengths[0] = static_cast<std::int32_t>(T > 2 ? T - 2 : 0);
      t::Call c = t::call_of(B, T, x);
      c.lengths = &lengths;
      for (std::int32_t p : kHalf) {
        INFO("precision " << p << ", B " << B << ", T " << T);
        // (cpu.amx=off: AMX reads 16-bit W_h only, and sums otherwise: tests/test_amx.cpp.)
        t::Session on = fast_session(m.get(), p, "cpu.wh16=on;cpu.amx=off", B, T);
        t::Session off = fast_session(m.get(), p, "cpu.wh16=off;cpu.amx=off", B, T);
        const std::string plan_on = t::describe_json(on.get());
        const std::string plan_off = t::describe_json(off.get());
        INFO(plan_on);
        const std::string kernel = t::json_value(plan_on, "kernel");
        if (kernel == "avx2" || kernel == "avx512") {  // (every AVX2 CPU so far has F16C)
          CHECK_THAT(t::json_value(plan_on, "operands"),
                     Contains("W_h stored in 16 bits, W_x too"));
        } else {
          CHECK_THAT(t::json_value(plan_on, "operands"), Contains("what this kernel reads"));
        }
        CHECK_THAT(t::json_value(plan_off, "operands"), Contains("W_h stored as float32"));
        CHECK_THAT(t::json_value(plan_off, "cpu.wh16"), StartsWith("off"));
        t::check_same_bits(on.get(), off.get(), m.get(), c);
      }
    }
  }
}

TEST_CASE("cpu.wh16: a long input projection over 16-bit W_x gives float32 storage's bits",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // 300 rows (B = 50, T = 6) in one chunk of 50 blocks over layer 0's W_x of I = 400 (its
  // codes 50 KB a group): the fast path widens each group's codes to float32 once (AVX2:
  // before the blocks, widen_wx; AVX-512: the first block storing what it reads, keeps_wx),
  // on 1 and 2 workers, from a state; layer 1 (I = 200) reads its codes.
  const std::int64_t D = 400, B = 50, T = 6;
  t::Model m = t::random_model(D, {200, 24}, 35);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 12);
  const std::vector<float> h0 = t::random_vector(t::state_count(m.get(), B), 13, -0.5f, 0.5f);
  t::Call c = t::call_of(B, T, x);
  c.initial_state = &h0;
  for (const int threads : {1, 2}) {
    for (std::int32_t p : kHalf) {
      INFO("precision " << p << ", threads " << threads);
      const std::string on_cfg = "cpu.wh16=on;cpu.amx=off";
      t::Session on = fast_session(m.get(), p, on_cfg.c_str(), B, T, threads);
      t::Session off = fast_session(m.get(), p, "cpu.wh16=off;cpu.amx=off", B, T, threads);
      t::check_same_bits(on.get(), off.get(), m.get(), c);
    }
  }
}

TEST_CASE("cpu.wh16: a step over many rows gives float32 storage's bits",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // H = 392 (its 16-unit groups' W_h codes 49 KB each, the last group half full) and 50 rows:
  // 4-9 blocks of rows per worker, where the AVX-512 kernels widen each group's codes to
  // float32 once in a step (the first block storing what it reads, the others reading it);
  // on 1 and 2 workers, from the zero state and from a state, rows ending early.
  const std::int64_t D = 7, B = 50, T = 3;
  t::Model m = t::random_model(D, {392}, 36);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 14);
  const std::vector<float> h0 = t::random_vector(t::state_count(m.get(), B), 15, -0.5f, 0.5f);
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(B), static_cast<std::int32_t>(T));
  lengths[3] = 0;
  lengths[30] = 2;
  for (const bool from_state : {false, true}) {
    t::Call c = t::call_of(B, T, x);
    c.lengths = &lengths;
    if (from_state) c.initial_state = &h0;
    for (const int threads : {1, 2}) {
      for (std::int32_t p : kHalf) {
        INFO("precision " << p << ", threads " << threads << ", from a state " << from_state);
        t::Session on = fast_session(m.get(), p, "cpu.wh16=on;cpu.amx=off", B, T, threads);
        t::Session off = fast_session(m.get(), p, "cpu.wh16=off;cpu.amx=off", B, T, threads);
        t::check_same_bits(on.get(), off.get(), m.get(), c);
      }
    }
  }
}

TEST_CASE("cpu.wh16 on the generic path: 16-bit weights give float32 storage's bits",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // Every kind of layer (t::layer_zoo) and a wide GRU / LSTMP stack (partial 32-row blocks,
  // 1-4 block passes), alone and as a team (cpu.team=always, 2 threads), B = 1, 2, 7.
  slstm_layer_config lstmp = t::lstm_layer(50);
  lstmp.peepholes = 1;
  lstmp.proj_size = 20;
  std::vector<std::vector<slstm_layer_config>> stacks = t::layer_zoo();
  stacks.push_back({t::gru_layer(75, false), lstmp, t::lstm_layer(40)});
  const std::int64_t D = 6, T = 5;
  std::uint64_t seed = 50;
  for (const auto& layers : stacks) {
    t::Model m = t::random_stack(D, layers, ++seed);
    for (const std::int64_t B : {1, 2, 7}) {
      const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), ++seed);
      const t::Call c = t::call_of(B, T, x);
      for (std::int32_t p : kHalf) {
        for (const char* team : {"", ";cpu.team=always"}) {
          INFO("seed " << seed << ", B " << B << ", precision " << p << team);
          // (cpu.amx=off: AMX reads 16-bit weights only, and sums otherwise: test_amx.cpp.)
          const std::string on_cfg = std::string("cpu.wh16=on;cpu.amx=off") + team;
          const std::string off_cfg = std::string("cpu.wh16=off;cpu.amx=off") + team;
          slstm_session_options o = t::options(B, T);
          o.cpu_path = SLSTM_CPU_PATH_FAST;
          o.precision = p;
          o.num_threads = 2;
          slstm_session* raw = nullptr;
          o.config = on_cfg.c_str();
          REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
          t::Session on(raw);
          o.config = off_cfg.c_str();
          REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
          t::Session off(raw);
          const std::string plan = t::describe_json(on.get());
          INFO(plan);
          const std::string kernel = t::json_value(plan, "kernel");
          CHECK_THAT(t::json_value(plan, "operands"),
                     Contains(kernel == "portable" ? "what this kernel reads"
                                                   : "weights stored in 16 bits"));
          CHECK_THAT(t::json_value(t::describe_json(off.get()), "operands"),
                     Contains("weights stored as float32"));
          t::check_same_bits(on.get(), off.get(), m.get(), c);
        }
      }
    }
  }
}

TEST_CASE("cpu.wh16 on the generic path: GEMMs over many rows give float32 storage's bits",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // 50 rows: a step's GEMMs over 25-50 rows (5-9 groups of up to 6) and input projections of
  // more, where the AVX-512 kernels widen each panel of 16-bit weights to float32 once (the
  // first group of rows storing what it reads, the others reading it); a GRU's W_x of 19
  // blocks over I = 260 (more than one panel where L2 holds < 19 blocks of 260 x 32 floats,
  // the last block partial), a bidirectional LSTMP above; alone, as a team, from a state,
  // rows ending early.
  slstm_layer_config lstmp = t::lstm_layer(48);
  lstmp.proj_size = 24;
  const std::int64_t D = 260, B = 50, T = 4;
  t::Model m = t::random_stack(
      D, {t::gru_layer(200, true), t::with_direction(lstmp, SLSTM_DIRECTION_BIDIRECTIONAL)}, 90);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 91);
  const std::vector<float> h0 = t::random_vector(t::state_count(m.get(), B), 92, -0.5f, 0.5f);
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(B), static_cast<std::int32_t>(T));
  lengths[0] = 0;
  lengths[7] = 1;
  lengths[20] = static_cast<std::int32_t>(T - 1);
  t::Call c = t::call_of(B, T, x);
  c.initial_state = &h0;
  c.lengths = &lengths;
  for (std::int32_t p : kHalf) {
    for (const char* config : {";cpu.team=off", ";cpu.team=always"}) {
      for (const int threads : {1, 2}) {
        INFO("precision " << p << config << ", threads " << threads);
        const std::string on_cfg = std::string("cpu.wh16=on;cpu.amx=off") + config;
        const std::string off_cfg = std::string("cpu.wh16=off;cpu.amx=off") + config;
        t::Session on = fast_session(m.get(), p, on_cfg.c_str(), B, T, threads);
        t::Session off = fast_session(m.get(), p, off_cfg.c_str(), B, T, threads);
        t::check_same_bits(on.get(), off.get(), m.get(), c);
      }
    }
  }
}

TEST_CASE("a BF16 or FP16 session of the generic path gives the same bits whole, in chunks "
          "and one row at a time",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // GRU H = 512 and 7 rows: the rounded inputs are projected ~18 steps ahead at a time, so
  // 40 steps cross chunk boundaries, elsewhere for a call of one row or of fewer steps.
  const std::int64_t B = 7, T = 40, D = 9;
  slstm_layer_config lstmp = t::lstm_layer(64);
  lstmp.proj_size = 32;
  t::Model m = t::random_stack(D, {t::gru_layer(512, true), lstmp}, 77);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 78);
  const std::int64_t W = 32;
  for (std::int32_t p : kHalf) {
    INFO("precision " << p);
    slstm_session_options o = t::options(B, T);
    o.cpu_path = SLSTM_CPU_PATH_FAST;
    o.precision = p;
    slstm_session* raw = nullptr;
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    t::Session s(raw);
    const t::Run whole = check_two_calls_equal_one(s.get(), m.get(), x, B, T, D, 25);
    // Row 3 alone (time-major rows of one batch row are its steps).
    std::vector<float> x3;
    for (std::int64_t t = 0; t < T; ++t) {
      x3.insert(x3.end(), x.begin() + (t * B + 3) * D, x.begin() + (t * B + 4) * D);
    }
    const t::Run one = t::forward_ok(s.get(), m.get(), t::call_of(1, T, x3, SLSTM_TIME_MAJOR));
    for (std::int64_t t = 0; t < T; ++t) {
      CHECK(t::bitwise_equal(&one.output[static_cast<std::size_t>(t * W)],
                             &whole.output[static_cast<std::size_t>((t * B + 3) * W)],
                             static_cast<std::size_t>(W)));
    }
  }
}

TEST_CASE("the plan names the session's precision", "[precision][plan]") {
  t::Model m = t::random_model(3, {4}, 1);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, t::cpu_path_under_test());
  CHECK(t::json_value(t::describe_json(s.get()), "precision") == "bf16");
  t::Session f = session_ok(m.get(), SLSTM_PRECISION_FP16, t::cpu_path_under_test());
  CHECK(t::json_value(t::describe_json(f.get()), "precision") == "fp16");
  t::Session d = session_ok(m.get(), SLSTM_PRECISION_DEFAULT, t::cpu_path_under_test());
  CHECK(t::json_value(t::describe_json(d.get()), "precision") == "fp32");
}

TEST_CASE("an FP32 session gives the default session's bits", "[precision]") {
  t::use_cpu_kernel_under_test();
  t::Model m = t::random_model(6, {17, 9}, 3);
  const std::vector<float> x = t::random_vector(2 * 5 * 6, 1);
  t::Session d = session_ok(m.get(), SLSTM_PRECISION_DEFAULT, t::cpu_path_under_test(), 2, 5);
  t::Session f = session_ok(m.get(), SLSTM_PRECISION_FP32, t::cpu_path_under_test(), 2, 5);
  t::check_same_bits(d.get(), f.get(), m.get(), t::call_of(2, 5, x));
}

TEST_CASE("a precision the CPU backend does not run is refused, naming it",
          "[precision][errors]") {
  t::Model m = t::random_model(3, {4}, 1);
  t::Session s;
  CHECK(make_session(m.get(), SLSTM_PRECISION_TF32, t::cpu_path_under_test(), s) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("options->precision tf32"));
  CHECK(s == nullptr);
  CHECK(make_session(m.get(), 7, t::cpu_path_under_test(), s) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("options->precision: unknown value 7"));
  CHECK(make_session(m.get(), -1, t::cpu_path_under_test(), s) == SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("allow_tf32 = 1 under the default precision is ignored by the CPU backend, which "
          "runs FP32 (as before 0.5)",
          "[precision]") {
  // A program that allows TF32 wherever it applies and picks its backend at run time: the
  // header promises the CPU ignores the flag; 0.5-0.16.1 refused the session.
  t::use_cpu_kernel_under_test();
  t::Model m = t::random_model(6, {17, 9}, 4);
  const std::vector<float> x = t::random_vector(2 * 5 * 6, 2);
  slstm_session_options o = t::options(2, 5);
  o.cpu_path = t::cpu_path_under_test();
  o.allow_tf32 = 1;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session allowed(raw);
  CHECK(t::json_value(t::describe_json(allowed.get()), "precision") == "fp32");
  t::Session f = session_ok(m.get(), SLSTM_PRECISION_FP32, t::cpu_path_under_test(), 2, 5);
  t::check_same_bits(allowed.get(), f.get(), m.get(), t::call_of(2, 5, x));
}

namespace {

// Every operand docs/precision.md rounds, in one stack of input size 4: a reset-before GRU
// (r o h), a reset-after GRU, an LSTM with peepholes and a projection (m, W_proj's operand)
// and a bidirectional LSTM (x of both directions).
t::Model every_rounded_operand_stack() {
  slstm_layer_config layers[4];
  for (slstm_layer_config& l : layers) slstm_layer_config_init(&l);
  layers[0].cell = SLSTM_CELL_GRU;
  layers[0].hidden_size = 19;
  layers[1].cell = SLSTM_CELL_GRU;
  layers[1].hidden_size = 6;
  layers[1].gru_reset_after = 1;
  layers[2].hidden_size = 21;
  layers[2].proj_size = 7;
  layers[2].peepholes = 1;
  layers[3].hidden_size = 5;
  layers[3].direction = SLSTM_DIRECTION_BIDIRECTIONAL;
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = 4;
  c.num_layers = 4;
  c.layers = layers;
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&c, 2, 0.0f, &raw) == SLSTM_OK);
  return t::Model(raw);
}

// every_rounded_operand_stack's call: 3 rows of 8 steps whose lengths are 8, 0 and 1.
struct RoundedOperandCall {
  static constexpr std::int64_t B = 3, T = 8;
  std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * 4), 3);
  std::vector<std::int32_t> lengths = {8, 0, 1};
  t::Call call() const {
    t::Call c = t::call_of(B, T, x);
    c.lengths = &lengths;
    return c;
  }
};

}  // namespace

TEST_CASE("BF16 and FP16 run every stack: GRU both resets, LSTMP, peepholes, bidirectional",
          "[precision][layers]") {
  t::use_cpu_kernel_under_test();
  // Every rounded operand of docs/precision.md: a reset-before GRU (r o h), a reset-after
  // GRU, an LSTM with peepholes and a projection (m), a bidirectional layer (x of both
  // directions), lengths 0 / 1 / T.
  const t::Model m = every_rounded_operand_stack();
  const RoundedOperandCall input;
  const std::int64_t B = input.B, T = input.T;
  const t::Call call = input.call();
  t::Session f = session_ok(m.get(), SLSTM_PRECISION_FP32, SLSTM_CPU_PATH_REFERENCE, B, T);
  const t::Run fp32 = t::forward_ok(f.get(), m.get(), call);
  for (std::int32_t p : kHalf) {
    INFO("precision " << p);
    t::Session s = session_ok(m.get(), p, t::cpu_path_under_test(), B, T);
    t::Session r = session_ok(m.get(), p, SLSTM_CPU_PATH_REFERENCE, B, T);
    const t::Run got = t::forward_ok(s.get(), m.get(), call);
    const t::Run twin = t::forward_ok(r.get(), m.get(), call);
    const double err = t::max_abs_diff(got.output, fp32.output);
    const double twin_err = t::max_abs_diff(got.output, twin.output);
    INFO("error " << err << ", difference from the reference of the same precision " << twin_err);
    CHECK(err > 0.0);
    CHECK(err <= tolerance(p, 21 + 21));
    CHECK(twin_err <= err / 8);
    CHECK(t::max_abs_diff(got.final_state, fp32.final_state) <= tolerance(p, 21 + 21));
  }
}

TEST_CASE("an FP16 session of a model with a weight beyond binary16's range is refused",
          "[precision][errors]") {
  const std::int64_t I = 2, H = 3;
  std::vector<float> kernel(static_cast<std::size_t>((I + H) * 4 * H), 0.1f), bias(4 * H, 0.0f);
  kernel[7] = 70000.0f;
  slstm_tensor tensors[2] = {};
  tensors[0].data = kernel.data();
  tensors[0].ndim = 2;
  tensors[0].shape[0] = I + H;
  tensors[0].shape[1] = 4 * H;
  tensors[1].data = bias.data();
  tensors[1].ndim = 1;
  tensors[1].shape[0] = 4 * H;
  slstm_model_config c;
  slstm_model_config_init(&c);
  const std::int64_t hidden[1] = {H};
  c.input_size = I;
  c.num_layers = 1;
  c.hidden_sizes = hidden;
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create(&c, SLSTM_FORMAT_TF, tensors, 2, &raw) == SLSTM_OK);
  t::Model m(raw);
  t::Session s;
  CHECK(make_session(m.get(), SLSTM_PRECISION_FP16, t::cpu_path_under_test(), s) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 0"));
  CHECK_THAT(std::string(slstm_last_error()), Contains("beyond binary16's range"));
  CHECK(s == nullptr);
  CHECK(make_session(m.get(), SLSTM_PRECISION_BF16, t::cpu_path_under_test(), s) == SLSTM_OK);
}

TEST_CASE("allow_tf32 = 1 with an explicit precision (FP32, BF16 or FP16) is refused naming "
          "allow_tf32",
          "[precision][errors]") {
  t::Model m = t::random_model(3, {4}, 1);
  for (const slstm_precision p :
       {SLSTM_PRECISION_FP32, SLSTM_PRECISION_BF16, SLSTM_PRECISION_FP16}) {
    INFO("precision " << p);
    slstm_session_options o = t::options(1, 1);
    o.precision = p;
    o.allow_tf32 = 1;
    slstm_session* raw = nullptr;
    CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(slstm_last_error()), Contains("options->allow_tf32 is 1"));
    CHECK(raw == nullptr);
    slstm_session_destroy(raw);
  }
}

namespace {

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

}  // namespace

TEST_CASE("a BF16 session rounds an operand halfway between two bfloat16 values to the even one",
          "[precision]") {
  // Every input is a tie (low 16 bits 0x8000, kept lowest bit 0): to nearest even it rounds
  // down, as the reference's scalar rounding does; rounded up instead it would be 2^-7
  // larger.  One step from a zero state: the path's outputs and the reference's then differ
  // by float32 sums only.  32 inputs: the vectorised rounding's 8 and 16 lanes, not a tail.
  const std::int64_t D = 16, H = 16, B = 2;
  t::Model m = t::random_model(D, {H}, 23);
  std::vector<float> x(static_cast<std::size_t>(B * D));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::uint32_t sign = i % 3 == 0 ? 0x80000000u : 0u;
    x[i] = from_bits(sign | (0x3f808000u + (static_cast<std::uint32_t>(i % 5) << 18)));
  }
  const t::Call c = t::call_of(B, 1, x);
  t::Session ref = session_ok(m.get(), SLSTM_PRECISION_BF16, SLSTM_CPU_PATH_REFERENCE, B, 1);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, t::cpu_path_under_test(), B, 1);
  const t::Run want = t::forward_ok(ref.get(), m.get(), c);
  const t::Run got = t::forward_ok(s.get(), m.get(), c);
  CHECK(t::count_poison(got.output) == 0);
  CHECK(t::max_abs_diff(got.output, want.output) <= 1e-5);
  CHECK(t::max_abs_diff(got.final_state, want.final_state) <= 1e-5);
}

TEST_CASE("a BF16 session keeps a NaN input a NaN whatever its payload", "[precision]") {
  // NaNs whose payload carries into the sign when 0x8000 is added: rounded as numbers they
  // would become zeros, and the row's outputs finite.  Row 1's first step only.
  const std::int64_t D = 8, H = 16, B = 2, T = 2;
  t::Model m = t::random_model(D, {H}, 29);
  std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 30);
  const std::uint32_t nans[] = {0x7fffffffu, 0xffffffffu, 0x7fff8000u, 0xffff8001u};
  for (std::int64_t k = 0; k < D; ++k) {
    x[static_cast<std::size_t>(T * D + k)] = from_bits(nans[k % 4]);
  }
  const t::Call c = t::call_of(B, T, x);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, t::cpu_path_under_test(), B, T);
  const t::Run got = t::forward_ok(s.get(), m.get(), c);
  for (std::int64_t i = 0; i < T * H; ++i) {
    INFO("row 1, element " << i);
    CHECK(std::isnan(got.output[static_cast<std::size_t>(T * H + i)]));
    CHECK(std::isfinite(got.output[static_cast<std::size_t>(i)]));  // row 0
  }
}

TEST_CASE("a BF16 or FP16 session stepped by calls of one step gives one call's bits",
          "[precision][streaming]") {
  // From a nonzero initial state: the first step's product reads that state's rounding, which
  // a call of one step must make as a longer call does.
  const std::int64_t D = 5, B = 3, T = 4;
  t::Model m = t::random_model(D, {21, 8}, 41);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 42);
  const std::vector<float> h0 = t::random_vector(t::state_count(m.get(), B), 43, -0.5f, 0.5f);
  for (std::int32_t p : kHalf) {
    INFO("precision " << p);
    t::Session s = session_ok(m.get(), p, t::cpu_path_under_test(), B, T);
    t::Call whole = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
    whole.initial_state = &h0;
    const t::Run want = t::forward_ok(s.get(), m.get(), whole);
    std::vector<float> state = h0, joined;
    for (std::int64_t t = 0; t < T; ++t) {
      const std::vector<float> xt(x.begin() + t * B * D, x.begin() + (t + 1) * B * D);
      t::Call c = t::call_of(B, 1, xt, SLSTM_TIME_MAJOR);
      c.initial_state = &state;
      const t::Run r = t::forward_ok(s.get(), m.get(), c);
      joined.insert(joined.end(), r.output.begin(), r.output.end());
      state = r.final_state;
    }
    CHECK(t::bitwise_equal(joined, want.output));
    CHECK(t::bitwise_equal(state, want.final_state));
  }
}

TEST_CASE("a BF16 or FP16 session of the generic fast path gives the same precision's "
          "reference to float32 accuracy",
          "[precision][layers][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  // Both paths round the same operands (weights, x, h, r o h, the projection's m) and differ
  // only in summing them in float32 or double: a few float32 ulps apart (<= 2.4e-7 normwise
  // on the AVX-512, AVX2 and portable kernels), where one operand left unrounded (h of the
  // 6-unit reset-after GRU's W_h,n product alone, FP16) moves the final state by 4e-6.
  const t::Model m = every_rounded_operand_stack();
  const RoundedOperandCall input;
  const std::int64_t B = input.B, T = input.T;
  const t::Call call = input.call();
  for (std::int32_t p : kHalf) {
    INFO("precision " << p);
    t::Session s = session_ok(m.get(), p, SLSTM_CPU_PATH_FAST, B, T);
    t::Session r = session_ok(m.get(), p, SLSTM_CPU_PATH_REFERENCE, B, T);
    const t::Run got = t::forward_ok(s.get(), m.get(), call);
    const t::Run want = t::forward_ok(r.get(), m.get(), call);
    CHECK(t::count_poison(got.output) == 0);
    CHECK(t::rel_err(got.output, want.output) < 1e-6);
    CHECK(t::rel_err(got.final_state, want.final_state) < 1e-6);
  }
}

namespace {

// A one-layer model of `layer` (input 2) from canonical tensors: every weight 0.1 but
// element `at` of tensor `which`, which is `value`.
t::Model canonical_stack(const slstm_layer_config& layer, std::size_t which, std::size_t at,
                         float value) {
  const std::int64_t I = 2, H = layer.hidden_size, R = layer.proj_size > 0 ? layer.proj_size : H;
  std::vector<std::vector<std::int64_t>> shapes = {{4 * H, I}, {4 * H, R}, {4 * H}};
  if (layer.proj_size > 0) shapes.push_back({layer.proj_size, H});
  if (layer.direction == SLSTM_DIRECTION_BIDIRECTIONAL) {
    const std::size_t n = shapes.size();
    for (std::size_t k = 0; k < n; ++k) shapes.push_back(shapes[k]);
  }
  std::vector<std::vector<float>> data;
  std::vector<slstm_tensor> tensors(shapes.size());
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    std::int64_t count = 1;
    for (const std::int64_t d : shapes[k]) count *= d;
    data.emplace_back(static_cast<std::size_t>(count), 0.1f);
  }
  data[which][at] = value;
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    tensors[k].data = data[k].data();
    tensors[k].ndim = static_cast<std::int32_t>(shapes[k].size());
    for (std::size_t d = 0; d < shapes[k].size(); ++d) tensors[k].shape[d] = shapes[k][d];
  }
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = I;
  c.num_layers = 1;
  c.layers = &layer;
  slstm_model* raw = nullptr;
  INFO(slstm_last_error());
  REQUIRE(slstm_model_create(&c, SLSTM_FORMAT_CANONICAL, tensors.data(), tensors.size(), &raw) ==
          SLSTM_OK);
  return t::Model(raw);
}

}  // namespace

TEST_CASE("an FP16 session refuses a weight of 65520 (binary16's inf) and takes 65519",
          "[precision][errors]") {
  const slstm_layer_config layer = t::lstm_layer(3);
  t::Session s;
  t::Model at_inf = canonical_stack(layer, 1, 4, 65520.0f);
  CHECK(make_session(at_inf.get(), SLSTM_PRECISION_FP16, t::cpu_path_under_test(), s) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 0 W_h element 4 is 65520"));
  t::Model below = canonical_stack(layer, 1, 4, 65519.0f);
  CHECK(make_session(below.get(), SLSTM_PRECISION_FP16, t::cpu_path_under_test(), s) ==
        SLSTM_OK);
}

TEST_CASE("an FP16 session refuses a projection weight beyond binary16's range, naming W_proj",
          "[precision][errors]") {
  slstm_layer_config layer = t::lstm_layer(3);
  layer.proj_size = 2;
  t::Model m = canonical_stack(layer, 3, 5, -70000.0f);
  t::Session s;
  CHECK(make_session(m.get(), SLSTM_PRECISION_FP16, t::cpu_path_under_test(), s) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 0 W_proj element 5 is -70000"));
}

TEST_CASE("an FP16 session refuses a reverse weight beyond binary16's range, naming the reverse "
          "direction", "[precision][errors]") {
  const slstm_layer_config layer =
      t::with_direction(t::lstm_layer(3), SLSTM_DIRECTION_BIDIRECTIONAL);
  t::Model m = canonical_stack(layer, 4, 2, 70000.0f);  // the reverse set's W_h
  t::Session s;
  CHECK(make_session(m.get(), SLSTM_PRECISION_FP16, t::cpu_path_under_test(), s) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 0 (reverse) W_h element 2"));
}
