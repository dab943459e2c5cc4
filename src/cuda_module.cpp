// The CUDA backend as seen from the core: a loader for the module libstacklstm_cuda.so
// (built from cuda/) and a Backend that forwards to it through the plain-C table of
// src/backend_module_abi.h. The core never includes a CUDA header and never links a CUDA
// library, so libstacklstm.so loads and serves the CPU backend on machines without them.
//
// Where the module is looked for, first hit wins:
//   1. $SLSTM_CUDA_MODULE, when set and non-empty (a path to the module; nothing else is
//      tried then);
//   2. the folder libstacklstm.so itself was loaded from (found with dladdr);
//   3. the dynamic loader's default search path (LD_LIBRARY_PATH, runpath, ld.so.cache).
// Before 2 and 3 the NVIDIA driver's library (libcuda.so.1) must load: without it no CUDA
// call can succeed, and the module (with cuBLAS and the CUDA runtime, whose load-time
// constructors run ~75,000 allocations and ~60 ms, and crash when one of them fails) is not
// loaded just to learn that. A module named by $SLSTM_CUDA_MODULE is loaded as it is.
// A module that loads is kept loaded for the life of the process (never dlclose'd), as is
// the driver's library; a failed attempt is retried on the next query, so fixing the
// environment needs no restart.
#include "cuda_module.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backend_module_abi.h"
#include "fork_safety.hpp"

#if defined(SLSTM_HAVE_CUDA_MODULE)
#include <dlfcn.h>
#endif

namespace slstm {

#if !defined(SLSTM_HAVE_CUDA_MODULE)

void require_cuda_backend() {
  fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
       "backend SLSTM_BACKEND_CUDA: this build of libstacklstm has no CUDA backend "
       "(it was configured without a CUDA toolkit or with SLSTM_ENABLE_CUDA=OFF)");
}

std::unique_ptr<Backend> make_cuda_backend(ModelPtr, const SessionConfig&) {
  require_cuda_backend();
  return nullptr;
}

#else  // SLSTM_HAVE_CUDA_MODULE

namespace {

constexpr const char* kPrefix = "backend SLSTM_BACKEND_CUDA: ";
constexpr const char* kDriverLibrary = "libcuda.so.1";  // the driver API, as the runtime loads it
constexpr std::size_t kMessageSize = 1024;

const slstm_cuda_module_table* g_table = nullptr;  // set once, under cuda_module_lock()

const char g_anchor = 0;  // an address inside libstacklstm.so, for dladdr

std::string own_directory() {
  Dl_info info{};
  if (dladdr(&g_anchor, &info) == 0 || info.dli_fname == nullptr) return std::string();
  const std::string path = info.dli_fname;
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// dlopen + dlsym + version check of one candidate; nullptr and a reason on failure.
const slstm_cuda_module_table* try_load(const std::string& path, std::string* why) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    *why = e != nullptr ? e : (path + ": dlopen failed");
    return nullptr;
  }
  void* sym = dlsym(handle, SLSTM_CUDA_MODULE_ENTRY);
  if (sym == nullptr) {
    const char* e = dlerror();
    *why = path + ": no symbol " SLSTM_CUDA_MODULE_ENTRY + (e != nullptr ? std::string(" (") + e + ")" : "");
    dlclose(handle);
    return nullptr;
  }
  slstm_cuda_module_entry_fn entry = nullptr;
  static_assert(sizeof(entry) == sizeof(sym), "function and object pointers differ in size");
  std::memcpy(&entry, &sym, sizeof(entry));
  const slstm_cuda_module_table* table = entry();
  if (table == nullptr || table->abi_version != SLSTM_CUDA_MODULE_ABI_VERSION ||
      table->struct_size < sizeof(slstm_cuda_module_table) || table->probe == nullptr ||
      table->session_create == nullptr || table->session_forward == nullptr ||
      table->session_destroy == nullptr || table->session_layer_plan == nullptr ||
      table->session_slots_init == nullptr || table->session_slot_write == nullptr ||
      table->session_slot_read == nullptr || table->session_slot_forward == nullptr ||
      table->session_live_plan == nullptr || table->session_graphs_failure == nullptr ||
      table->session_memory == nullptr || table->session_layer_cluster == nullptr ||
      table->session_layer_hybrid == nullptr) {
    *why = path + ": module interface version mismatch (expected " +
           std::to_string(SLSTM_CUDA_MODULE_ABI_VERSION) + "; the module was built with another "
           "libstacklstm)";
    dlclose(handle);
    return nullptr;
  }
  return table;  // the handle stays open for the life of the process
}

// The loaded module's table; throws SLSTM_ERR_BACKEND_UNAVAILABLE naming every path tried.
const slstm_cuda_module_table& module() {
  std::lock_guard<std::mutex> lock(cuda_module_lock());  // (fork_safety.hpp)
  if (g_table != nullptr) return *g_table;
  std::string tried;
  auto attempt = [&](const std::string& path) {
    std::string why;
    g_table = try_load(path, &why);
    if (g_table == nullptr) tried += (tried.empty() ? "" : "; ") + why;
    return g_table != nullptr;
  };
  const char* env = std::getenv("SLSTM_CUDA_MODULE");
  if (env != nullptr && env[0] != '\0') {
    if (!attempt(env)) {
      fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
           std::string(kPrefix) + "the CUDA module named by SLSTM_CUDA_MODULE cannot be loaded: " +
               tried);
    }
    return *g_table;
  }
  if (dlopen(kDriverLibrary, RTLD_LAZY | RTLD_LOCAL) == nullptr) {  // kept open, as the module
    const char* e = dlerror();
    fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
         std::string(kPrefix) + "no NVIDIA driver is installed (" + kDriverLibrary +
             " cannot be loaded: " + (e != nullptr ? e : "dlopen failed") + ")");
  }
  const std::string dir = own_directory();
  if (!dir.empty() && attempt(dir + SLSTM_CUDA_MODULE_FILE)) return *g_table;
  if (attempt(SLSTM_CUDA_MODULE_FILE)) return *g_table;
  fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
       std::string(kPrefix) + "the CUDA module " SLSTM_CUDA_MODULE_FILE
                              " cannot be loaded (library not found or a CUDA library it needs "
                              "is missing): " + tried);
}

[[noreturn]] void fail_from_module(std::int32_t status, const char* msg) {
  slstm_status s = static_cast<slstm_status>(status);
  if (status <= SLSTM_OK || status > SLSTM_ERR_INTERNAL) s = SLSTM_ERR_INTERNAL;
  fail(s, std::string(kPrefix) + (msg[0] != '\0' ? msg : "unknown CUDA module error"));
}

slstm_cuda_forward_desc to_desc(const ForwardCall& call) {
  slstm_cuda_forward_desc d{};
  d.layout = call.layout;
  d.memory = call.memory;
  d.batch = call.batch;
  d.time = call.time;
  d.input = call.input;
  d.lengths = call.lengths;
  d.initial_state = call.initial_state;
  d.output = call.output;
  d.final_state = call.final_state;
  d.data_type = call.data_type;
  return d;
}

// The stream slots of a CUDA session: the module keeps them in device memory.
class CudaSlotStates final : public SlotStates {
 public:
  CudaSlotStates(const slstm_cuda_module_table& table, void* session,
                 std::shared_ptr<std::mutex> live)
      : table_(table), session_(session), live_(std::move(live)) {}

  // (write and read hold live_ too: settling an earlier call can turn the persistent
  // kernel off, which the plan reads)
  void write(std::int64_t slot, const float* state, slstm_memory memory) override {
    char msg[kMessageSize] = {0};
    const std::lock_guard<std::mutex> lock(*live_);
    const std::int32_t st = table_.session_slot_write(session_, slot, state, memory, msg,
                                                      sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
  }
  void read(std::int64_t slot, float* state, slstm_memory memory) const override {
    char msg[kMessageSize] = {0};
    const std::lock_guard<std::mutex> lock(*live_);
    const std::int32_t st = table_.session_slot_read(session_, slot, state, memory, msg,
                                                     sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
  }
  void forward(const ForwardCall& call, const std::int64_t* slots) override {
    const slstm_cuda_forward_desc d = to_desc(call);
    char msg[kMessageSize] = {0};
    const std::lock_guard<std::mutex> lock(*live_);  // (CudaBackend::plan)
    const std::int32_t st = table_.session_slot_forward(session_, &d, slots, msg, sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
  }

 private:
  const slstm_cuda_module_table& table_;
  void* session_;
  std::shared_ptr<std::mutex> live_;
};

// The module's description of every layer (backend_module_abi.h).  *biases keeps the
// biases the descriptions point into.
std::vector<slstm_cuda_layer_desc> layer_descs(const Model& m,
                                               std::vector<std::vector<float>>* biases) {
  biases->clear();
  biases->reserve(m.layers().size() * 5);  // (moves keep the inner vectors' data in place)
  std::vector<slstm_cuda_layer_desc> layers;
  const StateLayout& state = m.state_layout();
  auto keep = [&](std::vector<float> v) -> const float* {
    if (v.empty()) return nullptr;
    biases->push_back(std::move(v));
    return biases->back().data();
  };
  auto data = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  for (std::size_t k = 0; k < m.layers().size(); ++k) {
    const Layer& l = m.layer(k);
    const LayerSpec& s = l.spec;
    slstm_cuda_layer_desc d{};
    d.input_size = l.input_size;
    d.hidden_size = l.hidden_size;
    d.w_x = l.w_x.data();
    d.w_h = l.w_h.data();
    d.bias = keep(m.folded_bias(k));
    d.state_c_row = state.row_offset(k, SLSTM_STATE_C);
    d.state_h_row = state.row_offset(k, SLSTM_STATE_H);
    d.cell = static_cast<std::int32_t>(s.cell);
    d.direction = static_cast<std::int32_t>(s.direction);
    d.proj_size = s.proj_size;
    d.cell_clip = s.cell_clip;
    d.proj_clip = s.proj_clip;
    d.peepholes = s.peepholes ? 1 : 0;
    d.reset_after = s.reset_after ? 1 : 0;
    d.residual = s.residual ? 1 : 0;
    d.state_parts = s.state_parts();
    for (int p = 0; p < s.state_parts(); ++p) d.state_part_row[p] = state.row_offset(k, p);
    for (int dir = 0; dir < s.directions(); ++dir) {
      const CellWeights& w = l.dir(dir);
      slstm_cuda_cell_desc& c = d.cells[dir];
      c.w_x = data(w.w_x);
      c.w_h = data(w.w_h);
      c.bias = keep(m.step_bias(k, dir));
      c.bias_hn = keep(m.step_bias_hn(k, dir));
      c.peep = data(w.peep);
      c.w_proj = data(w.w_proj);
    }
    layers.push_back(d);
  }
  return layers;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const slstm_cuda_module_table& table, ModelPtr model, const SessionConfig& config)
      : table_(table), model_(std::move(model)) {
    // The biases the module reads, alive until session_create returns: per layer the folded
    // bias, then per direction the step bias and b_h,n.
    std::vector<std::vector<float>> biases;
    std::vector<slstm_cuda_layer_desc> layers = layer_descs(*model_, &biases);
    slstm_cuda_session_desc desc{};
    desc.input_size = model_->input_size();
    desc.num_layers = model_->num_layers();
    desc.layers = layers.data();
    desc.state_row_floats = model_->state_layout().row_floats();
    desc.max_batch = config.max_batch;
    desc.max_time = config.max_time;
    desc.device = config.device;
    desc.allow_tf32 = config.allow_tf32 ? 1 : 0;
    desc.cuda_stream = config.cuda_stream;
    const Settings& s = config.settings;
    desc.use_graphs = s.cuda_graphs ? 1 : 0;
    desc.fused_mode = s.cuda_fused == Settings::Fused::kNever    ? 0
                      : s.cuda_fused == Settings::Fused::kAlways ? 2
                                                                 : 1;
    desc.chunk_steps = s.cuda_chunk;
    desc.persistent = s.cuda_persistent == Settings::Persistent::kOn       ? 1
                      : s.cuda_persistent == Settings::Persistent::kLayers ? 2
                                                                           : 0;
    desc.persistent_timeout_us = s.cuda_persistent_timeout_us;
    desc.tune = s.cuda_tune ? 1 : 0;
    desc.tune_file = s.cuda_tune_file.empty() ? nullptr : s.cuda_tune_file.c_str();
    // The generic path: asked for every stack, or for what the basic path does not run (a
    // stack beyond BasicLSTMCell, BF16 / FP16 operands).
    generic_ = s.cuda_generic == Settings::Generic::kAlways ||
               (s.cuda_generic == Settings::Generic::kOn &&
                (!model_->all_basic() || rounds_operands(config.precision)));
    desc.generic = generic_ ? 1 : 0;
    desc.precision = config.precision == Precision::kBf16   ? 1
                     : config.precision == Precision::kFp16 ? 2
                                                            : 0;
    staging_bytes_ = s.cuda_staging && !generic_ ? host_staging_bytes(config) : 0;
    desc.host_staging_bytes = staging_bytes_;
    desc.blas_workspace_bytes = s.cuda_blas_workspace_mib << 20;
    desc.cluster = s.cuda_cluster ? 1 : 0;
    desc.hybrid = s.cuda_hybrid ? 1 : 0;
    settings_ = s;
    slots_enabled_ = s.cuda_slots;
    char msg[kMessageSize] = {0};
    void* session = nullptr;
    const std::int32_t status = table_.session_create(&desc, &session, msg, sizeof(msg));
    if (status != SLSTM_OK) fail_from_module(status, msg);
    if (session == nullptr) fail(SLSTM_ERR_INTERNAL, std::string(kPrefix) + "module returned no session");
    session_ = session;
    try {
      describe(config);
    } catch (...) {
      table_.session_destroy(session_);
      throw;
    }
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  ~CudaBackend() override { table_.session_destroy(session_); }

  slstm_backend kind() const override { return SLSTM_BACKEND_CUDA; }
  bool takes_device_memory() const override { return true; }
  bool takes_16bit_io() const override { return generic_; }

  void forward(const ForwardCall& call) override {
    const slstm_cuda_forward_desc d = to_desc(call);
    char msg[kMessageSize] = {0};
    const std::lock_guard<std::mutex> lock(*live_);  // (plan)
    const std::int32_t status = table_.session_forward(session_, &d, msg, sizeof(msg));
    if (status != SLSTM_OK) fail_from_module(status, msg);
  }

  // Device-memory slots with cuda.slots=on (not yet run on a GPU); otherwise refused.
  std::unique_ptr<SlotStates> make_slot_states(std::int64_t max_slots,
                                               std::int64_t max_batch) override {
    if (!slots_enabled_) return Backend::make_slot_states(max_slots, max_batch);
    // The generic path: host-memory slots around forward calls (the basic path's slots live
    // in device memory).
    if (generic_) return make_host_slot_states(*this, *model_, max_slots, max_batch);
    char msg[kMessageSize] = {0};
    const std::int32_t st = table_.session_slots_init(session_, max_slots, msg, sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
    add_memory_params();  // (the session is not yet the caller's: no describe runs now)
    return std::make_unique<CudaSlotStates>(table_, session_, live_);
  }

 private:
  // The plan: what the module chose per layer (fused step or cuBLAS + step kernel, by batch
  // size) and the session-wide settings.
  void describe(const SessionConfig& config) {
    plan_.backend = "cuda";
    plan_.path = config.settings.cuda_graphs ? "graphs" : "stream";
    plan_.precision = rounds_operands(config.precision) ? precision_name(config.precision)
                      : config.allow_tf32                ? "tf32"
                                                         : "fp32";
    plan_.params = {{"device", std::to_string(config.device)},
                    {"stream", config.cuda_stream != nullptr ? "caller" : "own"},
                    {"max_batch", std::to_string(config.max_batch)},
                    {"wavefront_chunk", config.settings.cuda_chunk > 0
                                            ? std::to_string(config.settings.cuda_chunk)
                                            : "min(8, ceil(64 / batch)) steps"}};
    plan_.settings = config.settings.cuda_params();
    if (generic_) {
      plan_.path = "generic";
      plan_.params.pop_back();  // no wavefront: layer by layer
      plan_.params.push_back({"order", "layer by layer, each direction over the whole sequence"});
      plan_.params.push_back({"graphs", config.settings.cuda_graphs ? kGraphsOn
                                                                    : "off (cuda.graphs=off)"});
      plan_.layers = generic_layer_plans();
      add_memory_params();
      return;
    }
    plan_.params.push_back(
        {"host_staging",
         staging_bytes_ > 0
             ? std::to_string(staging_bytes_) +
                   " bytes pinned (cuda.staging=on): a call with host buffers whose input, "
                   "states and output add up to at most that copies them through it"
             : "off: a call with host buffers copies from and to them directly"});
    add_memory_params();
    plan_.layers = layer_plans();
  }

  // The memory the module's session allocated itself (its weights, buffers for max_batch x
  // max_time, cuBLAS workspaces, stream slots, pinned staging), as the plan's params
  // device_memory_bytes, blas_workspace_bytes (counted in the former), pinned_memory_bytes:
  // added, or brought up to date (after the slots' allocation).
  void add_memory_params() {
    std::int64_t device = 0, workspace = 0, pinned = 0;
    char msg[kMessageSize] = {0};
    const std::int32_t st =
        table_.session_memory(session_, &device, &workspace, &pinned, msg, sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
    const std::pair<const char*, std::int64_t> values[] = {{"device_memory_bytes", device},
                                                           {"blas_workspace_bytes", workspace},
                                                           {"pinned_memory_bytes", pinned}};
    for (const auto& [key, value] : values) {
      bool found = false;
      for (auto& [k, v] : plan_.params) {
        if (k == key) {
          v = std::to_string(value);
          found = true;
        }
      }
      if (!found) plan_.params.push_back({key, std::to_string(value)});
    }
  }

  // cuda.staging=on: the pinned buffer for a call of max_batch x max_time (input, initial
  // state, output, final state; float32), at most Settings::kMaxCudaStagingBytes.
  std::int64_t host_staging_bytes(const SessionConfig& config) const {
    const double rows = static_cast<double>(config.max_batch) *
                        static_cast<double>(config.max_time);
    const double floats =
        rows * static_cast<double>(model_->input_size() + model_->output_size()) +
        2.0 * static_cast<double>(config.max_batch) *
            static_cast<double>(model_->state_layout().row_floats());
    const double cap = static_cast<double>(Settings::kMaxCudaStagingBytes);
    return static_cast<std::int64_t>(std::min(cap, 4.0 * floats));
  }

  // The generic path's plan: the same for every layer and batch (cuda.generic).
  std::vector<LayerPlan> generic_layer_plans() const {
    std::vector<LayerPlan> out;
    const bool always = settings_.cuda_generic == Settings::Generic::kAlways;
    for (std::size_t l = 0; l < model_->layers().size(); ++l) {
      const LayerSpec& s = model_->spec(l);
      out.push_back({"generic",
                     always ? "cuda.generic=always: every stack on the generic path"
                            : "cuda.generic=on and a stack beyond forward BasicLSTMCell or "
                              "BF16 / FP16 operands: one input GEMM per direction, per step a "
                              "recurrent GEMM (cuBLAS) and the cell's pointwise kernels",
                     {{"cell", cell_name(s.cell)},
                      {"direction", direction_name(s.direction)},
                      {"hidden", std::to_string(s.hidden_size)}}});
    }
    return out;
  }

  // The per-layer part of the plan, as the module has it now (paths tuned on the device and
  // a persistent kernel turned off after a failure change it after creation).
  std::vector<LayerPlan> layer_plans() const {
    const char* why = settings_.cuda_fused == Settings::Fused::kNever
                          ? "cuda.fused=never"
                      : settings_.cuda_fused == Settings::Fused::kAlways
                          ? "cuda.fused=always: the fused step wherever it fits"
                          : "the fused step where it was measured faster for this batch and H";
    std::uint32_t tuned = 0, stack = 0;
    char file_error[kMessageSize] = {0};
    {
      char msg[kMessageSize] = {0};
      const std::int32_t st = table_.session_live_plan(session_, &tuned, &stack, file_error,
                                                       sizeof(file_error), msg, sizeof(msg));
      if (st != SLSTM_OK) fail_from_module(st, msg);
    }
    std::vector<LayerPlan> out;
    for (std::int32_t l = 0; l < model_->num_layers(); ++l) {
      std::uint32_t fused = 0, persistent = 0;
      char msg[kMessageSize] = {0};
      const std::int32_t st =
          table_.session_layer_plan(session_, l, &fused, &persistent, msg, sizeof(msg));
      if (st != SLSTM_OK) fail_from_module(st, msg);
      const std::string batches = batch_ranges(fused);
      LayerPlan layer{fused == 0 ? "cublas+step" : "fused-step|cublas+step", why,
                      {{"hidden",
                        std::to_string(model_->layer(static_cast<std::size_t>(l)).hidden_size)},
                       {"fused_step_batches", batches.empty() ? "none" : batches}}};
      if (settings_.cuda_persistent != Settings::Persistent::kOff) {
        const std::string p = batch_ranges(persistent);
        if (persistent != 0) {
          layer.path = "persistent|" + layer.path;
          layer.reason += std::string("; the persistent kernel where the device holds it (") +
                          (settings_.cuda_persistent == Settings::Persistent::kLayers
                               ? "cuda.persistent=layers)"
                               : "cuda.persistent=on)");
        }
        layer.params.push_back({"persistent_batches", p.empty() ? "none" : p});
        const std::string sb = batch_ranges(stack);
        if (stack != 0) {
          layer.path = "persistent-stack|" + layer.path;
          layer.reason += "; the whole stack as one persistent launch for its batches";
        }
        layer.params.push_back({"persistent_stack_batches", sb.empty() ? "none" : sb});
        if (settings_.cuda_cluster) add_cluster_params(l, &layer);
        if (settings_.cuda_hybrid) add_hybrid_params(l, &layer);
      }
      if (settings_.cuda_tune) {
        const std::string t = batch_ranges(tuned);
        layer.reason += "; for the tuned batches, the path timed fastest on this device";
        layer.params.push_back({"tuned_batches", t.empty() ? "none" : t});
        if (file_error[0] != '\0') layer.params.push_back({"tune_file_error", file_error});
      }
      out.push_back(std::move(layer));
    }
    return out;
  }

  // cuda.cluster=on: the batches whose persistent steps of layer l run on one thread-block
  // cluster, and its CTAs (the path stays "persistent|...": the cluster kernel is its tier).
  void add_cluster_params(std::int32_t l, LayerPlan* layer) const {
    std::uint32_t batches = 0;
    std::int32_t ctas = 0;
    char msg[kMessageSize] = {0};
    const std::int32_t st =
        table_.session_layer_cluster(session_, l, &batches, &ctas, msg, sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
    if (batches == 0) ctas = 0;
    const std::string c = batch_ranges(batches);
    if (batches != 0) {
      layer->reason += "; one thread-block cluster of " + std::to_string(ctas) +
                       " CTAs (cuda.cluster=on) for its cluster batches";
    }
    layer->params.push_back({"cluster_batches", c.empty() ? "none" : c});
    layer->params.push_back({"cluster_ctas", std::to_string(ctas)});
  }

  // cuda.hybrid=on: the batches whose persistent steps of layer l keep only the first
  // `resident` columns of each W_h row in shared memory, and the bytes of the L2 window over
  // W_h their launches carry (the path stays "persistent|...": the hybrid is its tier).
  void add_hybrid_params(std::int32_t l, LayerPlan* layer) const {
    std::uint32_t batches = 0;
    std::int32_t resident = 0;
    std::int64_t window = 0;
    char msg[kMessageSize] = {0};
    const std::int32_t st =
        table_.session_layer_hybrid(session_, l, &batches, &resident, &window, msg, sizeof(msg));
    if (st != SLSTM_OK) fail_from_module(st, msg);
    if (batches == 0) resident = 0, window = 0;
    const std::string h = batch_ranges(batches);
    if (batches != 0) {
      layer->reason += "; the hybrid tier (cuda.hybrid=on) for its hybrid batches: " +
                       std::to_string(resident) + " columns of each W_h row on chip, the rest " +
                       "through L2" + (window > 0 ? " under an L2-persisting window" : "");
    }
    layer->params.push_back({"hybrid_batches", h.empty() ? "none" : h});
    layer->params.push_back({"hybrid_resident", std::to_string(resident)});
    layer->params.push_back({"l2_window_bytes", std::to_string(window)});
  }

  // The plan as it stands now (see layer_plans).  The module changes it during calls (tuning,
  // the persistent kernel turned off), so it is read between calls: a describe from another
  // thread waits for a running call (live_ is held by every call that runs compute).
  Plan plan() const override {
    if (generic_) return generic_plan();
    if (settings_.cuda_persistent == Settings::Persistent::kOff && !settings_.cuda_tune) {
      return plan_;
    }
    const std::lock_guard<std::mutex> lock(*live_);
    Plan live = plan_;
    live.layers = layer_plans();
    return live;
  }

  static constexpr const char* kGraphsOn =
      "on: each call shape's compute captured at its first call, then replayed";

  // The generic path's plan: "graphs" says so when a capture failed and the session went
  // on with plain launches (the same numbers).
  Plan generic_plan() const {
    if (!settings_.cuda_graphs) return plan_;
    char why[kMessageSize] = {0};
    char msg[kMessageSize] = {0};
    {
      const std::lock_guard<std::mutex> lock(*live_);
      const std::int32_t st = table_.session_graphs_failure(session_, why, sizeof(why), msg,
                                                            sizeof(msg));
      if (st != SLSTM_OK) fail_from_module(st, msg);
    }
    if (why[0] == '\0') return plan_;
    Plan live = plan_;
    for (auto& [key, value] : live.params) {
      if (key == "graphs") value = std::string("off: a capture failed (") + why +
                                   "); plain launches since, with the same numbers";
    }
    return live;
  }

  // "1-4,7" for the set bits of a batch mask (bit b-1: batch b).
  static std::string batch_ranges(std::uint32_t mask) {
    std::string out;
    for (int b = 1; b <= 32; ++b) {
      if (((mask >> (b - 1)) & 1u) == 0) continue;
      int e = b;
      while (e < 32 && ((mask >> e) & 1u) != 0) ++e;
      out += (out.empty() ? "" : ",") + std::to_string(b) + (e > b ? "-" + std::to_string(e) : "");
      b = e;
    }
    return out;
  }

  const slstm_cuda_module_table& table_;
  ModelPtr model_;
  void* session_ = nullptr;
  bool slots_enabled_ = false;  // cuda.slots=on
  std::int64_t staging_bytes_ = 0;  // cuda.staging=on: the module's pinned buffer (bytes)
  bool generic_ = false;        // the stack runs on the generic path (cuda.generic)
  Settings settings_;
  // Held by every call that runs compute and by plan() (shared with the stream slots' calls).
  std::shared_ptr<std::mutex> live_ = std::make_shared<std::mutex>();
};

}  // namespace

void require_cuda_backend() {
  const slstm_cuda_module_table& table = module();
  char msg[kMessageSize] = {0};
  const std::int32_t status = table.probe(msg, sizeof(msg));
  if (status != SLSTM_OK) fail_from_module(status, msg);
}

std::unique_ptr<Backend> make_cuda_backend(ModelPtr model, const SessionConfig& config) {
  require_cuda_backend();
  return std::make_unique<CudaBackend>(module(), std::move(model), config);
}

#endif  // SLSTM_HAVE_CUDA_MODULE

}  // namespace slstm
