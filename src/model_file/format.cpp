// The model file's shared helpers (src/model_file/format.hpp).
#include "format.hpp"

#include <cstring>

namespace slstm {
namespace model_file {

void bad_file(const std::string& what) { fail(SLSTM_ERR_INVALID_ARGUMENT, "model file: " + what); }

void require_little_endian() {
  const std::uint32_t one = 1;
  unsigned char b = 0;
  std::memcpy(&b, &one, 1);
  if (b != 1) fail(SLSTM_ERR_UNSUPPORTED, "model files need a little-endian host");
}

std::string check_source_layout(const std::string& s) {
  if (s.size() > 256) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "source_layout is longer than 256 bytes");
  }
  for (char ch : s) {
    if (ch < 0x20 || ch > 0x7e) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, "source_layout must be printable ASCII");
    }
  }
  return s;
}

std::string tensor_name(std::size_t layer, int piece) {
  return "layers." + std::to_string(layer) + "." + kPieces[piece];
}

std::vector<std::uint64_t> piece_shape(int piece, std::uint64_t in, std::uint64_t h) {
  if (piece == 0) return {4 * h, in};
  if (piece == 1) return {4 * h, h};
  return {4 * h};
}

std::string shape_text(const std::uint64_t* s, std::size_t n) {
  std::string t = "[";
  for (std::size_t k = 0; k < n; ++k) t += (k ? ", " : "") + std::to_string(s[k]);
  return t + "]";
}

}  // namespace model_file
}  // namespace slstm
