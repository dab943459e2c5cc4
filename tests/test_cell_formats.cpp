// Every weight format for every cell of docs/cells.md (issue 20): which (format, layer) pairs
// a format expresses and which it refuses (naming the layer and field), bitwise round trips
// through each format, hand-written permutation cases per format, slstm_format_tensors'
// names and shapes, and the value checks of import and export.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

// ---- Stacks ------------------------------------------------------------------------------------

slstm_layer_config lstm(std::int64_t hidden) {
  slstm_layer_config c;
  slstm_layer_config_init(&c);
  c.cell = SLSTM_CELL_LSTM;
  c.hidden_size = hidden;
  return c;
}

slstm_layer_config gru(std::int64_t hidden, int reset_after) {
  slstm_layer_config c = lstm(hidden);
  c.cell = SLSTM_CELL_GRU;
  c.gru_reset_after = reset_after;
  return c;
}

slstm_layer_config with_direction(slstm_layer_config c, slstm_direction d) {
  c.direction = d;
  return c;
}

using Layers = std::vector<slstm_layer_config>;  // (assigned as Layers{...}: GCC 12 warns
                                                  // about assigning a braced list)
struct Stack {
  std::int64_t input_size = 0;
  Layers layers;
  float forget_bias = 0.0f;
};

slstm_model_config config_of(const Stack& s) {
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = s.input_size;
  c.num_layers = static_cast<std::int32_t>(s.layers.size());
  c.layers = s.layers.data();
  c.forget_bias = s.forget_bias;
  return c;
}

// ---- Tensors -----------------------------------------------------------------------------------

std::vector<slstm_tensor_info> tensor_infos(const Stack& s, slstm_weight_format format) {
  const slstm_model_config cfg = config_of(s);
  std::size_t n = 0;
  const slstm_status st = slstm_format_tensors(&cfg, format, nullptr, 0, &n);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  std::vector<slstm_tensor_info> infos(n);
  for (auto& i : infos) i.struct_size = sizeof(slstm_tensor_info);
  std::size_t again = 0;
  REQUIRE(slstm_format_tensors(&cfg, format, infos.data(), infos.size(), &again) == SLSTM_OK);
  REQUIRE(again == n);
  return infos;
}

std::size_t count_of(const slstm_tensor_info& info) {
  std::size_t n = 1;
  for (std::int32_t d = 0; d < info.ndim; ++d) n *= static_cast<std::size_t>(info.shape[d]);
  return n;
}

// Owned tensors in some format, with their descriptions.
struct Tensors {
  std::vector<slstm_tensor_info> info;
  std::vector<std::vector<float>> data;

  std::vector<slstm_tensor> in() const {
    std::vector<slstm_tensor> v;
    for (std::size_t k = 0; k < data.size(); ++k) {
      slstm_tensor t{};
      t.data = data[k].data();
      t.ndim = info[k].ndim;
      for (std::int32_t d = 0; d < info[k].ndim; ++d) t.shape[d] = info[k].shape[d];
      v.push_back(t);
    }
    return v;
  }
  std::vector<slstm_tensor_out> out() {
    std::vector<slstm_tensor_out> v;
    for (std::size_t k = 0; k < data.size(); ++k) {
      slstm_tensor_out t{};
      t.data = data[k].data();
      t.ndim = info[k].ndim;
      for (std::int32_t d = 0; d < info[k].ndim; ++d) t.shape[d] = info[k].shape[d];
      v.push_back(t);
    }
    return v;
  }
  // The tensor named `name` of layer `layer` (REQUIREs exactly one).
  std::vector<float>& at(std::int32_t layer, const std::string& name) {
    std::vector<float>* found = nullptr;
    for (std::size_t k = 0; k < info.size(); ++k) {
      if (info[k].layer == layer && name == info[k].name) {
        REQUIRE(found == nullptr);
        found = &data[k];
      }
    }
    INFO("layer " << layer << " tensor " << name);
    REQUIRE(found != nullptr);
    return *found;
  }
};

// Poisoned buffers of the shapes `format` takes for `s`.
Tensors poisoned_tensors(const Stack& s, slstm_weight_format format) {
  Tensors t;
  t.info = tensor_infos(s, format);
  for (const auto& i : t.info) t.data.push_back(t::poisoned(count_of(i)));
  return t;
}

// The model's weights in `format` (REQUIREs success and that every element was written).
Tensors export_as(const slstm_model* m, const Stack& s, slstm_weight_format format) {
  Tensors t = poisoned_tensors(s, format);
  auto out = t.out();
  const slstm_status st = slstm_model_export(m, format, out.data(), out.size());
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  for (const auto& d : t.data) REQUIRE(t::count_poison(d) == 0);
  return t;
}

slstm_status try_import(const Stack& s, slstm_weight_format format, const Tensors& t,
                        slstm_model** out) {
  const slstm_model_config cfg = config_of(s);
  const auto in = t.in();
  return slstm_model_create(&cfg, format, in.data(), in.size(), out);
}

t::Model import_as(const Stack& s, slstm_weight_format format, const Tensors& t) {
  slstm_model* m = nullptr;
  const slstm_status st = try_import(s, format, t, &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Model(m);
}

t::Model random_model(const Stack& s, std::uint64_t seed) {
  const slstm_model_config cfg = config_of(s);
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create_random(&cfg, seed, 0.0f, &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Model(m);
}

// A canonical model whose every weight is its own small integer, in tensor order (1, 2, 3,
// ...): hand-written expectations can name each value.
t::Model counting_model(const Stack& s, Tensors* canonical = nullptr) {
  Tensors t = poisoned_tensors(s, SLSTM_FORMAT_CANONICAL);
  float next = 1.0f;
  for (auto& d : t.data) {
    for (float& x : d) x = next++;
  }
  auto m = import_as(s, SLSTM_FORMAT_CANONICAL, t);
  if (canonical != nullptr) *canonical = t;
  return m;
}

std::string name_of(slstm_weight_format format) {
  switch (format) {
    case SLSTM_FORMAT_CANONICAL: return "SLSTM_FORMAT_CANONICAL";
    case SLSTM_FORMAT_TF: return "SLSTM_FORMAT_TF";
    case SLSTM_FORMAT_PYTORCH: return "SLSTM_FORMAT_PYTORCH";
    case SLSTM_FORMAT_KERAS: return "SLSTM_FORMAT_KERAS";
    case SLSTM_FORMAT_KERAS_CUDNN: return "SLSTM_FORMAT_KERAS_CUDNN";
    case SLSTM_FORMAT_ONNX: return "SLSTM_FORMAT_ONNX";
    case SLSTM_FORMAT_CUDNN: return "SLSTM_FORMAT_CUDNN";
  }
  return "?";
}

// ---- The support table: every variant in every format ------------------------------------------

constexpr slstm_weight_format kFormats[] = {
    SLSTM_FORMAT_CANONICAL,   SLSTM_FORMAT_TF,   SLSTM_FORMAT_PYTORCH, SLSTM_FORMAT_KERAS,
    SLSTM_FORMAT_KERAS_CUDNN, SLSTM_FORMAT_ONNX, SLSTM_FORMAT_CUDNN};

// A stack and, per format (kFormats' order), "" when the format expresses it, else the field
// it refuses as "<layer>.<field>" (the message names config->layers[<layer>].<field>).
struct Variant {
  const char* name;
  Stack stack;
  const char* refused[7];
};

// Layer 0 of most stacks is a plain LSTM (I = 3, H = 5); layer 1 carries the feature.
Stack after_plain(slstm_layer_config second) {
  Stack s;
  s.input_size = 3;
  s.layers = Layers{lstm(5), second};
  return s;
}

std::vector<Variant> variants() {
  const auto rev = SLSTM_DIRECTION_REVERSE;
  const auto bi = SLSTM_DIRECTION_BIDIRECTIONAL;
  slstm_layer_config peep = lstm(4);
  peep.peepholes = 1;
  slstm_layer_config cell_clip = lstm(4);
  cell_clip.cell_clip = 0.5f;
  slstm_layer_config proj = lstm(4);
  proj.proj_size = 2;
  slstm_layer_config proj_clip = proj;
  proj_clip.proj_clip = 0.25f;
  slstm_layer_config lstmp = proj_clip;  // everything TF's LSTMCell has
  lstmp.peepholes = 1;
  lstmp.cell_clip = 3.0f;
  slstm_layer_config residual = lstm(5);
  residual.residual = 1;
  slstm_layer_config gru1_residual = gru(6, 1);
  gru1_residual.residual = 1;
  slstm_layer_config lstm6_residual = lstm(6);
  lstm6_residual.residual = 1;

  Stack mixed_a;  // bidirectional LSTM, residual reset-after GRU, LSTM
  mixed_a.input_size = 2;
  mixed_a.layers = Layers{with_direction(lstm(3), bi), gru1_residual, lstm(4)};
  Stack mixed_b;  // reverse LSTM, bidirectional reset-before GRU, residual LSTM
  mixed_b.input_size = 2;
  mixed_b.layers =
      Layers{with_direction(lstm(4), rev), with_direction(gru(3, 0), bi), lstm6_residual};

  //  CANONICAL, TF, PYTORCH, KERAS, KERAS_CUDNN, ONNX, CUDNN
  return {
      {"lstm", after_plain(lstm(4)), {"", "", "", "", "", "", ""}},
      {"lstm peepholes", after_plain(peep),
       {"", "", "1.peepholes", "1.peepholes", "1.peepholes", "", "1.peepholes"}},
      {"lstm cell_clip", after_plain(cell_clip),
       {"", "", "1.cell_clip", "1.cell_clip", "1.cell_clip", "1.cell_clip", "1.cell_clip"}},
      {"lstm projection", after_plain(proj),
       {"", "", "", "1.proj_size", "1.proj_size", "1.proj_size", "1.proj_size"}},
      {"lstm projection + proj_clip", after_plain(proj_clip),
       {"", "", "1.proj_clip", "1.proj_size", "1.proj_size", "1.proj_size", "1.proj_size"}},
      {"lstm peepholes + cell_clip + projection + proj_clip", after_plain(lstmp),
       {"", "", "1.peepholes", "1.peepholes", "1.peepholes", "1.cell_clip", "1.peepholes"}},
      {"lstm reverse", after_plain(with_direction(lstm(4), rev)),
       {"", "", "1.direction", "", "", "", "1.direction"}},
      {"lstm bidirectional", after_plain(with_direction(lstm(4), bi)),
       {"", "", "", "", "", "", ""}},
      {"lstm bidirectional peepholes", after_plain(with_direction(peep, bi)),
       {"", "", "1.peepholes", "1.peepholes", "1.peepholes", "", "1.peepholes"}},
      {"lstm bidirectional projection", after_plain(with_direction(proj, bi)),
       {"", "", "", "1.proj_size", "1.proj_size", "1.proj_size", "1.proj_size"}},
      {"lstm residual", after_plain(residual), {"", "", "", "", "", "", ""}},
      {"gru reset-before", after_plain(gru(4, 0)),
       {"", "", "1.gru_reset_after", "", "1.gru_reset_after", "", "1.gru_reset_after"}},
      {"gru reset-after", after_plain(gru(4, 1)),
       {"", "1.gru_reset_after", "", "", "", "", ""}},
      {"gru reset-before reverse", after_plain(with_direction(gru(4, 0), rev)),
       {"", "", "1.direction", "", "1.gru_reset_after", "", "1.direction"}},
      {"gru reset-after reverse", after_plain(with_direction(gru(4, 1), rev)),
       {"", "1.gru_reset_after", "1.direction", "", "", "", "1.direction"}},
      {"gru reset-before bidirectional", after_plain(with_direction(gru(4, 0), bi)),
       {"", "", "1.gru_reset_after", "", "1.gru_reset_after", "", "1.gru_reset_after"}},
      {"gru reset-after bidirectional", after_plain(with_direction(gru(4, 1), bi)),
       {"", "1.gru_reset_after", "", "", "", "", ""}},
      {"mixed: bidirectional lstm, residual gru reset-after, lstm", mixed_a,
       {"", "1.gru_reset_after", "", "", "", "", ""}},
      {"mixed: reverse lstm, bidirectional gru reset-before, residual lstm", mixed_b,
       {"", "", "0.direction", "", "1.gru_reset_after", "", "0.direction"}},
  };
}

// Whether `format` folds the GRU recurrent bias b_h into b_x for this layer (it has no b_h).
bool folds_gru_bias(slstm_weight_format format, const slstm_layer_config& layer) {
  return layer.cell == SLSTM_CELL_GRU && layer.gru_reset_after == 0 &&
         (format == SLSTM_FORMAT_TF || format == SLSTM_FORMAT_KERAS);
}

// The canonical weights `original` after a round trip through `format` (docs: the formats
// without b_h fold it into b_x on export and import b_h = 0; nothing else changes, since
// these stacks have forget_bias 0).
Tensors after_round_trip(Tensors original, const Stack& s, slstm_weight_format format) {
  for (std::size_t k = 0; k < original.info.size(); ++k) {
    const auto& info = original.info[k];
    if (!folds_gru_bias(format, s.layers[static_cast<std::size_t>(info.layer)])) continue;
    if (std::string(info.name) != "b_x") continue;
    auto& b_x = original.data[k];
    auto& b_h = original.data[k + 1];  // canonical: b_h follows b_x in the same direction
    REQUIRE(std::string(original.info[k + 1].name) == "b_h");
    for (std::size_t r = 0; r < b_x.size(); ++r) {
      b_x[r] += b_h[r];
      b_h[r] = 0.0f;
    }
  }
  return original;
}

void check_round_trip(slstm_weight_format format, const Variant& v) {
  INFO(name_of(format) << ", " << v.name);
  auto m = random_model(v.stack, 20);
  const Tensors canonical = export_as(m.get(), v.stack, SLSTM_FORMAT_CANONICAL);
  const Tensors in_format = export_as(m.get(), v.stack, format);
  auto back = import_as(v.stack, format, in_format);
  const Tensors again = export_as(back.get(), v.stack, SLSTM_FORMAT_CANONICAL);
  const Tensors want = after_round_trip(canonical, v.stack, format);
  REQUIRE(again.data.size() == want.data.size());
  for (std::size_t k = 0; k < want.data.size(); ++k) {
    INFO("canonical tensor " << k << " (layer " << want.info[k].layer << " " << want.info[k].name
                             << ", direction " << want.info[k].direction << ")");
    CHECK(t::bitwise_equal(again.data[k], want.data[k]));
  }
  // And the format's own tensors come back the same.
  const Tensors in_format_again = export_as(back.get(), v.stack, format);
  for (std::size_t k = 0; k < in_format.data.size(); ++k) {
    INFO(name_of(format) << " tensor " << k << " (" << in_format.info[k].name << ")");
    CHECK(t::bitwise_equal(in_format_again.data[k], in_format.data[k]));
  }
}

void check_round_trips(slstm_weight_format format, std::size_t column) {
  int checked = 0;
  for (const Variant& v : variants()) {
    if (*v.refused[column] != '\0') continue;
    check_round_trip(format, v);
    ++checked;
  }
  CHECK(checked > 0);
}

// `status` must be UNSUPPORTED, with a message naming config->layers[l].<field> and the format.
void check_refusal(slstm_status status, slstm_weight_format format, const std::string& refused,
                   const char* call) {
  const std::string layer = refused.substr(0, refused.find('.'));
  const std::string field = refused.substr(refused.find('.') + 1);
  INFO(call << ": " << slstm_last_error());
  CHECK(status == SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(slstm_last_error(),
             Catch::Contains("config->layers[" + layer + "]." + field + ":") &&
                 Catch::Contains(name_of(format)));
}

// Every variant the format cannot express is refused by slstm_format_tensors,
// slstm_model_create and slstm_model_export alike, and export writes nothing.
void check_refusals(slstm_weight_format format, std::size_t column) {
  int checked = 0;
  for (const Variant& v : variants()) {
    const std::string refused = v.refused[column];
    if (refused.empty()) continue;
    INFO(name_of(format) << ", " << v.name);
    ++checked;
    const slstm_model_config cfg = config_of(v.stack);
    std::size_t count = 99;
    check_refusal(slstm_format_tensors(&cfg, format, nullptr, 0, &count), format, refused,
                  "slstm_format_tensors");
    CHECK(count == 99);
    slstm_model* created = nullptr;
    check_refusal(slstm_model_create(&cfg, format, nullptr, 0, &created), format, refused,
                  "slstm_model_create");
    CHECK(created == nullptr);
    // Export: buffers of the canonical shapes (the format has none for this stack).
    auto m = random_model(v.stack, 3);
    Tensors buf = poisoned_tensors(v.stack, SLSTM_FORMAT_CANONICAL);
    auto out = buf.out();
    check_refusal(slstm_model_export(m.get(), format, out.data(), out.size()), format, refused,
                  "slstm_model_export");
    for (const auto& d : buf.data) CHECK(t::count_poison(d) == d.size());
  }
  CHECK(checked > 0);
}

std::size_t column_of(slstm_weight_format format) {
  for (std::size_t c = 0; c < 7; ++c) {
    if (kFormats[c] == format) return c;
  }
  FAIL("format " << format << " has no column");
  return 0;
}

// Expected tensor description: name, layer, direction, shape.
struct Want {
  const char* name;
  std::int32_t layer;
  std::int32_t direction;
  std::vector<std::int64_t> shape;
};

void check_infos(const Stack& s, slstm_weight_format format, const std::vector<Want>& want) {
  INFO(name_of(format));
  const auto got = tensor_infos(s, format);
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    INFO("tensor " << k);
    CHECK(std::string(got[k].name) == want[k].name);
    CHECK(got[k].layer == want[k].layer);
    CHECK(got[k].direction == want[k].direction);
    CHECK(std::vector<std::int64_t>(got[k].shape, got[k].shape + got[k].ndim) == want[k].shape);
  }
}

std::vector<float> floats(std::initializer_list<float> v) { return v; }

}  // namespace

// ---- Round trips -------------------------------------------------------------------------------

TEST_CASE("TF: export then import is the identity for every stack TF expresses (GRU b_h folded)",
          "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_TF, column_of(SLSTM_FORMAT_TF));
}

TEST_CASE("PyTorch: export then import is the identity for every stack PyTorch expresses",
          "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_PYTORCH, column_of(SLSTM_FORMAT_PYTORCH));
}

TEST_CASE("Keras: export then import is the identity for every stack Keras expresses "
          "(reset-before GRU b_h folded)",
          "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_KERAS, column_of(SLSTM_FORMAT_KERAS));
}

TEST_CASE("Keras CuDNNLSTM / CuDNNGRU: export then import is the identity for every stack they "
          "express",
          "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_KERAS_CUDNN, column_of(SLSTM_FORMAT_KERAS_CUDNN));
}

TEST_CASE("ONNX: export then import is the identity for every stack ONNX expresses",
          "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_ONNX, column_of(SLSTM_FORMAT_ONNX));
}

TEST_CASE("cuDNN: export then import is the identity for every stack cuDNN expresses",
          "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_CUDNN, column_of(SLSTM_FORMAT_CUDNN));
}

TEST_CASE("CANONICAL: export then import is the identity for every stack", "[formats][cells][path-independent]") {
  check_round_trips(SLSTM_FORMAT_CANONICAL, column_of(SLSTM_FORMAT_CANONICAL));
}

// ---- Refusals ----------------------------------------------------------------------------------

TEST_CASE("TF refuses a reset-after GRU, naming the layer and field", "[formats][cells][path-independent]") {
  check_refusals(SLSTM_FORMAT_TF, column_of(SLSTM_FORMAT_TF));
}

TEST_CASE("PyTorch refuses peepholes, clipping, a reset-before GRU and a reverse-only layer, "
          "naming the layer and field",
          "[formats][cells][path-independent]") {
  check_refusals(SLSTM_FORMAT_PYTORCH, column_of(SLSTM_FORMAT_PYTORCH));
}

TEST_CASE("Keras refuses peepholes, cell clipping and projections, naming the layer and field",
          "[formats][cells][path-independent]") {
  check_refusals(SLSTM_FORMAT_KERAS, column_of(SLSTM_FORMAT_KERAS));
}

TEST_CASE("Keras CuDNNLSTM / CuDNNGRU refuse a reset-before GRU and every LSTM option, naming "
          "the layer and field",
          "[formats][cells][path-independent]") {
  check_refusals(SLSTM_FORMAT_KERAS_CUDNN, column_of(SLSTM_FORMAT_KERAS_CUDNN));
}

TEST_CASE("ONNX refuses cell clipping and projections, naming the layer and field",
          "[formats][cells][path-independent]") {
  check_refusals(SLSTM_FORMAT_ONNX, column_of(SLSTM_FORMAT_ONNX));
}

TEST_CASE("cuDNN refuses peepholes, clipping, projections, a reset-before GRU and a "
          "reverse-only layer, naming the layer and field",
          "[formats][cells][path-independent]") {
  check_refusals(SLSTM_FORMAT_CUDNN, column_of(SLSTM_FORMAT_CUDNN));
}

// ---- Hand-written layouts ----------------------------------------------------------------------
// Models with I = 1 and H = 1 (or small) whose canonical weights count 1, 2, 3, ... in tensor
// order, so each expected tensor is written out by hand from the format's documentation.

TEST_CASE("PyTorch GRU: weight_ih/weight_hh/bias_ih/bias_hh are W_x/W_h/b_x/b_h (gates r, z, n), "
          "the _reverse set follows the forward set",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{with_direction(gru(1, 1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  // Canonical, per direction: W_x [3, 1], W_h [3, 1], b_x [3], b_h [3].
  auto m = counting_model(s);
  Tensors pt = export_as(m.get(), s, SLSTM_FORMAT_PYTORCH);
  CHECK(pt.at(0, "weight_ih") == floats({1, 2, 3}));
  CHECK(pt.at(0, "weight_hh") == floats({4, 5, 6}));
  CHECK(pt.at(0, "bias_ih") == floats({7, 8, 9}));
  CHECK(pt.at(0, "bias_hh") == floats({10, 11, 12}));
  CHECK(pt.at(0, "weight_ih_reverse") == floats({13, 14, 15}));
  CHECK(pt.at(0, "weight_hh_reverse") == floats({16, 17, 18}));
  CHECK(pt.at(0, "bias_ih_reverse") == floats({19, 20, 21}));
  CHECK(pt.at(0, "bias_hh_reverse") == floats({22, 23, 24}));
}

TEST_CASE("PyTorch LSTM projection: weight_hr is W_proj [P, H] and weight_hh is [4H, P]",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  slstm_layer_config l = lstm(2);
  l.proj_size = 1;
  s.layers = Layers{l};
  // Canonical: W_x [8, 1] = 1..8, W_h [8, 1] = 9..16, b [8] = 17..24, W_proj [1, 2] = 25, 26.
  auto m = counting_model(s);
  Tensors pt = export_as(m.get(), s, SLSTM_FORMAT_PYTORCH);
  CHECK(pt.at(0, "weight_hh") == floats({9, 10, 11, 12, 13, 14, 15, 16}));
  CHECK(pt.at(0, "bias_ih") == floats({17, 18, 19, 20, 21, 22, 23, 24}));
  CHECK(pt.at(0, "bias_hh") == floats({0, 0, 0, 0, 0, 0, 0, 0}));
  CHECK(pt.at(0, "weight_hr") == floats({25, 26}));
}

TEST_CASE("ONNX LSTM: W/R/B row blocks i, o, f, c, P is i, o, f, and a bidirectional node stacks "
          "forward then reverse in dimension 0",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  slstm_layer_config l = with_direction(lstm(1), SLSTM_DIRECTION_BIDIRECTIONAL);
  l.peepholes = 1;
  s.layers = Layers{l};
  // Canonical forward: W_x (i, f, g, o) = 1..4, W_h = 5..8, b = 9..12, w_peep (i, f, o) =
  // 13..15; reverse: W_x = 16..19, W_h = 20..23, b = 24..27, w_peep = 28..30.
  auto m = counting_model(s);
  Tensors onnx = export_as(m.get(), s, SLSTM_FORMAT_ONNX);
  CHECK(onnx.at(0, "W") == floats({1, 4, 2, 3, 16, 19, 17, 18}));
  CHECK(onnx.at(0, "R") == floats({5, 8, 6, 7, 20, 23, 21, 22}));
  CHECK(onnx.at(0, "B") == floats({9, 12, 10, 11, 0, 0, 0, 0, 24, 27, 25, 26, 0, 0, 0, 0}));
  CHECK(onnx.at(0, "P") == floats({13, 15, 14, 28, 30, 29}));
}

TEST_CASE("ONNX GRU: W/R row blocks z, r, h and B = [Wb, Rb] = [b_x, b_h] in that order",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{gru(1, 0)};
  // Canonical (r, z, n): W_x = 1..3, W_h = 4..6, b_x = 7..9, b_h = 10..12.
  auto m = counting_model(s);
  Tensors onnx = export_as(m.get(), s, SLSTM_FORMAT_ONNX);
  CHECK(onnx.at(0, "W") == floats({2, 1, 3}));
  CHECK(onnx.at(0, "R") == floats({5, 4, 6}));
  CHECK(onnx.at(0, "B") == floats({8, 7, 9, 11, 10, 12}));
}

TEST_CASE("ONNX: a reverse-only layer is one direction (dimension 0 of extent 1)",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{with_direction(gru(1, 1), SLSTM_DIRECTION_REVERSE)};
  auto m = counting_model(s);
  Tensors onnx = export_as(m.get(), s, SLSTM_FORMAT_ONNX);
  CHECK(onnx.at(0, "W") == floats({2, 1, 3}));
  CHECK(std::vector<std::int64_t>(onnx.info[0].shape, onnx.info[0].shape + 3) ==
        std::vector<std::int64_t>{1, 3, 1});
}

TEST_CASE("TF LSTMCell: kernel columns i, j, f, o (canonical g is TF's j), x rows then h rows, "
          "then w_i_diag, w_f_diag, w_o_diag and projection/kernel = W_proj transposed",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  slstm_layer_config l = lstm(3);
  l.peepholes = 1;
  l.proj_size = 2;
  s.layers = Layers{l};
  // Canonical: W_x [12, 1] = 1..12 (i 1-3, f 4-6, g 7-9, o 10-12), W_h [12, 2] = 13..36,
  // b = 37..48, w_peep [3, 3] = 49..57 (i, f, o), W_proj [2, 3] = 58..63.
  auto m = counting_model(s);
  Tensors tf = export_as(m.get(), s, SLSTM_FORMAT_TF);
  const std::vector<float>& kernel = tf.at(0, "kernel");  // [1 + 2, 12]
  REQUIRE(kernel.size() == 36);
  // Row 0 (x): i = 1..3, j = g = 7..9, f = 4..6, o = 10..12.
  CHECK(std::vector<float>(kernel.begin(), kernel.begin() + 12) ==
        floats({1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12}));
  // Row 1 (h_0): W_h[r, 0] is 13 + 2r: i rows 0-2, f 3-5, g 6-8, o 9-11.
  CHECK(std::vector<float>(kernel.begin() + 12, kernel.begin() + 24) ==
        floats({13, 15, 17, 25, 27, 29, 19, 21, 23, 31, 33, 35}));
  CHECK(tf.at(0, "bias") == floats({37, 38, 39, 43, 44, 45, 40, 41, 42, 46, 47, 48}));
  CHECK(tf.at(0, "w_i_diag") == floats({49, 50, 51}));
  CHECK(tf.at(0, "w_f_diag") == floats({52, 53, 54}));
  CHECK(tf.at(0, "w_o_diag") == floats({55, 56, 57}));
  // projection/kernel [H = 3, P = 2] = W_proj^T.
  CHECK(tf.at(0, "projection/kernel") == floats({58, 61, 59, 62, 60, 63}));
}

TEST_CASE("TF GRUCell: gates/kernel columns r, u (= z), candidate/kernel, biases, and export "
          "folds b_h into b_x",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{gru(1, 0)};
  // Canonical (r, z, n): W_x = 1..3, W_h = 4..6, b_x = 7..9, b_h = 10..12.
  auto m = counting_model(s);
  Tensors tf = export_as(m.get(), s, SLSTM_FORMAT_TF);
  CHECK(tf.at(0, "gates/kernel") == floats({1, 2, 4, 5}));  // [x; h] x [r, u]
  CHECK(tf.at(0, "gates/bias") == floats({7 + 10, 8 + 11}));
  CHECK(tf.at(0, "candidate/kernel") == floats({3, 6}));
  CHECK(tf.at(0, "candidate/bias") == floats({9 + 12}));
}

TEST_CASE("TF GRUCell: import sets b_h = 0, so a model whose b_h is 0 round-trips bitwise",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 2;
  s.layers = Layers{with_direction(gru(3, 0), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto random = random_model(s, 5);
  Tensors canonical = export_as(random.get(), s, SLSTM_FORMAT_CANONICAL);
  for (std::size_t k = 0; k < canonical.info.size(); ++k) {
    if (std::string(canonical.info[k].name) == "b_h") {
      for (float& x : canonical.data[k]) x = 0.0f;
    }
  }
  auto m = import_as(s, SLSTM_FORMAT_CANONICAL, canonical);
  auto back = import_as(s, SLSTM_FORMAT_TF, export_as(m.get(), s, SLSTM_FORMAT_TF));
  const Tensors again = export_as(back.get(), s, SLSTM_FORMAT_CANONICAL);
  for (std::size_t k = 0; k < canonical.data.size(); ++k) {
    INFO("canonical tensor " << k);
    CHECK(t::bitwise_equal(again.data[k], canonical.data[k]));
  }
}

TEST_CASE("TF bidirectional: the fw/ tensors, then the bw/ tensors", "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{with_direction(lstm(1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  // Canonical forward: W_x = 1..4, W_h = 5..8, b = 9..12; reverse: 13..16, 17..20, 21..24.
  auto m = counting_model(s);
  Tensors tf = export_as(m.get(), s, SLSTM_FORMAT_TF);
  CHECK(tf.at(0, "fw/kernel") == floats({1, 3, 2, 4, 5, 7, 6, 8}));
  CHECK(tf.at(0, "fw/bias") == floats({9, 11, 10, 12}));
  CHECK(tf.at(0, "bw/kernel") == floats({13, 15, 14, 16, 17, 19, 18, 20}));
  CHECK(tf.at(0, "bw/bias") == floats({21, 23, 22, 24}));
}

TEST_CASE("Keras GRU reset_after: kernel columns z, r, h and bias [2, 3H] = [b_x; b_h]",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{gru(1, 1)};
  // Canonical (r, z, n): W_x = 1..3, W_h = 4..6, b_x = 7..9, b_h = 10..12.
  auto m = counting_model(s);
  Tensors keras = export_as(m.get(), s, SLSTM_FORMAT_KERAS);
  CHECK(keras.at(0, "kernel") == floats({2, 1, 3}));
  CHECK(keras.at(0, "recurrent_kernel") == floats({5, 4, 6}));
  CHECK(keras.at(0, "bias") == floats({8, 7, 9, 11, 10, 12}));
  CHECK(std::vector<std::int64_t>(keras.info[2].shape, keras.info[2].shape + keras.info[2].ndim) ==
        std::vector<std::int64_t>{2, 3});
}

TEST_CASE("Keras GRU reset-before: bias [3H] holds b_x + b_h", "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{gru(1, 0)};
  auto m = counting_model(s);
  Tensors keras = export_as(m.get(), s, SLSTM_FORMAT_KERAS);
  CHECK(keras.at(0, "bias") == floats({8 + 11, 7 + 10, 9 + 12}));
}

TEST_CASE("Keras bidirectional: the forward/ layer's tensors, then the backward/ layer's",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{with_direction(gru(1, 1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto m = counting_model(s);
  Tensors keras = export_as(m.get(), s, SLSTM_FORMAT_KERAS);
  REQUIRE(keras.info.size() == 6);
  CHECK(keras.at(0, "forward/kernel") == floats({2, 1, 3}));
  CHECK(keras.at(0, "backward/kernel") == floats({14, 13, 15}));
  CHECK(keras.at(0, "backward/bias") == floats({20, 19, 21, 23, 22, 24}));
}

TEST_CASE("Keras CuDNNGRU: the numbers tf_keras' own converter gives for a reset-after GRU",
          "[formats][cells][path-independent]") {
  // Expected values: the canonical weights below in Keras GRU(reset_after=True) layout
  // converted to CuDNNGRU by tf_keras' _convert_rnn_weights (saving/legacy/hdf5_format.py):
  // column blocks z, r, h; each input block read in C order is cuDNN's W_q [H, I], each
  // recurrent block is W_h,q itself; bias [6H] = [b_x; b_h] in z, r, h order.
  Stack s;
  s.input_size = 2;
  s.layers = Layers{gru(2, 1)};
  // Canonical (r, z, n): W_x [6, 2] = 1..12, W_h [6, 2] = 13..24, b_x = 25..30, b_h = 31..36.
  auto m = counting_model(s);
  Tensors k = export_as(m.get(), s, SLSTM_FORMAT_KERAS_CUDNN);
  CHECK(k.at(0, "kernel") == floats({5, 6, 1, 2, 9, 10, 7, 8, 3, 4, 11, 12}));
  CHECK(k.at(0, "recurrent_kernel") == floats({17, 18, 13, 14, 21, 22, 19, 20, 15, 16, 23, 24}));
  CHECK(k.at(0, "bias") == floats({27, 28, 25, 26, 29, 30, 33, 34, 31, 32, 35, 36}));
}

TEST_CASE("cuDNN GRU: W, R, bW, bR are W_x, W_h, b_x, b_h (linear layers r, z, h), _reverse "
          "after the forward set",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{with_direction(gru(1, 1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto m = counting_model(s);
  Tensors cudnn = export_as(m.get(), s, SLSTM_FORMAT_CUDNN);
  CHECK(cudnn.at(0, "W") == floats({1, 2, 3}));
  CHECK(cudnn.at(0, "R") == floats({4, 5, 6}));
  CHECK(cudnn.at(0, "bW") == floats({7, 8, 9}));
  CHECK(cudnn.at(0, "bR") == floats({10, 11, 12}));
  CHECK(cudnn.at(0, "W_reverse") == floats({13, 14, 15}));
  CHECK(cudnn.at(0, "bR_reverse") == floats({22, 23, 24}));
}

TEST_CASE("cuDNN's tensors are PyTorch's for every stack both express (PyTorch's golden "
          "numbers cover cuDNN)",
          "[formats][cells][path-independent]") {
  const std::size_t pt = column_of(SLSTM_FORMAT_PYTORCH), cudnn = column_of(SLSTM_FORMAT_CUDNN);
  int checked = 0;
  for (const Variant& v : variants()) {
    if (*v.refused[pt] != '\0' || *v.refused[cudnn] != '\0') continue;
    INFO(v.name);
    ++checked;
    auto m = random_model(v.stack, 31);
    const Tensors a = export_as(m.get(), v.stack, SLSTM_FORMAT_PYTORCH);
    const Tensors b = export_as(m.get(), v.stack, SLSTM_FORMAT_CUDNN);
    REQUIRE(a.data.size() == b.data.size());
    for (std::size_t k = 0; k < a.data.size(); ++k) {
      CHECK(t::bitwise_equal(a.data[k], b.data[k]));
      CHECK(a.info[k].direction == b.info[k].direction);
    }
  }
  CHECK(checked >= 4);
}

TEST_CASE("Keras and TF kernels are the transposed W_x and W_h for layers wider than a copy "
          "tile (H = 70, I = 45)",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 45;
  s.layers = Layers{with_direction(gru(70, 0), SLSTM_DIRECTION_BIDIRECTIONAL), lstm(70)};
  auto m = random_model(s, 17);
  const Tensors c = export_as(m.get(), s, SLSTM_FORMAT_CANONICAL);
  const std::size_t H = 70, I0 = 45, I1 = 140;
  // Keras GRU (layer 0, reverse direction): kernel[k][j] with column j = block(z, r, h) * H + u.
  Tensors keras = export_as(m.get(), s, SLSTM_FORMAT_KERAS);
  const std::vector<float>& w_x = c.data[4];  // reverse W_x [3H, I0]
  const std::vector<float>& w_h = c.data[5];  // reverse W_h [3H, H]
  const std::vector<float>& kernel = keras.at(0, "backward/kernel");
  const std::vector<float>& recurrent = keras.at(0, "backward/recurrent_kernel");
  const std::size_t keras_block[3] = {1, 0, 2};  // canonical r, z, n -> Keras z, r, h
  bool same = true;
  for (std::size_t q = 0; q < 3; ++q) {
    for (std::size_t u = 0; u < H; ++u) {
      const std::size_t row = q * H + u, col = keras_block[q] * H + u;
      for (std::size_t k = 0; k < I0; ++k) {
        same = same && kernel[k * 3 * H + col] == w_x[row * I0 + k];
      }
      for (std::size_t k = 0; k < H; ++k) {
        same = same && recurrent[k * 3 * H + col] == w_h[row * H + k];
      }
    }
  }
  CHECK(same);
  // TF LSTMCell (layer 1): kernel [I1 + H, 4H], x rows then h rows, columns i, j, f, o.
  Tensors tf = export_as(m.get(), s, SLSTM_FORMAT_TF);
  const std::vector<float>& tk = tf.at(1, "kernel");
  const std::vector<float>& l1_x = c.data[8];  // layer 1 W_x [4H, I1]
  const std::vector<float>& l1_h = c.data[9];  // layer 1 W_h [4H, H]
  const std::size_t tf_block[4] = {0, 2, 1, 3};  // canonical i, f, g, o -> TF i, j, f, o
  same = true;
  for (std::size_t q = 0; q < 4; ++q) {
    for (std::size_t u = 0; u < H; ++u) {
      const std::size_t row = q * H + u, col = tf_block[q] * H + u;
      for (std::size_t k = 0; k < I1; ++k) {
        same = same && tk[k * 4 * H + col] == l1_x[row * I1 + k];
      }
      for (std::size_t k = 0; k < H; ++k) {
        same = same && tk[(I1 + k) * 4 * H + col] == l1_h[row * H + k];
      }
    }
  }
  CHECK(same);
  // And they import back to the same W_x and W_h (the GRU's biases are folded: see above).
  for (slstm_weight_format format : {SLSTM_FORMAT_KERAS, SLSTM_FORMAT_TF}) {
    INFO(name_of(format));
    auto back = import_as(s, format, export_as(m.get(), s, format));
    const Tensors again = export_as(back.get(), s, SLSTM_FORMAT_CANONICAL);
    for (std::size_t k : {0, 1, 4, 5, 8, 9}) CHECK(t::bitwise_equal(again.data[k], c.data[k]));
  }
}

TEST_CASE("a forward BasicLSTMCell layer in a mixed stack is written exactly as in a basic stack",
          "[formats][cells][path-independent]") {
  // Layer 0 of "lstm bidirectional" is a plain LSTM: its tensors in every format are those of
  // the same layer in a hidden_sizes model with the same weights.
  Stack mixed = after_plain(with_direction(lstm(4), SLSTM_DIRECTION_BIDIRECTIONAL));
  Stack basic;
  basic.input_size = 3;
  basic.layers = Layers{lstm(5)};
  auto m = random_model(mixed, 9);
  const Tensors canonical = export_as(m.get(), mixed, SLSTM_FORMAT_CANONICAL);
  Tensors first = poisoned_tensors(basic, SLSTM_FORMAT_CANONICAL);
  for (std::size_t k = 0; k < first.data.size(); ++k) first.data[k] = canonical.data[k];
  auto b = import_as(basic, SLSTM_FORMAT_CANONICAL, first);
  for (slstm_weight_format format : kFormats) {
    INFO(name_of(format));
    const Tensors from_mixed = export_as(m.get(), mixed, format);
    const Tensors from_basic = export_as(b.get(), basic, format);
    for (std::size_t k = 0; k < from_basic.data.size(); ++k) {
      CHECK(t::bitwise_equal(from_mixed.data[k], from_basic.data[k]));
    }
  }
}

TEST_CASE("formats without forget_bias fold it once into every LSTM direction's f block",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.forget_bias = 0.5f;
  s.layers = Layers{with_direction(lstm(1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto m = counting_model(s);
  // b (i, f, g, o) forward 9..12, reverse 21..24: f gets + 0.5 in both directions.
  Tensors onnx = export_as(m.get(), s, SLSTM_FORMAT_ONNX);
  CHECK(onnx.at(0, "B") == floats({9, 12, 10.5f, 11, 0, 0, 0, 0, 21, 24, 22.5f, 23, 0, 0, 0, 0}));
  Tensors pt = export_as(m.get(), s, SLSTM_FORMAT_PYTORCH);
  CHECK(pt.at(0, "bias_ih_reverse") == floats({21, 22.5f, 23, 24}));
  Tensors tf = export_as(m.get(), s, SLSTM_FORMAT_TF);  // TF keeps forget_bias apart
  CHECK(tf.at(0, "bw/bias") == floats({21, 23, 22, 24}));
}

// ---- slstm_format_tensors ----------------------------------------------------------------------

TEST_CASE("slstm_format_tensors lists each format's tensors for a bidirectional LSTMP and a GRU",
          "[formats][cells][path-independent]") {
  // PyTorch, TF and CANONICAL express both layers; the stack: I = 3, bidirectional LSTM
  // H = 4 P = 2 (output 4), then GRU H = 5 (reset-after for PyTorch, reset-before for TF).
  slstm_layer_config lstmp = with_direction(lstm(4), SLSTM_DIRECTION_BIDIRECTIONAL);
  lstmp.proj_size = 2;
  Stack pt;
  pt.input_size = 3;
  pt.layers = Layers{lstmp, gru(5, 1)};
  check_infos(pt, SLSTM_FORMAT_PYTORCH,
              {{"weight_ih", 0, 0, {16, 3}},
               {"weight_hh", 0, 0, {16, 2}},
               {"bias_ih", 0, 0, {16}},
               {"bias_hh", 0, 0, {16}},
               {"weight_hr", 0, 0, {2, 4}},
               {"weight_ih_reverse", 0, 1, {16, 3}},
               {"weight_hh_reverse", 0, 1, {16, 2}},
               {"bias_ih_reverse", 0, 1, {16}},
               {"bias_hh_reverse", 0, 1, {16}},
               {"weight_hr_reverse", 0, 1, {2, 4}},
               {"weight_ih", 1, 0, {15, 4}},
               {"weight_hh", 1, 0, {15, 5}},
               {"bias_ih", 1, 0, {15}},
               {"bias_hh", 1, 0, {15}}});
  check_infos(pt, SLSTM_FORMAT_CANONICAL,
              {{"W_x", 0, 0, {16, 3}},
               {"W_h", 0, 0, {16, 2}},
               {"b", 0, 0, {16}},
               {"W_proj", 0, 0, {2, 4}},
               {"W_x", 0, 1, {16, 3}},
               {"W_h", 0, 1, {16, 2}},
               {"b", 0, 1, {16}},
               {"W_proj", 0, 1, {2, 4}},
               {"W_x", 1, 0, {15, 4}},
               {"W_h", 1, 0, {15, 5}},
               {"b_x", 1, 0, {15}},
               {"b_h", 1, 0, {15}}});
  Stack tf = pt;
  tf.layers[0].peepholes = 1;
  tf.layers[1] = gru(5, 0);
  check_infos(tf, SLSTM_FORMAT_TF,
              {{"fw/kernel", 0, 0, {5, 16}},
               {"fw/bias", 0, 0, {16}},
               {"fw/w_i_diag", 0, 0, {4}},
               {"fw/w_f_diag", 0, 0, {4}},
               {"fw/w_o_diag", 0, 0, {4}},
               {"fw/projection/kernel", 0, 0, {4, 2}},
               {"bw/kernel", 0, 1, {5, 16}},
               {"bw/bias", 0, 1, {16}},
               {"bw/w_i_diag", 0, 1, {4}},
               {"bw/w_f_diag", 0, 1, {4}},
               {"bw/w_o_diag", 0, 1, {4}},
               {"bw/projection/kernel", 0, 1, {4, 2}},
               {"gates/kernel", 1, 0, {9, 10}},
               {"gates/bias", 1, 0, {10}},
               {"candidate/kernel", 1, 0, {9, 5}},
               {"candidate/bias", 1, 0, {5}}});
}

TEST_CASE("slstm_format_tensors with infos NULL gives the count alone, whatever the capacity",
          "[formats][cells][path-independent]") {
  Stack st;
  st.input_size = 3;
  st.layers = Layers{lstm(4), gru(5, 1)};
  const slstm_model_config cfg = config_of(st);
  for (const std::size_t capacity : {std::size_t{0}, std::size_t{5}, std::size_t{1000}}) {
    std::size_t n = 77;
    INFO("capacity " << capacity);
    REQUIRE(slstm_format_tensors(&cfg, SLSTM_FORMAT_PYTORCH, nullptr, capacity, &n) ==
            SLSTM_OK);
    CHECK(n == 8);
  }
}

TEST_CASE("slstm_format_tensors lists ONNX, Keras and cuDNN tensors for bidirectional and GRU "
          "layers",
          "[formats][cells][path-independent]") {
  slstm_layer_config peep = with_direction(lstm(2), SLSTM_DIRECTION_BIDIRECTIONAL);
  peep.peepholes = 1;
  Stack onnx;
  onnx.input_size = 3;
  onnx.layers = Layers{peep, with_direction(gru(5, 0), SLSTM_DIRECTION_REVERSE)};
  check_infos(onnx, SLSTM_FORMAT_ONNX,
              {{"W", 0, -1, {2, 8, 3}},
               {"R", 0, -1, {2, 8, 2}},
               {"B", 0, -1, {2, 16}},
               {"P", 0, -1, {2, 6}},
               {"W", 1, 0, {1, 15, 4}},
               {"R", 1, 0, {1, 15, 5}},
               {"B", 1, 0, {1, 30}}});
  Stack keras;
  keras.input_size = 3;
  keras.layers = Layers{with_direction(gru(2, 1), SLSTM_DIRECTION_BIDIRECTIONAL), gru(5, 0)};
  check_infos(keras, SLSTM_FORMAT_KERAS,
              {{"forward/kernel", 0, 0, {3, 6}},
               {"forward/recurrent_kernel", 0, 0, {2, 6}},
               {"forward/bias", 0, 0, {2, 6}},
               {"backward/kernel", 0, 1, {3, 6}},
               {"backward/recurrent_kernel", 0, 1, {2, 6}},
               {"backward/bias", 0, 1, {2, 6}},
               {"kernel", 1, 0, {4, 15}},
               {"recurrent_kernel", 1, 0, {5, 15}},
               {"bias", 1, 0, {15}}});
  Stack cudnn;
  cudnn.input_size = 3;
  cudnn.layers = Layers{with_direction(lstm(2), SLSTM_DIRECTION_BIDIRECTIONAL), gru(5, 1)};
  check_infos(cudnn, SLSTM_FORMAT_CUDNN,
              {{"W", 0, 0, {8, 3}},
               {"R", 0, 0, {8, 2}},
               {"bW", 0, 0, {8}},
               {"bR", 0, 0, {8}},
               {"W_reverse", 0, 1, {8, 3}},
               {"R_reverse", 0, 1, {8, 2}},
               {"bW_reverse", 0, 1, {8}},
               {"bR_reverse", 0, 1, {8}},
               {"W", 1, 0, {15, 4}},
               {"R", 1, 0, {15, 5}},
               {"bW", 1, 0, {15}},
               {"bR", 1, 0, {15}}});
  Stack keras_cudnn;
  keras_cudnn.input_size = 3;
  keras_cudnn.layers = Layers{with_direction(lstm(2), SLSTM_DIRECTION_BIDIRECTIONAL)};
  check_infos(keras_cudnn, SLSTM_FORMAT_KERAS_CUDNN,
              {{"forward/kernel", 0, 0, {3, 8}},
               {"forward/recurrent_kernel", 0, 0, {2, 8}},
               {"forward/bias", 0, 0, {16}},
               {"backward/kernel", 0, 1, {3, 8}},
               {"backward/recurrent_kernel", 0, 1, {2, 8}},
               {"backward/bias", 0, 1, {16}}});
}

// ---- Bad values and shapes ---------------------------------------------------------------------

TEST_CASE("import refuses a non-finite value in a new tensor, naming it", "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 2;
  slstm_layer_config l = lstm(3);
  l.proj_size = 2;
  s.layers = Layers{lstm(2), l};
  auto m = random_model(s, 4);
  Tensors pt = export_as(m.get(), s, SLSTM_FORMAT_PYTORCH);
  pt.at(1, "weight_hr")[5] = std::numeric_limits<float>::quiet_NaN();
  slstm_model* out = nullptr;
  CHECK(try_import(s, SLSTM_FORMAT_PYTORCH, pt, &out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(out == nullptr);
  CHECK_THAT(slstm_last_error(),
             Catch::Contains("tensors[8] (layer 1 weight_hr): element 5 is NaN"));
}

TEST_CASE("import refuses biases whose sum overflows float32, naming both tensors and elements",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{with_direction(lstm(1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto m = random_model(s, 4);
  Tensors onnx = export_as(m.get(), s, SLSTM_FORMAT_ONNX);
  // [2, 8]: reverse Wb at 8, reverse Rb at 12, gates i, o, f, c: the f gate's at 10 and 14
  // (the elements as the caller's tensor has them, not in the library's i, f, g, o order).
  std::vector<float>& b = onnx.at(0, "B");
  b[10] = 3e38f;
  b[14] = 3e38f;
  slstm_model* out = nullptr;
  CHECK(try_import(s, SLSTM_FORMAT_ONNX, onnx, &out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(out == nullptr);
  CHECK_THAT(slstm_last_error(),
             Catch::Contains("layer 0: the bias is the sum of B and B, and B[10] + B[14] "
                             "overflows float32 (tensors[2] + tensors[2], reverse direction; "
                             "flat indices)"));
}

TEST_CASE("import refuses a new tensor of the wrong shape, naming it and the expected shape",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 2;
  slstm_layer_config l = lstm(3);
  l.peepholes = 1;
  s.layers = Layers{l};
  auto m = random_model(s, 4);
  Tensors onnx = export_as(m.get(), s, SLSTM_FORMAT_ONNX);
  onnx.info[3].shape[1] = 8;  // P is [1, 9]
  slstm_model* out = nullptr;
  CHECK(try_import(s, SLSTM_FORMAT_ONNX, onnx, &out) == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(out == nullptr);
  CHECK_THAT(slstm_last_error(),
             Catch::Contains("tensors[3] (layer 0 P): expected shape [1, 9], got [1, 8]"));
}

TEST_CASE("import and export of a stack beyond BasicLSTMCell check num_tensors against the "
          "format's list",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 2;
  s.layers = Layers{with_direction(gru(3, 1), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto m = random_model(s, 4);
  Tensors pt = export_as(m.get(), s, SLSTM_FORMAT_PYTORCH);
  pt.info.pop_back();
  pt.data.pop_back();
  slstm_model* out = nullptr;
  CHECK(try_import(s, SLSTM_FORMAT_PYTORCH, pt, &out) == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK_THAT(slstm_last_error(), Catch::Contains("num_tensors: expected 8") &&
                                     Catch::Contains("got 7"));
  auto o = pt.out();
  CHECK(slstm_model_export(m.get(), SLSTM_FORMAT_PYTORCH, o.data(), o.size()) ==
        SLSTM_ERR_SHAPE_MISMATCH);
  CHECK_THAT(slstm_last_error(), Catch::Contains("num_tensors: expected 8"));
}

TEST_CASE("export refuses a GRU whose folded b_x + b_h overflows float32 and writes nothing",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.layers = Layers{lstm(2), with_direction(gru(2, 0), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto random = random_model(s, 4);
  Tensors canonical = export_as(random.get(), s, SLSTM_FORMAT_CANONICAL);
  // Layer 1's tensors: forward W_x, W_h, b_x, b_h, then reverse; element 4 of the reverse
  // direction's b_x and b_h.
  std::size_t reverse_b_x = 0;
  for (std::size_t k = 0; k < canonical.info.size(); ++k) {
    if (canonical.info[k].layer == 1 && canonical.info[k].direction == 1 &&
        std::string(canonical.info[k].name) == "b_x") {
      reverse_b_x = k;
    }
  }
  REQUIRE(reverse_b_x > 0);
  canonical.data[reverse_b_x][4] = 3e38f;
  canonical.data[reverse_b_x + 1][4] = 3e38f;
  auto m = import_as(s, SLSTM_FORMAT_CANONICAL, canonical);
  for (slstm_weight_format format : {SLSTM_FORMAT_TF, SLSTM_FORMAT_KERAS}) {
    INFO(name_of(format));
    Tensors buf = poisoned_tensors(s, format);
    auto out = buf.out();
    CHECK(slstm_model_export(m.get(), format, out.data(), out.size()) == SLSTM_ERR_OUT_OF_RANGE);
    CHECK_THAT(slstm_last_error(), Catch::Contains("b_x + b_h") &&
                                       Catch::Contains("layer 1 (reverse direction) element 4"));
    for (const auto& d : buf.data) CHECK(t::count_poison(d) == d.size());
  }
  // ONNX keeps b_h apart: nothing to fold.
  export_as(m.get(), s, SLSTM_FORMAT_ONNX);
}

TEST_CASE("export refuses a reverse direction whose folded forget_bias overflows float32 and "
          "writes nothing",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 1;
  s.forget_bias = 3e38f;
  s.layers = Layers{with_direction(lstm(2), SLSTM_DIRECTION_BIDIRECTIONAL)};
  Tensors canonical = poisoned_tensors(s, SLSTM_FORMAT_CANONICAL);
  for (auto& d : canonical.data) {
    for (float& x : d) x = 0.0f;
  }
  canonical.data[5][3] = 3e38f;  // the reverse direction's b, f block (rows 2-3), unit 1
  auto m = import_as(s, SLSTM_FORMAT_CANONICAL, canonical);
  for (slstm_weight_format format : {SLSTM_FORMAT_PYTORCH, SLSTM_FORMAT_ONNX, SLSTM_FORMAT_CUDNN,
                                     SLSTM_FORMAT_KERAS, SLSTM_FORMAT_KERAS_CUDNN}) {
    INFO(name_of(format));
    Tensors buf = poisoned_tensors(s, format);
    auto out = buf.out();
    CHECK(slstm_model_export(m.get(), format, out.data(), out.size()) == SLSTM_ERR_OUT_OF_RANGE);
    CHECK_THAT(slstm_last_error(), Catch::Contains("forget_bias") &&
                                       Catch::Contains("layer 0 (reverse direction) unit 1"));
    for (const auto& d : buf.data) CHECK(t::count_poison(d) == d.size());
  }
  export_as(m.get(), s, SLSTM_FORMAT_TF);  // TF keeps forget_bias apart: nothing to fold
}

TEST_CASE("folding a reset-before GRU's b_h into b_x (TF, Keras) keeps its outputs within "
          "rounding",
          "[formats][cells][path-independent]") {
  Stack s;
  s.input_size = 3;
  s.layers = Layers{gru(4, 0), with_direction(gru(3, 0), SLSTM_DIRECTION_BIDIRECTIONAL)};
  auto m = random_model(s, 11);
  auto folded = import_as(s, SLSTM_FORMAT_TF, export_as(m.get(), s, SLSTM_FORMAT_TF));
  const std::int64_t B = 2, T = 5;
  const auto input = t::random_vector(static_cast<std::size_t>(B * T * 3), 12);
  t::Call call = t::call_of(B, T, input);
  slstm_session_options opt = t::options(B, T);
  opt.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &opt, &raw) == SLSTM_OK);
  t::Session a(raw);
  REQUIRE(slstm_session_create(folded.get(), &opt, &raw) == SLSTM_OK);
  t::Session b(raw);
  const auto ra = t::forward_ok(a.get(), m.get(), call);
  const auto rb = t::forward_ok(b.get(), folded.get(), call);
  CHECK(t::rel_err(rb.output, ra.output) <= 1e-6);
  CHECK(t::rel_err(rb.final_state, ra.final_state) <= 1e-6);
}
