// CPU benchmark driver: times slstm_session_forward for one shape on one CPU path, or measures
// the machine's SGEMM peak with a large cblas_sgemm.  Prints one line of key=value pairs.
//
//   slstm_bench_cpu peak --threads N [--size S] [--seconds X]
//   slstm_bench_cpu lstm --path fast|reference --threads N --input D --hidden H1,H2,...
//                        --batch B --time T [--seconds X] [--min-iters K]
// Timing: after one warm-up call, calls are repeated until --seconds have passed (at least
// --min-iters); the median and the minimum per-call time are reported.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "stacklstm/stacklstm.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "slstm_bench_cpu: %s\n", what.c_str());
  std::exit(2);
}

void check(slstm_status s, const char* what) {
  if (s != SLSTM_OK) die(std::string(what) + ": " + slstm_last_error());
}

struct Args {
  std::string mode, path = "fast";
  int threads = 0;
  std::int64_t input = 0, batch = 1, time = 1, size = 4096;
  std::vector<std::int64_t> hidden;
  double seconds = 1.0;
  int min_iters = 5;
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) die("usage: slstm_bench_cpu peak|lstm [options]");
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) die("missing value for " + k);
    const std::string v = argv[++i];
    if (k == "--path") a.path = v;
    else if (k == "--threads") a.threads = std::atoi(v.c_str());
    else if (k == "--input") a.input = std::atoll(v.c_str());
    else if (k == "--batch") a.batch = std::atoll(v.c_str());
    else if (k == "--time") a.time = std::atoll(v.c_str());
    else if (k == "--size") a.size = std::atoll(v.c_str());
    else if (k == "--seconds") a.seconds = std::atof(v.c_str());
    else if (k == "--min-iters") a.min_iters = std::atoi(v.c_str());
    else if (k == "--hidden") {
      std::size_t p = 0;
      while (p < v.size()) {
        const std::size_t q = v.find(',', p);
        a.hidden.push_back(std::atoll(v.substr(p, q - p).c_str()));
        if (q == std::string::npos) break;
        p = q + 1;
      }
    } else die("unknown option " + k);
  }
  return a;
}

template <class F>
void time_it(F&& f, double budget, int min_iters, double* median, double* best, int* iters) {
  f();  // warm-up
  std::vector<double> t;
  const auto start = Clock::now();
  while (static_cast<int>(t.size()) < min_iters || seconds_since(start) < budget) {
    const auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
    if (t.size() >= 100000) break;
  }
  std::sort(t.begin(), t.end());
  *median = t[t.size() / 2];
  *best = t.front();
  *iters = static_cast<int>(t.size());
}

// Register-only FMA throughput of `threads` threads (the arithmetic ceiling no GEMM can beat):
// GFLOP/s with 24 independent accumulators per thread.
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f"))) double fma_loop_avx512(long iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long n = 0; n < iters; ++n) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  }
  float sink = 0;
  float buf[16];
  for (int i = 0; i < 24; ++i) {
    _mm512_storeu_ps(buf, acc[i]);
    for (float v : buf) sink += v;
  }
  return static_cast<double>(sink);
}
__attribute__((target("avx2,fma"))) double fma_loop_avx2(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long n = 0; n < iters; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  }
  float buf[8], sink = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_storeu_ps(buf, acc[i]);
    for (float v : buf) sink += v;
  }
  return static_cast<double>(sink);
}
double fma_peak(int threads, const char** isa) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  *isa = avx512 ? "avx512" : "avx2";
  const long iters = 20000000;
  const double flops_per_iter = avx512 ? 24.0 * 32.0 : 12.0 * 16.0;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> pool;
    std::vector<double> sink(static_cast<std::size_t>(threads));
    const auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        sink[static_cast<std::size_t>(t)] = avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
      });
    }
    for (std::thread& th : pool) th.join();
    best = std::max(best, threads * flops_per_iter * static_cast<double>(iters) /
                              seconds_since(t0) * 1e-9);
  }
  return best;
}
#else
double fma_peak(int, const char** isa) {
  *isa = "none";
  return 0.0;
}
#endif

int peak(const Args& a) {
  // OpenBLAS's own threads do the work here: the peak of the whole machine (or of
  // OPENBLAS_NUM_THREADS cores).
  const int n = static_cast<int>(a.size);
  std::vector<float> A(static_cast<std::size_t>(n) * static_cast<std::size_t>(n), 0.5f);
  std::vector<float> B(A.size(), 0.25f), C(A.size(), 0.0f);
  double med = 0, best = 0;
  int iters = 0;
  time_it([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A.data(), n,
                B.data(), n, 0.0f, C.data(), n);
  }, a.seconds, 3, &med, &best, &iters);
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  const char* isa = "";
  const int threads = a.threads > 0 ? a.threads
                                    : static_cast<int>(std::thread::hardware_concurrency());
  const double fma = fma_peak(std::max(1, threads), &isa);
  std::printf("mode=peak size=%d gflops=%.2f gflops_median=%.2f openblas_threads=%d "
              "corename=%s fma_gflops=%.2f fma_isa=%s fma_threads=%d config=\"%s\"\n",
              n, flops / best * 1e-9, flops / med * 1e-9, openblas_get_num_threads(),
              openblas_get_corename(), fma, isa, threads, openblas_get_config());
  return 0;
}

int lstm(const Args& a) {
  if (a.input < 1 || a.hidden.empty()) die("lstm needs --input and --hidden");
  slstm_model_config mc;
  slstm_model_config_init(&mc);
  mc.input_size = a.input;
  mc.num_layers = static_cast<std::int32_t>(a.hidden.size());
  mc.hidden_sizes = a.hidden.data();
  slstm_model* model = nullptr;
  check(slstm_model_create_random(&mc, 42, 0.0f, &model), "model");
  slstm_session_options so;
  slstm_session_options_init(&so);
  so.max_batch = a.batch;
  so.max_time = std::max<std::int64_t>(a.time, 1);
  so.num_threads = a.threads;
  so.cpu_path = a.path == "reference" ? SLSTM_CPU_PATH_REFERENCE : SLSTM_CPU_PATH_FAST;
  slstm_session* session = nullptr;
  check(slstm_session_create(model, &so, &session), "session");
  std::size_t n_state = 0;
  check(slstm_model_state_count(model, a.batch, &n_state), "state count");
  const std::size_t n_in = static_cast<std::size_t>(a.batch * a.time * a.input);
  const std::size_t n_out = static_cast<std::size_t>(a.batch * a.time * a.hidden.back());
  std::vector<float> x(n_in), y(n_out), s0(n_state, 0.1f),
      s1(n_state);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 2001) / 1000.0f - 1.0f;
  slstm_forward_args fa;
  slstm_forward_args_init(&fa);
  fa.layout = SLSTM_TIME_MAJOR;  // PyTorch nn.LSTM's default layout
  fa.batch = a.batch;
  fa.time = a.time;
  fa.input = x.data();
  fa.input_count = x.size();
  fa.initial_state = s0.data();
  fa.initial_state_count = s0.size();
  fa.output = y.data();
  fa.output_count = y.size();
  fa.final_state = s1.data();
  fa.final_state_count = s1.size();
  double med = 0, best = 0;
  int iters = 0;
  time_it([&] { check(slstm_session_forward(session, &fa), "forward"); }, a.seconds,
          a.min_iters, &med, &best, &iters);
  double flops = 0;
  std::int64_t in = a.input;
  for (std::int64_t h : a.hidden) {
    flops += 2.0 * static_cast<double>(a.batch * a.time) * 4.0 * static_cast<double>(h) *
             static_cast<double>(in + h);
    in = h;
  }
  std::printf("mode=lstm path=%s threads=%d ms=%.4f ms_min=%.4f iters=%d gflop=%.4f "
              "checksum=%.6g\n",
              a.path.c_str(), a.threads, med * 1e3, best * 1e3, iters, flops * 1e-9,
              static_cast<double>(y.empty() ? 0.0f : y[y.size() / 2]));
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  if (a.mode == "peak") return peak(a);
  if (a.mode == "lstm") return lstm(a);
  die("unknown mode " + a.mode);
}
