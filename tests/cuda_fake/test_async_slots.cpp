// Stress test of the CUDA module's stream slots (cuda.slots=on) on the FAKE CUDA runtime
// (tests/cuda_fake): rounds of slot_forward calls on device buffers, queued back to back on
// a caller stream with no sync between them, each round a different batch of slots in a
// different order, time and lengths (0 included), with graphs, without, with the persistent
// kernel and with the cuBLAS step. The fake runtime runs the queued work only at the final
// synchronize, in a random order that honours only stream order, event waits and graph
// dependencies: each round must order its upload of slot ids and lengths, its gather and
// its scatter after the round before. Every round's output and every slot's final state are
// compared with one CPU reference session per stream, run step by step.
// Not covered: anything of a real GPU (the slot kernel's own races, real cuBLAS, speed).
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../support.hpp"
#include "stacklstm/stacklstm.h"
#include "stress_support.hpp"

using cuda_fake_test::DeviceFloats;
using cuda_fake_test::mix;

namespace {

// One round: the slots it runs, their lengths, its device buffers and the expected output.
struct Round {
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> lengths;
  std::int64_t time = 0;
  std::unique_ptr<DeviceFloats> input, output;
  std::vector<float> want;
};

// The reference for one slot: a batch-1 call of `time` steps from `state` (updated).
std::vector<float> reference_row(slstm_session* cpu, const float* x, std::int64_t time,
                                 std::int64_t D, std::int64_t H, std::int32_t* length,
                                 std::vector<float>* state) {
  std::vector<float> out(static_cast<std::size_t>(time * H)), fin(state->size());
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = 1;
  a.time = time;
  a.input = x;
  a.input_count = static_cast<std::size_t>(time * D);
  a.sequence_lengths = length;
  a.sequence_lengths_count = 1;
  a.initial_state = state->data();
  a.initial_state_count = state->size();
  a.output = out.data();
  a.output_count = out.size();
  a.final_state = fin.data();
  a.final_state_count = fin.size();
  REQUIRE(slstm_session_forward(cpu, &a) == SLSTM_OK);
  *state = fin;
  return out;
}

}  // namespace

TEST_CASE("asynchronous slot calls on a caller stream each gather and scatter their own slots",
          "[cuda-fake][async][slot]") {
  const int rounds = cuda_fake_test::calls_per_run(10);
  for (const char* extra : {"", ";cuda.graphs=off", ";cuda.persistent=on", ";cuda.fused=never"}) {
    const t::Model model = t::random_model(6, {21, 13}, 501, 1.0f);
    const std::int64_t D = t::input_size(model.get()), H = t::output_size(model.get());
    const std::int64_t slots = 5, max_batch = 4, max_time = 4;
    const std::size_t S = t::state_count(model.get(), 1);
    const std::string config = std::string("cuda.slots=on") + extra;
    INFO("settings \"" << config << "\"");
    cudaStream_t stream = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    {
      slstm_session_options o;
      slstm_session_options_init(&o);
      o.backend = SLSTM_BACKEND_CUDA;
      o.max_batch = max_batch;
      o.max_time = max_time;
      o.max_slots = slots;
      o.config = config.c_str();
      o.cuda_stream = stream;
      slstm_session* raw = nullptr;
      REQUIRE(slstm_session_create(model.get(), &o, &raw) == SLSTM_OK);
      const t::Session gpu(raw);
      slstm_session_options c;
      slstm_session_options_init(&c);
      c.backend = SLSTM_BACKEND_CPU;
      c.max_batch = 1;
      c.max_time = max_time;
      c.cpu_path = SLSTM_CPU_PATH_REFERENCE;
      raw = nullptr;
      REQUIRE(slstm_session_create(model.get(), &c, &raw) == SLSTM_OK);
      const t::Session cpu(raw);

      std::vector<std::vector<float>> state(static_cast<std::size_t>(slots));
      std::vector<std::int64_t> slot_id(static_cast<std::size_t>(slots));
      for (std::size_t k = 0; k < state.size(); ++k) {
        state[k] = t::random_vector(S, 600 + k);
        REQUIRE(slstm_session_slot_open(gpu.get(), state[k].data(), S, SLSTM_MEMORY_HOST,
                                        &slot_id[k]) == SLSTM_OK);
      }
      std::vector<Round> plan;
      std::uint64_t seed = 700;
      for (int r = 0; r < rounds; ++r) {
        Round R;
        const auto B = 1 + static_cast<std::int64_t>(mix(++seed) % max_batch);
        R.time = 1 + static_cast<std::int64_t>(mix(++seed) % max_time);
        std::vector<std::size_t> order(state.size());
        for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
        for (std::size_t k = order.size() - 1; k > 0; --k) {
          std::swap(order[k], order[mix(++seed) % (k + 1)]);
        }
        order.resize(static_cast<std::size_t>(B));
        const std::vector<float> x =
            t::random_vector(static_cast<std::size_t>(B * R.time * D), ++seed);
        for (std::size_t b = 0; b < order.size(); ++b) {
          R.ids.push_back(slot_id[order[b]]);
          R.lengths.push_back(static_cast<std::int32_t>(mix(++seed) % (R.time + 1)));
          const float* xb = x.data() + static_cast<std::ptrdiff_t>(b) * R.time * D;
          const std::vector<float> out = reference_row(cpu.get(), xb, R.time, D, H,
                                                       &R.lengths.back(), &state[order[b]]);
          R.want.insert(R.want.end(), out.begin(), out.end());
        }
        R.input = std::make_unique<DeviceFloats>(x.size());
        R.input->upload(x);
        R.output = std::make_unique<DeviceFloats>(R.want.size());
        plan.push_back(std::move(R));
      }
      for (const Round& R : plan) {  // back to back: nothing runs until the synchronize
        slstm_slot_forward_args a;
        slstm_slot_forward_args_init(&a);
        a.batch = static_cast<std::int64_t>(R.ids.size());
        a.slot_ids = R.ids.data();
        a.slot_ids_count = R.ids.size();
        a.time = R.time;
        a.input = R.input->get();
        a.input_count = static_cast<std::size_t>(a.batch * a.time * D);
        a.sequence_lengths = R.lengths.data();
        a.sequence_lengths_count = R.lengths.size();
        a.output = R.output->get();
        a.output_count = R.want.size();
        a.memory = SLSTM_MEMORY_DEVICE;
        const slstm_status st = slstm_session_slot_forward(gpu.get(), &a);
        INFO(slstm_last_error());
        REQUIRE(st == SLSTM_OK);
      }
      REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
      for (std::size_t r = 0; r < plan.size(); ++r) {
        INFO("round " << r);
        CHECK(t::rel_err(plan[r].output->download(), plan[r].want) <= 1e-5);
      }
      for (std::size_t k = 0; k < state.size(); ++k) {
        INFO("slot " << k);
        std::vector<float> got(S);
        REQUIRE(slstm_session_slot_get_state(gpu.get(), slot_id[k], got.data(), S,
                                             SLSTM_MEMORY_HOST) == SLSTM_OK);
        CHECK(t::rel_err(got, state[k]) <= 1e-5);
      }
    }
    REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
  }
}
