// The CUDA backend's session: one model on one device, every buffer allocated for
// max_batch x max_time when it is created.
//
// Per forward call (T > 0), everything on the session's main stream (the caller's
// cudaStream_t, or a blocking stream of the session's own) (session.cpp):
//   1. lengths  -> d_len_ (from a pinned host buffer; T for every row when none are given);
//   2. input    -> d_x_, the time-major augmented input [T*B, Ip_0] whose column D is 1.0:
//                  one 2D copy from the caller's buffer when its rows are time-major already
//                  (time-major layout, or T = 1); else (host: one H2D copy into d_in_) ->
//                  pack kernel;
//   3. initial state -> d_state_ (packed, as in the C API), or zeros;
//   4. the compute (schedule.cpp), replayed from a CUDA graph captured on first use of
//      (B, T, layout) (GraphCache):
//        layer 0: ONE input GEMM for all T steps  Zx_0 = X_aug . [W_x | b + fb_f]^T;
//        layers l >= 1: the same GEMM chunk by chunk of C steps, as soon as layer l-1 has
//          produced those steps (wavefront across per-layer streams joined by events, so the
//          dependent chain is about T + (L-1)*C steps instead of L*T);
//        per step and layer: one recurrent GEMM  Zx_l[t] += h . W_h^T  (beta = 1, in place)
//          and ONE fused kernel (slstm::lstm_cell, c/h in place, output row, length mask);
//          or, for batches of at most 16 whose h fits in shared memory, where it was measured
//          faster (rec_step_preferred), ONE kernel that also computes h . W_h^T
//          (launch_lstm_rec_step; h double-buffered). A stack may mix both, layer by layer:
//          each layer's StepPlan, fixed at creation, says which for each batch size;
//        with cuda.persistent=layers|on, batches <= 16 may run a layer's steps of a chunk in
//          ONE persistent launch instead (launch_lstm_persistent, the fused step's bits), and
//          with =on a whole stack that the device holds runs as ONE launch per call, a
//          wavefront across its layers (enqueue_stack); with cuda.tune=on the first call of
//          each batch times the allowed paths and keeps the fastest (tune.cpp);
//   5. d_out_ / d_state_ -> the caller's output / final state (D2H or D2D);
//   6. host buffers, or no caller stream: synchronise and report any error.
// With cuda.staging=on, a call with host buffers that fit the session's pinned buffer
// h_stage_ copies its input and initial state into it first, steps 2, 3 and 5 copy from and
// to it (asynchronous copies: no wait for the device until step 6), and the output and
// final state reach the caller's buffers after step 6 (deliver_staged).
// Every buffer is allocated when the session is created (session_init.cpp); a call allocates
// nothing on the device (graph instantiation on a shape's first use allocates host-side graph
// objects). Failures are thrown as slstm::Error (check.hpp).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend_module_abi.h"
#include "graph_cache.hpp"
#include "kernels.cuh"
#include "step_plan.hpp"
#include "resources.hpp"
#include "tune_cache.hpp"

namespace slstm_cuda {

// Where a layer's output rows go: row b of step t at y + t * step + b * stride, in the next
// layer's input (hseq) or the caller's output in the call's layout.
struct OutputRows {
  float* y = nullptr;
  std::int64_t step = 0;
  std::int64_t stride = 0;
  float* at(std::int64_t t) const { return y + t * step; }
};

// One layer: its sizes, weights, activations, and the streams, cuBLAS handles and events of
// its share of the wavefront (proj_* for layers >= 1 only).
struct LayerData {
  int in = 0;       // I
  int hid = 0;      // H
  int ld_x = 0;     // Ip = round_up4(I + 1): row stride of this layer's augmented input
  int ld_next = 0;  // row stride of hseq (the next layer's ld_x); 0 for the last layer
  std::int64_t state_c_row = 0;   // the packed state's c block of this layer, per batch row
  std::int64_t state_h_row = 0;   // and its h block (the core's StateLayout)
  StepPlan plan;
  DeviceBuffer<float> wx;         // [4H, Ip]: W_x | bias (+ forget_bias on f) | zero pad
  DeviceBuffer<float> wh;         // [4H, H]
  DeviceBuffer<float> bias;       // [4H] bias (+ forget_bias on f), TF32 only (see upload)
  DeviceBuffer<float> zx;         // [T_max * B_max, 4H] pre-activations, time-major rows
  DeviceBuffer<float> hseq;       // [T_max * B_max, ld_next] this layer's h per step (not last)
  DeviceBuffer<float> hbuf;       // [B_max, H] the fused step's second h buffer (small batch)
  DeviceBuffer<unsigned> sync;    // the persistent kernel's flags (persistent_sync_words)
  L2Window l2_window;             // the hybrid tier's launches (base: wh, once uploaded)
  DeviceBuffer<unsigned char> rec_ws;   // cuBLAS workspaces, one per handle
  DeviceBuffer<unsigned char> proj_ws;
  Stream rec;                     // recurrent steps
  Stream proj;                    // chunked input projection (layers >= 1)
  Event ev_done;                  // recorded on rec after each chunk
  Event ev_proj;                  // recorded on proj after each chunk's GEMM
  Event ev_join_rec;
  Event ev_join_proj;
  // Declared last: destroyed before the streams and workspaces they use.
  BlasHandle rec_blas;
  BlasHandle proj_blas;
};

class Session {
 public:
  // A session for `d` on d.device (session_init.cpp). Throws slstm::Error; whatever was
  // created before the failure is released.
  static std::unique_ptr<Session> create(const slstm_cuda_session_desc& d);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Waits for the session's work on its main stream, then releases everything with the
  // session's device current.
  ~Session();

  void forward(const slstm_cuda_forward_desc& c);

  // Stream slots (slots.cpp; the core's SlotStates for CUDA, keyed setting cuda.slots=on):
  // max_slots packed batch-1 states in device memory, allocated once (init_slots, zeroed);
  // write/read one slot's state from/to host or device memory (state NULL: zeros); and a
  // forward call whose rows start from the slots ids[0..batch) and leave their final state
  // there (c.initial_state and c.final_state NULL): gathered into d_state_ and scattered back
  // by a kernel, on the main stream, with no host round trip. ids: host memory, validated.
  void init_slots(std::int64_t max_slots);
  void slot_write(std::int64_t slot, const float* state, std::int32_t memory);
  void slot_read(std::int64_t slot, float* state, std::int32_t memory);
  void forward_slots(const slstm_cuda_forward_desc& c, const std::int64_t* ids);
  // Layer l's StepPlan bits (session_layer_plan in the module table).
  std::uint32_t fused_batches(std::size_t l) const { return layers_.at(l).plan.fused_batches; }
  // Layer l's persistent batches while the persistent kernel is in use (0 once it failed).
  std::uint32_t persistent_batches(std::size_t l) const {
    return persistent_on() ? layers_.at(l).plan.persistent_batches : 0;
  }
  // Layer l's cluster tier while the persistent kernel is in use (0 once it failed).
  std::uint32_t cluster_batches(std::size_t l) const {
    const StepPlan& p = layers_.at(l).plan;
    return persistent_on() ? p.cluster_batches & p.persistent_batches : 0;  // (after tuning too)
  }
  int cluster_ctas(std::size_t l) const {
    return cluster_batches(l) != 0 ? layers_.at(l).plan.cluster_ctas : 0;
  }
  // Layer l's hybrid tier while the persistent kernel is in use (0 once it failed), the
  // columns of its W_h rows in shared memory and the bytes of its L2-persisting window.
  std::uint32_t hybrid_batches(std::size_t l) const {
    const StepPlan& p = layers_.at(l).plan;
    return persistent_on() ? p.hybrid_batches & p.persistent_batches : 0;  // (after tuning too)
  }
  int hybrid_resident(std::size_t l) const {
    return hybrid_batches(l) != 0 ? layers_.at(l).plan.hybrid_resident : 0;
  }
  std::size_t l2_window_bytes(std::size_t l) const {
    return hybrid_batches(l) != 0 ? layers_.at(l).l2_window.bytes : 0;
  }
  // The batches whose paths were tuned on the device (cuda.tune=on): bit b-1 for batch b.
  std::uint32_t tuned_batches() const { return tuned_batches_; }
  std::uint32_t stack_batches() const { return stack_.batches; }
  const std::string& tune_file_error() const { return tune_file_error_; }
  std::size_t num_layers() const { return layers_.size(); }

 private:
  Session() = default;

  // session_init.cpp
  void init(const slstm_cuda_session_desc& d);
  void select_device(int device);
  void probe_device();
  void read_knobs(const slstm_cuda_session_desc& d);
  std::int64_t check_sizes(const slstm_cuda_session_desc& d);
  void create_streams(void* caller_stream);
  void size_layers(const slstm_cuda_session_desc& d);
  void plan_hybrid_tier(const std::vector<LayerShape>& shapes,
                        const std::vector<std::uint32_t>& full, int sms);
  void allocate(std::int64_t rows);
  void upload_layer(const slstm_cuda_layer_desc& src, LayerData& ld);
  void allocate_layer(LayerData& ld, std::int64_t rows, bool last);
  void create_layer_streams(LayerData& ld, bool projects);
  void bind_blas(const BlasHandle& blas, const Stream& stream,
                 const DeviceBuffer<unsigned char>& workspace);
  void zero(void* p, std::size_t bytes);

  // schedule.cpp
  std::int64_t chunk_steps(std::int64_t batch, std::int64_t time) const;
  void input_gemm(cublasHandle_t blas, const LayerData& layer, const float* x, std::int64_t row0,
                  std::int64_t rows);
  void enqueue_compute(cudaStream_t origin, int batch, int time, std::int32_t layout);
  void enqueue_wavefront(cudaStream_t origin, int batch, int time, std::int32_t layout);
  void enqueue_chunk(std::size_t l, std::int64_t t0, std::int64_t t1, int batch, int time,
                     std::int32_t layout);
  StepPath step_path(const LayerData& ld, int batch) const;
  OutputRows output_rows(std::size_t l, int batch, int time, std::int32_t layout);
  PersistentLayer persistent_layer(std::size_t l, int batch, int time, std::int32_t layout,
                                   bool own_input);
  PersistentArgs persistent_args(std::int64_t t0, std::int64_t t1, int batch,
                                 unsigned* sync) const;
  void enqueue_stack(cudaStream_t origin, int batch, int time, std::int32_t layout);
  bool stack_planned(int batch) const { return StepPlan::has(stack_.batches, batch); }
  void enqueue_steps(std::size_t l, std::int64_t t0, std::int64_t t1, int batch, int time,
                     std::int32_t layout, StepPath path);

  // tune.cpp
  void init_tuning(const slstm_cuda_session_desc& d);
  void tune(int batch, int time, std::int32_t layout);
  std::vector<StepPath> candidates(const LayerData& ld, int batch) const;
  bool time_path(std::size_t l, StepPath path, int batch, int steps, int time,
                 std::int32_t layout, float* ms);
  void apply_path(LayerData& ld, int batch, StepPath path);
  bool time_compute(int batch, int time, std::int32_t layout, float* ms);
  void join_streams(cudaStream_t origin);
  cudaGraphExec_t graph_for(int batch, int time, std::int32_t layout);
  GraphExec capture_compute(int batch, int time, std::int32_t layout);

  // session.cpp
  void run(const slstm_cuda_forward_desc& c, const std::int64_t* slot_ids);
  void check_device_pointers(const slstm_cuda_forward_desc& c) const;
  void check_device_pointer(const void* p, const char* name) const;
  void copy_state_without_steps(const slstm_cuda_forward_desc& c, bool host,
                                std::int64_t state_floats);
  void upload_lengths(const slstm_cuda_forward_desc& c);
  void stage_input(const slstm_cuda_forward_desc& c, bool host);
  void start_state(const slstm_cuda_forward_desc& c, const std::int64_t* slot_ids,
                   cudaMemcpyKind to_dev, std::size_t state_bytes);
  void enqueue_call(int batch, int time, std::int32_t layout);
  void finish(bool host);
  bool stage_host_call(const slstm_cuda_forward_desc& c, slstm_cuda_forward_desc* staged);
  void deliver_staged(const slstm_cuda_forward_desc& c,
                      const slstm_cuda_forward_desc& staged) const;
  bool persistent_failed();
  void turn_persistent_off();
  void settle_previous_call();  // session.cpp: before a call touches the session's state
  bool persistent_on() const { return persistent_ && !persistent_off_; }

  // slots.cpp
  void check_slot(std::int64_t slot) const;
  void upload_slot_ids(const std::int64_t* ids, int batch);
  void copy_slots(int batch, bool to_packed);

  // Declared first: destroyed last, after every resource below (see DeviceTeardown).
  DeviceTeardown teardown_;
  int device_ = 0;
  bool use_graphs_ = true;
  bool tf32_ = false;
  // The fused recurrent step: 1 where it fits and was measured faster (rec_step_preferred),
  // 0 never, 2 wherever it fits (SLSTM_CUDA_FUSED=0 / 1 / always; 1 by default).
  int fused_mode_ = 1;
  std::int64_t chunk_override_ = 0;
  // cuda.persistent=on (persistent_), the bound of one wait at its grid barrier, and whether
  // it was turned off after a failure (persistent_off_: every later call runs the fused step
  // where it would have run). h_status_: host-mapped word the kernel sets on a timeout.
  bool persistent_ = false;
  bool persistent_stack_ = false;  // cuda.persistent=on (not layers): whole-stack launches too
  bool cluster_ = false;  // cuda.cluster=on: layers that fit one cluster run the cluster kernel
  bool hybrid_ = false;   // cuda.hybrid=on: layers too large for the grid tier run the hybrid one
  SetAsideLease set_aside_;  // the hybrid tier's persisting L2 set-aside, while the session lives
  bool persistent_off_ = false;
  long long persistent_timeout_ns_ = 0;
  // The batches whose whole stack runs as one persistent launch (plan_stack; after a failure
  // of the persistent kernel, as one launch per step and layer of the same kernel), and that
  // launch's flags.
  StackPlan stack_;
  DeviceBuffer<unsigned> d_stack_sync_;
  PinnedBuffer<int> h_status_;   // [1], pinned: mapped into the device's address space
  int* d_status_ = nullptr;       // h_status_ as the device sees it
  // cuda.tune=on (tune.cpp): at the first call of each batch <= 32, every layer's candidate
  // step paths are timed on the device (or taken from the cache) and the fastest kept in its
  // plan; tuned_batches_ bit b-1 once batch b is done. cuda.tune_file: the cache's file
  // ("" for none); tune_file_error_ the last failure to read or write it.
  bool tune_ = false;
  std::uint32_t tuned_batches_ = 0;
  std::string tune_file_;
  std::string tune_file_error_;
  std::string device_key_;
  TuneCache tune_cache_;
  Event ev_time0_;  // timing events (tuning only)
  Event ev_time1_;
  std::int64_t max_batch_ = 0;
  std::int64_t state_row_floats_ = 0;  // floats per batch row of the packed state
  std::int64_t max_time_ = 0;
  int input_size_ = 0;
  std::size_t workspace_bytes_ = 0;
  Stream own_main_;                 // the main stream when the caller gave none
  cudaStream_t main_ = nullptr;     // where every call runs (the caller's stream or own_main_)
  Stream capture_;                  // private: graph capture and session-creation work
  Event ev_fork_;
  Event ev_len_;                    // the pinned lengths buffer may be overwritten after it
  // A call that may have launched the persistent kernel and returned before it ran (device
  // buffers on the caller's stream): ev_call_end_ follows its work, and the next call waits
  // for it before anything else, so that a failure of that kernel is that call's, reported
  // to the next one, never taken for the next call's own.
  Event ev_call_end_;
  bool call_unsynced_ = false;
  bool len_pending_ = false;
  // d_len_ holds len_uniform_time_ for its first len_uniform_rows_ rows (-1: not known).
  int len_uniform_time_ = -1;
  int len_uniform_rows_ = 0;
  PinnedBuffer<std::int32_t> h_len_;  // [max_batch]
  // cuda.staging=on: the pinned buffer a host-buffer call's input, initial state, output and
  // final state go through when they fit (stage_floats_ floats; 0: off).
  std::int64_t stage_floats_ = 0;
  PinnedBuffer<float> h_stage_;
  DeviceBuffer<float> d_in_;          // staging of a host input, caller layout
  DeviceBuffer<float> d_x_;           // [T_max * B_max, Ip_0] augmented, time-major
  DeviceBuffer<float> d_out_;         // [B*T*H_last], caller layout
  DeviceBuffer<float> d_state_;       // packed state for up to max_batch rows
  DeviceBuffer<std::int32_t> d_len_;  // [max_batch]
  // Stream slots (init_slots; empty when the session has none).
  std::int64_t max_slots_ = 0;
  int slot_pieces_ = 0;                      // state pieces per row (c and h per layer)
  DeviceBuffer<float> d_slots_;              // [max_slots, state_row_floats_]
  DeviceBuffer<std::int64_t> d_slot_off_;    // [slot_pieces_ + 1] pieces' row offsets
  DeviceBuffer<std::int64_t> d_slot_ids_;    // [max_batch] the running call's slot ids
  PinnedBuffer<std::int64_t> h_slot_ids_;    // [max_batch] their staging
  Event ev_slot_ids_;                        // h_slot_ids_ may be overwritten after it
  bool slot_ids_pending_ = false;
  std::vector<LayerData> layers_;
  GraphCache graphs_;
};

}  // namespace slstm_cuda
