// The model file's reader (internal to src/model_file/): the header's plan, validated
// against itself and the data section's size, and the model built from it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../model.hpp"
#include "json_header.hpp"

namespace slstm {
namespace model_file {

// Everything the header says, validated against itself and the data section's size.
struct Plan {
  int version = 1;                   // format_version: 1 or 2
  std::uint64_t input_size = 0;
  std::vector<std::int64_t> hidden;  // hidden_sizes
  std::vector<LayerSpec> specs;      // every layer, input_size set (version 1: forward
                                     // BasicLSTMCell; version 2: checked by check_layers)
  float forget_bias = 0.0f;
  std::vector<TensorEntry> tensors;  // sorted by begin: they tile [0, data_size)
};

// metadata.cpp: __metadata__ -> plan's architecture (version, input_size, hidden, specs,
// forget_bias), in this order: format, format_version, input_size, hidden_sizes, cells, the
// version-2 layer keys (directions, residual, peepholes, cell_clip, proj_sizes, proj_clip,
// gru_reset_after), forget_bias, source_layout, then (version 2) the stack as a whole.
void read_architecture(const Header& header, Plan* plan);

// metadata.cpp: called before a tensor name this library does not know is refused: when the
// metadata (if it came first, as writers put it) say the file is of a newer format_version or
// has a cell or direction this library does not read, that is the error
// (SLSTM_ERR_UNSUPPORTED), since a newer file's tensors may well be named differently.
void refuse_if_newer(const Header& header);

// reader.cpp: the header parsed and checked completely (metadata, tensor table, shapes,
// byte ranges); data_size is the bytes after the header.
Plan plan_model(const unsigned char* header_bytes, std::size_t header_len,
                std::uint64_t data_size);

// The header length N from the first 8 bytes, checked against the limit and the image size
// (which check_min_size has passed).
std::size_t header_length(const unsigned char* first8, std::uint64_t size);
void check_min_size(std::uint64_t size);

// convert.cpp: n elements of dtype d at src into dst; returns the index of the first element
// that is not a finite float32, or n.
std::size_t convert(const unsigned char* src, WireDType d, std::size_t n, float* dst);

// Builds the model (its one allocation) and fills it from the data section, read front to
// back in pieces of at most kChunk bytes: next(n) returns the next n bytes.
template <class Next>
ModelPtr build_model(const Plan& plan, Next&& next) {
  const auto input_size = static_cast<std::int64_t>(plan.input_size);
  auto model = plan.version == 1
                   ? std::make_shared<Model>(input_size, plan.hidden, plan.forget_bias)
                   : std::make_shared<Model>(input_size, plan.specs, plan.forget_bias);
  for (const TensorEntry& t : plan.tensors) {
    std::vector<float>& part = piece_data(model->mutable_layer(t.layer).dir(t.direction), t.piece);
    float* dst = part.data();
    const std::size_t count = part.size();
    const std::size_t es = dtype_size(t.dtype);
    for (std::size_t done = 0; done < count;) {
      const std::size_t n = std::min(count - done, kChunk / es);
      const unsigned char* src = next(n * es);
      const std::size_t bad = convert(src, t.dtype, n, dst + done);
      if (bad != n) {
        bad_file("tensor \"" + t.name() + "\" element " + std::to_string(done + bad) +
                 " is not a finite float32");
      }
      done += n;
    }
  }
  return model;
}

}  // namespace model_file
}  // namespace slstm
