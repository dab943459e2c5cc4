#include "packing.hpp"

#include <cstdint>
#include <vector>

#include "rounding.hpp"

namespace slstm::cpu {

bool stores_wh16(Kernel kernel, Precision precision) {
  // The AVX2 and AVX-512 kernels convert 16-bit codes on load (binary16 by F16C, which every
  // AVX-512 CPU has); the portable kernels read float32.
  return rounds_operands(precision) &&
         ((kernel == Kernel::kAvx2 && cpu_has_f16c()) || kernel == Kernel::kAvx512);
}

namespace {

// Where weight (k, unit j of group g, gate q) lies among AMX tiles: tile (g, q / 2, k / 32,
// q % 2) -- a group's gates i, f for every k, then g, o: the kernels take two gates at a
// time (group_products), each pair one contiguous stream -- whose row (k % 32) / 2 holds
// the pairs (k even, k odd) of the 16 units.
std::size_t tile_at(std::int64_t g, std::int64_t tiles, std::int64_t q, std::int64_t j,
                    std::int64_t k) {
  return static_cast<std::size_t>(
      (((g * 2 + q / 2) * tiles + k / kAmxK) * 2 + q % 2) * kAmxTile +
      (k % kAmxK) / 2 * kAmxK + 2 * j + k % 2);
}

// Zeroed storage for `groups` x `tiles` x 4 gates of AMX weight tiles (the padding stays
// zero), in `storage`; returns its codes.
std::uint16_t* allocate_tiles(std::int64_t groups, std::int64_t tiles, Buffer& storage) {
  const std::size_t n = product({groups, tiles, 4, kAmxTile}, "packed weights");
  storage = allocate_streamed((n + 1) / 2);
  return reinterpret_cast<std::uint16_t*>(storage.get());
}

}  // namespace

PackedLayer pack_layer(const Model& m, std::size_t l, Kernel kernel, Precision precision,
                       bool allow_wh16, bool amx) {
  const Layer& layer = m.layer(l);
  const bool avx2 = kernel == Kernel::kAvx2;
  PackedLayer p;
  p.cell = m.spec(l).cell;
  p.I = layer.input_size;
  p.H = layer.hidden_size;
  p.groups = (p.H + kGroup - 1) / kGroup;
  // Wx as [group][I][64] and Wh as [group][H][64]; on the AVX2 kernels [group][gate][K][16]
  // (see the header).
  // BF16/FP16: Wh in 16 bits where the kernel reads them (the step streams it every step),
  // and Wx too (project_block16_avx2 / _avx512: a call of one step streams it whole).
  const bool wh16 = !amx && allow_wh16 && stores_wh16(kernel, precision);
  const bool wx16 = wh16;
  std::uint16_t* xtiles = nullptr;
  if (amx) {
    p.kx_tiles = (p.I + kAmxK - 1) / kAmxK;
    xtiles = allocate_tiles(p.groups, p.kx_tiles, p.wxamx_storage);
  } else if (wx16) {
    p.wx16_storage =
        allocate_streamed((product({p.groups, kRow, p.I}, "packed weights") + 1) / 2);
  } else {
    p.wx = allocate_streamed(product({p.groups, kRow, p.I}, "packed weights"));
  }
  const std::size_t wh_count = product({p.groups, p.H, kRow}, "packed weights");
  std::uint16_t* tiles = nullptr;
  if (amx) {
    p.k_tiles = (p.H + kAmxK - 1) / kAmxK;
    tiles = allocate_tiles(p.groups, p.k_tiles, p.wamx_storage);
  } else if (wh16) {
    p.wh16_storage = allocate_streamed((wh_count + 1) / 2);
    p.wh16_is_bf16 = precision == Precision::kBf16;
  } else {
    p.wh = allocate_streamed(wh_count);
  }
  auto* codes = reinterpret_cast<std::uint16_t*>(p.wh16_storage.get());
  auto* x_codes = reinterpret_cast<std::uint16_t*>(p.wx16_storage.get());
  p.bias = allocate(product({p.groups, kRow}, "packed weights"));
  // A canonical row of W_x and of W_h, rounded to the precision 8 at a time (round_floats).
  std::vector<float> x_row(static_cast<std::size_t>(p.I)), h_row(static_cast<std::size_t>(p.H));
  for (std::int64_t g = 0; g < p.groups; ++g) {
    for (std::int64_t q = 0; q < 4; ++q) {
      for (std::int64_t j = 0; j < kGroup; ++j) {
        const std::int64_t u = g * kGroup + j;
        if (u >= p.H) continue;  // padding stays zero
        const std::int64_t src = q * p.H + u;  // canonical row
        const std::int64_t dst = g * kRow + q * kGroup + j;
        round_floats(precision, layer.w_x.data() + src * p.I, x_row.data(), x_row.size());
        round_floats(precision, layer.w_h.data() + src * p.H, h_row.data(), h_row.size());
        for (std::int64_t k = 0; k < p.I; ++k) {
          const float v = x_row[static_cast<std::size_t>(k)];
          if (amx) {
            xtiles[tile_at(g, p.kx_tiles, q, j, k)] = code16(precision, v);
            continue;
          }
          const auto at = static_cast<std::size_t>(
              avx2 ? g * p.I * kRow + q * kGroup * p.I + k * kGroup + j
                   : (g * p.I + k) * kRow + q * kGroup + j);
          if (wx16) {
            x_codes[at] = code16(precision, v);
          } else {
            p.wx[at] = v;
          }
        }
        for (std::int64_t k = 0; k < p.H; ++k) {
          const auto at = static_cast<std::size_t>(
              avx2 ? g * p.H * kRow + q * kGroup * p.H + k * kGroup + j
                   : (g * p.H + k) * kRow + q * kGroup + j);
          const float v = h_row[static_cast<std::size_t>(k)];
          if (amx) {
            tiles[tile_at(g, p.k_tiles, q, j, k)] = code16(precision, v);
          } else if (wh16) {
            codes[at] = code16(precision, v);
          } else {
            p.wh[at] = v;
          }
        }
        p.bias[static_cast<std::size_t>(dst)] = m.folded_bias(l, static_cast<std::size_t>(src));
      }
    }
  }
  return p;
}

}  // namespace slstm::cpu
