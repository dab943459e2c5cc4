// Model files: the format version and the layers' cells ("cells" metadata). One behaviour per
// TEST_CASE. What the writer puts in, what a file of libstacklstm 0.1 (no "cells") gives,
// and how files this library cannot read are refused: malformed (SLSTM_ERR_INVALID_ARGUMENT)
// or from a newer library (SLSTM_ERR_UNSUPPORTED, saying so).
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support.hpp"

namespace {

using json = nlohmann::json;
using Bytes = std::vector<unsigned char>;

Bytes save(const slstm_model* m) {
  size_t n = 0;
  REQUIRE(slstm_model_file_size(m, "tf", &n) == SLSTM_OK);
  Bytes b(n);
  size_t written = 0;
  INFO(slstm_last_error());
  REQUIRE(slstm_model_save_memory(m, "tf", b.data(), b.size(), &written) == SLSTM_OK);
  REQUIRE(written == n);
  return b;
}

// The header as text and the data section of an image.
struct Image {
  std::string header;
  Bytes data;
};
Image split(const Bytes& img) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | img[static_cast<std::size_t>(k)];
  const auto begin = img.begin() + 8;
  const auto end = begin + static_cast<long>(n);
  return {std::string(begin, end), Bytes(end, img.end())};
}
Bytes join(const std::string& header, const Bytes& data) {
  std::string head(8, '\0');
  for (std::size_t k = 0; k < 8; ++k) {
    head[k] = static_cast<char>((header.size() >> (8 * k)) & 0xffu);
  }
  head += header;
  Bytes img(head.begin(), head.end());
  img.insert(img.end(), data.begin(), data.end());
  return img;
}

// A 3-layer model's image with its metadata edited by `edit`.
template <class Edit>
Bytes edited(Edit&& edit) {
  auto m = t::random_model(4, {5, 3, 2}, 7, 1.0f);
  Image img = split(save(m.get()));
  json h = json::parse(img.header);
  edit(h["__metadata__"]);
  return join(h.dump(), img.data);
}

// Loading fails with `status` and a message containing every needle.
void expect_refused(const Bytes& img, slstm_status status,
                    const std::vector<std::string>& needles) {
  slstm_model* out = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  const std::string msg = slstm_last_error();
  INFO("message: " << msg);
  CHECK(st == status);
  CHECK(out == nullptr);
  for (const std::string& n : needles) CHECK(msg.find(n) != std::string::npos);
}

void expect_loads(const Bytes& img) {
  slstm_model* out = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  INFO(slstm_last_error());
  CHECK(st == SLSTM_OK);
  slstm_model_destroy(out);
}

}  // namespace

TEST_CASE("a saved file carries format_version 1 and one lstm cell per layer",
          "[model-file][path-independent]") {
  auto m = t::random_model(4, {5, 3, 2}, 7, 1.0f);
  const json h = json::parse(split(save(m.get())).header);
  CHECK(h["__metadata__"]["format_version"] == "1");
  CHECK(h["__metadata__"]["cells"] == "lstm,lstm,lstm");
}

TEST_CASE("the writer puts cells right after hidden_sizes in the metadata",
          "[model-file][path-independent]") {
  auto m = t::random_model(2, {3}, 1, 1.0f);
  const std::string header = split(save(m.get())).header;
  CHECK(header.find("\"hidden_sizes\":\"3\",\"cells\":\"lstm\",\"forget_bias\":") !=
        std::string::npos);
}

TEST_CASE("a file without cells, as libstacklstm 0.1 wrote it, loads",
          "[model-file][path-independent]") {
  expect_loads(edited([](json& meta) { meta.erase("cells"); }));
}

TEST_CASE("a file whose cells list the layers' lstm cells loads",
          "[model-file][path-independent]") {
  expect_loads(edited([](json& meta) { meta["cells"] = "lstm,lstm,lstm"; }));
}

TEST_CASE("cells listing fewer or more entries than layers is an invalid argument",
          "[model-file][path-independent]") {
  expect_refused(edited([](json& meta) { meta["cells"] = "lstm,lstm"; }),
                 SLSTM_ERR_INVALID_ARGUMENT, {"cells lists 2 cells", "3 layers"});
  expect_refused(edited([](json& meta) { meta["cells"] = "lstm,lstm,lstm,lstm"; }),
                 SLSTM_ERR_INVALID_ARGUMENT, {"cells lists 4 cells", "3 layers"});
}

TEST_CASE("a malformed cell name is an invalid argument naming the entry",
          "[model-file][path-independent]") {
  for (const char* cells : {"lstm,,lstm", "lstm,LSTM,lstm", "lstm, lstm,lstm", "lstm,lstm,"}) {
    INFO("cells = " << cells);
    expect_refused(edited([&](json& meta) { meta["cells"] = cells; }),
                   SLSTM_ERR_INVALID_ARGUMENT, {"metadata cells["});
  }
}

TEST_CASE("an unknown cell is unsupported, naming the layer and saying a newer library is needed",
          "[model-file][path-independent]") {
  expect_refused(edited([](json& meta) { meta["cells"] = "lstm,lstm,rnn_tanh"; }),
                 SLSTM_ERR_UNSUPPORTED,
                 {"layer 2 is a \"rnn_tanh\" cell: this libstacklstm reads lstm and gru cells only",
                  "the file needs a newer library"});
}

TEST_CASE("a format_version 1 file listing a gru cell is an invalid argument",
          "[model-file][path-independent]") {
  // Version 1 holds forward lstm layers only (what 0.1 computes): a gru layer needs version 2.
  expect_refused(edited([](json& meta) { meta["cells"] = "lstm,lstm,gru"; }),
                 SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata cells[2] is \"gru\", which format_version 1 cannot hold"});
}

TEST_CASE("a newer format_version is unsupported, saying a newer libstacklstm wrote the file",
          "[model-file][path-independent]") {
  for (const char* v : {"3", "10", "99999999999999999999999"}) {
    INFO("format_version = " << v);
    expect_refused(edited([&](json& meta) { meta["format_version"] = v; }),
                   SLSTM_ERR_UNSUPPORTED,
                   {"format_version", "written by a newer libstacklstm",
                    "reads format_version 1 to 2"});
  }
}

TEST_CASE("a malformed format_version is an invalid argument",
          "[model-file][path-independent]") {
  for (const char* v : {"", "0", "01", "1.0", " 1", "+2", "-1", "v2", "1 "}) {
    INFO("format_version = \"" << v << "\"");
    expect_refused(edited([&](json& meta) { meta["format_version"] = v; }),
                   SLSTM_ERR_INVALID_ARGUMENT, {"format_version must be a decimal integer >= 1"});
  }
}

TEST_CASE("a newer file's unknown tensors are reported as a newer format, not as bad names",
          "[model-file][path-independent]") {
  // A later format may add tensors (say layers.<l>.W_p); when the metadata come first, as
  // writers put them, the version is what the error is about.
  auto m = t::random_model(4, {5}, 7, 1.0f);
  Image img = split(save(m.get()));
  std::string header = img.header;
  while (!header.empty() && header.back() == ' ') header.pop_back();
  header.pop_back();  // the closing '}'
  header += ",\"layers.0.W_p\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
  const std::string newer = [&] {
    std::string h = header;
    h.replace(h.find("\"format_version\":\"1\""), 20, "\"format_version\":\"3\"");
    return h;
  }();
  expect_refused(join(newer, img.data), SLSTM_ERR_UNSUPPORTED, {"written by a newer libstacklstm"});
  // The same tensor in a version-1 file is a malformed file naming it.
  expect_refused(join(header, img.data), SLSTM_ERR_INVALID_ARGUMENT,
                 {"unexpected tensor \"layers.0.W_p\""});
}
