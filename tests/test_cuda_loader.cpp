// The core's loader of the CUDA module and its CUDA backend (src/cuda_module.cpp) against a
// stub module (tests/cuda_emu/stub_module.cpp): the modules it refuses and the reasons it
// gives, and what it hands a module that fits and makes of its answers.  Tagged
// [cuda-loader]: ctest runs these in a process of their own with SLSTM_CUDA_MODULE naming
// the stub (tests/CMakeLists.txt); the CPU runs of the suite leave them out, since a module
// the loader keeps stays for the life of the process.  Declaration order matters: the
// cases after the first that loads a table that fits cannot see the refusals.
#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

using Catch::Matchers::Contains;

namespace {

// SLSTM_CUDA_MODULE as ctest set it (the stub), or "" when it is not set.
std::string stub_module() {
  static const std::string path = [] {
    const char* e = std::getenv("SLSTM_CUDA_MODULE");
    return std::string(e != nullptr ? e : "");
  }();
  return path;
}

// The CUDA availability query with SLSTM_CUDA_MODULE = `module` (unset for nullptr) and the
// stub's kind; the status, and the reason in *why.
slstm_status query(const char* module, const char* kind, std::string* why) {
  if (module != nullptr) setenv("SLSTM_CUDA_MODULE", module, 1);
  else unsetenv("SLSTM_CUDA_MODULE");
  setenv("SLSTM_TEST_STUB_MODULE", kind, 1);
  const slstm_status st = slstm_backend_available(SLSTM_BACKEND_CUDA);
  *why = slstm_last_error();
  setenv("SLSTM_CUDA_MODULE", stub_module().c_str(), 1);
  unsetenv("SLSTM_TEST_STUB_MODULE");
  return st;
}

// False (with a warning) where these cases cannot run: no stub module named, or a module that
// fits is already loaded in this process.
bool loader_testable() {
  if (stub_module().empty()) {
    WARN("SKIPPED: SLSTM_CUDA_MODULE does not name the stub module (run through ctest)");
    return false;
  }
  std::string why;  // (a loaded stub would answer with its probe)
  if (query(stub_module().c_str(), "null", &why) == SLSTM_OK ||
      why.find("the stub's probe says no") != std::string::npos) {
    WARN("SKIPPED: a CUDA module is already loaded in this process: " << why);
    return false;
  }
  return true;
}

// A table that does not fit is refused as unavailable, naming the module and the mismatch.
void check_mismatch(const char* kind) {
  std::string why;
  INFO("stub module: " << kind);
  CHECK(query(stub_module().c_str(), kind, &why) == SLSTM_ERR_BACKEND_UNAVAILABLE);
  CHECK_THAT(why, Contains("the CUDA module named by SLSTM_CUDA_MODULE cannot be loaded") &&
                      Contains(stub_module()) &&
                      Contains("module interface version mismatch (expected 7;"));
}

}  // namespace

TEST_CASE("a CUDA module whose entry point returns no table is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("null");
}

TEST_CASE("a CUDA module of another ABI version is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("version");
}

TEST_CASE("a CUDA module whose table is shorter than the core's is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("short");
}

TEST_CASE("a CUDA module without the graphs-failure entry (0.11) is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("no-graphs");
}

TEST_CASE("a CUDA module without the memory entry (0.17) is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("no-memory");
}

TEST_CASE("a CUDA module without the cluster entry (v6) is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("no-cluster");
}

TEST_CASE("a CUDA module without the hybrid entry (v7) is refused", "[cuda-loader]") {
  if (!loader_testable()) return;
  check_mismatch("no-hybrid");
}

TEST_CASE("a module named by SLSTM_CUDA_MODULE that cannot be opened is refused, naming it and "
          "why, with no other search", "[cuda-loader]") {
  if (!loader_testable()) return;
  std::string why;
  CHECK(query("/nonexistent/libslstm_none.so", "", &why) == SLSTM_ERR_BACKEND_UNAVAILABLE);
  CHECK_THAT(why, Contains("the CUDA module named by SLSTM_CUDA_MODULE cannot be loaded: ") &&
                      Contains("/nonexistent/libslstm_none.so"));
}

TEST_CASE("an empty SLSTM_CUDA_MODULE is as if it were unset", "[cuda-loader]") {
  if (!loader_testable()) return;
  if (void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
    dlclose(driver);  // the search would load a module that fits, for the whole process
    WARN("SKIPPED: an NVIDIA driver is installed here");
    return;
  }
  std::string unset, empty;
  const slstm_status st_unset = query(nullptr, "", &unset);
  const slstm_status st_empty = query("", "", &empty);
  CHECK(st_unset == SLSTM_ERR_BACKEND_UNAVAILABLE);
  CHECK(st_empty == st_unset);
  CHECK(empty == unset);
}

// (Last: these tables fit, and the loader keeps the first for the rest of the process.)
namespace {

// True where the stub's table that fits is (or can be) the loaded one.
bool stub_fits() {
  if (stub_module().empty()) {
    WARN("SKIPPED: SLSTM_CUDA_MODULE does not name the stub module (run through ctest)");
    return false;
  }
  std::string why;
  if (query(stub_module().c_str(), "status:6", &why) != SLSTM_ERR_BACKEND_UNAVAILABLE ||
      why != "backend SLSTM_BACKEND_CUDA: the stub's probe says no") {
    WARN("SKIPPED: another CUDA module is loaded in this process: " << why);
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a module's failure status outside the API's range becomes SLSTM_ERR_INTERNAL",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  std::string why;
  CHECK(query(stub_module().c_str(), "status:-3", &why) == SLSTM_ERR_INTERNAL);
  CHECK(why == "backend SLSTM_BACKEND_CUDA: the stub's probe says no");
  CHECK(query(stub_module().c_str(), "status:99", &why) == SLSTM_ERR_INTERNAL);
  CHECK(query(stub_module().c_str(), "status:7", &why) == SLSTM_ERR_UNSUPPORTED);
}

TEST_CASE("a module's failure without a message is reported with a stock one", "[cuda-loader]") {
  if (!stub_fits()) return;
  std::string why;
  CHECK(query(stub_module().c_str(), "empty", &why) == SLSTM_ERR_UNSUPPORTED);
  CHECK(why == "backend SLSTM_BACKEND_CUDA: unknown CUDA module error");
}

namespace {

// The stub's record of the last session's description (slstm_test_stub_module_desc): the
// loaded stub, held open while the case runs.
class StubDesc {
 public:
  StubDesc() : handle_(dlopen(stub_module().c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    REQUIRE(handle_ != nullptr);
    fn_ = reinterpret_cast<Fn>(dlsym(handle_, "slstm_test_stub_module_desc"));
    REQUIRE(fn_ != nullptr);
  }
  ~StubDesc() { dlclose(handle_); }
  StubDesc(const StubDesc&) = delete;
  StubDesc& operator=(const StubDesc&) = delete;
  const std::int64_t* operator()() const { return fn_(); }

 private:
  using Fn = const std::int64_t* (*)();
  void* handle_;
  Fn fn_ = nullptr;
};

// A CUDA session of `m` on the stub (its probe and sessions succeed), or an empty one.
t::Session stub_session(const slstm_model* m, const char* config) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 2;
  o.max_time = 3;
  o.config = config;
  setenv("SLSTM_TEST_STUB_MODULE", "fits", 1);
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &s);
  unsetenv("SLSTM_TEST_STUB_MODULE");
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Session(s);
}

}  // namespace

TEST_CASE("the CUDA backend hands the module the keyed settings as the session has them",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  t::Model m = t::random_model(3, {4}, 51);
  t::Session s = stub_session(m.get(),
                              "cuda.chunk=7 cuda.fused=never cuda.persistent=layers "
                              "cuda.persistent_timeout_us=1234 cuda.tune=on cuda.graphs=off");
  const StubDesc desc;
  const std::int64_t* d = desc();
  CHECK(d[0] == 7);     // chunk_steps
  CHECK(d[1] == 0);     // fused_mode: never
  CHECK(d[2] == 2);     // persistent: layers
  CHECK(d[3] == 1);     // tune
  CHECK(d[4] == 0);     // generic: the basic path
  CHECK(d[7] == 0);     // use_graphs
  CHECK(d[8] == 1234);  // persistent_timeout_us
  CHECK(d[9] == 0);     // host_staging_bytes: cuda.staging=off
  CHECK(d[10] == 0);    // blas_workspace_bytes: auto
  CHECK(d[11] == 0);    // cluster: cuda.cluster=off
  CHECK(d[12] == 0);    // hybrid: cuda.hybrid=off
  t::Session ws = stub_session(m.get(), "cuda.blas_workspace_mib=3");
  CHECK(desc()[10] == 3 << 20);
}

// cuda.staging=on: the buffer for a call of max_batch x max_time (input and output rows, two
// packed states), float32; nothing on the generic path, which copies directly.
TEST_CASE("the CUDA backend hands the module the staging buffer's size with cuda.staging=on, "
          "and none on the generic path",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  t::Model m = t::random_model(3, {4}, 54);  // state: 2 x 4 floats per row
  const StubDesc desc;
  {
    t::Session s = stub_session(m.get(), "cuda.staging=on");  // max_batch 2, max_time 3
    CHECK(desc()[9] == 4 * (2 * 3 * (3 + 4) + 2 * 2 * 8));
    CHECK_THAT(t::json_value(t::describe_json(s.get()), "host_staging"),
               Contains("bytes pinned (cuda.staging=on)"));
  }
  {
    t::Session s = stub_session(m.get(), "cuda.staging=on cuda.generic=always");
    CHECK(desc()[9] == 0);
    CHECK(t::json_value(t::describe_json(s.get()), "host_staging").empty());
  }
}

TEST_CASE("the plan reports the memory the module's session allocated", "[cuda-loader]") {
  if (!stub_fits()) return;
  t::Model m = t::random_model(3, {4}, 55);
  for (const char* config : {"", "cuda.generic=always"}) {
    INFO("settings \"" << config << "\"");
    t::Session s = stub_session(m.get(), config);
    const std::string plan = t::describe_json(s.get());
    CHECK(t::json_value(plan, "device_memory_bytes") == "3000000");
    CHECK(t::json_value(plan, "blas_workspace_bytes") == "2000000");
    CHECK(t::json_value(plan, "pinned_memory_bytes") == "4096");
  }
}

namespace {

// A tier of the persistent kernel behind `key`=on, field `field` of the stub's description:
// handed to the module (and no other tier's field); where the persistent kernel is on, each
// layer's plan has `params` (name, the stub's value) and a reason with `reason`; without the
// persistent kernel, on the generic path or without the setting, none of the params and no
// `words` anywhere in the plan.
void check_tier_handed_on(const std::string& key, int field,
                          const std::vector<std::pair<std::string, std::string>>& params,
                          const char* reason, const char* words) {
  t::Model m = t::random_model(3, {4, 5}, 56);
  const StubDesc desc;
  for (const char* persistent : {"cuda.persistent=layers", "cuda.persistent=on"}) {
    INFO(persistent);
    t::Session s = stub_session(m.get(), (key + "=on " + persistent).c_str());
    CHECK(desc()[field] == 1);
    CHECK(desc()[11] + desc()[12] == 1);  // (cluster, hybrid: this tier's only)
    const std::string plan = t::describe_json(s.get());
    INFO(plan);
    CHECK(t::json_value(plan, key) == "on (config)");
    for (const auto& [name, value] : params) {
      CHECK(t::json_values(plan, name) == std::vector<std::string>{value, value});
    }
    const std::vector<std::string> paths = t::json_values(plan, "path");  // the session's first
    REQUIRE(paths.size() == 3);
    CHECK(paths[1] == "persistent|fused-step|cublas+step");  // the same as without the setting
    CHECK(paths[2] == "persistent|fused-step|cublas+step");
    CHECK(t::json_values(plan, "reason").size() == 2);
    for (const std::string& r : t::json_values(plan, "reason")) CHECK_THAT(r, Contains(reason));
  }
  for (const std::string& config :
       {key + "=on", key + "=on cuda.persistent=off",
        key + "=on cuda.persistent=layers cuda.generic=always",
        std::string("cuda.persistent=layers"), key + "=off cuda.persistent=on"}) {
    INFO(config);
    t::Session s = stub_session(m.get(), config.c_str());
    CHECK(desc()[field] == (config.find(key + "=on") != std::string::npos));
    const std::string plan = t::describe_json(s.get());
    INFO(plan);
    for (const auto& p : params) CHECK(t::json_values(plan, p.first).empty());
    CHECK_THAT(plan, !Contains(words));
  }
}

}  // namespace

// cuda.cluster=on (the stub: batch 1 on one cluster of 8 CTAs).
TEST_CASE("the CUDA backend hands the module cuda.cluster, and the plan reports each layer's "
          "cluster batches and CTAs where the persistent kernel is on",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  check_tier_handed_on("cuda.cluster", 11, {{"cluster_batches", "1"}, {"cluster_ctas", "8"}},
                       "; one thread-block cluster of 8 CTAs (cuda.cluster=on) for its cluster "
                       "batches",
                       "thread-block cluster");
}

// cuda.hybrid=on (the stub: batch 1, 96 columns of W_h on chip, a window of 65536 bytes).
TEST_CASE("the CUDA backend hands the module cuda.hybrid, and the plan reports each layer's "
          "hybrid batches, resident columns and L2 window where the persistent kernel is on",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  check_tier_handed_on("cuda.hybrid", 12,
                       {{"hybrid_batches", "1"}, {"hybrid_resident", "96"},
                        {"l2_window_bytes", "65536"}},
                       "; the hybrid tier (cuda.hybrid=on) for its hybrid batches: 96 columns of "
                       "each W_h row on chip, the rest through L2 under an L2-persisting window",
                       "hybrid tier");
}

TEST_CASE("the plan's persistent kernel reason names the setting that asked for it",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  t::Model m = t::random_model(3, {4}, 52);
  for (const char* setting : {"cuda.persistent=layers", "cuda.persistent=on"}) {
    t::Session s = stub_session(m.get(), setting);
    const std::string plan = t::describe_json(s.get());
    INFO(plan);
    CHECK_THAT(plan, Contains(std::string("the persistent kernel where the device holds it (") +
                              setting + ")"));
  }
}

TEST_CASE("a failed capture on the generic path turns the plan's graphs off, saying why",
          "[cuda-loader]") {
  if (!stub_fits()) return;
  t::Model m = t::random_model(3, {4}, 53);
  t::Session s = stub_session(m.get(), "cuda.generic=always");
  CHECK(t::json_value(t::describe_json(s.get()), "graphs") ==
        "off: a capture failed (the stub's capture failed); plain launches since, with the "
        "same numbers");
}
