// Times slstm_session_forward through the public C API.
//
//   slstm_gpu_bench --label seed --backend cuda|cpu --memory host|device --input 128
//                   --layers 100,200,300 --batch 10 --time 100 [--lengths] [--tf32]
//                   [--reps 20] [--warmup 3] [--timer wall|events] [--rotate K]
//                   [--target-ms X --max-reps N] [--cells SPEC] [--config KEYED]
//                   [--precision bf16|fp16]
//
// --cells SPEC instead of --layers: a stack of any layers, comma-separated, each
// [bi|rev]KIND:H[:P] with KIND lstm, lstmp (projection P), gru (reset after: PyTorch, cuDNN)
// or gru0 (reset before: TF GRUCell); bi = bidirectional, rev = reverse.  E.g.
// --cells bigru:256,lstmp:1024:256.  --config: the session's keyed settings (e.g.
// cuda.generic=on, which such stacks need on CUDA).
//
// Prints one line:  RESULT <label> <backend> <memory> median_ms=<x> min_ms=<y> reps=<n>
//                   p10_ms=<a> p90_ms=<b> timer=<wall|events> rotate=<k>
// --timer wall (default): wall clock per call (each call returns after its work is done: host
// buffers, or device buffers on the session's stream).  --timer events (CUDA backend): the
// session runs on a stream of this program's and each call is timed with CUDA events recorded
// on it around the call, the stream idle before (so host launch overhead counts, as in
// bench/anchors' cuDNN timings).  --rotate K: the calls cycle through K different input
// tensors (default 1) so a small input does not stay in cache.  --target-ms X: after the
// warm-up, as many timed calls as fit X ms (at least --reps, at most --max-reps, 1000 by
// default).  Inputs are random, never zeros. Exit 77 when the CUDA backend was asked for and
// is unavailable (the reason is printed).
//
//   slstm_gpu_bench --grid bench/anchors/grid.csv [--only NAME,..] [--precisions fp32,tf32]
//                   [--budget-s S] [the timing options above]
// runs every grid row (name,hidden(:-separated),input,batch,time[,small]) in each precision
// (fp32 strict, tf32) in this one process, one RESULT line each with the row's name as the
// label; a configuration that fails prints "RESULT-FAILED <name> <precision> exit <rc>", one
// past the budget "RESULT-SKIPPED <name> <precision>".  Exit 1 when any failed.
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
  bool events = false;
  int rotate = 1;
  double target_ms = 0;
  int max_reps = 1000;
  std::string grid, only, precisions = "fp32,tf32";
  std::vector<slstm_layer_config> cells;  // --cells (empty: --layers)
  std::string config;                     // --config
  std::int32_t precision = SLSTM_PRECISION_DEFAULT;  // --precision
  double budget_s = 0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "slstm_gpu_bench: %s (see the comment at the top of gpu_bench.cpp)\n", why);
  std::exit(2);
}

// --cells: see the comment at the top.
std::vector<slstm_layer_config> parse_cells(const std::string& spec) {
  std::vector<slstm_layer_config> out;
  std::size_t at = 0;
  while (at <= spec.size()) {
    const std::size_t end = std::min(spec.find(',', at), spec.size());
    std::string item = spec.substr(at, end - at);
    at = end + 1;
    slstm_layer_config l;
    slstm_layer_config_init(&l);
    if (item.rfind("bi", 0) == 0) {
      l.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
      item = item.substr(2);
    } else if (item.rfind("rev", 0) == 0) {
      l.direction = SLSTM_DIRECTION_REVERSE;
      item = item.substr(3);
    }
    const std::size_t c1 = item.find(':');
    if (c1 == std::string::npos) usage("--cells: each layer is KIND:H[:P]");
    const std::string kind = item.substr(0, c1);
    const std::string rest = item.substr(c1 + 1);
    const std::size_t c2 = rest.find(':');
    l.hidden_size = std::atoll(rest.substr(0, c2).c_str());
    if (kind == "lstmp") {
      if (c2 == std::string::npos) usage("--cells: lstmp needs :H:P");
      l.proj_size = std::atoll(rest.substr(c2 + 1).c_str());
    } else if (kind == "gru" || kind == "gru0") {
      l.cell = SLSTM_CELL_GRU;
      l.gru_reset_after = kind == "gru" ? 1 : 0;
    } else if (kind != "lstm") {
      usage("--cells: KIND is lstm, lstmp, gru or gru0");
    }
    if (l.hidden_size < 1) usage("--cells: H >= 1");
    out.push_back(l);
  }
  return out;
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
    else if (a == "--cells") o.cells = parse_cells(value());
    else if (a == "--config") o.config = value();
    else if (a == "--precision") {
      const std::string v = value();
      if (v == "bf16") o.precision = SLSTM_PRECISION_BF16;
      else if (v == "fp16") o.precision = SLSTM_PRECISION_FP16;
      else usage("--precision is bf16 or fp16");
    }
    else if (a == "--tf32") o.tf32 = true;
    else if (a == "--reps") o.reps = std::atoi(value().c_str());
    else if (a == "--warmup") o.warmup = std::atoi(value().c_str());
    else if (a == "--timer") {
      const std::string v = value();
      if (v != "wall" && v != "events") usage("--timer is wall or events");
      o.events = v == "events";
    } else if (a == "--rotate") o.rotate = std::atoi(value().c_str());
    else if (a == "--target-ms") o.target_ms = std::atof(value().c_str());
    else if (a == "--max-reps") o.max_reps = std::atoi(value().c_str());
    else if (a == "--grid") o.grid = value();
    else if (a == "--only") o.only = value();
    else if (a == "--precisions") o.precisions = value();
    else if (a == "--budget-s") o.budget_s = std::atof(value().c_str());
    else usage(("unknown argument " + a).c_str());
  }
  if (o.reps < 1 || o.warmup < 0 || o.batch < 1 || o.time < 1 || o.input < 1) usage("bad sizes");
  if (o.device_memory && o.backend != SLSTM_BACKEND_CUDA) usage("--memory device needs cuda");
  if (o.events && o.backend != SLSTM_BACKEND_CUDA) usage("--timer events needs cuda");
  if (o.rotate < 1 || o.max_reps < o.reps) usage("need --rotate >= 1 and --max-reps >= --reps");
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

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t next = s.find(sep, pos);
    out.push_back(s.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) return out;
    pos = next + 1;
  }
}

int bench_one(const Options& o);

// --grid: every row of the grid file in every precision asked for, in this process.
int bench_grid(const Options& o) {
  std::FILE* f = std::fopen(o.grid.c_str(), "r");
  if (f == nullptr) usage(("cannot open grid file " + o.grid).c_str());
  const std::vector<std::string> only = o.only.empty() ? std::vector<std::string>{} : split(o.only, ',');
  const std::vector<std::string> precisions = split(o.precisions, ',');
  for (const std::string& p : precisions) {
    if (p != "fp32" && p != "tf32") usage("--precisions: fp32 and/or tf32");
  }
  const auto start = std::chrono::steady_clock::now();
  int failed = 0;
  char buf[1024];
  while (std::fgets(buf, sizeof buf, f) != nullptr) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> field = split(line, ',');
    if (field.size() < 5) usage(("bad grid line: " + line).c_str());
    if (!only.empty() && std::find(only.begin(), only.end(), field[0]) == only.end()) continue;
    for (const std::string& p : precisions) {
      const double spent =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (o.budget_s > 0 && spent > o.budget_s) {
        std::printf("RESULT-SKIPPED %s %s time budget of %g s spent\n", field[0].c_str(),
                    p.c_str(), o.budget_s);
        continue;
      }
      Options c = o;
      c.label = field[0];
      c.layers.clear();
      for (const std::string& h : split(field[1], ':')) c.layers.push_back(std::atoll(h.c_str()));
      c.input = std::atoll(field[2].c_str());
      c.batch = std::atoll(field[3].c_str());
      c.time = std::atoll(field[4].c_str());
      c.tf32 = p == "tf32";
      const int rc = bench_one(c);
      if (rc != 0) {
        std::printf("RESULT-FAILED %s %s exit %d\n", field[0].c_str(), p.c_str(), rc);
        ++failed;
      }
      std::fflush(stdout);
    }
  }
  std::fclose(f);
  return failed > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.backend == SLSTM_BACKEND_CUDA && slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    std::printf("SKIPPED: no usable GPU: %s\n", slstm_last_error());
    return 77;
  }
  return o.grid.empty() ? bench_one(o) : bench_grid(o);
}

namespace {

// After the timed calls, what ran: "PLAN <label> persistent_batches=<per layer> ..." from the
// plan's JSON, for the keys the plan has (a CUDA session with cuda.persistent, cuda.cluster,
// cuda.hybrid or cuda.tune). A persistent kernel that failed turns itself off and the
// calls fall back with the same numbers: this line says whether the rows timed it.
void print_live_plan(const std::string& label, const slstm_session* session) {
  std::size_t n = 0;
  if (slstm_session_describe(session, SLSTM_DESCRIBE_JSON, nullptr, 0, &n) != SLSTM_OK) return;
  std::string j(n + 1, '\0');
  if (slstm_session_describe(session, SLSTM_DESCRIBE_JSON, &j[0], j.size(), &n) != SLSTM_OK) {
    return;
  }
  j.resize(n);
  std::string line;
  for (const char* key : {"persistent_batches", "persistent_stack_batches", "cluster_batches",
                          "hybrid_batches", "hybrid_resident", "l2_window_bytes",
                          "tuned_batches"}) {
    const std::string k = std::string("\"") + key + "\": \"";
    std::string values;
    for (std::size_t at = j.find(k); at != std::string::npos; at = j.find(k, at + 1)) {
      const std::size_t b = at + k.size();
      values += (values.empty() ? "" : "|") + j.substr(b, j.find('"', b) - b);
    }
    if (!values.empty()) line += std::string(" ") + key + "=" + values;
  }
  if (!line.empty()) std::printf("PLAN %s%s\n", label.c_str(), line.c_str());
}

// One configuration: prints its RESULT line; 0 on success.
int bench_one(const Options& o) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = o.input;
  if (o.cells.empty()) {
    cfg.num_layers = static_cast<std::int32_t>(o.layers.size());
    cfg.hidden_sizes = o.layers.data();
  } else {
    cfg.num_layers = static_cast<std::int32_t>(o.cells.size());
    cfg.layers = o.cells.data();
  }
  slstm_model* model = nullptr;
  if (slstm_model_create_random(&cfg, 1234, 0.0f, &model) != SLSTM_OK) return die("model");
  std::int64_t out_width = 0;
  if (slstm_model_output_size(model, &out_width) != SLSTM_OK) return die("output size");
  slstm_session_options so;
  slstm_session_options_init(&so);
  so.backend = o.backend;
  so.max_batch = o.batch;
  so.max_time = o.time;
  so.allow_tf32 = o.tf32 ? 1 : 0;
  if (!o.config.empty()) so.config = o.config.c_str();
  so.precision = o.precision;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev0 = nullptr, ev1 = nullptr;
  if (o.events) {
    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate") ||
        !cuda_ok(cudaEventCreate(&ev0), "cudaEventCreate") ||
        !cuda_ok(cudaEventCreate(&ev1), "cudaEventCreate")) {
      return 1;
    }
    so.cuda_stream = stream;
  }
  slstm_session* session = nullptr;
  if (slstm_session_create(model, &so, &session) != SLSTM_OK) return die("session");

  std::size_t n_state = 0;
  slstm_model_state_count(model, o.batch, &n_state);
  const std::size_t n_in = static_cast<std::size_t>(o.batch * o.time * o.input);
  const std::size_t n_out = static_cast<std::size_t>(o.batch * o.time * out_width);
  std::vector<std::vector<float>> inputs;
  for (int r = 0; r < o.rotate; ++r) {
    inputs.push_back(random_vector(n_in, 1 + 1000 * static_cast<std::uint64_t>(r)));
  }
  std::vector<float>& input = inputs[0];
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
  std::vector<float*> d_ins;
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
    d_ins.push_back(d_in);
    for (int r = 1; r < o.rotate; ++r) {
      float* d = nullptr;
      if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&d), n_in * sizeof(float)), "cudaMalloc") ||
          !cuda_ok(cudaMemcpy(d, inputs[static_cast<std::size_t>(r)].data(), n_in * sizeof(float),
                              cudaMemcpyHostToDevice), "cudaMemcpy")) {
        return 1;
      }
      d_ins.push_back(d);
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

  std::size_t next = 0;
  // One call, timed: the next input in turn; wall clock, or CUDA events around the call.
  auto call = [&](double* out_ms) -> bool {
    if (o.device_memory) a.input = d_ins[next];
    else a.input = inputs[next].data();
    next = (next + 1) % static_cast<std::size_t>(o.rotate);
    if (o.events) {
      if (!cuda_ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize") ||
          !cuda_ok(cudaEventRecord(ev0, stream), "cudaEventRecord")) {
        return false;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (slstm_session_forward(session, &a) != SLSTM_OK) {
      die("forward");
      return false;
    }
    if (o.events) {
      float e = 0;
      if (!cuda_ok(cudaEventRecord(ev1, stream), "cudaEventRecord") ||
          !cuda_ok(cudaEventSynchronize(ev1), "cudaEventSynchronize") ||
          !cuda_ok(cudaEventElapsedTime(&e, ev0, ev1), "cudaEventElapsedTime")) {
        return false;
      }
      *out_ms = static_cast<double>(e);
    } else {
      const auto t1 = std::chrono::steady_clock::now();
      *out_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    }
    return true;
  };
  double one = 0;
  for (int i = 0; i < o.warmup; ++i) {
    if (!call(&one)) return 1;
  }
  int reps = o.reps;
  if (o.target_ms > 0) {
    if (!call(&one)) return 1;
    const double fit = o.target_ms / std::max(one, 1e-3);
    reps = static_cast<int>(std::min<double>(o.max_reps, std::max<double>(o.reps, fit)));
  }
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    if (!call(&one)) return 1;
    ms.push_back(one);
  }
  std::sort(ms.begin(), ms.end());
  const std::size_t last = ms.size() - 1;
  std::printf("RESULT %s %s %s median_ms=%.4f min_ms=%.4f reps=%d p10_ms=%.4f p90_ms=%.4f "
              "timer=%s rotate=%d\n", o.label.c_str(),
              o.backend != SLSTM_BACKEND_CUDA ? "cpu"
              : o.precision == SLSTM_PRECISION_BF16 ? "cuda-bf16"
              : o.precision == SLSTM_PRECISION_FP16 ? "cuda-fp16"
              : o.tf32                               ? "cuda-tf32"
                                                     : "cuda",
              o.device_memory ? "device" : "host", ms[ms.size() / 2], ms.front(), reps,
              ms[last / 10], ms[last - last / 10], o.events ? "events" : "wall", o.rotate);
  print_live_plan(o.label, session);
  if (o.events) {
    cudaEventDestroy(ev0);
    cudaEventDestroy(ev1);
  }
  if (o.device_memory) {
    for (std::size_t r = 1; r < d_ins.size(); ++r) cudaFree(d_ins[r]);
    cudaFree(d_in);
    cudaFree(d_init);
    cudaFree(d_out);
    cudaFree(d_final);
  }
  slstm_session_destroy(session);
  if (stream != nullptr) cudaStreamDestroy(stream);
  slstm_model_destroy(model);
  return 0;
}

}  // namespace
