// Times slstm_session_forward through the public C API.
//
//   slstm_gpu_bench --label seed --backend cuda|cpu --memory host|device --input 128
//                   --layers 100,200,300 --batch 10 --time 100 [--lengths] [--tf32]
//                   [--reps 20] [--warmup 3]
//
// Prints one line:  RESULT <label> <backend> <memory> median_ms=<x> min_ms=<y> reps=<n>
// Wall-clock per call (each call returns after its work is done: host buffers, or device
// buffers on the session's own stream). Inputs are random, never zeros. Exit 77 when the
// CUDA backend was asked for and is unavailable (the reason is printed).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "stacklstm/stacklstm.h"

namespace {

struct Options {
  std::string label = "run";
  slstm_backend backend = SLSTM_BACKEND_CUDA;
  bool device_memory = false;
  std::int64_t input = 128;
  std::vector<std::int64_t> layers = {100, 200, 300};
  std::int64_t batch = 10;
  std::int64_t time = 100;
  bool lengths = false;
  bool tf32 = false;
  int reps = 20;
  int warmup = 3;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "slstm_gpu_bench: %s (see the comment at the top of gpu_bench.cpp)\n", why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--label") o.label = value();
    else if (a == "--backend") {
      const std::string v = value();
      if (v == "cuda") o.backend = SLSTM_BACKEND_CUDA;
      else if (v == "cpu") o.backend = SLSTM_BACKEND_CPU;
      else usage("--backend is cuda or cpu");
    } else if (a == "--memory") {
      const std::string v = value();
      if (v != "host" && v != "device") usage("--memory is host or device");
      o.device_memory = v == "device";
    } else if (a == "--input") o.input = std::atoll(value().c_str());
    else if (a == "--layers") {
      o.layers.clear();
      std::string v = value();
      std::size_t pos = 0;
      while (pos <= v.size()) {
        const std::size_t comma = v.find(',', pos);
        const std::string part = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        o.layers.push_back(std::atoll(part.c_str()));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (a == "--batch") o.batch = std::atoll(value().c_str());
    else if (a == "--time") o.time = std::atoll(value().c_str());
    else if (a == "--lengths") o.lengths = true;
    else if (a == "--tf32") o.tf32 = true;
    else if (a == "--reps") o.reps = std::atoi(value().c_str());
    else if (a == "--warmup") o.warmup = std::atoi(value().c_str());
    else usage(("unknown argument " + a).c_str());
  }
  if (o.reps < 1 || o.warmup < 0 || o.batch < 1 || o.time < 1 || o.input < 1) usage("bad sizes");
  if (o.device_memory && o.backend != SLSTM_BACKEND_CUDA) usage("--memory device needs cuda");
  return o;
}

std::vector<float> random_vector(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& e : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e = static_cast<float>(static_cast<double>(x >> 11) * (2.0 / 9007199254740992.0) - 1.0);
  }
  return v;
}

int die(const char* what) {
  std::fprintf(stderr, "slstm_gpu_bench: %s: %s\n", what, slstm_last_error());
  return 1;
}

bool cuda_ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "slstm_gpu_bench: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.backend == SLSTM_BACKEND_CUDA && slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    std::printf("SKIPPED: no usable GPU: %s\n", slstm_last_error());
    return 77;
  }
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = o.input;
  cfg.num_layers = static_cast<std::int32_t>(o.layers.size());
  cfg.hidden_sizes = o.layers.data();
  slstm_model* model = nullptr;
  if (slstm_model_create_random(&cfg, 1234, 0.0f, &model) != SLSTM_OK) return die("model");
  slstm_session_options so;
  slstm_session_options_init(&so);
  so.backend = o.backend;
  so.max_batch = o.batch;
  so.max_time = o.time;
  so.allow_tf32 = o.tf32 ? 1 : 0;
  slstm_session* session = nullptr;
  if (slstm_session_create(model, &so, &session) != SLSTM_OK) return die("session");

  std::size_t n_state = 0;
  slstm_model_state_count(model, o.batch, &n_state);
  const std::size_t n_in = static_cast<std::size_t>(o.batch * o.time * o.input);
  const std::size_t n_out = static_cast<std::size_t>(o.batch * o.time * o.layers.back());
  std::vector<float> input = random_vector(n_in, 1);
  std::vector<float> init = random_vector(n_state, 2);
  std::vector<float> output(n_out), final_state(n_state);
  std::vector<std::int32_t> lengths;
  for (std::int64_t b = 0; b < o.batch; ++b) {
    const std::int32_t t = static_cast<std::int32_t>(o.time);
    const std::int32_t choices[4] = {t, t - 1, 1, 0};
    lengths.push_back(choices[b % 4]);
  }

  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = o.batch;
  a.time = o.time;
  a.input_count = n_in;
  a.initial_state_count = n_state;
  a.output_count = n_out;
  a.final_state_count = n_state;
  if (o.lengths) {
    a.sequence_lengths = lengths.data();
    a.sequence_lengths_count = lengths.size();
  }
  float* d_in = nullptr;
  float* d_init = nullptr;
  float* d_out = nullptr;
  float* d_final = nullptr;
  if (o.device_memory) {
    if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&d_in), n_in * sizeof(float)), "cudaMalloc") ||
        !cuda_ok(cudaMalloc(reinterpret_cast<void**>(&d_init), n_state * sizeof(float)), "cudaMalloc") ||
        !cuda_ok(cudaMalloc(reinterpret_cast<void**>(&d_out), n_out * sizeof(float)), "cudaMalloc") ||
        !cuda_ok(cudaMalloc(reinterpret_cast<void**>(&d_final), n_state * sizeof(float)), "cudaMalloc") ||
        !cuda_ok(cudaMemcpy(d_in, input.data(), n_in * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy") ||
        !cuda_ok(cudaMemcpy(d_init, init.data(), n_state * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy")) {
      return 1;
    }
    a.memory = SLSTM_MEMORY_DEVICE;
    a.input = d_in;
    a.initial_state = d_init;
    a.output = d_out;
    a.final_state = d_final;
  } else {
    a.input = input.data();
    a.initial_state = init.data();
    a.output = output.data();
    a.final_state = final_state.data();
  }

  for (int i = 0; i < o.warmup; ++i) {
    if (slstm_session_forward(session, &a) != SLSTM_OK) return die("forward (warm-up)");
  }
  std::vector<double> ms;
  for (int i = 0; i < o.reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (slstm_session_forward(session, &a) != SLSTM_OK) return die("forward");
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("RESULT %s %s %s median_ms=%.4f min_ms=%.4f reps=%d\n", o.label.c_str(),
              o.backend == SLSTM_BACKEND_CUDA ? (o.tf32 ? "cuda-tf32" : "cuda") : "cpu",
              o.device_memory ? "device" : "host", ms[ms.size() / 2], ms.front(), o.reps);
  if (o.device_memory) {
    cudaFree(d_in);
    cudaFree(d_init);
    cudaFree(d_out);
    cudaFree(d_final);
  }
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return 0;
}
