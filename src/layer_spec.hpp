// What one layer is: the single description of a layer that the model, the weight formats,
// the model file, every backend and the state layout read.  Today every layer is a
// forward-direction float32 LSTM (TF BasicLSTMCell); the fields are there so that a new cell
// kind, direction or data type is a new value here plus its cell definition in each backend
// (docs/architecture.md, "Adding a cell kind"), not a rewrite of every place that assumed
// LSTM.
#pragma once

#include <cstdint>

namespace slstm {

enum class CellKind : std::int32_t {
  kLstm = 0,  // TF BasicLSTMCell: gates i, f, g, o; state (c, h); forget_bias on f
};

enum class Direction : std::int32_t {
  kForward = 0,
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
  std::int64_t proj_size = 0;         // output projection width; 0 = none (reserved)

  // Gate blocks of the pre-activation, in the canonical order (LSTM: i, f, g, o).
  int gates() const { return 4; }
  // What the layer hands to the next one (and the stack's output for the last layer).
  std::int64_t output_size() const { return proj_size > 0 ? proj_size : hidden_size; }
  // Pieces of the layer's state, in packed order (LSTM: c, h), and each one's width.
  int state_parts() const { return 2; }
  std::int64_t state_part_size(int part) const { return part == 0 ? hidden_size : output_size(); }
  // Rows of W_x / W_h and the bias length.
  std::int64_t gate_rows() const { return gates() * hidden_size; }
};

// Names for messages, descriptions and the model file.
inline const char* cell_name(CellKind c) {
  switch (c) {
    case CellKind::kLstm: return "lstm";
  }
  return "unknown";
}
inline const char* direction_name(Direction d) {
  switch (d) {
    case Direction::kForward: return "forward";
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
