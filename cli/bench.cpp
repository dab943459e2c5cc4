// `stacklstm bench MODEL`: times forward calls on the chosen backend.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "util.hpp"

namespace slstm_cli {

const char* const kBenchHelp =
    "usage: stacklstm bench MODEL.safetensors [options]\n"
    "\n"
    "Times forward calls of the model on seeded random input (uniform in [-1, 1]) and prints\n"
    "a short table: min / median / p90 milliseconds per call, sequences/s and steps/s (both\n"
    "from the median).  A progress bar is drawn on stderr when stderr is a terminal.\n"
    "\n"
    "  --batch B          sequences per call (default 1)\n"
    "  --time T           steps per sequence (default 100)\n"
    "  --repeat N         timed calls (default 20)\n"
    "  --warmup N         untimed calls first (default 3)\n"
    "  --seed S           seed of the random input (default 0)\n"
    "  --backend cpu|cuda (default cpu)\n"
    "  --cpu-path auto|reference|fast, --threads N, --device N, --tf32, --config \"k=v;...\"\n"
    "  --precision default|fp32|tf32|bf16|fp16\n"
    "                     as for `stacklstm run`\n"
    "  --json             one JSON object instead of the table\n"
    "  -h, --help         this text\n"
    "\n"
    "A call is slstm_session_forward on host buffers, timed from the call to its return (on\n"
    "CUDA that includes copying input and output across PCIe).\n"
    "\n"
    "example: stacklstm bench model.safetensors --batch 8 --time 50 --repeat 100\n";

namespace {

class ProgressBar {
 public:
  ProgressBar(int total, bool enabled) : total_(total), enabled_(enabled && total > 0) {}
  // Redraws only when the bar or the phase changes (so fast calls are not slowed by it).
  void update(int done, const char* phase) {
    if (!enabled_) return;
    const int width = 30;
    const int filled = done * width / total_;
    if (filled == last_filled_ && phase == last_phase_ && done != total_) return;
    last_filled_ = filled;
    last_phase_ = phase;
    std::fprintf(stderr, "\r%-7s [%.*s%*s] %d/%d", phase, filled,
                 "##############################", width - filled, "", done, total_);
    std::fflush(stderr);
  }
  void finish() {
    if (!enabled_) return;
    std::fprintf(stderr, "\r%*s\r", 60, "");
    std::fflush(stderr);
  }

 private:
  int total_;
  bool enabled_;
  int last_filled_ = -1;
  const char* last_phase_ = nullptr;
};

double percentile_nearest_rank(const std::vector<double>& sorted, double p) {
  const std::size_t n = sorted.size();
  std::size_t rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(n)));
  if (rank < 1) rank = 1;
  return sorted[rank - 1];
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  std::vector<OptionSpec> specs = session_option_specs();
  for (const char* n : {"batch", "time", "repeat", "warmup", "seed"}) specs.push_back({n, 0, true});
  specs.push_back({"json", 0, false});
  const ParsedArgs a = parse_args(args, specs);
  if (a.positionals.size() != 1) {
    throw UsageError(a.positionals.empty() ? "needs MODEL.safetensors"
                                           : "takes one model file, got " +
                                                 std::to_string(a.positionals.size()) + " words");
  }
  const std::int64_t batch = a.get_int("batch", 1, 1, 1 << 24);
  const std::int64_t time = a.get_int("time", 100, 1, 1 << 24);
  const int repeat = static_cast<int>(a.get_int("repeat", 20, 1, 1000000));
  const int warmup = static_cast<int>(a.get_int("warmup", 3, 0, 1000000));
  const std::int64_t seed = a.get_int("seed", 0, 0, INT64_MAX);
  const stacklstm::SessionOptions so = session_options(a, batch, time);
  const bool json = a.has("json");

  const std::string& path = a.positionals[0];
  const stacklstm::Model model = load_model(path);
  stacklstm::Session session(model, so);
  const std::size_t in_count = static_cast<std::size_t>(batch) * static_cast<std::size_t>(time) *
                               static_cast<std::size_t>(model.input_size());
  std::vector<float> input(in_count);
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
  for (float& v : input) {
    v = static_cast<float>(static_cast<double>(rng() >> 11) * 0x1.0p-52 - 1.0);
  }
  std::vector<float> output(static_cast<std::size_t>(batch) * static_cast<std::size_t>(time) *
                            static_cast<std::size_t>(model.output_size()));
  std::vector<float> state(model.state_count(batch));

  ProgressBar bar(warmup + repeat, stderr_is_terminal() && !json);
  for (int i = 0; i < warmup; ++i) {
    bar.update(i, "warm-up");
    session.forward(batch, time, input, output, state);
  }
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(repeat));
  for (int i = 0; i < repeat; ++i) {
    bar.update(warmup + i, "timing");
    const auto t0 = std::chrono::steady_clock::now();
    session.forward(batch, time, input, output, state);
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  bar.update(warmup + repeat, "timing");
  bar.finish();

  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  const double p90 = percentile_nearest_rank(sorted, 0.9);
  const double seq_per_s = static_cast<double>(batch) / (median / 1000.0);
  const double steps_per_s = static_cast<double>(batch * time) / (median / 1000.0);

  std::string backend = "?", impl = "?", precision = "?", params;
  const nlohmann::json plan =
      nlohmann::json::parse(session.describe(SLSTM_DESCRIBE_JSON), nullptr, false);
  if (plan.is_object()) {
    backend = plan.value("backend", std::string("?"));
    impl = plan.value("path", std::string("?"));
    precision = plan.value("precision", std::string("?"));
    if (plan.contains("params") && plan["params"].is_object()) {
      for (const auto& kv : plan["params"].items()) {
        // The short settings (kernel, threads, ...); the reasons are in the --json plan.
        if (kv.value().is_string() && kv.key().find("reason") == std::string::npos &&
            kv.value().get<std::string>().size() <= 24) {
          params += (params.empty() ? "" : ", ") + kv.key() + "=" + kv.value().get<std::string>();
        }
      }
    }
  }
  std::string hidden;
  for (const std::int64_t h : model.hidden_sizes()) {
    hidden += (hidden.empty() ? "" : ",") + std::to_string(h);
  }

  if (json) {
    nlohmann::json j;
    j["model"] = path;
    j["input_size"] = model.input_size();
    j["hidden_sizes"] = model.hidden_sizes();
    j["backend"] = backend;
    j["path"] = impl;
    j["plan"] = plan.is_object() ? plan : nlohmann::json::object();
    j["batch"] = batch;
    j["time"] = time;
    j["repeat"] = repeat;
    j["warmup"] = warmup;
    j["min_ms"] = sorted.front();
    j["median_ms"] = median;
    j["p90_ms"] = p90;
    j["sequences_per_s"] = seq_per_s;
    j["steps_per_s"] = steps_per_s;
    j["times_ms"] = ms;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("model    %s (input %lld, hidden %s)\n", path.c_str(),
              static_cast<long long>(model.input_size()), hidden.c_str());
  std::printf("backend  %s, path %s, precision %s%s%s\n", backend.c_str(), impl.c_str(),
              precision.c_str(), params.empty() ? "" : "; ", params.c_str());
  std::printf("shape    batch %lld, time %lld; %d timed calls after %d warm-up\n\n",
              static_cast<long long>(batch), static_cast<long long>(time), repeat, warmup);
  std::printf("%10s %10s %10s %14s %14s\n", "min ms", "median ms", "p90 ms", "sequences/s",
              "steps/s");
  std::printf("%10.3f %10.3f %10.3f %14.1f %14.0f\n", sorted.front(), median, p90, seq_per_s,
              steps_per_s);
  return kExitOk;
}

}  // namespace slstm_cli
