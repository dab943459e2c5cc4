// The model file's reader: the header parsed (json_header.cpp) and its metadata read
// (metadata.cpp), then the tensor table checked against the architecture and the data
// section (names, shapes, byte ranges, tiling), then the model built and filled
// (build_model, reader.hpp). Every value read from a file is checked before it is used:
// nothing is allocated whose size is not backed by bytes of the image.
#include "reader.hpp"

#include <algorithm>
#include <string>

#include "../model_file.hpp"

namespace slstm {
namespace model_file {
namespace {

// "lstm, bidirectional, peepholes, proj_size 4": what decides a layer's tensors.
std::string describe(const LayerSpec& s) {
  std::string d = std::string(cell_name(s.cell)) + ", " + direction_name(s.direction);
  if (s.peepholes) d += ", peepholes";
  if (s.proj_size > 0) d += ", proj_size " + std::to_string(s.proj_size);
  return d;
}

// "layers.<l>.W_x, layers.<l>.W_h, ...": every tensor of a layer, in file order.
std::string layer_tensors(std::size_t l, const LayerSpec& s) {
  std::uint8_t pieces[kMaxCellPieces];
  const int n = cell_pieces(s, pieces);
  std::string out;
  for (int d = 0; d < s.directions(); ++d) {
    for (int k = 0; k < n; ++k) out += (out.empty() ? "" : ", ") + tensor_name(l, d, pieces[k]);
  }
  return out;
}

// Where layer l's tensors begin in the list of every tensor of the architecture (layer after
// layer, direction after direction, cell_pieces' order); first[L] is the total.
std::vector<std::size_t> tensor_starts(const std::vector<LayerSpec>& specs) {
  std::vector<std::size_t> first(specs.size() + 1, 0);
  std::uint8_t pieces[kMaxCellPieces];
  for (std::size_t l = 0; l < specs.size(); ++l) {
    first[l + 1] = first[l] + static_cast<std::size_t>(cell_pieces(specs[l], pieces) *
                                                       specs[l].directions());
  }
  return first;
}

// Exactly the tensors of every layer's every direction (names are unique already): the
// entry of each tensor of the architecture, at its index in tensor_starts' list.
std::vector<const TensorEntry*> index_tensors(const std::vector<TensorEntry>& tensors,
                                              const std::vector<LayerSpec>& specs,
                                              const std::vector<std::size_t>& first) {
  const std::size_t L = specs.size();
  std::vector<const TensorEntry*> found(first[L], nullptr);
  std::uint8_t pieces[kMaxCellPieces];
  for (const TensorEntry& t : tensors) {
    if (t.layer >= L) {
      bad_file("unexpected tensor \"" + t.name() + "\" (a model of " + std::to_string(L) +
               " layers has tensors of layers 0 to " + std::to_string(L - 1) + " only)");
    }
    const LayerSpec& s = specs[t.layer];
    const int n = cell_pieces(s, pieces);
    const int k = static_cast<int>(std::find(pieces, pieces + n, t.piece) - pieces);
    if (k == n || t.direction >= s.directions()) {
      bad_file("unexpected tensor \"" + t.name() + "\" (layer " + std::to_string(t.layer) +
               " (" + describe(s) + ") has " + layer_tensors(t.layer, s) + " only)");
    }
    found[first[t.layer] + static_cast<std::size_t>(t.direction * n + k)] = &t;
  }
  for (std::size_t l = 0; l < L; ++l) {
    const int n = cell_pieces(specs[l], pieces);
    for (std::size_t k = first[l]; k < first[l + 1]; ++k) {
      if (found[k] != nullptr) continue;
      const std::size_t j = k - first[l];
      bad_file("tensor \"" + tensor_name(l, static_cast<int>(j) / n, pieces[j % n]) +
               "\" is missing (layer " + std::to_string(l) + ": " + describe(specs[l]) + ")");
    }
  }
  return found;
}

// Tensor t's shape against the architecture's `want`, and its byte range inside the data
// section, spanning exactly its dtype's and shape's bytes.
void check_tensor(const TensorEntry& t, const std::vector<std::uint64_t>& want,
                  std::uint64_t data_size) {
  if (t.ndim != want.size() || !std::equal(want.begin(), want.end(), t.shape)) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, "model file: tensor \"" + t.name() + "\" has shape " +
                                       shape_text(t.shape, t.ndim) +
                                       ", the architecture needs " +
                                       shape_text(want.data(), want.size()));
  }
  std::size_t bytes = dtype_size(t.dtype);
  for (std::size_t d = 0; d < t.ndim; ++d) {
    bytes = mul_size(bytes, static_cast<std::size_t>(t.shape[d]), "model file tensor size");
  }
  if (t.begin() > t.end() || t.end() > data_size) {
    bad_file("tensor \"" + t.name() + "\" data_offsets [" + std::to_string(t.begin()) + ", " +
             std::to_string(t.end()) + "] are not inside the data section (" +
             std::to_string(data_size) + " bytes)");
  }
  if (t.end() - t.begin() != bytes) {
    bad_file("tensor \"" + t.name() + "\" data_offsets span " +
             std::to_string(t.end() - t.begin()) + " bytes, its dtype and shape need " +
             std::to_string(bytes));
  }
}

// No overlap, no hole: sorted by begin, the ranges tile [0, data_size).
void sort_and_check_tiling(std::vector<TensorEntry>& tensors, std::uint64_t data_size) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin() != b.begin() ? a.begin() < b.begin() : a.end() < b.end();
  });
  std::uint64_t pos = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry& t : tensors) {
    if (t.begin() < pos) {
      bad_file("tensors \"" + prev->name() + "\" and \"" + t.name() + "\" overlap");
    }
    if (t.begin() > pos) {
      bad_file("bytes [" + std::to_string(pos) + ", " + std::to_string(t.begin()) +
               ") of the data section belong to no tensor");
    }
    pos = t.end();
    prev = &t;
  }
  if (pos != data_size) {
    bad_file("bytes [" + std::to_string(pos) + ", " + std::to_string(data_size) +
             ") of the data section belong to no tensor");
  }
}

}  // namespace

Plan plan_model(const unsigned char* header_bytes, std::size_t header_len,
                std::uint64_t data_size) {
  Header header = parse_header(header_bytes, header_len, &refuse_if_newer);
  Plan plan;
  read_architecture(header, &plan);
  const std::vector<std::size_t> first = tensor_starts(plan.specs);
  const std::vector<const TensorEntry*> found = index_tensors(header.tensors, plan.specs, first);
  std::uint8_t pieces[kMaxCellPieces];
  for (std::size_t l = 0; l < plan.specs.size(); ++l) {
    const int n = cell_pieces(plan.specs[l], pieces);
    for (std::size_t k = first[l]; k < first[l + 1]; ++k) {
      const std::size_t j = k - first[l];
      check_tensor(*found[k], piece_shape(pieces[j % static_cast<std::size_t>(n)], plan.specs[l]),
                   data_size);
    }
  }
  plan.tensors = std::move(header.tensors);
  sort_and_check_tiling(plan.tensors, data_size);
  return plan;
}

std::size_t header_length(const unsigned char* first8, std::uint64_t size) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | first8[k];
  if (n > kMaxHeader) {
    bad_file("header length " + std::to_string(n) + " exceeds the limit of " +
             std::to_string(kMaxHeader) + " bytes");
  }
  if (n > size - 8) {
    bad_file("header length " + std::to_string(n) + " runs past the end of the file (" +
             std::to_string(size) + " bytes)");
  }
  return static_cast<std::size_t>(n);
}

void check_min_size(std::uint64_t size) {
  if (size < 8) {
    bad_file("is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
}

}  // namespace model_file

ModelPtr read_model_image(const unsigned char* data, std::size_t size) {
  using namespace model_file;
  require_little_endian();
  check_min_size(size);
  const std::size_t header_len = header_length(data, size);
  const std::uint64_t data_size = size - 8 - header_len;
  const Plan plan = plan_model(data + 8, header_len, data_size);
  const unsigned char* p = data + 8 + header_len;
  return build_model(plan, [&p](std::size_t n) {
    const unsigned char* q = p;
    p += n;
    return q;
  });
}

}  // namespace slstm
