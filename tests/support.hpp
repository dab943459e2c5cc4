// Shared test helpers: RAII handles, the backend under test, poisoned buffers, error
// measures, a forward-call wrapper and the fixture loader.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stacklstm/stacklstm.h"

namespace t {

struct ModelDeleter {
  void operator()(slstm_model* m) const { slstm_model_destroy(m); }
};
struct SessionDeleter {
  void operator()(slstm_session* s) const { slstm_session_destroy(s); }
};
using Model = std::unique_ptr<slstm_model, ModelDeleter>;
using Session = std::unique_ptr<slstm_session, SessionDeleter>;

// The CPU path the suite runs against: $SLSTM_TEST_CPU_PATH = reference | fast | auto, or
// fast-avx2 / fast-portable: the fast path on a lesser kernel than this CPU's best (the ones
// CPUs without AVX-512, or without AVX2, run), which use_cpu_kernel_under_test() asks the
// library for through $SLSTM_CPU_KERNEL.
slstm_cpu_path cpu_path_under_test();
// Sets $SLSTM_CPU_KERNEL from $SLSTM_TEST_CPU_PATH (the test executables' main calls it).
void use_cpu_kernel_under_test();
// The kernel $SLSTM_TEST_CPU_PATH asks the fast path for: "avx2", "portable", or "" (the
// CPU's best).  What a session actually runs is in its plan: describe_json().
std::string kernel_under_test();
// slstm_session_describe(session, JSON) (REQUIREs success).
std::string describe_json(const slstm_session* session);
// The value of `"key": "value"` in a describe JSON text ("" when absent).
std::string json_value(const std::string& json, const std::string& key);
// Every such value, in order (one per layer for a layer's key).
std::vector<std::string> json_values(const std::string& json, const std::string& key);

// Same bits (NaN payloads and signed zeros included).
bool bitwise_equal(const float* a, const float* b, std::size_t n);
bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b);

// Session options for the backend under test, with the given maxima.
slstm_session_options options(std::int64_t max_batch, std::int64_t max_time);

// A seeded random model (REQUIREs success).
Model random_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden,
                   std::uint64_t seed, float forget_bias = 1.0f, float scale = 0.0f);
// A session on the backend under test (REQUIREs success).
Session session(const slstm_model* model, std::int64_t max_batch, std::int64_t max_time);
// A one-layer BasicLSTMCell model from canonical weights: W_x [4H, input], W_h [4H, H],
// b [4H] (REQUIREs success).
Model canonical_model(std::int64_t input, std::int64_t hidden, std::vector<float> w_x,
                      std::vector<float> w_h, std::vector<float> b);

// Layer descriptions (slstm_layer_config_init, then the fields named).
slstm_layer_config lstm_layer(std::int64_t hidden);
slstm_layer_config gru_layer(std::int64_t hidden, bool reset_after);
slstm_layer_config with_direction(slstm_layer_config l, slstm_direction d);
// A seeded random model of any stack (REQUIREs success).
Model random_stack(std::int64_t input_size, const std::vector<slstm_layer_config>& layers,
                   std::uint64_t seed);
// Every kind of layer (peepholes, clips, projection, both GRU resets, reverse, bidirectional,
// residual), in stacks that read forward and stacks that do not.
std::vector<std::vector<slstm_layer_config>> layer_zoo();

// A CUDA session with the keyed settings `config` (REQUIREs success), or an empty one when
// this machine has no usable CUDA backend (then the caller skips, after a WARN saying so).
Session cuda_session(const slstm_model* model, std::int64_t max_batch, std::int64_t max_time,
                     const char* config, int allow_tf32 = 0,
                     std::int32_t precision = SLSTM_PRECISION_DEFAULT);

// Uniform values in [lo, hi), deterministic in `seed`.
std::vector<float> random_vector(std::size_t n, std::uint64_t seed, float lo = -1.0f,
                                 float hi = 1.0f);

// A quiet-NaN bit pattern no computation produces: buffers are filled with it before a
// call, so an element the call did not write is recognisable afterwards.
std::vector<float> poisoned(std::size_t n);
bool is_poison(float v);
std::size_t count_poison(const std::vector<float>& v);

// Normwise relative error: max_i |got_i - want_i| / max(max_i |want_i|, 1e-30). NaN in got
// yields +inf. Sizes must match (REQUIRE).
double rel_err(const std::vector<float>& got, const std::vector<double>& want);
// max_i |a_i - b_i| (REQUIREs equal sizes).
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);
double rel_err(const std::vector<float>& got, const std::vector<float>& want);

std::size_t state_count(const slstm_model* model, std::int64_t batch);
std::int64_t output_size(const slstm_model* model);
std::int64_t input_size(const slstm_model* model);

// One forward call with poisoned output buffers; returns the status and what was written.
struct Run {
  slstm_status status = SLSTM_OK;
  std::vector<float> output;       // B*T*H_last (poison where unwritten)
  std::vector<float> final_state;  // packed
};
struct Call {
  std::int64_t batch = 1;
  std::int64_t time = 1;
  slstm_layout layout = SLSTM_BATCH_MAJOR;
  const std::vector<float>* input = nullptr;
  const std::vector<std::int32_t>* lengths = nullptr;
  const std::vector<float>* initial_state = nullptr;
  bool want_output = true;
  bool want_final_state = true;
  // Where the float buffers are said to live (the emulated CUDA module of tests/cuda_emu
  // takes host pointers as SLSTM_MEMORY_DEVICE).
  slstm_memory memory = SLSTM_MEMORY_HOST;
};
// A call of `batch` x `time` steps over `input` (optional fields left at their defaults).
Call call_of(std::int64_t batch, std::int64_t time, const std::vector<float>& input,
             slstm_layout layout = SLSTM_BATCH_MAJOR);
Call call_of(std::int64_t, std::int64_t, const std::vector<float>&&,  // keeps a pointer:
             slstm_layout = SLSTM_BATCH_MAJOR) = delete;               // no temporaries
Run forward(slstm_session* session, const slstm_model* model, const Call& call);
// The same, REQUIRing SLSTM_OK (and printing the last error otherwise).
Run forward_ok(slstm_session* session, const slstm_model* model, const Call& call);
// Runs `call` on both sessions (each REQUIRing SLSTM_OK) and CHECKs that they give the same
// bits, output and final state, and that the first wrote every output element; returns the
// first session's run.
Run check_same_bits(slstm_session* a, slstm_session* b, const slstm_model* model,
                    const Call& call);

// The accuracy rule (README "Accuracy"), per cell and step: given the float32 inputs a path
// fed a cell (x: the step's input or the layer below's new h; h_prev, c_prev: the state it
// carried), its new c and h are within a bound of the exact cell on those inputs.  For every
// pre-activation z of n = I + H + 2 terms (products, bias, forget_bias) with magnitudes
// summing to S(z), the float32 sum is off by at most gamma_n * S(z), gamma_n = n u / (1 - n u),
// u = 2^-24 (the worst case of any summation order); the gates pass that on with their slopes
// (taken at the steepest point within the bound) and each gate function adds 16 u.
//
// The rule for one step of the stack: `x` [B, D], `state_in` the packed state before the step,
// `state_out` the packed state a path produced (its h of layer l - 1 is layer l's input);
// rows with active[b] == false (past their length) must keep state_in exactly (bound 0).
// Returns the exact new packed state and each element's bound.
struct StepExpected {
  std::vector<double> state, bound;
};
StepExpected expected_step(const slstm_model* model, std::int64_t batch, const float* x,
                           const std::vector<float>& state_in,
                           const std::vector<float>& state_out, const std::vector<bool>& active);
// max_i |got_i - want_i| / bound_i: <= 1 when `got` obeys the rule (0 where they are equal,
// +inf where the bound is 0 but they differ, or where one is NaN and the other is not).
double accuracy_ratio(const std::vector<float>& got, const std::vector<double>& want,
                      const std::vector<double>& bound);
// Runs `call` on `session` whole and as `time` calls of one step carrying the state (rows
// past their length frozen): the steps must give the whole call's bits (outputs and final
// state), and every step of every row and layer must obey the rule (CHECKed; the worst
// ratio is printed).  Returns the whole call's result.
Run check_within_accuracy(slstm_session* session, const slstm_model* model, const Call& call);
// Runs `call` (its initial_state null) and the same call from explicit zeros: the first must
// leave no poison and both give the same bits (outputs and final state; CHECKed).
void check_zero_state_bits(slstm_session* session, const slstm_model* model, const Call& call);

// Where the fixtures are: $SLSTM_FIXTURE_DIR when set (a test binary run away from its
// source tree, as bench/gpu/check.sh does on a device), else the source tree's tests/fixtures.
std::string fixture_dir();
// A fixture written by tests/fixtures/gen_fixtures.py (format described there).
struct Fixture {
  std::string name;
  std::string format;  // "tf" or "pytorch"
  std::int64_t batch = 0, time = 0, input_size = 0;
  std::vector<std::int64_t> hidden_sizes;
  bool time_major = false;
  float forget_bias = 0.0f;
  std::map<std::string, std::vector<double>> tensors;
  bool has(const std::string& k) const { return tensors.count(k) != 0; }
  const std::vector<double>& at(const std::string& k) const;
  std::vector<float> f32(const std::string& k) const;  // the tensor rounded to float
};
Fixture load_fixture(const std::string& name);  // name without ".fix"
std::vector<std::string> fixture_names(const std::string& prefix);

// A model built from a fixture's weights in its own format (REQUIREs success).
Model model_from_fixture(const Fixture& f);

// Runs a fixture's input (with its lengths and initial state, when it has them) through
// `model` on the backend under test; returns what was written.
Run run_fixture(const Fixture& f, const slstm_model* model);

// Threads of this process (/proc/self/task has one entry per thread), counted once the count
// has stopped changing (threads just joined can linger there for a moment; up to a second);
// -1 where there is no /proc/self/task.
int process_threads();

}  // namespace t
