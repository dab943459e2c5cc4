// The CPU fast path's work sharing (src/cpu/split.{hpp,cpp}) on models of machines: what the
// thresholds derived from measured parameters are, and which split a call gets from them.
// Pure arithmetic, so these run on every machine whatever its CPU.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "cpu/split.hpp"

namespace c = slstm::cpu;

namespace {

// A layer of hidden size H with input size I, as the float32 kernels store its W_h.
c::LayerWork layer(std::int64_t I, std::int64_t H) {
  return {I, H, 16.0 * static_cast<double>(H) * static_cast<double>(H)};
}

// The seed scenario: input 128, layers [100, 200, 300].
std::vector<c::LayerWork> seed() { return {layer(128, 100), layer(100, 200), layer(200, 300)}; }

// Machines with parameters of the order calibration.cpp measures: barrier, kernel FLOP/s on
// cached weights, bytes/s streamed.  A dearer barrier and a faster kernel (an AVX-512 Xeon),
// and the AVX2-only Zen 3 EPYC this was measured on.
c::Machine xeon() { return {0.4e-6, 120e9, 40e9}; }
c::Machine zen3() { return {0.05e-6, 50e9, 40e9}; }

}  // namespace

TEST_CASE("fixed calibration: the built-in constants, sized workers on AVX-512 only",
          "[split]") {
  const c::Thresholds t = c::fixed_thresholds(true);
  CHECK(t.flops_per_worker == 1.5e5);
  CHECK(t.bytes_per_worker == 1.2e5);
  CHECK(t.proj_flops_per_worker == 2e6);
  CHECK(t.steal_fma == 262144);
  CHECK(t.batch_split_bytes == 1.5e6);
  CHECK(t.min_rows_per_worker == 5);
  CHECK(t.min_split_time == 8);
  CHECK(t.size_active);
  CHECK_FALSE(c::fixed_thresholds(false).size_active);
}

TEST_CASE("measured calibration: the batch split's W_h limit stays 1.5 MB whatever the rates",
          "[split]") {
  CHECK(c::derive_thresholds(xeon()).batch_split_bytes == 1.5e6);
  CHECK(c::derive_thresholds(zen3()).batch_split_bytes == 1.5e6);
}

TEST_CASE("measured calibration: a worker's share must outlast the barrier at the kernel's rate",
          "[split]") {
  const c::Machine m = xeon();
  const c::Thresholds t = c::derive_thresholds(m);
  const double pay_s = c::kBarrierMultiple * m.barrier_s;
  CHECK(t.flops_per_worker == Approx(pay_s * m.flops_per_s));
  CHECK(t.bytes_per_worker == Approx(pay_s * m.bytes_per_s));
  CHECK(t.proj_flops_per_worker == Approx(c::kWakeS * m.flops_per_s));
  CHECK(t.steal_fma == Approx(c::kStealS * m.flops_per_s / 2));
  CHECK(t.size_active);
  // A barrier too cheap to measure still asks for kMinPayS of work.
  c::Machine free_barrier = m;
  free_barrier.barrier_s = 1e-12;
  CHECK(c::derive_thresholds(free_barrier).flops_per_worker ==
        Approx(c::kMinPayS * m.flops_per_s));
}

TEST_CASE("measured calibration: unusable measurements fall back to the fixed constants",
          "[split]") {
  const c::Thresholds fixed = c::fixed_thresholds(true);
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity()}) {
    const c::Thresholds t = c::derive_thresholds({bad, bad, bad});
    CHECK(t.flops_per_worker == fixed.flops_per_worker);
    CHECK(t.bytes_per_worker == fixed.bytes_per_worker);
    CHECK(t.proj_flops_per_worker == fixed.proj_flops_per_worker);
    CHECK(t.steal_fma == fixed.steal_fma);
    CHECK(t.batch_split_bytes == fixed.batch_split_bytes);
  }
}

TEST_CASE("split: the seed at T = 100 splits the batch, a 4 MB W_h the units", "[split]") {
  for (const c::Machine& m : {xeon(), zen3()}) {
    const c::CallSplit seed_split = c::choose_split(10, 100, seed(), 2, c::derive_thresholds(m));
    CHECK(seed_split.split_batch);  // its widest W_h: 1.44 MB
    CHECK(seed_split.workers == 2);
    CHECK(seed_split.active == 2);
    const c::CallSplit h512 =
        c::choose_split(16, 25, {layer(512, 512)}, 2, c::derive_thresholds(m));
    CHECK_FALSE(h512.split_batch);
    CHECK(h512.active == 2);
  }
}

TEST_CASE("split: the batch split needs 5 rows per worker and 8 steps", "[split]") {
  const c::Thresholds t = c::derive_thresholds(xeon());
  const std::vector<c::LayerWork> small = {layer(64, 64)};
  CHECK(c::choose_split(10, 8, small, 2, t).split_batch);
  CHECK_FALSE(c::choose_split(9, 8, small, 2, t).split_batch);
  CHECK_FALSE(c::choose_split(10, 7, small, 2, t).split_batch);
}

TEST_CASE("split: a step too small for the barrier runs on one worker, a larger one on all",
          "[split]") {
  const c::Thresholds t = c::derive_thresholds(xeon());
  // H = 16, B = 1: 2048 FLOPs a step, far below 0.4 us at 120 GFLOP/s.
  const c::CallSplit tiny = c::choose_split(1, 100, {layer(16, 16)}, 4, t);
  CHECK(tiny.active == 1);
  CHECK(tiny.workers == 1);
  // H = 1024, B = 1: 8.4 MFLOPs and 16 MB of W_h a step.
  const c::CallSplit large = c::choose_split(1, 25, {layer(1024, 1024)}, 4, t);
  CHECK(large.active == 4);
  CHECK(large.workers == 4);
}

TEST_CASE("split: the workers are the step's FLOPs or its W_h bytes per worker, whichever pays "
          "for more", "[split]") {
  const c::Thresholds t = c::derive_thresholds(xeon());  // 48000 FLOPs, 16000 bytes a worker
  // B = 1, H = 64: 32768 FLOPs (under one worker's share), 65536 W_h bytes (four shares).
  CHECK(c::choose_split(1, 100, {layer(64, 64)}, 4, t).active == 4);
  // B = 16, H = 64, T = 4 (no batch split): 524288 FLOPs (10 shares), 65536 bytes (4).
  CHECK(c::choose_split(16, 4, {layer(64, 64)}, 8, t).active == 8);
}

TEST_CASE("split: a dearer barrier (more workers than CPUs) wakes fewer workers", "[split]") {
  const std::vector<c::LayerWork> l = {layer(128, 128)};
  c::Machine cheap = zen3(), dear = zen3();
  dear.barrier_s = 17e-6;  // a pass that yields, as measured with 3 workers on 2 CPUs
  const int a_cheap = c::choose_split(1, 100, l, 3, c::derive_thresholds(cheap)).active;
  const int a_dear = c::choose_split(1, 100, l, 3, c::derive_thresholds(dear)).active;
  CHECK(a_cheap == 3);
  CHECK(a_dear == 1);
}

TEST_CASE("split: a slower kernel (the portable one) pays a barrier with fewer FLOPs", "[split]") {
  const std::vector<c::LayerWork> l = {layer(48, 48)};
  c::Machine fast = xeon(), slow = xeon();
  slow.flops_per_s = fast.flops_per_s / 8;
  slow.bytes_per_s = fast.bytes_per_s / 8;
  const int a_fast = c::choose_split(1, 100, l, 8, c::derive_thresholds(fast)).active;
  const int a_slow = c::choose_split(1, 100, l, 8, c::derive_thresholds(slow)).active;
  CHECK(a_fast < a_slow);
}

TEST_CASE("split: projections take every worker their FLOPs pay for, never fewer than the recurrence",
          "[split]") {
  const c::Thresholds t = c::derive_thresholds(xeon());
  // H = 16, B = 1: a cheap recurrence, but a long input projection (I = 4096, T = 1000).
  const c::CallSplit s = c::choose_split(1, 1000, {layer(4096, 16)}, 4, t);
  CHECK(s.active < s.workers);
  CHECK(s.workers == 4);
  for (std::int64_t B : {1, 3, 16}) {
    const c::CallSplit any = c::choose_split(B, 3, seed(), 4, t);
    CHECK(any.active >= 1);
    CHECK(any.active <= any.workers);
    CHECK(any.workers <= 4);
  }
}

TEST_CASE("split: fixed calibration keeps every worker on the AVX2 and portable kernels",
          "[split]") {
  const c::CallSplit s = c::choose_split(1, 100, {layer(16, 16)}, 4, c::fixed_thresholds(false));
  CHECK(s.active == 4);
  CHECK(s.workers == 4);
  CHECK(c::choose_split(1, 100, {layer(16, 16)}, 4, c::fixed_thresholds(true)).active == 1);
}

TEST_CASE("split: the batch split takes a W_h of exactly the limit", "[split]") {
  const c::Thresholds t = c::fixed_thresholds(true);
  CHECK(c::choose_split(10, 8, {{64, 64, t.batch_split_bytes}}, 2, t).split_batch);
  CHECK_FALSE(c::choose_split(10, 8, {{64, 64, t.batch_split_bytes + 1}}, 2, t).split_batch);
}

TEST_CASE("split: a group is stolen only when it is worth moving", "[split]") {
  const c::Thresholds t = c::fixed_thresholds(true);
  // FMAs per group and step: B x H x 64; the threshold is 262144.
  CHECK(c::choose_split(4, 10, {layer(1024, 1024)}, 2, t).steal);        // 262144
  CHECK_FALSE(c::choose_split(3, 10, {layer(1024, 1024)}, 2, t).steal);  // 196608
}

TEST_CASE("asleep: one core's time is each layer's FLOPs or weight bytes, whichever is slower",
          "[split][asleep]") {
  c::Thresholds t = c::fixed_thresholds(true);
  t.flops_per_s = 100e9;
  t.bytes_per_s = 25e9;
  // H = I = 256, B = 1, T = 1: 8 * 512 * 256 = 1.05 MFLOP (10.5 us) against W_x + W_h =
  // 2 MiB (83.9 us): the bytes.
  CHECK(c::one_core_seconds(1, 1, {layer(256, 256)}, t) ==
        Approx(2.0 * 16 * 256 * 256 / 25e9));
  // B = 64: 67 MFLOP (671 us) against the same bytes: the FLOPs.
  CHECK(c::one_core_seconds(64, 1, {layer(256, 256)}, t) ==
        Approx(8.0 * 64 * 512 * 256 / 100e9));
  // Layers add up; W_h is read every step.
  CHECK(c::one_core_seconds(1, 3, {layer(256, 256), layer(256, 256)}, t) ==
        Approx(2 * 4.0 * 16 * 256 * 256 / 25e9));
}

TEST_CASE("asleep: a frame of the seed runs alone, a frame of H = 1024 or a long call wakes them",
          "[split][asleep]") {
  const c::Thresholds t = c::fixed_thresholds(true);  // 100 GFLOP/s, 25 GB/s
  // Seed, B = 10, T = 1: ~186 us on one core; two workers would take ~93 us off, less than
  // the ~250 us a sleeping worker costs.
  CHECK(c::alone_when_asleep(10, 1, seed(), 2, t));
  // A single layer of H = 512 (8 MiB of weights, ~340 us): 2 workers take ~170 us off.
  CHECK(c::alone_when_asleep(1, 1, {layer(512, 512)}, 2, t));
  // H = 1024 (32 MiB, ~1.3 ms): waking pays.
  CHECK_FALSE(c::alone_when_asleep(1, 1, {layer(1024, 1024)}, 2, t));
  // The seed over 10 steps (~1.9 ms).
  CHECK_FALSE(c::alone_when_asleep(10, 10, seed(), 2, t));
  // More workers take more off: the H = 512 frame (~340 us) wakes 7 (~290 us off).
  CHECK_FALSE(c::alone_when_asleep(1, 1, {layer(512, 512)}, 8, t));
}

TEST_CASE("asleep: one worker is always alone and without rates the workers are woken",
          "[split][asleep]") {
  c::Thresholds t = c::fixed_thresholds(true);
  CHECK(c::alone_when_asleep(1000, 1000, {layer(2048, 2048)}, 1, t));
  t.flops_per_s = 0;
  CHECK_FALSE(c::alone_when_asleep(1, 1, {layer(16, 16)}, 2, t));
  CHECK(c::one_core_seconds(1, 1, {layer(16, 16)}, t) ==
        std::numeric_limits<double>::infinity());
}

TEST_CASE("asleep: one worker is alone even when the rates, and so its time, are unknown",
          "[split][asleep]") {
  c::Thresholds t = c::fixed_thresholds(true);
  t.flops_per_s = 0;  // one core's time: infinite
  CHECK(c::alone_when_asleep(1, 1, {layer(16, 16)}, 1, t));
  CHECK(c::alone_when_asleep(std::numeric_limits<double>::infinity(), 1));
}

TEST_CASE("asleep: measured calibration takes the machine's rates", "[split][asleep]") {
  const c::Thresholds t = c::derive_thresholds(zen3());
  CHECK(t.flops_per_s == 50e9);
  CHECK(t.bytes_per_s == 40e9);
  const c::Thresholds f = c::derive_thresholds({0.1e-6, 0.0, -1.0});
  CHECK(f.flops_per_s == c::fixed_thresholds(true).flops_per_s);
  CHECK(f.bytes_per_s == c::fixed_thresholds(true).bytes_per_s);
}
