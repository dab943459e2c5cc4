// What the parts of the model-file code share (internal to src/model_file/): the format's
// names and limits, the tensor names and shapes, and the error for a malformed file.
//
// The parts, each doing one job:
//   json_header.{hpp,cpp}  the strict JSON parser for the header's schema (HeaderParser)
//   metadata.cpp           __metadata__ -> the architecture (format, version, sizes, layers)
//   reader.{hpp,cpp}       tensor table and byte-layout checks; read_model_image
//   convert.cpp            tensor bytes (F32, F64, F16, BF16) -> float32
//   writer.{hpp,cpp}       the header text and the image (model_file_size, write_model_image)
//   file_io.cpp            load_model_file (bounded reads), save_model_file (atomic)
// The interface the rest of the library uses is src/model_file.hpp; the format itself is
// specified in docs/interop.md ("Model files") and the header's "Model files" section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../common.hpp"
#include "../layer_spec.hpp"
#include "../model.hpp"

namespace slstm {
namespace model_file {

constexpr const char* kFormatTag = "stacklstm";
constexpr std::uint64_t kMaxHeader = SLSTM_MODEL_FILE_MAX_HEADER;
constexpr std::size_t kMaxLayers = SLSTM_MAX_LAYERS;
constexpr std::uint64_t kMaxExtent = static_cast<std::uint64_t>(SLSTM_MAX_EXTENT);
constexpr std::size_t kMaxMetadataEntries = 1024;       // ours are few; others are kept unread
constexpr std::size_t kMaxJsonDepth = 3;                // {tensor: {shape: [..]}}
// Bytes of tensor data converted per step when reading a file (a multiple of every dtype's
// element size).
constexpr std::size_t kChunk = std::size_t{1} << 20;

// The tensors of one direction of a layer are "layers.<l>.<piece>" (the forward or only
// direction) and "layers.<l>.reverse.<piece>" (a bidirectional layer's reverse cell), each
// piece one of these (the canonical tensors of docs/cells.md under their slstm_format_tensors
// names). Format version 1 has W_x, W_h and b of the forward direction only.
enum Piece : std::uint8_t { kWx = 0, kWh, kB, kBx, kBh, kPeep, kProj, kNumPieces };
inline constexpr const char* kPieces[kNumPieces] = {"W_x", "W_h",    "b",     "b_x",
                                                    "b_h", "w_peep", "W_proj"};
constexpr int kMaxDirections = 2;
constexpr int kMaxCellPieces = 5;  // an LSTM with peepholes and a projection
// Distinct tensor names a header may hold (the parser's duplicate bitmap has one bit each).
constexpr std::size_t kMaxTensorSlots = kMaxLayers * kMaxDirections * kNumPieces;

// SLSTM_ERR_INVALID_ARGUMENT, "model file: " + what.
[[noreturn]] void bad_file(const std::string& what);

void require_little_endian();

// source_layout as the format allows it (<= 256 bytes of printable ASCII); returns it.
std::string check_source_layout(const std::string& s);

// "layers.<layer>.<piece>" (direction 0) or "layers.<layer>.reverse.<piece>" (direction 1).
std::string tensor_name(std::size_t layer, int direction, int piece);

// The pieces of one direction of a layer, in file order (the canonical API order: LSTM W_x,
// W_h, b, then w_peep with peepholes, then W_proj with a projection; GRU W_x, W_h, b_x, b_h)
// into out[0..n); returns n.
int cell_pieces(const LayerSpec& s, std::uint8_t out[kMaxCellPieces]);

// The shape of a piece of a layer of spec s (input_size set): LSTM W_x [4H, I], W_h [4H, R],
// b [4H], w_peep [3, H], W_proj [P, H]; GRU W_x [3H, I], W_h [3H, H], b_x [3H], b_h [3H].
std::vector<std::uint64_t> piece_shape(int piece, const LayerSpec& s);

// The weights of a piece in one direction's CellWeights (b and b_x are both `bias`).
const std::vector<float>& piece_data(const CellWeights& w, int piece);
std::vector<float>& piece_data(CellWeights& w, int piece);

// "[a, b, ...]".
std::string shape_text(const std::uint64_t* s, std::size_t n);

}  // namespace model_file
}  // namespace slstm
