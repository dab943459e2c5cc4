// The packed state (header, "STATE PACKING"; docs/cells.md): the one place that knows where
// each layer's state pieces live.  Layer after layer, direction after direction (forward
// first), each piece of a cell's state (LSTM: c, then h; GRU: h) is a row-major [batch, width]
// block, so every offset is batch x a per-row offset; the layout is
// described once per model by those per-row offsets and scaled by the batch of a call.  The
// C API (slstm_model_state_offset/count), every backend and, through the C API, Python read
// it from here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common.hpp"
#include "layer_spec.hpp"

namespace slstm {

class StateLayout {
 public:
  StateLayout() = default;
  explicit StateLayout(const std::vector<LayerSpec>& layers) {
    std::int64_t at = 0;
    for (const LayerSpec& s : layers) {
      Layer l;
      for (int p = 0; p < s.state_parts(); ++p) {
        l.row_offset[p] = at;
        l.width[p] = s.state_part_size(p);
        l.kind[p] = s.state_part_kind(p % s.cell_state_parts());
        l.direction[p] = p / s.cell_state_parts();
        at += l.width[p];
      }
      l.parts = s.state_parts();
      pieces_ += l.parts;
      layers_.push_back(l);
    }
    row_floats_ = at;
  }

  std::size_t num_layers() const { return layers_.size(); }
  int parts(std::size_t layer) const { return layers_[layer].parts; }
  // Floats per batch row of piece `part` of `layer`, and of the whole state.
  std::int64_t width(std::size_t layer, int part) const { return layers_[layer].width[part]; }
  std::int64_t row_floats() const { return row_floats_; }
  // Piece `part` of `layer`: which slstm_state_part it is (0 = c, 1 = h) and which direction
  // (0 = forward or the only one, 1 = reverse half of a bidirectional layer).
  int kind(std::size_t layer, int part) const { return layers_[layer].kind[part]; }
  int direction(std::size_t layer, int part) const { return layers_[layer].direction[part]; }
  // The piece of `layer`'s first direction whose kind is `kind`, or -1 (a GRU has no c).
  int find(std::size_t layer, int kind) const {
    for (int p = 0; p < parts(layer); ++p) {
      if (direction(layer, p) == 0 && this->kind(layer, p) == kind) return p;
    }
    return -1;
  }
  // Pieces over all layers.
  std::int64_t pieces() const { return pieces_; }
  // Offset of the piece in floats per batch row (the offset for a batch is batch times it).
  std::int64_t row_offset(std::size_t layer, int part) const {
    return layers_[layer].row_offset[part];
  }

  // Floats in a packed state of `batch` rows, checked: SLSTM_ERR_SIZE_OVERFLOW unless the
  // state's bytes fit in size_t (a count whose bytes wrap would be no state a caller can hold).
  // `what` names the argument that gave `batch`, in the message.
  std::size_t count(std::int64_t batch, const char* what = "state size") const {
    const std::size_t n = product({batch, row_floats_}, what);
    mul_size(n, sizeof(float), what);
    return n;
  }
  // Offset in floats of piece `part` of `layer` in a packed state of `batch` rows; the caller
  // has checked count(batch), which bounds it.
  std::size_t offset(std::int64_t batch, std::size_t layer, int part) const {
    return static_cast<std::size_t>(batch) * static_cast<std::size_t>(row_offset(layer, part));
  }

 private:
  static constexpr int kMaxParts = 4;  // LSTM: (c, h) x 2 directions
  struct Layer {
    int parts = 0;
    std::int64_t row_offset[kMaxParts] = {};
    std::int64_t width[kMaxParts] = {};
    int kind[kMaxParts] = {};
    int direction[kMaxParts] = {};
  };
  std::vector<Layer> layers_;
  std::int64_t pieces_ = 0;
  std::int64_t row_floats_ = 0;
};

}  // namespace slstm
