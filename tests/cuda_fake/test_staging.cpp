// cuda.staging=on on the FAKE CUDA runtime (tests/cuda_fake): what it is for, in the one
// measure a host emulation can take of latency -- how often a call makes the host wait for
// the device (cuda_fake::host_waits: synchronisations, and copies from or to pageable
// memory, which the driver stages and which may block). A call with host buffers that fit
// the session's pinned buffer waits once, at its end; without it, once per copy as well.
// (Its numbers, the GPU suite's [staging] cases, on the fake and on a GPU.)
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "../support.hpp"
#include "fake_device.hpp"
#include "stacklstm/stacklstm.h"

namespace {

constexpr std::int64_t kB = 3, kT = 5, kD = 7;

// The host waits of one call of `call` on `s` (after a first one: graphs captured).
std::uint64_t waits_of_call(slstm_session* s, const slstm_model* m, const t::Call& call) {
  (void)t::forward_ok(s, m, call);
  const std::uint64_t before = cuda_fake::host_waits();
  (void)t::forward_ok(s, m, call);
  return cuda_fake::host_waits() - before;
}

}  // namespace

TEST_CASE("with cuda.staging=on a call with host buffers waits for the device once; without "
          "it, once per copy too",
          "[cuda-fake][staging]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 24001, 1.0f);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(kB * kT * kD), 24002);
  const std::vector<float> s0 = t::random_vector(t::state_count(m.get(), kB), 24003);
  t::Call call = t::call_of(kB, kT, x);
  call.initial_state = &s0;
  for (const char* config : {"", "cuda.persistent=on", "cuda.graphs=off"}) {
    INFO("settings \"" << config << "\"");
    const std::string staged_config = std::string(config) + ";cuda.staging=on";
    t::Session direct = t::cuda_session(m.get(), kB, kT, config);
    t::Session staged = t::cuda_session(m.get(), kB, kT, staged_config.c_str());
    REQUIRE((direct && staged));
    // Direct: the input, the initial state, the output and the final state (pageable), and
    // the call's final synchronisation.
    CHECK(waits_of_call(direct.get(), m.get(), call) == 5);
    CHECK(waits_of_call(staged.get(), m.get(), call) == 1);
  }
}

TEST_CASE("with cuda.staging=on a frame of slstm_session_step waits for the device once",
          "[cuda-fake][staging]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 24101, 1.0f);
  t::Session s = t::cuda_session(m.get(), kB, kT, "cuda.staging=on");
  REQUIRE(s);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(kB * kD), 24102);
  std::vector<float> state = t::random_vector(t::state_count(m.get(), kB), 24103);
  std::vector<float> out(static_cast<std::size_t>(kB * 9));
  for (int frame = 0; frame < 3; ++frame) {
    INFO("frame " << frame);
    const std::uint64_t before = cuda_fake::host_waits();
    REQUIRE(slstm_session_step(s.get(), kB, x.data(), x.size(), state.data(), state.size(),
                               out.data(), out.size(), state.data(), state.size()) == SLSTM_OK);
    if (frame > 0) CHECK(cuda_fake::host_waits() - before == 1);
  }
}
