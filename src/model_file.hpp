// Model files: the canonical weights and the architecture in a safetensors image
// (format described in include/stacklstm/stacklstm.h, "Model files").
#pragma once

#include <cstddef>
#include <string>

#include "model.hpp"

namespace slstm {

// Bytes of the safetensors image of `model` (source_layout as given, validated).
std::size_t model_file_size(const Model& model, const std::string& source_layout);

// Writes the image into buf[0..capacity); returns the bytes written. Fails (nothing written)
// when capacity is too small.
std::size_t write_model_image(const Model& model, const std::string& source_layout,
                              unsigned char* buf, std::size_t capacity);

// Parses and validates an image; the model is built only after every check passed.
ModelPtr read_model_image(const unsigned char* data, std::size_t size);

// File wrappers (open/read/write errors carry the OS's text).
void save_model_file(const Model& model, const std::string& path,
                     const std::string& source_layout);
ModelPtr load_model_file(const std::string& path);

}  // namespace slstm
