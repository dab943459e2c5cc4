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

// Exactly layers.<l>.{W_x, W_h, b} for every layer (names are unique already): the entry of
// layer l's piece p at [3l + p].
std::vector<const TensorEntry*> index_tensors(const std::vector<TensorEntry>& tensors,
                                              std::size_t L) {
  std::vector<const TensorEntry*> found(3 * L, nullptr);
  for (const TensorEntry& t : tensors) {
    if (t.layer >= L) {
      bad_file("unexpected tensor \"" + t.name() + "\" (a model of " + std::to_string(L) +
               " layers has layers.<l>.W_x, .W_h and .b)");
    }
    found[3 * std::size_t{t.layer} + t.piece] = &t;
  }
  for (std::size_t k = 0; k < 3 * L; ++k) {
    if (found[k] == nullptr) {
      bad_file("tensor \"" + tensor_name(k / 3, static_cast<int>(k % 3)) + "\" is missing");
    }
  }
  return found;
}

// Tensor t's shape against the architecture (piece p of a layer of input in, width h), and
// its byte range inside the data section, spanning exactly its dtype's and shape's bytes.
void check_tensor(const TensorEntry& t, int p, std::uint64_t in, std::uint64_t h,
                  std::uint64_t data_size) {
  const auto want = piece_shape(p, in, h);
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
  const std::size_t L = plan.hidden.size();
  const std::vector<const TensorEntry*> found = index_tensors(header.tensors, L);
  std::uint64_t in = plan.input_size;
  for (std::size_t l = 0; l < L; ++l) {
    const std::uint64_t h = static_cast<std::uint64_t>(plan.hidden[l]);
    for (int p = 0; p < 3; ++p) check_tensor(*found[3 * l + p], p, in, h, data_size);
    in = h;
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
