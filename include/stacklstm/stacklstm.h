/*
 * libstacklstm — stacked LSTM layers (each with its own hidden size) on the CPU or an
 * NVIDIA GPU, behind a stable C ABI.
 *
 * The numbers are those of TensorFlow 1.x
 *     tf.nn.dynamic_rnn(tf.nn.rnn_cell.MultiRNNCell([BasicLSTMCell(n) for n in sizes]), ...)
 *
 * ------------------------------------------------------------------------------------------
 * SEMANTICS
 *   Notation: batch B, time T, input depth D, layers l = 0..L-1 with hidden size H_l and
 *   input depth I_l (I_0 = D, I_l = H_{l-1}).  sigma(x) = 1 / (1 + exp(-x)).
 *
 *   One cell (per layer, per step):
 *       z = x . W_x^T + h_prev . W_h^T + b           gate blocks of z: i | f | g | o
 *       c = c_prev * sigma(f + forget_bias) + sigma(i) * tanh(g)
 *       h = tanh(c) * sigma(o)
 *   Layer l's input at step t is layer l-1's new h at step t; the stack's output at step t is
 *   the last layer's h.
 *
 *   Since 0.4 a stack may also hold TF LSTMCell layers with peepholes, cell_clip and an
 *   output projection, GRU layers (reset before or after the recurrent matmul), reverse and
 *   bidirectional layers and residual connections, in any mix: see "Layers" below and
 *   docs/cells.md, which defines them.  What this section says of "layers" and "h" holds for
 *   them with each layer's output width in place of H.
 *
 *   Sequences: input [B, T, D] (SLSTM_BATCH_MAJOR) or [T, B, D] (SLSTM_TIME_MAJOR); output
 *   [B, T, H_last] or [T, B, H_last] in the same order.  Optional per-row sequence lengths
 *   (0 <= len_b <= T, anything else is rejected): output rows at t >= len_b are exactly 0,
 *   every layer's final state is its state after step len_b - 1, and len_b = 0 leaves the
 *   final state equal to the initial state.  T = 0 is legal (no output, final = initial).
 *   Running a sequence in chunks while carrying the state, or step by step with
 *   slstm_session_step, gives bitwise the outputs and final state of one call on the CPU
 *   backend (every cpu_path and kernel, any num_threads): a step's result depends only on its
 *   input, the carried state and the weights.  The CUDA backend does not promise that
 *   (cuBLAS picks its kernels by the call's shape).
 *
 * ACCURACY
 *   float32 throughout (the CPU reference adds its sums in double and rounds once).  Per cell
 *   and step, on the float32 inputs it was given, the CPU paths guarantee: each pre-activation
 *   z, a sum of n = I + H + 2 terms (bias and forget_bias included) whose magnitudes add up to
 *   S(z), is within n*2^-24/(1 - n*2^-24) * S(z) of the exact sum; the new c and h are within
 *   what that becomes through the gates (sigma' <= 1/4, tanh' <= 1) plus 16*2^-24 per gate
 *   function; sigma and tanh themselves are within a few ulp of their own value on every CPU
 *   path (since 0.19.1: a tiny c gives c and h to float32's relative accuracy; before, the
 *   AVX kernels' tanh was ~6e-8 off in absolute terms).  The error follows S(z), not |z|:
 *   pre-activations near 1000 that cancel cost ~1e-4 in any float32 LSTM.  Over a sequence,
 *   errors travel like perturbations of the state.  The bound assumes the sum stays within
 *   float32's range: where a product or a partial sum passes 3.4e38 the fast path's float32
 *   sums overflow (to inf; NaN where two overflows of opposite sign meet), as any float32
 *   engine's do; the reference's float64 sums do not.  The fast path counts denormals
 *   (|v| < 1.2e-38) as zero, as TensorFlow's CPU kernels do (since 0.16.1; the calling
 *   thread's floating-point mode is restored after the call); the reference path keeps them.
 *   Details: README "Accuracy".
 *
 * STATE PACKING ("packed state")
 *   All states cross the API as ONE float array holding, layer after layer,
 *       c_0 [B, H_0], h_0 [B, H_0], c_1 [B, H_1], h_1 [B, H_1], ..., c_{L-1}, h_{L-1}
 *   each row-major.  Its length is slstm_model_state_count(model, B); the offset of one piece
 *   is slstm_model_state_offset().  (Stacks of other layers: per layer and direction, c then
 *   h, or h alone for a GRU; slstm_model_state_piece describes every piece.)  Note the order (c, h): TF's LSTMStateTuple order, the
 *   reverse of PyTorch's (h, c) and Keras' [h, c].
 *
 * WEIGHTS
 *   A model holds per layer W_x [4H, I], W_h [4H, H], b [4H] (gate order i, f, g, o, the same
 *   as PyTorch and cuDNN) and one forget_bias (added to the f gate, kept out of b as in TF).
 *   Weights are imported from, and exported to, framework layouts (slstm_weight_format).
 *
 * ERRORS
 *   Every function returns an slstm_status.  On any status other than SLSTM_OK nothing the
 *   caller passed for output has been written, and slstm_last_error() says which argument
 *   was wrong and why.  No function aborts, throws, prints or leaks.
 *
 * THREADS
 *   A model is immutable once created: any number of threads may use it (and create
 *   sessions from it) at once.  A session is used by one thread at a time: a forward,
 *   step or stream-slot call made while another thread's call on the same session is
 *   running returns SLSTM_ERR_BUSY and does nothing (destroying a session while a call runs
 *   on it is not detected and must not be done).  The last-error text is per thread.
 *   fork(): models and CPU sessions made before a fork work in the child (since 0.16.1): a
 *   session whose worker threads stayed in the parent runs the child's calls on the calling
 *   thread alone, with the same numbers, and is destroyed there as anywhere; sessions made in
 *   the child start workers of their own; the library's process-wide locks are taken
 *   around the fork, so a session created in the child never waits for another thread's.
 *   (A session inside a call at the moment of the fork stays busy in the child; a caller's
 *   thread pool and CUDA sessions are not usable in a child, as CUDA itself is not.)
 *
 * OWNERSHIP
 *   The library allocates and frees its own objects; every *_destroy(NULL) is a no-op.
 *   Weights are copied when a model is created.  Caller buffers are only borrowed during a
 *   call.  A session keeps its model alive: a model handle may be destroyed while sessions
 *   made from it still run.  Sessions allocate their workspace (and, on the CPU fast path,
 *   their worker threads) at creation for a declared maximum batch and time.  A successful
 *   slstm_session_forward, slstm_session_step or stream-slot call (slstm_session_slot_*)
 *   allocates nothing on the CPU backends, so it cannot fail for lack of memory (only a
 *   failing call builds its error message).  On
 *   CUDA the first call of each (batch, time, layout) captures and instantiates a CUDA
 *   graph, which allocates (host and device memory, in the CUDA driver); a session keeps
 *   the graphs of its 8 most recently used shapes, and a shape evicted from them is
 *   captured again when it returns.  Later calls of a kept shape allocate nothing in the
 *   library (checked by tests/alloc_counting.cpp where a GPU is present); with
 *   cuda.graphs=off no call captures anything.
 *
 * ABI
 *   Option/argument structs begin with `struct_size`; fill them with their *_init function
 *   first, then set the fields you need.  Fields are only ever appended, and every appended
 *   field's default is 0.  `slstm_X_init(p)` is a macro that calls slstm_X_init_sized(p,
 *   sizeof(slstm_X)) with the size YOUR header gives the struct, so the library writes
 *   exactly that many bytes: defaults for the fields it knows, zeros for any it does not.
 *   (FFIs call slstm_X_init_sized with their own struct size.)  The library then accepts:
 *     - any struct_size from the struct's first published size up to its own: a binary
 *       built against an older header keeps working with a newer library; the fields its
 *       struct lacks take their defaults;
 *     - a larger struct_size (a binary built against a newer header) when every byte the
 *       library does not know is zero, i.e. the newer fields are left at their defaults;
 *       otherwise SLSTM_ERR_UNSUPPORTED naming the struct;
 *     - nothing below the first published size (SLSTM_ERR_INVALID_ARGUMENT).
 *   The exported functions slstm_X_init(p) (without the macro, as binaries built against
 *   libstacklstm 0.1 call them) write the first published layout and nothing past it.
 * ------------------------------------------------------------------------------------------
 */
#ifndef STACKLSTM_STACKLSTM_H
#define STACKLSTM_STACKLSTM_H

#include <stddef.h>
#include <stdint.h>

#include "stacklstm/stacklstm_export.h"
#include "stacklstm/stacklstm_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every enum of the API is an int on the wire.  C++ sees it with a fixed underlying type, so
 * that any int a caller (or an FFI) passes is a valid value the library can reject cleanly. */
#ifdef __cplusplus
#define SLSTM_ENUM(name) enum name : int
#else
#define SLSTM_ENUM(name) enum name
#endif

/* ---------------------------------------------------------------------------------------- */
/* Status codes                                                                              */
/* ---------------------------------------------------------------------------------------- */

typedef SLSTM_ENUM(slstm_status) {
  SLSTM_OK = 0,
  /** A required pointer is NULL, an enum or flag has an unknown value, a struct_size is too
   *  small, or a value is outside its documented domain (e.g. a size <= 0). */
  SLSTM_ERR_INVALID_ARGUMENT = 1,
  /** Sizes disagree: a weight tensor's shape does not match the architecture, or a buffer's
   *  element count does not match what the call needs. */
  SLSTM_ERR_SHAPE_MISMATCH = 2,
  /** A value is outside the range this object accepts: a sequence length < 0 or > time,
   *  batch or time above the session's declared maximum, a layer index past the last. */
  SLSTM_ERR_OUT_OF_RANGE = 3,
  /** A product of sizes does not fit in size_t / int64_t. */
  SLSTM_ERR_SIZE_OVERFLOW = 4,
  /** Memory (host or device) could not be allocated. */
  SLSTM_ERR_OUT_OF_MEMORY = 5,
  /** The requested backend cannot run on this machine (the message says why: not built,
   *  library not found, no driver, no device). */
  SLSTM_ERR_BACKEND_UNAVAILABLE = 6,
  /** The backend exists but cannot do what was asked. */
  SLSTM_ERR_UNSUPPORTED = 7,
  /** The backend failed while running (e.g. a CUDA error; the message carries its text).
   *  The failed call's outputs and final state (an in-place state too) may be partly
   *  written; the session stays usable for later calls, unless the failure broke the device
   *  itself (CUDA's sticky errors, e.g. cudaErrorIllegalAddress: later calls fail too). */
  SLSTM_ERR_BACKEND_FAILURE = 8,
  /** Input buffers and output buffers overlap in a way the call does not allow. */
  SLSTM_ERR_ALIASING = 9,
  /** A bug in the library; please report it with the message. */
  SLSTM_ERR_INTERNAL = 10,
  /** The session is running a call on another thread.  A session serves one thread at a
   *  time (see THREADS); a call that finds it busy does nothing and writes nothing. */
  SLSTM_ERR_BUSY = 11,
  /** No stream slot is free: every one of the session's max_slots slots is open, or the
   *  session was created with max_slots 0 (see "Stream slots"; since 0.3). */
  SLSTM_ERR_SLOTS_FULL = 12
} slstm_status;

/** A static, never-NULL English text for a status ("unknown status" for unknown values). */
SLSTM_API const char* slstm_status_string(slstm_status status);

/** The message of the last failed call on THIS thread ("" if none failed yet).  The pointer
 *  stays valid until the next library call on this thread.  Successful calls do not clear it. */
SLSTM_API const char* slstm_last_error(void);

/** Copies the last-error message (NUL-terminated, truncated to fit) into buf[0..size) and
 *  returns the length of the full message, excluding the NUL (snprintf-style).  buf may be
 *  NULL when size is 0.  Meant for FFIs that cannot hold on to a borrowed pointer. */
SLSTM_API size_t slstm_last_error_copy(char* buf, size_t size);

/* ---------------------------------------------------------------------------------------- */
/* Version                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/** SLSTM_VERSION_NUMBER of the library actually loaded (major*10000 + minor*100 + patch). */
SLSTM_API uint32_t slstm_version_number(void);
/** "major.minor.patch" of the library actually loaded. */
SLSTM_API const char* slstm_version_string(void);

/* ---------------------------------------------------------------------------------------- */
/* Backends                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef SLSTM_ENUM(slstm_backend) {
  /** The CPU backend: always available. */
  SLSTM_BACKEND_CPU = 0,
  /** The CUDA backend: needs the CUDA module, an NVIDIA driver and a device. */
  SLSTM_BACKEND_CUDA = 1
} slstm_backend;

/** SLSTM_OK when `backend` can run on this machine; SLSTM_ERR_BACKEND_UNAVAILABLE with the
 *  reason in slstm_last_error() when it cannot; SLSTM_ERR_INVALID_ARGUMENT for an unknown
 *  value.  Has no other side effect (it creates no session, allocates no device memory). */
SLSTM_API slstm_status slstm_backend_available(slstm_backend backend);

/* ---------------------------------------------------------------------------------------- */
/* Tensors passed in and out                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define SLSTM_MAX_DIMS 4

/** A borrowed, dense, row-major float32 tensor to read.  `ndim` in 1..SLSTM_MAX_DIMS; only
 *  shape[0..ndim) is read.  Each format says which shapes it expects. */
typedef struct slstm_tensor {
  const float* data;
  int32_t ndim;
  int64_t shape[SLSTM_MAX_DIMS];
} slstm_tensor;

/** The same, for a buffer the library writes. */
typedef struct slstm_tensor_out {
  float* data;
  int32_t ndim;
  int64_t shape[SLSTM_MAX_DIMS];
} slstm_tensor_out;

/* ---------------------------------------------------------------------------------------- */
/* Models                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct slstm_model slstm_model;

/** Weight layouts.  Tensors are given layer by layer, and within a layer direction by
 *  direction (a bidirectional layer: the forward set, then the reverse set; ONNX holds both
 *  directions in each tensor), in the order listed.  H is the layer's hidden size, I its
 *  input width (D for layer 0, the previous layer's output width after), R the width of the
 *  recurrent h (proj_size P with a projection, else H).  slstm_format_tensors lists the
 *  names, shapes, layer and direction of every tensor a format takes for any stack; what a
 *  format cannot express (table in docs/interop.md) is refused by slstm_format_tensors,
 *  slstm_model_create and slstm_model_export with SLSTM_ERR_UNSUPPORTED naming
 *  config->layers[l].<field> and the format.  A forward BasicLSTMCell stack (hidden_sizes)
 *  takes tensors-per-layer (slstm_format_tensors_per_layer) tensors per layer in every format.
 *
 *  SLSTM_FORMAT_CANONICAL: LSTM `W_x` [4H, I], `W_h` [4H, R], `b` [4H] (gates i, f, g, o),
 *      then `w_peep` [3, H] (rows w_i, w_f, w_o) with peepholes and `W_proj` [P, H] with a
 *      projection; GRU `W_x` [3H, I], `W_h` [3H, H], `b_x` [3H], `b_h` [3H] (gates r, z, n).
 *      Every stack.  The model's forget_bias is config->forget_bias.
 *  SLSTM_FORMAT_TF: LSTMCell / BasicLSTMCell `kernel` [I + R, 4H] (first I rows multiply x,
 *      last R rows multiply h) and `bias` [4H], column blocks i, j, f, o; with peepholes
 *      `w_i_diag`, `w_f_diag`, `w_o_diag` [H] (in this order; TF creates w_f_diag first: go
 *      by name); with a projection `projection/kernel` [H, P] (TF computes m @ kernel, so
 *      W_proj is its transpose).  cell_clip and proj_clip are LSTMCell's arguments.
 *      GRUCell (gru_reset_after 0 only): `gates/kernel` [I + H, 2H] (column blocks r, u = z),
 *      `gates/bias` [2H], `candidate/kernel` [I + H, H], `candidate/bias` [H]; import sets
 *      b_h = 0, export writes b_x + b_h (exact when b_h = 0).  A bidirectional layer's names
 *      start with "fw/" and "bw/".  The model's forget_bias is config->forget_bias (TF's
 *      default is 1.0).
 *  SLSTM_FORMAT_PYTORCH: nn.LSTM `weight_ih_l{k}` [4H, I], `weight_hh_l{k}` [4H, R],
 *      `bias_ih_l{k}` [4H], `bias_hh_l{k}` [4H], then `weight_hr_l{k}` [P, H] with proj_size;
 *      gates i, f, g, o.  nn.GRU (gru_reset_after 1 only) `weight_ih` [3H, I], `weight_hh`
 *      [3H, H], `bias_ih` = b_x [3H], `bias_hh` = b_h [3H]; gates r, z, n.  A bidirectional
 *      layer's reverse set is named `..._reverse`.  No peepholes, cell_clip, proj_clip or
 *      reverse-only layer.  PyTorch has no forget_bias, so a model imported from it has
 *      forget_bias 0 and config->forget_bias is ignored.  On export an LSTM's bias_ih carries
 *      the whole bias (forget_bias folded into its f block, once) and bias_hh is written as
 *      zeros. */
typedef SLSTM_ENUM(slstm_weight_format) {
  SLSTM_FORMAT_CANONICAL = 0,
  SLSTM_FORMAT_TF = 1,
  SLSTM_FORMAT_PYTORCH = 2,
  /** Keras `LSTM` (3 per layer): `kernel` [I, 4H], `recurrent_kernel` [H, 4H], `bias` [4H];
   *  column blocks i, f, c, o (c = g).  Keras `GRU`: `kernel` [I, 3H], `recurrent_kernel`
   *  [H, 3H] (column blocks z, r, h), `bias` [2, 3H] = [b_x; b_h] when gru_reset_after is 1,
   *  `bias` [3H] when it is 0 (import sets b_h = 0, export writes b_x + b_h).  A
   *  bidirectional layer (Keras `Bidirectional`): the forward layer's tensors, then the
   *  backward layer's, named "forward/..." and "backward/...".  No peepholes, clip or
   *  projection.  Keras has no forget_bias (unit_forget_bias only initialises the stored
   *  bias): imported models get forget_bias 0, config->forget_bias is ignored; on export the
   *  f block of an LSTM's `bias` carries forget_bias.  Keras' state order is [h, c] (packed
   *  states here are (c, h)); old Keras defaulted to hard_sigmoid, which this library does
   *  not compute. */
  SLSTM_FORMAT_KERAS = 3,
  /** Keras `CuDNNLSTM` v1 (3 per layer): `kernel` [I, 4H], `recurrent_kernel` [H, 4H],
   *  `bias` [8H].  Each column block q of a kernel holds the bytes of cuDNN's row-major
   *  matrix for gate q (i, f, c, o): the block kernel[:, qH:(q+1)H] read in C order is
   *  W_q [H, I] (so recurrent blocks are W_q itself, not W_q^T); b = bias[:4H] + bias[4H:].
   *  Keras `CuDNNGRU` (gru_reset_after 1 only): `kernel` [I, 3H], `recurrent_kernel` [H, 3H]
   *  with column blocks z, r, h in the same byte order, `bias` [6H] = b_x then b_h (each z,
   *  r, h).  Bidirectional as for SLSTM_FORMAT_KERAS.  No peepholes, clip or projection.
   *  forget_bias as for SLSTM_FORMAT_KERAS; on export the first half of an LSTM's `bias`
   *  carries the whole bias (forget_bias folded once) and the second half is zeros. */
  SLSTM_FORMAT_KERAS_CUDNN = 4,
  /** ONNX `LSTM` / `GRU` operators, one node per layer; nd = 2 for a bidirectional layer
   *  (forward, then reverse in dimension 0), else 1 (a reverse layer is a node with
   *  direction="reverse").  LSTM: `W` [nd, 4H, I], `R` [nd, 4H, H], `B` [nd, 8H] (Wb then
   *  Rb), row blocks i, o, f, c, b = Wb + Rb, and with peepholes `P` [nd, 3H] (order i, o,
   *  f).  GRU: `W` [nd, 3H, I], `R` [nd, 3H, H], `B` [nd, 6H], row blocks z, r, h, Wb = b_x
   *  and Rb = b_h; linear_before_reset is gru_reset_after.  No cell_clip (ONNX's `clip`
   *  clips the gates' pre-activations: another function) and no projection.  forget_bias as
   *  for SLSTM_FORMAT_KERAS; on export an LSTM's Wb carries the whole bias and Rb is zeros.
   *  ONNX nodes with clip, input_forget or other activations compute something else: check
   *  them with slstm_onnx_check_node. */
  SLSTM_FORMAT_ONNX = 5,
  /** cuDNN canonical parameters (4 per layer): LSTM `W` [4H, I] = linear layers 0-3
   *  stacked, `R` [4H, H] = linear layers 4-7, `bW` [4H], `bR` [4H]; gates i, f, g, o;
   *  b = bW + bR.  GRU (gru_reset_after 1 only): `W` [3H, I] = linear layers 0-2 (r, z, h),
   *  `R` [3H, H] = 3-5, `bW` = b_x, `bR` = b_h.  A bidirectional layer's reverse set is named
   *  `..._reverse`.  No peepholes, clip, projection or reverse-only layer.  (Also TF
   *  CudnnLSTM's canonical weights.)  forget_bias as for SLSTM_FORMAT_KERAS; on export an
   *  LSTM's bW carries the whole bias and bR is zeros. */
  SLSTM_FORMAT_CUDNN = 6
} slstm_weight_format;

/** Number of tensors per layer of a format (3, 2, 4 as above); SLSTM_ERR_INVALID_ARGUMENT for
 *  an unknown format. */
SLSTM_API slstm_status slstm_format_tensors_per_layer(slstm_weight_format format,
                                                      int32_t* out_count);

/** Limits of every model, checked when a model is created and when a model file is
 *  loaded (so that whatever can be created can be saved and loaded again): at most
 *  SLSTM_MAX_LAYERS layers, input and hidden sizes of at most SLSTM_MAX_EXTENT. */
#define SLSTM_MAX_LAYERS 100000
#define SLSTM_MAX_EXTENT ((int64_t)1 << 40)

/* ---------------------------------------------------------------------------------------- */
/* Layers (since 0.4): cell kinds, directions, residual connections (docs/cells.md)          */
/* ---------------------------------------------------------------------------------------- */

/** A layer's cell.  The equations, gate orders and every framework's variant: docs/cells.md. */
typedef SLSTM_ENUM(slstm_cell) {
  /** TF LSTMCell (BasicLSTMCell without the options): gates i, f, g, o; state (c, h). */
  SLSTM_CELL_LSTM = 0,
  /** GRU: gates r, z, n (PyTorch's order); state h.  See slstm_layer_config.gru_reset_after. */
  SLSTM_CELL_GRU = 1
} slstm_cell;

/** Which way a layer reads the sequence. */
typedef SLSTM_ENUM(slstm_direction) {
  SLSTM_DIRECTION_FORWARD = 0,
  /** Each row's valid part reversed (t = len_b - 1 .. 0), outputs at the original positions. */
  SLSTM_DIRECTION_REVERSE = 1,
  /** A forward and a reverse cell, own weights and states; output = concat(forward, reverse). */
  SLSTM_DIRECTION_BIDIRECTIONAL = 2
} slstm_direction;

/** One layer of a stack.  Versioned like every option struct (see "ABI"): initialise with
 *  slstm_layer_config_init.  A field that does not apply to the cell must keep its default
 *  (a GRU with peepholes is refused, naming the layer and field). */
typedef struct slstm_layer_config {
  uint32_t struct_size;       /**< set by slstm_layer_config_init */
  slstm_cell cell;            /**< init: SLSTM_CELL_LSTM */
  int64_t hidden_size;        /**< H: 1 <= H <= SLSTM_MAX_EXTENT (init: 0, must be set) */
  slstm_direction direction;  /**< init: SLSTM_DIRECTION_FORWARD */
  int32_t residual;           /**< 0 or 1: TF ResidualWrapper, output = cell output + input
                                   (widths must match) */
  int32_t peepholes;          /**< LSTM: 0 or 1, TF's use_peepholes (w_i, w_f, w_o diagonals) */
  float cell_clip;            /**< LSTM: 0 = none, else > 0: c clipped to [-cell_clip, cell_clip] */
  int64_t proj_size;          /**< LSTM: 0 = none, else 1..H: h = W_proj (o * tanh(c)), width P */
  float proj_clip;            /**< LSTM with a projection: 0 = none, else > 0 */
  int32_t gru_reset_after;    /**< GRU: 0 = reset before the recurrent matmul (TF GRUCell, ONNX
                                   linear_before_reset 0), 1 = after (PyTorch, Keras
                                   reset_after, ONNX linear_before_reset 1, cuDNN); init 0 */
} slstm_layer_config;

/** Fills the caller's `struct_size` bytes at *layer with the defaults above. */
SLSTM_API void slstm_layer_config_init_sized(slstm_layer_config* layer, size_t struct_size);
#define slstm_layer_config_init(layer) \
  slstm_layer_config_init_sized((layer), sizeof(slstm_layer_config))

/** The architecture of a model. */
typedef struct slstm_model_config {
  uint32_t struct_size;         /**< set by slstm_model_config_init */
  int64_t input_size;           /**< 1 <= D <= SLSTM_MAX_EXTENT */
  int32_t num_layers;           /**< 1 <= L <= SLSTM_MAX_LAYERS */
  const int64_t* hidden_sizes;  /**< L values in [1, SLSTM_MAX_EXTENT]; borrowed during the call.
                                     A stack of forward BasicLSTMCell layers.  Must be NULL when
                                     `layers` is given. */
  float forget_bias;            /**< finite; init sets 1.0 (TF's default).  LSTM layers only. */
  /** Since 0.4: L layer descriptions (borrowed during the call), for any stack of
   *  docs/cells.md; NULL (init): `hidden_sizes` describes the stack.  Layer l's input width is
   *  layer l-1's output width (proj_size or hidden_size, times 2 when bidirectional).  Each
   *  element initialised by slstm_layer_config_init: the array's stride is their (common)
   *  struct_size, so callers built against any header version pass their own arrays. */
  const slstm_layer_config* layers;
} slstm_model_config;

/** Fills the caller's `struct_size` bytes at *config with defaults: input_size 0,
 *  num_layers 0, hidden_sizes NULL (all three must be set), forget_bias 1.0 (see "ABI"
 *  above).  Does nothing when config is NULL or struct_size < 4.  Call it through the
 *  slstm_model_config_init(config) macro. */
SLSTM_API void slstm_model_config_init_sized(slstm_model_config* config, size_t struct_size);
/** The first published layout's init (for binaries built against libstacklstm 0.1). */
SLSTM_API void(slstm_model_config_init)(slstm_model_config* config);
#define slstm_model_config_init(config) \
  slstm_model_config_init_sized((config), sizeof(slstm_model_config))
/** The same defaults as a static initializer: `slstm_model_config c = SLSTM_MODEL_CONFIG_INIT;` */
#define SLSTM_MODEL_CONFIG_INIT \
  { (uint32_t)sizeof(slstm_model_config), 0, 0, NULL, 1.0f, NULL }
/** The same for a layer: `slstm_layer_config l = SLSTM_LAYER_CONFIG_INIT;` then set hidden_size. */
#define SLSTM_LAYER_CONFIG_INIT \
  { (uint32_t)sizeof(slstm_layer_config), SLSTM_CELL_LSTM, 0, SLSTM_DIRECTION_FORWARD, 0, 0, \
    0.0f, 0, 0.0f, 0 }

/** Creates a model from weights in `format`.  `tensors` holds the tensors
 *  slstm_format_tensors lists for `config` (for a hidden_sizes stack: num_layers *
 *  tensors-per-layer), layer by layer (see slstm_weight_format); every shape is checked
 *  against the architecture and every value is copied, so the caller may free its arrays
 *  afterwards.  Returns SLSTM_ERR_INVALID_ARGUMENT (NULL pointers, sizes < 1, non-finite
 *  forget_bias, unknown format, a non-finite weight or a bias sum that overflows float32,
 *  naming the tensor), SLSTM_ERR_SHAPE_MISMATCH (wrong num_tensors or a tensor's shape),
 *  SLSTM_ERR_UNSUPPORTED (a layer the format cannot express, naming config->layers[l] and
 *  the field), SLSTM_ERR_SIZE_OVERFLOW, SLSTM_ERR_OUT_OF_MEMORY.  *out_model is written only
 *  on success. */
SLSTM_API slstm_status slstm_model_create(const slstm_model_config* config,
                                          slstm_weight_format format,
                                          const slstm_tensor* tensors, size_t num_tensors,
                                          slstm_model** out_model);

/** Creates a model with seeded pseudo-random weights (for demos and tests): every weight
 *  and bias uniform in [-scale, scale]; scale = 0 picks 1/sqrt(H_l) per layer (PyTorch's
 *  default).  The same seed gives the same weights on every platform. */
SLSTM_API slstm_status slstm_model_create_random(const slstm_model_config* config,
                                                 uint64_t seed, float scale,
                                                 slstm_model** out_model);

/** Releases the caller's reference.  Sessions made from the model keep it alive.  NULL: no-op. */
SLSTM_API void slstm_model_destroy(slstm_model* model);

/** Writes the model's weights in `format` into `tensors` (same count and order as for
 *  slstm_model_create; every shape must match exactly).  Nothing is written unless all
 *  checks pass: SLSTM_ERR_UNSUPPORTED for a layer the format cannot express,
 *  SLSTM_ERR_ALIASING when two tensors overlap (since 0.16.2; tensors may lie end to end in
 *  one buffer), SLSTM_ERR_OUT_OF_RANGE when a value the format folds (forget_bias into an
 *  LSTM's f bias, a GRU's b_h into b_x for TF and reset-before Keras) overflows float32.  Export followed by
 *  import gives the model back bit for bit in every format that expresses it, except that
 *  formats without a forget_bias fold it into the bias (the imported model has forget_bias 0
 *  and computes the same function up to one rounding) and formats without a GRU b_h fold it
 *  into b_x (b_h = 0 after import; the same function up to one rounding).  TF: the
 *  model's forget_bias is not part of the tensors; read it with slstm_model_forget_bias. */
SLSTM_API slstm_status slstm_model_export(const slstm_model* model, slstm_weight_format format,
                                          const slstm_tensor_out* tensors, size_t num_tensors);

SLSTM_API slstm_status slstm_model_num_layers(const slstm_model* model, int32_t* out);
SLSTM_API slstm_status slstm_model_input_size(const slstm_model* model, int64_t* out);
/** Hidden size of `layer` (0-based); SLSTM_ERR_OUT_OF_RANGE past the last layer. */
SLSTM_API slstm_status slstm_model_hidden_size(const slstm_model* model, int32_t layer,
                                               int64_t* out);
SLSTM_API slstm_status slstm_model_forget_bias(const slstm_model* model, float* out);

/** Number of floats in a packed state for `batch` rows: batch times the sum over layers (and
 *  directions) of the state's widths: 2 * H_l for a BasicLSTMCell layer, H + P with a
 *  projection, H for a GRU (docs/cells.md, "The packed state"). */
SLSTM_API slstm_status slstm_model_state_count(const slstm_model* model, int64_t batch,
                                               size_t* out);

typedef SLSTM_ENUM(slstm_state_part) { SLSTM_STATE_C = 0, SLSTM_STATE_H = 1 } slstm_state_part;

/** Offset, in floats, of layer `layer`'s c or h block ([batch, H_layer]) in a packed state. */
SLSTM_API slstm_status slstm_model_state_offset(const slstm_model* model, int64_t batch,
                                                int32_t layer, slstm_state_part part,
                                                size_t* out);

/** Layer `layer`'s description, as given at creation (a model made from hidden_sizes reports
 *  forward LSTM layers without options), into the caller's `struct_size` bytes at *out (call
 *  slstm_layer_config_init on it first).  SLSTM_ERR_OUT_OF_RANGE past the last layer. */
SLSTM_API slstm_status slstm_model_layer(const slstm_model* model, int32_t layer,
                                         slstm_layer_config* out);
/** Width of the stack's output (the last layer's output width). */
SLSTM_API slstm_status slstm_model_output_size(const slstm_model* model, int64_t* out);

/** One piece of a packed state (docs/cells.md, "The packed state"). */
typedef struct slstm_state_piece {
  uint32_t struct_size;   /**< set by the caller: sizeof(slstm_state_piece) */
  int32_t layer;          /**< the layer it belongs to */
  int32_t direction;      /**< 0: forward (or the layer's only direction), 1: reverse half of a
                               bidirectional layer */
  slstm_state_part part;  /**< SLSTM_STATE_C or SLSTM_STATE_H (a GRU's state is h only) */
  int64_t width;          /**< floats per batch row */
  size_t offset;          /**< in floats, in a packed state of `batch` rows */
  size_t count;           /**< batch * width */
} slstm_state_piece;

/** Number of pieces of a packed state (sum over layers of parts x directions). */
SLSTM_API slstm_status slstm_model_state_pieces(const slstm_model* model, int64_t* out);
/** Piece `index` (0-based, in packed order) of a packed state of `batch` rows.
 *  SLSTM_ERR_OUT_OF_RANGE for an index past the last. */
SLSTM_API slstm_status slstm_model_state_piece(const slstm_model* model, int64_t batch,
                                               int64_t index, slstm_state_piece* out);

/** One weight tensor a format expects (see slstm_format_tensors). */
typedef struct slstm_tensor_info {
  uint32_t struct_size;             /**< set by the caller: sizeof(slstm_tensor_info) */
  int32_t layer;                    /**< the layer it belongs to */
  int32_t direction;                /**< 0 forward/only, 1 reverse half; -1: both (ONNX) */
  int32_t ndim;
  int64_t shape[SLSTM_MAX_DIMS];
  char name[48];                    /**< the format's own name, NUL-terminated, e.g. "weight_hr" */
} slstm_tensor_info;

/** The tensors `format` takes (and gives) for the architecture `config`, in API order: their
 *  number into *out_count, and, when `infos` is not NULL, the first min(capacity, count)
 *  descriptions into infos (each infos[k].struct_size must be set to sizeof(slstm_tensor_info):
 *  it is the array's stride).  A format that cannot
 *  express a layer (e.g. peepholes in SLSTM_FORMAT_PYTORCH) is refused with
 *  SLSTM_ERR_UNSUPPORTED naming the layer and field, as slstm_model_create refuses it. */
SLSTM_API slstm_status slstm_format_tensors(const slstm_model_config* config,
                                            slstm_weight_format format,
                                            slstm_tensor_info* infos, size_t capacity,
                                            size_t* out_count);

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct slstm_session slstm_session;

/** Which implementation the CPU backend runs. */
typedef SLSTM_ENUM(slstm_cpu_path) {
  /** The fast path when this build has one, else the reference. */
  SLSTM_CPU_PATH_AUTO = 0,
  /** Plain loops accumulating in double: the oracle the tests compare everything with. */
  SLSTM_CPU_PATH_REFERENCE = 1,
  /** The library's own vectorised GEMMs and fused gate loops (it links no BLAS), threaded;
   *  SLSTM_ERR_BACKEND_UNAVAILABLE if not built in. */
  SLSTM_CPU_PATH_FAST = 2
} slstm_cpu_path;

/** The arithmetic of a session's matrix products (since 0.5; docs/precision.md).  In every
 *  precision the bias, the cell state c, the gate math and the returned outputs and states
 *  are float32; what changes is what enters the products W_x x and W_h h (and W_proj m). */
typedef SLSTM_ENUM(slstm_precision) {
  /** FP32, or TF32 on the CUDA backend where options->allow_tf32 is 1 (the behaviour before
   *  0.5; the CPU backend ignores allow_tf32 here and runs FP32, as before 0.5 and again
   *  since 0.16.2: 0.5-0.16.1 refused such a session). */
  SLSTM_PRECISION_DEFAULT = 0,
  /** Strict float32 products and sums. */
  SLSTM_PRECISION_FP32 = 1,
  /** CUDA tensor cores' TF32 (same as allow_tf32 = 1); the CPU backend refuses it. */
  SLSTM_PRECISION_TF32 = 2,
  /** Weights and the products' activation operands (x, h, m) rounded to bfloat16
   *  (round to nearest even), products exact, sums in float32 (the CPU reference: double).
   *  CPU backend: every path, every stack.  CUDA backend: on its generic path only (keyed
   *  setting cuda.generic=on, since 0.7), else SLSTM_ERR_UNSUPPORTED. */
  SLSTM_PRECISION_BF16 = 3,
  /** As BF16 with IEEE binary16 (values beyond +-65504 become +-inf: a model whose weights
   *  exceed it is refused at session creation). */
  SLSTM_PRECISION_FP16 = 4
} slstm_precision;

/** One task of a call on a thread pool of the caller's (slstm_thread_pool). */
typedef void (*slstm_pool_task)(void* task_arg, int32_t index);

/** A thread pool of the caller's that a CPU session's calls run on instead of workers of the
 *  session's own (since 0.14; slstm_session_options.thread_pool): an application that has a
 *  pool (a server's, a framework's) lends it, so that its sessions and its other work share
 *  one set of threads rather than oversubscribe the CPUs.  The shape of oneDNN's
 *  threadpool_iface, in C.
 *
 *  A call hands the pool n tasks (2 <= n <= num_threads) and runs on those of them that have
 *  started within the keyed setting cpu.pool_join_us (50 microseconds) of the first: its
 *  team.  A task never waits for a task that has not started, and tasks that start after the
 *  team is formed return at once; so a busy pool, or one that runs its tasks one after
 *  another, makes a call slower (down to one thread) but never deadlocks it, and the numbers
 *  are the same bits whatever the team (the CPU paths' results do not depend on how many
 *  threads a call uses).  A call that would run on one thread anyway does not call the pool.
 *  Fill every field; there is no _init function. */
typedef struct slstm_thread_pool {
  uint32_t struct_size; /**< sizeof(slstm_thread_pool) */
  /** How many tasks the pool runs at once, >= 1: its threads (counting the calling thread if
   *  parallel_for runs tasks on it).  A call hands it at most this many. */
  int32_t num_threads;
  /** Runs task(task_arg, i) once for each i in [0, n), on the pool's threads or the calling
   *  thread, in any order and with any concurrency (one at a time included), and returns
   *  when all n have returned.  It is called on the thread that called the library, one call
   *  at a time per session (sessions may call it concurrently: a pool lent to several
   *  sessions must take that).  Tasks do not throw, block on locks or call the pool. */
  void (*parallel_for)(void* pool_arg, slstm_pool_task task, void* task_arg, int32_t n);
  /** Handed to parallel_for unchanged. */
  void* pool_arg;
} slstm_thread_pool;

/** Session options.  Every field is checked whichever backend the session gets: a field a
 *  backend ignores ("Ignored by CUDA", "Ignored by the CPU backend") changes nothing it
 *  computes, but a value outside the field's range is SLSTM_ERR_INVALID_ARGUMENT all the same
 *  (e.g. device = -1 on a CPU session). */
typedef struct slstm_session_options {
  uint32_t struct_size;   /**< set by slstm_session_options_init */
  slstm_backend backend;  /**< init: SLSTM_BACKEND_CPU */
  int64_t max_batch;      /**< largest batch any call will use, >= 1 (init: 0, must be set) */
  int64_t max_time;       /**< largest time any call will use, >= 1 (init: 0, must be set) */
  /** CPU backend: which implementation (init: SLSTM_CPU_PATH_AUTO).  Ignored by CUDA. */
  slstm_cpu_path cpu_path;
  /** CPU backend: worker threads, >= 0; 0 = one per CPU the creating thread may run on
   *  (its affinity mask: taskset, cpusets), at most its cgroup's CPU limit rounded up
   *  (docker --cpus, a Kubernetes CPU limit; since 0.10) (init: 0).  Threads are created
   *  with the session, never per call.  With thread_pool (since 0.14): the most tasks a
   *  call hands the caller's pool, 0 = its num_threads.  Ignored by CUDA. */
  int32_t num_threads;
  /** CUDA backend: device index, >= 0 (init: 0).  Ignored by the CPU backend. */
  int32_t device;
  /** CUDA backend: 1 allows TF32 tensor-core math (error ~1e-3), 0 keeps strict FP32
   *  (init: 0).  Ignored by the CPU backend (under SLSTM_PRECISION_DEFAULT: see there). */
  int32_t allow_tf32;
  /** CUDA backend: a cudaStream_t owned by the caller that every call of the session runs
   *  on, or NULL for a stream of the session's own (init: NULL).  Ignored by the CPU.  A call
   *  made while this stream is being captured into a CUDA graph returns
   *  SLSTM_ERR_UNSUPPORTED and enqueues nothing (since 0.11). */
  void* cuda_stream;
  /** Keyed backend settings (since 0.2), NULL or "" for the defaults: "key=value" pairs
   *  separated by ';', ',' or spaces, at most 4096 bytes, e.g. "cpu.kernel=avx2;cuda.graphs=off".
   *  Keys of every backend are validated whichever backend the session uses; an unknown key,
   *  a repeated key or a bad value is SLSTM_ERR_INVALID_ARGUMENT naming it.  Borrowed during
   *  slstm_session_create only.  The keys:
   *    cpu.kernel  = auto | avx512 | avx2 | portable   the fast path's kernels (auto: the
   *                  CPU's best; one the CPU lacks is SLSTM_ERR_UNSUPPORTED)
   *    cpu.pool    = session | shared   the fast path's workers: the session's own
   *                  (session), or one process-wide pool that every session asking for it
   *                  shares (shared, since 0.3): N such sessions start one pool, not N; one
   *                  call runs on it at a time and a call that finds it taken runs on its
   *                  calling thread alone, never waiting (same numbers either way).
   *                  Every fast-path model (the cells beyond BasicLSTMCell since 0.14.1).
   *                  With options->thread_pool (since 0.14) the caller's pool serves
   *                  instead, and shared is refused
   *    cpu.calibration = measured | fixed   (since 0.8; measured) what the fast path's
   *                  work sharing (how many workers a call wakes, batch or unit split) is
   *                  derived from: this machine's barrier cost and kernel rates, measured
   *                  once per process (~3 ms at the first session), or the built-in
   *                  constants.  Never changes a result, only how long it takes
   *    cpu.wh16    = on | off   (since 0.9; on) a BF16 or FP16 session of the fast path keeps
   *                  the recurrent weights W_h (on AVX2 since 0.15.3 W_x too; on the generic
   *                  path of docs/cells.md: every weight matrix) as 16-bit codes where its
   *                  kernels read them (AVX2 with F16C, AVX-512), half the bytes a step
   *                  streams; off: as float32 holding
   *                  the same rounded values.  Same numbers, bit for bit
   *    cpu.amx     = auto | on | off   (since 0.15; auto) a BF16 session of a BasicLSTMCell
   *                  stack on the fast path runs its recurrent products on AMX's BF16
   *                  tiles (Xeon Sapphire Rapids and later) where the CPU has AMX-BF16 and
   *                  the OS grants the process its tile state (auto); on: must, else
   *                  SLSTM_ERR_UNSUPPORTED naming what is missing (a BF16 session, the
   *                  AVX-512 kernels, cpu.wh16=on, AMX-BF16); off: the AVX-512 kernels'
   *                  FMAs.  BF16's numbers either way (docs/precision.md), summed in the
   *                  tiles' own order: not the FMA kernels' bits, but the same bits
   *                  whatever the batch, split, threads or chunks.  Other stacks (GRU,
   *                  LSTMP, bidirectional, ...) take it for every GEMM (with on since
   *                  0.15.2, with auto since 0.16); the reference path never.  The plan's
   *                  "amx" says which and why.
   *                  Linux: the first such session asks the kernel for the tile state
   *                  (arch_prctl); from then on the process's signal frames are ~11 KiB
   *                  larger and sigaltstack() refuses alternate stacks too small for them:
   *                  a process that installs small ones should use cpu.amx=off
   *    cpu.team    = auto | off | always   (since 0.9; auto) the fast path of stacks beyond
   *                  BasicLSTMCell (docs/cells.md): a call of few rows runs as a team,
   *                  every worker on every row with each GEMM cut by gate rows (a stack
   *                  with a bidirectional layer: one team per direction) (auto: fewer rows
   *                  than threads where a step streams >= 768 KiB of weights, fewer than 3
   *                  per thread from 1.5 MiB, one worker per 384 KiB; always: every call of
   *                  fewer than 3 rows per thread; off: never, the rows or directions
   *                  split).  Same numbers, bit for bit
   *    cpu.spin_us = <0..1000000>   (since 0.13; 20000) how long, in microseconds, the
   *                  CPU workers spin after a call, ready for the next (frames of a stream,
   *                  back-to-back calls), before they sleep; 0: at once.  A call that finds
   *                  them all asleep runs on the calling thread alone when waking them would
   *                  cost it more than they would take off (and wakes them to spin for the
   *                  next call; the plan's calls_alone_asleep counts such calls).  Never
   *                  changes a result, only how long a call takes and how long a core stays
   *                  busy after it
   *    cpu.pool_join_us = <0..1000000>   (since 0.14; 50) with a thread pool of the
   *                  caller's (options->thread_pool): how long, in microseconds, a call's
   *                  first task waits for the others to start; the call runs on those that
   *                  have started by then (its team).  Never changes a result
   *    cpu.workspace_mib = auto | <1..1048576>   (since 0.20; auto) the most MiB the
   *                  fast path of BasicLSTMCell stacks takes for a call's per-step
   *                  workspaces (every row's input products, the inner layers' outputs),
   *                  sized at creation for max_batch rows: a call of more rows than they
   *                  hold runs in windows of equal numbers of steps, each from the state
   *                  the one before left (batch-major rows copied through staging buffers
   *                  of the window's size); every window shares its work among the
   *                  workers as the whole call would.  At least one step's worth.  auto:
   *                  twice a core's L2 for each of the session's workers, at least 1 MiB,
   *                  and at least 16 MiB on AMX tiles (since 0.21; 16 MiB in 0.20: a
   *                  window's workspaces stay in cache, long calls of small layers run
   *                  faster), or 256 MiB where a layer's W_x exceeds twice a core's L2
   *                  (fewer passes over it).  Never changes a result; the plan's
   *                  "window" says how many steps, the plan's host_memory_bytes what the
   *                  session holds
   *    cuda.graphs = on | off       capture each call shape into a CUDA graph (on)
   *    cuda.chunk  = auto | <steps> steps per wavefront chunk across layers (auto)
   *    cuda.fused  = auto | never | always   the fused recurrent step: where it was measured
   *                  faster, never, or wherever it fits (auto)
   *    cuda.slots  = off | on       stream slots on a CUDA session (since 0.3; off): their
   *                  states in device memory, gathered and scattered on the device.  Not yet
   *                  run on a GPU, hence off: with off, max_slots > 0 on CUDA is refused
   *    cuda.persistent = off | on | layers   (since 0.6; off) the persistent recurrent
   *                  kernel for batches <= 16, weights in shared memory.  layers: one
   *                  launch runs a layer's steps (per wavefront chunk), the fused step's
   *                  numbers bit for bit, on the layers whose CTAs the device holds at
   *                  once.  on: besides, a stack of 2 to 8 layers that the device holds
   *                  whole runs as ONE launch per call, a wavefront across its layers,
   *                  each layer above the first projecting its input itself (the
   *                  reference's numbers within the FP32 tolerance).  Not yet run on a
   *                  GPU, hence off.  Should a wait between its CTAs last longer than
   *                  cuda.persistent_timeout_us, the session turns it off for good and runs
   *                  the call again on its fallback with the same numbers (the fused step;
   *                  for a whole stack, the same kernel one step and layer per launch); a
   *                  call that cannot be run again (state updated in place, stream slots,
   *                  or already returned: device buffers on the caller's stream, reported
   *                  by the next call) fails with SLSTM_ERR_BACKEND_FAILURE saying so
   *    cuda.persistent_timeout_us = <0..999999999>   bound in microseconds of one wait
   *                  between the persistent kernel's CTAs (1000000); 0 makes every wait
   *                  give up at once (to test the fallback; a launch that has no wait to
   *                  make, one step of one layer, completes)
   *    cuda.tune   = off | on       (since 0.6; off) the plan tuned on the device: the first
   *                  call of each batch <= 32 times, per layer, the step paths the plan
   *                  allows (cuBLAS + step kernel, fused step, persistent kernel) over
   *                  min(T, 16) steps and keeps the fastest for that batch (the built-in
   *                  choice unless beaten by more than 2 %); that first call synchronises
   *                  and takes longer; numbers stay within the precision's tolerance.  Not
   *                  yet run on a GPU, hence off
   *    cuda.tune_file = <path>      (since 0.6) where the tuned paths are kept across
   *                  sessions and processes, per device, precision, layer shape, batch
   *                  and (since 0.12) the set of paths timed, so that a choice made among
   *                  fewer paths is not taken by a session that allows more
   *                  (a text file; read at creation, rewritten whole when a call learns
   *                  something).  A file that is not a tuning cache is neither read nor
   *                  overwritten; why, like a failure to write, shows in the plan
   *                  (tune_file_error).  No spaces, commas or semicolons in the path.
   *                  (Since 0.16) fixed at creation: a relative path against the current
   *                  directory then, a symbolic link followed to the file it names (that
   *                  file is rewritten, the link stays)
   *    cuda.generic = off | on | always   (since 0.7; off) stacks beyond forward
   *                  BasicLSTMCell layers (LSTM options, GRU, reverse, bidirectional,
   *                  residual) on CUDA's generic path: cuBLAS GEMMs and pointwise kernels
   *                  (on); every stack there (always); or refused, naming the layer (off).
   *                  Not yet run on a GPU, hence off
   *    cuda.staging = off | on     (since 0.17; off) a call with host buffers copies its
   *                  input, states and output through one pinned buffer of the session's
   *                  (input + output rows and two states of max_batch x max_time, at most
   *                  1 MiB; the plan's host_staging says how large) when they fit, else
   *                  directly: asynchronous copies and one wait for the device per call
   *                  instead of one per pageable copy; the same numbers.  The generic path
   *                  copies directly.  Not yet run on a GPU, hence off
   *    cuda.blas_workspace_mib = auto | <1..1024>   (since 0.17; auto) each cuBLAS handle's
   *                  workspace in MiB; auto: cuBLAS's recommendation for the device (32 MiB
   *                  from Hopper on, 4 MiB before).  The basic path holds one handle per
   *                  layer and one per layer above the first, the generic path one; the
   *                  plan's blas_workspace_bytes says how much that is.  Smaller saves
   *                  device memory where many sessions share a GPU, and may slow the GEMMs
   *                  (numbers within the precision's tolerance)
   *    cuda.cluster = off | on     (since 0.18; off) with cuda.persistent=layers (or =on,
   *                  for a single-layer model and where the whole-stack launch is not
   *                  planned), a layer whose persistent CTAs fit ONE thread-block cluster of
   *                  up to 16 CTAs (H up to about 470 in FP32) runs its steps on a cluster
   *                  kernel: W_h rows in shared memory, h pushed into every CTA's shared
   *                  memory, one hardware cluster barrier per step instead of the grid's
   *                  step flags; the fused step's numbers bit for bit.  A launch the device
   *                  refuses falls back as the persistent kernel does.  The plan's
   *                  cluster_batches and cluster_ctas say which batches and how many CTAs.
   *                  No effect with cuda.persistent=off or on the generic path.  Not yet
   *                  run on a GPU, hence off
   *    cuda.hybrid = off | on      (since 0.19; off) with cuda.persistent=layers|on, a layer
   *                  whose persistent CTAs with all of W_h do not fit the device (FP32 H
   *                  above about 1056 on 132 SMs, e.g. 2048) runs them where they fit with
   *                  the first columns of each W_h row in shared memory and the rest read
   *                  every step from global memory, under an L2 access policy window over
   *                  W_h (the session raises the device's persisting L2 set-aside,
   *                  cudaLimitPersistingL2CacheSize, to the window up to the device's
   *                  maximum, never lowers it, and gives it back when the device's last
   *                  such session ends); the fused step's numbers bit for bit.
   *                  The plan's hybrid_batches, hybrid_resident (columns on chip) and
   *                  l2_window_bytes per layer.  No effect with cuda.persistent=off or on
   *                  the generic path.  Not yet run on a GPU, hence off
   *  The environment variables SLSTM_CPU_KERNEL, SLSTM_CUDA_GRAPHS, SLSTM_CUDA_CHUNK,
   *  SLSTM_CUDA_FUSED, SLSTM_CUDA_PERSISTENT, SLSTM_CUDA_TUNE and SLSTM_CUDA_GENERIC remain
   *  as overrides for experiments: when set, they win.  What the session ended up with:
   *  slstm_session_describe (on CUDA with cuda.persistent or cuda.tune, as it stands at the
   *  time of asking: tuned batches, a persistent kernel turned off). */
  const char* config;
  /** Stream slots the session holds (since 0.3; see "Stream slots"), 0 <= max_slots <=
   *  SLSTM_MAX_SLOTS (init: 0 = none).  Their states (slstm_model_state_count(model, 1)
   *  floats each) are allocated with the session (device memory on CUDA).  A CUDA session
   *  with max_slots > 0 is SLSTM_ERR_UNSUPPORTED unless the keyed setting cuda.slots=on
   *  is given (the CUDA implementation has not run on a GPU yet). */
  int64_t max_slots;
  /** The products' arithmetic (since 0.5; init: SLSTM_PRECISION_DEFAULT).  Unknown values
   *  and SLSTM_PRECISION_FP32 with allow_tf32 = 1 are SLSTM_ERR_INVALID_ARGUMENT; a
   *  precision the backend does not run (TF32 on the CPU; BF16/FP16 on CUDA unless the keyed
   *  setting cuda.generic=on runs them on its generic path, since 0.7) is
   *  SLSTM_ERR_UNSUPPORTED naming it: a session never runs in another precision than asked. */
  int32_t precision;
  /** CPU backend: a thread pool of the caller's that the session's calls run on (since 0.14;
   *  see slstm_thread_pool), or NULL for workers of its own as the keyed setting cpu.pool
   *  says (init: NULL).  *thread_pool is copied at creation; its parallel_for and pool_arg
   *  must stay valid until the session is destroyed.  With it, num_threads is the most
   *  tasks a call hands the pool (0: the pool's num_threads), the session creates no thread,
   *  and cpu.spin_us does not apply (the pool's threads are the pool's business).  With the
   *  keyed setting cpu.pool=shared it is SLSTM_ERR_INVALID_ARGUMENT, as are a struct_size
   *  below sizeof(slstm_thread_pool), a NULL parallel_for and num_threads < 1.  The reference path (SLSTM_CPU_PATH_REFERENCE) runs on the calling
   *  thread and never calls it.  Ignored by CUDA (validated all the same). */
  const slstm_thread_pool* thread_pool;
} slstm_session_options;

/** The largest max_slots a session accepts. */
#define SLSTM_MAX_SLOTS ((int64_t)1 << 31)

/** Fills the caller's `struct_size` bytes at *options with defaults (see the fields and
 *  "ABI" above).  Does nothing when options is NULL or struct_size < 4.  Call it through
 *  the slstm_session_options_init(options) macro. */
SLSTM_API void slstm_session_options_init_sized(slstm_session_options* options,
                                                size_t struct_size);
/** The first published layout's init (for binaries built against libstacklstm 0.1). */
SLSTM_API void(slstm_session_options_init)(slstm_session_options* options);
#define slstm_session_options_init(options) \
  slstm_session_options_init_sized((options), sizeof(slstm_session_options))
/** The same defaults as a static initializer. */
#define SLSTM_SESSION_OPTIONS_INIT \
  { (uint32_t)sizeof(slstm_session_options), SLSTM_BACKEND_CPU, 0, 0, SLSTM_CPU_PATH_AUTO, 0, 0, 0, \
    NULL, NULL, 0, SLSTM_PRECISION_DEFAULT, NULL }

/** Binds `model` to a backend and allocates the workspace for max_batch x max_time (and the
 *  max_slots stream slots).  Returns SLSTM_ERR_INVALID_ARGUMENT, SLSTM_ERR_OUT_OF_RANGE
 *  (max_slots above SLSTM_MAX_SLOTS), SLSTM_ERR_BACKEND_UNAVAILABLE, SLSTM_ERR_UNSUPPORTED,
 *  SLSTM_ERR_SIZE_OVERFLOW, SLSTM_ERR_OUT_OF_MEMORY.  *out_session is written only on
 *  success. */
SLSTM_API slstm_status slstm_session_create(const slstm_model* model,
                                            const slstm_session_options* options,
                                            slstm_session** out_session);

/** NULL: no-op. */
SLSTM_API void slstm_session_destroy(slstm_session* session);

/** The backend a session runs on. */
SLSTM_API slstm_status slstm_session_backend(const slstm_session* session, slstm_backend* out);

typedef SLSTM_ENUM(slstm_describe_format) {
  SLSTM_DESCRIBE_TEXT = 0, /**< lines for people */
  SLSTM_DESCRIBE_JSON = 1  /**< one JSON object for programs (keys below) */
} slstm_describe_format;

/** The session's plan (since 0.2): every choice the backend made when the session was
 *  created — backend, implementation path, precision, threads, the keyed settings in effect
 *  and where each came from, and per layer the path that runs it, its parameters and why.
 *  Choices that depend on a call's shape (e.g. the CPU fast path's worker split) are given as
 *  the rule that decides them (on CUDA, since 0.17, the params also say what the session
 *  allocated: "device_memory_bytes", of which "blas_workspace_bytes", and
 *  "pinned_memory_bytes"; on the CPU, since 0.20, "host_memory_bytes": the host memory the
 *  session allocated for itself — packed or rounded weights, workspaces for max_batch rows
 *  of max_time steps or of a window of them (cpu.workspace_mib), states, stream slots — not
 *  the model it shares, nor its threads' stacks, nor the few KB of its own bookkeeping).
 *  JSON keys: "backend", "path", "precision", "params" (object),
 *  "settings" (object), "layers" (array of {"path", "reason", "params"}); all values are
 *  strings.  Copies the NUL-terminated text into buf[0..size) (truncated to fit) and stores
 *  its full length, excluding the NUL, in *out_length (may be NULL), snprintf-style; buf may
 *  be NULL when size is 0.  It may be called from any thread, also while another thread's
 *  call runs on the session.  The text of a CPU session does not change while it lives but
 *  for its counts of calls: "calls_alone_asleep" (calls run on the calling thread alone
 *  because the workers were asleep), or "calls_short_team" on the caller's pool, and on the
 *  fast path "calls_batch_split" (since 0.21: calls that ran the batch split, each worker
 *  its share of the batch rows through every step without a barrier per step, rather than
 *  a share of every step's units; a call in windows of steps is split as the whole call
 *  would be); a CUDA session's can with the keyed settings cuda.tune and cuda.persistent
 *  (paths tuned at a batch's first call, the persistent kernel turned off after a failure)
 *  and on the generic path (graphs turned off after a failed capture); there a describe
 *  waits for a call running on another thread.  The text may differ from one describe to
 *  the next: to get a whole one while calls run, pass a buffer and check *out_length < size
 *  (else call again with a larger one) rather than asking for the length first (since
 *  0.11). */
SLSTM_API slstm_status slstm_session_describe(const slstm_session* session,
                                              slstm_describe_format format, char* buf,
                                              size_t size, size_t* out_length);

typedef SLSTM_ENUM(slstm_layout) {
  SLSTM_BATCH_MAJOR = 0, /**< [B, T, ...], tf.nn.dynamic_rnn's default (time_major=False) */
  SLSTM_TIME_MAJOR = 1   /**< [T, B, ...] */
} slstm_layout;

/** Where the float buffers of a call live. */
typedef SLSTM_ENUM(slstm_memory) {
  SLSTM_MEMORY_HOST = 0,  /**< ordinary host memory (pageable or pinned) */
  SLSTM_MEMORY_DEVICE = 1 /**< CUDA device memory on the session's device (CUDA backend only) */
} slstm_memory;

/** The element type of a call's input and output buffers (since 0.7). */
typedef SLSTM_ENUM(slstm_data_type) {
  SLSTM_DATA_F32 = 0,  /**< float (the default) */
  SLSTM_DATA_BF16 = 1, /**< bfloat16 codes (uint16_t; read as their values, written rounded to
                            nearest even) */
  SLSTM_DATA_F16 = 2   /**< IEEE binary16 codes (uint16_t; likewise) */
} slstm_data_type;

/** Arguments of slstm_session_forward.  Each buffer comes with its element count, which must
 *  equal what the shapes require (SLSTM_ERR_SHAPE_MISMATCH otherwise). */
typedef struct slstm_forward_args {
  uint32_t struct_size;      /**< set by slstm_forward_args_init */
  slstm_layout layout;       /**< of input and output; init: SLSTM_BATCH_MAJOR */
  int64_t batch;             /**< 1 <= batch <= the session's max_batch */
  int64_t time;              /**< 0 <= time <= the session's max_time */
  const float* input;        /**< [B, T, D] or [T, B, D]; may be NULL only when time == 0 */
  size_t input_count;        /**< B * T * D */
  const int32_t* sequence_lengths; /**< optional, B values in [0, time]; NULL: all = time */
  size_t sequence_lengths_count;   /**< B when sequence_lengths is given */
  const float* initial_state;      /**< optional packed state; NULL: zeros */
  size_t initial_state_count;      /**< slstm_model_state_count(model, B) when given */
  float* output;             /**< optional: [B, T, H_last] or [T, B, H_last] */
  size_t output_count;       /**< B * T * H_last when output is given */
  float* final_state;        /**< optional packed state; may be the same pointer as
                                  initial_state (updated in place) but must not otherwise
                                  overlap any input */
  size_t final_state_count;  /**< slstm_model_state_count(model, B) when given */
  /** Where input, initial_state, output and final_state live (init: SLSTM_MEMORY_HOST).
   *  sequence_lengths is always read from host memory.  SLSTM_MEMORY_DEVICE on a CPU
   *  session returns SLSTM_ERR_UNSUPPORTED. */
  slstm_memory memory;
  /** (since 0.7) The element type of input and output (init: SLSTM_DATA_F32); the states
   *  stay float.  SLSTM_DATA_BF16 / SLSTM_DATA_F16: input and output point at 16-bit codes
   *  (cast to the pointer types above; counts in elements), for SLSTM_MEMORY_DEVICE buffers
   *  of a CUDA session on its generic path (keyed setting cuda.generic; not yet run on a
   *  GPU); elsewhere SLSTM_ERR_UNSUPPORTED naming data_type.  The input's values are what
   *  the stack reads; the output is the float result rounded to nearest even.
   *  It sits in what was the tail padding of the 0.1-0.6 struct (the sizeof did not change):
   *  a caller built against those headers must have initialised the struct with
   *  slstm_forward_args_init (or zeroed it), else its padding is read here and a value
   *  other than 0, 1 or 2 is refused naming data_type.  (Fields added since are appended
   *  beyond the older sizeof: tests/abi/layout-lp64.txt.) */
  slstm_data_type data_type;
} slstm_forward_args;

/** Fills the caller's `struct_size` bytes at *args with defaults: batch-major, every pointer
 *  NULL, every count 0 (see "ABI" above).  Does nothing when args is NULL or
 *  struct_size < 4.  Call it through the slstm_forward_args_init(args) macro. */
SLSTM_API void slstm_forward_args_init_sized(slstm_forward_args* args, size_t struct_size);
/** The first published layout's init (for binaries built against libstacklstm 0.1). */
SLSTM_API void(slstm_forward_args_init)(slstm_forward_args* args);
#define slstm_forward_args_init(args) \
  slstm_forward_args_init_sized((args), sizeof(slstm_forward_args))
/** The same defaults as a static initializer. */
#define SLSTM_FORWARD_ARGS_INIT \
  { (uint32_t)sizeof(slstm_forward_args), SLSTM_BATCH_MAJOR, 0, 0, NULL, 0, NULL, 0, NULL, 0, \
    NULL, 0, NULL, 0, SLSTM_MEMORY_HOST, SLSTM_DATA_F32 }

/** Runs the stack over a sequence (tf.nn.dynamic_rnn).  Everything is validated before any
 *  output is written.  Returns SLSTM_ERR_INVALID_ARGUMENT (NULL session/args/input, bad
 *  layout, batch < 1, time < 0), SLSTM_ERR_SHAPE_MISMATCH (a count), SLSTM_ERR_OUT_OF_RANGE
 *  (batch/time above the session's maximum, a length outside [0, time]),
 *  SLSTM_ERR_SIZE_OVERFLOW, SLSTM_ERR_ALIASING (an output overlaps an input or another
 *  output), SLSTM_ERR_BACKEND_FAILURE.  Same inputs on the same backend give bitwise
 *  identical results. */
SLSTM_API slstm_status slstm_session_forward(slstm_session* session,
                                             const slstm_forward_args* args);

/** One step of the stack (MultiRNNCell.__call__): input [batch, D] and a packed state in
 *  (state may be NULL: zeros), the last layer's new h [batch, H_last] into `output` (may be
 *  NULL) and the new packed state into `new_state` (may be NULL; may equal `state`).  Counts
 *  as for slstm_session_forward with time = 1; the session's max_time must be >= 1. */
SLSTM_API slstm_status slstm_session_step(slstm_session* session, int64_t batch,
                                          const float* input, size_t input_count,
                                          const float* state, size_t state_count,
                                          float* output, size_t output_count,
                                          float* new_state, size_t new_state_count);

/* ---------------------------------------------------------------------------------------- */
/* Stream slots (since 0.3)                                                                  */
/* ---------------------------------------------------------------------------------------- */

/** A session created with max_slots = N > 0 holds the states of up to N streams (e.g. N
 *  concurrent audio streams advancing a frame at a time) in its own memory, in N slots with
 *  ids 0..N-1.  A slot is closed or open; an open slot holds one stream's packed state of
 *  batch 1 (slstm_model_state_count(model, 1) floats: c_0, h_0, c_1, h_1, ..., see "STATE
 *  PACKING").  All slots are closed when the session is created.
 *
 *  slstm_session_slot_forward runs one chunk (or one frame: time = 1) for any set of open
 *  slots at once: row i of the call starts from slot slot_ids[i]'s state, and that slot's
 *  state becomes row i's final state.  The library gathers the states into the batch, runs
 *  the session's forward and scatters the states back; the caller never handles them.
 *
 *  Exactness: on the CPU backend (every cpu_path and kernel, any num_threads) each slot's
 *  outputs and state are bitwise those of a dedicated session of batch 1 fed the same inputs
 *  from the same initial state, whatever the other rows of the calls, their number, their
 *  order and how the stream's frames were cut into calls (a step's result depends only on
 *  its input, its state and the weights; see SEMANTICS).  On CUDA (cuda.slots=on) the
 *  states stay in device memory (gathered and scattered by a kernel, no host round trip) and
 *  each slot's numbers are those of a batch-1 CUDA session within the accuracy rule, not
 *  bitwise (cuBLAS picks its kernels by shape, so a row's rounding depends on the batch).
 *
 *  Ordering: a slot's state advances once per call that names it, in the order of the calls
 *  (the session serves one thread at a time; callers that submit a stream's frames from
 *  several threads must order them themselves).
 *
 *  Threads: as every session call, the slot calls take the session: a call made while
 *  another thread's call on the same session runs returns SLSTM_ERR_BUSY and does nothing.
 *
 *  Failures change nothing: every argument is checked before anything is written, so a
 *  call that returns an error leaves every slot (open or closed, and its state) and every
 *  output buffer as it was.  The calls allocate nothing (the slot table and a gather
 *  scratch of max_batch rows are allocated with the session).
 *
 *  Errors common to the slot calls: SLSTM_ERR_INVALID_ARGUMENT for a NULL session or
 *  required pointer or an unknown memory value, SLSTM_ERR_OUT_OF_RANGE for a slot id
 *  outside [0, max_slots) (also when max_slots is 0), SLSTM_ERR_INVALID_ARGUMENT for a slot
 *  that is not open, SLSTM_ERR_SHAPE_MISMATCH for a state_count other than
 *  slstm_model_state_count(model, 1), SLSTM_ERR_UNSUPPORTED for SLSTM_MEMORY_DEVICE on a
 *  CPU session, SLSTM_ERR_BUSY. */

/** Opens the lowest-numbered closed slot with `state` (state_count floats, packed, batch 1)
 *  or, when state is NULL (state_count 0), zeros; its id goes to *out_slot.
 *  SLSTM_ERR_SLOTS_FULL when every slot is open (or max_slots is 0); nothing is written. */
SLSTM_API slstm_status slstm_session_slot_open(slstm_session* session, const float* state,
                                               size_t state_count, slstm_memory memory,
                                               int64_t* out_slot);

/** Closes an open slot (its state is forgotten; the id may be returned by a later open). */
SLSTM_API slstm_status slstm_session_slot_close(slstm_session* session, int64_t slot);

/** Sets an open slot's state to `state` (packed, batch 1), or to zeros when state is NULL
 *  (state_count 0): a stream's reset. */
SLSTM_API slstm_status slstm_session_slot_set_state(slstm_session* session, int64_t slot,
                                                    const float* state, size_t state_count,
                                                    slstm_memory memory);

/** Copies an open slot's state (packed, batch 1) into state[0..state_count). */
SLSTM_API slstm_status slstm_session_slot_get_state(slstm_session* session, int64_t slot,
                                                    float* state, size_t state_count,
                                                    slstm_memory memory);

/** The session's max_slots and how many slots are open (either pointer may be NULL).  Takes
 *  the session like the other calls (SLSTM_ERR_BUSY while another thread's call runs). */
SLSTM_API slstm_status slstm_session_slot_info(const slstm_session* session, int64_t* max_slots,
                                               int64_t* open_slots);

/** Arguments of slstm_session_slot_forward.  Each buffer comes with its element count, which
 *  must equal what the shapes require (SLSTM_ERR_SHAPE_MISMATCH otherwise). */
typedef struct slstm_slot_forward_args {
  uint32_t struct_size;      /**< set by slstm_slot_forward_args_init */
  slstm_layout layout;       /**< of input and output; init: SLSTM_BATCH_MAJOR */
  int64_t batch;             /**< slots in this call, 1 <= batch <= the session's max_batch */
  const int64_t* slot_ids;   /**< batch distinct ids of open slots; row i runs slot_ids[i] */
  size_t slot_ids_count;     /**< batch */
  int64_t time;              /**< 0 <= time <= the session's max_time (1: one frame) */
  const float* input;        /**< [B, T, D] or [T, B, D]; may be NULL only when time == 0 */
  size_t input_count;        /**< B * T * D */
  const int32_t* sequence_lengths; /**< optional, B values in [0, time]; NULL: all = time.
                                        A slot whose length is shorter keeps the state it
                                        had after its last step (0: unchanged) and gets
                                        zeros in its output rows past its length */
  size_t sequence_lengths_count;   /**< B when sequence_lengths is given */
  float* output;             /**< optional: [B, T, H_last] or [T, B, H_last] */
  size_t output_count;       /**< B * T * H_last when output is given */
  /** Where input and output live (init: SLSTM_MEMORY_HOST); slot_ids and sequence_lengths
   *  are always read from host memory.  SLSTM_MEMORY_DEVICE on a CPU session returns
   *  SLSTM_ERR_UNSUPPORTED. */
  slstm_memory memory;
} slstm_slot_forward_args;

/** Fills the caller's `struct_size` bytes at *args with defaults: batch-major, every pointer
 *  NULL, every count 0 (see "ABI" above).  Does nothing when args is NULL or
 *  struct_size < 4.  Call it through the slstm_slot_forward_args_init(args) macro. */
SLSTM_API void slstm_slot_forward_args_init_sized(slstm_slot_forward_args* args,
                                                  size_t struct_size);
#define slstm_slot_forward_args_init(args) \
  slstm_slot_forward_args_init_sized((args), sizeof(slstm_slot_forward_args))
/** The same defaults as a static initializer. */
#define SLSTM_SLOT_FORWARD_ARGS_INIT \
  { (uint32_t)sizeof(slstm_slot_forward_args), SLSTM_BATCH_MAJOR, 0, NULL, 0, 0, NULL, 0, \
    NULL, 0, NULL, 0, SLSTM_MEMORY_HOST }

/** Runs one chunk for `batch` slots at once (see above): each slot's state is gathered,
 *  the batch runs as slstm_session_forward would run it, and each slot keeps its row's final
 *  state.  Everything is validated before anything is written.  Returns, besides the common
 *  errors: SLSTM_ERR_INVALID_ARGUMENT (NULL args, slot_ids or input, bad layout, batch < 1,
 *  time < 0, a slot that is not open, the same slot twice: the message names both indices),
 *  SLSTM_ERR_SHAPE_MISMATCH (a count), SLSTM_ERR_OUT_OF_RANGE (batch/time above the
 *  session's maximum, a length outside [0, time], a slot id outside [0, max_slots)),
 *  SLSTM_ERR_SIZE_OVERFLOW, SLSTM_ERR_ALIASING (output overlaps input, slot_ids or
 *  sequence_lengths), SLSTM_ERR_BACKEND_FAILURE. */
SLSTM_API slstm_status slstm_session_slot_forward(slstm_session* session,
                                                  const slstm_slot_forward_args* args);

/* ---------------------------------------------------------------------------------------- */
/* ONNX LSTM and GRU nodes                                                                   */
/* ---------------------------------------------------------------------------------------- */

/** The attributes and optional inputs of one ONNX `LSTM` node, as read from the graph.
 *  Only a node that computes this library's cell can be imported with SLSTM_FORMAT_ONNX. */
typedef struct slstm_onnx_lstm_node {
  uint32_t struct_size;     /**< set by slstm_onnx_lstm_node_init */
  const char* direction;    /**< the `direction` attribute; NULL = absent ("forward") */
  int32_t has_clip;         /**< 1 when the node has a `clip` attribute (init: 0) */
  float clip;               /**< its value (ignored when has_clip is 0) */
  int64_t input_forget;     /**< the `input_forget` attribute (init: 0) */
  int64_t layout;           /**< the `layout` attribute (init: 0); informational only */
  int32_t num_activations;  /**< entries in `activations` (0 = absent) */
  const char* const* activations; /**< e.g. {"Sigmoid", "Tanh", "Tanh"} */
  /** The optional `P` input [1, 3H] (peepholes), or NULL when the node has none. */
  const slstm_tensor* peepholes;
} slstm_onnx_lstm_node;

/** Fills the caller's `struct_size` bytes at *node with an attribute-free node (every field
 *  absent; see "ABI" above).  Does nothing when node is NULL or struct_size < 4.  Call it
 *  through the slstm_onnx_lstm_node_init(node) macro. */
SLSTM_API void slstm_onnx_lstm_node_init_sized(slstm_onnx_lstm_node* node, size_t struct_size);
/** The first published layout's init (for binaries built against libstacklstm 0.1). */
SLSTM_API void(slstm_onnx_lstm_node_init)(slstm_onnx_lstm_node* node);
#define slstm_onnx_lstm_node_init(node) \
  slstm_onnx_lstm_node_init_sized((node), sizeof(slstm_onnx_lstm_node))
/** The same defaults as a static initializer. */
#define SLSTM_ONNX_LSTM_NODE_INIT \
  { (uint32_t)sizeof(slstm_onnx_lstm_node), NULL, 0, 0.0f, 0, 0, 0, NULL, NULL }

/** SLSTM_OK when the node computes this library's cell: direction absent or "forward",
 *  no clip, input_forget 0, activations absent or exactly Sigmoid, Tanh, Tanh (any case),
 *  and P absent or all zeros.  Otherwise SLSTM_ERR_UNSUPPORTED, with slstm_last_error()
 *  naming the attribute (a bidirectional node, clipping, coupled input-forget gates and
 *  peephole connections are not supported). */
SLSTM_API slstm_status slstm_onnx_check_node(const slstm_onnx_lstm_node* node);

/** The layer an ONNX `LSTM` node computes (since 0.4), for slstm_model_config.layers with
 *  SLSTM_FORMAT_ONNX: an LSTM of `hidden_size` units (the node's hidden_size attribute) whose
 *  direction is the node's (forward, reverse or bidirectional) and with peepholes when the
 *  node has a `P` input.  Refuses what slstm_onnx_check_node refuses except direction and
 *  peepholes: clip (SLSTM_ERR_UNSUPPORTED: ONNX clips the gates' inputs, not TF's cell
 *  state), input_forget, activations other than Sigmoid, Tanh, Tanh (per direction); an
 *  unknown direction is SLSTM_ERR_INVALID_ARGUMENT.  Writes the caller's out->struct_size
 *  bytes (call slstm_layer_config_init on it first) and nothing else. */
SLSTM_API slstm_status slstm_onnx_lstm_node_layer(const slstm_onnx_lstm_node* node,
                                                  int64_t hidden_size,
                                                  slstm_layer_config* out);

/** The attributes of one ONNX `GRU` node, as read from the graph (since 0.5).  Initialise
 *  with slstm_onnx_gru_node_init (or SLSTM_ONNX_GRU_NODE_INIT) and set what the node has. */
typedef struct slstm_onnx_gru_node {
  uint32_t struct_size;          /**< set by slstm_onnx_gru_node_init */
  const char* direction;         /**< the `direction` attribute; NULL = absent ("forward") */
  int32_t has_clip;              /**< 1 when the node has a `clip` attribute (init: 0) */
  float clip;                    /**< its value (ignored when has_clip is 0) */
  int64_t linear_before_reset;   /**< the `linear_before_reset` attribute (init: 0) */
  int64_t layout;                /**< the `layout` attribute (init: 0); informational only */
  int32_t num_activations;       /**< entries in `activations` (0 = absent) */
  const char* const* activations; /**< e.g. {"Sigmoid", "Tanh"} (4 for bidirectional) */
} slstm_onnx_gru_node;

/** Fills the caller's `struct_size` bytes at *node with an attribute-free node (every field
 *  absent; see "ABI" above).  Does nothing when node is NULL or struct_size < 4.  Call it
 *  through the slstm_onnx_gru_node_init(node) macro. */
SLSTM_API void slstm_onnx_gru_node_init_sized(slstm_onnx_gru_node* node, size_t struct_size);
#define slstm_onnx_gru_node_init(node) \
  slstm_onnx_gru_node_init_sized((node), sizeof(slstm_onnx_gru_node))
/** The same defaults as a static initializer. */
#define SLSTM_ONNX_GRU_NODE_INIT \
  { (uint32_t)sizeof(slstm_onnx_gru_node), NULL, 0, 0.0f, 0, 0, 0, NULL }

/** The layer an ONNX `GRU` node computes (since 0.5), for slstm_model_config.layers with
 *  SLSTM_FORMAT_ONNX: a GRU of `hidden_size` units (the node's hidden_size attribute) whose
 *  direction is the node's (forward, reverse or bidirectional), gru_reset_after = the node's
 *  linear_before_reset (0: the reset gate scales h before the recurrent matmul, TF's
 *  GRUCell; 1: it scales the matmul's result plus its bias, PyTorch's and cuDNN's GRU).
 *  Refuses clip (SLSTM_ERR_UNSUPPORTED: ONNX clips the gates' inputs) and activations other
 *  than Sigmoid, Tanh (per direction, any case); SLSTM_ERR_INVALID_ARGUMENT for an unknown
 *  direction, linear_before_reset other than 0 or 1, 4 activations on a node that is not
 *  bidirectional, a hidden_size outside [1, SLSTM_MAX_EXTENT], NULL arguments or an
 *  uninitialised `out`.  Writes the caller's out->struct_size bytes (call
 *  slstm_layer_config_init on it first) and nothing else; nothing on failure. */
SLSTM_API slstm_status slstm_onnx_gru_node_layer(const slstm_onnx_gru_node* node,
                                                 int64_t hidden_size, slstm_layer_config* out);

/* ---------------------------------------------------------------------------------------- */
/* Model files (safetensors)                                                                 */
/* ---------------------------------------------------------------------------------------- */

/** A model file is a safetensors file (https://github.com/huggingface/safetensors): an 8-byte
 *  little-endian header length N, N bytes of JSON, then the tensor bytes.  This library
 *  writes the canonical tensors of docs/cells.md as F32, under the names slstm_format_tensors
 *  gives for SLSTM_FORMAT_CANONICAL: per layer l, `layers.<l>.W_x` [G*H, I], `layers.<l>.W_h`
 *  [G*H, R], then for an LSTM `layers.<l>.b` [4H] (+ `.w_peep` [3, H] with peepholes, +
 *  `.W_proj` [P, H] with a projection), for a GRU `layers.<l>.b_x` [3H] and `.b_h` [3H]; a
 *  bidirectional layer's reverse cell follows under `layers.<l>.reverse.<name>`.  The
 *  architecture is in `__metadata__` (all values strings): "format" = "stacklstm",
 *  "format_version", "input_size", "hidden_sizes" (comma separated), "cells" (each layer's
 *  cell, comma separated: "lstm,gru,lstm"), in format_version 2 one comma-separated list per
 *  layer option ("directions": forward / reverse / bidirectional; "residual", "peepholes",
 *  "gru_reset_after": 0 / 1; "cell_clip", "proj_clip": decimals; "proj_sizes": integers),
 *  "forget_bias" (the shortest decimal that reads back as the same float, written
 *  independently of the C locale) and "source_layout" (free text saying where the weights
 *  came from, e.g. "pytorch").  Every model that exists saves, whatever its stack, and what
 *  is saved loads back bit for bit, layer descriptions included (weights and forget_bias are
 *  finite by slstm_model_create, and the file limits below admit every model the
 *  SLSTM_MAX_LAYERS / SLSTM_MAX_EXTENT limits allow).
 *
 *  Versions.  The writer puts in the lowest format_version that expresses the model: "1"
 *  while every layer is a forward BasicLSTMCell (byte for byte what 0.1-0.3 wrote, so the
 *  file stays readable by libstacklstm 0.1, which ignores metadata it does not know
 *  ("cells") and computes exactly that cell), "2" for any other stack, which 0.1-0.3 refuse.
 *  The reader accepts format_version "1" with or without "cells" (a file of 0.1 has none:
 *  every layer is lstm), every entry "lstm" and none of the version-2 layer keys; and
 *  format_version "2" with every layer key present.  Each list holds exactly one entry per
 *  layer; names are 1 to 32 of a-z, 0-9, _.  A format_version above the newest this library
 *  reads (a decimal integer > 2) is SLSTM_ERR_UNSUPPORTED saying the file was written by a
 *  newer libstacklstm, and so is a cell or direction this library does not know ("layer 2 is
 *  a \"rnn_tanh\" cell: this libstacklstm reads lstm and gru cells only; the file needs a
 *  newer library"); a malformed format_version (not a decimal integer >= 1), a malformed
 *  entry, a count that differs from the layers', a missing layer key or a version-1 file
 *  with a gru cell or a version-2 key is SLSTM_ERR_INVALID_ARGUMENT.  A version-2 stack is
 *  checked as slstm_model_create checks config->layers (same status; the message names the
 *  metadata entry and the layer's field, e.g. "metadata proj_sizes[0] (layer 0's
 *  proj_size) must be in [0, hidden_size = 3] ...").  When the metadata precede the tensors
 *  (as writers put them), a newer version or unknown cell or direction is reported even
 *  where the file also has tensors this library does not know.
 *
 *  Loading checks everything before anything is used: the file is >= 8 bytes; the header
 *  length is <= SLSTM_MODEL_FILE_MAX_HEADER and fits in the file; the header begins with '{'
 *  (no byte-order mark, no whitespace before it), holds one JSON object (RFC 8259, strict:
 *  UTF-8 checked, no NUL byte) without duplicate keys, and is padded after it with spaces
 *  (0x20) only; the metadata are present, all strings, at most 1024 entries, and well formed
 *  (format_version and cells as above): input_size and hidden_sizes decimal integers in [1,
 *  SLSTM_MAX_EXTENT], at most SLSTM_MAX_LAYERS layers, forget_bias a decimal in JSON number
 *  syntax (no hexadecimal "0x1p0", no "inf" or "nan", no '+') rounded to the nearest float,
 *  which must be finite (so +-FLT_MAX round-trip); exactly the tensors the metadata's layers
 *  have (a missing one, or one the layer does not have, is named), no others; dtype
 *  F32, F64, F16 or BF16 (converted to float32 rounding to nearest: an F64 value below FLT_MAX
 *  + 2^103 in magnitude becomes at most FLT_MAX; a value that is not finite after conversion
 *  is rejected); shapes match the architecture; data_offsets are [begin, end] with begin <=
 *  end inside the data section, end - begin equal to the tensor's byte size, no two tensors
 *  overlap and together they cover the data section exactly.  Loading time is linear in the
 *  file's size for every input (bench/results/loader.md: >= 50 MB/s of header).  Nothing is
 *  allocated before the sizes are known to be backed by the file's bytes; the model is then
 *  allocated once.  Failures: SLSTM_ERR_INVALID_ARGUMENT (a malformed file: the message names
 *  the problem and the tensor/key), SLSTM_ERR_SHAPE_MISMATCH (a shape disagrees with the
 *  architecture), SLSTM_ERR_UNSUPPORTED (unknown dtype, format, newer version or cell),
 *  SLSTM_ERR_SIZE_OVERFLOW, SLSTM_ERR_OUT_OF_MEMORY; for files, a path that cannot be opened
 *  (or is not a regular file) is SLSTM_ERR_INVALID_ARGUMENT and a failed read or write
 *  SLSTM_ERR_BACKEND_FAILURE, both with the OS's text. */
#define SLSTM_MODEL_FILE_MAX_HEADER ((uint64_t)100000000)

/** Bytes slstm_model_save_memory writes for this model and source_layout. */
SLSTM_API slstm_status slstm_model_file_size(const slstm_model* model,
                                             const char* source_layout, size_t* out_size);

/** Writes the model as a safetensors image into buf[0..capacity).  source_layout may be NULL
 *  ("canonical"); it must be at most 256 bytes of printable ASCII.  SLSTM_ERR_SHAPE_MISMATCH
 *  when capacity is smaller than slstm_model_file_size (nothing written).  *out_size
 *  (may be NULL) receives the byte count on success. */
SLSTM_API slstm_status slstm_model_save_memory(const slstm_model* model,
                                               const char* source_layout, void* buf,
                                               size_t capacity, size_t* out_size);

/** Writes the model to `path` as a safetensors file, atomically: the bytes go to a new file
 *  in the same directory (".<name>.tmp-<pid>-<n>", so the directory must be writable, not
 *  only the file), which is flushed with fsync and then renamed over `path`.  On failure
 *  (disk full, RLIMIT_FSIZE, ...) that temporary is removed and a file already at `path` is
 *  left as it was (SLSTM_ERR_BACKEND_FAILURE with the OS's text).  A file replaced keeps its
 *  permission bits (not its owner, nor hard links to it); a symbolic link at `path` is
 *  followed.  A process that lowers RLIMIT_FSIZE must ignore SIGXFSZ to get the error
 *  rather than be killed by the kernel. */
SLSTM_API slstm_status slstm_model_save_file(const slstm_model* model, const char* path,
                                             const char* source_layout);

/** Loads a model from a safetensors image in memory (see the checks above).  *out_model is
 *  written only on success.  data may be NULL only when size is 0. */
SLSTM_API slstm_status slstm_model_load_memory(const void* data, size_t size,
                                               slstm_model** out_model);

/** Loads a model from a safetensors file (see the checks above): the 8-byte length is read
 *  first and checked against the file's size, then the header is read and validated, and
 *  only then is the model allocated and the tensor bytes read, once, front to back (no copy
 *  of the whole file).  A file that shrinks while it is read is SLSTM_ERR_BACKEND_FAILURE. */
SLSTM_API slstm_status slstm_model_load_file(const char* path, slstm_model** out_model);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* STACKLSTM_STACKLSTM_H */
