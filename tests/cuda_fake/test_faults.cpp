// The CUDA module's error paths on the FAKE CUDA runtime (tests/cuda_fake), with the faults
// the runtime injects on demand (cuda_fake::inject_fault, inject_nth_fault): a persistent
// kernel launch the device refuses, a copy or a GEMM that fails, a device that fails for good
// while the module cleans up; then every operation of a call, of a session's creation and of
// a round of slot calls failed in turn, with a leak check (cuda_fake::live_resources). A GPU
// does none of these on demand, so the GPU suite cannot reach these paths. Host buffers
// unless a case says otherwise, so that a call's status is its own.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "../support.hpp"
#include "fake_device.hpp"
#include "stress_support.hpp"
#include "stacklstm/stacklstm.h"

namespace {

using cuda_fake_test::DeviceFloats;

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

namespace {

// What the plan says of a tier for every layer: `key` reads `planned` before a refusal and
// `refused` after it.
struct TierKey {
  const char* key;
  const char* planned;
  const char* refused;
};

// A session of `config` whose `kernel` launch the device refuses with `fault`: the call runs
// again on the fused step with the same numbers, the plan stops naming the tier (`keys`), and
// not every layer runs the persistent kernel any more.
void check_refused_tier_falls_back(const slstm_model* m, const Inputs& in, const char* config,
                                   const char* kernel, cudaError_t fault,
                                   std::initializer_list<TierKey> keys) {
  INFO("settings \"" << config << "\"");
  t::Session tier = t::cuda_session(m, kB, kT, config);
  t::Session fused = t::cuda_session(m, kB, kT, "cuda.fused=always");
  REQUIRE((tier && fused));
  std::string plan = t::describe_json(tier.get());
  INFO("the plan before: " << plan);
  for (const TierKey& k : keys) {
    INFO(k.key);
    const std::vector<std::string> values = t::json_values(plan, k.key);
    REQUIRE_FALSE(values.empty());
    for (const std::string& v : values) REQUIRE(v == k.planned);
  }
  cuda_fake::inject_fault(kernel, fault);
  const t::Run got = t::forward_ok(tier.get(), m, in.call);
  REQUIRE(cuda_fake::clear_faults() == 0);  // the launch was tried, and refused
  const t::Run want = t::forward_ok(fused.get(), m, in.call);
  CHECK(t::count_poison(got.output) == 0);
  CHECK(t::bitwise_equal(got.output, want.output));
  CHECK(t::bitwise_equal(got.final_state, want.final_state));
  plan = t::describe_json(tier.get());
  INFO("the plan after: " << plan);
  for (const TierKey& k : keys) {
    for (const std::string& v : t::json_values(plan, k.key)) CHECK(v == k.refused);
  }
  CHECK_FALSE(persistent_on_every_layer(tier.get()));
}

}  // namespace

// The cluster tier's launch refused (a cluster the device cannot place: another context
// holds its SMs) is a refusal of the persistent kernel like any other: the call runs again
// on the fused step with the same numbers, and the plan stops naming cluster batches.
TEST_CASE("a cluster launch the device refuses runs the call again on the fused step with the "
          "same numbers, and the plan stops naming cluster batches",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 815, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers;cuda.cluster=on",
                             "cuda.persistent=layers;cuda.cluster=on;cuda.graphs=off"}) {
    check_refused_tier_falls_back(m.get(), in, config, "lstm_cluster_kernel",
                                  cudaErrorInvalidClusterSize,
                                  {{"cluster_batches", "1-3", "none"}});
  }
}

// The hybrid tier's launch refused (say a device that does not take its L2 window in a
// graph) is a refusal of the persistent kernel like any other: the call runs again on the
// fused step with the same numbers, and the plan stops naming hybrid batches, columns and
// windows (H = 1100: the layer's one launch is the hybrid tier's; batch 3 runs the 4-row
// kernel, whence 762 columns on chip).
TEST_CASE("a hybrid-tier launch the device refuses runs the call again on the fused step with "
          "the same numbers, and the plan stops naming hybrid batches",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {1100}, 816, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers;cuda.hybrid=on",
                             "cuda.persistent=layers;cuda.hybrid=on;cuda.graphs=off"}) {
    check_refused_tier_falls_back(m.get(), in, config, "lstm_persistent_kernel",
                                  cudaErrorCooperativeLaunchTooLarge,
                                  {{"hybrid_batches", "1-3", "none"},
                                   {"hybrid_resident", "762", "0"},
                                   {"l2_window_bytes", "19360000", "0"}});
  }
}

namespace {

// In a persistent session of `config`, the call whose `api` fails (pointer argument `match`)
// reports it as its own error, with `names` in the message, and leaves the persistent kernel
// on; the session's next call gives a clean session's bits. Returns the failed call.
t::Run check_own_failure(const slstm_model* m, const Inputs& in, const char* config,
                         const char* api, const void* match, const char* names) {
  INFO("settings \"" << config << "\", " << api << " fails");
  t::Session pers = t::cuda_session(m, kB, kT, config);
  REQUIRE(pers);
  cuda_fake::inject_fault(api, cudaErrorInvalidValue, match);
  const t::Run failed = t::forward(pers.get(), m, in.call);
  const std::string message = slstm_last_error();
  REQUIRE(cuda_fake::clear_faults() == 0);  // the operation was tried, and failed
  CHECK(failed.status == SLSTM_ERR_BACKEND_FAILURE);
  INFO("the message: " << message);
  CHECK(message.find(names) != std::string::npos);
  CHECK(persistent_on_every_layer(pers.get()));
  // The next call runs (on the persistent kernel) with the numbers of a clean session's.
  t::Session clean = t::cuda_session(m, kB, kT, config);
  REQUIRE(clean);
  t::check_same_bits(pers.get(), clean.get(), m, in.call);
  CHECK(persistent_on_every_layer(pers.get()));
  return failed;
}

}  // namespace

// cuda.cluster=on (session_layer_cluster, module ABI v6): the real module's entry answers
// for every layer, consistently (no CTAs where no batch, at most 16), and none once the
// persistent kernel was refused and turned off; the plan says nothing of it without the
// setting.
TEST_CASE("with cuda.cluster=on the plan reports each layer's cluster tier, and none once "
          "the persistent kernel was refused",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 815, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers;cuda.cluster=on",
                             "cuda.persistent=on;cuda.cluster=on;cuda.graphs=off"}) {
    INFO("settings \"" << config << "\"");
    t::Session s = t::cuda_session(m.get(), kB, kT, config);
    REQUIRE(s);
    REQUIRE(persistent_on_every_layer(s.get()));
    std::string plan = t::describe_json(s.get());
    INFO(plan);
    const std::vector<std::string> batches = t::json_values(plan, "cluster_batches");
    const std::vector<std::string> ctas = t::json_values(plan, "cluster_ctas");
    REQUIRE(batches.size() == 3);
    REQUIRE(ctas.size() == 3);
    for (std::size_t l = 0; l < 3; ++l) {
      CHECK((batches[l] == "none") == (ctas[l] == "0"));
      CHECK(std::stoi(ctas[l]) >= 0);
      CHECK(std::stoi(ctas[l]) <= 16);
    }
    cuda_fake::inject_fault("lstm_persistent_kernel", cudaErrorCooperativeLaunchTooLarge);
    (void)t::forward_ok(s.get(), m.get(), in.call);
    if (cuda_fake::clear_faults() != 0) continue;  // (no persistent launch to refuse)
    plan = t::describe_json(s.get());
    for (const std::string& b : t::json_values(plan, "cluster_batches")) CHECK(b == "none");
    for (const std::string& c : t::json_values(plan, "cluster_ctas")) CHECK(c == "0");
  }
  t::Session off = t::cuda_session(m.get(), kB, kT, "cuda.persistent=layers");
  REQUIRE(off);
  CHECK(t::json_values(t::describe_json(off.get()), "cluster_batches").empty());
}

TEST_CASE("a failed copy of the initial state is the call's error: named, nothing written, "
          "and the persistent kernel stays on",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 820, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers", "cuda.persistent=on;cuda.graphs=off"}) {
    const t::Run failed = check_own_failure(m.get(), in, config, "cudaMemcpyAsync",
                                            in.s0.data(), "(initial_state): cudaErrorInvalidValue");
    CHECK(t::count_poison(failed.output) == failed.output.size());
    CHECK(t::count_poison(failed.final_state) == failed.final_state.size());
  }
}

// Only a refusal of the persistent kernel (its launch, or its graph's capture,
// instantiation or launch) turns it off: a GEMM that fails in its session is the call's own
// error, as in any session.
TEST_CASE("a failed GEMM in a persistent session's call is the call's error and leaves the "
          "persistent kernel on",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 825, 1.0f);
  const Inputs in(m.get());
  for (const char* config : {"cuda.persistent=layers", "cuda.persistent=layers;cuda.graphs=off"}) {
    (void)check_own_failure(m.get(), in, config, "sgemm", nullptr,
                            "CUBLAS_STATUS_EXECUTION_FAILED");
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

namespace {

// On leaving a scope: everything the fake runtime hands out that was made in it is gone.
class LeakCheck {
 public:
  explicit LeakCheck(const cuda_fake::Resources& before) : before_(before) {}
  LeakCheck(const LeakCheck&) = delete;
  LeakCheck& operator=(const LeakCheck&) = delete;
  ~LeakCheck() {
    const cuda_fake::Resources after = cuda_fake::live_resources();
    INFO("before: " << before_.text() << "; after: " << after.text());
    CHECK(after == before_);
  }

 private:
  cuda_fake::Resources before_;
};

// The sweeps below: attempt(n) makes the n-th operation of what it runs fail, for n = 1, 2,
// ... each under a leak check, until attempt says that no operation took the fault (it
// returns false: there were fewer than n); the sweep must have met more than five.
template <class Attempt>
void sweep_operations(Attempt attempt) {
  int n = 1;
  for (;; ++n) {
    INFO("operation " << n);
    const LeakCheck leaks(cuda_fake::live_resources());
    if (!attempt(n)) break;
  }
  CHECK(n > 5);
}

// A CUDA session on the caller's `stream` (nullptr: the session's own).
t::Session session_on(const slstm_model* m, const char* config, cudaStream_t stream) {
  slstm_session_options o = t::options(kB, kT);
  o.backend = SLSTM_BACKEND_CUDA;
  o.config = config;
  o.cuda_stream = stream;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &s);
  INFO("slstm_session_create (config \"" << config << "\"): " << slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Session(s);
}

// The call of `in` with host buffers (stream nullptr), or with device buffers on the caller's
// `stream`, which returns before its work is done (the stream is synchronised after it, and
// the results downloaded). fault_n > 0: the call's fault_n-th operation fails
// (cuda_fake::inject_nth_fault, cudaErrorInvalidValue); *faults_left: the faults no operation
// of the call took.
t::Run call_once(slstm_session* s, const slstm_model* m, const Inputs& in, cudaStream_t stream,
                 int fault_n, int* faults_left) {
  if (stream == nullptr) {
    if (fault_n > 0) cuda_fake::inject_nth_fault(fault_n, cudaErrorInvalidValue);
    t::Run r = t::forward(s, m, in.call);
    *faults_left = cuda_fake::clear_faults();
    return r;
  }
  const std::size_t out_n = static_cast<std::size_t>(kB * kT * t::output_size(m));
  DeviceFloats x(in.x.size()), s0(in.s0.size()), y(out_n), fs(in.s0.size());
  x.upload(in.x);
  s0.upload(in.s0);
  y.upload(t::poisoned(out_n));
  fs.upload(t::poisoned(in.s0.size()));
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.memory = SLSTM_MEMORY_DEVICE;
  a.batch = kB;
  a.time = kT;
  a.input = x.get();
  a.input_count = in.x.size();
  a.initial_state = s0.get();
  a.initial_state_count = in.s0.size();
  a.output = y.get();
  a.output_count = out_n;
  a.final_state = fs.get();
  a.final_state_count = in.s0.size();
  t::Run r;
  if (fault_n > 0) cuda_fake::inject_nth_fault(fault_n, cudaErrorInvalidValue);
  r.status = slstm_session_forward(s, &a);
  *faults_left = cuda_fake::clear_faults();
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  r.output = y.download();
  r.final_state = fs.download();
  return r;
}

}  // namespace

// Every operation of a call made to fail in turn: the n-th CUDA or cuBLAS operation of the
// call (copies, memsets, events, waits, syncs, captures, graph instantiation and launches,
// kernel launches, GEMMs, allocations), n = 1, 2, ... until a call meets no fault; in the
// shape's first call (which captures its graph) and in a repeated one (which replays it);
// host buffers, and device buffers on a caller's stream (the call returns before its work
// is done). The call reports the failure (a backend status and a message) or absorbs it (a
// refused persistent launch: the fallback) with the right numbers; either way nothing
// aborts, the session's next call gives a clean session's bits, and the session, destroyed,
// leaves nothing behind.
namespace {

struct SweepCase {
  const char* config;
  bool device;  // device buffers on a caller's stream, else host buffers
};

// The sweep above, over `cases`, for model m and call `in`.
void sweep_calls(const slstm_model* m, const Inputs& in, const std::vector<SweepCase>& cases) {
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  for (const SweepCase& c : cases) {
    const cudaStream_t on = c.device ? stream : nullptr;
    // Tuning picks each layer's path by the fake's timings, which vary from session to
    // session: its numbers are the reference's (the fake sums in double), not the same bits.
    const bool tuned = std::string(c.config).find("cuda.tune=on") != std::string::npos;
    const auto same = [tuned](const std::vector<float>& a, const std::vector<float>& b) {
      return tuned ? t::count_poison(a) == 0 && t::rel_err(a, b) <= 1e-6 : t::bitwise_equal(a, b);
    };
    t::Session clean = session_on(m, c.config, nullptr);
    const t::Run want = t::forward_ok(clean.get(), m, in.call);
    for (const bool repeated : {false, true}) {
      INFO("settings \"" << c.config << "\", " << (c.device ? "device" : "host")
                         << " buffers, " << (repeated ? "a repeated call" : "a first call"));
      sweep_operations([&](int n) {
        t::Session s = session_on(m, c.config, on);
        int left = 0;
        if (repeated) REQUIRE(call_once(s.get(), m, in, on, 0, &left).status == SLSTM_OK);
        const t::Run got = call_once(s.get(), m, in, on, n, &left);
        const std::string message = slstm_last_error(), api = cuda_fake::nth_fault_api();
        if (left == 1) {  // the call had fewer operations: done
          REQUIRE(got.status == SLSTM_OK);
          CHECK(same(got.output, want.output));
          return false;
        }
        INFO("failed: " << api << "; the call's status " << got.status << ": " << message);
        if (got.status == SLSTM_OK) {
          CHECK(same(got.output, want.output));
          CHECK(same(got.final_state, want.final_state));
        } else {
          CHECK((got.status == SLSTM_ERR_BACKEND_FAILURE ||
                 got.status == SLSTM_ERR_OUT_OF_MEMORY));
          CHECK_FALSE(message.empty());
        }
        const t::Run next = call_once(s.get(), m, in, on, 0, &left);
        INFO("the next call: " << next.status << ": " << slstm_last_error());
        REQUIRE(next.status == SLSTM_OK);
        CHECK(same(next.output, want.output));
        CHECK(same(next.final_state, want.final_state));
        return true;
      });
    }
  }
  REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
}

}  // namespace

TEST_CASE("whichever operation of a call fails, the call reports it or absorbs it, the "
          "session's next call gives a clean session's bits, and nothing leaks",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 840, 1.0f);
  const Inputs in(m.get());
  sweep_calls(m.get(), in,
              {{"", false}, {"cuda.graphs=off", false}, {"cuda.fused=never;cuda.chunk=2", false},
               {"cuda.persistent=layers", false}, {"cuda.persistent=on", false},
               {"cuda.tune=on;cuda.persistent=on", false}, {"", true},
               {"cuda.persistent=on", true}, {"cuda.staging=on", false},
               {"cuda.staging=on;cuda.persistent=on;cuda.graphs=off", false}});
}

// The same on the generic path (cuda.generic=on: its engine, cuBLAS calls, graphs and
// generic_device.cu's kernels), which only the simulated module has (slstm_cuda_fake_sim:
// ctest runs this case with it): a bidirectional LSTM with peepholes, a bidirectional
// residual GRU and a projected LSTM with clips.
TEST_CASE("on the generic path too, whichever operation of a call fails, the call reports it "
          "or absorbs it, the session's next call gives a clean session's bits, and nothing "
          "leaks",
          "[cuda-fake][faults-sim]") {
  const t::Model m = t::random_stack(kD, t::layer_zoo()[3], 880);
  const Inputs in(m.get());
  sweep_calls(m.get(), in,
              {{"cuda.generic=always", false}, {"cuda.generic=always;cuda.graphs=off", false},
               {"cuda.generic=always", true}});
}

// Every operation of a session's creation made to fail in turn (allocations, streams, events,
// cuBLAS handles, uploads, syncs): the creation fails with a backend status, no session, and
// nothing left behind; where it absorbs the failure, the session gives a clean one's bits.
namespace {

// The sweep above, over `configs`, for model m and call `in`.
void sweep_creation(const slstm_model* m, const Inputs& in,
                    const std::vector<const char*>& configs) {
  for (const char* config : configs) {
    slstm_session_options o = t::options(kB, kT);
    o.backend = SLSTM_BACKEND_CUDA;
    o.config = config;
    if (std::string(config) == "cuda.slots=on") o.max_slots = 4;
    t::Session clean = t::cuda_session(m, kB, kT, config);
    REQUIRE(clean);
    const t::Run want = t::forward_ok(clean.get(), m, in.call);
    INFO("settings \"" << config << "\"");
    sweep_operations([&](int n) {
      cuda_fake::inject_nth_fault(n, cudaErrorInvalidValue);
      slstm_session* raw = nullptr;
      const slstm_status st = slstm_session_create(m, &o, &raw);
      const std::string message = slstm_last_error(), api = cuda_fake::nth_fault_api();
      t::Session s(raw);
      if (cuda_fake::clear_faults() == 1) {  // the creation had fewer operations: done
        REQUIRE(st == SLSTM_OK);
        return false;
      }
      INFO("failed: " << api << "; status " << st << ": " << message);
      if (st == SLSTM_OK) {
        CHECK(t::bitwise_equal(t::forward_ok(s.get(), m, in.call).output, want.output));
      } else {
        CHECK(raw == nullptr);
        CHECK((st == SLSTM_ERR_BACKEND_FAILURE || st == SLSTM_ERR_OUT_OF_MEMORY));
        CHECK_FALSE(message.empty());
      }
      return true;
    });
  }
}

}  // namespace

TEST_CASE("whichever operation of a session's creation fails, it is refused and leaves no "
          "device memory, stream, event, graph or cuBLAS handle behind",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 850, 1.0f);
  sweep_creation(m.get(), Inputs(m.get()),
                 {"", "cuda.graphs=off", "cuda.persistent=on", "cuda.slots=on"});
}

TEST_CASE("on the generic path too, whichever operation of a session's creation fails, it is "
          "refused and leaves nothing behind",
          "[cuda-fake][faults-sim]") {
  const t::Model m = t::random_stack(kD, t::layer_zoo()[3], 890);
  sweep_creation(m.get(), Inputs(m.get()), {"cuda.generic=always"});
}

namespace {

constexpr std::int64_t kSlots = 3;  // the slot calls' batch (of a session's 4 slots)

// What a round of slot calls gave: each slot opened with its own state, one slot_forward of
// the three over `in`'s input, each slot's state read back; `failed_at` names the first call
// that failed ("" when none did).
struct SlotRound {
  std::string failed_at;
  slstm_status status = SLSTM_OK;
  std::vector<float> output;
  std::vector<std::vector<float>> states;
};

SlotRound slot_round(slstm_session* s, const slstm_model* m, const Inputs& in, int fault_n,
                     int* faults_left) {
  const std::size_t S1 = t::state_count(m, 1);
  SlotRound r;
  r.output = t::poisoned(static_cast<std::size_t>(kSlots * kT * t::output_size(m)));
  const auto failed = [&r](slstm_status st, const char* what) {
    if (st == SLSTM_OK || !r.failed_at.empty()) return false;
    r.failed_at = what;
    r.status = st;
    return true;
  };
  if (fault_n > 0) cuda_fake::inject_nth_fault(fault_n, cudaErrorInvalidValue);
  std::vector<std::int64_t> ids(kSlots, -1);
  for (std::int64_t b = 0; b < kSlots; ++b) {
    const std::vector<float> st = t::random_vector(S1, 860 + static_cast<std::uint64_t>(b));
    if (failed(slstm_session_slot_open(s, st.data(), S1, SLSTM_MEMORY_HOST, &ids[b]),
               "slot_open")) {
      *faults_left = cuda_fake::clear_faults();
      return r;
    }
  }
  slstm_slot_forward_args a;
  slstm_slot_forward_args_init(&a);
  a.batch = kSlots;
  a.slot_ids = ids.data();
  a.slot_ids_count = ids.size();
  a.time = kT;
  a.input = in.x.data();
  a.input_count = static_cast<std::size_t>(kSlots * kT * kD);
  a.output = r.output.data();
  a.output_count = r.output.size();
  if (!failed(slstm_session_slot_forward(s, &a), "slot_forward")) {
    for (std::int64_t b = 0; b < kSlots; ++b) {
      r.states.push_back(t::poisoned(S1));
      if (failed(slstm_session_slot_get_state(s, ids[b], r.states.back().data(), S1,
                                              SLSTM_MEMORY_HOST),
                 "slot_get_state")) {
        break;
      }
    }
  }
  *faults_left = cuda_fake::clear_faults();
  return r;
}

}  // namespace

// Every operation of a round of slot calls made to fail in turn (opening three slots with
// their states, one slot_forward of the three, reading their states back): the round stops
// at the call that reports the failure, or absorbs it with the right numbers; after closing
// the slots, the same round gives a clean session's bits, and nothing leaks.
TEST_CASE("whichever operation of the slot calls fails, the call reports it or absorbs it, "
          "and the slots, opened again, give a clean session's bits",
          "[cuda-fake][faults]") {
  const t::Model m = t::random_model(kD, {33, 20, 9}, 870, 1.0f);
  const Inputs in(m.get());
  slstm_session_options o = t::options(kB, kT);
  o.backend = SLSTM_BACKEND_CUDA;
  o.config = "cuda.slots=on";
  o.max_slots = 4;
  const auto make = [&] {
    slstm_session* raw = nullptr;
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    return t::Session(raw);
  };
  int left = 0;
  SlotRound want;
  {
    t::Session clean = make();
    want = slot_round(clean.get(), m.get(), in, 0, &left);
    REQUIRE(want.failed_at.empty());
  }
  sweep_operations([&](int n) {
    t::Session s = make();
    const SlotRound got = slot_round(s.get(), m.get(), in, n, &left);
    const std::string message = slstm_last_error(), api = cuda_fake::nth_fault_api();
    if (left == 1) {  // the round had fewer operations: done
      REQUIRE(got.failed_at.empty());
      CHECK(t::bitwise_equal(got.output, want.output));
      return false;
    }
    INFO("failed: " << api << "; " << (got.failed_at.empty() ? "no call" : got.failed_at)
                    << " reported " << got.status << ": " << message);
    if (got.failed_at.empty()) {
      CHECK(t::bitwise_equal(got.output, want.output));
      for (std::size_t b = 0; b < want.states.size(); ++b) {
        CHECK(t::bitwise_equal(got.states.at(b), want.states[b]));
      }
    } else {
      CHECK((got.status == SLSTM_ERR_BACKEND_FAILURE || got.status == SLSTM_ERR_OUT_OF_MEMORY));
    }
    for (std::int64_t id = 0; id < o.max_slots; ++id) (void)slstm_session_slot_close(s.get(), id);
    const SlotRound again = slot_round(s.get(), m.get(), in, 0, &left);
    INFO("again: " << again.failed_at << " " << again.status << ": " << slstm_last_error());
    REQUIRE(again.failed_at.empty());
    CHECK(t::bitwise_equal(again.output, want.output));
    for (std::size_t b = 0; b < want.states.size(); ++b) {
      CHECK(t::bitwise_equal(again.states.at(b), want.states[b]));
    }
    return true;
  });
}
