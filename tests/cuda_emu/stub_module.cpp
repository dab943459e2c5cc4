// A stub CUDA module for the core's module loader and CUDA backend (src/cuda_module.cpp) in
// tests/test_cuda_loader.cpp: what its entry point returns is chosen, at each call, by the
// environment variable SLSTM_TEST_STUB_MODULE (the core loads a module anew after a failure):
//   null          no table (NULL)
//   version       a table of an older ABI version (SLSTM_CUDA_MODULE_ABI_VERSION - 1)
//   short         a table whose struct_size ends before session_graphs_failure
//   no-graphs     a table without session_graphs_failure (appended in 0.11)
//   no-memory     a table without session_memory (v5, 0.17)
//   no-cluster    a table without session_layer_cluster (v6)
//   no-hybrid     a table without session_layer_hybrid (v7)
//   anything else a table that fits, which the core keeps for the life of the process;
// and what a table that fits does, by the same variable at each call:
//   status:N      its probe fails with status N and a message
//   empty         its probe fails with SLSTM_ERR_UNSUPPORTED and no message
//   fits          its probe succeeds; its sessions run nothing but record the description
//                 they were made from (slstm_test_stub_module_desc), plan every layer's batch
//                 1 on the fused step and the persistent kernel (with cuda.cluster=on, on
//                 one cluster of 8 CTAs: session_layer_cluster; with cuda.hybrid=on, on
//                 the hybrid tier with 96 columns on chip and a window of 65536 bytes:
//                 session_layer_hybrid), report a failed capture
//                 and fixed memory sizes (session_memory).
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend_module_abi.h"
#include "stacklstm/stacklstm.h"

namespace {

std::string kind() {
  const char* e = std::getenv("SLSTM_TEST_STUB_MODULE");
  return e != nullptr ? e : "";
}

// The description of the last session made: the settings the core handed on.
int64_t g_desc[13];
int g_session;

int32_t probe(char* msg, size_t msg_size) {
  const std::string k = kind();
  if (k == "fits") return SLSTM_OK;
  if (k == "empty") return SLSTM_ERR_UNSUPPORTED;
  std::snprintf(msg, msg_size, "the stub's probe says no");
  return k.compare(0, 7, "status:") == 0 ? static_cast<int32_t>(std::atoi(k.c_str() + 7))
                                          : SLSTM_ERR_BACKEND_UNAVAILABLE;
}
int32_t session_create(const slstm_cuda_session_desc* d, void** out, char*, size_t) {
  if (kind() != "fits") return SLSTM_ERR_INTERNAL;
  const int64_t got[13] = {d->chunk_steps, d->fused_mode, d->persistent, d->tune, d->generic,
                           d->precision, d->allow_tf32, d->use_graphs,
                           d->persistent_timeout_us, d->host_staging_bytes,
                           d->blas_workspace_bytes, d->cluster, d->hybrid};
  std::memcpy(g_desc, got, sizeof g_desc);
  *out = &g_session;
  return SLSTM_OK;
}
int32_t session_forward(void*, const slstm_cuda_forward_desc*, char*, size_t) {
  return SLSTM_ERR_INTERNAL;
}
void session_destroy(void*) {}
int32_t session_layer_plan(void*, int32_t, uint32_t* fused, uint32_t* persistent, char*, size_t) {
  *fused = 1;
  *persistent = 1;
  return SLSTM_OK;
}
int32_t session_slots_init(void*, int64_t, char*, size_t) { return SLSTM_ERR_INTERNAL; }
int32_t session_slot_write(void*, int64_t, const float*, int32_t, char*, size_t) {
  return SLSTM_ERR_INTERNAL;
}
int32_t session_slot_read(void*, int64_t, float*, int32_t, char*, size_t) {
  return SLSTM_ERR_INTERNAL;
}
int32_t session_slot_forward(void*, const slstm_cuda_forward_desc*, const int64_t*, char*,
                             size_t) {
  return SLSTM_ERR_INTERNAL;
}
int32_t session_live_plan(void*, uint32_t* tuned, uint32_t* stack, char* file_error,
                          size_t file_error_size, char*, size_t) {
  *tuned = 0;
  *stack = 0;
  std::snprintf(file_error, file_error_size, "%s", "");
  return SLSTM_OK;
}
int32_t session_graphs_failure(void*, char* why, size_t why_size, char*, size_t) {
  std::snprintf(why, why_size, "the stub's capture failed");
  return SLSTM_OK;
}

// Fixed numbers, for the core's plan ("memory").
std::int32_t session_memory(void*, int64_t* device, int64_t* workspace, int64_t* pinned, char*,
                            size_t) {
  *device = 3000000;
  *workspace = 2000000;
  *pinned = 4096;
  return SLSTM_OK;
}

// Batch 1 on one cluster of 8 CTAs where the last session was made with cuda.cluster=on
// (its persistent batch, session_layer_plan), else none.
int32_t session_layer_cluster(void*, int32_t, uint32_t* batches, int32_t* ctas, char*, size_t) {
  const bool on = g_desc[11] != 0;
  *batches = on ? 1 : 0;
  *ctas = on ? 8 : 0;
  return SLSTM_OK;
}

// Batch 1 on the hybrid tier (96 columns on chip, a 64 KiB window) where the last session was
// made with cuda.hybrid=on, else none.
int32_t session_layer_hybrid(void*, int32_t, uint32_t* batches, int32_t* resident,
                             int64_t* window, char*, size_t) {
  const bool on = g_desc[12] != 0;
  *batches = on ? 1 : 0;
  *resident = on ? 96 : 0;
  *window = on ? 65536 : 0;
  return SLSTM_OK;
}

slstm_cuda_module_table g_table;

}  // namespace

extern "C" __attribute__((visibility("default"))) const slstm_cuda_module_table*
slstm_cuda_module_v7(void) {
  const std::string k = kind();
  if (k == "null") return nullptr;
  g_table = slstm_cuda_module_table{
      sizeof(slstm_cuda_module_table), SLSTM_CUDA_MODULE_ABI_VERSION, &probe, &session_create,
      &session_forward, &session_destroy, &session_layer_plan, &session_slots_init,
      &session_slot_write, &session_slot_read, &session_slot_forward, &session_live_plan,
      &session_graphs_failure, &session_memory, &session_layer_cluster,
      &session_layer_hybrid};
  if (k == "version") g_table.abi_version = SLSTM_CUDA_MODULE_ABI_VERSION - 1;
  if (k == "short") {
    g_table.struct_size = offsetof(slstm_cuda_module_table, session_graphs_failure);
  }
  if (k == "no-graphs") g_table.session_graphs_failure = nullptr;
  if (k == "no-memory") g_table.session_memory = nullptr;
  if (k == "no-cluster") g_table.session_layer_cluster = nullptr;
  if (k == "no-hybrid") g_table.session_layer_hybrid = nullptr;
  return &g_table;
}

// The last session's description: chunk_steps, fused_mode, persistent, tune, generic,
// precision, allow_tf32, use_graphs, persistent_timeout_us, host_staging_bytes,
// blas_workspace_bytes, cluster, hybrid.
extern "C" __attribute__((visibility("default"))) const int64_t* slstm_test_stub_module_desc(void) {
  return g_desc;
}
