// Model files of every stack of docs/cells.md (issue 20): LSTM peepholes, cell_clip,
// projection and proj_clip, GRU in both reset variants, reverse and bidirectional layers,
// residual connections and stacks that mix them.  Such a file carries format_version 2 and
// its layers' descriptions in the metadata; a stack of forward BasicLSTMCell layers still
// writes format_version 1, byte for byte as before.  One behaviour per TEST_CASE: round trips
// (weights bitwise through the CANONICAL export, the layer descriptions, forward results on
// the CPU reference), then one class of broken version-2 file per TEST_CASE.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "support.hpp"

namespace {

using json = nlohmann::json;
using Bytes = std::vector<unsigned char>;

// ---- models ------------------------------------------------------------------------------

constexpr auto& lstm = t::lstm_layer;
constexpr auto& gru = t::gru_layer;
using t::with_direction;

slstm_model_config config_of(std::int64_t input_size, const std::vector<slstm_layer_config>& ls,
                             float forget_bias) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = input_size;
  cfg.num_layers = static_cast<std::int32_t>(ls.size());
  cfg.layers = ls.data();
  cfg.forget_bias = forget_bias;
  return cfg;
}

// A seeded random model of any stack (REQUIREs success).
t::Model stack_model(std::int64_t input_size, const std::vector<slstm_layer_config>& ls,
                     std::uint64_t seed, float forget_bias = 0.75f) {
  const slstm_model_config cfg = config_of(input_size, ls, forget_bias);
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create_random(&cfg, seed, 0.5f, &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Model(m);
}

// An LSTMP layer with every LSTM option: peepholes, cell clipping, projection and its clip.
slstm_layer_config lstm_all_options(std::int64_t h, std::int64_t p) {
  slstm_layer_config c = lstm(h);
  c.peepholes = 1;
  c.cell_clip = 2.5f;
  c.proj_size = p;
  c.proj_clip = 0.75f;
  return c;
}

// Every kind of layer in one stack (D = 3): a bidirectional LSTMP with peepholes and clips
// (output 2 x 2 = 4), a residual GRU (reset after, width 4), a reverse GRU (reset before), a
// residual forward LSTM with peepholes (width 5), a bidirectional GRU, a plain LSTM.
std::vector<slstm_layer_config> mixed_layers() {
  slstm_layer_config residual_gru = gru(4, true);
  residual_gru.residual = 1;
  slstm_layer_config residual_lstm = lstm(5);
  residual_lstm.peepholes = 1;
  residual_lstm.residual = 1;
  return {with_direction(lstm_all_options(3, 2), SLSTM_DIRECTION_BIDIRECTIONAL),
          residual_gru,
          with_direction(gru(5, false), SLSTM_DIRECTION_REVERSE),
          residual_lstm,
          with_direction(gru(2, true), SLSTM_DIRECTION_BIDIRECTIONAL),
          lstm(3)};
}

// ---- images --------------------------------------------------------------------------------

Bytes save(const slstm_model* m, const char* layout = "canonical") {
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

std::string header_text(const Bytes& img) {
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | img[static_cast<std::size_t>(k)];
  return std::string(img.begin() + 8, img.begin() + 8 + static_cast<long>(n));
}

struct Parts {
  json header;
  Bytes data;
};
Parts split(const Bytes& img) {
  const std::string text = header_text(img);
  return {json::parse(text), Bytes(img.begin() + 8 + static_cast<long>(text.size()), img.end())};
}

// The image of a header text and a data section.
Bytes join(const std::string& text, const Bytes& data) {
  std::string head(8, '\0');
  for (std::size_t k = 0; k < 8; ++k) head[k] = static_cast<char>((text.size() >> (8 * k)) & 0xffu);
  head += text;
  Bytes img(head.begin(), head.end());
  img.insert(img.end(), data.begin(), data.end());
  return img;
}

Bytes join(const json& header, const Bytes& data) { return join(header.dump(), data); }

// The mixed stack's image, split for tests to edit.
Parts mixed_parts() {
  auto m = stack_model(3, mixed_layers(), 41);
  return split(save(m.get()));
}

t::Model load(const Bytes& img) {
  slstm_model* out = nullptr;
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Model(out);
}

// Loading fails with `status`, a message containing every needle, and *out untouched.
void expect_refused(const Bytes& img, slstm_status status,
                    const std::vector<std::string>& needles) {
  slstm_model* out = reinterpret_cast<slstm_model*>(0x1);
  const slstm_status st = slstm_model_load_memory(img.data(), img.size(), &out);
  const std::string msg = slstm_last_error();
  INFO("message: " << msg);
  CHECK(st == status);
  CHECK(out == reinterpret_cast<slstm_model*>(0x1));
  for (const std::string& n : needles) CHECK(msg.find(n) != std::string::npos);
}

// The mixed stack's image with the metadata entry `key` edited by `edit`.
template <class Edit>
Bytes with_metadata(const char* key, Edit&& edit) {
  Parts p = mixed_parts();
  json& meta = p.header["__metadata__"];
  REQUIRE(meta.contains(key));
  std::string value = meta[key].get<std::string>();
  edit(value);
  meta[key] = value;
  return join(p.header, p.data);
}

// `list` with entry l replaced by `entry` (comma-separated lists).
std::string replace_entry(const std::string& list, std::size_t l, const std::string& entry) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = list.find(',', start);
    items.push_back(list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  REQUIRE(l < items.size());
  items[l] = entry;
  std::string out;
  for (std::size_t k = 0; k < items.size(); ++k) out += (k ? "," : "") + items[k];
  return out;
}

Bytes with_entry(const char* key, std::size_t l, const std::string& entry) {
  return with_metadata(key, [&](std::string& v) { v = replace_entry(v, l, entry); });
}

// ---- what a model is -------------------------------------------------------------------------

std::vector<slstm_layer_config> layers_of(const slstm_model* m) {
  std::int32_t n = 0;
  REQUIRE(slstm_model_num_layers(m, &n) == SLSTM_OK);
  std::vector<slstm_layer_config> ls(static_cast<std::size_t>(n));
  for (std::int32_t l = 0; l < n; ++l) {
    slstm_layer_config_init(&ls[static_cast<std::size_t>(l)]);
    REQUIRE(slstm_model_layer(m, l, &ls[static_cast<std::size_t>(l)]) == SLSTM_OK);
  }
  return ls;
}

float forget_bias_of(const slstm_model* m) {
  float fb = 0.0f;
  REQUIRE(slstm_model_forget_bias(m, &fb) == SLSTM_OK);
  return fb;
}

// Every canonical tensor of the model (slstm_format_tensors' list for its own layers), by
// name, in API order.
std::vector<std::pair<std::string, std::vector<float>>> canonical(const slstm_model* m) {
  const std::vector<slstm_layer_config> ls = layers_of(m);
  const slstm_model_config cfg = config_of(t::input_size(m), ls, forget_bias_of(m));
  size_t count = 0;
  REQUIRE(slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, nullptr, 0, &count) == SLSTM_OK);
  std::vector<slstm_tensor_info> infos(count);
  for (auto& i : infos) i.struct_size = sizeof(slstm_tensor_info);
  REQUIRE(slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, infos.data(), count, &count) ==
          SLSTM_OK);
  std::vector<std::pair<std::string, std::vector<float>>> out(count);
  std::vector<slstm_tensor_out> outs(count);
  for (std::size_t k = 0; k < count; ++k) {
    std::size_t n = 1;
    for (std::int32_t d = 0; d < infos[k].ndim; ++d) {
      n *= static_cast<std::size_t>(infos[k].shape[d]);
    }
    out[k].first = "layer " + std::to_string(infos[k].layer) + " direction " +
                   std::to_string(infos[k].direction) + " " + infos[k].name;
    out[k].second = t::poisoned(n);
    outs[k] = slstm_tensor_out{};
    outs[k].data = out[k].second.data();
    outs[k].ndim = infos[k].ndim;
    for (std::int32_t d = 0; d < infos[k].ndim; ++d) outs[k].shape[d] = infos[k].shape[d];
  }
  const slstm_status st = slstm_model_export(m, SLSTM_FORMAT_CANONICAL, outs.data(), outs.size());
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return out;
}

bool same_layer(const slstm_layer_config& a, const slstm_layer_config& b) {
  return a.cell == b.cell && a.hidden_size == b.hidden_size && a.direction == b.direction &&
         a.residual == b.residual && a.peepholes == b.peepholes &&
         std::memcmp(&a.cell_clip, &b.cell_clip, sizeof(float)) == 0 &&
         a.proj_size == b.proj_size &&
         std::memcmp(&a.proj_clip, &b.proj_clip, sizeof(float)) == 0 &&
         a.gru_reset_after == b.gru_reset_after;
}

// The model saved and loaded back is the same model: input size, forget_bias, every layer's
// description, every canonical tensor bit for bit; and saving the loaded model gives the
// same bytes again.  Returns the loaded model.
t::Model check_round_trip(const slstm_model* m) {
  const Bytes img = save(m);
  t::Model back = load(img);
  CHECK(t::input_size(back.get()) == t::input_size(m));
  const float fa = forget_bias_of(m), fb = forget_bias_of(back.get());
  CHECK(std::memcmp(&fa, &fb, sizeof fa) == 0);
  const auto la = layers_of(m), lb = layers_of(back.get());
  REQUIRE(la.size() == lb.size());
  for (std::size_t l = 0; l < la.size(); ++l) {
    INFO("layer " << l);
    CHECK(same_layer(la[l], lb[l]));
  }
  const auto ca = canonical(m), cb = canonical(back.get());
  REQUIRE(ca.size() == cb.size());
  for (std::size_t k = 0; k < ca.size(); ++k) {
    INFO(ca[k].first);
    CHECK(ca[k].first == cb[k].first);
    CHECK(t::bitwise_equal(ca[k].second, cb[k].second));
  }
  CHECK(save(back.get()) == img);
  return back;
}

std::string version_of(const slstm_model* m) {
  return split(save(m)).header["__metadata__"]["format_version"].get<std::string>();
}

// A forward call on the CPU reference: B = 3 rows of lengths {T, 1, 0}, T = 4, a non-zero
// initial state; returns outputs and final state.
t::Run reference_run(const slstm_model* m) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  o.max_batch = 3;
  o.max_time = 4;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m, &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  const std::int64_t B = 3, T = 4;
  const std::vector<float> x =
      t::random_vector(static_cast<std::size_t>(B * T * t::input_size(m)), 5);
  const std::vector<std::int32_t> lengths = {4, 1, 0};
  const std::vector<float> init = t::random_vector(t::state_count(m, B), 6, -0.5f, 0.5f);
  t::Call c = t::call_of(B, T, x);
  c.lengths = &lengths;
  c.initial_state = &init;
  return t::forward_ok(s.get(), m, c);
}

}  // namespace

// ---- round trips ---------------------------------------------------------------------------

TEST_CASE("an LSTM with peepholes and cell clipping round-trips bitwise through a model file",
          "[model-file][cells][path-independent]") {
  slstm_layer_config l0 = lstm(4);
  l0.peepholes = 1;
  l0.cell_clip = 3.0f;
  slstm_layer_config l1 = lstm(3);
  l1.cell_clip = 0.5f;
  auto m = stack_model(2, {l0, l1}, 1);
  check_round_trip(m.get());
}

TEST_CASE("an LSTM with a projection and projection clipping round-trips bitwise",
          "[model-file][cells][path-independent]") {
  slstm_layer_config l1 = lstm(4);
  l1.proj_size = 4;  // P = H is allowed
  auto m = stack_model(3, {lstm_all_options(5, 2), l1}, 2);
  check_round_trip(m.get());
}

TEST_CASE("GRU layers of both reset variants round-trip bitwise",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(3, {gru(4, false), gru(2, true)}, 3);
  auto back = check_round_trip(m.get());
  const auto ls = layers_of(back.get());
  CHECK(ls[0].gru_reset_after == 0);
  CHECK(ls[1].gru_reset_after == 1);
}

TEST_CASE("reverse layers round-trip bitwise", "[model-file][cells][path-independent]") {
  auto m = stack_model(2,
                       {with_direction(lstm(3), SLSTM_DIRECTION_REVERSE),
                        with_direction(gru(2, true), SLSTM_DIRECTION_REVERSE)},
                       4);
  check_round_trip(m.get());
}

TEST_CASE("bidirectional layers round-trip bitwise, both directions' weights",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(3,
                       {with_direction(lstm_all_options(4, 3), SLSTM_DIRECTION_BIDIRECTIONAL),
                        with_direction(gru(2, false), SLSTM_DIRECTION_BIDIRECTIONAL)},
                       5);
  check_round_trip(m.get());
}

TEST_CASE("residual layers round-trip bitwise", "[model-file][cells][path-independent]") {
  slstm_layer_config r0 = lstm(3);
  r0.residual = 1;  // D = 3
  slstm_layer_config r1 = gru(3, true);
  r1.residual = 1;
  auto m = stack_model(3, {r0, r1}, 6);
  check_round_trip(m.get());
}

TEST_CASE("a mixed stack of every kind of layer round-trips bitwise",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(3, mixed_layers(), 7);
  check_round_trip(m.get());
}

TEST_CASE("a model file round trip keeps negative zero and extreme clip values bitwise",
          "[model-file][cells][path-independent]") {
  slstm_layer_config l = lstm(2);
  l.cell_clip = 1.17549435e-38f;  // FLT_MIN
  l.proj_size = 1;
  l.proj_clip = 3.40282347e+38f;  // FLT_MAX
  auto m = stack_model(1, {l}, 8, -0.0f);
  check_round_trip(m.get());
}

TEST_CASE("a clip of negative zero means no clipping and is saved and loaded as 0",
          "[model-file][cells][path-independent]") {
  // -0 is accepted at creation and clips nothing, like 0; a file has no -0 clip, in either
  // version, so a layer reads back the same from both.
  const float zero = 0.0f;
  slstm_layer_config basic = lstm(2);
  basic.cell_clip = -0.0f;
  basic.proj_clip = -0.0f;
  auto m1 = stack_model(2, {basic}, 18);
  CHECK(version_of(m1.get()) == "1");
  slstm_layer_config peep = basic;
  peep.peepholes = 1;
  auto m2 = stack_model(2, {peep}, 19);
  const Parts p = split(save(m2.get()));
  CHECK(p.header["__metadata__"]["cell_clip"] == "0");
  CHECK(p.header["__metadata__"]["proj_clip"] == "0");
  json h = p.header;
  h["__metadata__"]["cell_clip"] = "-0";
  h["__metadata__"]["proj_clip"] = "-0.0";
  for (const Bytes& img : {save(m1.get()), save(m2.get()), join(h, p.data)}) {
    const auto layer = layers_of(load(img).get())[0];
    CHECK(std::memcmp(&layer.cell_clip, &zero, sizeof zero) == 0);
    CHECK(std::memcmp(&layer.proj_clip, &zero, sizeof zero) == 0);
  }
}

TEST_CASE("a loaded stack's forward results equal the original's bitwise on the CPU reference",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(3, mixed_layers(), 9);
  auto back = load(save(m.get()));
  const t::Run a = reference_run(m.get());
  const t::Run b = reference_run(back.get());
  CHECK(t::bitwise_equal(a.output, b.output));
  CHECK(t::bitwise_equal(a.final_state, b.final_state));
  CHECK(t::count_poison(a.output) == 0);
}

TEST_CASE("a model file saved to disk holds any stack", "[model-file][cells][path-independent]") {
  auto m = stack_model(3, mixed_layers(), 10);
  const std::string path = "slstm_test_cells_" + std::to_string(std::rand()) + ".safetensors";
  REQUIRE(slstm_model_save_file(m.get(), path.c_str(), "keras") == SLSTM_OK);
  slstm_model* raw = nullptr;
  const slstm_status st = slstm_model_load_file(path.c_str(), &raw);
  INFO(slstm_last_error());
  std::remove(path.c_str());
  REQUIRE(st == SLSTM_OK);
  t::Model back(raw);
  CHECK(save(back.get(), "keras") == save(m.get(), "keras"));
}

// ---- versions and metadata --------------------------------------------------------------------

TEST_CASE("a stack with any layer beyond BasicLSTMCell saves as format_version 2",
          "[model-file][cells][path-independent]") {
  slstm_layer_config peep = lstm(3);
  peep.peepholes = 1;
  slstm_layer_config clip = lstm(3);
  clip.cell_clip = 1.0f;
  slstm_layer_config proj = lstm(3);
  proj.proj_size = 2;
  slstm_layer_config res = lstm(2);
  res.residual = 1;
  const std::vector<std::pair<const char*, slstm_layer_config>> variants = {
      {"peepholes", peep},
      {"cell_clip", clip},
      {"proj_size", proj},
      {"residual", res},
      {"gru", gru(3, false)},
      {"reverse", with_direction(lstm(3), SLSTM_DIRECTION_REVERSE)},
      {"bidirectional", with_direction(lstm(3), SLSTM_DIRECTION_BIDIRECTIONAL)}};
  for (const auto& v : variants) {
    INFO(v.first);
    auto m = stack_model(2, {lstm(2), v.second}, 11);
    CHECK(version_of(m.get()) == "2");
  }
}

TEST_CASE("a version-2 file's metadata list every layer's cell, direction and options",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(3, mixed_layers(), 12, 0.25f);
  const json meta = split(save(m.get(), "tf")).header["__metadata__"];
  const json want = {{"format", "stacklstm"},
                     {"format_version", "2"},
                     {"input_size", "3"},
                     {"hidden_sizes", "3,4,5,5,2,3"},
                     {"cells", "lstm,gru,gru,lstm,gru,lstm"},
                     {"directions", "bidirectional,forward,reverse,forward,bidirectional,forward"},
                     {"residual", "0,1,0,1,0,0"},
                     {"peepholes", "1,0,0,1,0,0"},
                     {"cell_clip", "2.5,0,0,0,0,0"},
                     {"proj_sizes", "2,0,0,0,0,0"},
                     {"proj_clip", "0.75,0,0,0,0,0"},
                     {"gru_reset_after", "0,1,0,0,1,0"},
                     {"forget_bias", "0.25"},
                     {"source_layout", "tf"}};
  CHECK(meta == want);
}

TEST_CASE("a version-2 file names each direction's tensors and lays them out layer by layer",
          "[model-file][cells][path-independent]") {
  slstm_layer_config bi = with_direction(lstm_all_options(2, 1), SLSTM_DIRECTION_BIDIRECTIONAL);
  auto m = stack_model(1, {bi, gru(1, true)}, 13);
  std::string h = header_text(save(m.get()));
  h.erase(h.find_last_not_of(' ') + 1);  // the padding
  const std::string tensors = h.substr(h.find("},\"layers.") + 1);
  // LSTMP H = 2, P = 1, I = 1: W_x [8,1], W_h [8,1], b [8], w_peep [3,2], W_proj [1,2] per
  // direction; then the GRU (H = 1, I = 2): W_x [3,2], W_h [3,1], b_x [3], b_h [3].
  CHECK(tensors ==
        ",\"layers.0.W_x\":{\"dtype\":\"F32\",\"shape\":[8,1],\"data_offsets\":[0,32]},"
        "\"layers.0.W_h\":{\"dtype\":\"F32\",\"shape\":[8,1],\"data_offsets\":[32,64]},"
        "\"layers.0.b\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[64,96]},"
        "\"layers.0.w_peep\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[96,120]},"
        "\"layers.0.W_proj\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[120,128]},"
        "\"layers.0.reverse.W_x\":{\"dtype\":\"F32\",\"shape\":[8,1],\"data_offsets\":[128,160]},"
        "\"layers.0.reverse.W_h\":{\"dtype\":\"F32\",\"shape\":[8,1],\"data_offsets\":[160,192]},"
        "\"layers.0.reverse.b\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[192,224]},"
        "\"layers.0.reverse.w_peep\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[224,"
        "248]},"
        "\"layers.0.reverse.W_proj\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[248,"
        "256]},"
        "\"layers.1.W_x\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[256,280]},"
        "\"layers.1.W_h\":{\"dtype\":\"F32\",\"shape\":[3,1],\"data_offsets\":[280,292]},"
        "\"layers.1.b_x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[292,304]},"
        "\"layers.1.b_h\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[304,316]}}");
}

TEST_CASE("a stack of forward BasicLSTMCell layers still saves format_version 1, byte for byte",
          "[model-file][cells][path-independent]") {
  // The header libstacklstm 0.1-0.3 wrote for this architecture (captured from the 0.3 writer).
  auto m = t::random_model(2, {3, 2}, 5, 0.625f, 0.5f);
  CHECK(header_text(save(m.get(), "tf")) ==
        "{\"__metadata__\":{\"format\":\"stacklstm\",\"format_version\":\"1\",\"input_size\":"
        "\"2\",\"hidden_sizes\":\"3,2\",\"cells\":\"lstm,lstm\",\"forget_bias\":\"0.625\","
        "\"source_layout\":\"tf\"},\"layers.0.W_x\":{\"dtype\":\"F32\",\"shape\":[12,2],"
        "\"data_offsets\":[0,96]},\"layers.0.W_h\":{\"dtype\":\"F32\",\"shape\":[12,3],"
        "\"data_offsets\":[96,240]},\"layers.0.b\":{\"dtype\":\"F32\",\"shape\":[12],"
        "\"data_offsets\":[240,288]},\"layers.1.W_x\":{\"dtype\":\"F32\",\"shape\":[8,3],"
        "\"data_offsets\":[288,384]},\"layers.1.W_h\":{\"dtype\":\"F32\",\"shape\":[8,2],"
        "\"data_offsets\":[384,448]},\"layers.1.b\":{\"dtype\":\"F32\",\"shape\":[8],"
        "\"data_offsets\":[448,480]}}    ");
}

TEST_CASE("BasicLSTMCell layers given as slstm_layer_config save exactly as hidden_sizes do",
          "[model-file][cells][path-independent]") {
  auto basic = t::random_model(3, {4, 2}, 14, 0.5f);
  // The same weights under a layers config, through the CANONICAL import.
  auto tensors = canonical(basic.get());
  std::vector<slstm_tensor> in(tensors.size());
  const std::int64_t shapes[6][2] = {{16, 3}, {16, 4}, {16, 0}, {8, 4}, {8, 2}, {8, 0}};
  for (std::size_t k = 0; k < in.size(); ++k) {
    in[k] = slstm_tensor{};
    in[k].data = tensors[k].second.data();
    in[k].ndim = shapes[k][1] == 0 ? 1 : 2;
    in[k].shape[0] = shapes[k][0];
    in[k].shape[1] = shapes[k][1];
  }
  const std::vector<slstm_layer_config> ls = {lstm(4), lstm(2)};
  const slstm_model_config cfg = config_of(3, ls, 0.5f);
  slstm_model* raw = nullptr;
  const slstm_status st =
      slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, in.data(), in.size(), &raw);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  t::Model layered(raw);
  CHECK(save(layered.get()) == save(basic.get()));
}

// ---- broken version-2 files: one class per TEST_CASE --------------------------------------

TEST_CASE("a version-2 file with an unknown cell kind is unsupported, naming the layer",
          "[model-file][cells][path-independent]") {
  expect_refused(with_entry("cells", 2, "rnn_tanh"), SLSTM_ERR_UNSUPPORTED,
                 {"layer 2 is a \"rnn_tanh\" cell", "reads lstm and gru cells only",
                  "needs a newer library"});
}

TEST_CASE("a version-2 file with a malformed cell name is an invalid argument naming the entry",
          "[model-file][cells][path-independent]") {
  for (const char* bad : {"", "GRU", " gru", "gru-2"}) {
    INFO("cell \"" << bad << "\"");
    expect_refused(with_entry("cells", 1, bad), SLSTM_ERR_INVALID_ARGUMENT,
                   {"metadata cells[1] must be a cell name"});
  }
}

TEST_CASE("a version-2 file with an unknown direction is unsupported, naming the layer",
          "[model-file][cells][path-independent]") {
  expect_refused(with_entry("directions", 3, "diagonal"), SLSTM_ERR_UNSUPPORTED,
                 {"layer 3 has the direction \"diagonal\"",
                  "reads forward, reverse and bidirectional layers only", "needs a newer library"});
}

TEST_CASE("a version-2 file with a malformed direction is an invalid argument naming the entry",
          "[model-file][cells][path-independent]") {
  for (const char* bad : {"", "Forward", "bi directional", "reverse!"}) {
    INFO("direction \"" << bad << "\"");
    expect_refused(with_entry("directions", 4, bad), SLSTM_ERR_INVALID_ARGUMENT,
                   {"metadata directions[4] must be a direction name"});
  }
}

TEST_CASE("a version-2 file missing a layer key is an invalid argument naming the key",
          "[model-file][cells][path-independent]") {
  for (const char* key : {"cells", "directions", "residual", "peepholes", "cell_clip",
                          "proj_sizes", "proj_clip", "gru_reset_after"}) {
    INFO(key);
    Parts p = mixed_parts();
    p.header["__metadata__"].erase(key);
    expect_refused(join(p.header, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("metadata has no \"") + key + "\""});
  }
}

TEST_CASE("a version-2 layer key listing more or fewer entries than layers is refused naming it",
          "[model-file][cells][path-independent]") {
  for (const char* key : {"directions", "residual", "peepholes", "cell_clip", "proj_sizes",
                          "proj_clip", "gru_reset_after"}) {
    INFO(key);
    expect_refused(with_metadata(key, [](std::string& v) { v += ",0"; }),
                   SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("metadata ") + key + " lists 7 entries", "hidden_sizes 6 layers"});
    expect_refused(with_metadata(key, [](std::string& v) { v = v.substr(0, v.rfind(',')); }),
                   SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("metadata ") + key + " lists 5 entries", "hidden_sizes 6 layers"});
  }
  expect_refused(with_metadata("cells", [](std::string& v) { v += ",lstm"; }),
                 SLSTM_ERR_INVALID_ARGUMENT, {"metadata cells lists 7 cells"});
}

TEST_CASE("a version-2 flag other than 0 or 1 is an invalid argument naming the entry",
          "[model-file][cells][path-independent]") {
  for (const char* key : {"residual", "peepholes", "gru_reset_after"}) {
    for (const char* bad : {"2", "true", "", "01", "-1"}) {
      INFO(key << " = \"" << bad << "\"");
      expect_refused(with_entry(key, 5, bad), SLSTM_ERR_INVALID_ARGUMENT,
                     {std::string("metadata ") + key + "[5] must be 0 or 1"});
    }
  }
}

TEST_CASE("a version-2 clip that is not a finite decimal is an invalid argument naming the entry",
          "[model-file][cells][path-independent]") {
  for (const char* key : {"cell_clip", "proj_clip"}) {
    for (const char* bad : {"inf", "nan", "0x1p0", "+1", "1e39", "", "1.5.0"}) {
      INFO(key << " = \"" << bad << "\"");
      expect_refused(with_entry(key, 0, bad), SLSTM_ERR_INVALID_ARGUMENT,
                     {std::string("metadata ") + key + "[0] must be a decimal number"});
    }
  }
}

TEST_CASE("a version-2 negative clip is refused by the model's checks, naming the entry",
          "[model-file][cells][path-independent]") {
  expect_refused(with_entry("cell_clip", 0, "-1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata cell_clip[0] (layer 0's cell_clip) must be finite and >= 0"});
  expect_refused(with_entry("proj_clip", 0, "-0.5"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata proj_clip[0] (layer 0's proj_clip) must be finite and >= 0"});
}

TEST_CASE("a version-2 projection larger than the cell is refused naming the entry",
          "[model-file][cells][path-independent]") {
  // Layer 0: H = 3, P = 2.
  expect_refused(with_entry("proj_sizes", 0, "4"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata proj_sizes[0] (layer 0's proj_size) must be in [0, hidden_size = 3]"});
  expect_refused(with_entry("proj_sizes", 0, "-1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata proj_sizes[0] must be a decimal integer"});
  expect_refused(with_entry("proj_sizes", 0, "02"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata proj_sizes[0] must be a decimal integer"});
}

TEST_CASE("a version-2 projection clip without a projection is refused naming the entry",
          "[model-file][cells][path-independent]") {
  expect_refused(with_entry("proj_clip", 5, "1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata proj_clip[5] (layer 5's proj_clip)", "no projection"});
}

TEST_CASE("a version-2 GRU layer with an LSTM option is refused naming the layer and field",
          "[model-file][cells][path-independent]") {
  // Layer 1 is a GRU.
  expect_refused(with_entry("peepholes", 1, "1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata peepholes[1] (layer 1's peepholes)", "a GRU layer has no peepholes"});
  expect_refused(with_entry("cell_clip", 1, "1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata cell_clip[1] (layer 1's cell_clip)", "a GRU layer has no cell_clip"});
  expect_refused(with_entry("proj_sizes", 1, "2"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata proj_sizes[1] (layer 1's proj_size)", "a GRU layer has no proj_size"});
}

TEST_CASE("a version-2 LSTM layer with gru_reset_after is refused naming the layer and field",
          "[model-file][cells][path-independent]") {
  expect_refused(with_entry("gru_reset_after", 5, "1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata gru_reset_after[5] (layer 5's gru_reset_after)",
                  "an LSTM layer has no reset gate"});
}

TEST_CASE("a version-2 residual layer whose widths differ is refused naming the layer",
          "[model-file][cells][path-independent]") {
  // Layer 5 (LSTM H = 3) reads the bidirectional GRU's 2 x 2 = 4 wide output.
  expect_refused(with_entry("residual", 5, "1"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata residual[5] (layer 5's residual)", "width 4", "width 3"});
}

TEST_CASE("a version-2 file missing a tensor of any direction is refused naming it",
          "[model-file][cells][path-independent]") {
  for (const char* name : {"layers.0.reverse.W_proj", "layers.0.w_peep", "layers.1.b_h",
                           "layers.4.reverse.b_x", "layers.2.W_h"}) {
    INFO(name);
    Parts p = mixed_parts();
    REQUIRE(p.header.contains(name));
    p.header.erase(name);
    expect_refused(join(p.header, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("tensor \"") + name + "\" is missing"});
  }
}

TEST_CASE("a version-2 file with a tensor its layer does not have is refused naming it",
          "[model-file][cells][path-independent]") {
  // Each an entry the layer's kind, direction or options do not have: a reverse half of a
  // forward layer, a GRU bias on an LSTM, an LSTM bias on a GRU, peepholes and a projection
  // where there are none, a layer past the last.
  for (const char* name : {"layers.1.reverse.W_x", "layers.3.b_h", "layers.2.b",
                           "layers.5.w_peep", "layers.3.W_proj", "layers.6.W_x",
                           "layers.99999.reverse.W_proj"}) {
    INFO(name);
    Parts p = mixed_parts();
    p.header[name] = p.header["layers.5.b"];
    expect_refused(join(p.header, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("unexpected tensor \"") + name + "\""});
  }
}

TEST_CASE("a version-2 file whose options disagree with its tensors is refused",
          "[model-file][cells][path-independent]") {
  // Peepholes switched off on layer 3 leaves its w_peep unexpected; a projection declared on
  // layer 5 lacks its W_proj; a forward layer declared bidirectional lacks its reverse half.
  expect_refused(with_entry("peepholes", 3, "0"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"unexpected tensor \"layers.3.w_peep\""});
  expect_refused(with_entry("proj_sizes", 5, "2"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"tensor \"layers.5.W_proj\" is missing"});
  expect_refused(with_entry("directions", 5, "bidirectional"), SLSTM_ERR_INVALID_ARGUMENT,
                 {"tensor \"layers.5.reverse.W_x\" is missing"});
}

TEST_CASE("a version-2 tensor whose shape disagrees with its layer is a shape mismatch",
          "[model-file][cells][path-independent]") {
  // Layer 0: LSTMP H = 3, P = 2, I = 3.
  const std::vector<std::pair<const char*, std::vector<std::uint64_t>>> cases = {
      {"layers.0.reverse.W_proj", {3, 2}}, {"layers.0.w_peep", {9}},
      {"layers.0.W_h", {12, 3}},           {"layers.1.b_h", {16}}};
  for (const auto& c : cases) {
    INFO(c.first);
    Parts p = mixed_parts();
    p.header[c.first]["shape"] = c.second;
    expect_refused(join(p.header, p.data), SLSTM_ERR_SHAPE_MISMATCH,
                   {std::string("tensor \"") + c.first + "\" has shape"});
  }
}

TEST_CASE("a version-2 file with a non-finite weight in any tensor is refused naming it",
          "[model-file][cells][path-independent]") {
  for (const char* name : {"layers.0.reverse.w_peep", "layers.0.W_proj", "layers.1.b_h",
                           "layers.4.reverse.W_x"}) {
    for (float bad : {INFINITY, -INFINITY, NAN}) {
      INFO(name << " = " << bad);
      Parts p = mixed_parts();
      const std::uint64_t begin = p.header[name]["data_offsets"][0].get<std::uint64_t>();
      std::memcpy(p.data.data() + begin + 4, &bad, sizeof bad);  // its second element
      expect_refused(join(p.header, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                     {std::string("tensor \"") + name + "\" element 1 is not a finite float32"});
    }
  }
}

TEST_CASE("a version-2 tensor name given twice is refused, at any layer",
          "[model-file][cells][path-independent]") {
  // The duplicate bitmap covers every name up to the last layer's reverse projection.
  for (const char* name : {"layers.0.reverse.W_x", "layers.99999.reverse.W_proj"}) {
    INFO(name);
    const std::string entry =
        std::string("\"") + name + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
    Parts p = mixed_parts();
    std::string text = p.header.dump();
    text.insert(1, entry + "," + entry + ",");
    expect_refused(join(text, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("header has the key \"") + name + "\" twice"});
  }
}

TEST_CASE("a version-1 file cannot hold a GRU cell or a version-2 layer key",
          "[model-file][cells][path-independent]") {
  // What 0.1-0.3 would misread: such a file must say format_version 2.
  auto basic = t::random_model(3, {4, 2}, 15);
  Parts p = split(save(basic.get()));
  json h = p.header;
  h["__metadata__"]["cells"] = "lstm,gru";
  expect_refused(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                 {"metadata cells[1] is \"gru\", which format_version 1 cannot hold"});
  for (const char* key : {"directions", "residual", "peepholes", "cell_clip", "proj_sizes",
                          "proj_clip", "gru_reset_after"}) {
    INFO(key);
    h = p.header;
    h["__metadata__"][key] = "0,0";
    expect_refused(join(h, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                   {std::string("metadata \"") + key + "\" is a format_version 2 key",
                    "the file says format_version 1"});
  }
}

TEST_CASE("a version-2 file relabelled format_version 1 is refused",
          "[model-file][cells][path-independent]") {
  Parts p = mixed_parts();
  p.header["__metadata__"]["format_version"] = "1";
  expect_refused(join(p.header, p.data), SLSTM_ERR_INVALID_ARGUMENT,
                 {"format_version 1 cannot hold"});
}

TEST_CASE("a format_version above 2 is unsupported, saying a newer libstacklstm wrote it",
          "[model-file][cells][path-independent]") {
  for (const char* v : {"3", "10", "123456789012345678901234567890"}) {
    INFO("format_version " << v);
    Parts p = mixed_parts();
    p.header["__metadata__"]["format_version"] = v;
    expect_refused(join(p.header, p.data), SLSTM_ERR_UNSUPPORTED,
                   {"written by a newer libstacklstm", "reads format_version 1 to 2"});
  }
}

TEST_CASE("a newer file's unknown tensors after an unknown direction report the direction",
          "[model-file][cells][path-independent]") {
  // The metadata come first: an unknown direction, not the tensor names a newer library may
  // use for it, is the error.
  Parts p = mixed_parts();
  p.header["__metadata__"]["directions"] =
      replace_entry(p.header["__metadata__"]["directions"].get<std::string>(), 5, "diagonal");
  p.header["layers.5.diagonal.W_x"] = p.header["layers.5.b"];
  expect_refused(join(p.header, p.data), SLSTM_ERR_UNSUPPORTED,
                 {"layer 5 has the direction \"diagonal\""});
}

TEST_CASE("every truncation of a version-2 file is rejected cleanly",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(2, {with_direction(lstm_all_options(2, 1), SLSTM_DIRECTION_BIDIRECTIONAL),
                           gru(2, true)},
                       16);
  const Bytes img = save(m.get());
  for (std::size_t n = 0; n < img.size(); ++n) {
    slstm_model* out = reinterpret_cast<slstm_model*>(0x1);
    const slstm_status st = slstm_model_load_memory(img.data(), n, &out);
    if (st == SLSTM_OK) {
      FAIL("a truncation to " << n << " of " << img.size() << " bytes loaded");
    }
    if (out != reinterpret_cast<slstm_model*>(0x1)) FAIL("out written on failure at " << n);
  }
}

TEST_CASE("flipping any byte of a version-2 header never crashes the loader",
          "[model-file][cells][path-independent]") {
  auto m = stack_model(2, {with_direction(lstm_all_options(2, 1), SLSTM_DIRECTION_BIDIRECTIONAL),
                           gru(2, false)},
                       17);
  const Bytes img = save(m.get());
  const std::size_t header_end = 8 + header_text(img).size();
  for (std::size_t k = 8; k < header_end; ++k) {
    for (const unsigned x : {0x01u, 0x20u, 0x80u}) {
      Bytes b = img;
      b[k] = static_cast<unsigned char>(b[k] ^ x);
      slstm_model* out = nullptr;
      if (slstm_model_load_memory(b.data(), b.size(), &out) == SLSTM_OK) {
        // A flip that still loads (a digit of a clip, a letter of source_layout) gives a
        // model that saves and loads back as itself.
        t::Model loaded(out);
        check_round_trip(loaded.get());
      } else if (std::strlen(slstm_last_error()) == 0) {
        FAIL("no message for the flip at byte " << k);
      }
    }
  }
}

TEST_CASE("a version-2 stack of SLSTM_MAX_LAYERS layers saves and loads back within seconds",
          "[model-file][cells][large][path-independent]") {
  // Every per-layer metadata list and the tensor table at their largest (~65 MB of header):
  // the reader stays linear in the header's size.
  std::vector<slstm_layer_config> ls(SLSTM_MAX_LAYERS);
  for (std::size_t l = 0; l < ls.size(); ++l) {
    ls[l] = l % 2 ? with_direction(gru(1, true), SLSTM_DIRECTION_BIDIRECTIONAL)
                  : lstm_all_options(1, 1);
  }
  auto m = stack_model(2, ls, 20);
  const Bytes img = save(m.get());
  const auto t0 = std::chrono::steady_clock::now();
  auto back = load(img);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("load took " << s << " s for " << img.size() << " bytes");
  CHECK(layers_of(back.get()).size() == ls.size());
  CHECK(save(back.get()) == img);
  // ~0.5 s here in a normal build; room for sanitizers on a loaded CI machine.
  CHECK(s < 60.0);
}

TEST_CASE("a huge declared version-2 architecture is refused before anything is allocated for it",
          "[model-file][cells][path-independent]") {
  // 2^40 x 2^40 weights per layer: the stack check (as slstm_model_create's) fails on the
  // sizes before any tensor is looked at or anything of that size allocated.
  Parts p = mixed_parts();
  p.header["__metadata__"]["input_size"] = "1099511627776";
  p.header["__metadata__"]["hidden_sizes"] = "1099511627776,4,5,5,2,3";
  expect_refused(join(p.header, p.data), SLSTM_ERR_SIZE_OVERFLOW,
                 {"model file: the stack the metadata describe (weights", "overflows"});
}
