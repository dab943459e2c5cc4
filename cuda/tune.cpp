// The plan tuned on the device (keyed setting cuda.tune=on; issue 19 item 3). The built-in
// plan (plan_steps, plan_persistent) says where each step path won on the H100 it was
// measured on; on another card it may be wrong. With tuning, the first call of each batch
// b <= 32 times, per layer, every step path the plan allows for b -- cuBLAS + the step
// kernel, the fused step where it fits, the persistent kernel where it is planned -- on the
// layer's own stream over min(T, 16) steps of that very call's buffers (before its state is
// set: whatever the timing runs write, the call itself then overwrites), keeps the fastest
// in the layer's plan for b, and records it in the tuning cache (tune_cache.hpp), in memory
// and, with cuda.tune_file=PATH, in that file for later sessions, which then take it from
// there without timing. A path within 2 % of the built-in plan's choice does not replace it
// (ties stay deterministic). Where the whole stack can run as one persistent launch, that
// is then timed against the layers' tuned paths over the call's whole compute, and that
// choice is kept too (a stack entry of the cache). Every path gives the reference's numbers
// within the FP32 (or TF32) tolerance: tuning changes speed, not the accuracy promised.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels.cuh"
#include "session.hpp"

namespace slstm_cuda {
namespace {

constexpr int kTuneSteps = 16;   // steps timed per run
constexpr int kTuneRuns = 3;     // timed runs per path, after one warm-up run
constexpr float kKeepDefault = 1.02f;

Event timing_event() {
  cudaEvent_t e = nullptr;
  check(cudaEventCreate(&e), "cudaEventCreate");
  return Event(e);
}

}  // namespace

// cuda.tune / cuda.tune_file; the device's key; the file's entries (a file that cannot be
// read is remembered as the reason and left alone: the session then tunes without it).
void Session::init_tuning(const slstm_cuda_session_desc& d) {
  tune_ = d.tune != 0;
  if (!tune_) return;
  tune_file_ = d.tune_file != nullptr ? d.tune_file : "";
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
  std::string name(prop.name);
  for (char& ch : name) {
    if (ch < 0x20 || ch > 0x7e) ch = '?';  // printable ASCII, no TAB: the cache file's rule
  }
  device_key_ = name + " sm" + std::to_string(prop.major) + std::to_string(prop.minor) + " " +
                std::to_string(prop.multiProcessorCount) + "sm";
  ev_time0_ = timing_event();
  ev_time1_ = timing_event();
  if (!tune_file_.empty()) tune_file_ = tune_file_target(tune_file_, &tune_file_error_);
  if (!tune_file_.empty() && !tune_cache_.load(tune_file_, &tune_file_error_)) {
    tune_file_.clear();  // not ours to overwrite
  }
}

std::vector<StepPath> Session::candidates(const LayerData& ld, int batch) const {
  std::vector<StepPath> c = {StepPath::kCublas};
  // (cuda.fused=never keeps the fused step out; its buffer may exist for the persistent
  // kernel's fallback.)
  if (fused_mode_ != 0 && ld.hbuf && rec_step_fits(batch, ld.hid)) c.push_back(StepPath::kFused);
  if (persistent_on() && ld.plan.persistent(batch)) {
    c.push_back(StepPath::kPersistent);
    if (ld.plan.cluster(batch)) c.push_back(StepPath::kCluster);  // (cuda.cluster=on)
  }
  return c;
}

void Session::apply_path(LayerData& ld, int batch, StepPath path) {
  const std::uint32_t bit = 1u << (batch - 1);
  ld.plan.fused_batches &= ~bit;
  if (path == StepPath::kFused) ld.plan.fused_batches |= bit;
  if (!persistent_path(path)) ld.plan.persistent_batches &= ~bit;
  if (path != StepPath::kCluster) ld.plan.cluster_batches &= ~bit;
}

// Times layer l's steps [0, steps) on `path` (one warm-up run, then the best of kTuneRuns);
// false when the path cannot run (the persistent kernel refused or gave up: it is then
// turned off for the session).
bool Session::time_path(std::size_t l, StepPath path, int batch, int steps, int time,
                        std::int32_t layout, float* ms) {
  LayerData& ld = layers_[l];
  float best = std::numeric_limits<float>::infinity();
  try {
    for (int run = 0; run <= kTuneRuns; ++run) {
      check(cudaEventRecord(ev_time0_.get(), ld.rec.get()), "cudaEventRecord");
      enqueue_steps(l, 0, steps, batch, time, layout, path);
      check(cudaEventRecord(ev_time1_.get(), ld.rec.get()), "cudaEventRecord");
      check(cudaEventSynchronize(ev_time1_.get()), "cudaEventSynchronize (tuning)");
      float t = 0.0f;
      check(cudaEventElapsedTime(&t, ev_time0_.get(), ev_time1_.get()), "cudaEventElapsedTime");
      if (run > 0) best = std::min(best, t);
      // A kernel that gave up waits out its timeout in every run: one is enough to know.
      if (persistent_path(path) && persistent_failed()) break;
    }
  } catch (const LaunchRefused&) {
    if (!persistent_path(path)) throw;
    turn_persistent_off();
    return false;
  }
  if (persistent_path(path) && persistent_failed()) {
    turn_persistent_off();
    return false;
  }
  *ms = best;
  return true;
}

// Times the whole compute of (batch, time, layout) as the plan stands, on main_ (one
// warm-up run, then the best of kTuneRuns); false when the persistent kernel failed in it
// (it is then turned off).
bool Session::time_compute(int batch, int time, std::int32_t layout, float* ms) {
  float best = std::numeric_limits<float>::infinity();
  try {
    for (int run = 0; run <= kTuneRuns; ++run) {
      check(cudaEventRecord(ev_time0_.get(), main_), "cudaEventRecord");
      enqueue_compute(main_, batch, time, layout);
      check(cudaEventRecord(ev_time1_.get(), main_), "cudaEventRecord");
      check(cudaEventSynchronize(ev_time1_.get()), "cudaEventSynchronize (tuning)");
      float t = 0.0f;
      check(cudaEventElapsedTime(&t, ev_time0_.get(), ev_time1_.get()), "cudaEventElapsedTime");
      if (run > 0) best = std::min(best, t);
      if (persistent_on() && persistent_failed()) break;  // (as in time_path)
    }
  } catch (const LaunchRefused&) {
    if (!persistent_on()) throw;
    turn_persistent_off();
    return false;
  }
  if (persistent_failed()) {
    turn_persistent_off();
    return false;
  }
  *ms = best;
  return true;
}

void Session::tune(int batch, int time, std::int32_t layout) {
  if (!tune_ || batch > StepPlan::kPlannedBatches) return;
  const std::uint32_t bit = 1u << (batch - 1);
  if ((tuned_batches_ & bit) != 0) return;
  const int steps = std::min(time, kTuneSteps);
  // The timing runs read the call's lengths (uploaded on main_) and its layers' buffers.
  check(cudaEventRecord(ev_fork_.get(), main_), "cudaEventRecord");
  for (LayerData& ld : layers_) {
    check(cudaStreamWaitEvent(ld.rec.get(), ev_fork_.get(), 0), "cudaStreamWaitEvent");
  }
  bool learned = false;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    LayerData& ld = layers_[l];
    const std::vector<StepPath> cands = candidates(ld, batch);
    if (cands.size() < 2) continue;
    TuneKey key;
    key.device = device_key_;
    key.precision = tf32_ ? "tf32" : "fp32";
    key.input = ld.in;
    key.hidden = ld.hid;
    key.batch = batch;
    key.timed = timed_paths_name(cands);  // an entry timed among other paths is not taken
    StepPath chosen = StepPath::kCublas;
    if (tune_cache_.find(key, &chosen) &&
        std::find(cands.begin(), cands.end(), chosen) != cands.end()) {
      apply_path(ld, batch, chosen);
      continue;
    }
    const StepPath built_in = step_path(ld, batch);
    float built_in_ms = std::numeric_limits<float>::infinity();
    float best_ms = std::numeric_limits<float>::infinity();
    chosen = built_in;
    for (const StepPath p : cands) {
      float ms = 0.0f;
      if (!time_path(l, p, batch, steps, time, layout, &ms)) continue;
      if (p == built_in) built_in_ms = ms;
      if (ms < best_ms) {
        best_ms = ms;
        chosen = p;
      }
    }
    // The built-in choice stays unless beaten by more than 2 % (or it could not run).
    if (built_in_ms <= best_ms * kKeepDefault) chosen = built_in;
    if (persistent_path(chosen) && !persistent_on()) chosen = StepPath::kFused;
    apply_path(ld, batch, chosen);
    // (Under cuda.fused=never the fused step was not a candidate: a choice made without it
    // stays in this session, not in the file other sessions read.)
    if (fused_mode_ != 0) {
      tune_cache_.put(key, chosen);
      learned = true;
    }
  }
  // The whole stack as one persistent launch against the layers' tuned paths: the whole
  // compute of this call's shape, timed both ways on main_, unless the cache has the answer.
  if (stack_planned(batch) && persistent_on()) {
    StackKey key;
    key.device = device_key_;
    key.precision = tf32_ ? "tf32" : "fp32";
    key.input = layers_.front().in;
    for (const LayerData& ld : layers_) {
      key.hidden += (key.hidden.empty() ? "" : ":") + std::to_string(ld.hid);
    }
    key.batch = batch;
    bool whole = true;
    if (tune_cache_.find_stack(key, &whole)) {
      if (!whole) stack_.batches &= ~bit;
    } else {
      float stack_ms = 0.0f, layers_ms = 0.0f;
      const bool stack_ran = time_compute(batch, time, layout, &stack_ms);
      stack_.batches &= ~bit;
      const bool layers_ran = time_compute(batch, time, layout, &layers_ms);
      whole = stack_ran && persistent_on() && (!layers_ran || stack_ms <= layers_ms * kKeepDefault);
      if (whole) stack_.batches |= bit;
      // (A persistent kernel that failed while timed turned itself off: nothing to keep.)
      if (persistent_on()) {
        tune_cache_.put_stack(key, whole);
        learned = true;
      }
    }
  }
  tuned_batches_ |= bit;
  if (learned && !tune_file_.empty()) {
    std::string why;
    if (tune_cache_.store(tune_file_, &why)) {
      tune_file_error_.clear();
    } else {
      tune_file_error_ = why;
    }
  }
}

}  // namespace slstm_cuda
