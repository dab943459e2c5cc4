// The model file's header: a strict JSON parser written for the safetensors header schema
// (internal to src/model_file/). It keeps only what the reader needs: the metadata strings
// and, per tensor entry, its name (as layer and piece), dtype, shape and data_offsets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "format.hpp"

namespace slstm {
namespace model_file {

// A tensor's dtype in the file (converted to float32 on load).
enum class WireDType : std::uint8_t { F32, F64, F16, BF16 };

inline std::size_t dtype_size(WireDType d) {
  switch (d) {
    case WireDType::F32: return 4;
    case WireDType::F64: return 8;
    default: return 2;
  }
}

struct TensorEntry {
  std::uint32_t layer = 0;
  std::uint8_t direction = 0;  // 0: layers.<l>.<piece>, 1: layers.<l>.reverse.<piece>
  std::uint8_t piece = 0;      // a Piece (format.hpp)
  std::uint8_t fields = 0;  // bit f: field f (dtype, shape, data_offsets) was given
  std::uint8_t ndim = 0;
  std::uint8_t noffsets = 0;
  WireDType dtype = WireDType::F32;
  std::uint64_t shape[SLSTM_MAX_DIMS] = {};
  std::uint64_t offsets[2] = {};

  std::string name() const { return tensor_name(layer, direction, piece); }
  std::uint64_t begin() const { return offsets[0]; }
  std::uint64_t end() const { return offsets[1]; }
};

// What the header holds, as far as the reader needs it.
struct Header {
  bool has_metadata = false;
  std::map<std::string, std::string> metadata;  // at most kMaxMetadataEntries
  std::vector<TensorEntry> tensors;            // in the header's order, names unique
};

// The header bytes as the safetensors format allows them: '{' first (no byte-order mark, no
// leading whitespace), one JSON object of the schema {"__metadata__": {key: string, ...},
// "layers.<l>[.reverse].<piece>": {"dtype": string, "shape": [uint, ...], "data_offsets":
// [uint, uint]}, ...}, then only spaces (0x20) as padding. Time is linear in n for every input.
// on_unexpected_tensor (may be null) is called with what was read so far just before a
// tensor name outside the schema is refused, and may throw an error of its own instead.
Header parse_header(const unsigned char* text, std::size_t n,
                    void (*on_unexpected_tensor)(const Header&) = nullptr);

}  // namespace model_file
}  // namespace slstm
