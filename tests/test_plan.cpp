// The session's plan (slstm_session_describe) and the keyed settings
// (slstm_session_options.config).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

std::string describe(const slstm_session* s, slstm_describe_format f) {
  std::size_t n = 0;
  REQUIRE(slstm_session_describe(s, f, nullptr, 0, &n) == SLSTM_OK);
  std::string text(n + 1, '\0');
  std::size_t again = 0;
  REQUIRE(slstm_session_describe(s, f, &text[0], text.size(), &again) == SLSTM_OK);
  REQUIRE(again == n);
  text.resize(n);
  return text;
}

// slstm_session_create with `config`; the session (or null) and the status.
slstm_status create_with(const slstm_model* m, const char* config, t::Session* out) {
  slstm_session_options o = t::options(2, 3);
  o.config = config;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &s);
  if (out != nullptr) out->reset(s);
  else slstm_session_destroy(s);
  return st;
}

void expect_config_error(const char* config, const char* names) {
  t::Model m = t::random_model(3, {4}, 1);
  INFO("config \"" << config << "\"");
  CHECK(create_with(m.get(), config, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("options->config") && Contains(names));
}

}  // namespace

TEST_CASE("describe names the backend, path, precision and every layer's path", "[plan]") {
  t::Model m = t::random_model(3, {4, 20, 5}, 2);
  t::Session s = t::session(m.get(), 2, 3);
  const std::string json = describe(s.get(), SLSTM_DESCRIBE_JSON);
  CHECK_THAT(json, Contains("\"backend\": \"cpu\"") && Contains("\"precision\": \"fp32\""));
  const std::string path = t::cpu_path_under_test() == SLSTM_CPU_PATH_REFERENCE ? "reference" : "fast";
  CHECK_THAT(json, Contains("\"path\": \"" + path + "\""));
  std::size_t layers = 0;
  for (std::size_t at = json.find("{\"path\""); at != std::string::npos;
       at = json.find("{\"path\"", at + 1)) {
    ++layers;
  }
  CHECK(layers == 3);
  const std::string text = describe(s.get(), SLSTM_DESCRIBE_TEXT);
  CHECK_THAT(text, Contains("layer 0: ") && Contains("layer 2: "));
}

TEST_CASE("describe copies snprintf-style: truncated, NUL-terminated, full length returned",
          "[plan]") {
  t::Model m = t::random_model(3, {4}, 3);
  t::Session s = t::session(m.get(), 1, 1);
  const std::string full = describe(s.get(), SLSTM_DESCRIBE_TEXT);
  REQUIRE(full.size() > 8);
  char small[9];
  std::memset(small, 'x', sizeof small);
  std::size_t n = 0;
  REQUIRE(slstm_session_describe(s.get(), SLSTM_DESCRIBE_TEXT, small, 8, &n) == SLSTM_OK);
  CHECK(n == full.size());
  CHECK(std::string(small) == full.substr(0, 7));
  CHECK(small[8] == 'x');  // nothing past size
  CHECK(slstm_session_describe(s.get(), SLSTM_DESCRIBE_TEXT, nullptr, 0, nullptr) == SLSTM_OK);
}

TEST_CASE("describe rejects a NULL session, an unknown format and a NULL buffer with a size",
          "[plan][errors]") {
  t::Model m = t::random_model(3, {4}, 4);
  t::Session s = t::session(m.get(), 1, 1);
  char buf[16];
  CHECK(slstm_session_describe(nullptr, SLSTM_DESCRIBE_TEXT, buf, 16, nullptr) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(slstm_session_describe(s.get(), static_cast<slstm_describe_format>(7), buf, 16,
                               nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("format"));
  CHECK(slstm_session_describe(s.get(), SLSTM_DESCRIBE_JSON, nullptr, 4, nullptr) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("buf"));
}

TEST_CASE("keyed settings: an unknown key is refused naming it and the known keys",
          "[plan][settings][errors]") {
  expect_config_error("cpu.kernal=avx2", "unknown key \"cpu.kernal\"");
  expect_config_error("cuda.graphs=off;turbo=1", "known: cpu.kernel");
}

TEST_CASE("keyed settings: a bad value is refused naming the key and what it takes",
          "[plan][settings][errors]") {
  expect_config_error("cpu.kernel=avx1024", "cpu.kernel must be auto, avx512, avx2 or portable");
  expect_config_error("cuda.graphs=yes", "cuda.graphs must be on or off");
  expect_config_error("cuda.chunk=0", "cuda.chunk must be auto or a whole number");
  expect_config_error("cuda.chunk=-3", "cuda.chunk");
  expect_config_error("cuda.fused=sometimes", "cuda.fused must be auto, never or always");
  expect_config_error("cpu.pool=global", "cpu.pool must be session or shared");
  expect_config_error("cpu.calibration=auto", "cpu.calibration must be measured or fixed");
  expect_config_error("cpu.wh16=yes", "cpu.wh16 must be on or off");
  expect_config_error("cpu.team=sometimes", "cpu.team must be auto, off or always");
  // One message with the key's own range, whatever is wrong with the value.
  for (const char* v : {"1000001", "999999999", "1000000000", "-5", "2ms"}) {
    expect_config_error((std::string("cpu.spin_us=") + v).c_str(),
                        "cpu.spin_us must be a whole number from 0 to 1000000 (one second)");
  }
  expect_config_error("cuda.slots=yes", "cuda.slots must be on or off");
  expect_config_error("cuda.persistent=auto", "cuda.persistent must be off, on or layers");
  expect_config_error("cuda.persistent_timeout_us=-1", "cuda.persistent_timeout_us must be a whole number");
  expect_config_error("cuda.persistent_timeout_us=1000000000", "from 0 to 999999999");
  expect_config_error("cuda.persistent_timeout_us=07", "cuda.persistent_timeout_us");
  expect_config_error("cuda.tune=maybe", "cuda.tune must be on or off");
  expect_config_error("cuda.tune_file=/tmp/a\x01b", "cuda.tune_file: a path without control");
  expect_config_error("cuda.generic=yes", "cuda.generic must be off, on or always");
  expect_config_error("cuda.staging=1", "cuda.staging must be on or off");
  expect_config_error("cuda.cluster=1", "cuda.cluster must be on or off, got \"1\"");
  expect_config_error("cuda.cluster=auto", "cuda.cluster must be on or off");
  expect_config_error("cuda.hybrid=1", "cuda.hybrid must be on or off, got \"1\"");
  expect_config_error("cuda.hybrid=l2", "cuda.hybrid must be on or off");
  for (const char* v : {"0", "1025", "-1", "08", "32MiB", "x"}) {
    expect_config_error((std::string("cuda.blas_workspace_mib=") + v).c_str(),
                        "cuda.blas_workspace_mib must be auto or a whole number from 1 to 1024");
  }
  for (const char* v : {"0", "1048577", "9999999", "-1", "08", "1GiB", "auto1"}) {
    expect_config_error((std::string("cpu.workspace_mib=") + v).c_str(),
                        "cpu.workspace_mib must be auto or a whole number from 1 to 1048576");
  }
}

TEST_CASE("keyed settings: a malformed pair, a repeated key or an overlong text is refused",
          "[plan][settings][errors]") {
  expect_config_error("cuda.graphs", "is not key=value");
  expect_config_error("=on", "is not key=value");
  expect_config_error("cuda.graphs=", "is not key=value");
  expect_config_error("cuda.graphs=on cuda.graphs=off", "given twice");
  const std::string overlong(5000, ' ');
  expect_config_error(overlong.c_str(), "longer than 4096 bytes");
}

TEST_CASE("keyed settings of every backend are accepted whichever backend runs", "[plan][settings]") {
  t::Model m = t::random_model(3, {4}, 5);
  t::Session s;
  CHECK(create_with(m.get(), " cuda.graphs=off, cuda.chunk=7;cuda.fused=never\tcpu.kernel=auto ",
                    &s) == SLSTM_OK);
  CHECK(create_with(m.get(), "", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), ";;", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.slots=on cpu.pool=shared", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.persistent=on cuda.persistent_timeout_us=0", nullptr) ==
        SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.persistent=layers", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.tune=on;cuda.tune_file=/nonexistent/dir/cache", nullptr) ==
        SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.generic=always", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.staging=on", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.blas_workspace_mib=1 ", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.blas_workspace_mib=auto", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.blas_workspace_mib=1024", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cpu.workspace_mib=1", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cpu.workspace_mib=auto", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cpu.workspace_mib=1048576", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.cluster=on", nullptr) == SLSTM_OK);  // (no effect alone)
  CHECK(create_with(m.get(), "cuda.cluster=on;cuda.persistent=layers", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.cluster=off", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.hybrid=on", nullptr) == SLSTM_OK);  // (no effect alone)
  CHECK(create_with(m.get(), "cuda.hybrid=on;cuda.persistent=on", nullptr) == SLSTM_OK);
  CHECK(create_with(m.get(), "cuda.hybrid=off", nullptr) == SLSTM_OK);
}

TEST_CASE("options from a caller built against 0.1 (no config field) get the default settings",
          "[plan][settings][abi]") {
  // The 0.1 struct ends at cuda_stream: whatever lies after it is not the caller's and must
  // not be read as a config pointer.
  t::Model m = t::random_model(3, {4}, 6);
  struct Old {
    slstm_session_options o;
    char junk[16];
  } old;
  std::memset(&old, 0x5A, sizeof old);
  (slstm_session_options_init)(&old.o);  // the 0.1 init: the 0.1 layout only
  old.o.max_batch = 1;
  old.o.max_time = 1;
  old.o.cpu_path = t::cpu_path_under_test();
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &old.o, &raw) == SLSTM_OK);
  t::Session s(raw);
  CHECK_THAT(describe(s.get(), SLSTM_DESCRIBE_TEXT), !Contains("(config)"));
}

TEST_CASE("each registered CPU run runs the path and the kernel it is named for", "[plan]") {
  // The suite runs once per CPU path (tests/CMakeLists.txt); the plan says what ran, so a
  // registration that silently ran another path or kernel fails here.
  t::Model m = t::random_model(3, {20}, 7);
  t::Session s = t::session(m.get(), 2, 2);
  const std::string json = t::describe_json(s.get());
  if (t::cpu_path_under_test() == SLSTM_CPU_PATH_REFERENCE) {
    CHECK(t::json_value(json, "path") == "reference");
    return;
  }
  if (t::cpu_path_under_test() == SLSTM_CPU_PATH_FAST) CHECK(t::json_value(json, "path") == "fast");
  const std::string kernel = t::json_value(json, "kernel");
  const std::string reason = t::json_value(json, "kernel_reason");
  INFO(json);
  if (t::kernel_under_test() == "portable") {
    CHECK(kernel == "portable");
    CHECK_THAT(reason, Contains("SLSTM_CPU_KERNEL=portable"));
  } else if (t::kernel_under_test() == "avx2") {
    CHECK((kernel == "avx2" || kernel == "portable"));  // portable on a CPU without AVX2
    CHECK_THAT(reason, Contains("SLSTM_CPU_KERNEL=avx2"));
  } else if (t::json_value(json, "path") == "fast") {
    CHECK((kernel == "avx512" || kernel == "avx2" || kernel == "portable"));
    CHECK(reason == "the best this CPU runs");
  }
}

TEST_CASE("cpu.kernel=portable runs the portable kernel, bitwise as the environment override does",
          "[plan][settings][cpu-fast]") {
  if (!t::kernel_under_test().empty()) return;  // this run's SLSTM_CPU_KERNEL would win
  t::Model m = t::random_model(5, {40, 9}, 8);
  t::Session keyed;
  slstm_session_options o = t::options(3, 6);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.config = "cpu.kernel=portable";
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  keyed.reset(raw);
  const std::string json = t::describe_json(keyed.get());
  CHECK(t::json_value(json, "kernel") == "portable");
  CHECK(t::json_value(json, "kernel_reason") == "cpu.kernel=portable");
  CHECK(t::json_value(json, "cpu.kernel") == "portable (config)");
  setenv("SLSTM_CPU_KERNEL", "portable", 1);
  o.config = nullptr;
  const slstm_status st = slstm_session_create(m.get(), &o, &raw);
  unsetenv("SLSTM_CPU_KERNEL");
  REQUIRE(st == SLSTM_OK);
  t::Session env(raw);
  const std::vector<float> x = t::random_vector(3 * 6 * 5, 9);
  const t::Call call = t::call_of(3, 6, x);
  t::check_same_bits(keyed.get(), env.get(), m.get(), call);
}

TEST_CASE("the environment override wins over the keyed setting and the plan says so",
          "[plan][settings][cpu-fast]") {
  if (t::kernel_under_test() != "portable") return;  // the fast-portable run sets it
  t::Model m = t::random_model(5, {20}, 10);
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.config = "cpu.kernel=avx2";
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  const std::string json = t::describe_json(s.get());
  CHECK(t::json_value(json, "kernel") == "portable");
  CHECK(t::json_value(json, "cpu.kernel") == "portable (SLSTM_CPU_KERNEL)");
}

TEST_CASE("cpu.kernel naming a kernel this CPU lacks is refused as unsupported",
          "[plan][settings][cpu-fast]") {
  if (!t::kernel_under_test().empty()) return;
  t::Model m = t::random_model(5, {20}, 11);
  // The fast path's plan names the best kernel this CPU runs (whatever path this run tests).
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  slstm_session* probe_raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &probe_raw) == SLSTM_OK);
  t::Session probe(probe_raw);
  if (t::json_value(t::describe_json(probe.get()), "kernel") == "avx512") return;  // has it
  o.config = "cpu.kernel=avx512";
  slstm_session* raw = nullptr;
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("no AVX-512"));
  CHECK(raw == nullptr);
}

#if defined(__linux__)
// Restores the calling thread's CPU affinity mask when it goes out of scope.
class AffinityGuard {
 public:
  AffinityGuard() { ok_ = sched_getaffinity(0, sizeof(saved_), &saved_) == 0; }
  ~AffinityGuard() {
    if (ok_) sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;
  bool ok() const { return ok_; }
  const cpu_set_t& saved() const { return saved_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

TEST_CASE("num_threads 0 gives one worker per CPU of the process's affinity mask, not per core",
          "[plan][cpu-fast]") {
  AffinityGuard guard;
  REQUIRE(guard.ok());
  const int allowed = CPU_COUNT(&guard.saved());
  // 8 groups of 16 units: room for up to 8 workers, so the cap is the CPUs, not the model.
  t::Model m = t::random_model(3, {128}, 11);
  // The fast path whatever run this is (the TSan stage runs [cpu-fast] cases on every path).
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  const auto fast_session = [&] {
    slstm_session* raw = nullptr;
    REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
    return t::Session(raw);
  };
  {
    t::Session s = fast_session();
    const std::string json = t::describe_json(s.get());
    INFO(json);
    CHECK(t::json_value(json, "threads") == std::to_string(std::min(allowed, 8)));
    CHECK_THAT(t::json_value(json, "threads_reason"), Contains("affinity"));
  }
  // Pinned to one CPU (as taskset -c N would), a new session takes one worker.
  int first = 0;
  while (!CPU_ISSET(first, &guard.saved())) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);
  t::Session pinned = fast_session();
  const std::string json = t::describe_json(pinned.get());
  INFO(json);
  CHECK(t::json_value(json, "threads") == "1");
  CHECK_THAT(t::json_value(json, "threads_reason"), Contains("(1, its affinity mask)"));
}
#endif

#if defined(__linux__)
namespace {

t::Session fast_session_with(const slstm_model* m, std::int64_t B, std::int64_t T,
                             const char* config, std::int32_t precision = SLSTM_PRECISION_DEFAULT) {
  slstm_session_options o = t::options(B, T);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.config = config;
  o.precision = precision;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m, &o, &raw) == SLSTM_OK);
  return t::Session(raw);
}

// A GRU / bidirectional / LSTM stack: the fast path's generic backend (generic_backend.cpp).
t::Model generic_stack(std::int64_t input, std::uint64_t seed) {
  return t::random_stack(input,
                         {t::with_direction(t::gru_layer(40, true), SLSTM_DIRECTION_BIDIRECTIONAL),
                          t::lstm_layer(24)},
                         seed);
}

// Sessions of `m` with cpu.pool=shared: the first starts the process-wide workers, further
// ones start none (sessions with pools of their own start workers - 1 threads each).
void check_shared_pool_starts_no_threads(const slstm_model* m) {
  t::Session first = fast_session_with(m, 2, 3, "cpu.pool=shared");
  const std::string json = t::describe_json(first.get());
  INFO(json);
  REQUIRE_THAT(t::json_value(json, "pool"), Contains("shared"));
  const int workers = std::stoi(t::json_value(json, "threads"));
  if (workers < 2) {
    WARN("one usable CPU: a session pool would start no thread either; nothing to compare");
    return;
  }
  const int before = t::process_threads();
  std::vector<t::Session> more;
  for (int i = 0; i < 3; ++i) more.push_back(fast_session_with(m, 2, 3, "cpu.pool=shared"));
  CHECK(t::process_threads() == before);
  t::Session own = fast_session_with(m, 2, 3, "cpu.pool=session");
  CHECK_THAT(t::json_value(t::describe_json(own.get()), "pool"), StartsWith("session"));
  CHECK(t::process_threads() == before + workers - 1);
}

// Two sessions of `m` with cpu.pool=shared (and `config`) called from two threads at once:
// one gets the shared workers, the other runs on its own thread whenever it finds them taken;
// either way every call gives a session pool's numbers bitwise. The threads call the C API
// only (Catch's assertions are not thread-safe); the checks come after the join.
void check_shared_pool_calls_at_once(const slstm_model* m, std::int64_t B, std::int64_t T,
                                     const std::string& config,
                                     std::int32_t precision = SLSTM_PRECISION_DEFAULT) {
  std::int64_t input = 0;
  REQUIRE(slstm_model_input_size(m, &input) == SLSTM_OK);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * input), 14);
  const t::Call call = t::call_of(B, T, x);
  const std::string own_config = "cpu.pool=session " + config;
  const std::string shared_config = "cpu.pool=shared " + config;
  t::Session own = fast_session_with(m, B, T, own_config.c_str(), precision);
  const t::Run want = t::forward_ok(own.get(), m, call);
  t::Session a = fast_session_with(m, B, T, shared_config.c_str(), precision);
  t::Session b = fast_session_with(m, B, T, shared_config.c_str(), precision);
  REQUIRE_THAT(t::json_value(t::describe_json(a.get()), "pool"), StartsWith("shared"));
  constexpr int kCalls = 20;
  struct Runs {
    std::vector<slstm_status> status = std::vector<slstm_status>(kCalls, SLSTM_ERR_INTERNAL);
    std::vector<std::vector<float>> output, final_state;
  };
  const auto run_all = [&](slstm_session* s, Runs& r) {
    for (int k = 0; k < kCalls; ++k) {
      slstm_forward_args args;
      slstm_forward_args_init(&args);
      args.batch = B;
      args.time = T;
      args.input = x.data();
      args.input_count = x.size();
      args.output = r.output[static_cast<std::size_t>(k)].data();
      args.output_count = r.output[static_cast<std::size_t>(k)].size();
      args.final_state = r.final_state[static_cast<std::size_t>(k)].data();
      args.final_state_count = r.final_state[static_cast<std::size_t>(k)].size();
      r.status[static_cast<std::size_t>(k)] = slstm_session_forward(s, &args);
    }
  };
  Runs got_a, got_b;
  for (Runs* r : {&got_a, &got_b}) {
    r->output.assign(kCalls, t::poisoned(want.output.size()));
    r->final_state.assign(kCalls, t::poisoned(want.final_state.size()));
  }
  std::thread other([&] { run_all(b.get(), got_b); });
  run_all(a.get(), got_a);
  other.join();
  for (const Runs* r : {&got_a, &got_b}) {
    for (int k = 0; k < kCalls; ++k) {
      const auto i = static_cast<std::size_t>(k);
      REQUIRE(r->status[i] == SLSTM_OK);
      CHECK(r->output[i] == want.output);
      CHECK(r->final_state[i] == want.final_state);
    }
  }
}

}  // namespace

TEST_CASE("cpu.pool=shared: further sessions start no threads of their own", "[plan][cpu-fast]") {
  t::Model m = t::random_model(3, {128}, 12);
  check_shared_pool_starts_no_threads(m.get());
}

TEST_CASE("cpu.pool=shared: sessions of cells beyond BasicLSTMCell start no threads either",
          "[plan][cpu-fast]") {
  t::Model m = generic_stack(5, 16);
  check_shared_pool_starts_no_threads(m.get());
}

TEST_CASE("cpu.pool=shared gives the session pool's numbers bitwise, also for calls at once",
          "[plan][cpu-fast]") {
  t::Model m = t::random_model(7, {48, 33}, 13);
  check_shared_pool_calls_at_once(m.get(), 6, 9, "");
}

TEST_CASE("cpu.pool=shared gives a BF16 session (AMX where the CPU has it) the session pool's bits",
          "[plan][cpu-fast][precision]") {
  // The unit split (6 rows) and the batch split (35 rows: each worker its AMX scratch).
  t::Model m = t::random_model(7, {48, 33}, 18);
  for (const std::int64_t B : {6, 35}) {
    INFO("batch " << B);
    check_shared_pool_calls_at_once(m.get(), B, 9, "", SLSTM_PRECISION_BF16);
  }
}

TEST_CASE("cpu.pool=shared gives cells beyond BasicLSTMCell the session pool's numbers bitwise",
          "[plan][cpu-fast]") {
  // Rows split, teams (a barrier per GEMM) and the directions split, each on the shared
  // workers and on a calling thread alone.
  t::Model m = generic_stack(7, 17);
  for (const char* config : {"cpu.team=off", "cpu.team=always"}) {
    for (const std::int64_t B : {2, 7}) {
      INFO(config << ", batch " << B);
      check_shared_pool_calls_at_once(m.get(), B, 9, config);
    }
  }
}

TEST_CASE("cpu.calibration: by default the fast path's work sharing comes from this machine's measurements",
          "[plan][cpu-fast]") {
  t::Model m = t::random_model(5, {40, 24}, 15);
  t::Session s = fast_session_with(m.get(), 2, 3, nullptr);
  const std::string json = t::describe_json(s.get());
  INFO(json);
  const std::string calibration = t::json_value(json, "calibration");
  CHECK_THAT(calibration, StartsWith("measured"));
  CHECK_THAT(calibration, Contains("barrier"));
  CHECK_THAT(calibration, Contains("GFLOP/s on cached weights"));
  CHECK_THAT(calibration, Contains("GB/s streamed"));
  CHECK(t::json_value(json, "cpu.calibration") == "measured");
  // Once per process: a second session reports the same measurements.
  t::Session again = fast_session_with(m.get(), 2, 3, "cpu.calibration=measured");
  CHECK(t::json_value(t::describe_json(again.get()), "calibration") == calibration);
}

TEST_CASE("cpu.calibration=fixed: the plan gives the built-in constants", "[plan][cpu-fast]") {
  t::Model m = t::random_model(5, {40, 24}, 15);
  t::Session s = fast_session_with(m.get(), 2, 3, "cpu.calibration=fixed");
  const std::string json = t::describe_json(s.get());
  INFO(json);
  CHECK_THAT(t::json_value(json, "calibration"), StartsWith("fixed"));
  CHECK_THAT(t::json_value(json, "split"), Contains("W_h <= 1500000 bytes"));
  CHECK_THAT(t::json_value(json, "cpu.calibration"), StartsWith("fixed"));
}

TEST_CASE("cpu.spin_us: by default the workers spin 20000 us after a call and the plan says so",
          "[plan][cpu-fast]") {
  t::Model m = t::random_model(5, {40, 24}, 15);
  t::Session s = fast_session_with(m.get(), 2, 3, nullptr);
  CHECK(t::json_value(t::describe_json(s.get()), "cpu.spin_us") == "20000");
  t::Session never = fast_session_with(m.get(), 2, 3, "cpu.spin_us=0");
  CHECK(t::json_value(t::describe_json(never.get()), "cpu.spin_us") == "0 (config)");
  t::Session second = fast_session_with(m.get(), 2, 3, "cpu.spin_us=1000000");
  CHECK(t::json_value(t::describe_json(second.get()), "cpu.spin_us") == "1000000 (config)");
}

TEST_CASE("cpu.calibration changes no result: measured and fixed agree bitwise",
          "[plan][cpu-fast]") {
  // Shapes on either side of the thresholds: a step too small for a barrier (one worker
  // under measured thresholds, every worker under fixed ones on AVX2), a batch split, a long
  // projection with a short recurrence.
  struct Shape {
    std::int64_t I;
    std::vector<std::int64_t> hidden;
    std::int64_t B, T;
  };
  const std::vector<Shape> shapes = {
      {16, {16}, 1, 20}, {24, {100, 300}, 10, 9}, {300, {40}, 3, 40}, {7, {33, 65}, 12, 8}};
  std::uint64_t seed = 20;
  for (const Shape& sh : shapes) {
    t::Model m = t::random_model(sh.I, sh.hidden, ++seed);
    const std::vector<float> x =
        t::random_vector(static_cast<std::size_t>(sh.B * sh.T * sh.I), ++seed);
    const t::Call call = t::call_of(sh.B, sh.T, x);
    t::Session measured = fast_session_with(m.get(), sh.B, sh.T, "cpu.calibration=measured");
    t::Session fixed = fast_session_with(m.get(), sh.B, sh.T, "cpu.calibration=fixed");
    INFO("B=" << sh.B << " T=" << sh.T << " I=" << sh.I);
    t::check_same_bits(measured.get(), fixed.get(), m.get(), call);
  }
}
#endif

TEST_CASE("keyed settings: a step count of more than 9 digits is refused",
          "[plan][settings][errors]") {
  expect_config_error("cuda.chunk=1234567890", "cuda.chunk must be auto or a whole number");
  expect_config_error("cuda.chunk=99999999999999999999", "cuda.chunk");
}

TEST_CASE("keyed settings: every control character in cuda.tune_file is refused, DEL included",
          "[plan][settings][errors]") {
  for (int c = 1; c <= 0x7f; ++c) {
    if (c == '\t' || c == '\n' || (c >= 0x20 && c < 0x7f)) continue;  // tab, newline: separators
    const std::string config = "cuda.tune_file=/tmp/a" + std::string(1, static_cast<char>(c)) + "b";
    expect_config_error(config.c_str(), "cuda.tune_file: a path without control");
  }
}

TEST_CASE("keyed settings: a text of exactly 4096 bytes is accepted", "[plan][settings]") {
  t::Model m = t::random_model(3, {4}, 6);
  std::string text = "cuda.graphs=off";
  text.resize(4096, ' ');
  const slstm_status st = create_with(m.get(), text.c_str(), nullptr);
  INFO(slstm_last_error());
  CHECK(st == SLSTM_OK);
  text.push_back(' ');
  CHECK(create_with(m.get(), text.c_str(), nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("keyed settings: the unknown-key message lists every key there is",
          "[plan][settings][errors]") {
  for (const char* key :
       {"cpu.kernel", "cpu.pool", "cpu.calibration", "cpu.wh16", "cpu.amx", "cpu.team",
        "cpu.spin_us", "cpu.pool_join_us", "cpu.workspace_mib", "cuda.graphs", "cuda.chunk",
        "cuda.fused",
        "cuda.slots", "cuda.persistent", "cuda.persistent_timeout_us", "cuda.tune",
        "cuda.tune_file", "cuda.generic", "cuda.staging", "cuda.blas_workspace_mib",
        "cuda.cluster", "cuda.hybrid"}) {
    INFO(key);
    expect_config_error("turbo=1", "(known: ");
    const std::string message = slstm_last_error(), listed = std::string(" ") + key;
    CHECK((message.find(listed + ",") != std::string::npos ||
           message.find(listed + ")") != std::string::npos));
  }
}

TEST_CASE("keyed settings: a value may hold '=', the key ending at the first",
          "[plan][settings]") {
  t::Model m = t::random_model(3, {4}, 5);
  const slstm_status st = create_with(m.get(), "cuda.tune_file=/tmp/a=b", nullptr);
  INFO(slstm_last_error());
  CHECK(st == SLSTM_OK);
}

TEST_CASE("cpu.calibration: a session of one thread measures no barrier, and the plan says so",
          "[plan][cpu-fast]") {
  t::Model m = t::random_model(5, {40}, 15);
  slstm_session_options o = t::options(2, 3);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.num_threads = 1;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  const std::string calibration = t::json_value(t::describe_json(s.get()), "calibration");
  CHECK_THAT(calibration, Contains("barrier none (1 worker)"));
}

namespace {

// The plan (JSON) of a fast-path session with `config`, or "" when it is refused.
std::string fast_plan_or_refusal(const slstm_model* m, const char* config) {
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.config = config;
  slstm_session* raw = nullptr;
  if (slstm_session_create(m, &o, &raw) != SLSTM_OK) return "";
  t::Session s(raw);
  return t::describe_json(s.get());
}

}  // namespace

TEST_CASE("cpu.kernel=avx2 runs the AVX2 kernel on a CPU with AVX-512 or AVX2, and says why",
          "[plan][settings][cpu-fast]") {
  if (!t::kernel_under_test().empty()) return;  // this run's SLSTM_CPU_KERNEL would win
  t::Model m = t::random_model(5, {20}, 12);
  if (t::json_value(fast_plan_or_refusal(m.get(), nullptr), "kernel") == "portable") {
    WARN("skipped: this CPU has neither AVX-512 nor AVX2");
    return;
  }
  const std::string json = fast_plan_or_refusal(m.get(), "cpu.kernel=avx2");
  INFO(json);
  CHECK(t::json_value(json, "kernel") == "avx2");
  CHECK(t::json_value(json, "kernel_reason") == "cpu.kernel=avx2");
}

TEST_CASE("cpu.kernel=avx512 runs the AVX-512 kernel where the CPU has it, and says why",
          "[plan][settings][cpu-fast]") {
  if (!t::kernel_under_test().empty()) return;
  t::Model m = t::random_model(5, {20}, 13);
  if (t::json_value(fast_plan_or_refusal(m.get(), nullptr), "kernel") != "avx512") {
    WARN("skipped: this CPU has no AVX-512");
    return;
  }
  const std::string json = fast_plan_or_refusal(m.get(), "cpu.kernel=avx512");
  INFO(json);
  CHECK(t::json_value(json, "kernel") == "avx512");
  CHECK(t::json_value(json, "kernel_reason") == "cpu.kernel=avx512");
  CHECK(t::json_value(json, "cpu.kernel") == "avx512 (config)");
}

TEST_CASE("SLSTM_CPU_KERNEL of another value than avx2 or portable is ignored, plan included",
          "[plan][settings][cpu-fast]") {
  if (!t::kernel_under_test().empty()) return;
  t::Model m = t::random_model(5, {20}, 14);
  setenv("SLSTM_CPU_KERNEL", "avx512", 1);
  const std::string json = fast_plan_or_refusal(m.get(), nullptr);
  unsetenv("SLSTM_CPU_KERNEL");
  INFO(json);
  CHECK(t::json_value(json, "kernel_reason") == "the best this CPU runs");
  CHECK(t::json_value(json, "cpu.kernel") == "auto");
}

TEST_CASE("the fast path's plan gives cpu.team and cpu.wh16 as the config says them",
          "[plan][settings][cpu-fast]") {
  t::Model m = t::random_model(5, {20}, 16);
  for (const char* team : {"off", "always"}) {
    for (const char* wh16 : {"on", "off"}) {
      const std::string config = std::string("cpu.team=") + team + " cpu.wh16=" + wh16;
      const std::string json = fast_plan_or_refusal(m.get(), config.c_str());
      INFO(config << ": " << json);
      CHECK(t::json_value(json, "cpu.team") == std::string(team) + " (config)");
      CHECK(t::json_value(json, "cpu.wh16") == std::string(wh16) + " (config)");
    }
  }
}

TEST_CASE("the fast path's plan allows each layer the batch split up to a W_h of 1.5 MB",
          "[plan][cpu-fast]") {
  t::Model m = t::random_model(5, {40, 512}, 17);  // W_h: 100 KB and 4 MB
  const std::string json = fast_plan_or_refusal(m.get(), nullptr);
  INFO(json);
  const std::size_t first = json.find("\"batch_split\": \"");
  REQUIRE(first != std::string::npos);
  CHECK(t::json_value(json.substr(first), "batch_split") == "allowed");
  CHECK(t::json_value(json.substr(first + 1), "batch_split") == "no (W_h > 1500000 bytes)");
}

TEST_CASE("cpu.calibration=fixed sizes the workers on AVX-512 and wakes every thread on the "
          "other kernels, and the plan says which", "[plan][cpu-fast]") {
  t::Model m = t::random_model(5, {40}, 18);
  const std::string json = fast_plan_or_refusal(m.get(), "cpu.calibration=fixed");
  INFO(json);
  const std::string split = t::json_value(json, "split");
  if (t::json_value(json, "kernel") == "avx512") {
    CHECK_THAT(split, Contains("with as many workers as the step's work pays for"));
  } else {
    CHECK_THAT(split, Contains("with every thread"));
  }
}
