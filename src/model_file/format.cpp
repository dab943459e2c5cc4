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

std::string tensor_name(std::size_t layer, int direction, int piece) {
  return "layers." + std::to_string(layer) + (direction == 1 ? ".reverse." : ".") +
         kPieces[piece];
}

int cell_pieces(const LayerSpec& s, std::uint8_t out[kMaxCellPieces]) {
  int n = 0;
  out[n++] = kWx;
  out[n++] = kWh;
  if (s.cell == CellKind::kGru) {
    out[n++] = kBx;
    out[n++] = kBh;
    return n;
  }
  out[n++] = kB;
  if (s.peepholes) out[n++] = kPeep;
  if (s.proj_size > 0) out[n++] = kProj;
  return n;
}

std::vector<std::uint64_t> piece_shape(int piece, const LayerSpec& s) {
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  const std::uint64_t rows = u(s.gate_rows());
  switch (piece) {
    case kWx: return {rows, u(s.input_size)};
    case kWh: return {rows, u(s.cell_output_size())};
    case kPeep: return {3, u(s.hidden_size)};
    case kProj: return {u(s.proj_size), u(s.hidden_size)};
    default: return {rows};  // b, b_x, b_h
  }
}

const std::vector<float>& piece_data(const CellWeights& w, int piece) {
  switch (piece) {
    case kWx: return w.w_x;
    case kWh: return w.w_h;
    case kBh: return w.bias_h;
    case kPeep: return w.peep;
    case kProj: return w.w_proj;
    default: return w.bias;  // b, b_x
  }
}

std::vector<float>& piece_data(CellWeights& w, int piece) {
  return const_cast<std::vector<float>&>(piece_data(static_cast<const CellWeights&>(w), piece));
}

std::string shape_text(const std::uint64_t* s, std::size_t n) {
  std::string t = "[";
  for (std::size_t k = 0; k < n; ++k) t += (k ? ", " : "") + std::to_string(s[k]);
  return t + "]";
}

}  // namespace model_file
}  // namespace slstm
