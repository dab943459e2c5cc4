// dynamic_rnn's contract: lengths, T = 0, streaming, layouts, optional outputs, determinism.
#include <algorithm>

#include <cmath>

#include "support.hpp"

namespace {

const std::vector<std::int64_t> kHidden = {7, 12, 5};
constexpr std::int64_t kD = 6;

// Input of `b` rows and `time` steps, batch-major.
std::vector<float> input(std::int64_t b, std::int64_t time, std::uint64_t seed) {
  return t::random_vector(static_cast<std::size_t>(b * time * kD), seed);
}

// Rows [row0, row0 + n) of a batch-major [B, T, W] array.
std::vector<float> rows(const std::vector<float>& a, std::int64_t T, std::int64_t W,
                        std::int64_t row0, std::int64_t n) {
  return std::vector<float>(a.begin() + row0 * T * W, a.begin() + (row0 + n) * T * W);
}

// Row b of every block of a packed state with `batch` rows, packed again for one row.
std::vector<float> state_row(const slstm_model* m, const std::vector<float>& s,
                             std::int64_t batch, std::int64_t b) {
  std::vector<float> out;
  std::size_t off = 0;
  for (std::int64_t h : kHidden) {
    for (int part = 0; part < 2; ++part) {
      const auto first = s.begin() + static_cast<std::ptrdiff_t>(off + b * h);
      out.insert(out.end(), first, first + h);
      off += static_cast<std::size_t>(batch * h);
    }
  }
  REQUIRE(out.size() == t::state_count(m, 1));
  return out;
}

}  // namespace

TEST_CASE("lengths {0, 1, T-1, T} in one batch: zero outputs past len, state frozen at len-1, "
          "len 0 keeps the initial state",
          "[semantics][lengths]") {
  constexpr std::int64_t B = 4, T = 6;
  t::Model m = t::random_model(kD, kHidden, 11);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 12);
  const auto init = t::random_vector(t::state_count(m.get(), B), 13);
  const std::vector<std::int32_t> lengths = {0, 1, T - 1, T};
  t::Call c = t::call_of(B, T, x);
  c.lengths = &lengths;
  c.initial_state = &init;
  const t::Run r = t::forward_ok(s.get(), m.get(), c);
  const std::int64_t H = kHidden.back();
  for (std::int64_t b = 0; b < B; ++b) {
    INFO("row " << b << ", length " << lengths[b]);
    // The row alone, run for exactly len_b steps, gives the same bits (outputs, final state).
    const auto x_b = rows(x, T, kD, b, 1);
    const auto init_b = state_row(m.get(), init, B, b);
    t::Call one;
    one.batch = 1;
    one.time = lengths[b];
    std::vector<float> x_trunc(x_b.begin(), x_b.begin() + lengths[b] * kD);
    one.input = &x_trunc;
    one.initial_state = &init_b;
    const t::Run alone = t::forward_ok(s.get(), m.get(), one);
    const auto final_b = state_row(m.get(), r.final_state, B, b);
    CHECK(t::bitwise_equal(final_b, alone.final_state));
    if (lengths[b] == 0) CHECK(final_b == init_b);  // exactly the initial state
    for (std::int64_t tt = 0; tt < T; ++tt) {
      for (std::int64_t u = 0; u < H; ++u) {
        const float got = r.output[(b * T + tt) * H + u];
        if (tt >= lengths[b]) {
          REQUIRE(got == 0.0f);
        } else {
          REQUIRE(t::bitwise_equal(&got, &alone.output[tt * H + u], 1));
        }
      }
    }
  }
}

TEST_CASE("T = 0 is legal: no output, final state equals the initial state", "[semantics]") {
  t::Model m = t::random_model(kD, kHidden, 21);
  t::Session s = t::session(m.get(), 3, 4);
  const auto init = t::random_vector(t::state_count(m.get(), 3), 22);
  t::Call c;
  c.batch = 3;
  c.time = 0;
  c.initial_state = &init;  // input stays NULL: allowed when time == 0
  const t::Run r = t::forward_ok(s.get(), m.get(), c);
  CHECK(r.output.empty());
  CHECK(r.final_state == init);
  c.initial_state = nullptr;
  const t::Run z = t::forward_ok(s.get(), m.get(), c);
  CHECK(z.final_state == std::vector<float>(z.final_state.size(), 0.0f));
}

TEST_CASE("T single steps carrying the state equal one forward of length T, bitwise",
          "[semantics][streaming]") {
  constexpr std::int64_t B = 3, T = 5;
  t::Model m = t::random_model(kD, kHidden, 31);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 32);
  t::Call c;
  c.batch = B;
  c.time = T;
  c.layout = SLSTM_TIME_MAJOR;  // time-major so that step t reads a contiguous slice
  c.input = &x;
  const t::Run whole = t::forward_ok(s.get(), m.get(), c);
  std::vector<float> state(t::state_count(m.get(), B), 0.0f);
  const std::int64_t H = kHidden.back();
  for (std::int64_t tt = 0; tt < T; ++tt) {
    std::vector<float> out = t::poisoned(B * H);
    REQUIRE(slstm_session_step(s.get(), B, x.data() + tt * B * kD, B * kD, state.data(),
                               state.size(), out.data(), out.size(), state.data(),
                               state.size()) == SLSTM_OK);
    const std::vector<float> want(whole.output.begin() + tt * B * H,
                                  whole.output.begin() + (tt + 1) * B * H);
    CHECK(t::bitwise_equal(out, want));
  }
  CHECK(t::bitwise_equal(state, whole.final_state));
}

TEST_CASE("two chunks carrying the state equal one forward, bitwise", "[semantics][streaming]") {
  constexpr std::int64_t B = 2, T = 7, T1 = 3;
  t::Model m = t::random_model(kD, kHidden, 41);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 42);  // time-major [T, B, D]: chunks are contiguous
  const auto init = t::random_vector(t::state_count(m.get(), B), 43);
  t::Call c = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
  c.initial_state = &init;
  const t::Run whole = t::forward_ok(s.get(), m.get(), c);
  const std::vector<float> x1(x.begin(), x.begin() + T1 * B * kD), x2(x.begin() + T1 * B * kD, x.end());
  c.time = T1;
  c.input = &x1;
  const t::Run first = t::forward_ok(s.get(), m.get(), c);
  c.time = T - T1;
  c.input = &x2;
  c.initial_state = &first.final_state;
  const t::Run second = t::forward_ok(s.get(), m.get(), c);
  std::vector<float> joined = first.output;
  joined.insert(joined.end(), second.output.begin(), second.output.end());
  CHECK(t::bitwise_equal(joined, whole.output));
  CHECK(t::bitwise_equal(second.final_state, whole.final_state));
}

TEST_CASE("two runs with the same inputs are bitwise identical", "[semantics][determinism]") {
  constexpr std::int64_t B = 5, T = 8;
  t::Model m = t::random_model(kD, kHidden, 51);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 52);
  const std::vector<std::int32_t> lengths = {8, 3, 0, 7, 1};
  t::Call c = t::call_of(B, T, x);
  c.lengths = &lengths;
  const t::Run a = t::forward_ok(s.get(), m.get(), c);
  const t::Run b = t::forward_ok(s.get(), m.get(), c);
  t::Session other = t::session(m.get(), B, T);  // a fresh session too
  const t::Run d = t::forward_ok(other.get(), m.get(), c);
  CHECK(a.output == b.output);
  CHECK(a.final_state == b.final_state);
  CHECK(a.output == d.output);
  CHECK(a.final_state == d.final_state);
}

TEST_CASE("time-major and batch-major give the same bits, transposed", "[semantics][layout]") {
  constexpr std::int64_t B = 3, T = 4;
  const std::int64_t H = kHidden.back();
  t::Model m = t::random_model(kD, kHidden, 61);
  t::Session s = t::session(m.get(), B, T);
  const auto x_bm = input(B, T, 62);
  std::vector<float> x_tm(x_bm.size());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t tt = 0; tt < T; ++tt)
      for (std::int64_t k = 0; k < kD; ++k) x_tm[(tt * B + b) * kD + k] = x_bm[(b * T + tt) * kD + k];
  const std::vector<std::int32_t> lengths = {2, 4, 0};
  t::Call c = t::call_of(B, T, x_bm);
  c.lengths = &lengths;
  const t::Run bm = t::forward_ok(s.get(), m.get(), c);
  c.layout = SLSTM_TIME_MAJOR;
  c.input = &x_tm;
  const t::Run tm = t::forward_ok(s.get(), m.get(), c);
  std::vector<float> tm_as_bm(tm.output.size());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t tt = 0; tt < T; ++tt)
      for (std::int64_t u = 0; u < H; ++u) tm_as_bm[(b * T + tt) * H + u] = tm.output[(tt * B + b) * H + u];
  CHECK(t::bitwise_equal(tm_as_bm, bm.output));
  CHECK(t::bitwise_equal(tm.final_state, bm.final_state));
}

TEST_CASE("outputs are optional: final state alone, or outputs alone", "[semantics]") {
  constexpr std::int64_t B = 2, T = 3;
  t::Model m = t::random_model(kD, kHidden, 71);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 72);
  t::Call c = t::call_of(B, T, x);
  const t::Run both = t::forward_ok(s.get(), m.get(), c);
  c.want_output = false;
  const t::Run state_only = t::forward_ok(s.get(), m.get(), c);
  CHECK(state_only.final_state == both.final_state);
  c.want_output = true;
  c.want_final_state = false;
  const t::Run out_only = t::forward_ok(s.get(), m.get(), c);
  CHECK(out_only.output == both.output);
}

TEST_CASE("final_state may be the initial_state buffer, updated in place", "[semantics]") {
  constexpr std::int64_t B = 2, T = 4;
  t::Model m = t::random_model(kD, kHidden, 81);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 82);
  auto state = t::random_vector(t::state_count(m.get(), B), 83);
  t::Call c = t::call_of(B, T, x);
  c.initial_state = &state;
  const t::Run want = t::forward_ok(s.get(), m.get(), c);
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = B;
  a.time = T;
  a.input = x.data();
  a.input_count = x.size();
  a.initial_state = state.data();
  a.initial_state_count = state.size();
  a.final_state = state.data();
  a.final_state_count = state.size();
  REQUIRE(slstm_session_forward(s.get(), &a) == SLSTM_OK);
  CHECK(state == want.final_state);
}

TEST_CASE("an absent initial state means zeros", "[semantics]") {
  constexpr std::int64_t B = 2, T = 3;
  t::Model m = t::random_model(kD, kHidden, 91);
  t::Session s = t::session(m.get(), B, T);
  const auto x = input(B, T, 92);
  const std::vector<float> zeros(t::state_count(m.get(), B), 0.0f);
  t::Call c = t::call_of(B, T, x);
  const t::Run absent = t::forward_ok(s.get(), m.get(), c);
  c.initial_state = &zeros;
  const t::Run explicit_zeros = t::forward_ok(s.get(), m.get(), c);
  CHECK(absent.output == explicit_zeros.output);
  CHECK(absent.final_state == explicit_zeros.final_state);
}

TEST_CASE("a session serves any batch and time up to its maxima, smaller after larger",
          "[semantics]") {
  t::Model m = t::random_model(kD, kHidden, 101);
  t::Session s = t::session(m.get(), 6, 5);
  const auto x_small = input(2, 3, 102);
  t::Call c = t::call_of(2, 3, x_small);
  const t::Run before = t::forward_ok(s.get(), m.get(), c);
  const auto x_big = input(6, 5, 103);
  t::Call big = c;
  big.batch = 6;
  big.time = 5;
  big.input = &x_big;
  t::forward_ok(s.get(), m.get(), big);
  const t::Run after = t::forward_ok(s.get(), m.get(), c);
  CHECK(before.output == after.output);
  CHECK(before.final_state == after.final_state);
}

TEST_CASE("rows are independent: a row's bits do not depend on its batch neighbours",
          "[semantics]") {
  constexpr std::int64_t B = 4, T = 5;
  t::Model m = t::random_model(kD, kHidden, 111);
  t::Session s = t::session(m.get(), B, T);
  auto x = input(B, T, 112);
  t::Call c = t::call_of(B, T, x);
  const t::Run a = t::forward_ok(s.get(), m.get(), c);
  // Change every row but row 2.
  const auto other = input(B, T, 113);
  for (std::int64_t b = 0; b < B; ++b)
    if (b != 2)
      std::copy(other.begin() + b * T * kD, other.begin() + (b + 1) * T * kD, x.begin() + b * T * kD);
  const t::Run b2 = t::forward_ok(s.get(), m.get(), c);
  const std::int64_t H = kHidden.back();
  CHECK(t::bitwise_equal(rows(b2.output, T, H, 2, 1), rows(a.output, T, H, 2, 1)));
}

TEST_CASE("a row's bits do not depend on how many rows share its call or where they are cut",
          "[semantics]") {
  // The kernels take rows in blocks of up to 6, cut evenly (13 rows: 4, 4, 5), each block's
  // rows sharing every weight load; a row's chains must not notice its block.
  constexpr std::int64_t T = 5;
  t::Model m = t::random_model(kD, kHidden, 131);
  const auto x1 = input(1, T, 132);
  t::Session s1 = t::session(m.get(), 1, T);
  const t::Run alone = t::forward_ok(s1.get(), m.get(), t::call_of(1, T, x1));
  const std::int64_t H = kHidden.back();
  for (const std::int64_t B : {2, 7, 8, 13, 20}) {
    for (const std::int64_t at : {std::int64_t{0}, B / 2, B - 1}) {
      INFO("batch " << B << ", row " << at);
      auto x = input(B, T, 133 + static_cast<std::uint64_t>(B));
      std::copy(x1.begin(), x1.end(), x.begin() + at * T * kD);
      t::Session s = t::session(m.get(), B, T);
      const t::Run r = t::forward_ok(s.get(), m.get(), t::call_of(B, T, x));
      CHECK(t::bitwise_equal(rows(r.output, T, H, at, 1), alone.output));
    }
  }
}

TEST_CASE("a session keeps its model alive after the model handle is destroyed",
          "[semantics][ownership]") {
  t::Model m = t::random_model(kD, kHidden, 121);
  t::Session s = t::session(m.get(), 2, 2);
  const auto x = input(2, 2, 122);
  t::Call c = t::call_of(2, 2, x);
  const t::Run before = t::forward_ok(s.get(), m.get(), c);
  const std::size_t n_state = t::state_count(m.get(), 2);
  m.reset();  // the caller's reference is gone; the session's remains
  std::vector<float> out = t::poisoned(before.output.size()), fin = t::poisoned(n_state);
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = 2;
  a.time = 2;
  a.input = x.data();
  a.input_count = x.size();
  a.output = out.data();
  a.output_count = out.size();
  a.final_state = fin.data();
  a.final_state_count = fin.size();
  REQUIRE(slstm_session_forward(s.get(), &a) == SLSTM_OK);
  CHECK(out == before.output);
  CHECK(fin == before.final_state);
}
