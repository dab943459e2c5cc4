// Model files (safetensors): round trips, and one TEST_CASE per class of broken or hostile
// file, each of which must give a status and a message naming the problem, never a crash, an
// over-read or a huge allocation.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "support.hpp"

namespace {

using json = nlohmann::json;
using Bytes = std::vector<unsigned char>;

// A small valid model: D = 2, one layer of H = 3 (W_x 96 bytes, W_h 144, b 48).
t::Model small_model() { return t::random_model(2, {3}, 11, 0.625f); }

Bytes save(const slstm_model* m, const char* layout = "tf") {
  size_t n = 0;
  REQUIRE(slstm_model_file_size(m, layout, &n) == SLSTM_OK);
  Bytes b(n, 0xAB);
  size_t written = 0;
  const slstm_status st = slstm_model_save_memory(m, layout, b.data(), b.size(), &written);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  REQUIRE(written == n);
  return b;
}

std::vector<float> canonical(const slstm_model* m) {
  std::int32_t L = 0;
  REQUIRE(slstm_model_num_layers(m, &L) == SLSTM_OK);
  std::vector<std::vector<float>> bufs;
  std::vector<slstm_tensor_out> outs;
  std::int64_t I = t::input_size(m);
  for (std::int32_t l = 0; l < L; ++l) {
    std::int64_t H = 0;
    REQUIRE(slstm_model_hidden_size(m, l, &H) == SLSTM_OK);
    const std::int64_t shapes[3][2] = {{4 * H, I}, {4 * H, H}, {4 * H, 1}};
    for (int p = 0; p < 3; ++p) {
      bufs.emplace_back(static_cast<std::size_t>(shapes[p][0] * shapes[p][1]));
      slstm_tensor_out o{};
      o.ndim = p == 2 ? 1 : 2;
      o.shape[0] = shapes[p][0];
      o.shape[1] = shapes[p][1];
      outs.push_back(o);
    }
    I = H;
  }
  for (std::size_t k = 0; k < outs.size(); ++k) outs[k].data = bufs[k].data();
  REQUIRE(slstm_model_export(m, SLSTM_FORMAT_CANONICAL, outs.data(), outs.size()) == SLSTM_OK);
  std::vector<float> all;
  for (const auto& b : bufs) all.insert(all.end(), b.begin(), b.end());
  return all;
}

// Splits an image into (header JSON, data section).
std::pair<json, Bytes> split(const Bytes& img) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | img[static_cast<std::size_t>(k)];
  const std::string text(img.begin() + 8, img.begin() + 8 + static_cast<long>(n));
  return {json::parse(text), Bytes(img.begin() + 8 + static_cast<long>(n), img.end())};
}

Bytes join(const std::string& header_text, const Bytes& data) {
  std::string head(8, '\0');
  const std::uint64_t n = header_text.size();
  for (std::size_t k = 0; k < 8; ++k) head[k] = static_cast<char>((n >> (8 * k)) & 0xffu);
  head += header_text;
  Bytes img(head.begin(), head.end());
  img.insert(img.end(), data.begin(), data.end());
  return img;
}

Bytes join(const json& header, const Bytes& data) { return join(header.dump(), data); }

// The small model's image, its header and data, for tests to edit.
struct Parts {
  json header;
  Bytes data;
};
Parts valid_parts() {
  auto m = small_model();
  auto [h, d] = split(save(m.get()));
  return {h, d};
}

// Loading must fail with `status`, a message containing `needle`, and *out untouched.
void expect_rejected(const Bytes& img, slstm_status status, const std::string& needle) {
  slstm_model* out = reinterpret_cast<slstm_model*>(0x1);
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  const std::string msg = slstm_last_error();
  INFO("message: " << msg);
  CHECK(st == status);
  CHECK(out == reinterpret_cast<slstm_model*>(0x1));
  CHECK(msg.find(needle) != std::string::npos);
}

// Loading must not crash; on success the model is usable (weights readable).
void load_any(const Bytes& img) {
  slstm_model* out = nullptr;
  if (slstm_model_load_memory(img.data(), img.size(), &out) == SLSTM_OK) {
    REQUIRE(out != nullptr);
    canonical(out);
    slstm_model_destroy(out);
  } else {
    CHECK(std::strlen(slstm_last_error()) > 0);
  }
}

std::string temp_path(const char* name) {
  return std::string("slstm_test_") + name + "_" + std::to_string(std::rand()) + ".safetensors";
}

}  // namespace

// ---- round trips -----------------------------------------------------------------------------

TEST_CASE("a saved model loads back with the same weights, forget_bias and architecture",
          "[model-file][path-independent]") {
  auto m = t::random_model(5, {4, 7, 3}, 21, 0.75f);
  const Bytes img = save(m.get());
  slstm_model* back = nullptr;
  REQUIRE(slstm_model_load_memory(img.data(), img.size(), &back) == SLSTM_OK);
  t::Model b(back);
  CHECK(canonical(b.get()) == canonical(m.get()));
  float fb = 0;
  REQUIRE(slstm_model_forget_bias(b.get(), &fb) == SLSTM_OK);
  CHECK(fb == 0.75f);
  std::int32_t L = 0;
  REQUIRE(slstm_model_num_layers(b.get(), &L) == SLSTM_OK);
  CHECK(L == 3);
  CHECK(t::input_size(b.get()) == 5);
  CHECK(t::output_size(b.get()) == 3);
}

TEST_CASE("a model saved to a file loads back from the file", "[model-file][path-independent]") {
  auto m = small_model();
  const std::string path = temp_path("roundtrip");
  REQUIRE(slstm_model_save_file(m.get(), path.c_str(), "pytorch") == SLSTM_OK);
  slstm_model* back = nullptr;
  const slstm_status st = slstm_model_load_file(path.c_str(), &back);
  std::remove(path.c_str());
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  t::Model b(back);
  CHECK(canonical(b.get()) == canonical(m.get()));
}

TEST_CASE("the file header carries the architecture and source layout as safetensors metadata",
          "[model-file][path-independent]") {
  auto m = t::random_model(4, {6, 2}, 3, 1.0f);
  const auto [header, data] = split(save(m.get(), "keras"));
  const json& meta = header.at("__metadata__");
  CHECK(meta.at("format") == "stacklstm");
  CHECK(meta.at("format_version") == "1");
  CHECK(meta.at("input_size") == "4");
  CHECK(meta.at("hidden_sizes") == "6,2");
  CHECK(meta.at("forget_bias") == "1");
  CHECK(meta.at("source_layout") == "keras");
  CHECK(header.at("layers.1.W_x").at("shape") == json::array({8, 6}));
  CHECK(header.at("layers.1.W_x").at("dtype") == "F32");
}

TEST_CASE("saving into a buffer that is too small writes nothing",
          "[model-file][path-independent]") {
  auto m = small_model();
  size_t n = 0;
  REQUIRE(slstm_model_file_size(m.get(), nullptr, &n) == SLSTM_OK);
  Bytes buf(n - 1, 0x5A);
  size_t written = 12345;
  CHECK(slstm_model_save_memory(m.get(), nullptr, buf.data(), buf.size(), &written) ==
        SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(written == 12345);
  CHECK(std::string(slstm_last_error()).find("capacity") != std::string::npos);
  for (unsigned char c : buf) REQUIRE(c == 0x5A);
}

TEST_CASE("a source_layout with quotes and backslashes is escaped and loads back",
          "[model-file][path-independent]") {
  auto m = small_model();
  const std::string layout = "a\\b\"c\\";  // a\b"c\ : both JSON string escapes needed
  const Bytes img = save(m.get(), layout.c_str());
  const json header = split(img).first;  // nlohmann's parser: the header is valid JSON
  CHECK(header.at("__metadata__").at("source_layout") == layout);
  slstm_model* back = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &back);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  t::Model b(back);
  CHECK(canonical(b.get()) == canonical(m.get()));
}

TEST_CASE("a non-printable source_layout is an invalid argument",
          "[model-file][path-independent]") {
  auto m = small_model();
  size_t n = 0;
  CHECK(slstm_model_file_size(m.get(), "bad\nlayout", &n) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("source_layout") != std::string::npos);
}

TEST_CASE("F64, F16 and BF16 tensors are converted to float32 on load",
          "[model-file][path-independent]") {
  auto m = t::random_model(2, {1}, 9, 1.0f);
  auto [header, data] = split(save(m.get()));
  const auto want = canonical(m.get());
  for (const std::string dtype : {"F64", "F16", "BF16"}) {
    INFO(dtype);
    json h = header;
    Bytes d;
    std::size_t k = 0;
    for (const char* name : {"layers.0.W_x", "layers.0.W_h", "layers.0.b"}) {
      std::size_t count = 1;
      for (const auto& e : h[name]["shape"]) count *= e.get<std::size_t>();
      const std::size_t begin = d.size();
      for (std::size_t i = 0; i < count; ++i, ++k) {
        const float v = want[k];
        if (dtype == "F64") {
          const double x = v;
          const auto* p = reinterpret_cast<const unsigned char*>(&x);
          d.insert(d.end(), p, p + 8);
        } else if (dtype == "BF16") {
          std::uint32_t bits;
          std::memcpy(&bits, &v, 4);
          d.push_back(static_cast<unsigned char>(bits >> 16));
          d.push_back(static_cast<unsigned char>(bits >> 24));
        } else {  // F16: 1.5 is exact; store it for every element
          d.push_back(0x00);
          d.push_back(0x3E);
        }
      }
      h[name]["dtype"] = dtype;
      h[name]["data_offsets"] = {begin, d.size()};
    }
    slstm_model* out = nullptr;
    const Bytes img = join(h, d);
    REQUIRE(slstm_model_load_memory(img.data(), img.size(), &out) == SLSTM_OK);
    t::Model b(out);
    const auto got = canonical(b.get());
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (dtype == "F64") CHECK(got[i] == want[i]);
      if (dtype == "F16") CHECK(got[i] == 1.5f);
      if (dtype == "BF16") CHECK(std::fabs(got[i] - want[i]) <= std::fabs(want[i]) / 128.0f);
    }
  }
}

// Hand-built 16-bit codes against values computed with ldexp (IEEE 754 binary16 and
// bfloat16): subnormals, signs, the largest finite values, and infinities and NaNs refused.
namespace {
// The small model's first tensor (layers.0.W_x, 2 elements) set to `codes` of `dtype`, the
// rest left float32; the image returned.
Bytes image_with_w_x(const std::string& dtype, std::uint16_t c0, std::uint16_t c1) {
  auto m = t::random_model(2, {1}, 9, 1.0f);  // W_x [4, 2]: 8 elements
  auto [h, d] = split(save(m.get()));
  Bytes out;
  std::uint64_t old_begin = h["layers.0.W_x"]["data_offsets"][0].get<std::uint64_t>();
  std::uint64_t old_end = h["layers.0.W_x"]["data_offsets"][1].get<std::uint64_t>();
  REQUIRE(old_begin == 0);
  for (int k = 0; k < 8; ++k) {
    const std::uint16_t c = k % 2 == 0 ? c0 : c1;
    out.push_back(static_cast<unsigned char>(c & 0xffu));
    out.push_back(static_cast<unsigned char>(c >> 8));
  }
  const std::uint64_t shift = old_end - out.size();
  out.insert(out.end(), d.begin() + static_cast<long>(old_end), d.end());
  for (auto& [name, entry] : h.items()) {
    if (name == "__metadata__") continue;
    if (name == "layers.0.W_x") {
      entry["dtype"] = dtype;
      entry["data_offsets"] = {0, 16};
    } else {
      entry["data_offsets"] = {entry["data_offsets"][0].get<std::uint64_t>() - shift,
                               entry["data_offsets"][1].get<std::uint64_t>() - shift};
    }
  }
  return join(h, out);
}

struct CodeCase {
  std::uint16_t code;
  double want;
};

// Each case's code as every other element of layers.0.W_x (the others `other`, which is
// `other_value`): the loaded model holds exactly the wanted values, signs included.
void check_codes(const std::string& dtype, const std::vector<CodeCase>& cases,
                 std::uint16_t other, double other_value) {
  for (const CodeCase& c : cases) {
    INFO(dtype << " code 0x" << std::hex << c.code);
    const Bytes img = image_with_w_x(dtype, c.code, other);
    slstm_model* out = nullptr;
    const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
    INFO(slstm_last_error());
    REQUIRE(st == SLSTM_OK);
    t::Model b(out);
    const auto got = canonical(b.get());
    for (int k = 0; k < 8; ++k) {
      const double want = k % 2 == 0 ? c.want : other_value;
      CHECK(static_cast<double>(got[static_cast<std::size_t>(k)]) == want);
      CHECK(std::signbit(got[static_cast<std::size_t>(k)]) == std::signbit(want));
    }
  }
}
}  // namespace

TEST_CASE("F16 codes convert exactly: subnormals, signs and the largest finite value",
          "[model-file][path-independent]") {
  const std::vector<CodeCase> cases = {
      {0x0001, std::ldexp(1.0, -24)},           // smallest subnormal
      {0x03FF, 1023 * std::ldexp(1.0, -24)},    // largest subnormal
      {0x0200, std::ldexp(1.0, -15)},           // a subnormal with one bit
      {0x0155, 341 * std::ldexp(1.0, -24)},     // a subnormal of several bits
      {0x8001, -std::ldexp(1.0, -24)},          // negative subnormal
      {0x0400, std::ldexp(1.0, -14)},           // smallest normal
      {0x7BFF, 65504.0},                        // largest finite
      {0xC000, -2.0},                           // negative normal
      {0xB5C3, -(1.0 + 0x1C3 / 1024.0) * std::ldexp(1.0, 13 - 15)},
      {0x8000, -0.0},                           // negative zero
  };
  check_codes("F16", cases, 0x3C00, 1.0);  // 0x3C00 is 1.0
}

TEST_CASE("F16 and BF16 infinities and NaNs are rejected naming the tensor",
          "[model-file][path-independent]") {
  const std::uint16_t f16[] = {0x7C00, 0xFC00, 0x7E00, 0x7C01};
  for (const std::uint16_t code : f16) {
    INFO("F16 0x" << std::hex << code);
    expect_rejected(image_with_w_x("F16", 0x3C00, code), SLSTM_ERR_INVALID_ARGUMENT,
                    "layers.0.W_x");
  }
  const std::uint16_t bf16[] = {0x7F80, 0xFF80, 0x7FC0, 0xFFC1};
  for (const std::uint16_t code : bf16) {
    INFO("BF16 0x" << std::hex << code);
    expect_rejected(image_with_w_x("BF16", 0x3F80, code), SLSTM_ERR_INVALID_ARGUMENT,
                    "layers.0.W_x");
  }
}

TEST_CASE("BF16 codes convert exactly: signs, subnormals and the largest finite value",
          "[model-file][path-independent]") {
  const std::vector<CodeCase> cases = {
      {0xBF80, -1.0},
      {0x0001, std::ldexp(1.0, -133)},                   // smallest subnormal
      {0x8001, -std::ldexp(1.0, -133)},
      {0x7F7F, (2.0 - std::ldexp(1.0, -7)) * std::ldexp(1.0, 127)},  // largest finite
      {0x3E20, 0.15625},
      {0x8000, -0.0},
  };
  check_codes("BF16", cases, 0x4040, 3.0);  // 0x4040 is 3.0
}

// ---- broken and hostile files: one class per TEST_CASE --------------------------------------

TEST_CASE("a file shorter than the 8-byte header length is rejected",
          "[model-file][path-independent]") {
  expect_rejected(Bytes{}, SLSTM_ERR_INVALID_ARGUMENT, "shorter than the 8-byte");
  expect_rejected(Bytes(7, 0), SLSTM_ERR_INVALID_ARGUMENT, "shorter than the 8-byte");
}

TEST_CASE("a header length above the 100 MB limit is rejected before reading it",
          "[model-file][path-independent]") {
  Bytes img(16, 0);
  img[7] = 0x7f;  // 2^62-ish
  expect_rejected(img, SLSTM_ERR_INVALID_ARGUMENT, "exceeds the limit");
  const std::uint64_t n = SLSTM_MODEL_FILE_MAX_HEADER + 1;
  for (int k = 0; k < 8; ++k) img[static_cast<std::size_t>(k)] = static_cast<unsigned char>(n >> (8 * k));
  expect_rejected(img, SLSTM_ERR_INVALID_ARGUMENT, "exceeds the limit");
}

TEST_CASE("a header length running past the end of the file is rejected",
          "[model-file][path-independent]") {
  Bytes img = save(small_model().get());
  img.resize(200);
  expect_rejected(img, SLSTM_ERR_INVALID_ARGUMENT, "runs past the end");
}

TEST_CASE("a header length running one byte past the end of the file is rejected",
          "[model-file][path-independent]") {
  Bytes img = save(small_model().get());
  const auto set_length = [&img](std::uint64_t n) {
    for (std::size_t k = 0; k < 8; ++k) img[k] = static_cast<unsigned char>(n >> (8 * k));
  };
  set_length(img.size() - 7);  // 8 + length is one byte more than the file
  expect_rejected(img, SLSTM_ERR_INVALID_ARGUMENT, "runs past the end");
  set_length(img.size() - 8);  // exactly to the end: no data section
  slstm_model* out = nullptr;
  CHECK(slstm_model_load_memory(img.data(), img.size(), &out) != SLSTM_OK);
  CHECK(std::string(slstm_last_error()).find("runs past the end") == std::string::npos);
}

TEST_CASE("a header that is not JSON is rejected", "[model-file][path-independent]") {
  expect_rejected(join(std::string("{\"__metadata__\": {\"a\": \"b\"}"), {}),
                  SLSTM_ERR_INVALID_ARGUMENT, "not valid JSON");
  expect_rejected(join(std::string("{\"__metadata__\":{}}}"), {}), SLSTM_ERR_INVALID_ARGUMENT,
                  "not valid JSON");
  expect_rejected(join(std::string("{\"__metadata__\": {\"k\": \"\xc3\x28\"}}"), {}),
                  SLSTM_ERR_INVALID_ARGUMENT, "not valid JSON");
}

TEST_CASE("a header that is JSON but not an object is rejected", "[model-file][path-independent]") {
  expect_rejected(join(std::string("[1, 2, 3]"), {}), SLSTM_ERR_INVALID_ARGUMENT,
                  "not a JSON object");
}

TEST_CASE("a header with a duplicate key is rejected", "[model-file][path-independent]") {
  auto p = valid_parts();
  std::string text = p.header.dump();
  const std::string entry = "\"layers.0.b\":" + p.header["layers.0.b"].dump();
  text.insert(1, entry + ",");
  expect_rejected(join(text, p.data), SLSTM_ERR_INVALID_ARGUMENT, "twice");
}

TEST_CASE("a deeply nested header is rejected without recursion",
          "[model-file][path-independent]") {
  std::string text = "{\"layers.0.b\":{\"shape\":" + std::string(100000, '[') +
                     std::string(100000, ']') + "}}";
  expect_rejected(join(text, {}), SLSTM_ERR_INVALID_ARGUMENT, "nested too deeply");
}

TEST_CASE("a header with more than 1024 metadata entries is rejected",
          "[model-file][path-independent]") {
  // Tensors are bounded by their names (layers.<l>.<piece>, l < SLSTM_MAX_LAYERS, each once);
  // the metadata, whose keys are free, by a count.
  auto p = valid_parts();
  json h = p.header;
  for (int k = 0; k < 1100; ++k) h["__metadata__"]["extra" + std::to_string(k)] = "x";
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "more than 1024 entries");
  h = p.header;
  for (int k = 0; k < 1000; ++k) h["__metadata__"]["extra" + std::to_string(k)] = "x";
  slstm_model* out = nullptr;
  const Bytes img = join(h, p.data);
  CHECK(slstm_model_load_memory(img.data(), img.size(), &out) == SLSTM_OK);
  slstm_model_destroy(out);
}

TEST_CASE("missing or malformed metadata is rejected naming the key",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  {
    json h = p.header;
    h.erase("__metadata__");
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "__metadata__");
  }
  for (const char* key : {"input_size", "hidden_sizes", "forget_bias", "format"}) {
    json h = p.header;
    h["__metadata__"].erase(key);
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, key);
  }
  const std::pair<const char*, const char*> bad[] = {
      {"input_size", "0"},      {"input_size", "-2"},        {"input_size", "2.0"},
      {"input_size", " 2"},     {"hidden_sizes", "3,"},      {"hidden_sizes", "0"},
      {"hidden_sizes", "x"},    {"forget_bias", "nan"},      {"forget_bias", "1e39"},
      {"forget_bias", "1.0x"},  {"input_size", "99999999999999999999"}};
  for (const auto& [key, value] : bad) {
    json h = p.header;
    h["__metadata__"][key] = value;
    INFO(key << " = " << value);
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, key);
  }
  json h = p.header;
  h["__metadata__"]["input_size"] = 2;  // safetensors metadata values are strings
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "not a string");
}

TEST_CASE("hidden_sizes listing more than SLSTM_MAX_LAYERS layers is rejected naming the limit",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  const auto list = [](int n) {
    std::string s = "3";
    for (int k = 1; k < n; ++k) s += ",3";
    return s;
  };
  json h = p.header;
  h["__metadata__"].erase("cells");  // optional in format_version 1, as 0.1 wrote it
  h["__metadata__"]["hidden_sizes"] = list(SLSTM_MAX_LAYERS + 1);
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                  "hidden_sizes has more than " + std::to_string(SLSTM_MAX_LAYERS) + " layers");
  h["__metadata__"]["hidden_sizes"] = list(SLSTM_MAX_LAYERS);  // allowed: layer 1's tensors lack
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "\"layers.1.W_x\" is missing");
}

TEST_CASE("a file of another format or version is unsupported", "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["__metadata__"]["format"] = "pt";
  expect_rejected(join(h, p.data), SLSTM_ERR_UNSUPPORTED, "format");
  h = p.header;
  h["__metadata__"]["format_version"] = "3";
  expect_rejected(join(h, p.data), SLSTM_ERR_UNSUPPORTED, "format_version");
}

TEST_CASE("an unexpected tensor name is rejected naming it", "[model-file][path-independent]") {
  auto p = valid_parts();
  for (const char* name : {"layers.1.W_x", "layers.0.W_y", "layers.00.b", "weight", "layers.0"}) {
    json h = p.header;
    h[name] = h["layers.0.b"];
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, name);
  }
}

TEST_CASE("a missing tensor is rejected naming it", "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h.erase("layers.0.W_h");
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "layers.0.W_h");
}

TEST_CASE("a malformed tensor entry is rejected naming the tensor and field",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  const std::pair<const char*, json> bad[] = {
      {"shape", json("12")},
      {"shape", json::array({12, -1})},
      {"shape", json::array({1, 1, 1, 1, 1})},
      {"shape", json::array({12.0})},
      {"data_offsets", json::array({0})},
      {"data_offsets", json::array({0, 48, 96})},
      {"data_offsets", json::array({-48, 0})},
      {"dtype", json(4)},
      {"extra", json(1)}};
  for (const auto& [field, value] : bad) {
    json h = p.header;
    h["layers.0.b"][field] = value;
    INFO(field << " = " << value.dump());
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "layers.0.b");
  }
  json h = p.header;
  h["layers.0.b"].erase("dtype");
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "dtype");
}

TEST_CASE("a tensor entry without shape or data_offsets is rejected naming the missing field",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    INFO(field);
    json h = p.header;
    h["layers.0.b"].erase(field);
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                    std::string("tensor \"layers.0.b\": missing \"") + field + "\"");
  }
}

TEST_CASE("an unsupported dtype is rejected naming it", "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["layers.0.b"]["dtype"] = "I32";
  expect_rejected(join(h, p.data), SLSTM_ERR_UNSUPPORTED, "I32");
}

TEST_CASE("a tensor shape that disagrees with the architecture is a shape mismatch",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["layers.0.W_x"]["shape"] = json::array({2, 12});
  expect_rejected(join(h, p.data), SLSTM_ERR_SHAPE_MISMATCH, "layers.0.W_x");
  h = p.header;
  h["__metadata__"]["input_size"] = "3";
  expect_rejected(join(h, p.data), SLSTM_ERR_SHAPE_MISMATCH, "layers.0.W_x");
}

TEST_CASE("data_offsets outside the data section are rejected", "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["layers.0.b"]["data_offsets"] = {240, 240 + 48 + 4};
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "not inside the data section");
  h["layers.0.b"]["data_offsets"] = {48, 0};
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "not inside the data section");
  h["layers.0.b"]["data_offsets"] = {std::uint64_t{18446744073709551615u}, 16};
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "not inside the data section");
}

TEST_CASE("data_offsets whose span differs from the tensor's byte size are rejected",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["layers.0.b"]["data_offsets"] = {240, 284};
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "need 48");
}

TEST_CASE("data_offsets spanning more bytes than the tensor are rejected",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  Bytes more = p.data;  // b is [240, 288); it claims 4 bytes more, which the file has
  more.resize(more.size() + 4, 0);
  h["layers.0.b"]["data_offsets"] = {240, 292};
  expect_rejected(join(h, more), SLSTM_ERR_INVALID_ARGUMENT, "need 48");
}

TEST_CASE("a tensor lying wholly inside another is rejected as an overlap naming both",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["layers.0.b"]["data_offsets"] = {100, 148};  // inside W_h [96, 240), not at its start
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                  "\"layers.0.W_h\" and \"layers.0.b\" overlap");
}

TEST_CASE("overlapping tensors are rejected naming both", "[model-file][path-independent]") {
  auto p = valid_parts();
  json h = p.header;
  h["layers.0.b"]["data_offsets"] = {0, 48};  // inside W_x
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "overlap");
}

TEST_CASE("bytes of the data section that belong to no tensor are rejected",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  Bytes more = p.data;
  more.resize(more.size() + 4);
  expect_rejected(join(p.header, more), SLSTM_ERR_INVALID_ARGUMENT, "belong to no tensor");
  json h = p.header;  // a hole between W_h and b
  Bytes holed = p.data;
  holed.insert(holed.begin() + 240, 4, 0);
  h["layers.0.b"]["data_offsets"] = {244, 292};
  expect_rejected(join(h, holed), SLSTM_ERR_INVALID_ARGUMENT, "belong to no tensor");
}

TEST_CASE("a huge declared architecture is rejected before anything is allocated for it",
          "[model-file][path-independent]") {
  // 2^40 hidden units would need exabytes; the file has a few bytes: the shapes/offsets
  // checks fail first, so nothing of that size is ever allocated.
  auto p = valid_parts();
  json h = p.header;
  h["__metadata__"]["hidden_sizes"] = "1099511627776";
  h["__metadata__"]["input_size"] = "1099511627776";
  const std::uint64_t big = 4ull << 40;
  h["layers.0.W_x"]["shape"] = {big, std::uint64_t{1} << 40};
  h["layers.0.W_h"]["shape"] = {big, std::uint64_t{1} << 40};
  h["layers.0.b"]["shape"] = {big};
  const Bytes img = join(h, p.data);
  slstm_model* out = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  CHECK((st == SLSTM_ERR_SIZE_OVERFLOW || st == SLSTM_ERR_INVALID_ARGUMENT));
  CHECK(out == nullptr);
  std::string many = "1";
  for (int k = 0; k < 200000; ++k) many += ",1";
  h["__metadata__"]["hidden_sizes"] = many;
  expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "layers");
}

TEST_CASE("non-finite weights are rejected naming the tensor", "[model-file][path-independent]") {
  auto p = valid_parts();
  Bytes d = p.data;
  const float inf = INFINITY;
  std::memcpy(d.data() + 240 + 8, &inf, 4);
  expect_rejected(join(p.header, d), SLSTM_ERR_INVALID_ARGUMENT, "layers.0.b");
}

TEST_CASE("every truncation of a valid file is rejected cleanly",
          "[model-file][path-independent]") {
  const Bytes img = save(small_model().get());
  for (std::size_t n = 0; n < img.size(); ++n) {
    Bytes cut(img.begin(), img.begin() + static_cast<long>(n));
    slstm_model* out = nullptr;
    REQUIRE(slstm_model_load_memory(cut.data(), cut.size(), &out) != SLSTM_OK);
    REQUIRE(out == nullptr);
  }
}

TEST_CASE("flipping any byte of the header never crashes the loader",
          "[model-file][path-independent]") {
  const Bytes img = save(small_model().get());
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | img[static_cast<std::size_t>(k)];
  for (std::size_t pos = 0; pos < 8 + n; ++pos) {
    for (int mask : {0x01, 0x20, 0x80, 0xff}) {
      Bytes b = img;
      b[pos] = static_cast<unsigned char>(b[pos] ^ mask);
      load_any(b);
    }
  }
}

TEST_CASE("loading a file that does not exist names the path", "[model-file][path-independent]") {
  slstm_model* out = nullptr;
  CHECK(slstm_model_load_file("/nonexistent/dir/model.safetensors", &out) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(out == nullptr);
  CHECK(std::string(slstm_last_error()).find("/nonexistent/dir/model.safetensors") !=
        std::string::npos);
}

TEST_CASE("loading a directory is rejected", "[model-file][path-independent]") {
  slstm_model* out = nullptr;
  CHECK(slstm_model_load_file(".", &out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("not a regular file") != std::string::npos);
}

TEST_CASE("model file functions reject NULL arguments naming them",
          "[model-file][path-independent]") {
  auto m = small_model();
  slstm_model* out = nullptr;
  size_t n = 0;
  CHECK(slstm_model_load_memory(nullptr, 10, &out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("data") != std::string::npos);
  CHECK(slstm_model_load_memory(nullptr, 0, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("out_model") != std::string::npos);
  CHECK(slstm_model_load_file(nullptr, &out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(slstm_model_save_file(m.get(), nullptr, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("path") != std::string::npos);
  CHECK(slstm_model_file_size(nullptr, nullptr, &n) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(slstm_model_save_memory(m.get(), nullptr, nullptr, 100, nullptr) ==
        SLSTM_ERR_INVALID_ARGUMENT);
}

// ---- issue 13: linear-time loading, atomic saves, what saves loads ---------------------------

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Bytes this process has read through read(2) and friends (Linux /proc/self/io "rchar"), or
// -1 where that counter is not available.
long long bytes_read_so_far() {
  std::ifstream io("/proc/self/io");
  std::string key;
  long long value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") return value;
  }
  return -1;
}

// A directory of its own under the current one, removed (with its files) at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "slstm_test_dir_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    for (const auto& f : files()) std::remove((path + "/" + f).c_str());
    ::rmdir(path.c_str());
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      ::closedir(d);
    }
    return out;
  }
};

// A model of L layers, input and hidden size 1, forget_bias fb.
t::Model tiny_stack(std::int32_t L, float fb = 1.0f) {
  return t::random_model(1, std::vector<std::int64_t>(static_cast<std::size_t>(L), 1), 5, fb,
                         0.5f);
}

Bytes le64(std::uint64_t n) {
  Bytes b(8);
  for (std::size_t k = 0; k < 8; ++k) b[k] = static_cast<unsigned char>(n >> (8 * k));
  return b;
}

// The header text of a valid image, as it is in the file (padding included).
std::string header_of(const Bytes& img) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | img[static_cast<std::size_t>(k)];
  return std::string(img.begin() + 8, img.begin() + 8 + static_cast<long>(n));
}

void expect_loads(const Bytes& img) {
  slstm_model* out = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  INFO("message: " << slstm_last_error());
  CHECK(st == SLSTM_OK);
  slstm_model_destroy(out);
}

}  // namespace

// Item 1: the old DOM parser's callback rescanned the parent object at every object's end.

TEST_CASE("a model of SLSTM_MAX_LAYERS layers saves and loads back within seconds",
          "[model-file][large][path-independent]") {
  auto m = tiny_stack(SLSTM_MAX_LAYERS);
  const Bytes img = save(m.get());
  const auto t0 = std::chrono::steady_clock::now();
  slstm_model* back = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &back);
  const double s = seconds_since(t0);
  INFO("message: " << slstm_last_error() << "; load took " << s << " s, header "
                   << header_of(img).size() << " bytes");
  REQUIRE(st == SLSTM_OK);
  t::Model b(back);
  std::int32_t L = 0;
  REQUIRE(slstm_model_num_layers(b.get(), &L) == SLSTM_OK);
  CHECK(L == SLSTM_MAX_LAYERS);
  CHECK(canonical(b.get()) == canonical(m.get()));
  // ~25 MB of header: ~0.3 s here in a normal build. The old loader was quadratic (10,000
  // layers took 14-28 s); this bound leaves room for sanitizers on a loaded CI machine.
  CHECK(s < 60.0);
}

TEST_CASE("hostile headers are rejected in time linear in their size",
          "[model-file][large][path-independent]") {
  // The example: 80,000 empty objects (~1 MB), over two minutes before.
  std::string objects = "{";
  for (int k = 0; k < 80000; ++k) objects += (k ? ",\"a" : "\"a") + std::to_string(k) + "\":{}";
  objects += "}";
  // Every entry well formed, so all of it is parsed: the 300,000 tensors of a
  // SLSTM_MAX_LAYERS-layer model under metadata (last) that declare 1 layer (~25 MB).
  std::string entries = "{";
  for (std::int32_t l = 0; l < SLSTM_MAX_LAYERS; ++l) {
    const std::string at = std::to_string(48 * std::int64_t{l});
    for (const char* piece : {"W_x", "W_h", "b"}) {
      entries += "\"layers." + std::to_string(l) + "." + piece + "\":{\"dtype\":\"F32\",\"shape\":" +
                 (piece[0] == 'b' ? "[4]" : "[4,1]") + ",\"data_offsets\":[" + at + "," + at + "]},";
    }
  }
  entries += "\"__metadata__\":{\"format\":\"stacklstm\",\"format_version\":\"1\","
             "\"input_size\":\"1\",\"hidden_sizes\":\"1\",\"forget_bias\":\"1\"}}";
  const Bytes data(48 * std::size_t{SLSTM_MAX_LAYERS}, 0);
  for (const auto& text : {objects, entries}) {
    const auto t0 = std::chrono::steady_clock::now();
    expect_rejected(join(text, data), SLSTM_ERR_INVALID_ARGUMENT, "unexpected tensor");
    const double s = seconds_since(t0);
    INFO(text.size() << " bytes of header rejected in " << s << " s");
    CHECK(s < 30.0);
  }
}

// Item 6: the header is what safetensors allows, no more.

TEST_CASE("a NUL byte in the header is rejected, followed by anything",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  const std::string text = p.header.dump();
  for (const std::string& tail : {std::string(1, '\0'), std::string("\0garbage\xff", 9),
                                 std::string("\0       ", 8)}) {
    expect_rejected(join(text + tail, p.data), SLSTM_ERR_INVALID_ARGUMENT, "NUL byte");
  }
  std::string inside = text;
  inside.insert(1, std::string(1, '\0'));
  expect_rejected(join(inside, p.data), SLSTM_ERR_INVALID_ARGUMENT, "NUL byte");
}

TEST_CASE("the header may be padded with spaces only", "[model-file][path-independent]") {
  auto p = valid_parts();
  const std::string text = p.header.dump();
  expect_loads(join(text + "   ", p.data));
  expect_loads(join(text + std::string(1000, ' '), p.data));
  for (const char* tail : {"\n", "\t", " \r\n", "x", "  }", " {}"}) {
    INFO("tail: " << json(tail).dump());
    expect_rejected(join(text + tail, p.data), SLSTM_ERR_INVALID_ARGUMENT, "header");
  }
}

TEST_CASE("the header must begin with '{': no byte-order mark, no leading whitespace",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  const std::string text = p.header.dump();
  expect_loads(join(text, p.data));
  for (const char* head : {"\xef\xbb\xbf", " ", "\n", "\t"}) {
    INFO("head: " << std::strlen(head) << " bytes, first " << int(head[0] & 0xff));
    expect_rejected(join(head + text, p.data), SLSTM_ERR_INVALID_ARGUMENT, "begin with '{'");
  }
}

TEST_CASE("forget_bias must be written in decimal: hexadecimal, inf, nan and signs are refused",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  for (const char* value : {"0x1p0", "0X1P-1", "0x1", "inf", "-inf", "infinity", "nan", "NaN",
                            "+1", " 1", "1 ", ".5", "1.", "01", "1e", "1e+", "--1", "1,5"}) {
    json h = p.header;
    h["__metadata__"]["forget_bias"] = value;
    INFO("forget_bias = \"" << value << "\"");
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "forget_bias");
  }
  for (const char* value : {"3.4028236e38", "1e39", "-1e39", "1e999999999999999999999",
                            "100000000000000000000000000000000000000000"}) {  // past FLT_MAX
    json h = p.header;
    h["__metadata__"]["forget_bias"] = value;
    INFO("forget_bias = \"" << value << "\"");
    expect_rejected(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT, "forget_bias");
  }
  // Decimals round to the nearest float: below half the smallest subnormal that is +-0.
  for (const auto& [text, want] : std::vector<std::pair<const char*, float>>{
           {"0", 0.0f}, {"-0.5", -0.5f}, {"1E2", 100.0f}, {"2.5e-1", 0.25f}, {"1e+0", 1.0f},
           {"3.4028235e+38", FLT_MAX}, {"3.40282356e38", FLT_MAX}, {"1e-45", 1e-45f},
           {"1e-50", 0.0f}, {"-1e-50", -0.0f}, {"0.00000000000000000000000000000000000000000000000001", 0.0f},
           {"1e-999999999999999999999", 0.0f}, {"0.1", 0.1f}}) {
    json h = p.header;
    h["__metadata__"]["forget_bias"] = text;
    slstm_model* out = nullptr;
    const Bytes img = join(h, p.data);
    REQUIRE(slstm_model_load_memory(img.data(), img.size(), &out) == SLSTM_OK);
    t::Model b(out);
    float fb = -1;
    REQUIRE(slstm_model_forget_bias(b.get(), &fb) == SLSTM_OK);
    INFO("forget_bias = \"" << text << "\"");
    CHECK(t::bitwise_equal(&fb, &want, 1));
  }
}

// Item 4: what can be saved loads.

TEST_CASE("every finite forget_bias, +-FLT_MAX included, loads back bit for bit",
          "[model-file][path-independent]") {
  std::vector<float> values = {FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                               std::numeric_limits<float>::denorm_min(), -0.0f, 0.0f, 0.1f,
                               1.0f / 3.0f, std::nextafter(1.0f, 2.0f), 16777217.0f, 1e-38f};
  std::mt19937 rng(13);
  while (values.size() < 400) {  // random bit patterns, the finite ones
    const auto bits = static_cast<std::uint32_t>(rng());
    float v;
    std::memcpy(&v, &bits, 4);
    if (std::isfinite(v)) values.push_back(v);
  }
  for (float v : values) {
    INFO("forget_bias " << v);
    auto m = t::random_model(1, {1}, 3, v);
    const Bytes img = save(m.get());
    slstm_model* back = nullptr;
    const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &back);
    INFO("message: " << slstm_last_error());
    REQUIRE(st == SLSTM_OK);
    t::Model b(back);
    float fb = 0;
    REQUIRE(slstm_model_forget_bias(b.get(), &fb) == SLSTM_OK);
    CHECK(t::bitwise_equal(&fb, &v, 1));
  }
}

TEST_CASE("F64 weights are rounded to float32 to nearest: up to FLT_MAX + half an ulp is "
          "FLT_MAX, beyond is rejected",
          "[model-file][path-independent]") {
  auto m = t::random_model(2, {1}, 9, 1.0f);
  const json header = split(save(m.get())).first;  // (a lambda below reads it)
  const double fmax = FLT_MAX;
  const double half_ulp = 0x1p103;  // FLT_MAX's ulp is 2^104
  auto image_with = [&](double first) {
    json h = header;
    Bytes d;
    std::size_t k = 0;
    for (const char* name : {"layers.0.W_x", "layers.0.W_h", "layers.0.b"}) {
      std::size_t count = 1;
      for (const auto& e : h[name]["shape"]) count *= e.get<std::size_t>();
      const std::size_t begin = d.size();
      for (std::size_t i = 0; i < count; ++i, ++k) {
        const double x = k == 0 ? first : 0.25;
        const auto* p = reinterpret_cast<const unsigned char*>(&x);
        d.insert(d.end(), p, p + 8);
      }
      h[name]["dtype"] = "F64";
      h[name]["data_offsets"] = {begin, d.size()};
    }
    return join(h, d);
  };
  for (const double sign : {1.0, -1.0}) {
    for (const double v : {fmax, fmax + 0x1p80, fmax + 0x1p102, std::nextafter(fmax + half_ulp, 0.0)}) {
      INFO(v * sign);
      const Bytes img = image_with(v * sign);
      slstm_model* out = nullptr;
      const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
      INFO("message: " << slstm_last_error());
      REQUIRE(st == SLSTM_OK);
      t::Model b(out);
      CHECK(canonical(b.get())[0] == static_cast<float>(sign) * FLT_MAX);
    }
    for (const double v : {fmax + half_ulp, 1e300, double(INFINITY), double(NAN)}) {
      INFO(v * sign);
      expect_rejected(image_with(v * sign), SLSTM_ERR_INVALID_ARGUMENT, "layers.0.W_x");
    }
  }
}

TEST_CASE("a file of F64 tensors larger than the loader's 1 MiB buffer loads from disk",
          "[model-file][path-independent]") {
  // H = 200: W_h holds 4H x H = 160000 elements, 1.28 MB as F64, more than one read buffer.
  auto m = t::random_model(3, {200}, 17, 0.5f);
  auto [h, d] = split(save(m.get()));
  const auto want = canonical(m.get());
  Bytes d64;
  std::size_t k = 0;
  for (const char* name : {"layers.0.W_x", "layers.0.W_h", "layers.0.b"}) {
    std::size_t count = 1;
    for (const auto& e : h[name]["shape"]) count *= e.get<std::size_t>();
    const std::size_t begin = d64.size();
    for (std::size_t i = 0; i < count; ++i, ++k) {
      const double x = static_cast<double>(want[k]) * (1.0 + 0x1p-40);  // rounds back to want
      const auto* px = reinterpret_cast<const unsigned char*>(&x);
      d64.insert(d64.end(), px, px + 8);
    }
    h[name]["dtype"] = "F64";
    h[name]["data_offsets"] = {begin, d64.size()};
  }
  REQUIRE(k == want.size());
  REQUIRE(4 * 200 * 200 * 8 > (1 << 20));  // W_h alone
  const Bytes img = join(h, d64);
  TempDir dir;
  const std::string path = dir.path + "/f64.safetensors";
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  }
  slstm_model* out = nullptr;
  const slstm_status st = slstm_model_load_file(path.c_str(), &out);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  t::Model b(out);
  CHECK(canonical(b.get()) == want);
}

// Item 5: cheap checks first; the file is read once, after its header is validated.

TEST_CASE("a file with a bad header length is rejected after reading its first 8 bytes",
          "[model-file][path-independent]") {
  TempDir dir;
  const std::string path = dir.path + "/big.safetensors";
  {
    const Bytes head = le64(SLSTM_MODEL_FILE_MAX_HEADER + 1);
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(head.data()), 8);
  }
  REQUIRE(::truncate(path.c_str(), 1ll << 30) == 0);  // 1 GiB, sparse
  const long long before = bytes_read_so_far();
  slstm_model* out = nullptr;
  CHECK(slstm_model_load_file(path.c_str(), &out) == SLSTM_ERR_INVALID_ARGUMENT);
  const long long after = bytes_read_so_far();
  CHECK(std::string(slstm_last_error()).find("exceeds the limit") != std::string::npos);
  CHECK(out == nullptr);
  if (before >= 0) CHECK(after - before < (1 << 20));
}

TEST_CASE("a file whose header does not match its size is rejected before its data is read",
          "[model-file][path-independent]") {
  TempDir dir;
  const std::string path = dir.path + "/big.safetensors";
  const Bytes img = save(small_model().get());
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  }
  REQUIRE(::truncate(path.c_str(), 1ll << 30) == 0);  // a data section of ~1 GiB, sparse
  const long long before = bytes_read_so_far();
  slstm_model* out = nullptr;
  CHECK(slstm_model_load_file(path.c_str(), &out) == SLSTM_ERR_INVALID_ARGUMENT);
  const long long after = bytes_read_so_far();
  CHECK(std::string(slstm_last_error()).find("belong to no tensor") != std::string::npos);
  CHECK(out == nullptr);
  if (before >= 0) CHECK(after - before < (1 << 20));
}

TEST_CASE("loading a file reads each of its bytes once", "[model-file][path-independent]") {
  TempDir dir;
  const std::string path = dir.path + "/m.safetensors";
  auto m = t::random_model(64, {512, 256}, 4);  // ~8 MB
  REQUIRE(slstm_model_save_file(m.get(), path.c_str(), nullptr) == SLSTM_OK);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  const long long before = bytes_read_so_far();
  slstm_model* out = nullptr;
  REQUIRE(slstm_model_load_file(path.c_str(), &out) == SLSTM_OK);
  const long long after = bytes_read_so_far();
  t::Model b(out);
  CHECK(canonical(b.get()) == canonical(m.get()));
  // (plus what reading /proc/self/io itself costs, and any reading a sanitizer runtime does)
  if (before >= 0) {
    CHECK(after - before >= st.st_size);
    CHECK(after - before < st.st_size + (1 << 20));
  }
}

// Item 3: saving replaces the file atomically.

namespace {

// Lowers RLIMIT_FSIZE (and ignores SIGXFSZ, so a write past it fails with EFBIG instead of
// killing the process) for its lifetime.
struct FileSizeLimit {
  rlimit old{};
  struct sigaction old_action {};
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    REQUIRE(::sigaction(SIGXFSZ, &ignore, &old_action) == 0);
    rlimit lim = old;
    lim.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::sigaction(SIGXFSZ, &old_action, nullptr);
  }
};

}  // namespace

TEST_CASE("a save that fails part-way leaves the old file as it was and no temporary behind",
          "[model-file][path-independent]") {
  TempDir dir;
  const std::string path = dir.path + "/model.safetensors";
  auto small = small_model();
  REQUIRE(slstm_model_save_file(small.get(), path.c_str(), "old") == SLSTM_OK);
  auto big = t::random_model(64, {64}, 2);  // ~130 KB
  slstm_status st;
  {
    FileSizeLimit limit(16384);
    st = slstm_model_save_file(big.get(), path.c_str(), "new");
  }
  const std::string msg = slstm_last_error();
  INFO("message: " << msg);
  CHECK(st == SLSTM_ERR_BACKEND_FAILURE);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find(std::strerror(EFBIG)) != std::string::npos);
  slstm_model* back = nullptr;
  REQUIRE(slstm_model_load_file(path.c_str(), &back) == SLSTM_OK);
  t::Model b(back);
  CHECK(canonical(b.get()) == canonical(small.get()));
  CHECK(dir.files() == std::vector<std::string>{"model.safetensors"});
  // Without the limit the same save replaces it.
  REQUIRE(slstm_model_save_file(big.get(), path.c_str(), "new") == SLSTM_OK);
  REQUIRE(slstm_model_load_file(path.c_str(), &back) == SLSTM_OK);
  t::Model b2(back);
  CHECK(canonical(b2.get()) == canonical(big.get()));
  CHECK(dir.files() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("saving over a file keeps its permission bits", "[model-file][path-independent]") {
  TempDir dir;
  const std::string path = dir.path + "/model.safetensors";
  auto m = small_model();
  REQUIRE(slstm_model_save_file(m.get(), path.c_str(), nullptr) == SLSTM_OK);
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  REQUIRE(slstm_model_save_file(m.get(), path.c_str(), nullptr) == SLSTM_OK);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
}

TEST_CASE("saving into a directory that does not exist names the path",
          "[model-file][path-independent]") {
  auto m = small_model();
  CHECK(slstm_model_save_file(m.get(), "/nonexistent/dir/m.safetensors", nullptr) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("/nonexistent/dir/m.safetensors") !=
        std::string::npos);
}

// The header's JSON parser (src/model_file/json_header.cpp, HeaderParser) is the library's
// own: what RFC 8259 says, no more, no less.

TEST_CASE("header JSON may use any whitespace between tokens and escapes in strings",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  std::string text = p.header.dump(2);  // newlines and indentation
  expect_loads(join(text, p.data));
  // A key and a value spelled with escapes are the same key and value.
  json h = p.header;
  h["__metadata__"].erase("source_layout");
  text = h.dump();
  const std::string key = "\"layers.0.b\"";
  const auto at = text.find(key);
  REQUIRE(at != std::string::npos);
  text.replace(at, key.size(), "\"\\u006cayers.0\\u002Eb\"");
  text.insert(text.size() - 1, ",\"__metadata__x\\ud83d\\ude00\":{}");  // not ours: rejected
  expect_rejected(join(text, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                  "unexpected tensor \"__metadata__x\xf0\x9f\x98\x80\"");
  text.erase(text.rfind(",\"__metadata__x"));
  text += "}";
  const std::string meta = "\"__metadata__\":{";
  text.insert(text.find(meta) + meta.size(), "\"source_layout\":\"\\u0070y\\/torch\\t\",");
  expect_rejected(join(text, p.data), SLSTM_ERR_INVALID_ARGUMENT, "printable ASCII");  // \t
  const auto tab = text.find("\\t\"");
  text.erase(tab, 2);
  slstm_model* out = nullptr;
  const Bytes img = join(text, p.data);
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  INFO("message: " << slstm_last_error() << "; header " << text);
  CHECK(st == SLSTM_OK);
  slstm_model_destroy(out);
}

TEST_CASE("header strings read every JSON escape, u-escapes of one- to four-byte characters too",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  std::string text = p.header.dump();
  // A metadata key this library does not know is taken whatever its (valid) string holds.
  const std::string meta = "\"__metadata__\":{";
  text.insert(text.find(meta) + meta.size(), "\"x-notes\":\"\\b\\f\\n\\r\\t\\\"\\\\\\/\",");
  expect_loads(join(text, p.data));
  // \u escapes of one-, two-, three- and four-byte characters, read back in a name the error
  // quotes: "__metadata__xA\u00e9\u20ac\U0001F600" is a tensor this library does not know.
  text.insert(text.size() - 1, ",\"__metadata__x\\u0041\\u00e9\\u20ac\\ud83d\\ude00\":{}");
  expect_rejected(join(text, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                  "unexpected tensor \"__metadata__xA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
}

TEST_CASE("header JSON syntax errors are rejected", "[model-file][path-independent]") {
  auto p = valid_parts();
  const std::string good = p.header.dump();
  const std::string meta = "{\"__metadata__\":{\"x\":";
  const std::vector<std::string> bad = {
      "{,}", "{\"__metadata__\"}", "{\"__metadata__\":{},}", "{\"__metadata__\" {}}",
      "{\"__metadata__\":{}, }", "{'__metadata__':{}}", "{\"__metadata__\":{}}}",
      meta + "\"a\\x\"}}",           // invalid escape
      meta + "\"a\\u12\"}}",         // short \u
      meta + "\"a\\ud800\"}}",       // lone high surrogate
      meta + "\"a\\udc00\"}}",       // lone low surrogate
      meta + "\"a\\ud800\\u0041\"}}",  // high surrogate without its low half
      meta + "\"a\tb\"}}",           // raw control character
      meta + "\"\xc0\x80\"}}",       // overlong
      meta + "\"\xed\xa0\x80\"}}",   // UTF-8 surrogate
      meta + "\"\xf4\x90\x80\x80\"}}",  // above U+10FFFF
      meta + "\"\xf5\x80\x80\x80\"}}", meta + "\"\x80\"}}", meta + "\"\xe2\x82\"}}",
      meta + "\"abc}}",              // unterminated
      "{\"layers.0.b\":{\"shape\":[01]}}",  // leading zero
      "{\"layers.0.b\":{\"shape\":[1,]}}", "{\"layers.0.b\":{\"shape\":[1 2]}}",
      "{\"layers.0.b\":{\"shape\":[1}}"};
  for (const auto& text : bad) {
    INFO("header: " << text);
    expect_rejected(join(text, p.data), SLSTM_ERR_INVALID_ARGUMENT, "header is not valid JSON");
  }
}

TEST_CASE("overlong three- and four-byte UTF-8 forms in header strings are rejected",
          "[model-file][path-independent]") {
  auto p = valid_parts();
  const std::string text = p.header.dump();
  const std::string meta = "\"__metadata__\":{";
  // U+0000, U+07FF and U+0800-1 spelled with three bytes, U+FFFF with four: all overlong.
  for (const char* bad : {"\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf"}) {
    INFO("first byte " << int(bad[0] & 0xff) << ", second " << int(bad[1] & 0xff));
    std::string t = text;
    t.insert(t.find(meta) + meta.size(), std::string("\"note\":\"a") + bad + "b\",");
    expect_rejected(join(t, p.data), SLSTM_ERR_INVALID_ARGUMENT, "invalid UTF-8");
  }
  // The shortest forms of the same ranges' first code points are accepted.
  for (const char* good : {"\xe0\xa0\x80", "\xf0\x90\x80\x80"}) {
    std::string t = text;
    t.insert(t.find(meta) + meta.size(), std::string("\"note\":\"a") + good + "b\",");
    expect_loads(join(t, p.data));
  }
}

TEST_CASE("saving through a symbolic link to a file not made yet makes that file",
          "[model-file][path-independent]") {
  TempDir dir;
  const std::string link = dir.path + "/link.safetensors";
  const std::string hop = dir.path + "/hop.safetensors";
  REQUIRE(::symlink("hop.safetensors", link.c_str()) == 0);  // link -> hop -> real (relative)
  REQUIRE(::symlink("real.safetensors", hop.c_str()) == 0);
  auto b = t::random_model(3, {2}, 8);
  REQUIRE(slstm_model_save_file(b.get(), link.c_str(), nullptr) == SLSTM_OK);
  struct stat st {};
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  REQUIRE(::lstat(hop.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  slstm_model* back = nullptr;
  REQUIRE(slstm_model_load_file((dir.path + "/real.safetensors").c_str(), &back) == SLSTM_OK);
  t::Model m(back);
  CHECK(canonical(m.get()) == canonical(b.get()));
}

TEST_CASE("saving through a loop of symbolic links is refused, naming the path",
          "[model-file][path-independent]") {
  TempDir dir;
  const std::string a = dir.path + "/a.safetensors";
  REQUIRE(::symlink("b.safetensors", a.c_str()) == 0);
  REQUIRE(::symlink("a.safetensors", (dir.path + "/b.safetensors").c_str()) == 0);
  auto m = small_model();
  CHECK(slstm_model_save_file(m.get(), a.c_str(), nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Catch::Matchers::Contains("path: cannot follow"));
  struct stat st {};
  REQUIRE(::lstat(a.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE("saving through a symbolic link replaces the file it points to",
          "[model-file][path-independent]") {
  TempDir dir;
  const std::string file = dir.path + "/real.safetensors";
  const std::string link = dir.path + "/link.safetensors";
  auto a = small_model();
  auto b = t::random_model(3, {2}, 8);
  REQUIRE(slstm_model_save_file(a.get(), file.c_str(), nullptr) == SLSTM_OK);
  REQUIRE(::symlink("real.safetensors", link.c_str()) == 0);
  REQUIRE(slstm_model_save_file(b.get(), link.c_str(), nullptr) == SLSTM_OK);
  struct stat st {};
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  slstm_model* back = nullptr;
  REQUIRE(slstm_model_load_file(file.c_str(), &back) == SLSTM_OK);
  t::Model m(back);
  CHECK(canonical(m.get()) == canonical(b.get()));
  CHECK(dir.files().size() == 2);
}
