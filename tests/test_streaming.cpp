// Streaming is exact (issue 13, item 8): a sequence run in chunks that carry the state, or
// step by step, gives bitwise the outputs and final state of one call over the whole
// sequence, on every CPU path and kernel and for every thread count a session may have.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

constexpr std::int64_t kD = 13;

// Steps [t0, t1) of a [B, T, W] (batch-major) or [T, B, W] (time-major) array.
std::vector<float> steps(const std::vector<float>& a, std::int64_t B, std::int64_t T,
                         std::int64_t W, slstm_layout layout, std::int64_t t0, std::int64_t t1) {
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(B * (t1 - t0) * W));
  if (layout == SLSTM_TIME_MAJOR) {
    out.assign(a.begin() + t0 * B * W, a.begin() + t1 * B * W);
    return out;
  }
  for (std::int64_t b = 0; b < B; ++b) {
    out.insert(out.end(), a.begin() + (b * T + t0) * W, a.begin() + (b * T + t1) * W);
  }
  return out;
}

// Writes `part` (steps [t0, t1)) into its place in the whole [B, T, W] / [T, B, W] array.
void put_steps(std::vector<float>& a, const std::vector<float>& part, std::int64_t B,
               std::int64_t T, std::int64_t W, slstm_layout layout, std::int64_t t0,
               std::int64_t t1) {
  const std::int64_t n = t1 - t0;
  if (layout == SLSTM_TIME_MAJOR) {
    std::copy(part.begin(), part.end(), a.begin() + t0 * B * W);
    return;
  }
  for (std::int64_t b = 0; b < B; ++b) {
    std::copy(part.begin() + b * n * W, part.begin() + (b + 1) * n * W,
              a.begin() + (b * T + t0) * W);
  }
}

// Chunk lengths that cover T: a first step alone, a last step alone, halves, ragged splits,
// and T single steps (for longer sequences slstm_session_step covers those, below).
std::vector<std::vector<std::int64_t>> splits_of(std::int64_t T) {
  std::vector<std::vector<std::int64_t>> s;
  if (T >= 2) s.push_back({1, T - 1});
  if (T >= 2) s.push_back({T - 1, 1});
  if (T >= 4) s.push_back({T / 2, T - T / 2});
  if (T >= 7) s.push_back({2, 3, T - 5});
  if (T >= 12) s.push_back({T - 9, 8, 1});
  if (T <= 12) s.push_back(std::vector<std::int64_t>(static_cast<std::size_t>(T), 1));
  return s;
}

t::Session session_with_threads(const slstm_model* model, std::int64_t B, std::int64_t T,
                                std::int32_t threads) {
  slstm_session_options o = t::options(B, T);
  o.num_threads = threads;
  slstm_session* s = nullptr;
  INFO(slstm_last_error());
  REQUIRE(slstm_session_create(model, &o, &s) == SLSTM_OK);
  return t::Session(s);
}

// Thread counts to try: the fast path's pool takes them (capped at its widest layer's 16-unit
// groups); the reference ignores them.
std::vector<std::int32_t> thread_counts() {
  if (t::cpu_path_under_test() == SLSTM_CPU_PATH_REFERENCE) return {1};
  return {1, 2, 3};
}

// Runs `x` once whole and in every split of splits_of(T), on a session of `threads` workers;
// each split's joined outputs and final state must equal the whole call's bit for bit.
void check_chunks_equal_one_call(const slstm_model* m, std::int64_t B, std::int64_t T,
                                 slstm_layout layout, bool with_lengths, std::int32_t threads) {
  const std::int64_t H = t::output_size(m);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * kD),
                                                static_cast<std::uint64_t>(100 * B + T));
  const std::vector<float> s0 = t::random_vector(t::state_count(m, B), 7, -0.5f, 0.5f);
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    lengths[static_cast<std::size_t>(b)] =
        static_cast<std::int32_t>(b % 3 == 1 ? (b * 5) % (T + 1) : T);
  }
  t::Session s = session_with_threads(m, B, T, threads);
  t::Call whole_call = t::call_of(B, T, x, layout);
  whole_call.initial_state = &s0;
  if (with_lengths) whole_call.lengths = &lengths;
  const t::Run whole = t::forward_ok(s.get(), m, whole_call);
  for (const std::vector<std::int64_t>& split : splits_of(T)) {
    std::string name;
    for (std::int64_t n : split) name += std::to_string(n) + " ";
    INFO("chunks " << name);
    std::vector<float> joined(whole.output.size(), 0.0f);
    std::vector<float> state = s0;
    std::int64_t t0 = 0;
    for (std::int64_t n : split) {
      const std::vector<float> xc = steps(x, B, T, kD, layout, t0, t0 + n);
      std::vector<std::int32_t> lc(static_cast<std::size_t>(B));
      for (std::int64_t b = 0; b < B; ++b) {
        const std::int64_t left = lengths[static_cast<std::size_t>(b)] - t0;
        lc[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(std::clamp<std::int64_t>(left, 0, n));
      }
      t::Call c = t::call_of(B, n, xc, layout);
      c.initial_state = &state;
      if (with_lengths) c.lengths = &lc;
      const t::Run part = t::forward_ok(s.get(), m, c);
      put_steps(joined, part.output, B, T, H, layout, t0, t0 + n);
      state = part.final_state;
      t0 += n;
    }
    CHECK(t::bitwise_equal(joined, whole.output));
    CHECK(t::bitwise_equal(state, whole.final_state));
  }
  if (!with_lengths && layout == SLSTM_TIME_MAJOR) {
    // slstm_session_step, T times.
    std::vector<float> state = s0;
    std::vector<float> joined;
    for (std::int64_t tt = 0; tt < T; ++tt) {
      std::vector<float> out = t::poisoned(static_cast<std::size_t>(B * H));
      REQUIRE(slstm_session_step(s.get(), B, x.data() + tt * B * kD,
                                 static_cast<std::size_t>(B * kD), state.data(), state.size(),
                                 out.data(), out.size(), state.data(), state.size()) == SLSTM_OK);
      joined.insert(joined.end(), out.begin(), out.end());
    }
    INFO("slstm_session_step x " << T);
    CHECK(t::bitwise_equal(joined, whole.output));
    CHECK(t::bitwise_equal(state, whole.final_state));
  }
}

}  // namespace

TEST_CASE("a sequence run in chunks carrying the state is bitwise equal to one call",
          "[semantics][streaming]") {
  // Three layers, 2 / 3 / 2 groups of 16 units (the last ones partial): batch 10 with 2
  // workers takes the batch split from T = 8 on, the unit split below; B = 1 and 3 the
  // blocked GEMV.
  t::Model m = t::random_model(kD, {20, 33, 17}, 5);
  for (std::int64_t B : {1, 3, 10}) {
    for (std::int64_t T : {1, 2, 7, 9, 40}) {
      for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
        for (bool with_lengths : {false, true}) {
          for (std::int32_t threads : thread_counts()) {
            // Several workers: batch-major without lengths and time-major with them (each
            // multi-threaded call waits for its workers, slow on a loaded machine).
            if (threads > 1 && with_lengths != (layout == SLSTM_TIME_MAJOR)) continue;
            INFO("B " << B << ", T " << T << ", "
                      << (layout == SLSTM_TIME_MAJOR ? "time-major" : "batch-major")
                      << (with_lengths ? ", with lengths" : "") << ", num_threads " << threads);
            check_chunks_equal_one_call(m.get(), B, T, layout, with_lengths, threads);
          }
        }
      }
    }
  }
}
