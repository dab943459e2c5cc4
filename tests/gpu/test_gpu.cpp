// The CUDA backend against the CPU reference (the oracle). Every case draws fresh random
// weights and inputs, fills output buffers with a NaN poison first, and compares with a
// normwise relative error: <= 1e-5 in FP32, <= 1e-3 with TF32.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "../../cuda/generic_cells.cuh"
#include "../support.hpp"
#include "stacklstm/stacklstm.h"

namespace {

using t::Model;
using t::poisoned;
using t::random_vector;
using t::rel_err;
using t::Session;
using t::state_count;

constexpr double kTolFp32 = 1e-5;
constexpr double kTolTf32 = 1e-3;


#define CUDA_OK(expr)                                          \
  do {                                                         \
    const cudaError_t e_ = (expr);                             \
    INFO(#expr << ": " << cudaGetErrorString(e_));             \
    REQUIRE(e_ == cudaSuccess);                                \
  } while (0)

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}




bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}


struct SessionSpec {
  slstm_backend backend = SLSTM_BACKEND_CUDA;
  std::int64_t max_batch = 1;
  std::int64_t max_time = 1;
  bool tf32 = false;
  void* stream = nullptr;
  const char* config = nullptr;  // keyed settings
};

Session make_session(const slstm_model* model, const SessionSpec& spec) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = spec.backend;
  o.max_batch = spec.max_batch;
  o.max_time = spec.max_time;
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  o.allow_tf32 = spec.tf32 ? 1 : 0;
  o.cuda_stream = spec.stream;
  o.config = spec.config;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &s);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Session(s);
}

// A CUDA session created with the module's knobs (SLSTM_CUDA_*) set to the given values: the
// module reads them at session creation; they are removed again before this returns.
Session gpu_session_with(std::initializer_list<std::pair<const char*, const char*>> env,
                         const slstm_model* model, std::int64_t b, std::int64_t t);

Session cpu_session(const slstm_model* model, std::int64_t b, std::int64_t t) {
  SessionSpec spec;
  spec.backend = SLSTM_BACKEND_CPU;
  spec.max_batch = b;
  spec.max_time = std::max<std::int64_t>(t, 1);
  return make_session(model, spec);
}

Session gpu_session(const slstm_model* model, std::int64_t b, std::int64_t t, bool tf32 = false,
                    void* stream = nullptr) {
  SessionSpec spec;
  spec.max_batch = b;
  spec.max_time = std::max<std::int64_t>(t, 1);
  spec.tf32 = tf32;
  spec.stream = stream;
  return make_session(model, spec);
}

Session gpu_session_with(std::initializer_list<std::pair<const char*, const char*>> env,
                         const slstm_model* model, std::int64_t b, std::int64_t t) {
  struct Unset {
    std::initializer_list<std::pair<const char*, const char*>> vars;
    ~Unset() {
      for (const auto& v : vars) ::unsetenv(v.first);
    }
  } unset{env};
  for (const auto& v : env) ::setenv(v.first, v.second, 1);
  return gpu_session(model, b, t);
}


// One call's inputs.
struct Inputs {
  std::int64_t batch = 1;
  std::int64_t time = 1;
  slstm_layout layout = SLSTM_BATCH_MAJOR;
  std::vector<float> input;
  std::vector<std::int32_t> lengths;  // empty: none
  std::vector<float> initial;         // empty: zeros
};

Inputs make_inputs(const slstm_model* m, std::int64_t b, std::int64_t t, slstm_layout layout,
                   bool lengths, bool initial, std::uint64_t seed) {
  Inputs in;
  in.batch = b;
  in.time = t;
  in.layout = layout;
  in.input = random_vector(static_cast<std::size_t>(b * t * t::input_size(m)), seed);
  if (lengths) {
    // {0, 1, T-1, T} mixed in one batch, in a seed-dependent order.
    const std::int32_t tt = static_cast<std::int32_t>(t);
    const std::int32_t choices[4] = {0, std::min(1, tt), std::max(0, tt - 1), tt};
    for (std::int64_t i = 0; i < b; ++i) {
      in.lengths.push_back(choices[(mix(seed + 7) + static_cast<std::uint64_t>(i)) % 4]);
    }
  }
  if (initial) in.initial = random_vector(state_count(m, b), seed + 99);
  return in;
}

struct Result {
  std::vector<float> output;
  std::vector<float> final_state;
};

slstm_forward_args args_for(const slstm_model* m, const Inputs& in) {
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.layout = in.layout;
  a.batch = in.batch;
  a.time = in.time;
  a.input = in.time > 0 ? in.input.data() : nullptr;
  a.input_count = in.time > 0 ? in.input.size() : 0;
  if (!in.lengths.empty()) {
    a.sequence_lengths = in.lengths.data();
    a.sequence_lengths_count = in.lengths.size();
  }
  if (!in.initial.empty()) {
    a.initial_state = in.initial.data();
    a.initial_state_count = in.initial.size();
  }
  (void)m;
  return a;
}

Result run_host(slstm_session* s, const slstm_model* m, const Inputs& in) {
  Result r;
  r.output = poisoned(static_cast<std::size_t>(in.batch * in.time * t::output_size(m)));
  r.final_state = poisoned(state_count(m, in.batch));
  slstm_forward_args a = args_for(m, in);
  if (in.time > 0) {
    a.output = r.output.data();
    a.output_count = r.output.size();
  }
  a.final_state = r.final_state.data();
  a.final_state_count = r.final_state.size();
  const slstm_status st = slstm_session_forward(s, &a);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return r;
}

struct DeviceBuffer {
  float* p = nullptr;
  std::size_t n = 0;
  explicit DeviceBuffer(std::size_t count) : n(count) {
    if (count > 0) CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p), count * sizeof(float)));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p != nullptr) (void)cudaFree(p);
  }
  void upload(const std::vector<float>& v) {
    REQUIRE(v.size() == n);
    if (n > 0) CUDA_OK(cudaMemcpy(p, v.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
  std::vector<float> download() const {
    std::vector<float> v(n);
    if (n > 0) CUDA_OK(cudaMemcpy(v.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return v;
  }
};

// The same call with every float buffer in device memory (poisoned outputs). With a caller
// stream, the call is asynchronous: synchronise on it before reading back.
// One call's buffers in device memory and the arguments that name them: the input and
// initial state uploaded, the output and final state poisoned, every upload complete (a
// pageable cudaMemcpy H2D may return before its DMA lands, and a non-blocking caller stream
// is not ordered after the legacy stream).
struct DeviceCall {
  DeviceBuffer input, initial, output, final_state;
  slstm_forward_args args;
  DeviceCall(const slstm_model* m, const Inputs& in)
      : input(in.time > 0 ? in.input.size() : 0),
        initial(in.initial.size()),
        output(static_cast<std::size_t>(in.batch * in.time * t::output_size(m))),
        final_state(state_count(m, in.batch)),
        args(args_for(m, in)) {
    if (in.time > 0) input.upload(in.input);
    initial.upload(in.initial);
    output.upload(poisoned(output.n));
    final_state.upload(poisoned(final_state.n));
    CUDA_OK(cudaDeviceSynchronize());
    args.memory = SLSTM_MEMORY_DEVICE;
    args.input = input.p;
    if (!in.initial.empty()) args.initial_state = initial.p;
    if (in.time > 0) {
      args.output = output.p;
      args.output_count = output.n;
    }
    args.final_state = final_state.p;
    args.final_state_count = final_state.n;
  }
};

Result run_device(slstm_session* s, const slstm_model* m, const Inputs& in,
                  cudaStream_t stream = nullptr) {
  DeviceCall d(m, in);
  const slstm_status st = slstm_session_forward(s, &d.args);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  if (stream != nullptr) CUDA_OK(cudaStreamSynchronize(stream));
  Result r;
  r.output = d.output.download();
  r.final_state = d.final_state.download();
  return r;
}

// Rows past their length must be exactly zero.
void require_masked_zeros(const Inputs& in, const std::vector<float>& out, std::int64_t h) {
  if (in.lengths.empty()) return;
  for (std::int64_t b = 0; b < in.batch; ++b) {
    for (std::int64_t t = in.lengths[static_cast<std::size_t>(b)]; t < in.time; ++t) {
      const std::int64_t row = in.layout == SLSTM_TIME_MAJOR ? t * in.batch + b : b * in.time + t;
      for (std::int64_t u = 0; u < h; ++u) {
        const float v = out[static_cast<std::size_t>(row * h + u)];
        INFO("b " << b << " t " << t << " u " << u);
        REQUIRE(v == 0.0f);
        REQUIRE(!std::signbit(v));
      }
    }
  }
}

void require_close(const Result& got, const Result& want, double tol) {
  const double e_out = rel_err(got.output, want.output);
  const double e_state = rel_err(got.final_state, want.final_state);
  INFO("output rel err " << e_out << ", final state rel err " << e_state);
  CHECK(e_out <= tol);
  CHECK(e_state <= tol);
}

// Both results carry the same bits (output and final state).
void check_same_bits(const Result& a, const Result& b) {
  CHECK(same_bits(a.output, b.output));
  CHECK(same_bits(a.final_state, b.final_state));
}

// A non-blocking stream of the caller's, destroyed at the end of the scope.
struct CallerStream {
  cudaStream_t s = nullptr;
  CallerStream() { CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  CallerStream(const CallerStream&) = delete;
  CallerStream& operator=(const CallerStream&) = delete;
  ~CallerStream() {
    if (s != nullptr) (void)cudaStreamDestroy(s);
  }
};

struct Shape {
  std::int64_t input;
  std::vector<std::int64_t> hidden;
  std::int64_t batch;
  std::int64_t time;
};

// Odd sizes: H in {1, 3, 100, 257, 1025}, B in {1, 7, 64}, T in {0, 1, 100}, 1 to 3 layers.
// (Kept small enough for the double-precision CPU reference to stay quick.)
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {5, {1}, 1, 1},
      {3, {3, 1}, 7, 100},
      {16, {100}, 64, 100},
      {31, {257, 3}, 7, 100},
      {8, {1025}, 1, 100},
      {64, {1025, 100}, 7, 1},
      {128, {100, 200, 300}, 10, 100},  // the seed scenario
      {12, {257}, 64, 0},
      {7, {3, 257, 1}, 64, 37},
      {1, {1025, 1}, 64, 1},
      {9, {700}, 16, 20},    // the fused step's largest batch, its shared memory nearly full
      {5, {40, 33}, 17, 6},  // one row past the fused step: cuBLAS GEMM + step kernel
  };
  return s;
}

std::string describe(const Shape& sh, slstm_layout layout, bool lengths, bool initial) {
  std::string h;
  for (std::int64_t v : sh.hidden) h += (h.empty() ? "" : ",") + std::to_string(v);
  return "D=" + std::to_string(sh.input) + " H=[" + h + "] B=" + std::to_string(sh.batch) +
         " T=" + std::to_string(sh.time) +
         (layout == SLSTM_TIME_MAJOR ? " time-major" : " batch-major") +
         (lengths ? " lengths" : "") + (initial ? " initial-state" : "");
}

}  // namespace

TEST_CASE("CUDA matches the CPU reference over odd shapes, both layouts, lengths and states "
          "(FP32)", "[gpu]") {
  std::uint64_t seed = 1000;
  for (const Shape& sh : shapes()) {
    Model m = t::random_model(sh.input, sh.hidden, ++seed, 1.0f);
    Session cpu = cpu_session(m.get(), sh.batch, sh.time);
    Session gpu = gpu_session(m.get(), sh.batch, sh.time);
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool lengths = variant >= 1 && sh.time > 0;
        const bool initial = variant == 2 || variant == 0;
        INFO(describe(sh, layout, lengths, initial));
        const Inputs in = make_inputs(m.get(), sh.batch, sh.time, layout, lengths, initial, ++seed);
        const Result want = run_host(cpu.get(), m.get(), in);
        const Result got = run_host(gpu.get(), m.get(), in);
        require_close(got, want, kTolFp32);
        require_masked_zeros(in, got.output, t::output_size(m.get()));
      }
    }
  }
}

TEST_CASE("CUDA with allow_tf32 stays within 1e-3 of the CPU reference", "[gpu]") {
  std::uint64_t seed = 2000;
  for (const Shape& sh : {Shape{128, {100, 200, 300}, 10, 100}, Shape{31, {257, 3}, 7, 100},
                          Shape{64, {1025}, 7, 20}, Shape{48, {257, 64}, 64, 12}}) {
    Model m = t::random_model(sh.input, sh.hidden, ++seed, 1.0f);
    Session cpu = cpu_session(m.get(), sh.batch, sh.time);
    Session gpu = gpu_session(m.get(), sh.batch, sh.time, /*tf32=*/true);
    const Inputs in = make_inputs(m.get(), sh.batch, sh.time, SLSTM_BATCH_MAJOR, true, true, ++seed);
    INFO(describe(sh, SLSTM_BATCH_MAJOR, true, true));
    require_close(run_host(gpu.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolTf32);
  }
}

TEST_CASE("device buffers give bitwise the same results as host buffers", "[gpu]") {
  Model m = t::random_model(20, {100, 257}, 3001, 1.0f);
  Session gpu = gpu_session(m.get(), 64, 100);
  for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
    for (std::int64_t t : {std::int64_t{0}, std::int64_t{1}, std::int64_t{100}}) {
      const Inputs in = make_inputs(m.get(), 64, t, layout, t > 0, true, 3002 + static_cast<std::uint64_t>(t));
      const Result host = run_host(gpu.get(), m.get(), in);
      const Result dev = run_device(gpu.get(), m.get(), in);
      INFO("T=" << t << " layout " << layout);
      CHECK(same_bits(host.output, dev.output));
      CHECK(same_bits(host.final_state, dev.final_state));
    }
  }
}

TEST_CASE("a caller's cudaStream_t runs device-buffer calls asynchronously on that stream",
          "[gpu]") {
  Model m = t::random_model(24, {64, 32}, 3101, 1.0f);
  cudaStream_t stream = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    Session gpu = gpu_session(m.get(), 7, 50, false, stream);
    Session cpu = cpu_session(m.get(), 7, 50);
    const Inputs in = make_inputs(m.get(), 7, 50, SLSTM_TIME_MAJOR, true, true, 3102);
    const Result want = run_host(cpu.get(), m.get(), in);
    require_close(run_device(gpu.get(), m.get(), in, stream), want, kTolFp32);
    require_close(run_host(gpu.get(), m.get(), in), want, kTolFp32);
  }
  CUDA_OK(cudaStreamDestroy(stream));
}

TEST_CASE("graph replay after a shape change gives the first run's bits again", "[gpu]") {
  Model m = t::random_model(33, {100, 257, 3}, 4001, 1.0f);
  Session gpu = gpu_session(m.get(), 64, 100);
  Session cpu = cpu_session(m.get(), 64, 100);
  const Inputs a = make_inputs(m.get(), 64, 100, SLSTM_BATCH_MAJOR, true, true, 4002);
  const Inputs b = make_inputs(m.get(), 7, 37, SLSTM_TIME_MAJOR, true, false, 4003);
  const Inputs c = make_inputs(m.get(), 64, 100, SLSTM_TIME_MAJOR, false, true, 4004);
  const Result a1 = run_host(gpu.get(), m.get(), a);
  const Result b1 = run_host(gpu.get(), m.get(), b);
  const Result c1 = run_host(gpu.get(), m.get(), c);
  const Result a2 = run_host(gpu.get(), m.get(), a);
  const Result b2 = run_host(gpu.get(), m.get(), b);
  // More shapes than the session's graph cache holds, then the first one again.
  for (std::int64_t t = 1; t <= 10; ++t) {
    (void)run_host(gpu.get(), m.get(), make_inputs(m.get(), 3, t, SLSTM_BATCH_MAJOR, false, false, 4100 + static_cast<std::uint64_t>(t)));
  }
  const Result a3 = run_host(gpu.get(), m.get(), a);
  CHECK(same_bits(a1.output, a2.output));
  CHECK(same_bits(a1.final_state, a2.final_state));
  CHECK(same_bits(a1.output, a3.output));
  CHECK(same_bits(a1.final_state, a3.final_state));
  CHECK(same_bits(b1.output, b2.output));
  CHECK(same_bits(b1.final_state, b2.final_state));
  require_close(a1, run_host(cpu.get(), m.get(), a), kTolFp32);
  require_close(b1, run_host(cpu.get(), m.get(), b), kTolFp32);
  require_close(c1, run_host(cpu.get(), m.get(), c), kTolFp32);
}

TEST_CASE("reruns of the same call are bitwise identical", "[gpu]") {
  Model m = t::random_model(128, {100, 200, 300}, 5001, 1.0f);
  Session gpu = gpu_session(m.get(), 10, 100);
  const Inputs in = make_inputs(m.get(), 10, 100, SLSTM_BATCH_MAJOR, true, true, 5002);
  const Result first = run_host(gpu.get(), m.get(), in);
  for (int i = 0; i < 3; ++i) {
    const Result again = run_host(gpu.get(), m.get(), in);
    CHECK(same_bits(first.output, again.output));
    CHECK(same_bits(first.final_state, again.final_state));
  }
}

TEST_CASE("two sessions on one model agree bitwise, and outlive the model handle", "[gpu]") {
  Model m = t::random_model(40, {257, 100}, 6001, 1.0f);
  Session s1 = gpu_session(m.get(), 7, 30);
  Session s2 = gpu_session(m.get(), 7, 30);
  const Inputs in = make_inputs(m.get(), 7, 30, SLSTM_BATCH_MAJOR, true, true, 6002);
  const std::int64_t h_out = t::output_size(m.get());
  const std::size_t n_state = state_count(m.get(), 7);
  const Result r1 = run_host(s1.get(), m.get(), in);
  const Result r2 = run_host(s2.get(), m.get(), in);
  CHECK(same_bits(r1.output, r2.output));
  CHECK(same_bits(r1.final_state, r2.final_state));
  m.reset();  // the sessions keep the model alive
  std::vector<float> out = poisoned(static_cast<std::size_t>(7 * 30 * h_out));
  std::vector<float> fin = poisoned(n_state);
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = 7;
  a.time = 30;
  a.input = in.input.data();
  a.input_count = in.input.size();
  a.sequence_lengths = in.lengths.data();
  a.sequence_lengths_count = in.lengths.size();
  a.initial_state = in.initial.data();
  a.initial_state_count = in.initial.size();
  a.output = out.data();
  a.output_count = out.size();
  a.final_state = fin.data();
  a.final_state_count = fin.size();
  REQUIRE(slstm_session_forward(s2.get(), &a) == SLSTM_OK);
  CHECK(same_bits(out, r1.output));
  CHECK(same_bits(fin, r1.final_state));
}

TEST_CASE("the state updates in place, on the host and on the device, and streaming in chunks "
          "matches one call", "[gpu]") {
  Model m = t::random_model(9, {100, 3}, 7001, 1.0f);
  Session gpu = gpu_session(m.get(), 7, 100);
  Session cpu = cpu_session(m.get(), 7, 100);
  const Inputs whole = make_inputs(m.get(), 7, 100, SLSTM_TIME_MAJOR, false, true, 7002);
  const Result want = run_host(cpu.get(), m.get(), whole);
  const std::int64_t D = t::input_size(m.get());
  const std::int64_t H = t::output_size(m.get());
  // Host, in place: four chunks of 25 steps, time-major so each chunk is a contiguous slice.
  std::vector<float> state = whole.initial;
  std::vector<float> out(static_cast<std::size_t>(7 * 100 * H));
  DeviceBuffer d_state(state.size());
  d_state.upload(whole.initial);
  std::vector<float> out_dev(out.size());
  for (std::int64_t t0 = 0; t0 < 100; t0 += 25) {
    slstm_forward_args a;
    slstm_forward_args_init(&a);
    a.layout = SLSTM_TIME_MAJOR;
    a.batch = 7;
    a.time = 25;
    a.input = whole.input.data() + t0 * 7 * D;
    a.input_count = static_cast<std::size_t>(25 * 7 * D);
    a.initial_state = state.data();
    a.initial_state_count = state.size();
    a.final_state = state.data();
    a.final_state_count = state.size();
    a.output = out.data() + t0 * 7 * H;
    a.output_count = static_cast<std::size_t>(25 * 7 * H);
    REQUIRE(slstm_session_forward(gpu.get(), &a) == SLSTM_OK);
    // Device, in place, the state never leaving the GPU.
    DeviceBuffer d_in(static_cast<std::size_t>(25 * 7 * D));
    d_in.upload(std::vector<float>(whole.input.begin() + t0 * 7 * D,
                                   whole.input.begin() + (t0 + 25) * 7 * D));
    DeviceBuffer d_out(static_cast<std::size_t>(25 * 7 * H));
    a.memory = SLSTM_MEMORY_DEVICE;
    a.input = d_in.p;
    a.initial_state = d_state.p;
    a.final_state = d_state.p;
    a.output = d_out.p;
    REQUIRE(slstm_session_forward(gpu.get(), &a) == SLSTM_OK);
    const std::vector<float> chunk = d_out.download();
    std::copy(chunk.begin(), chunk.end(), out_dev.begin() + t0 * 7 * H);
  }
  CHECK(rel_err(out, want.output) <= kTolFp32);
  CHECK(rel_err(state, want.final_state) <= kTolFp32);
  CHECK(rel_err(out_dev, want.output) <= kTolFp32);
  CHECK(same_bits(d_state.download(), state));
}

TEST_CASE("the single-step call equals a forward call of time 1", "[gpu]") {
  Model m = t::random_model(13, {257, 100, 1}, 8001, 1.0f);
  Session gpu = gpu_session(m.get(), 64, 4);
  Session cpu = cpu_session(m.get(), 64, 4);
  const Inputs in = make_inputs(m.get(), 64, 1, SLSTM_BATCH_MAJOR, false, true, 8002);
  const Result want = run_host(cpu.get(), m.get(), in);
  std::vector<float> out = poisoned(static_cast<std::size_t>(64 * t::output_size(m.get())));
  std::vector<float> state = in.initial;
  REQUIRE(slstm_session_step(gpu.get(), 64, in.input.data(), in.input.size(), state.data(),
                             state.size(), out.data(), out.size(), state.data(),
                             state.size()) == SLSTM_OK);
  CHECK(rel_err(out, want.output) <= kTolFp32);
  CHECK(rel_err(state, want.final_state) <= kTolFp32);
  // NULL state: zeros.
  std::vector<float> fresh = poisoned(state.size());
  REQUIRE(slstm_session_step(gpu.get(), 64, in.input.data(), in.input.size(), nullptr, 0,
                             nullptr, 0, fresh.data(), fresh.size()) == SLSTM_OK);
  Inputs zero = in;
  zero.initial.clear();
  CHECK(rel_err(fresh, run_host(cpu.get(), m.get(), zero).final_state) <= kTolFp32);
}

TEST_CASE("time 0 returns the initial state, or zeros, on host and device buffers", "[gpu]") {
  Model m = t::random_model(6, {3, 5}, 9001, 1.0f);
  Session gpu = gpu_session(m.get(), 7, 10);
  const Inputs with = make_inputs(m.get(), 7, 0, SLSTM_BATCH_MAJOR, false, true, 9002);
  CHECK(same_bits(run_host(gpu.get(), m.get(), with).final_state, with.initial));
  CHECK(same_bits(run_device(gpu.get(), m.get(), with).final_state, with.initial));
  const Inputs without = make_inputs(m.get(), 7, 0, SLSTM_BATCH_MAJOR, false, false, 9003);
  const std::vector<float> zeros(state_count(m.get(), 7), 0.0f);
  CHECK(same_bits(run_host(gpu.get(), m.get(), without).final_state, zeros));
  CHECK(same_bits(run_device(gpu.get(), m.get(), without).final_state, zeros));
}

TEST_CASE("the wavefront chunk size and the graph switch change the schedule, not the numbers",
          "[gpu]") {
  Model m = t::random_model(17, {100, 257, 3}, 9501, 1.0f);
  Session cpu = cpu_session(m.get(), 64, 50);
  const Inputs in = make_inputs(m.get(), 64, 50, SLSTM_BATCH_MAJOR, true, true, 9502);
  const Result want = run_host(cpu.get(), m.get(), in);
  struct Env {
    const char* chunk;
    const char* graphs;
  };
  for (const Env& e : {Env{"1", "1"}, Env{"3", "1"}, Env{"50", "1"}, Env{"4", "0"}}) {
    Session gpu = gpu_session_with({{"SLSTM_CUDA_CHUNK", e.chunk}, {"SLSTM_CUDA_GRAPHS", e.graphs}},
                                   m.get(), 64, 50);
    INFO("SLSTM_CUDA_CHUNK=" << e.chunk << " SLSTM_CUDA_GRAPHS=" << e.graphs);
    const Result got = run_host(gpu.get(), m.get(), in);
    require_close(got, want, kTolFp32);
    require_masked_zeros(in, got.output, t::output_size(m.get()));
    const Result again = run_host(gpu.get(), m.get(), in);
    CHECK(same_bits(got.output, again.output));
  }
}

// Batches of at most 16 whose h fits in shared memory can run the fused recurrent step (by
// default where it was measured faster; SLSTM_CUDA_FUSED=always wherever it fits); others,
// and every batch with SLSTM_CUDA_FUSED=0, a cuBLAS GEMM and the step kernel.
TEST_CASE("the fused small-batch step and the cuBLAS step both match the CPU reference",
          "[gpu]") {
  std::uint64_t seed = 9700;
  for (const Shape& sh : {Shape{11, {100, 257, 3}, 7, 31}, Shape{9, {700}, 16, 20},
                          Shape{9, {769}, 16, 5}, Shape{6, {200, 2048}, 1, 9},
                          Shape{5, {40}, 17, 6}}) {
    Model m = t::random_model(sh.input, sh.hidden, ++seed, 1.0f);
    Session cpu = cpu_session(m.get(), sh.batch, sh.time);
    const Inputs in = make_inputs(m.get(), sh.batch, sh.time, SLSTM_TIME_MAJOR, true, true, ++seed);
    const Result want = run_host(cpu.get(), m.get(), in);
    for (const char* fused : {"always", "1", "0"}) {
      Session gpu = gpu_session_with({{"SLSTM_CUDA_FUSED", fused}}, m.get(), sh.batch, sh.time);
      INFO(describe(sh, SLSTM_TIME_MAJOR, true, true) << " SLSTM_CUDA_FUSED=" << fused);
      const Result got = run_host(gpu.get(), m.get(), in);
      require_close(got, want, kTolFp32);
      require_masked_zeros(in, got.output, t::output_size(m.get()));
    }
  }
}

// (The chunk changes the row count of the chunked input GEMMs, and cuBLAS may then pick
// another kernel: across chunk sizes the numbers agree to FP32 rounding, not bit for bit.)
TEST_CASE("with the fused step, the chunk size keeps the numbers and graphs keep the bits",
          "[gpu]") {
  Model m = t::random_model(13, {64, 129, 5}, 9801, 1.0f);
  Session cpu = cpu_session(m.get(), 7, 23);
  const Inputs in = make_inputs(m.get(), 7, 23, SLSTM_BATCH_MAJOR, true, true, 9802);
  const Result want = run_host(cpu.get(), m.get(), in);
  for (const char* chunk : {"1", "2", "23"}) {
    Result with_graphs;
    for (const char* graphs : {"1", "0"}) {
      Session gpu = gpu_session_with({{"SLSTM_CUDA_CHUNK", chunk}, {"SLSTM_CUDA_GRAPHS", graphs}},
                                     m.get(), 7, 23);
      INFO("SLSTM_CUDA_CHUNK=" << chunk << " SLSTM_CUDA_GRAPHS=" << graphs);
      const Result got = run_host(gpu.get(), m.get(), in);
      require_close(got, want, kTolFp32);
      require_masked_zeros(in, got.output, t::output_size(m.get()));
      if (with_graphs.output.empty()) {
        with_graphs = got;
      } else {
        CHECK(same_bits(got.output, with_graphs.output));
        CHECK(same_bits(got.final_state, with_graphs.final_state));
      }
    }
  }
}

// Keyed settings (slstm_session_options.config) reach the module, and the plan it reports
// (slstm_session_describe) is the one that ran: forced paths give the same numbers.
namespace {
Session gpu_session_config(const slstm_model* model, std::int64_t b, std::int64_t t,
                           const char* config) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = b;
  o.max_time = t;
  o.config = config;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &s);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Session(s);
}
}  // namespace

TEST_CASE("the plan reports each layer's step path as the keyed settings choose it, and "
          "every choice gives the reference's numbers", "[gpu]") {
  Model m = t::random_model(9, {100, 33}, 9801, 1.0f);
  Session cpu = cpu_session(m.get(), 4, 12);
  const Inputs in = make_inputs(m.get(), 4, 12, SLSTM_BATCH_MAJOR, true, true, 9802);
  const Result want = run_host(cpu.get(), m.get(), in);
  Session never = gpu_session_config(m.get(), 4, 12, "cuda.fused=never;cuda.graphs=off");
  const std::string jn = t::describe_json(never.get());
  CHECK(jn.find("\"fused_step_batches\": \"none\"") != std::string::npos);
  CHECK(jn.find("fused-step") == std::string::npos);
  CHECK(jn.find("\"cuda.graphs\": \"off (config)\"") != std::string::npos);
  CHECK(jn.find("\"path\": \"stream\"") != std::string::npos);
  Session always = gpu_session_config(m.get(), 4, 12, "cuda.fused=always;cuda.chunk=3");
  const std::string ja = t::describe_json(always.get());
  CHECK(ja.find("\"fused_step_batches\": \"1-4\"") != std::string::npos);
  CHECK(ja.find("\"wavefront_chunk\": \"3\"") != std::string::npos);
  for (Session* s : {&never, &always}) {
    const Result got = run_host(s->get(), m.get(), in);
    require_close(got, want, kTolFp32);
  }
}

TEST_CASE("device memory with a host pointer is rejected before anything is written", "[gpu]") {
  Model m = t::random_model(4, {8}, 9601, 1.0f);
  Session gpu = gpu_session(m.get(), 2, 3);
  const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 9602);
  std::vector<float> out = poisoned(static_cast<std::size_t>(2 * 3 * 8));
  slstm_forward_args a = args_for(m.get(), in);
  a.memory = SLSTM_MEMORY_DEVICE;  // but every buffer is host memory
  a.output = out.data();
  a.output_count = out.size();
  const slstm_status st = slstm_session_forward(gpu.get(), &a);
  CHECK(st == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("SLSTM_MEMORY_DEVICE") != std::string::npos);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return std::isnan(v); }));
}

TEST_CASE("a device index past the last device is unavailable, with the reason", "[gpu]") {
  Model m = t::random_model(4, {8}, 9701, 1.0f);
  int count = 0;
  CUDA_OK(cudaGetDeviceCount(&count));
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 1;
  o.max_time = 1;
  o.device = count;
  slstm_session* s = reinterpret_cast<slstm_session*>(&count);  // must stay untouched
  CHECK(slstm_session_create(m.get(), &o, &s) == SLSTM_ERR_BACKEND_UNAVAILABLE);
  CHECK(s == reinterpret_cast<slstm_session*>(&count));
  CHECK(std::string(slstm_last_error()).find("out of range") != std::string::npos);
}

// Stream slots on CUDA (cuda.slots=on): the states stay in device memory, gathered and
// scattered by a kernel. Each stream's numbers are those of its own batch-1 CPU reference
// session fed the same frames, within the FP32 tolerance, over rounds of different subsets of
// slots in shuffled order, per-row lengths, host and device buffers, and state reads/writes.
TEST_CASE("stream slots on CUDA (cuda.slots=on) follow each stream's own CPU reference run",
          "[gpu][slot]") {
  Model m = t::random_model(9, {33, 20}, 9901, 1.0f);
  const std::int64_t kStreams = 6, kBatch = 4, kTime = 5;
  const std::int64_t D = t::input_size(m.get()), H = t::output_size(m.get());
  const std::size_t S1 = state_count(m.get(), 1);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = kBatch;
  o.max_time = kTime;
  o.max_slots = kStreams;
  o.config = "cuda.slots=on";
  slstm_session* raw = nullptr;
  {
    const slstm_status st = slstm_session_create(m.get(), &o, &raw);
    INFO(slstm_last_error());
    REQUIRE(st == SLSTM_OK);
  }
  Session gpu(raw);
  Session cpu = cpu_session(m.get(), 1, kTime);
  // Each stream's carried state on the CPU side (the oracle), and its slot.
  std::vector<std::vector<float>> state(kStreams);
  std::vector<std::int64_t> slot(kStreams, -1);
  for (std::int64_t k = 0; k < kStreams; ++k) {
    state[k] = k % 2 ? random_vector(S1, 9910 + k) : std::vector<float>(S1, 0.0f);
    REQUIRE(slstm_session_slot_open(gpu.get(), k % 2 ? state[k].data() : nullptr,
                                    k % 2 ? S1 : 0, SLSTM_MEMORY_HOST, &slot[k]) == SLSTM_OK);
  }
  std::uint64_t seed = 9950;
  for (int round = 0; round < 12; ++round) {
    const std::int64_t B = 1 + static_cast<std::int64_t>(mix(++seed) % kBatch);
    const std::int64_t T = 1 + static_cast<std::int64_t>(mix(++seed) % kTime);
    std::vector<std::int64_t> streams(kStreams);
    for (std::int64_t k = 0; k < kStreams; ++k) streams[k] = k;
    for (std::int64_t k = kStreams - 1; k > 0; --k) {
      std::swap(streams[k], streams[mix(++seed) % static_cast<std::uint64_t>(k + 1)]);
    }
    streams.resize(static_cast<std::size_t>(B));
    std::vector<std::int64_t> ids;
    for (std::int64_t k : streams) ids.push_back(slot[k]);
    const std::vector<float> x = random_vector(static_cast<std::size_t>(B * T * D), ++seed);
    std::vector<std::int32_t> lens;
    for (std::int64_t b = 0; b < B; ++b) lens.push_back(static_cast<std::int32_t>(mix(++seed) % (T + 1)));
    const bool device = round % 3 == 2;
    std::vector<float> out = poisoned(static_cast<std::size_t>(B * T * H));
    DeviceBuffer d_x(device ? x.size() : 0), d_out(device ? out.size() : 0);
    if (device) {
      d_x.upload(x);
      d_out.upload(out);
      CUDA_OK(cudaDeviceSynchronize());
    }
    slstm_slot_forward_args a;
    slstm_slot_forward_args_init(&a);
    a.batch = B;
    a.slot_ids = ids.data();
    a.slot_ids_count = ids.size();
    a.time = T;
    a.input = device ? d_x.p : x.data();
    a.input_count = x.size();
    a.sequence_lengths = lens.data();
    a.sequence_lengths_count = lens.size();
    a.output = device ? d_out.p : out.data();
    a.output_count = out.size();
    a.memory = device ? SLSTM_MEMORY_DEVICE : SLSTM_MEMORY_HOST;
    const slstm_status st = slstm_session_slot_forward(gpu.get(), &a);
    INFO("round " << round << " B=" << B << " T=" << T << (device ? " device" : " host") << ": "
                  << slstm_last_error());
    REQUIRE(st == SLSTM_OK);
    if (device) out = d_out.download();
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t k = streams[static_cast<std::size_t>(b)];
      Inputs one;
      one.batch = 1;
      one.time = T;
      one.input.assign(x.begin() + b * T * D, x.begin() + (b + 1) * T * D);
      one.lengths = {lens[static_cast<std::size_t>(b)]};
      one.initial = state[k];
      const Result want = run_host(cpu.get(), m.get(), one);
      const std::vector<float> got(out.begin() + b * T * H, out.begin() + (b + 1) * T * H);
      CHECK(rel_err(got, want.output) <= kTolFp32);
      std::vector<float> got_state = poisoned(S1);
      REQUIRE(slstm_session_slot_get_state(gpu.get(), slot[k], got_state.data(), S1,
                                           SLSTM_MEMORY_HOST) == SLSTM_OK);
      CHECK(rel_err(got_state, want.final_state) <= kTolFp32);
      state[k] = want.final_state;
    }
  }
  // A reset through device memory, and a close/reopen, take effect.
  DeviceBuffer d_state(S1);
  const std::vector<float> fresh = random_vector(S1, 9999);
  d_state.upload(fresh);
  CUDA_OK(cudaDeviceSynchronize());
  REQUIRE(slstm_session_slot_set_state(gpu.get(), slot[0], d_state.p, S1, SLSTM_MEMORY_DEVICE) ==
          SLSTM_OK);
  std::vector<float> back = poisoned(S1);
  REQUIRE(slstm_session_slot_get_state(gpu.get(), slot[0], back.data(), S1, SLSTM_MEMORY_HOST) ==
          SLSTM_OK);
  CHECK(same_bits(back, fresh));
}

TEST_CASE("without cuda.slots=on a CUDA session with stream slots is refused, naming max_slots",
          "[gpu][slot]") {
  Model m = t::random_model(4, {8}, 9801, 1.0f);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 2;
  o.max_time = 2;
  o.max_slots = 3;
  slstm_session* raw = nullptr;
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_UNSUPPORTED);
  CHECK(raw == nullptr);
  CHECK(std::string(slstm_last_error()).find("max_slots") != std::string::npos);
  CHECK(std::string(slstm_last_error()).find("cuda.slots=on") != std::string::npos);
}

TEST_CASE("precision TF32 is allow_tf32 = 1 bit for bit; BF16 and FP16 are refused on CUDA",
          "[gpu][precision]") {
  Model m = t::random_model(16, {40, 24}, 9901, 1.0f);
  const Inputs in = make_inputs(m.get(), 3, 7, SLSTM_BATCH_MAJOR, true, true, 9902);
  Session legacy = gpu_session(m.get(), 3, 7, /*tf32=*/true);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 3;
  o.max_time = 7;
  o.precision = SLSTM_PRECISION_TF32;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  Session tf32(raw);
  const Result a = run_host(tf32.get(), m.get(), in), b = run_host(legacy.get(), m.get(), in);
  CHECK(same_bits(a.output, b.output));
  CHECK(same_bits(a.final_state, b.final_state));
  for (const std::int32_t p : {SLSTM_PRECISION_BF16, SLSTM_PRECISION_FP16}) {
    o.precision = p;
    raw = nullptr;
    CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_UNSUPPORTED);
    CHECK(raw == nullptr);
    CHECK(std::string(slstm_last_error()).find("options->precision") != std::string::npos);
  }
}

// ---- The persistent recurrent kernel (cuda.persistent, issue 19). Layer by layer
// (cuda.persistent=layers) it runs a chunk of steps in one launch with the fused step's
// arithmetic, so its numbers are the fused step's bit for bit (cuda.fused=always runs the
// fused step wherever it fits, which is everywhere the persistent kernel is planned); with
// cuda.persistent=on a stack that fits runs as ONE launch whose layers >= 1 compute their
// input projections themselves: the reference's numbers within the FP32 tolerance, and its
// fallback's (the same kernel, one step of one layer per launch) bit for bit.
namespace {

Session gpu_session_opts(const slstm_model* model, std::int64_t b, std::int64_t t,
                         const char* config, void* stream = nullptr) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = b;
  o.max_time = std::max<std::int64_t>(t, 1);
  o.config = config;
  o.cuda_stream = stream;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &s);
  INFO(slstm_last_error() << " (config " << config << ")");
  REQUIRE(st == SLSTM_OK);
  return Session(s);
}

// One call on a session of `config` made for it and destroyed after (a tuning file filled).
void run_once(const slstm_model* model, std::int64_t b, std::int64_t t, const std::string& config,
              const Inputs& in) {
  Session s = gpu_session_opts(model, b, t, config.c_str());
  (void)run_host(s.get(), model, in);
}

// The persistent batches the plan reports for every layer ("none" where it does not run).
std::vector<std::string> persistent_batches(slstm_session* s) {
  return t::json_values(t::describe_json(s), "persistent_batches");
}

// After its calls a session still runs the persistent kernel on every layer: a kernel that
// gave up or was refused turns itself off and the calls fall back with the same bits, which
// the bit comparisons alone would not notice.
void require_persistent_still_on(slstm_session* s) {
  for (const std::string& p : persistent_batches(s)) {
    INFO("persistent_batches after the calls: " << p);
    REQUIRE(p != "none");
  }
}

// Shapes inside the persistent kernel's range: H from 1 to 896 (112 CTAs: an H100 PCIe has
// 114 SMs, an H100 SXM or H200 132), B 1..4, 10 and 16, odd sizes, stacks whose layers' CTAs
// all fit on the device together.
const std::vector<Shape>& persistent_shapes() {
  static const std::vector<Shape> s = {
      {5, {1}, 1, 9},          {3, {3, 1}, 2, 31},      {16, {100}, 3, 40},
      {31, {257, 3}, 4, 25},   {9, {700}, 16, 12},      {128, {100, 200, 300}, 10, 50},
      {8, {896}, 4, 10},       {12, {513}, 1, 17},      {7, {3, 257, 1}, 4, 37},
  };
  return s;
}

}  // namespace

// For each of `shapes`, both layouts, with and without lengths and initial states: a session
// of `opts` gives the reference's numbers, zeros past each row's length and the fused step's
// bits; `planned` holds of it before its calls (every layer planned as the case means) and
// after them (none refused or given up).
void check_fused_bits_over(const std::vector<Shape>& shapes, const char* opts,
                           std::uint64_t seed, void (*planned)(slstm_session*)) {
  for (const Shape& sh : shapes) {
    Model m = t::random_model(sh.input, sh.hidden, ++seed, 1.0f);
    Session cpu = cpu_session(m.get(), sh.batch, sh.time);
    Session fused = gpu_session_opts(m.get(), sh.batch, sh.time, "cuda.fused=always");
    Session s = gpu_session_opts(m.get(), sh.batch, sh.time, opts);
    INFO(describe(sh, SLSTM_BATCH_MAJOR, false, false) << ", " << opts);
    planned(s.get());
    for (const slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      for (const bool lengths : {false, true}) {
        const Inputs in = make_inputs(m.get(), sh.batch, sh.time, layout, lengths, lengths, ++seed);
        INFO(describe(sh, layout, lengths, lengths));
        const Result want = run_host(cpu.get(), m.get(), in);
        const Result ref = run_host(fused.get(), m.get(), in);
        const Result got = run_host(s.get(), m.get(), in);
        require_close(got, want, kTolFp32);
        require_masked_zeros(in, got.output, t::output_size(m.get()));
        check_same_bits(got, ref);
      }
    }
    planned(s.get());
  }
}

TEST_CASE("the persistent kernel layer by layer gives the fused step's bits and the "
          "reference's numbers over odd sizes, batches, lengths, both layouts and mixed stacks",
          "[gpu][persistent]") {
  check_fused_bits_over(persistent_shapes(), "cuda.persistent=layers", 19000,
                        require_persistent_still_on);
}

TEST_CASE("the persistent kernel: device buffers on a caller stream, smaller batches than the "
          "session's, and reruns give the host call's bits",
          "[gpu][persistent]") {
  Model m = t::random_model(13, {64, 129, 5}, 19101, 1.0f);
  const CallerStream owned;
  cudaStream_t stream = owned.s;
  Session host = gpu_session_opts(m.get(), 4, 23, "cuda.persistent=on");
  Session dev = gpu_session_opts(m.get(), 4, 23, "cuda.persistent=on", stream);
  CHECK(persistent_batches(host.get()) == std::vector<std::string>(3, "1-4"));
  for (const std::int64_t b : {4, 1, 3}) {
    const Inputs in = make_inputs(m.get(), b, 23, SLSTM_BATCH_MAJOR, true, true, 19102 + b);
    INFO("batch " << b);
    const Result a = run_host(host.get(), m.get(), in);
    const Result again = run_host(host.get(), m.get(), in);
    const Result d = run_device(dev.get(), m.get(), in, stream);
    check_same_bits(a, again);
    check_same_bits(a, d);
  }
  require_persistent_still_on(host.get());
  require_persistent_still_on(dev.get());
}

TEST_CASE("the persistent kernel layer by layer, with wavefront chunks and without graphs, "
          "keeps the fused step's bits at the same chunk size",
          "[gpu][persistent]") {
  Model m = t::random_model(11, {100, 257, 3}, 19201, 1.0f);
  const Inputs in = make_inputs(m.get(), 3, 29, SLSTM_TIME_MAJOR, true, true, 19202);
  for (const char* chunk : {"1", "4", "29"}) {
    for (const char* graphs : {"on", "off"}) {
      const std::string common =
          std::string("cuda.chunk=") + chunk + ";cuda.graphs=" + graphs + ";";
      INFO(common);
      Session fused = gpu_session_opts(m.get(), 3, 29, (common + "cuda.fused=always").c_str());
      Session pers = gpu_session_opts(m.get(), 3, 29, (common + "cuda.persistent=layers").c_str());
      const Result a = run_host(fused.get(), m.get(), in), b = run_host(pers.get(), m.get(), in);
      check_same_bits(a, b);
      require_persistent_still_on(pers.get());
    }
  }
}

TEST_CASE("layers beyond the persistent kernel's reach run as before, and cuda.persistent=off "
          "reports no persistent batches",
          "[gpu][persistent]") {
  Model m = t::random_model(6, {200, 2048}, 19301, 1.0f);
  Session pers = gpu_session_opts(m.get(), 2, 5, "cuda.persistent=on");
  const std::vector<std::string> p = persistent_batches(pers.get());
  REQUIRE(p.size() == 2);
  CHECK(p[0] == "1-2");
  CHECK(p[1] == "none");  // 2048 units: 256 CTAs of ~280 KB shared memory each
  Session cpu = cpu_session(m.get(), 2, 5);
  const Inputs in = make_inputs(m.get(), 2, 5, SLSTM_BATCH_MAJOR, true, true, 19302);
  require_close(run_host(pers.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
  Session off = gpu_session_opts(m.get(), 2, 5, "");
  CHECK(persistent_batches(off.get()).empty());
}

namespace {

// The call of `in` with its state updated in place (`state` its initial and final state)
// into `out`.
slstm_forward_args in_place_args(const slstm_model* m, const Inputs& in,
                                 std::vector<float>& state, std::vector<float>& out) {
  slstm_forward_args a = args_for(m, in);
  a.initial_state = state.data();
  a.final_state = state.data();
  a.final_state_count = state.size();
  a.output = out.data();
  a.output_count = out.size();
  return a;
}

}  // namespace

// cuda.persistent_timeout_us=0 makes every wait at the grid barrier give up: the call must
// still return the fused step's numbers (run again on it), and the session keeps using the
// fused step; a call that updated its state in place cannot be run again and says so.
TEST_CASE("a persistent kernel that gives up waiting falls back to the fused step with the "
          "same numbers",
          "[gpu][persistent]") {
  Model m = t::random_model(9, {257}, 19401, 1.0f);
  const Inputs in = make_inputs(m.get(), 2, 12, SLSTM_BATCH_MAJOR, true, true, 19402);
  Session fused = gpu_session_opts(m.get(), 2, 12, "cuda.fused=always");
  const Result want = run_host(fused.get(), m.get(), in);
  Session failing =
      gpu_session_opts(m.get(), 2, 12, "cuda.persistent=on;cuda.persistent_timeout_us=0");
  CHECK(persistent_batches(failing.get()) == std::vector<std::string>{"1-2"});
  for (int call = 0; call < 2; ++call) {
    INFO("call " << call);
    const Result got = run_host(failing.get(), m.get(), in);
    check_same_bits(got, want);
  }
  Session in_place =
      gpu_session_opts(m.get(), 2, 12, "cuda.persistent=on;cuda.persistent_timeout_us=0");
  std::vector<float> state = in.initial;
  std::vector<float> out(static_cast<std::size_t>(2 * 12 * 257));
  const slstm_forward_args a = in_place_args(m.get(), in, state, out);
  CHECK(slstm_session_forward(in_place.get(), &a) == SLSTM_ERR_BACKEND_FAILURE);
  CHECK(std::string(slstm_last_error()).find("cuda.persistent_timeout_us") != std::string::npos);
  state = in.initial;  // the next call runs on the fused step
  REQUIRE(slstm_session_forward(in_place.get(), &a) == SLSTM_OK);
  CHECK(same_bits(out, want.output));
  CHECK(same_bits(state, want.final_state));
}

// An asynchronous call (device buffers on the caller's stream) returns before its persistent
// kernel runs: when that kernel gives up, the next call on the session waits for it, reports
// the earlier call's failure and does nothing; the call after runs on the fused step.
TEST_CASE("a persistent kernel that gives up in an asynchronous call is reported to the next "
          "call, not taken for its own",
          "[gpu][persistent]") {
  Model m = t::random_model(9, {257}, 19411, 1.0f);
  const Inputs in = make_inputs(m.get(), 2, 12, SLSTM_BATCH_MAJOR, true, true, 19412);
  Session fused = gpu_session_opts(m.get(), 2, 12, "cuda.fused=always");
  const Result want = run_host(fused.get(), m.get(), in);
  const CallerStream owned;
  Session failing = gpu_session_opts(
      m.get(), 2, 12, "cuda.persistent=on;cuda.persistent_timeout_us=0", owned.s);
  DeviceCall d(m.get(), in);
  // It returns before the kernel ends.
  REQUIRE(slstm_session_forward(failing.get(), &d.args) == SLSTM_OK);
  std::vector<float> out = poisoned(want.output.size());
  slstm_forward_args h = args_for(m.get(), in);
  h.output = out.data();
  h.output_count = out.size();
  CHECK(slstm_session_forward(failing.get(), &h) == SLSTM_ERR_BACKEND_FAILURE);
  CHECK(std::string(slstm_last_error()).find("an earlier call") != std::string::npos);
  CHECK(same_bits(out, poisoned(out.size())));  // this call did nothing
  check_same_bits(run_host(failing.get(), m.get(), in), want);
}

// A call without sequence lengths reuses the device's lengths when the previous upload was
// such a call's of the same T and at least as many rows (the fast single call, issue 19):
// every mix of calls with and without lengths, T and batch must still see its own lengths.
TEST_CASE("calls with and without sequence lengths, of changing T and batch, each run with "
          "their own lengths",
          "[gpu]") {
  Model m = t::random_model(6, {20, 7}, 19501, 1.0f);
  Session cpu = cpu_session(m.get(), 5, 9);
  Session gpu = gpu_session(m.get(), 5, 9);
  struct Call {
    std::int64_t batch, time;
    bool lengths;
  };
  std::uint64_t seed = 19502;
  for (const Call& call : {Call{5, 9, true}, Call{5, 9, false}, Call{3, 9, false},
                           Call{5, 9, false}, Call{4, 6, false}, Call{4, 6, true},
                           Call{4, 6, false}, Call{2, 9, false}, Call{5, 9, true}}) {
    const Inputs in =
        make_inputs(m.get(), call.batch, call.time, SLSTM_BATCH_MAJOR, call.lengths, false, ++seed);
    INFO("batch " << call.batch << " time " << call.time << (call.lengths ? " lengths" : ""));
    const Result got = run_host(gpu.get(), m.get(), in);
    require_close(got, run_host(cpu.get(), m.get(), in), kTolFp32);
    require_masked_zeros(in, got.output, t::output_size(m.get()));
  }
}

// ---- The plan tuned on the device (cuda.tune=on, issue 19 item 3).
namespace {

// Layer by layer, the value of `key` in the plan's JSON ("" where a layer has none).
std::vector<std::string> layer_param(slstm_session* s, const std::string& key) {
  const std::string j = t::describe_json(s);
  std::vector<std::string> out;
  const std::string k = "\"" + key + "\": \"";
  for (std::size_t at = j.find(k); at != std::string::npos; at = j.find(k, at + 1)) {
    const std::size_t b = at + k.size();
    out.push_back(j.substr(b, j.find('"', b) - b));
  }
  return out;
}

// A fresh file name under /tmp (the file itself removed), and its removal at the end.
struct TempPath {
  std::string path;
  TempPath() {
    char tmpl[] = "/tmp/slstm_gpu_tune_XXXXXX";
    const int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::remove(path.c_str());
  }
  ~TempPath() {
    std::remove(path.c_str());
    std::remove((path + ".lock").c_str());
  }
};

std::string read_text(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(std::fwrite(text.data(), 1, text.size(), f) == text.size());
  std::fclose(f);
}

}  // namespace

TEST_CASE("cuda.tune=on tunes each batch at its first call, keeps the reference's numbers "
          "and reports the tuned batches",
          "[gpu][tune]") {
  Model m = t::random_model(10, {100, 257, 3}, 19601, 1.0f);
  Session cpu = cpu_session(m.get(), 4, 20);
  Session gpu = gpu_session_opts(m.get(), 4, 20, "cuda.tune=on;cuda.persistent=on");
  CHECK(layer_param(gpu.get(), "tuned_batches") == std::vector<std::string>(3, "none"));
  const Inputs in3 = make_inputs(m.get(), 3, 20, SLSTM_BATCH_MAJOR, true, true, 19602);
  const Result first = run_host(gpu.get(), m.get(), in3);
  require_close(first, run_host(cpu.get(), m.get(), in3), kTolFp32);
  CHECK(layer_param(gpu.get(), "tuned_batches") == std::vector<std::string>(3, "3"));
  const Result again = run_host(gpu.get(), m.get(), in3);  // no tuning now: the same bits
  check_same_bits(first, again);
  const Inputs in1 = make_inputs(m.get(), 1, 7, SLSTM_TIME_MAJOR, false, false, 19603);
  require_close(run_host(gpu.get(), m.get(), in1), run_host(cpu.get(), m.get(), in1), kTolFp32);
  CHECK(layer_param(gpu.get(), "tuned_batches") == std::vector<std::string>(3, "1,3"));
}

namespace {

// A tuning file's text with every layer's path (the sixth field; a seventh, since 0.12, names
// the paths that were timed) set to `path`.
std::string with_tuned_path(const std::string& text, const char* path) {
  std::string edited;
  std::size_t at = 0;
  for (std::size_t end; (end = text.find('\n', at)) != std::string::npos; at = end + 1) {
    std::string line = text.substr(at, end - at);
    std::size_t from = 0;
    for (int field = 0; field < 5 && from != std::string::npos; ++field) {
      from = line.find('\t', from);
      if (from != std::string::npos) ++from;
    }
    if (line[0] != '#' && from != std::string::npos) {
      const std::size_t to = line.find('\t', from);
      line = line.substr(0, from) + path + (to == std::string::npos ? "" : line.substr(to));
      CHECK(to != std::string::npos);  // the timed paths are there
    }
    edited += line + "\n";
  }
  return edited;
}

}  // namespace

TEST_CASE("cuda.tune_file keeps the tuned paths, and a later session takes them from it",
          "[gpu][tune]") {
  Model m = t::random_model(10, {100, 257, 3}, 19701, 1.0f);
  TempPath file;
  const std::string config = "cuda.tune=on;cuda.tune_file=" + file.path;
  const Inputs in = make_inputs(m.get(), 2, 12, SLSTM_BATCH_MAJOR, true, true, 19702);
  run_once(m.get(), 2, 12, config, in);
  const std::string text = read_text(file.path);
  REQUIRE(text.rfind("# libstacklstm cuda tuning v1\n", 0) == 0);
  // One line per layer (each has at least cuBLAS and the fused step to choose from).
  std::size_t lines = 0;
  for (const char ch : text) lines += ch == '\n' ? 1 : 0;
  CHECK(lines == 4);
  // Every entry rewritten to cuBLAS: a new session must follow the file, not its own plan.
  const std::string edited = with_tuned_path(text, "cublas");
  write_text(file.path, edited);
  Session second = gpu_session_opts(m.get(), 2, 12, config.c_str());
  Session cpu = cpu_session(m.get(), 2, 12);
  require_close(run_host(second.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
  for (const std::string& fused : layer_param(second.get(), "fused_step_batches")) {
    CHECK(fused.find('2') == std::string::npos);
  }
  CHECK(layer_param(second.get(), "tune_file_error").empty());
  CHECK(read_text(file.path) == edited);  // nothing learned, nothing written
}

TEST_CASE("a tuning file that is not a cache is neither read nor overwritten, and the plan "
          "says why",
          "[gpu][tune]") {
  Model m = t::random_model(5, {40}, 19801, 1.0f);
  TempPath file;
  write_text(file.path, "precious data\n");
  const std::string config = "cuda.tune=on;cuda.tune_file=" + file.path;
  Session gpu = gpu_session_opts(m.get(), 2, 6, config.c_str());
  const Inputs in = make_inputs(m.get(), 2, 6, SLSTM_BATCH_MAJOR, false, false, 19802);
  (void)run_host(gpu.get(), m.get(), in);
  const std::vector<std::string> why = layer_param(gpu.get(), "tune_file_error");
  REQUIRE(why.size() == 1);
  CHECK(why[0].find("not a libstacklstm tuning cache") != std::string::npos);
  CHECK(read_text(file.path) == "precious data\n");
}

TEST_CASE("the whole stack as one persistent launch: the reference's numbers, and its "
          "fallback's bits, over odd sizes, batches, lengths, layouts and initial states",
          "[gpu][persistent]") {
  std::uint64_t seed = 19900;
  for (const Shape& sh : {Shape{128, {100, 200, 300}, 10, 50}, Shape{7, {3, 257, 1}, 4, 37},
                          Shape{13, {64, 129, 5}, 1, 23}, Shape{31, {257, 3}, 2, 25},
                          Shape{9, {40, 40, 40, 40}, 16, 12}}) {
    Model m = t::random_model(sh.input, sh.hidden, ++seed, 1.0f);
    Session cpu = cpu_session(m.get(), sh.batch, sh.time);
    Session stack = gpu_session_opts(m.get(), sh.batch, sh.time, "cuda.persistent=on");
    const std::string b = std::to_string(sh.batch);
    for (const std::string& p : layer_param(stack.get(), "persistent_stack_batches")) {
      INFO(describe(sh, SLSTM_BATCH_MAJOR, false, false) << ": persistent_stack_batches " << p);
      CHECK(p.find(b) != std::string::npos);
    }
    for (const slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      for (const bool lengths : {false, true}) {
        const Inputs in = make_inputs(m.get(), sh.batch, sh.time, layout, lengths, lengths, ++seed);
        INFO(describe(sh, layout, lengths, lengths));
        // A new session each time: its first call gives up at once and falls back.
        Session fallback = gpu_session_opts(m.get(), sh.batch, sh.time,
                                            "cuda.persistent=on;cuda.persistent_timeout_us=0");
        const Result want = run_host(cpu.get(), m.get(), in);
        const Result got = run_host(stack.get(), m.get(), in);
        const Result fb = run_host(fallback.get(), m.get(), in);
        require_close(got, want, kTolFp32);
        require_masked_zeros(in, got.output, t::output_size(m.get()));
        check_same_bits(got, fb);
        const Result again = run_host(stack.get(), m.get(), in);
        check_same_bits(got, again);
      }
    }
    // (persistent_stack_batches stays: after a failure the stack runs the same kernel one
    // step and layer per launch; the layers' persistent batches say whether it failed.)
    require_persistent_still_on(stack.get());
  }
}

TEST_CASE("the whole stack as one persistent launch takes device buffers on a caller stream "
          "and graphs on or off with the host call's bits",
          "[gpu][persistent]") {
  Model m = t::random_model(128, {100, 200, 300}, 19951, 1.0f);
  const CallerStream owned;
  cudaStream_t stream = owned.s;
  Session host = gpu_session_opts(m.get(), 10, 1, "cuda.persistent=on");
  Session dev = gpu_session_opts(m.get(), 10, 1, "cuda.persistent=on", stream);
  Session nographs = gpu_session_opts(m.get(), 10, 1, "cuda.persistent=on;cuda.graphs=off");
  Session cpu = cpu_session(m.get(), 10, 1);
  // The seed's single call (T = 1), then a short streaming run frame by frame.
  const Inputs in = make_inputs(m.get(), 10, 1, SLSTM_BATCH_MAJOR, false, true, 19952);
  const Result a = run_host(host.get(), m.get(), in);
  require_close(a, run_host(cpu.get(), m.get(), in), kTolFp32);
  const Result d = run_device(dev.get(), m.get(), in, stream);
  const Result n = run_host(nographs.get(), m.get(), in);
  check_same_bits(a, d);
  check_same_bits(a, n);
  for (slstm_session* s : {host.get(), dev.get(), nographs.get()}) require_persistent_still_on(s);
}

TEST_CASE("the generic path (cuda.generic=on): device buffers give the host buffers' bits, a "
          "caller's stream runs them asynchronously, and host pointers as device memory are "
          "refused",
          "[gpu][generic]") {
  const std::int64_t B = 6, T = 9;
  Model m = t::random_stack(7, t::layer_zoo()[3], 9701);  // bidirectional, residual, LSTMP
  cudaStream_t stream = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    SessionSpec spec;
    spec.max_batch = B;
    spec.max_time = T;
    spec.config = "cuda.generic=on";
    Session own = make_session(m.get(), spec);
    spec.stream = stream;
    Session on_stream = make_session(m.get(), spec);
    Session cpu = cpu_session(m.get(), B, T);
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      const Inputs in = make_inputs(m.get(), B, T, layout, true, true, 9702);
      const Result host = run_host(own.get(), m.get(), in);
      require_close(host, run_host(cpu.get(), m.get(), in), kTolFp32);
      check_same_bits(run_device(own.get(), m.get(), in), host);
      check_same_bits(run_device(on_stream.get(), m.get(), in, stream), host);
    }
    const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 9703);
    std::vector<float> out = poisoned(static_cast<std::size_t>(2 * 3 * t::output_size(m.get())));
    slstm_forward_args a = args_for(m.get(), in);
    a.memory = SLSTM_MEMORY_DEVICE;  // but every buffer is host memory
    a.output = out.data();
    a.output_count = out.size();
    CHECK(slstm_session_forward(own.get(), &a) == SLSTM_ERR_INVALID_ARGUMENT);
    CHECK(std::string(slstm_last_error()).find("SLSTM_MEMORY_DEVICE") != std::string::npos);
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return std::isnan(v); }));
  }
  CUDA_OK(cudaStreamDestroy(stream));
}

TEST_CASE("the generic path takes 16-bit input and gives 16-bit output in device memory: the "
          "float call on the input's values, its output rounded",
          "[gpu][generic]") {
  namespace g = slstm_cuda::generic;
  const std::int64_t B = 3, T = 6, D = 5;
  Model m = t::random_stack(D, t::layer_zoo()[0], 9801);  // LSTMP, residual GRU, GRU
  SessionSpec spec;
  spec.max_batch = B;
  spec.max_time = T;
  spec.config = "cuda.generic=on";
  Session s = make_session(m.get(), spec);
  const std::int64_t W = t::output_size(m.get());
  const auto xf = random_vector(static_cast<std::size_t>(B * T * D), 9802);
  for (slstm_data_type type : {SLSTM_DATA_BF16, SLSTM_DATA_F16}) {
    INFO("data_type " << type);
    const std::int32_t format = type == SLSTM_DATA_BF16 ? g::kOperandsBf16 : g::kOperandsFp16;
    std::vector<std::uint16_t> x(xf.size()), y(static_cast<std::size_t>(B * T * W), 0xffffu);
    std::vector<float> values(xf.size());
    for (std::size_t i = 0; i < xf.size(); ++i) {
      x[i] = g::operand_code(format, xf[i]);
      values[i] = g::operand_value(format, x[i]);
    }
    std::uint16_t* d_x = nullptr;
    std::uint16_t* d_y = nullptr;
    CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&d_x), x.size() * sizeof(std::uint16_t)));
    CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&d_y), y.size() * sizeof(std::uint16_t)));
    CUDA_OK(cudaMemcpy(d_x, x.data(), x.size() * sizeof(std::uint16_t), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(d_y, y.data(), y.size() * sizeof(std::uint16_t), cudaMemcpyHostToDevice));
    slstm_forward_args a;
    slstm_forward_args_init(&a);
    a.batch = B;
    a.time = T;
    a.memory = SLSTM_MEMORY_DEVICE;
    a.data_type = type;
    a.input = reinterpret_cast<const float*>(d_x);
    a.input_count = x.size();
    a.output = reinterpret_cast<float*>(d_y);
    a.output_count = y.size();
    const slstm_status st = slstm_session_forward(s.get(), &a);
    INFO(slstm_last_error());
    CHECK(st == SLSTM_OK);
    CUDA_OK(cudaMemcpy(y.data(), d_y, y.size() * sizeof(std::uint16_t), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaFree(d_x));
    CUDA_OK(cudaFree(d_y));
    Inputs in;
    in.batch = B;
    in.time = T;
    in.layout = SLSTM_BATCH_MAJOR;
    in.input = values;
    const Result want = run_host(s.get(), m.get(), in);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      wrong += y[i] != g::operand_code(format, want.output[i]) ? 1 : 0;
    }
    CHECK(wrong == 0);
  }
}

// slstm_session_describe may be called from any thread while calls run; with tuning the
// plan changes during calls, and a describe sees it before or after a call, whole.
TEST_CASE("describe from another thread while tuned calls run gives a whole plan each time",
          "[gpu][tune]") {
  Model m = t::random_model(64, {256}, 19421, 1.0f);
  Session s = gpu_session_opts(m.get(), 4, 8, "cuda.tune=on;cuda.persistent=on");
  std::vector<Inputs> calls;
  for (int b = 1; b <= 4; ++b) {
    calls.push_back(make_inputs(m.get(), b, 8, SLSTM_BATCH_MAJOR, false, false, 19422 + b));
  }
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::thread worker([&] {
    for (int round = 0; round < 3; ++round) {
      for (const Inputs& in : calls) {
        std::vector<float> out(static_cast<std::size_t>(in.batch * in.time * 256));
        slstm_forward_args a = args_for(m.get(), in);
        a.output = out.data();
        a.output_count = out.size();
        if (slstm_session_forward(s.get(), &a) != SLSTM_OK) ++failures;
      }
    }
    done = true;
  });
  int described = 0;
  std::vector<char> buf(1 << 16);
  while (!done) {
    // One call into a buffer that holds the whole text (asking for the length first could
    // see another text than the copy: the plan changes between calls).
    std::size_t n = 0;
    REQUIRE(slstm_session_describe(s.get(), SLSTM_DESCRIBE_JSON, buf.data(), buf.size(), &n) ==
            SLSTM_OK);
    REQUIRE(n < buf.size());
    const std::string j(buf.data(), n);
    CHECK(j.find("\"tuned_batches\": \"") != std::string::npos);
    CHECK(j.back() == '}');
    ++described;
  }
  worker.join();
  CHECK(failures == 0);
  CHECK(described > 0);
  CHECK(layer_param(s.get(), "tuned_batches") == std::vector<std::string>{"1-4"});
}

// The caller may capture its stream while a session on it is destroyed (e.g. a garbage
// collector run during a framework's graph capture): the session's teardown waits for its
// own work on that stream only when the stream is not being captured, and frees its memory
// in the relaxed capture mode, so the caller's capture stays valid.
namespace {
void destroy_under_capture(const char* config) {
  Model m = t::random_model(5, {7}, 19441, 1.0f);
  const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 19442);
  const CallerStream owned;
  Session s = gpu_session_opts(m.get(), 2, 3, config, owned.s);
  Session cpu = cpu_session(m.get(), 2, 3);
  require_close(run_device(s.get(), m.get(), in, owned.s), run_host(cpu.get(), m.get(), in),
                kTolFp32);
  CUDA_OK(cudaStreamSynchronize(owned.s));
  CUDA_OK(cudaStreamBeginCapture(owned.s, cudaStreamCaptureModeThreadLocal));
  s.reset();
  cudaGraph_t graph = nullptr;
  CHECK(cudaStreamEndCapture(owned.s, &graph) == cudaSuccess);  // still a valid capture
  if (graph != nullptr) CUDA_OK(cudaGraphDestroy(graph));
  CHECK(cudaGetLastError() == cudaSuccess);
}
}  // namespace

TEST_CASE("destroying a session while the caller captures its stream leaves the capture intact",
          "[gpu]") {
  destroy_under_capture("");
}

TEST_CASE("destroying a generic-path session while the caller captures its stream leaves the "
          "capture intact",
          "[gpu][generic]") {
  destroy_under_capture("cuda.generic=always");
}

// A session's call cannot be captured into the caller's CUDA graph: refused, naming
// cuda_stream, with the capture left intact; after it the session works as before.
TEST_CASE("a call on a caller stream that is being captured is refused and leaves the "
          "capture intact",
          "[gpu]") {
  Model m = t::random_model(5, {7}, 19431, 1.0f);
  const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 19432);
  const CallerStream owned;
  Session s = gpu_session_opts(m.get(), 2, 3, "", owned.s);
  DeviceCall d(m.get(), in);
  CUDA_OK(cudaStreamBeginCapture(owned.s, cudaStreamCaptureModeThreadLocal));
  CHECK(slstm_session_forward(s.get(), &d.args) == SLSTM_ERR_UNSUPPORTED);
  CHECK(std::string(slstm_last_error()).find("cuda_stream") != std::string::npos);
  cudaGraph_t graph = nullptr;
  CHECK(cudaStreamEndCapture(owned.s, &graph) == cudaSuccess);  // still a valid capture
  if (graph != nullptr) CUDA_OK(cudaGraphDestroy(graph));
  Session cpu = cpu_session(m.get(), 2, 3);
  require_close(run_device(s.get(), m.get(), in, owned.s), run_host(cpu.get(), m.get(), in),
                kTolFp32);
}

// ---- Behaviours a mutation pass of the module's host code found unpinned (cuda-fake).

// Device memory: the output pointer alone being host memory is caught too, before anything
// is written (the input, state and output checks are separate).
TEST_CASE("device memory with only the output a host pointer is rejected, nothing written",
          "[gpu]") {
  Model m = t::random_model(4, {8}, 9621, 1.0f);
  Session gpu = gpu_session(m.get(), 2, 3);
  const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 9622);
  DeviceCall d(m.get(), in);
  std::vector<float> out = poisoned(static_cast<std::size_t>(2 * 3 * 8));
  d.args.output = out.data();  // host memory
  d.args.output_count = out.size();
  CHECK(slstm_session_forward(gpu.get(), &d.args) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("output") != std::string::npos);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return std::isnan(v); }));
  const std::vector<float> fin = d.final_state.download();
  CHECK(std::all_of(fin.begin(), fin.end(), [](float v) { return std::isnan(v); }));
}

// A slot's state set to NULL (a stream's reset) is zeros again, also after calls moved it.
TEST_CASE("a CUDA stream slot set to NULL state after calls is zeros again", "[gpu][slot]") {
  Model m = t::random_model(5, {6, 4}, 9631, 1.0f);
  const std::size_t S1 = state_count(m.get(), 1);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 1;
  o.max_time = 3;
  o.max_slots = 2;
  o.config = "cuda.slots=on";
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  Session gpu(raw);
  const std::vector<float> start = random_vector(S1, 9632);
  std::int64_t slot = -1;
  REQUIRE(slstm_session_slot_open(gpu.get(), start.data(), S1, SLSTM_MEMORY_HOST, &slot) ==
          SLSTM_OK);
  const std::vector<float> x = random_vector(static_cast<std::size_t>(3 * 5), 9633);
  slstm_slot_forward_args a;
  slstm_slot_forward_args_init(&a);
  a.batch = 1;
  a.slot_ids = &slot;
  a.slot_ids_count = 1;
  a.time = 3;
  a.input = x.data();
  a.input_count = x.size();
  REQUIRE(slstm_session_slot_forward(gpu.get(), &a) == SLSTM_OK);
  REQUIRE(slstm_session_slot_set_state(gpu.get(), slot, nullptr, 0, SLSTM_MEMORY_HOST) ==
          SLSTM_OK);
  std::vector<float> back = poisoned(S1);
  REQUIRE(slstm_session_slot_get_state(gpu.get(), slot, back.data(), S1, SLSTM_MEMORY_HOST) ==
          SLSTM_OK);
  CHECK(same_bits(back, std::vector<float>(S1, 0.0f)));
}

// The slot calls on a caller stream being captured are refused like forward, the capture
// left intact.
TEST_CASE("slot state reads and writes on a captured caller stream are refused", "[gpu][slot]") {
  Model m = t::random_model(5, {6}, 9641, 1.0f);
  const std::size_t S1 = state_count(m.get(), 1);
  const CallerStream owned;
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 1;
  o.max_time = 2;
  o.max_slots = 1;
  o.config = "cuda.slots=on";
  o.cuda_stream = owned.s;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  Session gpu(raw);
  std::int64_t slot = -1;
  REQUIRE(slstm_session_slot_open(gpu.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot) == SLSTM_OK);
  std::vector<float> back = poisoned(S1);
  const std::vector<float> state = random_vector(S1, 9642);
  CUDA_OK(cudaStreamBeginCapture(owned.s, cudaStreamCaptureModeThreadLocal));
  CHECK(slstm_session_slot_get_state(gpu.get(), slot, back.data(), S1, SLSTM_MEMORY_HOST) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK(slstm_session_slot_set_state(gpu.get(), slot, state.data(), S1, SLSTM_MEMORY_HOST) ==
        SLSTM_ERR_UNSUPPORTED);
  cudaGraph_t graph = nullptr;
  CHECK(cudaStreamEndCapture(owned.s, &graph) == cudaSuccess);
  if (graph != nullptr) CUDA_OK(cudaGraphDestroy(graph));
  CHECK(std::all_of(back.begin(), back.end(), [](float v) { return std::isnan(v); }));
  REQUIRE(slstm_session_slot_get_state(gpu.get(), slot, back.data(), S1, SLSTM_MEMORY_HOST) ==
          SLSTM_OK);
  CHECK(same_bits(back, std::vector<float>(S1, 0.0f)));
}

// The tuning cache's entries are per precision: an FP32 session's choice is not taken by a
// TF32 session of the same shapes, which times its own and writes it to the file.
TEST_CASE("a TF32 session does not take an FP32 session's tuned paths from the tune file",
          "[gpu][tune]") {
  Model m = t::random_model(6, {100}, 19901, 1.0f);
  TempPath file;
  const std::string fp32 = "cuda.tune=on;cuda.tune_file=" + file.path;
  const Inputs in = make_inputs(m.get(), 2, 4, SLSTM_BATCH_MAJOR, false, false, 19902);
  run_once(m.get(), 2, 4, fp32, in);
  REQUIRE(read_text(file.path).find("\tfp32\t") != std::string::npos);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 2;
  o.max_time = 4;
  o.allow_tf32 = 1;
  o.config = fp32.c_str();
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  Session second(raw);
  Session cpu = cpu_session(m.get(), 2, 4);
  require_close(run_host(second.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolTf32);
  CHECK(layer_param(second.get(), "tuned_batches") == std::vector<std::string>{"2"});
  CHECK(read_text(file.path).find("\ttf32\t") != std::string::npos);
}

// Lengths: a call without lengths after a smaller one of the same T (whose rows the session
// keeps as T) must still set every row of its own batch to T, not keep an older call's.
TEST_CASE("a call without lengths after a smaller batch of the same time runs every row to T",
          "[gpu]") {
  Model m = t::random_model(4, {6}, 19511, 1.0f);
  Session cpu = cpu_session(m.get(), 3, 4);
  Session gpu = gpu_session(m.get(), 3, 4);
  Inputs short_rows = make_inputs(m.get(), 3, 4, SLSTM_BATCH_MAJOR, false, false, 19512);
  short_rows.lengths = {1, 0, 2};
  (void)run_host(gpu.get(), m.get(), short_rows);
  const Inputs one = make_inputs(m.get(), 1, 4, SLSTM_BATCH_MAJOR, false, false, 19513);
  require_close(run_host(gpu.get(), m.get(), one), run_host(cpu.get(), m.get(), one), kTolFp32);
  const Inputs three = make_inputs(m.get(), 3, 4, SLSTM_BATCH_MAJOR, false, false, 19514);
  require_close(run_host(gpu.get(), m.get(), three), run_host(cpu.get(), m.get(), three),
                kTolFp32);
}

// Tuning covers every batch up to 32 (StepPlan::kPlannedBatches), the last one too.
TEST_CASE("cuda.tune=on tunes a call of batch 32 and reports it", "[gpu][tune]") {
  Model m = t::random_model(3, {8}, 19531, 1.0f);
  Session gpu = gpu_session_opts(m.get(), 32, 2, "cuda.tune=on");
  Session cpu = cpu_session(m.get(), 32, 2);
  const Inputs in = make_inputs(m.get(), 32, 2, SLSTM_BATCH_MAJOR, false, false, 19532);
  require_close(run_host(gpu.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
  CHECK(layer_param(gpu.get(), "tuned_batches") == std::vector<std::string>{"32"});
}

// Under cuda.fused=never the fused step is not timed: what the session chose without it stays
// in the session and is not written to the tuning file that other sessions read.
TEST_CASE("cuda.fused=never keeps its tuned choices out of the tuning file", "[gpu][tune]") {
  Model m = t::random_model(4, {16}, 19541, 1.0f);
  TempPath file;
  const std::string config = "cuda.fused=never;cuda.persistent=layers;cuda.tune=on;"
                             "cuda.tune_file=" + file.path;
  Session gpu = gpu_session_opts(m.get(), 2, 3, config.c_str());
  Session cpu = cpu_session(m.get(), 2, 3);
  const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 19542);
  require_close(run_host(gpu.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
  CHECK(layer_param(gpu.get(), "tuned_batches") == std::vector<std::string>{"2"});
  REQUIRE(layer_param(gpu.get(), "persistent_batches") != std::vector<std::string>{"none"});
  const std::string text = read_text(file.path);
  CHECK(text.find("\tfp32\t") == std::string::npos);
}

// Without a caller stream a device-buffer call is synchronous: once it returns, its output
// and final state can be read on any stream (here an unrelated non-blocking one).
TEST_CASE("device buffers on the session's own stream are complete when the call returns",
          "[gpu]") {
  Model m = t::random_model(5, {9, 7}, 19551, 1.0f);
  Session gpu = gpu_session(m.get(), 3, 6);
  Session cpu = cpu_session(m.get(), 3, 6);
  const Inputs in = make_inputs(m.get(), 3, 6, SLSTM_BATCH_MAJOR, true, true, 19552);
  DeviceCall d(m.get(), in);
  REQUIRE(slstm_session_forward(gpu.get(), &d.args) == SLSTM_OK);
  const DeviceBuffer& d_out = d.output;
  const DeviceBuffer& d_final = d.final_state;
  const CallerStream other;
  Result got;
  got.output.resize(d_out.n);
  got.final_state.resize(d_final.n);
  CUDA_OK(cudaMemcpyAsync(got.output.data(), d_out.p, d_out.n * sizeof(float),
                          cudaMemcpyDeviceToHost, other.s));
  CUDA_OK(cudaMemcpyAsync(got.final_state.data(), d_final.p, d_final.n * sizeof(float),
                          cudaMemcpyDeviceToHost, other.s));
  CUDA_OK(cudaStreamSynchronize(other.s));
  require_close(got, run_host(cpu.get(), m.get(), in), kTolFp32);
}

// cuda.persistent=layers runs the persistent kernel layer by layer only: never the whole
// stack as one launch (that is cuda.persistent=on's).
TEST_CASE("cuda.persistent=layers plans no whole-stack launch", "[gpu][persistent]") {
  Model m = t::random_model(6, {16, 12}, 19561, 1.0f);
  Session gpu = gpu_session_opts(m.get(), 2, 3, "cuda.persistent=layers");
  CHECK(layer_param(gpu.get(), "persistent_stack_batches") ==
        std::vector<std::string>(2, "none"));
  CHECK(layer_param(gpu.get(), "persistent_batches") != std::vector<std::string>(2, "none"));
  Session on = gpu_session_opts(m.get(), 2, 3, "cuda.persistent=on");
  CHECK(layer_param(on.get(), "persistent_stack_batches") != std::vector<std::string>(2, "none"));
}

// ---- The cluster tier (cuda.cluster=on): a layer's persistent steps on ONE thread-block
// cluster, h through distributed shared memory, one cluster barrier per step.

// Every layer runs its persistent batches on a cluster: cluster_batches is what the plan
// says of each layer, and a cluster launch the device refused would have turned the
// persistent kernel off (then every layer reports "none").
void require_cluster_on(slstm_session* s) {
  for (const std::string& p : layer_param(s, "cluster_batches")) {
    INFO("cluster_batches: " << p);
    REQUIRE(p != "none");
  }
  require_persistent_still_on(s);
}

TEST_CASE("the cluster tier gives the fused step's bits and the reference's numbers over odd "
          "sizes, batches, lengths, both layouts and mixed stacks",
          "[gpu][persistent][cluster]") {
  // H up to 464 (16 CTAs of 29 units: 226 KB of shared memory each at batch 4), B 1..4, 10, 16.
  const std::vector<Shape> shapes = {
      {5, {1}, 1, 9},        {3, {3, 1}, 2, 31},  {16, {100}, 3, 40},
      {31, {257, 3}, 4, 25}, {9, {464}, 4, 12},   {128, {100, 200, 300}, 10, 50},
      {7, {130}, 16, 6},     {12, {256}, 1, 17},
  };
  check_fused_bits_over(shapes, "cuda.persistent=layers;cuda.cluster=on", 19700,
                        require_cluster_on);
}

TEST_CASE("the cluster tier with device buffers on a caller stream, wavefront chunks, graphs "
          "off and smaller batches than the session's keeps the host call's bits",
          "[gpu][persistent][cluster]") {
  Model m = t::random_model(11, {100, 257, 3}, 19801, 1.0f);
  const CallerStream owned;
  const Inputs in = make_inputs(m.get(), 3, 29, SLSTM_TIME_MAJOR, true, true, 19802);
  Session fused = gpu_session_opts(m.get(), 4, 29, "cuda.fused=always");
  const Result want = run_host(fused.get(), m.get(), in);
  for (const char* chunk : {"1", "4", "29"}) {
    for (const char* graphs : {"on", "off"}) {
      const std::string opts = std::string("cuda.chunk=") + chunk + ";cuda.graphs=" + graphs +
                               ";cuda.persistent=layers;cuda.cluster=on";
      INFO(opts);
      Session host = gpu_session_opts(m.get(), 4, 29, opts.c_str());
      Session dev = gpu_session_opts(m.get(), 4, 29, opts.c_str(), owned.s);
      check_same_bits(run_host(host.get(), m.get(), in), want);
      check_same_bits(run_device(dev.get(), m.get(), in, owned.s), want);
      require_cluster_on(host.get());
      require_cluster_on(dev.get());
    }
  }
}

TEST_CASE("the cluster tier leaves the whole stack's batches to the whole-stack launch, and "
          "has no timed wait for cuda.persistent_timeout_us=0 to fail",
          "[gpu][persistent][cluster]") {
  Model stack = t::random_model(6, {16, 12}, 19811, 1.0f);
  Session on = gpu_session_opts(stack.get(), 2, 3, "cuda.persistent=on;cuda.cluster=on");
  CHECK(layer_param(on.get(), "persistent_stack_batches") == std::vector<std::string>(2, "1-2"));
  CHECK(layer_param(on.get(), "cluster_batches") == std::vector<std::string>(2, "none"));
  Model one = t::random_model(9, {257}, 19812, 1.0f);
  const Inputs in = make_inputs(one.get(), 2, 12, SLSTM_BATCH_MAJOR, true, true, 19813);
  Session fused = gpu_session_opts(one.get(), 2, 12, "cuda.fused=always");
  const char* no_wait = "cuda.persistent=on;cuda.cluster=on;cuda.persistent_timeout_us=0";
  Session clus = gpu_session_opts(one.get(), 2, 12, no_wait);
  CHECK(layer_param(clus.get(), "cluster_batches") == std::vector<std::string>{"1-2"});
  CHECK(layer_param(clus.get(), "cluster_ctas") == std::vector<std::string>{"16"});
  check_same_bits(run_host(clus.get(), one.get(), in), run_host(fused.get(), one.get(), in));
  require_cluster_on(clus.get());
}

// ---- The hybrid tier (cuda.hybrid=on): a layer too large for the grid tier keeps the first
// hybrid_resident columns of its W_h rows in shared memory and reads the rest every step.

// The last layer runs its persistent batches on the hybrid tier with part of W_h off chip
// (hybrid_resident below its size is the layer's own business: the cases' sizes make it so),
// and no launch was refused or gave up.
void require_last_hybrid(slstm_session* s) {
  const std::vector<std::string> batches = layer_param(s, "hybrid_batches");
  REQUIRE(!batches.empty());
  INFO("hybrid_batches: " << batches.back());
  REQUIRE(batches.back() != "none");
  require_persistent_still_on(s);
}

TEST_CASE("the hybrid tier gives the fused step's bits and the reference's numbers just past the "
          "grid tier, alone and under a layer on the grid tier",
          "[gpu][persistent][hybrid]") {
  // H = 1100: 138 CTAs, two to an SM on 132 SMs, 868 (B = 1) or 762 (B = 4) of the 1100
  // columns on chip; 114 SMs: three to an SM. [100, 1100]: the first layer on the grid tier.
  const std::vector<Shape> shapes = {
      {16, {1100}, 1, 6}, {7, {1100}, 3, 5}, {9, {100, 1100}, 2, 4},
  };
  check_fused_bits_over(shapes, "cuda.persistent=layers;cuda.hybrid=on", 19900,
                        require_last_hybrid);
}

TEST_CASE("the hybrid tier at H = 2048, batches 1 to 4, gives the fused step's bits, its plan "
          "names the columns on chip and the L2 window, and the set-aside is given back",
          "[gpu][hybrid]") {
  const std::vector<Shape> shapes = {{32, {2048}, 1, 5}, {5, {2048}, 4, 3}};
  check_fused_bits_over(shapes, "cuda.persistent=layers;cuda.hybrid=on", 19950,
                        require_last_hybrid);
  Model m = t::random_model(8, {2048}, 19960, 1.0f);
  std::size_t before = 0, during = 0, after = 0;
  CUDA_OK(cudaDeviceGetLimit(&before, cudaLimitPersistingL2CacheSize));
  {
    Session s = gpu_session_opts(m.get(), 4, 3, "cuda.persistent=layers;cuda.hybrid=on");
    const std::string plan = t::describe_json(s.get());
    INFO(plan);
    CHECK(t::json_value(plan, "hybrid_batches") == "1-4");
    const int resident = std::stoi(t::json_value(plan, "hybrid_resident"));
    CHECK(resident > 0);
    CHECK(resident < 2048);
    // W_h's 67108864 bytes, or the device's largest window; 0 where it has no set-aside.
    const long long window = std::stoll(t::json_value(plan, "l2_window_bytes"));
    CHECK(window >= 0);
    CHECK(window <= 67108864);
    // The device's persisting set-aside, raised for the window while the session lives.
    CUDA_OK(cudaDeviceGetLimit(&during, cudaLimitPersistingL2CacheSize));
    CHECK(during >= before);
    if (window > 0) CHECK(during > 0);
  }
  // ... and given back when it ends.
  CUDA_OK(cudaDeviceGetLimit(&after, cudaLimitPersistingL2CacheSize));
  CHECK(after == before);
}

// A tier's tuning at batch 2: one layer of size `h`, T = `steps`, the tier's `setting` with
// cuda.tune=on. The tuning file names `timed` as the path it took; a later session that reads
// either of `paths` from the file gives the fused step's bits, and its plan's `key` (the
// tier's batches) reads "1-2" before the call and `after[i]` after it, persistent_batches
// `persistent_after[i]`.
struct TunedTier {
  std::int64_t h, steps;
  unsigned seed;
  const char* setting;
  const char* timed;
  const char* key;
  const char* paths[2];
  const char* after[2];
  const char* persistent_after[2];
};

void check_tuned_tier(const TunedTier& c) {
  Model m = t::random_model(10, {c.h}, c.seed, 1.0f);
  TempPath file;
  const std::string config = std::string("cuda.tune=on;cuda.persistent=layers;") + c.setting +
                             ";cuda.tune_file=" + file.path;
  const Inputs in = make_inputs(m.get(), 2, c.steps, SLSTM_BATCH_MAJOR, true, true, c.seed + 1);
  run_once(m.get(), 2, c.steps, config, in);
  const std::string text = read_text(file.path);
  INFO(text);
  CHECK(text.find(std::string("\t") + c.timed + "\n") != std::string::npos);
  Session fused = gpu_session_opts(m.get(), 2, c.steps, "cuda.fused=always");
  const Result want = run_host(fused.get(), m.get(), in);
  for (int i = 0; i < 2; ++i) {
    INFO("the file says " << c.paths[i]);
    write_text(file.path, with_tuned_path(text, c.paths[i]));
    Session second = gpu_session_opts(m.get(), 2, c.steps, config.c_str());
    CHECK(layer_param(second.get(), c.key) == std::vector<std::string>{"1-2"});
    check_same_bits(run_host(second.get(), m.get(), in), want);
    CHECK(layer_param(second.get(), c.key) == std::vector<std::string>{c.after[i]});
    CHECK(layer_param(second.get(), "persistent_batches") ==
          std::vector<std::string>{c.persistent_after[i]});
  }
}

// Batch 2 on the fused step takes it off the hybrid (and persistent) plan.
TEST_CASE("cuda.tune=on with cuda.hybrid=on times the hybrid tier as the persistent path, and a "
          "later session takes it or the fused step from the tuning file with the same bits",
          "[gpu][tune][hybrid]") {
  check_tuned_tier({1100, 6, 19971, "cuda.hybrid=on", "cublas+fused+persistent",
                    "hybrid_batches", {"persistent", "fused"}, {"1-2", "1"}, {"1-2", "1"}});
}

// Batch 2 on the grid tier takes it off the cluster plan; on the cluster tier it stays; both
// keep it persistent.
TEST_CASE("cuda.tune=on with cuda.cluster=on times the cluster tier beside the grid tier, and a "
          "later session takes either from the tuning file with the fused step's bits",
          "[gpu][tune][cluster]") {
  check_tuned_tier({100, 12, 19821, "cuda.cluster=on", "cublas+fused+persistent+cluster",
                    "cluster_batches", {"persistent", "cluster"}, {"1", "1-2"}, {"1-2", "1-2"}});
}

// A tuned path other than the persistent kernel takes the batch off the persistent plan: a
// session that reads "cublas" from the tuning file does not run the persistent kernel there.
TEST_CASE("a tuned cuBLAS path from the tuning file takes the batch off the persistent plan",
          "[gpu][tune]") {
  Model m = t::random_model(4, {16}, 19571, 1.0f);
  TempPath file;
  const std::string config = "cuda.persistent=layers;cuda.tune=on;cuda.tune_file=" + file.path;
  const Inputs in = make_inputs(m.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 19572);
  run_once(m.get(), 2, 3, config, in);
  // The layer's one entry, its path (the sixth field) rewritten to cuBLAS.
  std::string text = read_text(file.path);
  std::size_t from = text.find('\n') + 1;
  for (int field = 0; field < 5; ++field) from = text.find('\t', from) + 1;
  const std::size_t to = text.find('\t', from);
  REQUIRE(to != std::string::npos);
  text.replace(from, to - from, "cublas");
  write_text(file.path, text);
  Session second = gpu_session_opts(m.get(), 2, 3, config.c_str());
  CHECK(layer_param(second.get(), "persistent_batches") == std::vector<std::string>{"1-2"});
  Session cpu = cpu_session(m.get(), 2, 3);
  require_close(run_host(second.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
  CHECK(layer_param(second.get(), "persistent_batches") == std::vector<std::string>{"1"});
  CHECK(layer_param(second.get(), "fused_step_batches") == std::vector<std::string>{"1"});
}

// A tuning file's entry names the layer's input size: a layer of another input size (the same
// H and batch) does not take it, and times and writes its own.
TEST_CASE("the tuning file keeps each layer's input size, and another input size times again",
          "[gpu][tune]") {
  TempPath file;
  const std::string config = "cuda.tune=on;cuda.tune_file=" + file.path;
  Model four = t::random_model(4, {16}, 19581, 1.0f);
  Model nine = t::random_model(9, {16}, 19582, 1.0f);
  run_once(four.get(), 2, 3, config,
           make_inputs(four.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 19583));
  CHECK(read_text(file.path).find("\tfp32\t4\t16\t2\t") != std::string::npos);
  Session second = gpu_session_opts(nine.get(), 2, 3, config.c_str());
  (void)run_host(second.get(), nine.get(),
                 make_inputs(nine.get(), 2, 3, SLSTM_BATCH_MAJOR, false, false, 19584));
  const std::string text = read_text(file.path);
  CHECK(text.find("\tfp32\t4\t16\t2\t") != std::string::npos);
  CHECK(text.find("\tfp32\t9\t16\t2\t") != std::string::npos);
}

// cuda.fused=never with the persistent kernel: the layers the kernel runs still get its second
// h buffer (the fused step's, allocated for the persistent batches too).
TEST_CASE("cuda.fused=never with cuda.persistent=layers matches the CPU reference", "[gpu]") {
  Model m = t::random_model(5, {12, 9}, 19591, 1.0f);
  Session gpu = gpu_session_opts(m.get(), 3, 5, "cuda.fused=never;cuda.persistent=layers");
  Session cpu = cpu_session(m.get(), 3, 5);
  REQUIRE(layer_param(gpu.get(), "persistent_batches") != std::vector<std::string>(2, "none"));
  const Inputs in = make_inputs(m.get(), 3, 5, SLSTM_BATCH_MAJOR, true, true, 19592);
  require_close(run_host(gpu.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
}

// cuda.staging=on: a call with host buffers copies them through one pinned buffer of the
// session's when they fit (the copies asynchronous, one wait for the device per call), else
// directly as without it. Where the copies go changes, not what is computed: the bits of a
// session without it, for every kind of host call.
namespace {

// Calls of `got` and `want` (same model and maxima, different settings) with the same
// arguments give the same bits: both layouts, lengths, initial states, T = 1.
void check_host_calls_same_bits(slstm_session* got, slstm_session* want, const slstm_model* m,
                                std::int64_t max_batch, std::int64_t max_time,
                                std::uint64_t seed) {
  struct Case {
    std::int64_t b, t;
    slstm_layout layout;
    bool lengths, initial;
  };
  const Case cases[] = {{max_batch, max_time, SLSTM_BATCH_MAJOR, false, true},
                        {max_batch, max_time, SLSTM_TIME_MAJOR, true, true},
                        {1, 1, SLSTM_BATCH_MAJOR, false, false},
                        {max_batch, 1, SLSTM_BATCH_MAJOR, true, true},
                        {3, 7, SLSTM_BATCH_MAJOR, true, false}};
  for (const Case& c : cases) {
    const Inputs in = make_inputs(m, c.b, c.t, c.layout, c.lengths, c.initial, seed++);
    INFO("B " << c.b << " T " << c.t << (c.layout == SLSTM_TIME_MAJOR ? " time-major" : "")
              << (c.lengths ? " lengths" : "") << (c.initial ? " initial state" : ""));
    check_same_bits(run_host(got, m, in), run_host(want, m, in));
  }
}

}  // namespace

TEST_CASE("cuda.staging=on gives the bits of direct copies, and its plan names the buffer",
          "[gpu][staging]") {
  Model m = t::random_model(11, {40, 9}, 23001, 1.0f);
  const std::int64_t B = 8, T = 30;
  Session direct = gpu_session_opts(m.get(), B, T, "");
  Session staged = gpu_session_opts(m.get(), B, T, "cuda.staging=on");
  // Input and output rows of B x T, and two packed states of B rows: float32.
  const std::size_t bytes =
      4 * static_cast<std::size_t>(B * T * (11 + 9)) + 8 * state_count(m.get(), B);
  CHECK(t::json_value(t::describe_json(staged.get()), "host_staging")
            .rfind(std::to_string(bytes) + " bytes pinned (cuda.staging=on)", 0) == 0);
  CHECK(t::json_value(t::describe_json(direct.get()), "host_staging").rfind("off", 0) == 0);
  check_host_calls_same_bits(staged.get(), direct.get(), m.get(), B, T, 23002);
  // With a persistent stack too (its single call: input, state, one launch).
  Session pers_direct = gpu_session_opts(m.get(), B, T, "cuda.persistent=on");
  Session pers_staged = gpu_session_opts(m.get(), B, T, "cuda.persistent=on;cuda.staging=on");
  check_host_calls_same_bits(pers_staged.get(), pers_direct.get(), m.get(), B, T, 23010);
}

TEST_CASE("cuda.staging=on: a state updated in place and single steps give the direct copies' "
          "bits",
          "[gpu][staging]") {
  Model m = t::random_model(6, {33, 20, 9}, 23101, 1.0f);
  Session direct = gpu_session_opts(m.get(), 5, 4, "");
  Session staged = gpu_session_opts(m.get(), 5, 4, "cuda.staging=on");
  const Inputs in = make_inputs(m.get(), 5, 4, SLSTM_BATCH_MAJOR, false, true, 23102);
  std::vector<float> s_direct = in.initial, s_staged = in.initial;
  for (int call = 0; call < 3; ++call) {  // the state of one call is the next one's
    INFO("call " << call);
    std::vector<float> o_direct = poisoned(static_cast<std::size_t>(5 * 4 * 9));
    std::vector<float> o_staged = o_direct;
    for (auto* run : {&s_direct, &s_staged}) {
      slstm_forward_args a = args_for(m.get(), in);
      std::vector<float>& out = run == &s_direct ? o_direct : o_staged;
      a.initial_state = run->data();
      a.final_state = run->data();
      a.final_state_count = run->size();
      a.output = out.data();
      a.output_count = out.size();
      REQUIRE(slstm_session_forward((run == &s_direct ? direct : staged).get(), &a) ==
              SLSTM_OK);
    }
    CHECK(same_bits(o_staged, o_direct));
    CHECK(same_bits(s_staged, s_direct));
  }
  // Frame by frame (slstm_session_step, the state in place).
  for (int frame = 0; frame < 3; ++frame) {
    INFO("frame " << frame);
    const std::vector<float> x = random_vector(5 * 6, 23110 + static_cast<std::uint64_t>(frame));
    std::vector<float> o_direct = poisoned(5 * 9), o_staged = poisoned(5 * 9);
    REQUIRE(slstm_session_step(direct.get(), 5, x.data(), x.size(), s_direct.data(),
                               s_direct.size(), o_direct.data(), o_direct.size(),
                               s_direct.data(), s_direct.size()) == SLSTM_OK);
    REQUIRE(slstm_session_step(staged.get(), 5, x.data(), x.size(), s_staged.data(),
                               s_staged.size(), o_staged.data(), o_staged.size(),
                               s_staged.data(), s_staged.size()) == SLSTM_OK);
    CHECK(same_bits(o_staged, o_direct));
    CHECK(same_bits(s_staged, s_direct));
  }
}

// The buffer holds at most 1 MiB: a larger call copies directly; a smaller one of the same
// session goes through it.
TEST_CASE("cuda.staging=on: calls larger than its buffer copy directly, with the same bits",
          "[gpu][staging]") {
  Model m = t::random_model(64, {64}, 23201, 1.0f);
  const std::int64_t B = 16, T = 300;  // 4 x 16 x 300 x 128 bytes of rows: 2.4 MiB
  Session direct = gpu_session_opts(m.get(), B, T, "");
  Session staged = gpu_session_opts(m.get(), B, T, "cuda.staging=on");
  CHECK(t::json_value(t::describe_json(staged.get()), "host_staging")
            .rfind("1048576 bytes pinned", 0) == 0);
  for (const std::int64_t t : {T, std::int64_t{100}, std::int64_t{1}, T}) {
    INFO("T " << t);
    const Inputs in = make_inputs(m.get(), B, t, SLSTM_BATCH_MAJOR, true, true,
                                  23202 + static_cast<std::uint64_t>(t));
    check_same_bits(run_host(staged.get(), m.get(), in), run_host(direct.get(), m.get(), in));
  }
}

TEST_CASE("cuda.staging=on with stream slots gives the direct copies' bits", "[gpu][staging]") {
  Model m = t::random_model(5, {12, 7}, 23301, 1.0f);
  const std::size_t S1 = state_count(m.get(), 1);
  const auto with_slots = [&](const char* config) {
    slstm_session_options o;
    slstm_session_options_init(&o);
    o.backend = SLSTM_BACKEND_CUDA;
    o.max_batch = 2;
    o.max_time = 6;
    o.max_slots = 2;
    o.config = config;
    slstm_session* s = nullptr;
    INFO(config);
    REQUIRE(slstm_session_create(m.get(), &o, &s) == SLSTM_OK);
    return Session(s);
  };
  struct Round {
    std::vector<float> output;
    std::vector<std::vector<float>> states;
  };
  const std::vector<float> x = random_vector(2 * 6 * 5, 23302);
  const auto round = [&](slstm_session* s) {
    Round r;
    std::int64_t ids[2] = {-1, -1};
    for (std::int64_t k = 0; k < 2; ++k) {
      const std::vector<float> st = random_vector(S1, 23303 + static_cast<std::uint64_t>(k));
      REQUIRE(slstm_session_slot_open(s, st.data(), S1, SLSTM_MEMORY_HOST, &ids[k]) ==
              SLSTM_OK);
    }
    r.output = poisoned(2 * 6 * 7);
    slstm_slot_forward_args a;
    slstm_slot_forward_args_init(&a);
    a.batch = 2;
    a.slot_ids = ids;
    a.slot_ids_count = 2;
    a.time = 6;
    a.input = x.data();
    a.input_count = x.size();
    a.output = r.output.data();
    a.output_count = r.output.size();
    INFO(slstm_last_error());
    REQUIRE(slstm_session_slot_forward(s, &a) == SLSTM_OK);
    for (const std::int64_t id : ids) {
      r.states.push_back(poisoned(S1));
      REQUIRE(slstm_session_slot_get_state(s, id, r.states.back().data(), S1,
                                           SLSTM_MEMORY_HOST) == SLSTM_OK);
    }
    return r;
  };
  Session direct = with_slots("cuda.slots=on");
  Session staged = with_slots("cuda.slots=on;cuda.staging=on");
  const Round want = round(direct.get()), got = round(staged.get());
  CHECK(same_bits(got.output, want.output));
  for (std::size_t k = 0; k < 2; ++k) CHECK(same_bits(got.states[k], want.states[k]));
}

// A staged call has not written the caller's buffers when its persistent kernel gives up:
// unlike a direct one (the test above the tuning cases), it runs again with its state in
// place, on the fused step, with that step's bits.
TEST_CASE("cuda.staging=on: a call whose persistent kernel gives up runs again even with its "
          "state in place",
          "[gpu][persistent][staging]") {
  Model m = t::random_model(9, {257}, 23401, 1.0f);
  const Inputs in = make_inputs(m.get(), 2, 12, SLSTM_BATCH_MAJOR, true, true, 23402);
  Session fused = gpu_session_opts(m.get(), 2, 12, "cuda.fused=always");
  const Result want = run_host(fused.get(), m.get(), in);
  Session failing = gpu_session_opts(
      m.get(), 2, 12, "cuda.persistent=on;cuda.persistent_timeout_us=0;cuda.staging=on");
  REQUIRE(persistent_batches(failing.get()) == std::vector<std::string>{"1-2"});
  std::vector<float> state = in.initial;
  std::vector<float> out = poisoned(static_cast<std::size_t>(2 * 12 * 257));
  const slstm_forward_args a = in_place_args(m.get(), in, state, out);
  INFO(slstm_last_error());
  REQUIRE(slstm_session_forward(failing.get(), &a) == SLSTM_OK);
  CHECK(same_bits(out, want.output));
  CHECK(same_bits(state, want.final_state));
  CHECK(persistent_batches(failing.get()) == std::vector<std::string>{"none"});
}

// cuda.blas_workspace_mib: a smaller cuBLAS workspace may change which GEMM algorithms run,
// not the precision's tolerance; the plan reports the workspaces' bytes.
TEST_CASE("cuda.blas_workspace_mib=1 keeps the reference's numbers, and the plan says how many "
          "workspace bytes the session holds",
          "[gpu]") {
  Model m = t::random_model(24, {300, 64}, 23501, 1.0f);
  Session cpu = cpu_session(m.get(), 32, 20);
  for (const char* config :
       {"cuda.blas_workspace_mib=1", "cuda.blas_workspace_mib=1;cuda.fused=never"}) {
    INFO(config);
    Session gpu = gpu_session_opts(m.get(), 32, 20, config);
    // One workspace per cuBLAS handle: two layers' recurrent handles, one projection handle.
    CHECK(t::json_value(t::describe_json(gpu.get()), "blas_workspace_bytes") ==
          std::to_string(3 << 20));
    const Inputs in = make_inputs(m.get(), 32, 20, SLSTM_BATCH_MAJOR, true, true, 23502);
    require_close(run_host(gpu.get(), m.get(), in), run_host(cpu.get(), m.get(), in), kTolFp32);
  }
}
