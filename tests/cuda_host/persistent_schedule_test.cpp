// The persistent kernel's synchronisation (cuda/step_plan.hpp: persistent_wait,
// persistent_final_wait, the functions the kernel itself calls), simulated on the CPU: each
// CTA is a little machine doing what a CTA of lstm_persistent_kernel does, in the order it
// does it -- per step: wait, read its layer's h buffer and the layer below's output row, write
// the other h buffer and its own output row, publish its flag; at the end of a finalizing
// launch, the last wait and the copy into the state's h. A random scheduler interleaves the
// CTAs' actions. Every schedule must finish (no deadlock), and every read must see exactly
// the version of the data the step needs (no read before its write, no write over data a
// slower CTA still has to read).
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "step_plan.hpp"

using namespace slstm_cuda;

namespace {

struct Launch {
  std::vector<int> ctas_per_layer;
  std::vector<bool> own_input;  // layer projects its input from the layer below in the launch
  int t0 = 0, t1 = 0;
  bool finalize = false;
};

// Versions: h buffer [layer][parity][cta chunk] holds the step that wrote it plus one (0:
// the initial state, written before the launch); output rows [layer][t][cta chunk] likewise;
// state h [layer][cta chunk] the step whose h it holds plus one.
struct Memory {
  std::vector<std::vector<std::vector<int>>> h;
  std::vector<std::vector<std::vector<int>>> y;
  std::vector<std::vector<int>> state;
};

struct Cta {
  int layer = 0, chunk = 0;
  int t = 0;
  int phase = 0;  // 0 wait, 1 read, 2 write, 3 publish; after t1: 4 final wait, 5 copy, 6 done
};

// Runs one launch under a seeded random schedule; returns "" or what went wrong.
std::string simulate(const Launch& L, Memory& mem, std::vector<unsigned>& flags,
                     std::uint32_t seed) {
  std::vector<int> begin_of;
  int ctas = 0;
  for (int n : L.ctas_per_layer) {
    begin_of.push_back(ctas);
    ctas += n;
  }
  const int layers = static_cast<int>(L.ctas_per_layer.size());
  const auto begin = [&](int i) { return begin_of[static_cast<std::size_t>(i)]; };
  std::vector<Cta> cta(static_cast<std::size_t>(ctas));
  for (int j = 0; j < ctas; ++j) {
    Cta& c = cta[static_cast<std::size_t>(j)];
    c.layer = persistent_layer_of(begin, layers, j);
    c.chunk = j - begin(c.layer);
    c.t = L.t0;
  }
  const auto satisfied = [&](const PersistentWait& w) {
    for (int k = w.own_begin; k < w.own_end; ++k) {
      if (flags[static_cast<std::size_t>(k)] < w.own_step) return false;
    }
    for (int k = w.prev_begin; k < w.prev_end; ++k) {
      if (flags[static_cast<std::size_t>(k)] < w.prev_step) return false;
    }
    return true;
  };
  std::mt19937 rng(seed);
  for (int guard = 0; guard < 1000000; ++guard) {
    std::vector<int> ready;
    bool all_done = true;
    for (int j = 0; j < ctas; ++j) {
      const Cta& c = cta[static_cast<std::size_t>(j)];
      if (c.phase == 6) continue;
      all_done = false;
      bool can = true;
      if (c.phase == 0) {
        can = satisfied(persistent_wait(begin, layers, ctas, c.layer,
                                        L.own_input[static_cast<std::size_t>(c.layer)], c.t, L.t0));
      } else if (c.phase == 4) {
        can = satisfied(persistent_final_wait(begin, layers, ctas, c.layer, L.t1));
      }
      if (can) ready.push_back(j);
    }
    if (all_done) return "";
    if (ready.empty()) return "deadlock";
    const int j = ready[std::uniform_int_distribution<std::size_t>(0, ready.size() - 1)(rng)];
    Cta& c = cta[static_cast<std::size_t>(j)];
    const auto l = static_cast<std::size_t>(c.layer);
    const int t = c.t;
    const std::string at = "layer " + std::to_string(c.layer) + " cta " + std::to_string(c.chunk) +
                           " step " + std::to_string(t) + ": ";
    switch (c.phase) {
      case 0: c.phase = 1; break;
      case 1: {  // stage: every chunk of h_{t-1}, and row t of the layer below
        for (int v : mem.h[l][static_cast<std::size_t>(t % 2)]) {
          if (v != t) return at + "read h version " + std::to_string(v) + ", wanted " + std::to_string(t);
        }
        if (L.own_input[l] && c.layer > 0) {
          for (int v : mem.y[l - 1][static_cast<std::size_t>(t)]) {
            if (v != t + 1) return at + "read the input row before the layer below wrote it";
          }
        }
        c.phase = 2;
        break;
      }
      case 2:
        mem.h[l][static_cast<std::size_t>((t + 1) % 2)][static_cast<std::size_t>(c.chunk)] = t + 1;
        mem.y[l][static_cast<std::size_t>(t)][static_cast<std::size_t>(c.chunk)] = t + 1;
        c.phase = 3;
        break;
      case 3:
        flags[static_cast<std::size_t>(j)] = static_cast<unsigned>(t + 1);
        c.t = t + 1;
        c.phase = c.t < L.t1 ? 0 : (L.finalize && (L.t1 - 1) % 2 == 0 ? 4 : 6);
        if (c.phase == 6) mem.state[l][static_cast<std::size_t>(c.chunk)] = L.t1;
        break;
      case 4: c.phase = 5; break;
      case 5:  // the owner's copy of its last h into h_even (the state)
        mem.h[l][0][static_cast<std::size_t>(c.chunk)] = L.t1;
        mem.state[l][static_cast<std::size_t>(c.chunk)] = L.t1;
        c.phase = 6;
        break;
      default: return at + "bad phase";
    }
  }
  return "no progress";
}

Memory fresh_memory(const std::vector<int>& ctas_per_layer, int T) {
  Memory m;
  for (int n : ctas_per_layer) {
    const auto chunks = static_cast<std::size_t>(n);
    m.h.push_back({std::vector<int>(chunks, 0), std::vector<int>(chunks, 0)});
    m.y.push_back(std::vector<std::vector<int>>(static_cast<std::size_t>(T), std::vector<int>(chunks, 0)));
    m.state.push_back(std::vector<int>(chunks, 0));
  }
  return m;
}

// After a finalizing launch every layer's state holds h of the last step, and (when T is
// odd, the last h having gone to h_odd) so does h_even.
void require_final_state(const Memory& m, int T) {
  for (const auto& layer : m.state) {
    for (int v : layer) REQUIRE(v == T);
  }
}

}  // namespace

TEST_CASE("persistent schedule: a whole-stack launch finishes under every interleaving and "
          "each read sees the step it needs",
          "[persistent][schedule]") {
  for (const int T : {1, 2, 5, 8}) {
    for (std::uint32_t seed = 1; seed <= 200; ++seed) {
      const Launch L{std::vector<int>{2, 3, 1}, std::vector<bool>{false, true, true}, 0, T, true};
      Memory m = fresh_memory(L.ctas_per_layer, T);
      std::vector<unsigned> flags(6, 0);
      INFO("T " << T << " seed " << seed);
      REQUIRE(simulate(L, m, flags, seed).empty());
      require_final_state(m, T);
    }
  }
}

TEST_CASE("persistent schedule: per-layer launches over consecutive chunks keep the data "
          "right across the launches' boundaries",
          "[persistent][schedule]") {
  for (std::uint32_t seed = 1; seed <= 200; ++seed) {
    const int T = 7;
    Launch L{std::vector<int>(1, 4), std::vector<bool>(1, false), 0, 0, false};
    Memory m = fresh_memory(L.ctas_per_layer, T);
    std::vector<unsigned> flags(4, 0);  // zeroed before the call's first launch only
    for (const auto& [t0, t1] : {std::pair<int, int>{0, 3}, {3, 4}, {4, 7}}) {
      L.t0 = t0;
      L.t1 = t1;
      L.finalize = t1 == T;
      INFO("seed " << seed << " chunk [" << t0 << ", " << t1 << ")");
      REQUIRE(simulate(L, m, flags, seed * 7 + static_cast<std::uint32_t>(t0)).empty());
    }
    require_final_state(m, T);
  }
}

TEST_CASE("persistent schedule: the one-step fallback launches, layer by layer, need no wait",
          "[persistent][schedule]") {
  // One layer of one launch per step: persistent_wait names nothing to wait for.
  const auto begin = [](int) { return 0; };
  for (const bool own_input : {false, true}) {
    CHECK_FALSE(persistent_wait(begin, 1, 5, 0, own_input, 3, 3).any());
  }
  // Inside a launch of several steps or layers it does.
  const std::vector<int> b = {0, 2, 5};
  const auto begin3 = [&b](int i) { return b[static_cast<std::size_t>(i)]; };
  const PersistentWait first = persistent_wait(begin3, 3, 6, 1, true, 0, 0);
  CHECK(first.own_end == first.own_begin);  // nothing of its own layer at the first step
  CHECK(first.prev_begin == 0);
  CHECK(first.prev_end == 2);
  CHECK(first.prev_step == 1u);
  const PersistentWait later = persistent_wait(begin3, 3, 6, 2, true, 4, 0);
  CHECK(later.own_begin == 5);
  CHECK(later.own_end == 6);
  CHECK(later.own_step == 4u);
  CHECK(later.prev_begin == 2);
  CHECK(later.prev_end == 5);
  CHECK(later.prev_step == 5u);
  // A layer reading precomputed pre-activations waits for nothing of the layer below.
  const PersistentWait z = persistent_wait(begin3, 3, 6, 1, false, 2, 0);
  CHECK(z.prev_end == z.prev_begin);
}
