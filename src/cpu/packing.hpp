// The fast path's weights, packed once per session for the kernels (step_kernels.hpp).
//
// A layer's hidden units are cut into groups of 16 (the last one zero-padded).  For group g
// the recurrent weights are stored as [k][gate i,f,g,o][16 units], one contiguous 256-byte
// row per k, so the micro-kernel streams them linearly (and prefetches them);
// the input weights likewise [group][I][64].  The AVX2 kernels work on 16 or 32 columns at a
// time (their 16 registers do not hold a row block x 64 columns), so for them both are
// [group][gate][K][16]: the columns of a pass lie contiguous, and a pass streams its weights
// without skipping over the other gates' (measured on a Zen 3 EPYC, H = 2048, B = 4, two
// threads: 6.3 -> 3.0 ms per step, the [K][64] rows read four times strided); the bias is
// [group][gate][16] with forget_bias added to the f block (Model::folded_bias).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../layer_spec.hpp"
#include "../model.hpp"
#include "../precision.hpp"
#include "buffer.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {

struct PackedLayer {
  CellKind cell = CellKind::kLstm;
  std::int64_t I = 0, H = 0, groups = 0;
  Buffer wx;    // [groups][I][64], or [groups][4][I][16] on the AVX2 kernels
  Buffer wh;    // [groups][H][64], or [groups][4][H][16] on the AVX2 kernels
  Buffer bias;  // [groups*64]
  // BF16/FP16 sessions on the AVX2 and AVX-512 kernels: Wh as 16-bit codes in wh's layout
  // (wh is then empty), in a float buffer of half the count; wh16_is_bf16 says which codes.
  Buffer wh16_storage;
  bool wh16_is_bf16 = false;
  const std::uint16_t* wh16() const {
    return reinterpret_cast<const std::uint16_t*>(wh16_storage.get());
  }
  // ... and Wx likewise (wx is then empty; the same codes as wh16's).
  Buffer wx16_storage;
  const std::uint16_t* wx16() const {
    return reinterpret_cast<const std::uint16_t*>(wx16_storage.get());
  }

  // BF16 sessions on AMX (cpu.amx): W_h as tiles of bfloat16 pairs instead, per group
  // [gate pair][k_tiles][2 gates][16 pairs of k][16 units][2] (k_tiles = ceil(H / 32), zero
  // beyond H and beyond the layer's units); wh and wh16_storage are then empty.
  Buffer wamx_storage;
  std::int64_t k_tiles = 0;
  const std::uint16_t* wamx() const {
    return reinterpret_cast<const std::uint16_t*>(wamx_storage.get());
  }
  // ... and W_x likewise, per group [kx_tiles][gate][16][16][2] (kx_tiles = ceil(I / 32));
  // wx is then empty.
  Buffer wxamx_storage;
  std::int64_t kx_tiles = 0;
  const std::uint16_t* wxamx() const {
    return reinterpret_cast<const std::uint16_t*>(wxamx_storage.get());
  }

  // The host memory it holds (host_memory_bytes).
  std::int64_t bytes() const {
    return held_bytes(wx) + held_bytes(wh) + held_bytes(bias) + held_bytes(wh16_storage) +
           held_bytes(wx16_storage) + held_bytes(wamx_storage) + held_bytes(wxamx_storage);
  }

  // Bytes of the layer's W_h (what the batch split wants one core to keep cached).
  double wh_bytes() const {
    return (wh16_storage || wamx_storage ? 8.0 : 16.0) * static_cast<double>(H * H);
  }
};

// Whether `kernel`'s step reads W_h as 16-bit codes in a session of `precision` (BF16 or
// FP16 on the AVX2 kernels of a CPU with F16C, and on the AVX-512 kernels).
bool stores_wh16(Kernel kernel, Precision precision);

// Layer l of m packed for `kernel`'s kernels, its weights rounded to `precision` (BF16,
// FP16: the products' operands; precision.hpp), W_h in 16 bits where stores_wh16 and
// allow_wh16 (cpu.wh16) say so (W_x too), or (`amx`, a BF16 session on
// the AVX-512 kernels) both as AMX tiles.  Throws std::bad_alloc / std::length_error.
PackedLayer pack_layer(const Model& m, std::size_t l, Kernel kernel,
                       Precision precision = Precision::kFp32, bool allow_wh16 = true,
                       bool amx = false);

}  // namespace slstm::cpu
