/* The internal interface between libstacklstm.so (the core) and libstacklstm_cuda.so (the
 * CUDA backend module the core loads on demand with dlopen): the core's contract with its
 * backend modules, kept with the core.  Both sides reach it through the CMake target
 * slstm_internal_headers (src/cuda_module.cpp on the core's side, cuda/ on the module's).
 *
 * Plain C, no CUDA types: the core includes this header without any CUDA header.  The
 * module exports exactly one function, slstm_cuda_module_v7(), which returns a static
 * table of function pointers.  Every function reports failures as an slstm_status value
 * (an int32_t here) plus a NUL-terminated English message written into the caller's
 * buffer; no C++ exception crosses this boundary.
 *
 * Versioning: the core checks abi_version == SLSTM_CUDA_MODULE_ABI_VERSION and
 * struct_size >= sizeof(slstm_cuda_module_table) before using the table.  A change that
 * breaks the layout of any struct below bumps the version (and the entry's name).
 *
 * Not part of the public API: the core and the module are always built together. */
#ifndef STACKLSTM_BACKEND_MODULE_ABI_H
#define STACKLSTM_BACKEND_MODULE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLSTM_CUDA_MODULE_ABI_VERSION 7u
#define SLSTM_CUDA_MODULE_ENTRY "slstm_cuda_module_v7"
#define SLSTM_CUDA_MODULE_FILE "libstacklstm_cuda.so"

/* One direction's weights as the generic path's step reads them (v4; host memory, borrowed
 * during session_create).  G = 4 (LSTM) or 3 (GRU) gate blocks of H rows, canonical order
 * (LSTM i, f, g, o; GRU r, z, n); R = proj_size, or H without a projection. */
typedef struct slstm_cuda_cell_desc {
  const float* w_x;     /* [G*H, I] */
  const float* w_h;     /* [G*H, R] */
  const float* bias;    /* [G*H], what every step adds (slstm::Model::step_bias): LSTM bias with
                           forget_bias on f; GRU b_x + b_h (n block: b_x alone when the reset
                           comes after the recurrent product) */
  const float* bias_hn; /* GRU with the reset after: [H], the n block's b_h; else NULL */
  const float* peep;    /* LSTM with peepholes: [3H] w_i, w_f, w_o diagonals; else NULL */
  const float* w_proj;  /* LSTM with a projection: [P, H]; else NULL */
} slstm_cuda_cell_desc;

/* One layer's canonical weights (DESIGN §3), host memory, borrowed during session_create,
 * and where its state lives in the packed state (the core's StateLayout: offsets in floats
 * per batch row, so a batch B's c block starts at B * state_c_row).  The fields up to
 * state_h_row describe a forward BasicLSTMCell layer (what the basic path runs); the rest
 * (v4) describe any layer, for the generic path (cuda.generic). */
typedef struct slstm_cuda_layer_desc {
  int64_t input_size;  /* I */
  int64_t hidden_size; /* H */
  const float* w_x;    /* [4H, I] row-major, gate blocks i, f, g, o */
  const float* w_h;    /* [4H, H] */
  const float* bias;   /* [4H] with forget_bias folded into the f block (Model::folded_bias) */
  int64_t state_c_row; /* offset of the layer's c block per batch row */
  int64_t state_h_row; /* offset of the layer's h block per batch row */
  /* (v4) slstm::LayerSpec's fields. */
  int32_t cell;        /* 0 LSTM, 1 GRU */
  int32_t direction;   /* 0 forward, 1 reverse, 2 bidirectional */
  int64_t proj_size;   /* P; 0 = none */
  float cell_clip;     /* 0 = none */
  float proj_clip;     /* 0 = none */
  int32_t peepholes;   /* 0 or 1 */
  int32_t reset_after; /* GRU: 0 or 1 */
  int32_t residual;    /* 0 or 1: output = cell output + layer input */
  int32_t state_parts; /* pieces of the layer's state: (LSTM 2, GRU 1) x directions */
  int64_t state_part_row[4];      /* offset of each piece per batch row, StateLayout order
                                     (per direction, forward first: LSTM c, h; GRU h) */
  slstm_cuda_cell_desc cells[2];  /* [0] forward (or only) direction, [1] bidirectional's
                                     reverse cell */
} slstm_cuda_layer_desc;

/* A model plus the session's validated options. */
typedef struct slstm_cuda_session_desc {
  int64_t input_size; /* D */
  int32_t num_layers; /* L >= 1 */
  const slstm_cuda_layer_desc* layers;
  int64_t state_row_floats; /* floats per batch row of the packed state (StateLayout) */
  int64_t max_batch; /* >= 1 */
  int64_t max_time;  /* >= 1 */
  int32_t device;    /* >= 0 */
  int32_t allow_tf32; /* 0 or 1 */
  void* cuda_stream;  /* cudaStream_t of the caller, or NULL */
  /* The keyed settings (src/settings.hpp), environment overrides already applied by the core:
   * the module reads no environment variable of its own. */
  int32_t use_graphs;  /* cuda.graphs: 1 on, 0 off */
  int32_t fused_mode;  /* cuda.fused: 0 never, 1 auto (where measured faster), 2 always */
  int64_t chunk_steps; /* cuda.chunk: steps per wavefront chunk, 0 = auto */
  int32_t persistent;  /* cuda.persistent: 0 off, 1 on, 2 layers (no whole-stack launch) (v3) */
  int64_t persistent_timeout_us; /* cuda.persistent_timeout_us: bound of one grid wait (v3) */
  int32_t tune;          /* cuda.tune: 1 on, 0 off (v3) */
  const char* tune_file; /* cuda.tune_file: the tuning cache's path, or NULL (v3) */
  int32_t generic;       /* (v4) 1: run the stack on the generic path (cuBLAS GEMMs and
                            pointwise kernels, any cell kind and direction; cuda.generic),
                            0: on the basic path (forward BasicLSTMCell layers only) */
  int32_t precision;     /* (v4) the products' operands on the generic path: 0 float32 (TF32
                            with allow_tf32), 1 BF16, 2 FP16 (rounded to nearest even; sums
                            float32; docs/precision.md).  The basic path: 0 only */
  int64_t host_staging_bytes; /* (v5) cuda.staging=on: the pinned host buffer the basic path
                            copies a host-buffer call's input, states and output through
                            when they fit in it (one wait for the device per call instead of
                            one per pageable copy); 0: off, or the generic path */
  int64_t blas_workspace_bytes; /* (v5) cuda.blas_workspace_mib: each cuBLAS handle's
                            workspace; 0: cuBLAS's recommendation for the device (32 MiB from
                            Hopper on, 4 MiB before) */
  int32_t cluster;       /* (v6) cuda.cluster: 1 on, 0 off.  On: a layer whose persistent
                            kernel (persistent 1 or 2) fits one thread-block cluster (up to
                            16 CTAs) runs it on the cluster kernel (W_h rows and h in
                            distributed shared memory, one cluster barrier per step); no
                            effect with persistent 0 or on the generic path */
  int32_t hybrid;        /* (v7) cuda.hybrid: 1 on, 0 off.  On: a layer whose persistent CTAs
                            with all of W_h do not fit the device (persistent 1 or 2) runs
                            the hybrid tier where its CTAs fit with part of each W_h row in
                            shared memory (the rest read every step through L2, with an
                            L2-persisting window); no effect with persistent 0 or on the
                            generic path */
} slstm_cuda_session_desc;

/* A validated forward call (see slstm::ForwardCall).  layout: slstm_layout; memory:
 * slstm_memory.  lengths is host memory; the float buffers live where `memory` says. */
typedef struct slstm_cuda_forward_desc {
  int32_t layout;
  int32_t memory;
  int64_t batch;
  int64_t time;
  const float* input;
  const int32_t* lengths;
  const float* initial_state;
  float* output;
  float* final_state;
  int32_t data_type; /* (v4) slstm_data_type of input and output (16-bit codes: generic path,
                        device memory) */
} slstm_cuda_forward_desc;

typedef struct slstm_cuda_module_table {
  uint32_t struct_size; /* sizeof(slstm_cuda_module_table) of the module */
  uint32_t abi_version; /* SLSTM_CUDA_MODULE_ABI_VERSION */
  /* SLSTM_OK when the CUDA runtime finds a driver and at least one device, else
   * SLSTM_ERR_BACKEND_UNAVAILABLE with the reason.  Side effects: none beyond asking the
   * runtime for the device count. */
  int32_t (*probe)(char* msg, size_t msg_size);
  /* Creates a session: checks the device index, uploads the weights, allocates every
   * device buffer for max_batch x max_time.  *out written only on success. */
  int32_t (*session_create)(const slstm_cuda_session_desc* desc, void** out, char* msg,
                            size_t msg_size);
  /* Runs one validated forward call. */
  int32_t (*session_forward)(void* session, const slstm_cuda_forward_desc* call, char* msg,
                             size_t msg_size);
  /* Frees everything the session holds.  NULL: no-op.  Never fails. */
  void (*session_destroy)(void* session);
  /* The session's plan for layer `layer` (0-based): bit b-1 of *fused_batches is set when a
   * call of batch b runs the layer's recurrence on the fused step kernel (else cuBLAS + the
   * step kernel); batches above 32 never do.  Bit b-1 of *persistent_batches (v3): on the
   * persistent kernel instead (cuda.persistent=on; 0 once that kernel has failed and the
   * session turned it off).  Fixed at creation otherwise. */
  int32_t (*session_layer_plan)(void* session, int32_t layer, uint32_t* fused_batches,
                                uint32_t* persistent_batches, char* msg, size_t msg_size);
  /* Stream slots (appended in 0.3; the core's SlotStates, used only with cuda.slots=on).
   * slots_init: once per session, max_slots >= 1 packed batch-1 states in device memory,
   * zeroed.  slot_write: slot := state (state_row_floats floats in `memory`: slstm_memory),
   * or zeros when state is NULL.  slot_read: state := slot.  slot_forward: a validated call
   * (initial_state and final_state NULL) whose row b starts from slot slot_ids[b] (host
   * memory, distinct, open) and leaves its final state there.  Host memory: the call returns
   * when done; device memory: ordered on the session's stream, as session_forward. */
  int32_t (*session_slots_init)(void* session, int64_t max_slots, char* msg, size_t msg_size);
  int32_t (*session_slot_write)(void* session, int64_t slot, const float* state,
                                int32_t memory, char* msg, size_t msg_size);
  int32_t (*session_slot_read)(void* session, int64_t slot, float* state, int32_t memory,
                               char* msg, size_t msg_size);
  int32_t (*session_slot_forward)(void* session, const slstm_cuda_forward_desc* call,
                                  const int64_t* slot_ids, char* msg, size_t msg_size);
  /* The parts of the plan that change after creation (v3): bit b-1 of *tuned_batches is set
   * once calls of batch b run the paths timed on the device or read from the tuning file
   * (cuda.tune=on); of *stack_batches, when calls of batch b run the whole stack as one
   * persistent launch (cuda.persistent=on; after a failure of that kernel, as one launch per
   * step and layer of the same kernel); file_error: why the tuning file could not be read
   * or written last ("" when it could, or when there is none). */
  int32_t (*session_live_plan)(void* session, uint32_t* tuned_batches, uint32_t* stack_batches,
                               char* file_error, size_t file_error_size, char* msg,
                               size_t msg_size);
  /* (Appended in 0.11.) Why the session stopped recording its calls' compute as CUDA graphs
   * (cuda.graphs=on on the generic path: a capture or instantiation that failed, after which
   * its calls run as plain launches with the same numbers), or "" while it records, or when
   * it never did (cuda.graphs=off; the basic path, whose capture failures fail the call). */
  int32_t (*session_graphs_failure)(void* session, char* why, size_t why_size, char* msg,
                                    size_t msg_size);
  /* (v5) The memory the session allocated itself, in bytes, as it stands (stream slots add
   * theirs when session_slots_init runs): device memory (weights, activations, states,
   * slots, cuBLAS workspaces), of which cuBLAS workspaces, and pinned host memory.  Not
   * counted: the CUDA context, cuBLAS's handles and graphs' own memory. */
  int32_t (*session_memory)(void* session, int64_t* device_bytes, int64_t* workspace_bytes,
                            int64_t* pinned_bytes, char* msg, size_t msg_size);
  /* (v6) Layer `layer`'s cluster tier (cuda.cluster=on): bit b-1 of *cluster_batches is set
   * when a call of batch b runs the layer's persistent steps on ONE thread-block cluster of
   * *cluster_ctas CTAs (0 and 0 when none, or once the persistent kernel failed and the
   * session turned it off). */
  int32_t (*session_layer_cluster)(void* session, int32_t layer, uint32_t* cluster_batches,
                                   int32_t* cluster_ctas, char* msg, size_t msg_size);
  /* (v7) Layer `layer`'s hybrid tier (cuda.hybrid=on): bit b-1 of *hybrid_batches is set when
   * a call of batch b runs the layer's persistent steps with the first *resident columns of
   * each W_h row in shared memory, the rest read every step from global memory under an L2
   * access policy window of *l2_window_bytes bytes (0: none); 0, 0 and 0 when none, or once
   * the persistent kernel failed and the session turned it off. */
  int32_t (*session_layer_hybrid)(void* session, int32_t layer, uint32_t* hybrid_batches,
                                  int32_t* resident, int64_t* l2_window_bytes, char* msg,
                                  size_t msg_size);
} slstm_cuda_module_table;

typedef const slstm_cuda_module_table* (*slstm_cuda_module_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* STACKLSTM_BACKEND_MODULE_ABI_H */
