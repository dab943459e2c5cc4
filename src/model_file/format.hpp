// What the parts of the model-file code share (internal to src/model_file/): the format's
// names and limits, the tensor names and shapes, and the error for a malformed file.
//
// The parts, each doing one job:
//   json_header.{hpp,cpp}  the strict JSON parser for the header's schema (HeaderParser)
//   metadata.cpp           __metadata__ -> the architecture (format, version, sizes, cells)
//   reader.{hpp,cpp}       tensor table and byte-layout checks; read_model_image
//   convert.cpp            tensor bytes (F32, F64, F16, BF16) -> float32
//   writer.{hpp,cpp}       the header text and the image (model_file_size, write_model_image)
//   file_io.cpp            load_model_file (bounded reads), save_model_file (atomic)
// The interface the rest of the library uses is src/model_file.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../common.hpp"

namespace slstm {
namespace model_file {

constexpr const char* kFormatTag = "stacklstm";
constexpr std::uint64_t kMaxHeader = SLSTM_MODEL_FILE_MAX_HEADER;
constexpr std::size_t kMaxLayers = SLSTM_MAX_LAYERS;
constexpr std::uint64_t kMaxExtent = static_cast<std::uint64_t>(SLSTM_MAX_EXTENT);
constexpr std::size_t kMaxTensors = 3 * kMaxLayers;     // layers.<l>.{W_x, W_h, b}
constexpr std::size_t kMaxMetadataEntries = 1024;       // ours are few; others are kept unread
constexpr std::size_t kMaxJsonDepth = 3;                // {tensor: {shape: [..]}}
inline constexpr const char* kPieces[3] = {"W_x", "W_h", "b"};
// Bytes of tensor data converted per step when reading a file (a multiple of every dtype's
// element size).
constexpr std::size_t kChunk = std::size_t{1} << 20;

// SLSTM_ERR_INVALID_ARGUMENT, "model file: " + what.
[[noreturn]] void bad_file(const std::string& what);

void require_little_endian();

// source_layout as the format allows it (<= 256 bytes of printable ASCII); returns it.
std::string check_source_layout(const std::string& s);

// "layers.<layer>.<piece>".
std::string tensor_name(std::size_t layer, int piece);

// Expected shape of piece (0 W_x, 1 W_h, 2 b) of a layer.
std::vector<std::uint64_t> piece_shape(int piece, std::uint64_t in, std::uint64_t h);

// "[a, b, ...]".
std::string shape_text(const std::uint64_t* s, std::size_t n);

}  // namespace model_file
}  // namespace slstm
