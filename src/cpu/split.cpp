#include "split.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace slstm::cpu {
namespace {

constexpr double kGroupColumns = 64;  // gate columns of a 16-unit group (step_kernels.hpp kRow)

bool usable(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

Thresholds fixed_thresholds(bool avx512) {
  Thresholds t;
  t.flops_per_worker = 1.5e5;
  t.bytes_per_worker = 1.2e5;
  t.proj_flops_per_worker = 2e6;
  t.steal_fma = 262144;
  t.batch_split_bytes = 1.5e6;
  t.size_active = avx512;
  // The rates cpu.calibration=measured found on that Xeon's AVX-512 kernel (about half the
  // FLOPs on AVX2).
  t.flops_per_s = avx512 ? 100e9 : 50e9;
  t.bytes_per_s = 25e9;
  return t;
}

Thresholds derive_thresholds(const Machine& m) {
  Thresholds t = fixed_thresholds(true);
  const double pay_s = std::max(kMinPayS, usable(m.barrier_s) ? kBarrierMultiple * m.barrier_s
                                                               : 0.0);
  if (usable(m.flops_per_s)) {
    t.flops_per_worker = pay_s * m.flops_per_s;
    t.proj_flops_per_worker = kWakeS * m.flops_per_s;
    t.steal_fma = kStealS * m.flops_per_s / 2;
  }
  if (usable(m.flops_per_s)) t.flops_per_s = m.flops_per_s;
  if (usable(m.bytes_per_s)) {
    t.bytes_per_worker = pay_s * m.bytes_per_s;
    t.bytes_per_s = m.bytes_per_s;
  }
  return t;
}

CallSplit choose_split(std::int64_t B, std::int64_t T, const std::vector<LayerWork>& layers,
                       int P, const Thresholds& t) {
  double step_flops = 0.0, weight_bytes = 0.0, proj_flops = 0.0, widest = 0.0;
  double smallest_group = std::numeric_limits<double>::max();
  for (const LayerWork& l : layers) {
    const double b = static_cast<double>(B), h = static_cast<double>(l.H);
    smallest_group = std::min(smallest_group, b * h * kGroupColumns);
    step_flops += 8.0 * b * h * h;
    weight_bytes += l.wh_bytes;
    widest = std::max(widest, l.wh_bytes);
    proj_flops += 8.0 * b * static_cast<double>(T) * static_cast<double>(l.I) * h;
  }
  CallSplit s;
  P = std::max(P, 1);
  s.steal = smallest_group >= t.steal_fma;
  if (B >= t.min_rows_per_worker * P && T >= t.min_split_time && widest <= t.batch_split_bytes) {
    s.split_batch = true;
    s.active = s.workers = P;
  } else if (!t.size_active) {
    s.active = s.workers = P;
  } else {
    s.active = static_cast<int>(std::clamp<double>(
        std::max(step_flops / t.flops_per_worker, weight_bytes / t.bytes_per_worker), 1.0, P));
    s.workers = std::max(s.active, static_cast<int>(std::clamp<double>(
                                       proj_flops / t.proj_flops_per_worker, 1.0, P)));
  }
  return s;
}

double one_core_seconds(double flops, double bytes, const Thresholds& t) {
  if (!usable(t.flops_per_s) || !usable(t.bytes_per_s)) {
    return std::numeric_limits<double>::infinity();  // unknown: as if long (wake them)
  }
  return std::max(flops / t.flops_per_s, bytes / t.bytes_per_s);
}

double one_core_seconds(std::int64_t B, std::int64_t T, const std::vector<LayerWork>& layers,
                        const Thresholds& t) {
  double s = 0.0;
  for (const LayerWork& l : layers) {
    const double i = static_cast<double>(l.I);
    const double h = static_cast<double>(std::max<std::int64_t>(l.H, 1));
    const double flops = 8.0 * static_cast<double>(B) * static_cast<double>(T) * (i + h) * h;
    const double bytes = l.wh_bytes * (i / h + static_cast<double>(T));
    s += one_core_seconds(flops, bytes, t);
  }
  return s;
}

bool alone_when_asleep(double one_core_s, int P) {
  if (P <= 1) return true;
  return one_core_s * (1.0 - 1.0 / P) < kAsleepS;
}

bool alone_when_asleep(std::int64_t B, std::int64_t T, const std::vector<LayerWork>& layers,
                       int P, const Thresholds& t) {
  return alone_when_asleep(one_core_seconds(B, T, layers, t), P);
}

}  // namespace slstm::cpu
