// The model file's writer (internal to src/model_file/): the header text, shared by the
// in-memory image (writer.cpp) and the atomic file save (file_io.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../model.hpp"

namespace slstm {
namespace model_file {

// The header JSON, padded with spaces to a multiple of 8 (keys in layer order; the data
// section follows the same order); *data_size receives the data section's bytes.
// source_layout must have passed check_source_layout.
std::string header_text(const Model& model, const std::string& source_layout,
                        std::size_t* data_size);

// 8 + header + data bytes (checked).
std::size_t image_size(const std::string& header, std::size_t data_size);

// The 8-byte little-endian header length.
void encode_length(std::uint64_t n, unsigned char out[8]);

}  // namespace model_file
}  // namespace slstm
