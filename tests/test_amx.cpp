// cpu.amx (docs/precision.md "AMX"): a BF16 session of a BasicLSTMCell stack on the fast path
// runs its recurrent products on AMX's BF16 tiles where the CPU and the OS allow it.  Its
// numbers are BF16's (the written tolerance of FP32), its gate sums added up in the tiles'
// own order: not the FMA kernels' bits, but the same bits whatever the batch, the block a
// row falls in, the split, the threads or the calls a sequence is cut into.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#endif

#include "support.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

slstm_status make_session(const slstm_model* m, std::int32_t precision, const char* config,
                          std::int64_t B, std::int64_t T, t::Session& out,
                          std::int32_t threads = 0) {
  slstm_session_options o = t::options(B, T);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.precision = precision;
  o.config = config;
  o.num_threads = threads;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &s);
  out.reset(s);
  return st;
}

t::Session session_ok(const slstm_model* m, std::int32_t precision, const char* config,
                      std::int64_t B, std::int64_t T, std::int32_t threads = 0) {
  t::Session s;
  const slstm_status st = make_session(m, precision, config, B, T, s, threads);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return s;
}

std::string amx_of(const slstm_session* s) { return t::json_value(t::describe_json(s), "amx"); }

// Whether this machine runs the AMX tests: the fast path on this CPU's best kernels (not a
// run of the suite with a lesser kernel) and a BF16 session that takes AMX; WARNs otherwise.
bool amx_here() {
  if (!t::kernel_under_test().empty()) {
    WARN("the suite runs the " << t::kernel_under_test() << " kernels here: AMX not tested");
    return false;
  }
  t::Model m = t::random_model(3, {5}, 1);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=auto", 1, 1);
  const std::string amx = amx_of(s.get());
  if (amx.rfind("on", 0) != 0) {
    WARN("no AMX-BF16 for this process, the AMX tests are skipped: " << amx);
    return false;
  }
  return true;
}

// CPUID.(7,0):EDX bit 22, AMX-BF16 (the CPU's part; the OS must also allow it).
bool cpu_reports_amx_bf16() {
#if defined(__GNUC__) && defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0 && (edx & (1u << 22)) != 0;
#else
  return false;
#endif
}

// Lengths 0..T in turn: rows ending before, at and inside the sequence.
std::vector<std::int32_t> cycling_lengths(std::int64_t B, std::int64_t T) {
  std::vector<std::int32_t> l(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    l[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(b % (T + 1));
  }
  return l;
}

}  // namespace

TEST_CASE("cpu.amx takes auto, on or off, and a bad value is refused naming the key",
          "[precision][cpu-fast]") {
  t::Model m = t::random_model(3, {5}, 1);
  for (const char* ok : {"cpu.amx=auto", "cpu.amx=off"}) {
    t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, ok, 1, 1);
    CHECK_THAT(t::json_value(t::describe_json(s.get()), "cpu.amx"),
               StartsWith(std::string(ok).substr(8)));
  }
  t::Session s;
  CHECK(make_session(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=yes", 1, 1, s) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(s.get() == nullptr);
  CHECK_THAT(slstm_last_error(), Contains("cpu.amx must be auto, on or off"));
}

TEST_CASE("cpu.amx=on is refused, naming what is missing, where AMX cannot run the session",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  t::Model m = t::random_model(3, {5}, 1);
  struct Case {
    std::int32_t precision;
    const char* config;
    const char* says;
  };
  const Case cases[] = {
      {SLSTM_PRECISION_FP32, "cpu.amx=on", "needs a BF16 session (this one is fp32)"},
      {SLSTM_PRECISION_FP16, "cpu.amx=on", "needs a BF16 session (this one is fp16)"},
      {SLSTM_PRECISION_BF16, "cpu.amx=on;cpu.kernel=portable", "the AVX-512 kernels"},
      {SLSTM_PRECISION_BF16, "cpu.amx=on;cpu.wh16=off", "cpu.wh16=off"},
  };
  for (const Case& c : cases) {
    INFO(c.config << ", precision " << c.precision);
    t::Session s;
    CHECK(make_session(m.get(), c.precision, c.config, 1, 1, s) == SLSTM_ERR_UNSUPPORTED);
    CHECK(s.get() == nullptr);
    CHECK_THAT(slstm_last_error(), Contains("cpu.amx=on") && Contains(c.says));
  }
  // A BF16 session on a CPU or OS without AMX-BF16: refused saying so.
  t::Session auto_s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=auto", 1, 1);
  const std::string amx = amx_of(auto_s.get());
  t::Session on;
  const slstm_status st = make_session(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", 1, 1, on);
  if (amx.rfind("on", 0) == 0) {
    CHECK(st == SLSTM_OK);
    CHECK_THAT(amx_of(on.get()), StartsWith("on (cpu.amx=on)"));
  } else {
    INFO(amx);
    CHECK(st == SLSTM_ERR_UNSUPPORTED);
    CHECK(on.get() == nullptr);
    CHECK_THAT(amx, StartsWith("off (cpu.amx=auto): it needs"));
  }
}

TEST_CASE("cpu.amx=auto takes AMX only for BF16 sessions, and never without AMX-BF16 in CPUID",
          "[precision][cpu-fast]") {
  t::use_cpu_kernel_under_test();
  t::Model m = t::random_model(3, {5}, 1);
  t::Session fp32 = session_ok(m.get(), SLSTM_PRECISION_FP32, nullptr, 1, 1);
  CHECK_THAT(amx_of(fp32.get()), StartsWith("off (cpu.amx=auto): it needs a BF16 session"));
  t::Session fp16 = session_ok(m.get(), SLSTM_PRECISION_FP16, nullptr, 1, 1);
  CHECK_THAT(amx_of(fp16.get()), StartsWith("off (cpu.amx=auto)"));
  t::Session off = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=off", 1, 1);
  CHECK_THAT(amx_of(off.get()), StartsWith("off (cpu.amx=off)"));
  CHECK_THAT(t::json_value(t::describe_json(off.get()), "operands"),
             !Contains("AMX tiles"));
  t::Session bf16 = session_ok(m.get(), SLSTM_PRECISION_BF16, nullptr, 1, 1);
  const std::string amx = amx_of(bf16.get());
  INFO(amx);
  if (!cpu_reports_amx_bf16()) CHECK_THAT(amx, StartsWith("off"));
  if (amx.rfind("on", 0) == 0) {
    CHECK_THAT(t::json_value(t::describe_json(bf16.get()), "operands"),
               Contains("W_h stored in 16 bits as AMX tiles"));
  }
}

TEST_CASE("on AMX, a BF16 session is within the written tolerance and near the FMA kernels",
          "[precision][cpu-fast][accuracy]") {
  if (!amx_here()) return;
  // K crossing the 32-k tiles (H = 31, 32, 33, 65, 1), a wider layer above a narrower one and
  // below it (the h codes' padding), lengths 0..T, an initial state, both layouts.
  const std::int64_t D = 7, B = 5, T = 6;
  for (const std::vector<std::int64_t>& hidden :
       std::vector<std::vector<std::int64_t>>{{31, 65, 33}, {32, 1}, {65, 20}}) {
    t::Model m = t::random_model(D, hidden, 7);
    const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 3);
    const std::vector<std::int32_t> lengths = cycling_lengths(B, T);
    const std::vector<float> h0 = t::random_vector(t::state_count(m.get(), B), 4, -0.5f, 0.5f);
    std::int64_t widest = 0;
    for (std::int64_t h : hidden) widest = std::max(widest, h);
    const double tol =  // docs/precision.md "Accuracy", K = I + H <= 2 x the widest
        std::ldexp(1.0, -8) * (1.0 + std::sqrt(static_cast<double>(2 * widest)) / 4.0);
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      INFO("stack of " << hidden.size() << " layers, first " << hidden[0] << ", layout "
                       << layout);
      t::Call c = t::call_of(B, T, x, layout);
      c.lengths = &lengths;
      c.initial_state = &h0;
      t::Session fp32 = session_ok(m.get(), SLSTM_PRECISION_FP32, nullptr, B, T);
      t::Session amx = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T);
      t::Session fma = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=off", B, T);
      const t::Run want = t::forward_ok(fp32.get(), m.get(), c);
      const t::Run got = t::forward_ok(amx.get(), m.get(), c);
      const t::Run twin = t::forward_ok(fma.get(), m.get(), c);
      CHECK(t::count_poison(got.output) == 0);
      const double err = std::max(t::max_abs_diff(got.output, want.output),
                                  t::max_abs_diff(got.final_state, want.final_state));
      const double fma_err = t::max_abs_diff(twin.output, want.output);
      const double apart = std::max(t::max_abs_diff(got.output, twin.output),
                                    t::max_abs_diff(got.final_state, twin.final_state));
      INFO("error " << err << " (tolerance " << tol << "), the FMA kernels' " << fma_err
                    << ", AMX - FMA " << apart);
      CHECK(err <= tol);
      CHECK(err > 0.0);              // BF16's numbers, not FP32's
      CHECK(apart <= fma_err / 8);  // float32 sums apart, not another rounding of operands
      // Rows past their length: outputs 0 (row 0 has length 0).
      const std::int64_t H = hidden.back();
      for (std::int64_t t = 0; t < T; ++t) {
        const std::int64_t row = layout == SLSTM_BATCH_MAJOR ? t : t * B;
        for (std::int64_t u = 0; u < H; ++u) CHECK(got.output[row * H + u] == 0.0f);
      }
    }
  }
}

TEST_CASE("on AMX, a row's numbers do not depend on its batch, block, threads or a rerun",
          "[precision][cpu-fast]") {
  if (!amx_here()) return;
  // B = 35: blocks of 32 (two tiles of 16 rows) and 3 rows on one thread, 17 and 18 rows
  // per worker in the batch split (tiles of 16 + 1, 16 + 2); the projection's 350 rows end
  // in tiles of 16 + 14; each row against itself alone (B = 1).
  const std::int64_t D = 9, B = 35, T = 10;
  t::Model m = t::random_model(D, {20, 65, 33}, 12);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 13);
  const std::vector<std::int32_t> lengths = cycling_lengths(B, T);
  t::Call c = t::call_of(B, T, x);
  c.lengths = &lengths;
  t::Session one = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T, 1);
  t::Session two = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T, 2);
  const t::Run a = t::forward_ok(one.get(), m.get(), c);
  const t::Run b = t::forward_ok(two.get(), m.get(), c);
  const t::Run again = t::forward_ok(two.get(), m.get(), c);
  CHECK(t::count_poison(a.output) == 0);
  CHECK(t::bitwise_equal(a.output, b.output));
  CHECK(t::bitwise_equal(a.final_state, b.final_state));
  CHECK(t::bitwise_equal(b.output, again.output));
  const std::int64_t H = 33;
  for (const std::int64_t row : {std::int64_t{0}, std::int64_t{7}, std::int64_t{16},
                                 std::int64_t{17}, std::int64_t{34}}) {
    INFO("row " << row << ", length " << lengths[static_cast<std::size_t>(row)]);
    const std::vector<float> x1(x.begin() + row * T * D, x.begin() + (row + 1) * T * D);
    const std::vector<std::int32_t> l1 = {lengths[static_cast<std::size_t>(row)]};
    t::Call c1 = t::call_of(1, T, x1);
    c1.lengths = &l1;
    const t::Run alone = t::forward_ok(one.get(), m.get(), c1);
    CHECK(t::bitwise_equal(alone.output.data(), a.output.data() + row * T * H,
                           static_cast<std::size_t>(T * H)));
  }
}

TEST_CASE("on AMX, whole calls, calls in chunks and single steps give the same bits",
          "[precision][cpu-fast][streaming]") {
  if (!amx_here()) return;
  const std::int64_t D = 5, B = 17, T = 9;
  t::Model m = t::random_model(D, {33, 8}, 4);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 2);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T);
  const t::Call whole_call = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
  const t::Run whole = t::forward_ok(s.get(), m.get(), whole_call);
  // Chunks of 4 and 5 steps, the second from the first's state.
  const auto cut = x.begin() + 4 * B * D;
  const std::vector<float> x1(x.begin(), cut), x2(cut, x.end());
  const t::Run a = t::forward_ok(s.get(), m.get(), t::call_of(B, 4, x1, SLSTM_TIME_MAJOR));
  t::Call c2 = t::call_of(B, T - 4, x2, SLSTM_TIME_MAJOR);
  c2.initial_state = &a.final_state;
  const t::Run b = t::forward_ok(s.get(), m.get(), c2);
  std::vector<float> joined = a.output;
  joined.insert(joined.end(), b.output.begin(), b.output.end());
  CHECK(t::bitwise_equal(joined, whole.output));
  CHECK(t::bitwise_equal(b.final_state, whole.final_state));
  // slstm_session_step frame by frame.
  std::vector<float> state(t::state_count(m.get(), B), 0.0f), out(static_cast<std::size_t>(B * 8));
  for (std::int64_t t = 0; t < T; ++t) {
    INFO("step " << t);
    REQUIRE(slstm_session_step(s.get(), B, x.data() + t * B * D,
                               static_cast<std::size_t>(B * D), state.data(), state.size(),
                               out.data(), out.size(), state.data(), state.size()) == SLSTM_OK);
    CHECK(t::bitwise_equal(out.data(), whole.output.data() + t * B * 8,
                           static_cast<std::size_t>(B * 8)));
  }
  CHECK(t::bitwise_equal(state, whole.final_state));
}

TEST_CASE("on AMX, a call from the zero state gives the bits of one from explicit zeros",
          "[precision][cpu-fast]") {
  // Without initial_state the first step leaves the tiles alone (StepArgs::h_zero): its
  // sums are +0, as the tiles' products of h = 0 would be.  One block of rows (B = 1, 5),
  // two tiles of 16 (B = 17, 32), more blocks (B = 35), a partial group (H = 37, 5), rows
  // of length 0, T = 1 and T > 1, one and two threads (the unit and the batch split).
  if (!amx_here()) return;
  const std::int64_t D = 11;
  t::Model m = t::random_model(D, {37, 16, 5}, 71);
  for (const std::int32_t threads : {1, 2}) {
    for (const std::int64_t B : {1, 5, 17, 32, 35}) {
      for (const std::int64_t T : {1, 9}) {
        INFO(threads << " threads, B = " << B << ", T = " << T);
        t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T, threads);
        const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 72);
        const std::vector<std::int32_t> lengths = cycling_lengths(B, T);
        t::Call absent = t::call_of(B, T, x);
        absent.lengths = &lengths;
        // First a call from a state, which leaves its sums in the workers' scratch.
        const std::vector<float> s0 = t::random_vector(t::state_count(m.get(), B), 73);
        t::Call from_state = absent;
        from_state.initial_state = &s0;
        t::forward_ok(s.get(), m.get(), from_state);
        t::check_zero_state_bits(s.get(), m.get(), absent);
      }
    }
  }
}

TEST_CASE("on AMX, a row of NaN inputs leaves the other rows' numbers as they are alone",
          "[precision][cpu-fast]") {
  if (!amx_here()) return;
  // Layer 0 (H = 65) writes its h codes 96 to a row, layer 1 (H = 33) reads 64 to a row from
  // the same buffer: row 1's NaNs of layer 0 lie where row 2's padding of layer 1 is, which
  // the tiles read (times zero weights): it must hold zeros.
  const std::int64_t D = 4, B = 3, T = 3;
  t::Model m = t::random_model(D, {65, 33}, 21);
  std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 22);
  for (std::int64_t i = T * D; i < 2 * T * D; ++i) x[static_cast<std::size_t>(i)] = NAN;
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T, 1);
  const t::Run all = t::forward_ok(s.get(), m.get(), t::call_of(B, T, x));
  const std::int64_t H = 33;
  for (const std::int64_t row : {std::int64_t{0}, std::int64_t{2}}) {
    INFO("row " << row);
    const std::vector<float> x1(x.begin() + row * T * D, x.begin() + (row + 1) * T * D);
    const t::Run alone = t::forward_ok(s.get(), m.get(), t::call_of(1, T, x1));
    CHECK(t::bitwise_equal(alone.output.data(), all.output.data() + row * T * H,
                           static_cast<std::size_t>(T * H)));
  }
  CHECK(std::isnan(all.output[static_cast<std::size_t>(T * H)]));  // row 1 itself: NaN
}

// The generic path (stacks beyond BasicLSTMCell: docs/cells.md): AMX as on the fused path.

TEST_CASE("cpu.amx=auto puts a GRU, LSTMP or bidirectional BF16 stack on AMX where it can",
          "[precision][cpu-fast]") {
  slstm_layer_config lstmp = t::lstm_layer(12);
  lstmp.proj_size = 5;
  const slstm_layer_config bidi =
      t::with_direction(t::lstm_layer(7), SLSTM_DIRECTION_BIDIRECTIONAL);
  t::Model m = t::random_stack(6, {t::gru_layer(20, true), lstmp, bidi}, 3);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=auto", 2, 2);
  t::Session fp32 = session_ok(m.get(), SLSTM_PRECISION_FP32, "cpu.amx=auto", 2, 2);
  CHECK_THAT(amx_of(fp32.get()), StartsWith("off (cpu.amx=auto): it needs a BF16 session"));
  if (amx_here()) {
    CHECK_THAT(amx_of(s.get()), StartsWith("on (cpu.amx=auto)"));
    CHECK_THAT(t::json_value(t::describe_json(s.get()), "operands"), Contains("AMX tiles"));
  } else {
    CHECK_THAT(amx_of(s.get()), StartsWith("off (cpu.amx=auto): it needs"));
    CHECK_THAT(t::json_value(t::describe_json(s.get()), "operands"), !Contains("AMX tiles"));
  }
}

TEST_CASE("on AMX, every kind of layer is within the written tolerance",
          "[precision][cpu-fast][accuracy]") {
  if (!amx_here()) return;
  // Every layer kind of the zoo, then a wide GRU / LSTMP stack whose K crosses the 32-k tiles
  // and whose gate rows end in partial 32-column blocks (75 x 3, 33 x 4, projection 20).
  slstm_layer_config lstmp = t::lstm_layer(33);
  lstmp.peepholes = 1;
  lstmp.cell_clip = 2.0f;
  lstmp.proj_size = 20;
  lstmp.proj_clip = 0.5f;
  std::vector<std::vector<slstm_layer_config>> stacks = t::layer_zoo();
  stacks.push_back({t::gru_layer(75, false), lstmp, t::gru_layer(40, true)});
  const std::int64_t D = 7, B = 5, T = 6;
  for (std::size_t i = 0; i < stacks.size(); ++i) {
    INFO("stack " << i);
    t::Model m = t::random_stack(D, stacks[i], 30 + i);
    const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 31);
    const std::vector<std::int32_t> lengths = cycling_lengths(B, T);
    t::Call c = t::call_of(B, T, x);
    c.lengths = &lengths;
    t::Session fp32 = session_ok(m.get(), SLSTM_PRECISION_FP32, nullptr, B, T);
    t::Session amx = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T);
    t::Session fma = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=off", B, T);
    CHECK_THAT(amx_of(amx.get()), StartsWith("on (cpu.amx=on)"));
    const t::Run want = t::forward_ok(fp32.get(), m.get(), c);
    const t::Run got = t::forward_ok(amx.get(), m.get(), c);
    const t::Run twin = t::forward_ok(fma.get(), m.get(), c);
    CHECK(t::count_poison(got.output) == 0);
    const double tol = std::ldexp(1.0, -8) * (1.0 + std::sqrt(2.0 * 75.0) / 4.0);
    const double err = std::max(t::max_abs_diff(got.output, want.output),
                                t::max_abs_diff(got.final_state, want.final_state));
    const double fma_err = std::max(t::max_abs_diff(twin.output, want.output),
                                    t::max_abs_diff(twin.final_state, want.final_state));
    const double apart = std::max(t::max_abs_diff(got.output, twin.output),
                                  t::max_abs_diff(got.final_state, twin.final_state));
    INFO("error " << err << " (tolerance " << tol << "), the FMAs' " << fma_err
                  << ", AMX - FMA " << apart);
    CHECK(err <= tol);
    CHECK(err > 0.0);
    CHECK(apart <= fma_err / 2);  // float32 sums apart, not another rounding of operands
  }
}

TEST_CASE("on AMX, a generic stack's rows do not depend on batch, team or call",
          "[precision][cpu-fast][streaming]") {
  if (!amx_here()) return;
  // B = 35 (tiles of 16 + 16 + 3 rows; the projection's chunk crosses blocks of 32) on one
  // thread and on two; rows alone on a team of two (cpu.team=always: a call of 1 row runs
  // as a team, each GEMM cut by columns); the sequence as single steps.
  slstm_layer_config lstmp = t::lstm_layer(70);
  lstmp.peepholes = 1;
  lstmp.proj_size = 33;
  const std::int64_t D = 9, B = 35, T = 8;
  t::Model m = t::random_stack(D, {t::gru_layer(65, false), lstmp, t::gru_layer(20, true)}, 40);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 41);
  const t::Call c = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
  t::Session one = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T, 1);
  t::Session two = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", B, T, 2);
  t::Session team =
      session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on;cpu.team=always", B, T, 2);
  const t::Run a = t::forward_ok(one.get(), m.get(), c);
  CHECK(t::count_poison(a.output) == 0);
  for (slstm_session* s : {two.get(), team.get(), one.get()}) {
    const t::Run b = t::forward_ok(s, m.get(), c);
    CHECK(t::bitwise_equal(a.output, b.output));
    CHECK(t::bitwise_equal(a.final_state, b.final_state));
  }
  const std::int64_t W = t::output_size(m.get());
  for (const std::int64_t row : {std::int64_t{0}, std::int64_t{16}, std::int64_t{34}}) {
    INFO("row " << row);
    std::vector<float> x1(static_cast<std::size_t>(T * D));
    for (std::int64_t t = 0; t < T; ++t) {
      std::copy(x.begin() + (t * B + row) * D, x.begin() + (t * B + row + 1) * D,
                x1.begin() + t * D);
    }
    const t::Run alone = t::forward_ok(team.get(), m.get(), t::call_of(1, T, x1));
    for (std::int64_t t = 0; t < T; ++t) {
      CHECK(t::bitwise_equal(alone.output.data() + t * W, a.output.data() + (t * B + row) * W,
                             static_cast<std::size_t>(W)));
    }
  }
  std::vector<float> state(t::state_count(m.get(), B), 0.0f), out(static_cast<std::size_t>(B * W));
  for (std::int64_t t = 0; t < T; ++t) {
    INFO("step " << t);
    REQUIRE(slstm_session_step(one.get(), B, x.data() + t * B * D,
                               static_cast<std::size_t>(B * D), state.data(), state.size(),
                               out.data(), out.size(), state.data(), state.size()) == SLSTM_OK);
    CHECK(t::bitwise_equal(out.data(), a.output.data() + t * B * W,
                           static_cast<std::size_t>(B * W)));
  }
  CHECK(t::bitwise_equal(state, a.final_state));
}

TEST_CASE("on AMX, cpu.workspace_mib auto keeps windows of at least 16 MiB",
          "[precision][cpu-fast]") {
  if (!amx_here()) return;
  // max_batch 6 x max_time 5000 rows of H = 40, one worker: twice its L2 would cut the call
  // into windows of a few MiB; on AMX the windows hold 16 MiB.  A row of the window: 3 groups
  // of 64 gate sums, two floats of inner outputs (no inner layer: one each), the staging
  // rows' 16 inputs and 40 outputs (AMX rounds no input rows of its own).
  t::Model m = t::random_model(16, {40}, 104);
  t::Session s = session_ok(m.get(), SLSTM_PRECISION_BF16, "cpu.amx=on", 6, 5000, 1);
  const std::string window = t::json_value(t::describe_json(s.get()), "window");
  INFO(window);
  const std::string more = "calls of more than ";
  REQUIRE(window.rfind(more, 0) == 0);
  CHECK_THAT(window, Contains("auto: 16 MiB (AMX tiles"));
  const std::int64_t row_bytes = (3 * 64 + 2 + 16 + 40) * 4, budget = std::int64_t{16} << 20;
  const std::int64_t steps = std::stoll(window.substr(more.size()));
  CHECK(steps * 6 * row_bytes <= budget);
  CHECK((steps + 1) * 6 * row_bytes > budget);
}
