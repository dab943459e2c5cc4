// The model file's writer (internal to src/model_file/): the header text, shared by the
// in-memory image (writer.cpp) and the atomic file save (file_io.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../model.hpp"
#include "format.hpp"

namespace slstm {
namespace model_file {

// The header JSON, padded with spaces to a multiple of 8 (keys in layer order; the data
// section follows the same order); *data_size receives the data section's bytes.
// source_layout must have passed check_source_layout.
std::string header_text(const Model& model, const std::string& source_layout,
                        std::size_t* data_size);

// 8 + header + data bytes (checked).
std::size_t image_size(const std::string& header, std::size_t data_size);

// Calls f(layer, direction, piece, weights) for every tensor of the model, in file order:
// layer after layer, direction after direction (forward first), cell_pieces' order.
template <class F>
void for_each_tensor(const Model& model, F&& f) {
  std::uint8_t pieces[kMaxCellPieces];
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    const Layer& layer = model.layer(l);
    const int n = cell_pieces(layer.spec, pieces);
    for (int d = 0; d < layer.spec.directions(); ++d) {
      for (int k = 0; k < n; ++k) f(l, d, pieces[k], piece_data(layer.dir(d), pieces[k]));
    }
  }
}

// The 8-byte little-endian header length.
void encode_length(std::uint64_t n, unsigned char out[8]);

}  // namespace model_file
}  // namespace slstm
