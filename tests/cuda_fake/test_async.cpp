// Stress test of the CUDA module's ordering on the FAKE CUDA runtime (tests/cuda_fake):
// back-to-back asynchronous device-memory calls on a caller stream, with no sync between
// them, under 8 combinations of keyed settings (graphs on and off, fused step always and
// never, wavefront chunk 2, persistent kernel per layer and for the whole stack, tuning).
// The fake runtime runs the queued work only at the final cudaStreamSynchronize, in a random
// order that honours only stream order, event waits and graph dependencies: each call must
// order its own uploads of lengths, input and state after the previous call's use of the
// session's buffers. The calls mix T = 0, rows of length 0, changing batch, time and
// layout, with and without lengths and initial state, and a state updated in place from
// call to call; each result is compared with the CPU reference's.
// Not covered: anything of a real GPU (the kernels' own races, real cuBLAS, co-residency,
// speed): the GPU suite (tests/gpu) on a device checks those.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../support.hpp"
#include "stacklstm/stacklstm.h"
#include "stress_support.hpp"

using cuda_fake_test::DeviceFloats;
using cuda_fake_test::mix;

namespace {

t::Session make_session(const slstm_model* model, slstm_backend backend, std::int64_t max_batch,
                        std::int64_t max_time, void* stream, const char* config) {
  slstm_session_options o = t::options(max_batch, max_time);
  o.backend = backend;
  o.cuda_stream = stream;
  o.config = config;
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &s);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Session(s);
}

// One call of the sequence: its device buffers and what the CPU reference gave.
struct Pending {
  slstm_forward_args args;
  std::vector<std::int32_t> lengths;  // (read by the call, from host memory)
  std::unique_ptr<DeviceFloats> input, initial, output, final_state;
  std::vector<float> want_output, want_final;
  bool chained = false;  // the state updated in place (checked once, at the end)
};

void run_sequence(const slstm_model* model, const char* config, std::uint64_t seed, int calls) {
  const std::int64_t D = t::input_size(model), H = t::output_size(model);
  const std::int64_t max_batch = 6, max_time = 9, chain_batch = 3;
  const auto nan = std::nanf("");
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  {
    t::Session gpu = make_session(model, SLSTM_BACKEND_CUDA, max_batch, max_time, stream, config);
    t::Session cpu = make_session(model, SLSTM_BACKEND_CPU, max_batch, max_time, nullptr, nullptr);
    std::vector<std::unique_ptr<Pending>> pending;
    std::vector<float> chain_state;  // the in-place state as the reference has it
    std::unique_ptr<DeviceFloats> chain;
    for (int i = 0; i < calls; ++i) {
      INFO("settings \"" << config << "\", call " << i);
      auto p = std::make_unique<Pending>();
      p->chained = mix(++seed) % 3 == 0;
      const std::int64_t B =
          p->chained ? chain_batch : 1 + static_cast<std::int64_t>(mix(++seed) % max_batch);
      const auto T = static_cast<std::int64_t>(mix(++seed) % (max_time + 1));
      const slstm_layout layout = mix(++seed) % 2 == 1 ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR;
      const bool with_lengths = T > 0 && mix(++seed) % 2 == 1;
      const bool with_initial = p->chained || mix(++seed) % 2 == 1;
      const std::size_t S = t::state_count(model, B);
      const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), ++seed);
      for (std::int64_t b = 0; b < B; ++b) {
        p->lengths.push_back(static_cast<std::int32_t>(mix(++seed) % (T + 1)));
      }
      std::vector<float> s0;
      if (p->chained) {
        s0 = chain_state.empty() ? std::vector<float>(S, 0.0f) : chain_state;
      } else if (with_initial) {
        s0 = t::random_vector(S, ++seed);
      }
      // The reference, on host buffers.
      slstm_forward_args a;
      slstm_forward_args_init(&a);
      a.layout = layout;
      a.batch = B;
      a.time = T;
      a.input = T > 0 ? x.data() : nullptr;
      a.input_count = x.size();
      if (with_lengths) {
        a.sequence_lengths = p->lengths.data();
        a.sequence_lengths_count = p->lengths.size();
      }
      if (!s0.empty()) {
        a.initial_state = s0.data();
        a.initial_state_count = s0.size();
      }
      p->want_output.assign(static_cast<std::size_t>(B * T * H), 0.0f);
      p->want_final.assign(S, 0.0f);
      if (T > 0) {
        a.output = p->want_output.data();
        a.output_count = p->want_output.size();
      }
      a.final_state = p->want_final.data();
      a.final_state_count = S;
      REQUIRE(slstm_session_forward(cpu.get(), &a) == SLSTM_OK);
      // The same call on device buffers, queued below.
      p->input = std::make_unique<DeviceFloats>(x.size());
      p->input->upload(x);
      p->output = std::make_unique<DeviceFloats>(p->want_output.size());
      p->output->upload(std::vector<float>(p->want_output.size(), nan));
      p->args = a;
      p->args.memory = SLSTM_MEMORY_DEVICE;
      p->args.input = T > 0 ? p->input->get() : nullptr;
      p->args.output = T > 0 ? p->output->get() : nullptr;
      if (p->chained) {
        if (chain == nullptr) {
          chain = std::make_unique<DeviceFloats>(S);
          chain->upload(s0);
        }
        p->args.initial_state = chain->get();
        p->args.final_state = chain->get();
        chain_state = p->want_final;
      } else {
        p->initial = std::make_unique<DeviceFloats>(s0.size());
        p->initial->upload(s0);
        p->final_state = std::make_unique<DeviceFloats>(S);
        p->final_state->upload(std::vector<float>(S, nan));
        p->args.initial_state = s0.empty() ? nullptr : p->initial->get();
        p->args.final_state = p->final_state->get();
      }
      pending.push_back(std::move(p));
    }
    for (const auto& p : pending) {  // back to back: nothing runs until the synchronize
      const slstm_status st = slstm_session_forward(gpu.get(), &p->args);
      INFO(slstm_last_error());
      REQUIRE(st == SLSTM_OK);
    }
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    for (std::size_t i = 0; i < pending.size(); ++i) {
      INFO("settings \"" << config << "\", call " << i);
      const Pending& p = *pending[i];
      CHECK(t::rel_err(p.output->download(), p.want_output) <= 1e-5);
      if (!p.chained) CHECK(t::rel_err(p.final_state->download(), p.want_final) <= 1e-5);
    }
    if (chain != nullptr) CHECK(t::rel_err(chain->download(), chain_state) <= 1e-5);
  }
  REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
}

}  // namespace

TEST_CASE("back-to-back asynchronous calls on a caller stream each see their own lengths, "
          "input and state",
          "[cuda-fake][async]") {
  const char* configs[] = {"",
                           "cuda.graphs=off",
                           "cuda.fused=always",
                           "cuda.fused=never;cuda.chunk=2",
                           "cuda.persistent=layers",
                           "cuda.persistent=on",
                           "cuda.persistent=on;cuda.graphs=off",
                           "cuda.tune=on;cuda.persistent=on"};
  const int calls = cuda_fake_test::calls_per_run(24);
  for (const char* config : configs) {
    const t::Model stack = t::random_model(7, {33, 20, 9}, 77, 1.0f);
    run_sequence(stack.get(), config, 1000, calls);
    const t::Model one_layer = t::random_model(5, {17}, 78, 1.0f);
    run_sequence(one_layer.get(), config, 1001, calls);
  }
}
