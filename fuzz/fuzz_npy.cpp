// libFuzzer target: the command-line tool's .npy reader (cli/npy.cpp), which `stacklstm run`
// applies to the user's --input and --lengths files.
//
// The input is the file image itself.  Properties checked (a violation traps):
// * parse_npy, npy_floats and npy_lengths either return or throw slstm_cli::Failure with a
//   message that names the file; no other exception, no crash;
// * a header that parses describes the rest of the image exactly: data_offset within it,
//   element_count the product of the shape, element_count * item_size the bytes after it;
// * what npy_floats returns has element_count values and the header's shape; from a float32
//   image they are its bytes, and npy_image_float32 of them parses back to the same shape
//   and bytes (the writer and the reader agree);
// * npy_lengths returns a 1-D array of element_count lengths;
// * plus everything ASan/UBSan/LSan check.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "npy.hpp"
#include "util.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  (void)what;
  __builtin_trap();
}

const std::string kName = "fuzz.npy";

// The call either returns or throws Failure naming the file.
template <typename F>
bool runs(F&& f) {
  try {
    f();
    return true;
  } catch (const slstm_cli::Failure& e) {
    if (std::string(e.what()).find(kName) == std::string::npos) violated("message lacks the name");
    return false;
  } catch (...) {
    violated("an exception other than Failure");
  }
}

std::size_t product(const std::vector<std::int64_t>& shape) {
  std::size_t n = 1;
  for (const std::int64_t d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  slstm_cli::NpyHeader h;
  const bool parsed = runs([&] { h = slstm_cli::parse_npy(data, size, kName); });
  if (parsed) {
    if (h.data_offset > size) violated("data offset past the end");
    if (h.element_count != product(h.shape)) violated("element count is not the shape's");
    if (h.element_count * h.item_size != size - h.data_offset) violated("data size");
  }

  slstm_cli::FloatArray a;
  if (runs([&] { a = slstm_cli::npy_floats(data, size, kName); })) {
    if (!parsed || h.kind != 'f') violated("floats from an image the parser refused");
    if (a.shape != h.shape || a.values.size() != h.element_count) violated("floats' shape");
    if (h.item_size == 4) {
      if (!a.converted_from.empty()) violated("float32 reported as converted");
      if (!a.values.empty() &&
          std::memcmp(a.values.data(), data + h.data_offset, a.values.size() * 4) != 0) {
        violated("float32 values are not the file's bytes");
      }
      const std::vector<std::uint8_t> image = slstm_cli::npy_image_float32(a.values.data(),
                                                                             a.shape);
      slstm_cli::FloatArray back;
      if (!runs([&] { back = slstm_cli::npy_floats(image.data(), image.size(), kName); })) {
        violated("the writer's image does not read back");
      }
      if (back.shape != a.shape || back.values.size() != a.values.size() ||
          (!a.values.empty() &&
           std::memcmp(back.values.data(), a.values.data(), a.values.size() * 4) != 0)) {
        violated("round trip changed the array");
      }
    }
  }

  std::vector<std::int64_t> shape;
  std::vector<std::int32_t> lengths;
  if (runs([&] { lengths = slstm_cli::npy_lengths(data, size, kName, &shape); })) {
    if (!parsed || shape.size() != 1 || lengths.size() != h.element_count) {
      violated("lengths' shape");
    }
  }
  return 0;
}
