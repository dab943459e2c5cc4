// The seed scenario: MultiRNNCell([BasicLSTMCell(n) for n in [100, 200, 300]]), batch 10,
// input depth 128 — through dynamic_rnn and through a single MultiRNNCell call.
#include "support.hpp"

namespace {
const std::vector<std::int64_t> kSeedHidden = {100, 200, 300};
constexpr std::int64_t kB = 10, kD = 128, kT = 9;
}  // namespace

TEST_CASE("seed scenario: every shape is what TensorFlow reports", "[seed]") {
  t::Model m = t::random_model(kD, kSeedHidden, 1);
  std::int32_t layers = 0;
  REQUIRE(slstm_model_num_layers(m.get(), &layers) == SLSTM_OK);
  CHECK(layers == 3);
  std::size_t expect_offset = 0;
  for (std::int32_t l = 0; l < 3; ++l) {
    std::int64_t h = 0;
    REQUIRE(slstm_model_hidden_size(m.get(), l, &h) == SLSTM_OK);
    CHECK(h == kSeedHidden[l]);
    std::size_t c_off = 0, h_off = 0;
    REQUIRE(slstm_model_state_offset(m.get(), kB, l, SLSTM_STATE_C, &c_off) == SLSTM_OK);
    REQUIRE(slstm_model_state_offset(m.get(), kB, l, SLSTM_STATE_H, &h_off) == SLSTM_OK);
    CHECK(c_off == expect_offset);                             // states[l].c: (10, H_l)
    CHECK(h_off == expect_offset + static_cast<std::size_t>(kB * h));  // states[l].h: (10, H_l)
    expect_offset += static_cast<std::size_t>(2 * kB * h);
  }
  CHECK(t::state_count(m.get(), kB) == expect_offset);  // 2 * 10 * (100 + 200 + 300)
  t::Session s = t::session(m.get(), kB, kT);
  const auto x = t::random_vector(static_cast<std::size_t>(kB * kT * kD), 2);
  t::Call c = t::call_of(kB, kT, x);
  const t::Run r = t::forward_ok(s.get(), m.get(), c);
  CHECK(r.output.size() == static_cast<std::size_t>(kB * kT * 300));  // outputs: (10, T, 300)
  CHECK(t::count_poison(r.output) == 0);
  CHECK(t::count_poison(r.final_state) == 0);
}

TEST_CASE("seed scenario: final_state[-1].h == outputs[:, -1, :]", "[seed]") {
  t::Model m = t::random_model(kD, kSeedHidden, 3);
  t::Session s = t::session(m.get(), kB, kT);
  const auto x = t::random_vector(static_cast<std::size_t>(kB * kT * kD), 4);
  const auto init = t::random_vector(t::state_count(m.get(), kB), 5);
  t::Call c = t::call_of(kB, kT, x);
  c.initial_state = &init;
  const t::Run r = t::forward_ok(s.get(), m.get(), c);
  std::size_t h_off = 0;
  REQUIRE(slstm_model_state_offset(m.get(), kB, 2, SLSTM_STATE_H, &h_off) == SLSTM_OK);
  for (std::int64_t b = 0; b < kB; ++b) {
    for (std::int64_t u = 0; u < 300; ++u) {
      REQUIRE(r.final_state[h_off + b * 300 + u] == r.output[(b * kT + kT - 1) * 300 + u]);
    }
  }
}

TEST_CASE("seed scenario: one MultiRNNCell step returns h_last and the three new states",
          "[seed][step]") {
  t::Model m = t::random_model(kD, kSeedHidden, 6);
  t::Session s = t::session(m.get(), kB, 1);
  const auto x = t::random_vector(static_cast<std::size_t>(kB * kD), 7);
  const auto state = t::random_vector(t::state_count(m.get(), kB), 8);
  auto out = t::poisoned(kB * 300);
  auto next = t::poisoned(state.size());
  REQUIRE(slstm_session_step(s.get(), kB, x.data(), x.size(), state.data(), state.size(),
                             out.data(), out.size(), next.data(), next.size()) == SLSTM_OK);
  // The step equals a forward of length 1 from the same state.
  t::Call c = t::call_of(kB, 1, x);
  c.initial_state = &state;
  const t::Run r = t::forward_ok(s.get(), m.get(), c);
  CHECK(out == r.output);
  CHECK(next == r.final_state);
  std::size_t h_off = 0;
  REQUIRE(slstm_model_state_offset(m.get(), kB, 2, SLSTM_STATE_H, &h_off) == SLSTM_OK);
  CHECK(std::vector<float>(next.begin() + static_cast<std::ptrdiff_t>(h_off), next.end()) == out);
}
