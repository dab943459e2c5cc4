// The compute of a forward call (step 4 in session.hpp): the step plan of each layer, the
// wavefront of input projections and recurrent steps across the layers' streams, and its
// capture into a CUDA graph per (batch, time, layout).
#include <algorithm>
#include <cstdint>

#include "kernels.cuh"
#include "session.hpp"

namespace slstm_cuda {
namespace {

}  // namespace

// Steps per chunk of the wavefront: small enough that layer l+1 starts soon after layer l,
// large enough that each chunk's input GEMM has some rows. One layer: no chunking at all.
std::int64_t Session::chunk_steps(std::int64_t batch, std::int64_t time) const {
  if (layers_.size() == 1) return time;
  std::int64_t c = chunk_override_ > 0 ? chunk_override_ : (64 + batch - 1) / batch;
  if (chunk_override_ <= 0) c = std::min<std::int64_t>(std::max<std::int64_t>(c, 1), 8);
  return std::max<std::int64_t>(1, std::min(c, time));
}

// Zx[row0 .. row0+rows) = X_aug[row0 .. row0+rows) . Wx_aug^T (bias via the 1.0 column).
// Row-major Y[M, N] = X[M, K] . W[N, K]^T is, in cuBLAS's column-major terms,
// Y^T[N, M] = op_T(W as [K, N]) . X^T as [K, M].
void Session::input_gemm(cublasHandle_t blas, const LayerData& layer, const float* x,
                         std::int64_t row0, std::int64_t rows) {
  const float one = 1.0f, zero = 0.0f;
  check(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, 4 * layer.hid, static_cast<int>(rows),
                    layer.in + 1, &one, layer.wx.get(), layer.ld_x, x + row0 * layer.ld_x,
                    layer.ld_x, &zero, layer.zx.get() + row0 * 4 * layer.hid, 4 * layer.hid),
        "cublasSgemm (input projection)");
}

// Forks every layer's streams from `origin`, runs the wavefront, joins them back. On a
// failure what was already enqueued on the layers' streams still runs: `origin` (and with it
// the next call's copies into the session's buffers) is joined to it before the error goes on.
void Session::enqueue_compute(cudaStream_t origin, int batch, int time, std::int32_t layout) {
  try {
    if (stack_planned(batch)) {
      enqueue_stack(origin, batch, time, layout);
    } else {
      enqueue_wavefront(origin, batch, time, layout);
    }
  } catch (...) {
    try {
      join_streams(origin);
    } catch (...) {  // (the first error is the one to report)
    }
    throw;
  }
}

void Session::enqueue_wavefront(cudaStream_t origin, int batch, int time, std::int32_t layout) {
  const std::int64_t B = batch, T = time;
  check(cudaEventRecord(ev_fork_.get(), origin), "cudaEventRecord");
  for (LayerData& ld : layers_) {
    check(cudaStreamWaitEvent(ld.rec.get(), ev_fork_.get(), 0), "cudaStreamWaitEvent");
    if (ld.proj) check(cudaStreamWaitEvent(ld.proj.get(), ev_fork_.get(), 0), "cudaStreamWaitEvent");
  }
  // Layer 0: one input GEMM for all T steps.
  input_gemm(layers_[0].rec_blas.get(), layers_[0], d_x_.get(), 0, T * B);
  const std::int64_t C = chunk_steps(B, T);
  for (std::int64_t t0 = 0; t0 < T; t0 += C) {
    const std::int64_t t1 = std::min(T, t0 + C);
    for (std::size_t l = 0; l < layers_.size(); ++l) enqueue_chunk(l, t0, t1, batch, time, layout);
  }
  join_streams(origin);
}

// Layer l's steps [t0, t1): for l >= 1 first this chunk's input projection, once layer l-1
// has produced these steps; then per step the recurrent step of the layer's plan.
void Session::enqueue_chunk(std::size_t l, std::int64_t t0, std::int64_t t1, int batch,
                            int time, std::int32_t layout) {
  const std::int64_t B = batch;
  LayerData& ld = layers_[l];
  if (l > 0) {
    const LayerData& prev = layers_[l - 1];
    check(cudaStreamWaitEvent(ld.proj.get(), prev.ev_done.get(), 0), "cudaStreamWaitEvent");
    input_gemm(ld.proj_blas.get(), ld, prev.hseq.get(), t0 * B, (t1 - t0) * B);
    check(cudaEventRecord(ld.ev_proj.get(), ld.proj.get()), "cudaEventRecord");
    check(cudaStreamWaitEvent(ld.rec.get(), ld.ev_proj.get(), 0), "cudaStreamWaitEvent");
  }
  enqueue_steps(l, t0, t1, batch, time, layout, step_path(ld, batch));
  if (l + 1 < layers_.size()) check(cudaEventRecord(ld.ev_done.get(), ld.rec.get()), "cudaEventRecord");
}

// The path of layer ld's steps for a batch: the persistent kernel where planned (and not
// turned off; on one cluster where that is planned too), else the fused step where planned
// (persistent batches fall back to it, the same bits), else cuBLAS + the step kernel.
StepPath Session::step_path(const LayerData& ld, int batch) const {
  if (persistent_on() && ld.plan.persistent(batch)) {
    return ld.plan.cluster(batch) ? StepPath::kCluster : StepPath::kPersistent;
  }
  if (ld.plan.fused(batch) || ld.plan.persistent(batch)) return StepPath::kFused;
  return StepPath::kCublas;
}

// Layer l's recurrent steps [t0, t1) of a call of (batch, time, layout) on its rec stream,
// on `path`.
void Session::enqueue_steps(std::size_t l, std::int64_t t0, std::int64_t t1, int batch,
                            int time, std::int32_t layout, StepPath path) {
  const std::int64_t B = batch, T = time;
  const float one = 1.0f;
  LayerData& ld = layers_[l];
  const std::int64_t H = ld.hid, G = 4 * H;
  float* c = d_state_.get() + B * ld.state_c_row;
  float* h = d_state_.get() + B * ld.state_h_row;
  float* hbuf = ld.hbuf.get();
  const OutputRows out = output_rows(l, batch, time, layout);
  // Small batches: the persistent kernel (one launch for the chunk: on one thread-block
  // cluster where planned, cuda.cluster=on), or one fused kernel per step, h alternating
  // between the state's h (even steps read it) and hbuf (odd steps read it); else a cuBLAS
  // GEMM + the step kernel.
  const bool cluster = path == StepPath::kCluster;
  const bool persistent = persistent_path(path);
  const bool fused = path == StepPath::kFused;
  if (cluster) {
    ClusterArgs a;
    a.layer = persistent_layer(l, batch, time, layout, false);
    a.len = d_len_.get();
    a.t0 = static_cast<int>(t0);
    a.t1 = static_cast<int>(t1);
    a.batch = batch;
    a.units = ld.plan.cluster_units;
    a.finalize = t1 == T;
    check_launch(launch_lstm_cluster(ld.rec.get(), a, ld.plan.cluster_ctas,
                                     cluster_smem_bytes(batch, ld.hid, a.units)),
                 "lstm_cluster_kernel");
  } else if (persistent) {
    const int ctas = persistent_ctas(ld.hid);
    if (t0 == 0) {
      check(cudaMemsetAsync(ld.sync.get(), 0, persistent_sync_words(ctas) * sizeof(unsigned),
                            ld.rec.get()),
            "cudaMemsetAsync (persistent flags)");
    }
    PersistentArgs a = persistent_args(t0, t1, batch, ld.sync.get());
    a.finalize = t1 == T;
    a.layers = 1;
    a.layer[0] = persistent_layer(l, batch, time, layout, false);
    // The hybrid tier (cuda.hybrid): part of W_h in shared memory, the rest through L2.
    const bool hybrid = ld.plan.hybrid(batch);
    const int resident = ld.plan.hybrid_resident;
    if (hybrid) a.layer[0].resident = resident;
    const std::size_t smem = hybrid ? persistent_resident_smem_bytes(batch, ld.hid, resident)
                                    : persistent_smem_bytes(batch, ld.hid, 0);
    check_launch(launch_lstm_persistent(ld.rec.get(), a, smem, true,
                                        hybrid ? ld.l2_window : L2Window{}),
                 "lstm_persistent_kernel");
  }
  for (std::int64_t t = persistent ? t1 : t0; t < t1; ++t) {
    float* z = ld.zx.get() + t * B * G;
    if (fused) {
      const bool even = t % 2 == 0;
      check(launch_lstm_rec_step(ld.rec.get(), ld.wh.get(), z, ld.bias.get(), even ? h : hbuf,
                                 even ? hbuf : h, c, out.at(t), out.stride, d_len_.get(),
                                 static_cast<int>(t), batch, ld.hid),
            "lstm_rec_step_kernel");
    } else {
      // z += h . W_h^T (in place: beta = 1).
      check(cublasSgemm(ld.rec_blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(G), batch,
                        ld.hid, &one, ld.wh.get(), ld.hid, h, ld.hid, &one, z,
                        static_cast<int>(G)),
            "cublasSgemm (recurrent)");
      check(launch_lstm_step(ld.rec.get(), z, ld.bias.get(), c, h, out.at(t), out.stride,
                             d_len_.get(), static_cast<int>(t), batch, ld.hid),
            "lstm_step_kernel");
    }
  }
  // After an odd number of double-buffered steps the last h is in hbuf: back into the state
  // (the persistent kernel does that itself: finalize).
  if (fused && t1 == T && T % 2 == 1) {
    check(cudaMemcpyAsync(h, hbuf, static_cast<std::size_t>(B * H) * sizeof(float),
                          cudaMemcpyDeviceToDevice, ld.rec.get()),
          "cudaMemcpyAsync (h buffer)");
  }
}

// Where layer l's output rows go in a call of (batch, time, layout).
OutputRows Session::output_rows(std::size_t l, int batch, int time, std::int32_t layout) {
  const std::int64_t B = batch, T = time;
  const LayerData& ld = layers_[l];
  const LayerData& last = layers_.back();
  if (l + 1 < layers_.size()) return {ld.hseq.get(), B * ld.ld_next, ld.ld_next};
  if (layout == SLSTM_TIME_MAJOR) return {d_out_.get(), B * last.hid, last.hid};
  return {d_out_.get(), last.hid, T * last.hid};
}

// Layer l in a persistent launch: its own input projection from the layer below's rows or,
// for layer 0, the augmented input (own_input), else the precomputed pre-activations zx.
PersistentLayer Session::persistent_layer(std::size_t l, int batch, int time,
                                          std::int32_t layout, bool own_input) {
  const std::int64_t B = batch;
  LayerData& ld = layers_[l];
  PersistentLayer p;
  p.wh = ld.wh.get();
  if (own_input) {
    p.wx = ld.wx.get();
    p.src = l > 0 ? layers_[l - 1].hseq.get() : d_x_.get();
    p.src_step = B * ld.ld_x;
    p.ld_x = ld.ld_x;
  } else {
    p.z = ld.zx.get();
    p.z_step = B * 4 * ld.hid;
  }
  p.bias = ld.bias.get();
  p.h_even = d_state_.get() + B * ld.state_h_row;
  p.h_odd = ld.hbuf.get();
  p.c = d_state_.get() + B * ld.state_c_row;
  const OutputRows out = output_rows(l, batch, time, layout);
  p.y = out.y;
  p.y_step = out.step;
  p.y_stride = out.stride;
  p.hidden = ld.hid;
  return p;
}

PersistentArgs Session::persistent_args(std::int64_t t0, std::int64_t t1, int batch,
                                        unsigned* sync) const {
  PersistentArgs a;
  a.len = d_len_.get();
  a.t0 = static_cast<int>(t0);
  a.t1 = static_cast<int>(t1);
  a.batch = batch;
  a.sync = sync;
  a.status = d_status_;
  a.timeout_ns = persistent_timeout_ns_;
  return a;
}

// The whole stack as ONE persistent launch (stack_planned): every layer's CTAs running the
// wavefront, each layer >= 1 projecting its input itself, and layer 0 too where the plan
// says so (x0_batches), else layer 0 reads the input GEMM's result for all T (run first).
// After a failure of the persistent kernel (persistent_off_), the same kernel one step of
// one layer per launch, in step order: no waiting, no co-residency, the same numbers.
void Session::enqueue_stack(cudaStream_t origin, int batch, int time, std::int32_t layout) {
  LayerData& first = layers_.front();
  const cudaStream_t s = first.rec.get();
  const std::int64_t B = batch, T = time;
  check(cudaEventRecord(ev_fork_.get(), origin), "cudaEventRecord");
  check(cudaStreamWaitEvent(s, ev_fork_.get(), 0), "cudaStreamWaitEvent");
  const bool x0 = StepPlan::has(stack_.x0_batches, batch);
  if (!x0) input_gemm(first.rec_blas.get(), first, d_x_.get(), 0, T * B);
  std::size_t smem = 0;
  int ctas = 0;
  PersistentArgs a = persistent_args(0, T, batch, d_stack_sync_.get());
  a.layers = static_cast<int>(layers_.size());
  std::size_t layer_smem[kMaxStackLayers] = {};  // (no allocation in a call: graphs may be off)
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerData& ld = layers_[l];
    const bool own = l > 0 || x0;
    a.layer[l] = persistent_layer(l, batch, time, layout, own);
    a.layer[l].cta_begin = ctas;
    ctas += persistent_ctas(ld.hid);
    layer_smem[l] = persistent_smem_bytes(batch, ld.hid, own ? ld.ld_x : 0);
    smem = std::max(smem, layer_smem[l]);
  }
  const bool persistent = persistent_on();
  if (persistent) {
    check(cudaMemsetAsync(d_stack_sync_.get(), 0, persistent_sync_words(ctas) * sizeof(unsigned),
                          s),
          "cudaMemsetAsync (persistent flags)");
    a.finalize = true;
    check_launch(launch_lstm_persistent(s, a, smem, true), "lstm_persistent_kernel (stack)");
  } else {
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::size_t l = 0; l < layers_.size(); ++l) {
        PersistentArgs one = persistent_args(t, t + 1, batch, d_stack_sync_.get());
        one.layers = 1;
        one.layer[0] = a.layer[l];
        one.layer[0].cta_begin = 0;
        check_launch(launch_lstm_persistent(s, one, layer_smem[l], false),
                     "lstm_persistent_kernel (stack, one step)");
      }
    }
  }
  // After an odd number of steps each layer's last h is in its hbuf: back into the state
  // (the persistent launch does that itself: finalize).
  if (!persistent && T % 2 == 1) {
    for (LayerData& ld : layers_) {
      check(cudaMemcpyAsync(d_state_.get() + B * ld.state_h_row, ld.hbuf.get(),
                            static_cast<std::size_t>(B * ld.hid) * sizeof(float),
                            cudaMemcpyDeviceToDevice, s),
            "cudaMemcpyAsync (h buffer)");
    }
  }
  check(cudaEventRecord(first.ev_join_rec.get(), s), "cudaEventRecord");
  check(cudaStreamWaitEvent(origin, first.ev_join_rec.get(), 0), "cudaStreamWaitEvent");
}

// Every layer stream back into the origin.
void Session::join_streams(cudaStream_t origin) {
  for (LayerData& ld : layers_) {
    check(cudaEventRecord(ld.ev_join_rec.get(), ld.rec.get()), "cudaEventRecord");
    check(cudaStreamWaitEvent(origin, ld.ev_join_rec.get(), 0), "cudaStreamWaitEvent");
    if (ld.proj) {
      check(cudaEventRecord(ld.ev_join_proj.get(), ld.proj.get()), "cudaEventRecord");
      check(cudaStreamWaitEvent(origin, ld.ev_join_proj.get(), 0), "cudaStreamWaitEvent");
    }
  }
}

cudaGraphExec_t Session::graph_for(int batch, int time, std::int32_t layout) {
  if (cudaGraphExec_t cached = graphs_.find(batch, time, layout)) return cached;
  return graphs_.insert(batch, time, layout, 0, capture_compute(batch, time, layout));
}

// The compute of (batch, time, layout), captured on capture_ and instantiated.
GraphExec Session::capture_compute(int batch, int time, std::int32_t layout) {
  check(cudaStreamBeginCapture(capture_.get(), cudaStreamCaptureModeThreadLocal),
        "cudaStreamBeginCapture");
  try {
    enqueue_compute(capture_.get(), batch, time, layout);
  } catch (...) {
    cudaGraph_t broken = nullptr;
    (void)cudaStreamEndCapture(capture_.get(), &broken);
    if (broken != nullptr) (void)cudaGraphDestroy(broken);
    (void)cudaGetLastError();
    throw;
  }
  cudaGraph_t graph = nullptr;
  check_launch(cudaStreamEndCapture(capture_.get(), &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  check_launch(e, "cudaGraphInstantiate");
  return GraphExec(exec);
}

}  // namespace slstm_cuda
