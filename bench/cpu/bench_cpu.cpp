// CPU benchmark driver: times slstm_session_forward for one shape on one CPU path, or measures
// the machine's SGEMM peak with a large cblas_sgemm.  Prints one line of key=value pairs.
//
//   slstm_bench_cpu peak --threads N [--size S] [--seconds X] [--fma 0 (no FMA-rate line)]
//   slstm_bench_cpu lstm --path fast|reference --threads N --input D --hidden H1,H2,...
//                        --batch B --time T [--seconds X] [--min-iters K] [--rotate R]
//                        [--config "key=value;..."] [--gap-us G] [--precision P]
//                        [--initial-state 0] [--cell C] [--direction D] [--proj P]
//   slstm_bench_cpu machine --threads N [--mib M] [--seconds X]
//   slstm_bench_cpu dump --dir DIR --threads N --input D --hidden H1,H2,... --batch B --time T
//                        [--check-batch B2] [--check-time T2] [--rotate R]
// Timing: after one warm-up call, calls are repeated until --seconds have passed (at least
// --min-iters); the median, 10th/90th percentiles and the minimum per-call time are
// reported.  lstm rotates the calls among R different input tensors (default 4) so that a
// small input does not stay in cache from one call to the next.  --gap-us G: the calls are G
// microseconds apart (a sleep between them, not timed), as frames of a stream arrive: the
// library's workers may have gone to sleep by the next call and its time includes waking them.
// machine: the bytes ceiling of the CPU floor, copy bandwidth (N threads, each memcpy-ing its
// slice of an M MiB buffer, default 512; bytes read + written per second), also for working
// sets (source + destination) of 1, 4, 16, ... MiB (copy_curve=MiB:GB/s,...: what a working
// set that size moves when it stays in cache between calls), and read bandwidth for working
// sets of 1/2 .. 256 MiB below M (read_curve=MiB:GB/s,...: each thread reading its slice, forward
// and backward in turn, as a step's weight stream; the memory floor's ceiling).
// --cell lstm (BasicLSTMCell, the default) | peephole (LSTMCell use_peepholes) | gru (TF1
// GRUCell, reset before the product) | gru-after (cuDNN / PyTorch's GRU) and --direction
// forward | reverse | bidirectional set every layer's, and --proj P gives every LSTM layer an
// output projection to P units (LSTMP; anything but forward BasicLSTMCell runs the generic
// path; docs/cells.md); gflop counts each direction's G x H gate rows and its projection.
// dump: what another engine needs to compute exactly what `lstm` times (bench/cpu/ort_anchor.py):
// the same model's weights exported in the ONNX LSTM layout (onnx_W<l>.f32 [1, 4H, I],
// onnx_R<l>.f32 [1, 4H, H], onnx_B<l>.f32 [1, 8H], forget_bias folded into Wb), the R inputs
// lstm rotates among (x<r>.f32, time-major [T, B, D]), and the reference path's answer for
// input x0 cut to its first T2 steps and B2 rows (the answer for those steps and rows does not
// depend on the others): ref_y.f32 [T2, B2, H_last] and ref_state.f32 (packed c_0, h_0, ...
// after T2 steps, B2 rows).  Initial state 0.1 everywhere, as in lstm.  Raw float32, native
// byte order.
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
  int rotate = 4;
  std::int64_t mib = 512;
  double gap_us = 0;  // lstm: sleep between calls (streaming frames), not timed
  std::string dir;
  std::string config;  // slstm_session_options.config (keyed settings), "" for none
  std::string precision;  // slstm_session_options.precision by name, "" for the default
  std::int64_t check_batch = 0, check_time = 0;
  bool fma = true;  // peak: also the register-only FMA rate (--fma 0: the SGEMM alone)
  // lstm: each call starts from a state of kInitialState (as the anchors are given), or
  // (--initial-state 0) from none, the zero state, whose first step has no recurrent product
  bool initial_state = true;
  std::string cell = "lstm", direction = "forward";  // lstm: every layer's (make_model)
  std::int64_t proj = 0;                             // lstm: every LSTM layer's proj_size
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) die("usage: slstm_bench_cpu peak|lstm|machine|dump [options]");
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
    else if (k == "--gap-us") a.gap_us = std::atof(v.c_str());
    else if (k == "--mib") a.mib = std::atoll(v.c_str());
    else if (k == "--rotate") a.rotate = std::max(1, std::atoi(v.c_str()));
    else if (k == "--dir") a.dir = v;
    else if (k == "--config") a.config = v;
    else if (k == "--precision") a.precision = v;
    else if (k == "--check-batch") a.check_batch = std::atoll(v.c_str());
    else if (k == "--check-time") a.check_time = std::atoll(v.c_str());
    else if (k == "--fma") a.fma = v != "0";
    else if (k == "--initial-state") a.initial_state = v != "0";
    else if (k == "--cell") a.cell = v;
    else if (k == "--direction") a.direction = v;
    else if (k == "--proj") a.proj = std::atoll(v.c_str());
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

struct Timing {
  double median = 0, best = 0, p10 = 0, p90 = 0;
  int iters = 0;
};

// gap_us: a sleep of that long before each timed call (not in its time; in the budget).
template <class F>
Timing time_it(F&& f, double budget, int min_iters, double gap_us = 0) {
  f();  // warm-up
  std::vector<double> t;
  const auto start = Clock::now();
  while (static_cast<int>(t.size()) < min_iters || seconds_since(start) < budget) {
    if (gap_us > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(gap_us));
    }
    const auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
    if (t.size() >= 100000) break;
  }
  std::sort(t.begin(), t.end());
  Timing r;
  const std::size_t n = t.size();
  r.median = t[n / 2];
  r.best = t.front();
  r.p10 = t[(n - 1) / 10];
  r.p90 = t[(n - 1) - (n - 1) / 10];
  r.iters = static_cast<int>(n);
  return r;
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
  const Timing tm = time_it([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A.data(), n,
                B.data(), n, 0.0f, C.data(), n);
  }, a.seconds, 3);
  const double med = tm.median, best = tm.best;
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  const char* isa = "";
  const int threads = a.threads > 0 ? a.threads
                                    : static_cast<int>(std::thread::hardware_concurrency());
  const double fma = a.fma ? fma_peak(std::max(1, threads), &isa) : 0.0;
  if (!a.fma) isa = "skipped";
  std::printf("mode=peak size=%d gflops=%.2f gflops_median=%.2f openblas_threads=%d "
              "corename=%s fma_gflops=%.2f fma_isa=%s fma_threads=%d config=\"%s\"\n",
              n, flops / best * 1e-9, flops / med * 1e-9, openblas_get_num_threads(),
              openblas_get_corename(), fma, isa, threads, openblas_get_config());
  return 0;
}

// The session's plan in four words for the result line (slstm_session_describe, JSON): the
// CPU kernel chosen (params.kernel), whether the recurrent products run on AMX tiles (the
// first word of params.amx: on, off), the threads it uses (params.threads) and each layer's
// path, comma-separated.  "?" where the plan does not say.
std::string json_value(const std::string& json, const std::string& key, std::size_t* from) {
  const std::string pat = "\"" + key + "\": \"";
  const std::size_t p = json.find(pat, *from);
  if (p == std::string::npos) return "";
  const std::size_t b = p + pat.size(), e = json.find('"', b);
  if (e == std::string::npos) return "";
  *from = e;
  return json.substr(b, e - b);
}

std::string plan_words(const slstm_session* session) {
  std::size_t n = 0;
  if (slstm_session_describe(session, SLSTM_DESCRIBE_JSON, nullptr, 0, &n) != SLSTM_OK) {
    return "kernel=? amx=? threads_used=? layer_paths=?";
  }
  std::string json(n + 1, '\0');
  check(slstm_session_describe(session, SLSTM_DESCRIBE_JSON, &json[0], json.size(), &n),
        "describe");
  json.resize(n);
  std::size_t at = 0;
  std::string kernel = json_value(json, "kernel", &at);
  at = 0;
  std::string amx = json_value(json, "amx", &at);
  amx = amx.substr(0, amx.find(' '));
  at = 0;
  std::string threads = json_value(json, "threads", &at);
  std::string paths;
  at = json.find("\"layers\"");
  while (at != std::string::npos) {
    const std::string p = json_value(json, "path", &at);
    if (p.empty()) break;
    paths += (paths.empty() ? "" : ",") + p;
  }
  auto word = [](const std::string& v) {
    std::string w = v.empty() ? "?" : v;
    for (char& c : w) {
      if (c == ' ' || c == '"') c = '_';
    }
    return w;
  };
  return "kernel=" + word(kernel) + " amx=" + word(amx) + " threads_used=" + word(threads) +
         " layer_paths=" + word(paths);
}

// Whether --cell names a GRU (either reset placement): three gates, no projection.
bool is_gru(const Args& a) { return a.cell == "gru" || a.cell == "gru-after"; }

// The model every mode times or dumps: seeded random weights (seed 42, PyTorch's default
// scale), forget_bias as slstm_model_config_init sets it (1.0, TF's default).
slstm_model* make_model(const Args& a) {
  if (a.input < 1 || a.hidden.empty()) die(a.mode + " needs --input and --hidden");
  slstm_model_config mc;
  slstm_model_config_init(&mc);
  mc.input_size = a.input;
  mc.num_layers = static_cast<std::int32_t>(a.hidden.size());
  std::vector<slstm_layer_config> layers;
  const bool gru = is_gru(a);
  if (a.proj > 0 && gru) die("--proj: a GRU layer has no projection");
  if (a.cell == "lstm" && a.direction == "forward" && a.proj == 0) {
    mc.hidden_sizes = a.hidden.data();
  } else {
    if (a.mode == "dump") die("dump takes forward BasicLSTMCell stacks only");
    for (std::int64_t h : a.hidden) {
      slstm_layer_config l;
      slstm_layer_config_init(&l);
      l.hidden_size = h;
      if (a.cell == "peephole") {
        l.peepholes = 1;
      } else if (gru) {
        l.cell = SLSTM_CELL_GRU;
        l.gru_reset_after = a.cell == "gru-after" ? 1 : 0;
      } else if (a.cell != "lstm") {
        die("--cell: unknown cell \"" + a.cell + "\" (lstm, peephole, gru, gru-after)");
      }
      if (a.direction == "reverse") {
        l.direction = SLSTM_DIRECTION_REVERSE;
      } else if (a.direction == "bidirectional") {
        l.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
      } else if (a.direction != "forward") {
        die("--direction: unknown direction \"" + a.direction +
            "\" (forward, reverse, bidirectional)");
      }
      l.proj_size = a.proj;
      layers.push_back(l);
    }
    mc.layers = layers.data();
  }
  slstm_model* model = nullptr;
  check(slstm_model_create_random(&mc, 42, 0.0f, &model), "model");
  return model;
}

// a.rotate different inputs of n_in floats (never zeros), used in turn.
std::vector<std::vector<float>> make_inputs(const Args& a, std::size_t n_in) {
  std::vector<std::vector<float>> xs(static_cast<std::size_t>(a.rotate), std::vector<float>(n_in));
  for (std::size_t r = 0; r < xs.size(); ++r) {
    for (std::size_t i = 0; i < n_in; ++i) {
      xs[r][i] = static_cast<float>((i * 7919 + r * 104729) % 2001) / 1000.0f - 1.0f;
    }
  }
  return xs;
}

constexpr float kInitialState = 0.1f;

slstm_precision precision_of(const std::string& name) {
  if (name.empty()) return SLSTM_PRECISION_DEFAULT;
  if (name == "fp32") return SLSTM_PRECISION_FP32;
  if (name == "tf32") return SLSTM_PRECISION_TF32;
  if (name == "bf16") return SLSTM_PRECISION_BF16;
  if (name == "fp16") return SLSTM_PRECISION_FP16;
  die("--precision: unknown precision \"" + name + "\" (fp32, tf32, bf16, fp16)");
}

int lstm(const Args& a) {
  slstm_model* model = make_model(a);
  slstm_session_options so;
  slstm_session_options_init(&so);
  so.max_batch = a.batch;
  so.max_time = std::max<std::int64_t>(a.time, 1);
  so.num_threads = a.threads;
  if (!a.config.empty()) so.config = a.config.c_str();
  so.precision = precision_of(a.precision);
  so.cpu_path = a.path == "reference" ? SLSTM_CPU_PATH_REFERENCE : SLSTM_CPU_PATH_FAST;
  slstm_session* session = nullptr;
  check(slstm_session_create(model, &so, &session), "session");
  std::size_t n_state = 0;
  check(slstm_model_state_count(model, a.batch, &n_state), "state count");
  const std::size_t n_in = static_cast<std::size_t>(a.batch * a.time * a.input);
  std::int64_t width = 0;
  check(slstm_model_output_size(model, &width), "output size");
  const std::size_t n_out = static_cast<std::size_t>(a.batch * a.time * width);
  std::vector<std::vector<float>> xs = make_inputs(a, n_in);
  std::vector<float>& x = xs[0];
  std::vector<float> y(n_out), s0(n_state, kInitialState), s1(n_state);
  slstm_forward_args fa;
  slstm_forward_args_init(&fa);
  fa.layout = SLSTM_TIME_MAJOR;  // PyTorch nn.LSTM's default layout
  fa.batch = a.batch;
  fa.time = a.time;
  fa.input = x.data();
  fa.input_count = x.size();
  fa.initial_state = a.initial_state ? s0.data() : nullptr;
  fa.initial_state_count = a.initial_state ? s0.size() : 0;
  fa.output = y.data();
  fa.output_count = y.size();
  fa.final_state = s1.data();
  fa.final_state_count = s1.size();
  std::size_t next = 0;
  const Timing tm = time_it([&] {
    fa.input = xs[next].data();
    next = (next + 1) % xs.size();
    check(slstm_session_forward(session, &fa), "forward");
  }, a.seconds, a.min_iters, a.gap_us);
  double flops = 0;
  std::int64_t in = a.input;
  const double gates = is_gru(a) ? 3.0 : 4.0;
  const std::int64_t dirs = a.direction == "bidirectional" ? 2 : 1;
  for (std::int64_t h : a.hidden) {
    const std::int64_t r = a.proj > 0 ? a.proj : h;  // the recurrent width, the output's
    const double rows = static_cast<double>(a.batch * a.time * dirs);
    flops += 2.0 * rows * gates * static_cast<double>(h) * static_cast<double>(in + r);
    if (a.proj > 0) flops += 2.0 * rows * static_cast<double>(r) * static_cast<double>(h);
    in = r * dirs;
  }
  std::printf("mode=lstm path=%s threads=%d ms=%.4f ms_min=%.4f ms_p10=%.4f ms_p90=%.4f "
              "iters=%d rotate=%d gap_us=%g initial_state=%d cell=%s direction=%s proj=%lld "
              "gflop=%.4f checksum=%.6g %s\n",
              a.path.c_str(), a.threads, tm.median * 1e3, tm.best * 1e3, tm.p10 * 1e3,
              tm.p90 * 1e3, tm.iters, a.rotate, a.gap_us, a.initial_state ? 1 : 0,
              a.cell.c_str(), a.direction.c_str(), static_cast<long long>(a.proj), flops * 1e-9,
              static_cast<double>(y.empty() ? 0.0f : y[y.size() / 2]),
              plan_words(session).c_str());
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return 0;
}

// Sum of the floats in [p, p + n) (n a multiple of 64), read forward in 64-byte lines: a
// weight stream's reads, without its arithmetic.
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2"))) float read_forward_avx2(const float* p, std::size_t n) {
  // Eight sums, two lines an iteration: enough independent adds that the loads, not the
  // adds' latency, set the pace.
  __m256 s[8];
  for (__m256& v : s) v = _mm256_setzero_ps();
  for (const float* end = p + n / 64 * 64; p < end; p += 64) {
    for (int j = 0; j < 8; ++j) s[j] = _mm256_add_ps(s[j], _mm256_load_ps(p + 8 * j));
  }
  for (int j = 1; j < 8; ++j) s[0] = _mm256_add_ps(s[0], s[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s[0]);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

float read_forward(const float* p, std::size_t n) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return read_forward_avx2(p, n);
#endif
  float s[8] = {};
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) s[j] += p[i + j];
  }
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// [p, p + n) in chunks of 64 KiB, each read forward, the chunks in order or (backward) in
// reverse order: as the fast path's steps read their groups' weights, every other step
// from the last group back (what the previous step read last is still in cache).
float read_chunks(const float* p, std::size_t n, bool backward) {
  constexpr std::size_t kChunk = std::size_t{64} << 10 >> 2;  // floats
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  float s = 0.0f;
  for (std::size_t i = 0; i < chunks; ++i) {
    const std::size_t c = backward ? chunks - 1 - i : i;
    s += read_forward(p + c * kChunk, std::min(kChunk, n - c * kChunk));
  }
  return s;
}

// Copy bandwidth of `threads` threads, each memcpy-ing its slice (bytes read + written per
// second, median over the repeats), for the whole buffer and a curve of smaller working sets;
// and read bandwidth (each thread reading its slice, alternately forward and backward by
// chunks as the fast path's steps walk their weights: read_curve=MiB:GB/s,...), the memory floor's
// ceiling for a weight stream of that size.
int machine(const Args& a) {
  const int threads = a.threads > 0 ? a.threads
                                    : static_cast<int>(std::thread::hardware_concurrency());
  const std::size_t mib = static_cast<std::size_t>(std::max<std::int64_t>(a.mib, 1));
  const std::size_t bytes = mib << 20;
  std::vector<char> src(bytes), dst(bytes);
  for (std::size_t i = 0; i < bytes; i += 64) src[i] = static_cast<char>(i >> 6);
  // One copy of `size` bytes (src and dst, so 2 x size bytes of working set), repeated `rep`
  // times by each thread over its slice, so thread start-up does not weigh on small sizes.
  auto copy_gbps = [&](std::size_t size, double budget, double* best_gbps) {
    const std::size_t slice = size / static_cast<std::size_t>(threads) / 64 * 64;
    const int rep = static_cast<int>(std::max<std::size_t>(1, (std::size_t{64} << 20) / size));
    auto copy_all = [&] {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          const std::size_t off = slice * static_cast<std::size_t>(t);
          for (int r = 0; r < rep; ++r) std::memcpy(dst.data() + off, src.data() + off, slice);
        });
      }
      for (std::thread& th : pool) th.join();
    };
    copy_all();  // first touch
    const Timing cp = time_it(copy_all, budget, 3);
    const double moved = 2.0 * static_cast<double>(slice) * threads * rep;
    *best_gbps = moved / cp.best * 1e-9;
    return moved / cp.median * 1e-9;
  };
  double best = 0;
  const double gbps = copy_gbps(bytes, a.seconds, &best);
  // The bandwidth curve: working sets (src + dst) of 1 MiB up to the full buffer.
  std::string curve;
  for (std::size_t total = std::size_t{1} << 20; total < 2 * bytes; total *= 4) {
    double b = 0;
    const double g = copy_gbps(total / 2, a.seconds / 8, &b);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%zu:%.2f", curve.empty() ? "" : ",", total >> 20, g);
    curve += buf;
  }

  // Read bandwidth: working sets of 1/2 MiB up to 256 MiB within the buffer, the cache sizes'
  // region in finer steps (a weight stream a little larger than L3 still finds part of it
  // there).
  std::vector<float> sink(static_cast<std::size_t>(threads), 0.0f);
  const float* floats = reinterpret_cast<const float*>(
      (reinterpret_cast<std::uintptr_t>(src.data()) + 63) / 64 * 64);
  const std::size_t usable = (bytes - 64) / sizeof(float);
  auto read_gbps = [&](std::size_t size) {
    const std::size_t slice = size / sizeof(float) / static_cast<std::size_t>(threads) / 64 * 64;
    const int rep = static_cast<int>(std::max<std::size_t>(2, (std::size_t{256} << 20) / size));
    auto read_all = [&] {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          const float* p = floats + slice * static_cast<std::size_t>(t);
          float s = 0.0f;
          for (int r = 0; r < rep; ++r) s += read_chunks(p, slice, r % 2 == 1);
          sink[static_cast<std::size_t>(t)] += s;
        });
      }
      for (std::thread& th : pool) th.join();
    };
    read_all();  // first touch of the pages (src is written above) and the caches
    const Timing rd = time_it(read_all, a.seconds / 8, 3);
    return static_cast<double>(slice * sizeof(float)) * threads * rep / rd.median * 1e-9;
  };
  std::string read_curve;
  for (const double ws : {0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 40.0, 48.0,
                          64.0, 96.0, 128.0, 256.0}) {
    const auto size = static_cast<std::size_t>(ws * (1 << 20));
    if (size / sizeof(float) > usable) break;  // (the buffer, less its alignment)
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%g:%.2f", read_curve.empty() ? "" : ",", ws,
                  read_gbps(size));
    read_curve += buf;
  }
  float checksum = 0.0f;
  for (const float v : sink) checksum += v;

  std::printf("mode=machine threads=%d copy_mib=%zu copy_gbps=%.2f copy_gbps_best=%.2f "
              "copy_curve=%s read_curve=%s read_checksum=%g\n",
              threads, mib, gbps, best, curve.c_str(), read_curve.c_str(),
              static_cast<double>(checksum));
  return 0;
}

void write_f32(const std::string& path, const std::vector<float>& v) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) die("cannot write " + path);
  const std::size_t n = std::fwrite(v.data(), sizeof(float), v.size(), f);
  if (std::fclose(f) != 0 || n != v.size()) die("short write to " + path);
}

int dump(const Args& a) {
  if (a.dir.empty()) die("dump needs --dir");
  if (a.batch < 1 || a.time < 1) die("dump needs --batch >= 1 and --time >= 1");
  const std::int64_t cb = a.check_batch > 0 ? std::min(a.check_batch, a.batch) : a.batch;
  const std::int64_t ct = a.check_time > 0 ? std::min(a.check_time, a.time) : a.time;
  slstm_model* model = make_model(a);
  // The weights in the ONNX layout, as the library exports them.
  const std::size_t L = a.hidden.size();
  std::vector<std::vector<float>> w(3 * L);
  std::vector<slstm_tensor_out> t(3 * L);
  std::int64_t in = a.input;
  for (std::size_t l = 0; l < L; ++l) {
    const std::int64_t h = a.hidden[l];
    const std::int64_t shapes[3][3] = {{1, 4 * h, in}, {1, 4 * h, h}, {1, 8 * h, 0}};
    for (std::size_t k = 0; k < 3; ++k) {
      slstm_tensor_out& o = t[3 * l + k];
      o.ndim = k == 2 ? 2 : 3;
      std::size_t n = 1;
      for (int d = 0; d < o.ndim; ++d) {
        o.shape[d] = shapes[k][d];
        n *= static_cast<std::size_t>(shapes[k][d]);
      }
      w[3 * l + k].resize(n);
      o.data = w[3 * l + k].data();
    }
    in = h;
  }
  check(slstm_model_export(model, SLSTM_FORMAT_ONNX, t.data(), t.size()), "export (ONNX)");
  const char* names[3] = {"W", "R", "B"};
  for (std::size_t l = 0; l < L; ++l) {
    for (std::size_t k = 0; k < 3; ++k) {
      write_f32(a.dir + "/onnx_" + names[k] + std::to_string(l) + ".f32", w[3 * l + k]);
    }
  }
  const std::size_t n_in = static_cast<std::size_t>(a.batch * a.time * a.input);
  const std::vector<std::vector<float>> xs = make_inputs(a, n_in);
  for (std::size_t r = 0; r < xs.size(); ++r) {
    write_f32(a.dir + "/x" + std::to_string(r) + ".f32", xs[r]);
  }
  // The reference path on x0's first ct steps and cb rows (time-major).
  std::vector<float> xc(static_cast<std::size_t>(ct * cb * a.input));
  for (std::int64_t s = 0; s < ct; ++s) {
    for (std::int64_t b = 0; b < cb; ++b) {
      const float* src = xs[0].data() + (s * a.batch + b) * a.input;
      std::copy(src, src + a.input, xc.data() + (s * cb + b) * a.input);
    }
  }
  slstm_session_options so;
  slstm_session_options_init(&so);
  so.max_batch = cb;
  so.max_time = ct;
  so.num_threads = a.threads;
  if (!a.config.empty()) so.config = a.config.c_str();
  so.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  slstm_session* session = nullptr;
  check(slstm_session_create(model, &so, &session), "session");
  std::size_t n_state = 0;
  check(slstm_model_state_count(model, cb, &n_state), "state count");
  std::vector<float> y(static_cast<std::size_t>(ct * cb * a.hidden.back()));
  std::vector<float> s0(n_state, kInitialState), s1(n_state);
  slstm_forward_args fa;
  slstm_forward_args_init(&fa);
  fa.layout = SLSTM_TIME_MAJOR;
  fa.batch = cb;
  fa.time = ct;
  fa.input = xc.data();
  fa.input_count = xc.size();
  fa.initial_state = s0.data();
  fa.initial_state_count = s0.size();
  fa.output = y.data();
  fa.output_count = y.size();
  fa.final_state = s1.data();
  fa.final_state_count = s1.size();
  const auto t0 = Clock::now();
  check(slstm_session_forward(session, &fa), "forward (reference)");
  const double ref_ms = seconds_since(t0) * 1e3;
  write_f32(a.dir + "/ref_y.f32", y);
  write_f32(a.dir + "/ref_state.f32", s1);
  float forget_bias = 0.0f;
  check(slstm_model_forget_bias(model, &forget_bias), "forget_bias");
  std::printf("mode=dump layers=%zu rotate=%zu check_batch=%lld check_time=%lld ref_ms=%.3f "
              "forget_bias=%g initial_state=%g format=onnx\n",
              L, xs.size(), static_cast<long long>(cb), static_cast<long long>(ct), ref_ms,
              static_cast<double>(forget_bias), static_cast<double>(kInitialState));
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  if (a.mode == "peak") return peak(a);
  if (a.mode == "lstm") return lstm(a);
  if (a.mode == "machine") return machine(a);
  if (a.mode == "dump") return dump(a);
  die("unknown mode " + a.mode);
}
