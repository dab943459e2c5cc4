// The CUDA kernels' OWN source run on the simulator (sim.hpp), on a machine without a GPU:
// the fused recurrent step (cuda/kernels.cu) and the persistent recurrent kernel
// (cuda/persistent.cu) against a float64 reference and against each other, with their
// shared memory, warp shuffles, barriers and, for the persistent kernel, CTAs that really
// run at the same time and wait for one another's step flags. What the simulator does not
// model (timing, caches, a weaker memory order than the host's): sim.hpp. These are results
// of a simulation, not of a GPU.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels.cuh"
#include "sim.hpp"

using namespace slstm_cuda;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr long long kPatientNs = 120'000'000'000LL;  // a wait bound no healthy run reaches

std::vector<float> random_floats(std::size_t n, float scale, std::mt19937& g) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Lengths that cover a full row, empty rows, one step and T - 1 steps.
std::vector<std::int32_t> lengths_for(int batch, int time) {
  const std::int32_t pattern[] = {time, 0, 1, time - 1, time, 2};
  std::vector<std::int32_t> len(static_cast<std::size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    const std::int32_t l = pattern[b % 6];
    len[static_cast<std::size_t>(b)] = l < 0 ? 0 : (l > time ? time : l);
  }
  return len;
}

// One LSTM layer in float64: wx [4H, kx] over input rows (kx = 0: none), z [T][B][4H]
// (may be empty), bias [4H] (may be empty), wh [4H, H]. h, c: [B][H] in and out; y [T][B][H]
// (0 past a row's length, where h and c stay).
struct RefLayer {
  int hidden = 0, kx = 0;
  std::vector<float> wx, wh, bias;
};
void reference_layer(const RefLayer& L, int batch, int time, const std::vector<std::int32_t>& len,
                     const std::vector<double>& x, const std::vector<float>& z,
                     std::vector<double>& h, std::vector<double>& c, std::vector<double>& y) {
  const int H = L.hidden;
  y.assign(static_cast<std::size_t>(time) * batch * H, 0.0);
  std::vector<double> zq(4);
  for (int t = 0; t < time; ++t) {
    std::vector<double> h_next = h;
    for (int b = 0; b < batch; ++b) {
      if (t >= len[static_cast<std::size_t>(b)]) continue;
      for (int u = 0; u < H; ++u) {
        for (int q = 0; q < 4; ++q) {
          const std::size_t row = static_cast<std::size_t>(q) * H + u;
          double s = L.bias.empty() ? 0.0 : L.bias[row];
          if (!z.empty()) s += z[(static_cast<std::size_t>(t) * batch + b) * 4 * H + row];
          for (int k = 0; k < L.kx; ++k) {
            s += static_cast<double>(L.wx[row * L.kx + k]) *
                 x[(static_cast<std::size_t>(t) * batch + b) * L.kx + k];
          }
          for (int k = 0; k < H; ++k) {
            s += static_cast<double>(L.wh[row * H + k]) * h[static_cast<std::size_t>(b) * H + k];
          }
          zq[q] = s;
        }
        const std::size_t i = static_cast<std::size_t>(b) * H + u;
        c[i] = c[i] * sigmoid(zq[1]) + sigmoid(zq[0]) * std::tanh(zq[2]);
        h_next[i] = std::tanh(c[i]) * sigmoid(zq[3]);
        y[(static_cast<std::size_t>(t) * batch + b) * H + u] = h_next[i];
      }
    }
    h = h_next;
  }
}

void require_close(const float* got, const std::vector<double>& want, std::size_t n,
                   const char* what) {
  INFO(what);
  for (std::size_t i = 0; i < n; ++i) {
    INFO("element " << i << ": got " << got[i] << ", float64 reference " << want[i]);
    REQUIRE(std::isfinite(got[i]));
    REQUIRE(std::fabs(got[i] - want[i]) <= 2e-5 * (1.0 + std::fabs(want[i])));
  }
}

bool same_bits(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// One layer of precomputed pre-activations z, run by the fused step kernel step by step
// (the graph path's form): h alternates between h_even (the state) and h_odd.
struct LayerRun {
  std::vector<float> h_even, h_odd, c, y;  // y [T][B][H]
};
struct OneLayer {
  int hidden, batch, time;
  RefLayer ref;
  std::vector<float> z, h0, c0;
  std::vector<std::int32_t> len;
  OneLayer(int H, int B, int T, std::uint32_t seed, bool with_bias)
      : hidden(H), batch(B), time(T), len(lengths_for(B, T)) {
    std::mt19937 g(seed);
    ref.hidden = H;
    ref.wh = random_floats(static_cast<std::size_t>(4) * H * H, 0.5f, g);
    if (with_bias) ref.bias = random_floats(static_cast<std::size_t>(4) * H, 0.3f, g);
    z = random_floats(static_cast<std::size_t>(T) * B * 4 * H, 1.0f, g);
    h0 = random_floats(static_cast<std::size_t>(B) * H, 0.8f, g);
    c0 = random_floats(static_cast<std::size_t>(B) * H, 0.8f, g);
  }
  std::size_t state() const { return static_cast<std::size_t>(batch) * hidden; }
  LayerRun fresh() const {
    LayerRun r;
    r.h_even = h0;
    r.h_odd.assign(state(), kNaN);
    r.c = c0;
    r.y.assign(static_cast<std::size_t>(time) * state(), kNaN);
    return r;
  }
  const float* bias() const { return ref.bias.empty() ? nullptr : ref.bias.data(); }
  LayerRun fused() const {
    LayerRun r = fresh();
    for (int t = 0; t < time; ++t) {
      const bool even = t % 2 == 0;
      const std::size_t zt = static_cast<std::size_t>(t) * batch * 4 * hidden;
      const cudaError_t e = launch_lstm_rec_step(
          nullptr, ref.wh.data(), z.data() + zt, bias(), even ? r.h_even.data() : r.h_odd.data(),
          even ? r.h_odd.data() : r.h_even.data(), r.c.data(),
          r.y.data() + static_cast<std::size_t>(t) * state(), hidden, len.data(), t, batch,
          hidden);
      INFO(slstm_sim::last_error());
      REQUIRE(e == cudaSuccess);
    }
    return r;
  }
  PersistentLayer layer(LayerRun& r) const {
    PersistentLayer p;
    p.wh = ref.wh.data();
    p.z = z.data();
    p.z_step = static_cast<std::int64_t>(batch) * 4 * hidden;
    p.bias = bias();
    p.h_even = r.h_even.data();
    p.h_odd = r.h_odd.data();
    p.c = r.c.data();
    p.y = r.y.data();
    p.y_step = static_cast<std::int64_t>(state());
    p.y_stride = hidden;
    p.hidden = hidden;
    return p;
  }
  // The last h of the step-by-step run: in h_odd after an odd number of steps.
  const std::vector<float>& last_h(const LayerRun& r) const {
    return time % 2 == 1 ? r.h_odd : r.h_even;
  }
};

struct Launch {
  std::vector<unsigned> sync;
  int status = 0;
  PersistentArgs args;
  explicit Launch(int ctas, int batch, const std::int32_t* len)
      : sync(persistent_sync_words(ctas), 0u) {
    args.len = len;
    args.batch = batch;
    args.sync = sync.data();
    args.status = &status;
    args.timeout_ns = kPatientNs;
  }
  cudaError_t run(int t0, int t1, bool finalize, std::size_t smem, bool cooperative = true) {
    args.t0 = t0;
    args.t1 = t1;
    args.finalize = finalize;
    return launch_lstm_persistent(nullptr, args, smem, cooperative);
  }
};

// A run over `one` gives `want`'s bits: its output, its c and its last h (a launch that
// finalizes leaves the last h in h_even whatever T's parity).
void require_same_run(const OneLayer& one, const LayerRun& got, const LayerRun& want) {
  REQUIRE(same_bits(got.y.data(), want.y.data(), want.y.size()));
  REQUIRE(same_bits(got.c.data(), want.c.data(), want.c.size()));
  REQUIRE(same_bits(got.h_even.data(), one.last_h(want).data(), one.state()));
}

}  // namespace

TEST_CASE("the fused step kernel's own source gives the float64 reference's numbers") {
  for (const int H : {1, 5, 8, 13, 40}) {
    for (const int B : {1, 2, 3, 5, 16}) {
      for (const bool with_bias : {false, true}) {
        const int T = 4;
        const OneLayer one(H, B, T, static_cast<std::uint32_t>(H * 100 + B), with_bias);
        CAPTURE(H, B, with_bias);
        const LayerRun r = one.fused();
        std::vector<double> h = widen(one.h0), c = widen(one.c0), y;
        reference_layer(one.ref, B, T, one.len, {}, one.z, h, c, y);
        require_close(r.y.data(), y, y.size(), "y");
        require_close(one.last_h(r).data(), h, h.size(), "last h");
        require_close(r.c.data(), c, c.size(), "c");
      }
    }
  }
}

TEST_CASE("the persistent kernel over one layer gives the fused step's bits in one launch or in "
          "chunks") {
  for (const int H : {8, 21}) {
    for (const int B : {1, 3, 5}) {
      for (const int T : {4, 5}) {
        const OneLayer one(H, B, T, static_cast<std::uint32_t>(7 * H + B + 1000 * T), B != 3);
        const LayerRun want = one.fused();
        for (const int chunk : {T, 2}) {
          CAPTURE(H, B, T, chunk);
          LayerRun got = one.fresh();
          const int ctas = persistent_ctas(H);
          Launch l(ctas, B, one.len.data());
          l.args.layers = 1;
          l.args.layer[0] = one.layer(got);
          const std::size_t smem = persistent_smem_bytes(B, H, 0);
          for (int t0 = 0; t0 < T; t0 += chunk) {
            const int t1 = t0 + chunk < T ? t0 + chunk : T;
            const cudaError_t e = l.run(t0, t1, t1 == T, smem);
            INFO(slstm_sim::last_error());
            REQUIRE(e == cudaSuccess);
          }
          REQUIRE(l.status == 0);
          require_same_run(one, got, want);
          // every CTA published every step
          for (int j = 0; j < ctas; ++j) {
            REQUIRE(l.sync[static_cast<std::size_t>(j) * kPersistFlagStride] ==
                    static_cast<unsigned>(T));
          }
        }
      }
    }
  }
}

namespace {

// The hybrid tier over one layer of size H: for each batch of `batches` and each count of
// `residents` (those in 0..H), the first `resident` columns of W_h's rows in shared memory,
// the rest read every step from global memory, the fused step's bits.
void check_hybrid_layer(int H, std::initializer_list<int> batches,
                        std::initializer_list<int> residents) {
  for (const int B : batches) {
    const int T = 5;
    const OneLayer one(H, B, T, static_cast<std::uint32_t>(11 * H + B), B != 3);
    const LayerRun want = one.fused();
    for (const int resident : residents) {
      if (resident < 0 || resident > H) continue;
      CAPTURE(H, B, resident);
      LayerRun got = one.fresh();
      const int ctas = persistent_ctas(H);
      Launch l(ctas, B, one.len.data());
      l.args.layers = 1;
      l.args.layer[0] = one.layer(got);
      l.args.layer[0].resident = resident;
      // Exactly the hybrid tier's shared memory (a vector of that size: ASan reports past it).
      const std::size_t smem = persistent_resident_smem_bytes(B, H, resident);
      const cudaError_t e = l.run(0, T, true, smem);
      INFO(slstm_sim::last_error());
      REQUIRE(e == cudaSuccess);
      REQUIRE(l.status == 0);
      require_same_run(one, got, want);
    }
  }
}

// The cluster tier over one layer of size H split over at most each of `max_ctas` CTAs, batches
// 1, 3 and 5, in one launch or in chunks of two steps: the fused step's bits.
void check_cluster_layer(int H, std::initializer_list<int> max_ctas_list) {
  for (const int max_ctas : max_ctas_list) {
    for (const int B : {1, 3, 5}) {
      const int T = 5;
      const OneLayer one(H, B, T, static_cast<std::uint32_t>(11 * H + B + 100 * max_ctas),
                         B != 3);
      const LayerRun want = one.fused();
      const ClusterShape shape = cluster_shape(H, max_ctas);
      for (const int chunk : {T, 2}) {
        CAPTURE(H, max_ctas, shape.ctas, shape.units, B, chunk);
        LayerRun got = one.fresh();
        ClusterArgs a;
        a.layer = one.layer(got);
        a.len = one.len.data();
        a.batch = B;
        a.units = shape.units;
        for (int t0 = 0; t0 < T; t0 += chunk) {
          a.t0 = t0;
          a.t1 = t0 + chunk < T ? t0 + chunk : T;
          a.finalize = a.t1 == T;
          const cudaError_t e =
              launch_lstm_cluster(nullptr, a, shape.ctas, cluster_smem_bytes(B, H, shape.units));
          INFO(slstm_sim::last_error());
          REQUIRE(e == cudaSuccess);
        }
        require_same_run(one, got, want);
      }
    }
  }
}

}  // namespace

// Tagged [sweep]: the cases that repeat a kernel over many shapes for its arithmetic. The
// ThreadSanitizer run (.ci/reliability.sh), whose concern is the ordering that each kernel's
// barriers and flags give, leaves them out (there they take minutes) and runs the untagged
// cases, which reach every kernel and every batch width.

// H = 37: five CTAs, W_h's rows cut before, at and past a warp's 32 columns.
TEST_CASE("the hybrid tier's kernel gives the fused step's bits with part of W_h's columns in "
          "shared memory, the rest read every step from global memory, at every batch width") {
  check_hybrid_layer(37, {1, 3, 5}, {0, 33, 37});
}

TEST_CASE("the hybrid tier's kernel gives the fused step's bits with any number of W_h's columns "
          "in shared memory, the rest read every step from global memory",
          "[sweep]") {
  for (const int H : {8, 37, 70}) check_hybrid_layer(H, {1, 3, 5}, {0, 1, 31, 32, 33, H - 1, H});
}

// H = 3: one CTA; H = 21: three CTAs of a unit per warp, or two of several.
TEST_CASE("the cluster tier over one small layer gives the fused step's bits in one launch or in "
          "chunks, with one or several units per warp") {
  for (const int H : {3, 21}) check_cluster_layer(H, {kClusterMaxCtas, kClusterPortableCtas, 2});
}

// H = 130: 16 CTAs (the largest cluster), 8 (the portable one) or 2, several units per warp.
TEST_CASE("the cluster tier over a layer of 130 gives the fused step's bits over clusters of 16, "
          "8 and 2 CTAs, in one launch or in chunks",
          "[sweep]") {
  check_cluster_layer(130, {kClusterMaxCtas, kClusterPortableCtas, 2});
}

TEST_CASE("the cluster tier refuses a launch whose CTAs do not cover the layer or whose shared "
          "memory is short") {
  const OneLayer one(21, 2, 3, 5u, true);
  LayerRun got = one.fresh();
  ClusterArgs a;
  a.layer = one.layer(got);
  a.len = one.len.data();
  a.batch = 2;
  a.t1 = 3;
  a.units = 2;  // 8 CTAs x 2 units < 21
  CHECK(launch_lstm_cluster(nullptr, a, 8, cluster_smem_bytes(2, 21, 2)) == cudaErrorInvalidValue);
  a.units = 3;
  CHECK(launch_lstm_cluster(nullptr, a, 8, cluster_smem_bytes(2, 21, 3) - 4) ==
        cudaErrorInvalidValue);
  CHECK(launch_lstm_cluster(nullptr, a, kClusterMaxCtas + 1, cluster_smem_bytes(2, 21, 3)) ==
        cudaErrorInvalidValue);
  CHECK(std::all_of(got.y.begin(), got.y.end(), [](float v) { return std::isnan(v); }));
}

namespace {

// A stack of LSTM layers run as the CUDA session's whole-stack persistent launch lays it out
// (cuda/schedule.cpp, persistent_layer): layers >= 1 project their own input from the layer
// below's output rows, which carry a column of ones for the bias in W_x's last column; layer
// 0 either reads precomputed z (with its bias added in the kernel) or projects the input
// (x with a column of ones) itself. The last layer writes a batch-major output [B][T][H].
struct Stack {
  int batch, time, depth;
  std::vector<int> hidden;
  bool own_x0;
  std::vector<std::int32_t> len;
  std::vector<float> x;             // [T][B][depth + 1], ones in the last column
  std::vector<RefLayer> ref;        // reference weights (layer 0: kx = depth)
  std::vector<std::vector<float>> wx_aug;  // [4H, ld_x]: W_x | bias (layers fed by rows)
  std::vector<float> z0;            // [T][B][4 H0]: layer 0's x . W_x (no bias) when !own_x0
  std::vector<std::vector<float>> h0, c0;

  Stack(std::vector<int> sizes, int B, int T, int D, bool own_x0_, std::uint32_t seed)
      : batch(B), time(T), depth(D), hidden(std::move(sizes)), own_x0(own_x0_),
        len(lengths_for(B, T)) {
    std::mt19937 g(seed);
    const std::vector<float> xr = random_floats(static_cast<std::size_t>(T) * B * D, 1.0f, g);
    x.assign(static_cast<std::size_t>(T) * B * (D + 1), 1.0f);
    for (std::size_t r = 0; r < static_cast<std::size_t>(T) * B; ++r) {
      for (int k = 0; k < D; ++k) x[r * (D + 1) + k] = xr[r * D + k];
    }
    int in = D;
    for (const int H : hidden) {
      RefLayer L;
      L.hidden = H;
      L.kx = in;
      L.wx = random_floats(static_cast<std::size_t>(4) * H * in, 0.5f, g);
      L.wh = random_floats(static_cast<std::size_t>(4) * H * H, 0.5f, g);
      L.bias = random_floats(static_cast<std::size_t>(4) * H, 0.3f, g);
      std::vector<float> aug(static_cast<std::size_t>(4) * H * (in + 1));
      for (std::size_t row = 0; row < static_cast<std::size_t>(4) * H; ++row) {
        for (int k = 0; k < in; ++k) aug[row * (in + 1) + k] = L.wx[row * in + k];
        aug[row * (in + 1) + in] = L.bias[row];
      }
      wx_aug.push_back(std::move(aug));
      h0.push_back(random_floats(static_cast<std::size_t>(B) * H, 0.8f, g));
      c0.push_back(random_floats(static_cast<std::size_t>(B) * H, 0.8f, g));
      ref.push_back(std::move(L));
      in = H;
    }
    // layer 0's input projection in float (as the input GEMM gives it), bias excluded
    const RefLayer& L0 = ref[0];
    const int G0 = 4 * hidden[0];
    z0.assign(static_cast<std::size_t>(T) * B * G0, 0.0f);
    for (std::size_t r = 0; r < static_cast<std::size_t>(T) * B; ++r) {
      for (int row = 0; row < G0; ++row) {
        double s = 0.0;
        for (int k = 0; k < D; ++k) {
          s += static_cast<double>(L0.wx[static_cast<std::size_t>(row) * D + k]) * xr[r * D + k];
        }
        z0[r * G0 + row] = static_cast<float>(s);
      }
    }
  }

  struct Buffers {
    std::vector<std::vector<float>> h_even, h_odd, c, rows;  // rows: layer l < last's output
    std::vector<float> out;                                  // [B][T][H_last]
  };
  int ld_next(std::size_t l) const { return hidden[l] + 1; }
  Buffers fresh() const {
    Buffers b;
    for (std::size_t l = 0; l < hidden.size(); ++l) {
      b.h_even.push_back(h0[l]);
      b.h_odd.emplace_back(h0[l].size(), kNaN);
      b.c.push_back(c0[l]);
      if (l + 1 < hidden.size()) {
        std::vector<float> rows(static_cast<std::size_t>(time) * batch * ld_next(l), kNaN);
        for (std::size_t r = 0; r < static_cast<std::size_t>(time) * batch; ++r) {
          rows[r * ld_next(l) + hidden[l]] = 1.0f;  // the bias column (set once by the host)
        }
        b.rows.push_back(std::move(rows));
      }
    }
    b.out.assign(static_cast<std::size_t>(batch) * time * hidden.back(), kNaN);
    return b;
  }
  PersistentLayer layer(Buffers& b, std::size_t l) const {
    const std::int64_t B = batch;
    PersistentLayer p;
    p.wh = ref[l].wh.data();
    const bool own = l > 0 || own_x0;
    if (own) {
      p.wx = wx_aug[l].data();
      p.ld_x = l > 0 ? ld_next(l - 1) : depth + 1;
      p.src = l > 0 ? b.rows[l - 1].data() : x.data();
      p.src_step = B * p.ld_x;
    } else {
      p.z = z0.data();
      p.z_step = B * 4 * hidden[0];
      p.bias = ref[0].bias.data();
    }
    p.h_even = b.h_even[l].data();
    p.h_odd = b.h_odd[l].data();
    p.c = b.c[l].data();
    if (l + 1 < hidden.size()) {
      p.y = b.rows[l].data();
      p.y_step = B * ld_next(l);
      p.y_stride = ld_next(l);
    } else {
      p.y = b.out.data();
      p.y_step = hidden.back();
      p.y_stride = static_cast<std::int64_t>(time) * hidden.back();
    }
    p.hidden = hidden[l];
    return p;
  }
  std::size_t smem(std::size_t l) const {
    const bool own = l > 0 || own_x0;
    return persistent_smem_bytes(batch, hidden[l], own ? (l > 0 ? ld_next(l - 1) : depth + 1) : 0);
  }
  // The whole stack as one cooperative launch (finalize: the last h in h_even).
  Buffers whole(int* status) const {
    Buffers b = fresh();
    int ctas = 0;
    std::size_t most = 0;
    for (std::size_t l = 0; l < hidden.size(); ++l) ctas += persistent_ctas(hidden[l]);
    Launch run(ctas, batch, len.data());
    run.args.layers = static_cast<int>(hidden.size());
    ctas = 0;
    for (std::size_t l = 0; l < hidden.size(); ++l) {
      run.args.layer[l] = layer(b, l);
      run.args.layer[l].cta_begin = ctas;
      ctas += persistent_ctas(hidden[l]);
      most = most > smem(l) ? most : smem(l);
    }
    const cudaError_t e = run.run(0, time, true, most);
    INFO(slstm_sim::last_error());
    REQUIRE(e == cudaSuccess);
    *status = run.status;
    return b;
  }
  // The session's fallback: the same kernel, one step of one layer per plain launch.
  Buffers one_step_at_a_time(int* status) const {
    Buffers b = fresh();
    *status = 0;
    for (int t = 0; t < time; ++t) {
      for (std::size_t l = 0; l < hidden.size(); ++l) {
        Launch run(persistent_ctas(hidden[l]), batch, len.data());
        run.args.layers = 1;
        run.args.layer[0] = layer(b, l);
        const cudaError_t e = run.run(t, t + 1, false, smem(l), false);
        INFO(slstm_sim::last_error());
        REQUIRE(e == cudaSuccess);
        *status |= run.status;
      }
    }
    return b;
  }
  // The float64 reference: the last layer's output [B][T][H], each layer's h and c.
  void reference(std::vector<double>& out, std::vector<std::vector<double>>& h,
                 std::vector<std::vector<double>>& c) const {
    std::vector<double> in(static_cast<std::size_t>(time) * batch * depth);
    for (std::size_t r = 0; r < static_cast<std::size_t>(time) * batch; ++r) {
      for (int k = 0; k < depth; ++k) in[r * depth + k] = x[r * (depth + 1) + k];
    }
    h.clear();
    c.clear();
    std::vector<double> y;
    for (std::size_t l = 0; l < hidden.size(); ++l) {
      h.push_back(widen(h0[l]));
      c.push_back(widen(c0[l]));
      reference_layer(ref[l], batch, time, len, in, {}, h[l], c[l], y);
      in = y;
    }
    const int H = hidden.back();
    out.assign(y.size(), 0.0);
    for (int t = 0; t < time; ++t) {
      for (int b = 0; b < batch; ++b) {
        for (int u = 0; u < H; ++u) {
          out[(static_cast<std::size_t>(b) * time + t) * H + u] =
              y[(static_cast<std::size_t>(t) * batch + b) * H + u];
        }
      }
    }
  }
};

}  // namespace

TEST_CASE("a whole stack in one persistent launch matches the float64 reference") {
  for (const bool own_x0 : {false, true}) {
    for (const int B : {1, 4, 6}) {
      for (const int T : {1, 5, 6}) {
        CAPTURE(own_x0, B, T);
        const Stack s({8, 13, 20}, B, T, 5, own_x0, static_cast<std::uint32_t>(B * 10 + T));
        int status = -1;
        const Stack::Buffers got = s.whole(&status);
        REQUIRE(status == 0);
        std::vector<double> out;
        std::vector<std::vector<double>> h, c;
        s.reference(out, h, c);
        require_close(got.out.data(), out, out.size(), "output");
        for (std::size_t l = 0; l < h.size(); ++l) {
          CAPTURE(l);
          require_close(got.h_even[l].data(), h[l], h[l].size(), "h (finalized into the state)");
          require_close(got.c[l].data(), c[l], c[l].size(), "c");
        }
      }
    }
  }
}

TEST_CASE("the stack's fallback, one step of one layer per plain launch, gives the whole "
          "launch's bits") {
  for (const bool own_x0 : {false, true}) {
    for (const int T : {3, 4}) {
      CAPTURE(own_x0, T);
      const Stack s({16, 9}, 3, T, 4, own_x0, static_cast<std::uint32_t>(77 + T));
      int status_whole = -1, status_steps = -1;
      const Stack::Buffers whole = s.whole(&status_whole);
      const Stack::Buffers steps = s.one_step_at_a_time(&status_steps);
      REQUIRE(status_whole == 0);
      REQUIRE(status_steps == 0);
      REQUIRE(same_bits(whole.out.data(), steps.out.data(), whole.out.size()));
      for (std::size_t l = 0; l < s.hidden.size(); ++l) {
        CAPTURE(l);
        // the step-by-step form leaves the last h in h_odd after an odd number of steps
        const std::vector<float>& last = T % 2 == 1 ? steps.h_odd[l] : steps.h_even[l];
        REQUIRE(same_bits(whole.h_even[l].data(), last.data(), last.size()));
        REQUIRE(same_bits(whole.c[l].data(), steps.c[l].data(), steps.c[l].size()));
      }
    }
  }
}

TEST_CASE("a persistent launch with timeout 0 gives up at its first wait and sets the status") {
  const OneLayer one(16, 2, 4, 5u, true);
  LayerRun got = one.fresh();
  Launch l(persistent_ctas(16), 2, one.len.data());
  l.args.layers = 1;
  l.args.layer[0] = one.layer(got);
  l.args.timeout_ns = 0;
  REQUIRE(l.run(0, 4, true, persistent_smem_bytes(2, 16, 0)) == cudaSuccess);
  REQUIRE(l.status == 1);
  REQUIRE(l.sync[static_cast<std::size_t>(persistent_ctas(16)) * kPersistFlagStride] == 1u);
  // step 0 waits for nothing: it ran; no CTA went past the wait before step 1
  for (int j = 0; j < persistent_ctas(16); ++j) {
    REQUIRE(l.sync[static_cast<std::size_t>(j) * kPersistFlagStride] == 1u);
  }
}

TEST_CASE("a persistent launch whose CTAs are not resident together times out instead of "
          "hanging") {
  // A plain (not cooperative) launch here runs its CTAs one after another: the first waits
  // for the second's step flag, which cannot come while it waits.
  const OneLayer one(16, 1, 3, 6u, true);
  LayerRun got = one.fresh();
  Launch l(persistent_ctas(16), 1, one.len.data());
  l.args.layers = 1;
  l.args.layer[0] = one.layer(got);
  l.args.timeout_ns = 50'000'000;  // 50 ms
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(l.run(0, 3, true, persistent_smem_bytes(1, 16, 0), false) == cudaSuccess);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(l.status == 1);
  REQUIRE(seconds < 30.0);
}

// ---- The simulator itself: what it reports instead of running undefined code. -----------

namespace {

__global__ void two_barriers_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void shuffle_after_exit_kernel(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void butterfly_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  for (int s = 16; s >= 1; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

}  // namespace

TEST_CASE("the simulator reports threads of a block at two different barriers") {
  std::vector<int> out(64, 0);
  slstm_sim::launch_kernel(nullptr, "two_barriers", 1, 64, 0, 0, two_barriers_kernel,
                           out.data());
  REQUIRE_THAT(slstm_sim::last_error(), Catch::Contains("__syncthreads reached at line"));
  (void)slstm_sim::take_error();
}

TEST_CASE("the simulator reports a full-warp shuffle after a lane exited") {
  std::vector<float> out(32, 0.0f);
  slstm_sim::launch_kernel(nullptr, "shuffle", 1, 32, 0, 0, shuffle_after_exit_kernel,
                           out.data());
  REQUIRE_THAT(slstm_sim::last_error(), Catch::Contains("31 live lanes"));
  (void)slstm_sim::take_error();
}

TEST_CASE("the simulator's warp shuffles sum a warp by a butterfly") {
  std::vector<float> out(2 * 64, kNaN);
  slstm_sim::launch_kernel(nullptr, "butterfly", 2, 64, 0, 0, butterfly_kernel, out.data());
  REQUIRE(slstm_sim::take_error().empty());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const float warp0 = static_cast<float>((i % 64) / 32 * 32 * 32);  // lanes of warp 1: +32
    REQUIRE(out[i] == warp0 + 496.0f);  // 0 + 1 + ... + 31
  }
}

// ---- The simulator's thread-block clusters (sm_90) and distributed shared memory. -------

namespace {

template <typename T>
T* peer(T* local, unsigned rank) {
  return static_cast<T*>(slstm_sim::cluster_peer_smem(local, rank));
}

// Lets the block's other threads run `n` times (each simulated atomic load does).
void stall(unsigned n) {
  int any = 0;
  for (unsigned k = 0; k < n; ++k) {
    (void)cuda::atomic_ref<int, cuda::thread_scope_block>(any).load(cuda::memory_order_relaxed);
  }
}

// Thread r < size writes this block's rank into slot [rank] of block r of the cluster; after
// the cluster barrier, every thread counts the slots that hold their rank. out: per thread,
// that count, cluster_rank(), cluster_size().
__global__ void cluster_ranks_kernel(int* out) {
  SLSTM_DYNAMIC_SMEM(int, slots);
  const unsigned rank = slstm_sim::cluster_rank(), size = slstm_sim::cluster_size();
  if (threadIdx.x < size) *peer(&slots[rank], threadIdx.x) = static_cast<int>(rank);
  slstm_sim::cluster_sync(__LINE__);
  int seen = 0;
  for (unsigned r = 0; r < size; ++r) seen += slots[r] == static_cast<int>(r) ? 1 : 0;
  int* mine = out + (blockIdx.x * blockDim.x + threadIdx.x) * 3;
  mine[0] = seen;
  mine[1] = static_cast<int>(rank);
  mine[2] = static_cast<int>(size);
}

constexpr int kExchangeSteps = 50;
// What the block of rank `rank` pushes to its cluster for step `step`.
float exchange_value(int step, unsigned rank) {
  return static_cast<float>(step * 32 + static_cast<int>(rank) + 1);
}

// The exchange of a persistent kernel on one cluster: slots [2][size] per block, a buffer per
// step parity. Per step, every thread sums the step's buffer; thread r < size pushes the
// block's value for the next step into slot [rank] of block r's other buffer; then one
// cluster barrier. (Threads stall a varying number of turns, so that the cluster's threads
// arrive in ever different orders.) out: per thread, its sum.
__global__ void cluster_exchange_kernel(float* out) {
  SLSTM_DYNAMIC_SMEM(float, slots);
  const unsigned rank = slstm_sim::cluster_rank(), size = slstm_sim::cluster_size();
  const unsigned t = threadIdx.x;
  if (t < size) *peer(&slots[rank], t) = exchange_value(0, rank);
  slstm_sim::cluster_sync(__LINE__);
  float sum = 0.0f;
  for (int s = 0; s < kExchangeSteps; ++s) {
    const float* now = slots + static_cast<unsigned>(s & 1) * size;
    for (unsigned r = 0; r < size; ++r) sum += now[r];
    stall((rank * 7 + t + static_cast<unsigned>(s)) % 5);
    if (t < size && s + 1 < kExchangeSteps) {
      *peer(&slots[static_cast<unsigned>((s + 1) & 1) * size + rank], t) =
          exchange_value(s + 1, rank);
    }
    slstm_sim::cluster_sync(__LINE__);
  }
  out[blockIdx.x * blockDim.x + t] = sum;
}

// The odd threads of the cluster's block of rank 1 exit without reaching the cluster barrier,
// after every other thread of the cluster has set its flag just before it (so that, as a
// rule, the barrier completes at one of their exits). Thread 2r (r < size) writes the block's
// rank into slot [rank] of block r. out: per thread that stays, the slots that hold their rank.
__global__ void cluster_early_exit_kernel(int* flags, int* out) {
  SLSTM_DYNAMIC_SMEM(int, slots);
  const unsigned rank = slstm_sim::cluster_rank(), size = slstm_sim::cluster_size();
  const unsigned t = threadIdx.x;
  if (rank == 1 && t % 2 == 1) {
    const unsigned first = (blockIdx.x - rank) * blockDim.x;
    for (unsigned i = first; i < first + size * blockDim.x; ++i) {
      const bool leaves = (i - first) / blockDim.x == 1 && i % blockDim.x % 2 == 1;
      cuda::atomic_ref<int, cuda::thread_scope_device> flag(flags[i]);
      while (!leaves && flag.load(cuda::memory_order_acquire) == 0) {
      }
    }
    return;
  }
  if (t % 2 == 0 && t / 2 < size) *peer(&slots[rank], t / 2) = static_cast<int>(rank);
  cuda::atomic_ref<int, cuda::thread_scope_device>(flags[blockIdx.x * blockDim.x + t])
      .store(1, cuda::memory_order_release);
  slstm_sim::cluster_sync(__LINE__);
  int seen = 0;
  for (unsigned r = 0; r < size; ++r) seen += slots[r] == static_cast<int>(r) ? 1 : 0;
  out[blockIdx.x * blockDim.x + t] = seen;
}

__global__ void cluster_peer_rank_kernel(int* out) {
  SLSTM_DYNAMIC_SMEM(int, slots);
  *peer(&slots[0], slstm_sim::cluster_size()) = 1;  // (the answer: slots itself)
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

// Asks for the peer address of slot `at` of the block's dynamic shared memory (in ints), or
// with at = -1 of a global address.
__global__ void cluster_peer_outside_kernel(int* out, int at) {
  SLSTM_DYNAMIC_SMEM(int, slots);
  int* local = at < 0 ? out : slots + at;
  (void)peer(local, 0);
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

// The cluster's block of rank 1 deadlocks (its thread 0 at a __syncwarp that lanes 1-31 never
// reach: they wait at a __syncthreads), while the cluster's other blocks wait at the cluster
// barrier. out: 1 per thread past it.
__global__ void cluster_peer_deadlock_kernel(int* out) {
  if (slstm_sim::cluster_rank() == 1) {
    if (threadIdx.x == 0) {
      __syncwarp();
    } else {
      __syncthreads();
    }
  }
  slstm_sim::cluster_sync(__LINE__);
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

__global__ void cluster_and_block_barrier_kernel(int* out) {
  if (threadIdx.x < 16) {
    slstm_sim::cluster_sync(__LINE__);
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

// Without clusters: every fourth thread exits, the others write their slot, pass the cluster
// barrier and read the slot of the next thread that stays. out: per thread, that slot plus
// 10^6 cluster_rank() and 10^7 cluster_size(); -1 for those that exit.
__global__ void block_cluster_sync_kernel(float* out) {
  SLSTM_DYNAMIC_SMEM(float, slots);
  const unsigned t = threadIdx.x;
  if (t % 4 == 3) return;
  slots[t] = static_cast<float>(blockIdx.x * 1000 + t);
  slstm_sim::cluster_sync(__LINE__);
  unsigned next = (t + 1) % blockDim.x;
  if (next % 4 == 3) next = (next + 1) % blockDim.x;
  out[blockIdx.x * blockDim.x + t] = slots[next] +
                                     1e6f * static_cast<float>(slstm_sim::cluster_rank()) +
                                     1e7f * static_cast<float>(slstm_sim::cluster_size());
}

}  // namespace

TEST_CASE("the simulator's cluster blocks see what every block of their cluster wrote into "
          "their shared memory before the cluster barrier") {
  const unsigned threads = 32;
  for (const unsigned grid : {32u, 24u}) {
    const unsigned cluster = grid == 32 ? 16 : 8;
    CAPTURE(grid, cluster);
    std::vector<int> out(static_cast<std::size_t>(grid) * threads * 3, -1);
    slstm_sim::launch_cluster_kernel(nullptr, "cluster_ranks", grid, cluster, threads,
                                     cluster * sizeof(int), cluster_ranks_kernel, out.data());
    INFO(slstm_sim::last_error());
    REQUIRE(slstm_sim::take_error().empty());
    for (std::size_t i = 0; i < out.size() / 3; ++i) {
      CAPTURE(i / threads, i % threads);
      REQUIRE(out[i * 3] == static_cast<int>(cluster));
      REQUIRE(out[i * 3 + 1] == static_cast<int>(i / threads % cluster));
      REQUIRE(out[i * 3 + 2] == static_cast<int>(cluster));
    }
  }
}

TEST_CASE("the simulator's clusters exchange double-buffered values with one cluster barrier "
          "per step") {
  const unsigned grid = 32, cluster = 16, threads = 32;
  std::vector<float> out(static_cast<std::size_t>(grid) * threads, kNaN);
  slstm_sim::launch_cluster_kernel(nullptr, "cluster_exchange", grid, cluster, threads,
                                   2 * cluster * sizeof(float), cluster_exchange_kernel,
                                   out.data());
  INFO(slstm_sim::last_error());
  REQUIRE(slstm_sim::take_error().empty());
  // sum over steps s < S and ranks r < C of 32 s + r + 1: exact in float (all below 2^24)
  const double S = kExchangeSteps, C = cluster;
  const double want = 32.0 * C * S * (S - 1) / 2 + S * C * (C + 1) / 2;
  for (std::size_t i = 0; i < out.size(); ++i) {
    CAPTURE(i / threads, i % threads);
    REQUIRE(out[i] == static_cast<float>(want));
  }
}

TEST_CASE("the simulator's cluster barrier completes when threads of a block exit before it") {
  const unsigned grid = 8, cluster = 4, threads = 64;
  std::vector<int> flags(static_cast<std::size_t>(grid) * threads, 0);
  std::vector<int> out(flags.size(), -1);
  const auto start = std::chrono::steady_clock::now();
  slstm_sim::launch_cluster_kernel(nullptr, "cluster_early_exit", grid, cluster, threads,
                                   cluster * sizeof(int), cluster_early_exit_kernel,
                                   flags.data(), out.data());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(slstm_sim::last_error());
  REQUIRE(slstm_sim::take_error().empty());
  REQUIRE(seconds < 30.0);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const bool left = i / threads % cluster == 1 && i % 2 == 1;
    CAPTURE(i / threads, i % threads);
    REQUIRE(out[i] == (left ? -1 : static_cast<int>(cluster)));
  }
}

TEST_CASE("the simulator reports a cluster peer's shared memory of a rank outside the cluster") {
  std::vector<int> out(4 * 32, 0);
  slstm_sim::launch_cluster_kernel(nullptr, "cluster_peer_rank", 4, 4, 32, 16,
                                   cluster_peer_rank_kernel, out.data());
  REQUIRE_THAT(slstm_sim::last_error(),
               Catch::Contains("cluster_peer_smem: rank 4 in a cluster of 4"));
  (void)slstm_sim::take_error();
}

TEST_CASE("the simulator reports a cluster peer's shared memory at an address outside the "
          "block's dynamic shared memory") {
  std::vector<int> out(2 * 32, 0);
  for (const int at : {4, -1}) {  // one past its end; a global address
    CAPTURE(at);
    slstm_sim::launch_cluster_kernel(nullptr, "cluster_peer_outside", 2, 2, 32,
                                     4 * sizeof(int), cluster_peer_outside_kernel, out.data(),
                                     at);
    REQUIRE_THAT(slstm_sim::last_error(),
                 Catch::Contains("cluster_peer_smem: an address outside the block's 16 bytes"));
    (void)slstm_sim::take_error();
  }
}

TEST_CASE("the simulator refuses a cluster launch whose grid is not a multiple of the "
          "cluster") {
  std::atomic<int> ran{0};
  const std::string e = slstm_sim::launch(10, 32, 0, [&ran] { ++ran; }, 0, 4);
  REQUIRE_THAT(e, Catch::Contains("invalid launch configuration: 10 blocks of 32 threads in "
                                  "clusters of 4"));
  REQUIRE(ran == 0);
}

TEST_CASE("the simulator refuses clusters of more than 16 blocks") {
  std::atomic<int> ran{0};
  const std::string e = slstm_sim::launch(32, 32, 0, [&ran] { ++ran; }, 0, 32);
  REQUIRE_THAT(e, Catch::Contains("invalid launch configuration"));
  REQUIRE(ran == 0);
  REQUIRE(slstm_sim::launch(16, 32, 0, [&ran] { ++ran; }, 0, 16).empty());
  REQUIRE(ran == 16 * 32);
}

TEST_CASE("the simulator fails a cluster's barrier when a block of the cluster fails, instead "
          "of hanging") {
  const unsigned grid = 8, cluster = 4, threads = 32;
  std::vector<int> out(static_cast<std::size_t>(grid) * threads, 0);
  const auto start = std::chrono::steady_clock::now();
  slstm_sim::launch_cluster_kernel(nullptr, "cluster_peer_deadlock", grid, cluster, threads, 0,
                                   cluster_peer_deadlock_kernel, out.data());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // the failed block's own error, not its peers' "block 1 of the cluster failed"
  REQUIRE_THAT(slstm_sim::last_error(), Catch::StartsWith("block 1: deadlock: threads of block 1"));
  (void)slstm_sim::take_error();
  REQUIRE(seconds < 10.0);
  for (const int past : out) REQUIRE(past == 0);  // no thread went past the barrier
}

TEST_CASE("the simulator reports threads of a block at a cluster barrier and at a "
          "__syncthreads") {
  std::vector<int> out(32, 0);
  const auto start = std::chrono::steady_clock::now();
  slstm_sim::launch_kernel(nullptr, "cluster_and_block_barrier", 1, 32, 0, 0,
                           cluster_and_block_barrier_kernel, out.data());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE_THAT(slstm_sim::last_error(), Catch::Contains("and __syncthreads at line"));
  (void)slstm_sim::take_error();
  REQUIRE(seconds < 10.0);
}

TEST_CASE("the simulator's cluster barrier without clusters is a barrier of the block's live "
          "threads") {
  const unsigned grid = 3, threads = 64;
  std::vector<float> out(static_cast<std::size_t>(grid) * threads, -1.0f);
  slstm_sim::launch_kernel(nullptr, "block_cluster_sync", grid, threads,
                           threads * sizeof(float), 0, block_cluster_sync_kernel, out.data());
  INFO(slstm_sim::last_error());
  REQUIRE(slstm_sim::take_error().empty());
  for (unsigned i = 0; i < out.size(); ++i) {
    const unsigned b = i / threads, t = i % threads;
    CAPTURE(b, t);
    if (t % 4 == 3) {
      REQUIRE(out[i] == -1.0f);
      continue;
    }
    unsigned next = (t + 1) % threads;
    if (next % 4 == 3) next = (next + 1) % threads;
    REQUIRE(out[i] == static_cast<float>(b * 1000 + next) + 1e7f);  // rank 0, size 1
  }
}
