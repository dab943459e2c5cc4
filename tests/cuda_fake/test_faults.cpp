// The CUDA module's error paths on the FAKE CUDA runtime (tests/cuda_fake), with the faults
// the runtime injects on demand (cuda_fake::inject_fault): a persistent kernel launch the
// device refuses, a copy that fails, a device that fails for good while the module cleans
// up. A GPU does none of these on demand, so the GPU suite cannot reach these paths.
// Host buffers, so every call ends synchronised and its status is the call's own.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../support.hpp"
#include "fake_device.hpp"
#include "stacklstm/stacklstm.h"

namespace {

constexpr std::int64_t kB = 3, kT = 5, kD = 7;

// The persistent batches the plan reports for every layer ("none" where it does not run).
std::vector<std::string> persistent_batches(const slstm_session* s) {
  return t::json_values(t::describe_json(s), "persistent_batches");
}

bool persistent_on_every_layer(const slstm_session* s) {
  const std::vector<std::string> p = persistent_batches(s);
  for (const std::string& v : p) {
    if (v == "none") return false;
  }
  return !p.empty();
}

// A call of kB x kT steps from a given initial state (buffers owned by the fixture).
struct Inputs {
  explicit Inputs(const slstm_model* m)
      : x(t::random_vector(static_cast<std::size_t>(kB * kT * kD), 811)),
        s0(t::random_vector(t::state_count(m, kB), 812)),
        call(t::call_of(kB, kT, x)) {
    call.initial_state = &s0;
  }
  std::vector<float> x, s0;
  t::Call call;
};

}  // namespace

// Refused, the call runs again without the persistent kernel, with the numbers an accepted
// launch gives: layer by layer the fused step (the same arithmetic); a whole-stack session the
// same kernel one step of one layer per launch (its layers >= 1 project their own input).
TEST_CASE("a persistent launch the device refuses runs the call again with the numbers an "
          "accepted launch gives, and the plan stops naming persistent batches",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 810, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers", "cuda.persistent=layers;cuda.graphs=off",
                             "cuda.persistent=on", "cuda.persistent=on;cuda.graphs=off"}) {
    INFO("settings \"" << config << "\"");
    t::Session pers = t::cuda_session(m.get(), kB, kT, config);
    t::Session accepted = t::cuda_session(m.get(), kB, kT, config);
    REQUIRE((pers && accepted));
    REQUIRE(persistent_on_every_layer(pers.get()));
    cuda_fake::inject_fault("lstm_persistent_kernel", cudaErrorCooperativeLaunchTooLarge);
    const t::Run got = t::forward_ok(pers.get(), m.get(), in.call);
    REQUIRE(cuda_fake::clear_faults() == 0);  // the launch was tried, and refused
    const t::Run want = t::forward_ok(accepted.get(), m.get(), in.call);
    CHECK(persistent_on_every_layer(accepted.get()));
    CHECK(t::count_poison(got.output) == 0);
    CHECK(t::bitwise_equal(got.output, want.output));
    CHECK(t::bitwise_equal(got.final_state, want.final_state));
    for (const std::string& p : persistent_batches(pers.get())) CHECK(p == "none");
    // Later calls keep to the fallback, with the same numbers.
    CHECK(t::bitwise_equal(t::forward_ok(pers.get(), m.get(), in.call).output, want.output));
  }
}

TEST_CASE("a failed copy of the initial state is the call's error: named, nothing written, "
          "and the persistent kernel stays on",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 820, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers", "cuda.persistent=on;cuda.graphs=off"}) {
    INFO("settings \"" << config << "\"");
    t::Session pers = t::cuda_session(m.get(), kB, kT, config);
    REQUIRE(pers);
    cuda_fake::inject_fault("cudaMemcpyAsync", cudaErrorInvalidValue, in.s0.data());
    const t::Run failed = t::forward(pers.get(), m.get(), in.call);
    const std::string message = slstm_last_error();
    REQUIRE(cuda_fake::clear_faults() == 0);  // the copy was tried, and failed
    CHECK(failed.status == SLSTM_ERR_BACKEND_FAILURE);
    CHECK(message.find("initial_state") != std::string::npos);
    CHECK(message.find("cudaErrorInvalidValue") != std::string::npos);
    CHECK(t::count_poison(failed.output) == failed.output.size());
    CHECK(t::count_poison(failed.final_state) == failed.final_state.size());
    CHECK(persistent_on_every_layer(pers.get()));
    // The next call runs (on the persistent kernel) with the numbers of a clean session's.
    t::Session clean = t::cuda_session(m.get(), kB, kT, config);
    REQUIRE(clean);
    t::check_same_bits(pers.get(), clean.get(), m.get(), in.call);
    CHECK(persistent_on_every_layer(pers.get()));
  }
}

TEST_CASE("when turning the persistent kernel off after a refused launch fails too, the call "
          "reports the launch's error",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 830, 1.0f);
  const Inputs in(m.get());
  t::Session pers = t::cuda_session(m.get(), kB, kT, "cuda.persistent=layers;cuda.graphs=off");
  REQUIRE(pers);
  cuda_fake::inject_fault("lstm_persistent_kernel", cudaErrorCooperativeLaunchTooLarge);
  cuda_fake::inject_fault("cudaStreamSynchronize", cudaErrorIllegalAddress);
  const t::Run failed = t::forward(pers.get(), m.get(), in.call);
  const std::string message = slstm_last_error();
  REQUIRE(cuda_fake::clear_faults() == 0);  // both faults were met
  CHECK(failed.status == SLSTM_ERR_BACKEND_FAILURE);
  CHECK(message.find("lstm_persistent_kernel") != std::string::npos);
  CHECK(message.find("cudaErrorCooperativeLaunchTooLarge") != std::string::npos);
  CHECK(message.find("cudaErrorIllegalAddress") == std::string::npos);
  CHECK(t::count_poison(failed.output) == failed.output.size());
}

// Every operation of a call made to fail in turn: the n-th CUDA or cuBLAS operation of the
// call (copies, memsets, events, waits, syncs, captures, graph instantiation and launches,
// kernel launches, GEMMs, allocations), n = 1, 2, ... until a call meets no fault; in the
// shape's first call (which captures its graph) and in a repeated one (which replays it).
// The call reports the failure (a backend status and a message) or absorbs it (a refused
// persistent launch: the fallback) with the right numbers; either way nothing aborts and
// the session's next call gives the clean session's bits.
TEST_CASE("whichever operation of a call fails, the call reports it or absorbs it, and the "
          "session's next call gives a clean session's bits",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 840, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"", "cuda.graphs=off", "cuda.fused=never;cuda.chunk=2",
                             "cuda.persistent=layers", "cuda.persistent=on"}) {
    t::Session clean = t::cuda_session(m.get(), kB, kT, config);
    REQUIRE(clean);
    const t::Run want = t::forward_ok(clean.get(), m.get(), in.call);
    for (const bool repeated : {false, true}) {
      int n = 1;
      for (;; ++n) {
        INFO("settings \"" << config << "\", " << (repeated ? "a repeated call" : "a first call")
                           << ", operation " << n);
        t::Session s = t::cuda_session(m.get(), kB, kT, config);
        REQUIRE(s);
        if (repeated) (void)t::forward_ok(s.get(), m.get(), in.call);
        cuda_fake::inject_nth_fault(n, cudaErrorInvalidValue);
        const t::Run got = t::forward(s.get(), m.get(), in.call);
        const std::string message = slstm_last_error(), api = cuda_fake::nth_fault_api();
        if (cuda_fake::clear_faults() == 1) {  // the call had fewer operations: done
          REQUIRE(got.status == SLSTM_OK);
          CHECK(t::bitwise_equal(got.output, want.output));
          break;
        }
        INFO("failed: " << api << "; the call's status " << got.status << ": " << message);
        if (got.status == SLSTM_OK) {
          CHECK(t::bitwise_equal(got.output, want.output));
          CHECK(t::bitwise_equal(got.final_state, want.final_state));
        } else {
          CHECK((got.status == SLSTM_ERR_BACKEND_FAILURE ||
                 got.status == SLSTM_ERR_OUT_OF_MEMORY));
          CHECK_FALSE(message.empty());
        }
        const t::Run next = t::forward(s.get(), m.get(), in.call);
        INFO("the next call: " << next.status << ": " << slstm_last_error());
        REQUIRE(next.status == SLSTM_OK);
        CHECK(t::bitwise_equal(next.output, want.output));
        CHECK(t::bitwise_equal(next.final_state, want.final_state));
      }
      CHECK(n > 5);  // (the sweep met that many operations)
    }
  }
}
