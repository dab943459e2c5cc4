// What one layer is: the single description of a layer that the model, the weight formats,
// the model file, every backend and the state layout read (docs/cells.md).  A new cell kind,
// direction or data type is a new value here plus its cell definition in each backend
// (docs/architecture.md, "Adding a cell kind"), not a rewrite of every place that assumed
// LSTM.
#pragma once

#include <cstdint>

namespace slstm {

enum class CellKind : std::int32_t {
  kLstm = 0,  // TF LSTMCell: gates i, f, g, o; state (c, h); forget_bias on f
  kGru = 1,   // GRU: gates r, z, n; state h
};

enum class Direction : std::int32_t {
  kForward = 0,
  kReverse = 1,
  kBidirectional = 2,
};

enum class DType : std::int32_t {
  kF32 = 0,
};

struct LayerSpec {
  CellKind cell = CellKind::kLstm;
  Direction direction = Direction::kForward;
  DType weight_dtype = DType::kF32;   // how the model stores the weights
  DType compute_dtype = DType::kF32;  // what the cell's arithmetic is defined in
  std::int64_t input_size = 0;        // I: the layer input's width
  std::int64_t hidden_size = 0;       // H: the cell's width (rows of W_x = gates x H)
  std::int64_t proj_size = 0;         // LSTM output projection width P; 0 = none
  bool peepholes = false;             // LSTM: w_i, w_f, w_o diagonals
  float cell_clip = 0.0f;             // LSTM: 0 = none
  float proj_clip = 0.0f;             // LSTM with projection: 0 = none
  bool reset_after = false;           // GRU: reset applied after the recurrent matmul
  bool residual = false;              // output = cell output + input

  // Gate blocks of the pre-activation, in the canonical order (LSTM: i, f, g, o; GRU: r, z, n).
  int gates() const { return cell == CellKind::kGru ? 3 : 4; }
  // Width of one direction's output, which is also the width of the recurrent h.
  std::int64_t cell_output_size() const { return proj_size > 0 ? proj_size : hidden_size; }
  int directions() const { return direction == Direction::kBidirectional ? 2 : 1; }
  // What the layer hands to the next one (and the stack's output for the last layer).
  std::int64_t output_size() const { return cell_output_size() * directions(); }
  // Pieces of one direction's state, in packed order (LSTM: c, h; GRU: h), and their widths.
  int cell_state_parts() const { return cell == CellKind::kGru ? 1 : 2; }
  // The slstm_state_part of piece p of one direction (0 = c, 1 = h).
  int state_part_kind(int p) const { return cell == CellKind::kGru ? 1 : p; }
  std::int64_t cell_state_part_size(int p) const {
    return state_part_kind(p) == 0 ? hidden_size : cell_output_size();
  }
  // All pieces of the layer's state: every direction's, forward first.
  int state_parts() const { return cell_state_parts() * directions(); }
  std::int64_t state_part_size(int part) const {
    return cell_state_part_size(part % cell_state_parts());
  }
  // Rows of W_x / W_h and the bias length.
  std::int64_t gate_rows() const { return gates() * hidden_size; }
  // Whether the layer is a forward BasicLSTMCell: what every backend runs.
  bool is_basic_lstm() const {
    return cell == CellKind::kLstm && direction == Direction::kForward && proj_size == 0 &&
           !peepholes && cell_clip == 0.0f && proj_clip == 0.0f && !residual;
  }
};

// Names for messages, descriptions and the model file.
inline const char* cell_name(CellKind c) {
  switch (c) {
    case CellKind::kLstm: return "lstm";
    case CellKind::kGru: return "gru";
  }
  return "unknown";
}
inline const char* direction_name(Direction d) {
  switch (d) {
    case Direction::kForward: return "forward";
    case Direction::kReverse: return "reverse";
    case Direction::kBidirectional: return "bidirectional";
  }
  return "unknown";
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
  }
  return "unknown";
}

}  // namespace slstm
