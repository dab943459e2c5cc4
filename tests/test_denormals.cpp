// Denormals on the fast path (src/cpu/thread_pool.hpp FlushDenormals): every thread that
// works on a call flushes them to zero (FTZ and DAZ), as TensorFlow's CPU kernels do
// (tensorflow/core/platform/denormal.h, set by its thread pools and executors); the
// reference path keeps IEEE denormals. README "Accuracy". (The sessions here ask for the fast
// path, whose kernel the run names: .ci/reliability.sh runs [cpu-fast] on every path.)
#include <cstdint>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "support.hpp"

namespace {

// A one-unit LSTM over two inputs whose every gate row of W_x is [w, 0] and of W_h [u]; no
// bias, forget_bias 1.
t::Model one_unit(float w, float u) {
  return t::canonical_model(2, 1, {w, 0.0f, w, 0.0f, w, 0.0f, w, 0.0f},
                            std::vector<float>(4, u), std::vector<float>(4, 0.0f));
}

t::Run one_step(const slstm_model* m, slstm_cpu_path path, const std::vector<float>& x,
                const std::vector<float>& state) {
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = path;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m, &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  t::Call c = t::call_of(1, 1, x);
  c.initial_state = &state;
  return t::forward_ok(s.get(), m, c);
}

constexpr float kDenormal = 1e-39f;  // below FLT_MIN (1.18e-38)

}  // namespace

TEST_CASE("the fast path counts a denormal input or state as zero, as TensorFlow's kernels do",
          "[cpu-fast]") {
  // 1e38 x 1e-39 = 0.1: only the denormal operand, counted as zero, makes the fast path's
  // z = 0 (c = h = 0); the reference's IEEE arithmetic gives z = 0.1.
  t::Model from_x = one_unit(1e38f, 0.0f);
  t::Model from_h = one_unit(0.0f, 1e38f);
  const std::vector<float> zero_state = {0.0f, 0.0f}, denormal_h = {0.0f, kDenormal};
  const std::vector<float> x = {kDenormal, 0.0f}, no_x = {0.0f, 0.0f};
  struct Case {
    const char* what;
    const slstm_model* m;
    const std::vector<float>& x;
    const std::vector<float>& state;
  };
  for (const Case& k : {Case{"x", from_x.get(), x, zero_state},
                        Case{"h", from_h.get(), no_x, denormal_h}}) {
    INFO("denormal " << k.what);
    const t::Run fast = one_step(k.m, SLSTM_CPU_PATH_FAST, k.x, k.state);
    CHECK(fast.output == std::vector<float>{0.0f});
    CHECK(fast.final_state == std::vector<float>{0.0f, 0.0f});
    const t::Run ref = one_step(k.m, SLSTM_CPU_PATH_REFERENCE, k.x, k.state);
    CHECK(ref.output[0] > 0.02f);  // sigma(0.1) tanh(sigma(0.1) tanh(0.1)) = 0.027
  }
}

#if defined(__x86_64__) || defined(__i386__)
TEST_CASE("a fast-path call leaves the calling thread's floating-point mode as it found it",
          "[cpu-fast]") {
  t::Model m = t::random_model(5, {24, 40}, 8101);
  slstm_session_options o = t::options(3, 4);
  o.cpu_path = SLSTM_CPU_PATH_FAST;  // (also where the suite runs [cpu-fast] on the reference)
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  const std::vector<float> x = t::random_vector(3 * 4 * 5, 8102);
  const unsigned before = _mm_getcsr();
  t::forward_ok(s.get(), m.get(), t::call_of(3, 4, x));
  CHECK(_mm_getcsr() == before);
  _mm_setcsr(before | (1u << 15) | (1u << 6));  // a caller that flushes already: kept
  t::forward_ok(s.get(), m.get(), t::call_of(3, 4, x));
  CHECK(_mm_getcsr() == (before | (1u << 15) | (1u << 6)));
  _mm_setcsr(before);
}
#endif
