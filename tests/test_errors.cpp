// Bad input: every argument the API checks gets the right status, a message naming it, and
// writes nothing (outputs are poisoned beforehand and must stay poisoned).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "support.hpp"

using Catch::Matchers::Contains;

namespace {

const std::vector<std::int64_t> kHidden = {4, 3};
constexpr std::int64_t kD = 5, kB = 2, kT = 3;

void expect_error(slstm_status got, slstm_status want, const std::string& names) {
  INFO("last error: " << slstm_last_error());
  CHECK(got == want);
  CHECK_THAT(std::string(slstm_last_error()), Contains(names));
}

// A valid forward call whose output buffers are poisoned; each test breaks one thing.
struct Fwd {
  t::Model model = t::random_model(kD, kHidden, 301);
  t::Session session = t::session(model.get(), kB, kT);
  std::vector<float> x = t::random_vector(kB * kT * kD, 302);
  std::vector<float> init = t::random_vector(t::state_count(model.get(), kB), 303);
  std::vector<std::int32_t> lengths = {3, 1};
  std::vector<float> out = t::poisoned(kB * kT * 3);
  std::vector<float> fin = t::poisoned(t::state_count(model.get(), kB));
  slstm_forward_args a{};
  Fwd() {
    slstm_forward_args_init(&a);
    a.batch = kB;
    a.time = kT;
    a.input = x.data();
    a.input_count = x.size();
    a.sequence_lengths = lengths.data();
    a.sequence_lengths_count = lengths.size();
    a.initial_state = init.data();
    a.initial_state_count = init.size();
    a.output = out.data();
    a.output_count = out.size();
    a.final_state = fin.data();
    a.final_state_count = fin.size();
  }
  slstm_status run() { return slstm_session_forward(session.get(), &a); }
  void expect(slstm_status want, const std::string& names) {
    expect_error(run(), want, names);
    CHECK(t::count_poison(out) == out.size());
    CHECK(t::count_poison(fin) == fin.size());
  }
};

slstm_model_config config(const std::vector<std::int64_t>& hidden, std::int64_t D = kD) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = D;
  cfg.num_layers = static_cast<std::int32_t>(hidden.size());
  cfg.hidden_sizes = hidden.data();
  return cfg;
}

slstm_model* const kSentinelModel = reinterpret_cast<slstm_model*>(0x1);
slstm_session* const kSentinelSession = reinterpret_cast<slstm_session*>(0x1);

}  // namespace

TEST_CASE("a valid call passes the checks the bad-input cases below break", "[errors]") {
  Fwd f;
  REQUIRE(f.run() == SLSTM_OK);
  CHECK(t::count_poison(f.out) == 0);
}

// ---- forward ------------------------------------------------------------------------------

TEST_CASE("forward rejects NULL session and NULL args", "[errors][forward]") {
  Fwd f;
  expect_error(slstm_session_forward(nullptr, &f.a), SLSTM_ERR_INVALID_ARGUMENT, "session");
  expect_error(slstm_session_forward(f.session.get(), nullptr), SLSTM_ERR_INVALID_ARGUMENT,
               "args");
  CHECK(t::count_poison(f.out) == f.out.size());
}

// (Newer and older struct sizes: test_abi_structs.cpp.)
TEST_CASE("forward rejects an uninitialised args struct", "[errors][forward][abi]") {
  Fwd f;
  f.a.struct_size = 0;
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "args->struct_size");
}

TEST_CASE("forward rejects an unknown layout", "[errors][forward]") {
  Fwd f;
  f.a.layout = static_cast<slstm_layout>(7);
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "layout");
}

TEST_CASE("forward rejects an unknown data_type, and 16-bit input and output on a CPU session",
          "[errors][forward]") {
  Fwd f;
  f.a.data_type = static_cast<slstm_data_type>(9);
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "data_type: unknown value 9");
  for (slstm_data_type type : {SLSTM_DATA_BF16, SLSTM_DATA_F16}) {
    f.a.data_type = type;
    f.expect(SLSTM_ERR_UNSUPPORTED, type == SLSTM_DATA_BF16 ? "data_type SLSTM_DATA_BF16"
                                                            : "data_type SLSTM_DATA_F16");
  }
}

TEST_CASE("forward rejects batch < 1 and time < 0", "[errors][forward]") {
  Fwd f;
  f.a.batch = 0;
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "batch");
  f.a.batch = -3;
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "batch");
  f.a.batch = kB;
  f.a.time = -1;
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "time");
}

TEST_CASE("forward rejects batch or time above the session's maxima", "[errors][forward]") {
  Fwd f;
  f.a.batch = kB + 1;
  f.expect(SLSTM_ERR_OUT_OF_RANGE, "max_batch");
  f.a.batch = kB;
  f.a.time = kT + 1;
  f.expect(SLSTM_ERR_OUT_OF_RANGE, "max_time");
}

TEST_CASE("forward rejects a NULL input when time > 0", "[errors][forward]") {
  Fwd f;
  f.a.input = nullptr;
  f.a.input_count = 0;
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "input");
}

TEST_CASE("forward rejects every buffer count that does not match the shapes",
          "[errors][forward]") {
  SECTION("input_count") {
    Fwd f;
    f.a.input_count -= 1;
    f.expect(SLSTM_ERR_SHAPE_MISMATCH, "input_count");
  }
  SECTION("sequence_lengths_count") {
    Fwd f;
    f.a.sequence_lengths_count = 1;
    f.expect(SLSTM_ERR_SHAPE_MISMATCH, "sequence_lengths_count");
  }
  SECTION("initial_state_count") {
    Fwd f;
    f.a.initial_state_count += 1;
    f.expect(SLSTM_ERR_SHAPE_MISMATCH, "initial_state_count");
  }
  SECTION("output_count") {
    Fwd f;
    f.a.output_count = 1;
    f.expect(SLSTM_ERR_SHAPE_MISMATCH, "output_count");
  }
  SECTION("final_state_count") {
    Fwd f;
    f.a.final_state_count = 0;
    f.expect(SLSTM_ERR_SHAPE_MISMATCH, "final_state_count");
  }
  SECTION("a count without its buffer") {
    Fwd f;
    f.a.initial_state = nullptr;
    f.expect(SLSTM_ERR_SHAPE_MISMATCH, "initial_state");
  }
}

TEST_CASE("forward rejects sequence lengths below 0 or above time", "[errors][forward][lengths]") {
  Fwd f;
  f.lengths = {-1, 2};
  f.a.sequence_lengths = f.lengths.data();
  f.expect(SLSTM_ERR_OUT_OF_RANGE, "sequence_lengths[0]");
  f.lengths = {3, kT + 1};
  f.expect(SLSTM_ERR_OUT_OF_RANGE, "sequence_lengths[1]");
}

TEST_CASE("forward rejects outputs that overlap inputs or each other", "[errors][forward]") {
  SECTION("output over input") {
    Fwd f;
    std::vector<float> shared(f.x.size() + f.out.size());
    std::copy(f.x.begin(), f.x.end(), shared.begin());
    f.a.input = shared.data();
    f.a.output = shared.data() + 1;
    expect_error(f.run(), SLSTM_ERR_ALIASING, "output overlaps input");
  }
  SECTION("final_state over output") {
    Fwd f;
    std::vector<float> shared = t::poisoned(f.out.size() + f.fin.size());
    f.a.output = shared.data();
    f.a.final_state = shared.data() + 2;
    expect_error(f.run(), SLSTM_ERR_ALIASING, "overlaps");
    CHECK(t::count_poison(shared) == shared.size());
  }
  SECTION("final_state partly over initial_state") {
    Fwd f;
    std::vector<float> shared(f.init.size() + 1, 0.0f);
    f.a.initial_state = shared.data();
    f.a.final_state = shared.data() + 1;
    expect_error(f.run(), SLSTM_ERR_ALIASING, "initial_state");
  }
}

TEST_CASE("forward rejects device memory on a CPU session", "[errors][forward]") {
  Fwd f;
  f.a.memory = SLSTM_MEMORY_DEVICE;
  f.expect(SLSTM_ERR_UNSUPPORTED, "SLSTM_MEMORY_DEVICE");
  f.a.memory = static_cast<slstm_memory>(5);
  f.expect(SLSTM_ERR_INVALID_ARGUMENT, "memory");
}

TEST_CASE("step rejects a NULL input and mismatched counts, naming its own arguments", "[errors][step]") {
  Fwd f;
  std::vector<float> out = t::poisoned(kB * 3);
  auto st = f.fin;
  expect_error(slstm_session_step(f.session.get(), kB, nullptr, 0, nullptr, 0, out.data(),
                                  out.size(), nullptr, 0),
               SLSTM_ERR_INVALID_ARGUMENT, "input");
  expect_error(slstm_session_step(f.session.get(), kB, f.x.data(), kB * kD + 1, nullptr, 0,
                                  out.data(), out.size(), nullptr, 0),
               SLSTM_ERR_SHAPE_MISMATCH, "input_count");
  expect_error(slstm_session_step(f.session.get(), kB, f.x.data(), kB * kD, nullptr, 0,
                                  out.data(), out.size() + 1, nullptr, 0),
               SLSTM_ERR_SHAPE_MISMATCH, "output_count");
  expect_error(slstm_session_step(nullptr, kB, f.x.data(), kB * kD, nullptr, 0, out.data(),
                                  out.size(), nullptr, 0),
               SLSTM_ERR_INVALID_ARGUMENT, "session");
  expect_error(slstm_session_step(f.session.get(), kB, f.x.data(), kB * kD, f.init.data(),
                                  f.init.size() - 1, out.data(), out.size(), nullptr, 0),
               SLSTM_ERR_SHAPE_MISMATCH, "state_count");
  CHECK_THAT(std::string(slstm_last_error()), Catch::Matchers::StartsWith("state_count"));
  expect_error(slstm_session_step(f.session.get(), kB, f.x.data(), kB * kD, f.init.data(),
                                  f.init.size(), out.data(), out.size(), st.data(), 3),
               SLSTM_ERR_SHAPE_MISMATCH, "new_state_count");
  CHECK(t::count_poison(out) == out.size());
}

// ---- model creation -----------------------------------------------------------------------

TEST_CASE("model creation rejects a NULL or uninitialised config", "[errors][model]") {
  slstm_model* m = kSentinelModel;
  expect_error(slstm_model_create_random(nullptr, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config");
  slstm_model_config cfg = config(kHidden);
  cfg.struct_size = 4;
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->struct_size");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects a NULL out_model", "[errors][model]") {
  const slstm_model_config cfg = config(kHidden);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, nullptr), SLSTM_ERR_INVALID_ARGUMENT,
               "out_model");
}

TEST_CASE("model creation rejects sizes below 1", "[errors][model]") {
  slstm_model* m = kSentinelModel;
  slstm_model_config cfg = config(kHidden, 0);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->input_size");
  cfg = config(kHidden);
  cfg.num_layers = 0;
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->num_layers");
  const std::vector<std::int64_t> bad = {4, 0};
  cfg = config(bad);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->hidden_sizes[1]");
  const std::vector<std::int64_t> negative = {-2};
  cfg = config(negative);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->hidden_sizes[0]");
  cfg = config(kHidden);
  cfg.hidden_sizes = nullptr;
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->hidden_sizes");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects a non-finite forget_bias or scale", "[errors][model]") {
  slstm_model* m = kSentinelModel;
  slstm_model_config cfg = config(kHidden);
  cfg.forget_bias = std::numeric_limits<float>::quiet_NaN();
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "forget_bias");
  cfg.forget_bias = 1.0f;
  expect_error(slstm_model_create_random(&cfg, 1, -1.0f, &m), SLSTM_ERR_INVALID_ARGUMENT, "scale");
  expect_error(slstm_model_create_random(&cfg, 1, INFINITY, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "scale");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects sizes whose product overflows", "[errors][model][overflow]") {
  slstm_model* m = kSentinelModel;
  const std::vector<std::int64_t> huge = {std::int64_t{1} << 40};  // 4 * H * H overflows
  slstm_model_config cfg = config(huge);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_SIZE_OVERFLOW,
               "hidden_sizes");
  const std::vector<std::int64_t> wide = {std::int64_t{1} << 30};
  cfg = config(wide, SLSTM_MAX_EXTENT);  // 4 * H * D overflows
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_SIZE_OVERFLOW,
               "hidden_sizes");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation checks the tensors before it allocates the weights",
          "[errors][model][memory]") {
  // 4 * 2^20 * 2^20 floats of W_h = 16 TiB: allocating first would fail with OUT_OF_MEMORY
  // (or take minutes zero-filling a smaller model) before the cheap checks.
  slstm_model* m = kSentinelModel;
  const std::vector<std::int64_t> wide = {std::int64_t{1} << 20};
  const slstm_model_config cfg = config(wide, 8);
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, nullptr, 3, &m),
               SLSTM_ERR_INVALID_ARGUMENT, "tensors is NULL");
  const slstm_tensor one{};
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, &one, 1, &m),
               SLSTM_ERR_SHAPE_MISMATCH, "num_tensors");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects more layers than SLSTM_MAX_LAYERS before reading the sizes",
          "[errors][model]") {
  slstm_model* m = kSentinelModel;
  slstm_model_config cfg = config(kHidden);
  cfg.num_layers = SLSTM_MAX_LAYERS + 1;  // hidden_sizes has 2 entries: must not be read
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->num_layers");
  cfg.num_layers = std::numeric_limits<std::int32_t>::max();
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "SLSTM_MAX_LAYERS");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects sizes above SLSTM_MAX_EXTENT", "[errors][model]") {
  slstm_model* m = kSentinelModel;
  const std::vector<std::int64_t> too_wide = {SLSTM_MAX_EXTENT + 1};
  slstm_model_config cfg = config(too_wide);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->hidden_sizes[0]");
  cfg = config(kHidden, SLSTM_MAX_EXTENT + 1);
  expect_error(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "config->input_size");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation reports out of memory for weights too large to allocate",
          "[errors][model][memory]") {
  slstm_model* m = kSentinelModel;
  // W_x alone would be 4 * 2^16 * 2^40 floats = 2^60 bytes: more than any address space.
  const std::vector<std::int64_t> h = {std::int64_t{1} << 16};
  slstm_model_config cfg = config(h, SLSTM_MAX_EXTENT);
  const slstm_status st = slstm_model_create_random(&cfg, 1, 0.0f, &m);
  INFO(slstm_last_error());
  CHECK(st == SLSTM_ERR_OUT_OF_MEMORY);
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects an unknown weight format", "[errors][model][formats]") {
  slstm_model* m = kSentinelModel;
  const slstm_model_config cfg = config(kHidden);
  const slstm_tensor dummy{};
  expect_error(slstm_model_create(&cfg, static_cast<slstm_weight_format>(99), &dummy, 1, &m),
               SLSTM_ERR_INVALID_ARGUMENT, "format");
  std::int32_t n = 0;
  expect_error(slstm_format_tensors_per_layer(static_cast<slstm_weight_format>(99), &n),
               SLSTM_ERR_INVALID_ARGUMENT, "format");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects the wrong number of tensors or NULL tensors",
          "[errors][model][formats]") {
  slstm_model* m = kSentinelModel;
  const slstm_model_config cfg = config(kHidden);
  std::vector<slstm_tensor> ts(3);
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts.data(), 3, &m),
               SLSTM_ERR_SHAPE_MISMATCH, "num_tensors: expected 4");
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, nullptr, 4, &m),
               SLSTM_ERR_INVALID_ARGUMENT, "tensors");
  CHECK(m == kSentinelModel);
}

TEST_CASE("model creation rejects a weight tensor whose shape does not match the architecture",
          "[errors][model][formats]") {
  // TF layout for kHidden = {4, 3}, D = 5: kernel [9, 16], bias [16], kernel [7, 12], bias [12].
  const slstm_model_config cfg = config(kHidden);
  std::vector<float> buf(200, 0.1f);
  slstm_tensor ts[4] = {{buf.data(), 2, {9, 16, 0, 0}},
                        {buf.data(), 1, {16, 0, 0, 0}},
                        {buf.data(), 2, {7, 12, 0, 0}},
                        {buf.data(), 1, {12, 0, 0, 0}}};
  slstm_model* m = nullptr;
  REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &m) == SLSTM_OK);
  slstm_model_destroy(m);
  m = kSentinelModel;
  ts[2].shape[0] = 8;
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &m), SLSTM_ERR_SHAPE_MISMATCH,
               "tensors[2] (layer 1 kernel): expected shape [7, 12], got [8, 12]");
  ts[2].shape[0] = 7;
  ts[3].ndim = 2;
  ts[3].shape[1] = 1;
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &m), SLSTM_ERR_SHAPE_MISMATCH,
               "tensors[3] (layer 1 bias)");
  ts[3].ndim = 0;
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &m), SLSTM_ERR_SHAPE_MISMATCH,
               "ndim");
  ts[3].ndim = SLSTM_MAX_DIMS + 1;  // (its shape[] has SLSTM_MAX_DIMS entries: never read)
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &m), SLSTM_ERR_SHAPE_MISMATCH,
               "tensors[3] (layer 1 bias): ndim must be in 1.." +
                   std::to_string(SLSTM_MAX_DIMS) + ", got " +
                   std::to_string(SLSTM_MAX_DIMS + 1));
  ts[3].ndim = 1;
  ts[1].data = nullptr;
  expect_error(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &m), SLSTM_ERR_INVALID_ARGUMENT,
               "tensors[1] (layer 0 bias): data is NULL");
  CHECK(m == kSentinelModel);
}

TEST_CASE("export checks every tensor before writing any", "[errors][model][formats]") {
  t::Model model = t::random_model(kD, kHidden, 310);
  std::vector<float> k0 = t::poisoned(9 * 16), b0 = t::poisoned(16), k1 = t::poisoned(7 * 12),
                     b1 = t::poisoned(12);
  slstm_tensor_out ts[4] = {{k0.data(), 2, {9, 16, 0, 0}},
                            {b0.data(), 1, {16, 0, 0, 0}},
                            {k1.data(), 2, {7, 12, 0, 0}},
                            {b1.data(), 1, {13, 0, 0, 0}}};  // the last one is wrong
  expect_error(slstm_model_export(model.get(), SLSTM_FORMAT_TF, ts, 4), SLSTM_ERR_SHAPE_MISMATCH,
               "tensors[3]");
  CHECK(t::count_poison(k0) == k0.size());
  CHECK(t::count_poison(b0) == b0.size());
  expect_error(slstm_model_export(nullptr, SLSTM_FORMAT_TF, ts, 4), SLSTM_ERR_INVALID_ARGUMENT,
               "model");
}

TEST_CASE("export refuses tensors that overlap one another and writes nothing",
          "[errors][model][formats]") {
  // Two outputs in one place: which values remain would depend on the order of the writes.
  t::Model model = t::random_model(kD, kHidden, 311);
  std::vector<float> all = t::poisoned(9 * 16 + 16 + 7 * 12 + 12);
  float* k0 = all.data();
  float* b0 = k0 + 9 * 16;
  float* k1 = b0 + 16;
  float* b1 = k1 + 7 * 12;
  const auto tensors = [&](float* bias1) {
    return std::vector<slstm_tensor_out>{{k0, 2, {9, 16, 0, 0}},
                                         {b0, 1, {16, 0, 0, 0}},
                                         {k1, 2, {7, 12, 0, 0}},
                                         {bias1, 1, {12, 0, 0, 0}}};
  };
  SECTION("one tensor inside another") {
    expect_error(slstm_model_export(model.get(), SLSTM_FORMAT_TF, tensors(k0 + 20).data(), 4),
                 SLSTM_ERR_ALIASING,
                 "tensors[3] (layer 1 bias) overlaps tensors[0] (layer 0 kernel)");
  }
  SECTION("the same pointer twice") {
    expect_error(slstm_model_export(model.get(), SLSTM_FORMAT_TF, tensors(k1).data(), 4),
                 SLSTM_ERR_ALIASING, "tensors[3] (layer 1 bias) overlaps tensors[2]");
  }
  SECTION("by one element at the end") {
    expect_error(slstm_model_export(model.get(), SLSTM_FORMAT_TF, tensors(b1 - 1).data(), 4),
                 SLSTM_ERR_ALIASING, "tensors[3] (layer 1 bias) overlaps tensors[2]");
  }
  CHECK(t::count_poison(all) == all.size());
}

TEST_CASE("export writes tensors that lie end to end in one buffer", "[model][formats]") {
  t::Model model = t::random_model(kD, kHidden, 312);
  std::vector<float> all = t::poisoned(9 * 16 + 16 + 7 * 12 + 12);
  float* k0 = all.data();
  const slstm_tensor_out ts[4] = {{k0, 2, {9, 16, 0, 0}},
                                  {k0 + 144, 1, {16, 0, 0, 0}},
                                  {k0 + 160, 2, {7, 12, 0, 0}},
                                  {k0 + 244, 1, {12, 0, 0, 0}}};
  REQUIRE(slstm_model_export(model.get(), SLSTM_FORMAT_TF, ts, 4) == SLSTM_OK);
  CHECK(t::count_poison(all) == 0);
}

// ---- model queries ------------------------------------------------------------------------

TEST_CASE("model queries reject NULL, a layer past the last, batch < 1 and unknown parts",
          "[errors][model]") {
  t::Model m = t::random_model(kD, kHidden, 320);
  std::int64_t h = -7;
  std::size_t n = 7;
  std::int32_t L = -7;
  float fb = -7.0f;
  expect_error(slstm_model_num_layers(nullptr, &L), SLSTM_ERR_INVALID_ARGUMENT, "model");
  expect_error(slstm_model_num_layers(m.get(), nullptr), SLSTM_ERR_INVALID_ARGUMENT, "out");
  expect_error(slstm_model_input_size(nullptr, &h), SLSTM_ERR_INVALID_ARGUMENT, "model");
  expect_error(slstm_model_forget_bias(nullptr, &fb), SLSTM_ERR_INVALID_ARGUMENT, "model");
  expect_error(slstm_model_hidden_size(m.get(), 2, &h), SLSTM_ERR_OUT_OF_RANGE, "layer");
  expect_error(slstm_model_hidden_size(m.get(), -1, &h), SLSTM_ERR_OUT_OF_RANGE, "layer");
  expect_error(slstm_model_state_count(m.get(), 0, &n), SLSTM_ERR_INVALID_ARGUMENT, "batch");
  expect_error(slstm_model_state_count(m.get(), std::numeric_limits<std::int64_t>::max(), &n),
               SLSTM_ERR_SIZE_OVERFLOW, "state");
  expect_error(slstm_model_state_offset(m.get(), 1, 0, static_cast<slstm_state_part>(2), &n),
               SLSTM_ERR_INVALID_ARGUMENT, "part");
  expect_error(slstm_model_state_offset(m.get(), 1, 5, SLSTM_STATE_C, &n), SLSTM_ERR_OUT_OF_RANGE,
               "layer");
  CHECK(h == -7);
  CHECK(n == 7);
  CHECK(L == -7);
  CHECK(fb == -7.0f);
}

TEST_CASE("a batch whose packed state overflows size_t is refused by every state query naming "
          "batch", "[errors][model]") {
  t::Model m = t::random_model(kD, kHidden, 321);
  std::size_t n = 7;
  slstm_state_piece piece{};
  piece.struct_size = sizeof piece;
  piece.layer = -7;
  const std::int64_t huge[] = {std::int64_t{1} << 62, std::numeric_limits<std::int64_t>::max()};
  for (const std::int64_t batch : huge) {
    INFO("batch " << batch);
    expect_error(slstm_model_state_count(m.get(), batch, &n), SLSTM_ERR_SIZE_OVERFLOW, "batch");
    expect_error(slstm_model_state_offset(m.get(), batch, 1, SLSTM_STATE_H, &n),
                 SLSTM_ERR_SIZE_OVERFLOW, "batch");
    expect_error(slstm_model_state_piece(m.get(), batch, 0, &piece), SLSTM_ERR_SIZE_OVERFLOW,
                 "batch");
  }
  CHECK(n == 7);
  CHECK(piece.layer == -7);
}

// ---- session creation ---------------------------------------------------------------------

TEST_CASE("session creation rejects NULL model, options or out_session", "[errors][session]") {
  t::Model m = t::random_model(kD, kHidden, 330);
  const slstm_session_options o = t::options(2, 2);
  slstm_session* s = kSentinelSession;
  expect_error(slstm_session_create(nullptr, &o, &s), SLSTM_ERR_INVALID_ARGUMENT, "model");
  expect_error(slstm_session_create(m.get(), nullptr, &s), SLSTM_ERR_INVALID_ARGUMENT, "options");
  expect_error(slstm_session_create(m.get(), &o, nullptr), SLSTM_ERR_INVALID_ARGUMENT,
               "out_session");
  CHECK(s == kSentinelSession);
}

TEST_CASE("session creation rejects bad option values", "[errors][session]") {
  t::Model m = t::random_model(kD, kHidden, 331);
  slstm_session* s = kSentinelSession;
  auto with = [&](auto change, slstm_status want, const char* name) {
    slstm_session_options o = t::options(2, 2);
    change(o);
    expect_error(slstm_session_create(m.get(), &o, &s), want, name);
  };
  with([](slstm_session_options& o) { o.struct_size = 0; }, SLSTM_ERR_INVALID_ARGUMENT,
       "options->struct_size");
  with([](slstm_session_options& o) { o.max_batch = 0; }, SLSTM_ERR_INVALID_ARGUMENT,
       "options->max_batch");
  with([](slstm_session_options& o) { o.max_time = -1; }, SLSTM_ERR_INVALID_ARGUMENT,
       "options->max_time");
  with([](slstm_session_options& o) { o.backend = static_cast<slstm_backend>(9); },
       SLSTM_ERR_INVALID_ARGUMENT, "backend");
  with([](slstm_session_options& o) { o.cpu_path = static_cast<slstm_cpu_path>(9); },
       SLSTM_ERR_INVALID_ARGUMENT, "options->cpu_path");
  with([](slstm_session_options& o) { o.num_threads = -1; }, SLSTM_ERR_INVALID_ARGUMENT,
       "options->num_threads");
  with([](slstm_session_options& o) { o.device = -1; }, SLSTM_ERR_INVALID_ARGUMENT,
       "options->device");
  with([](slstm_session_options& o) { o.allow_tf32 = 2; }, SLSTM_ERR_INVALID_ARGUMENT,
       "options->allow_tf32");
  CHECK(s == kSentinelSession);
}

TEST_CASE("session creation rejects maxima whose buffers overflow", "[errors][session][overflow]") {
  t::Model m = t::random_model(kD, kHidden, 332);
  slstm_session_options o = t::options(std::int64_t{1} << 40, std::int64_t{1} << 40);
  slstm_session* s = kSentinelSession;
  expect_error(slstm_session_create(m.get(), &o, &s), SLSTM_ERR_SIZE_OVERFLOW, "max_batch");
  CHECK(s == kSentinelSession);
}

TEST_CASE("session creation reports out of memory for a workspace too large to allocate",
          "[errors][session][memory]") {
  t::Model m = t::random_model(kD, kHidden, 333);
  slstm_session_options o = t::options(std::int64_t{1} << 50, 1);  // ~2^53 floats of state
  slstm_session* s = kSentinelSession;
  expect_error(slstm_session_create(m.get(), &o, &s), SLSTM_ERR_OUT_OF_MEMORY, "workspace");
  CHECK(s == kSentinelSession);
}

// ---- checks no other case reaches ------------------------------------------------------

namespace {
// Session creation with `o` is refused with INVALID_ARGUMENT and `message`; no session made.
void expect_session_refused(const slstm_session_options& o, const std::string& message) {
  t::Model m = t::random_model(kD, kHidden, 334);
  slstm_session* s = kSentinelSession;
  expect_error(slstm_session_create(m.get(), &o, &s), SLSTM_ERR_INVALID_ARGUMENT, message);
  CHECK(s == kSentinelSession);
  if (s != kSentinelSession) slstm_session_destroy(s);
}
}  // namespace

TEST_CASE("session creation rejects max_time 0", "[errors][session]") {
  expect_session_refused(t::options(2, 0), "options->max_time must be >= 1, got 0");
}

TEST_CASE("session creation rejects a cpu_path below SLSTM_CPU_PATH_AUTO", "[errors][session]") {
  slstm_session_options o = t::options(2, 2);
  o.cpu_path = static_cast<slstm_cpu_path>(-1);
  expect_session_refused(o, "options->cpu_path: unknown value -1");
}

TEST_CASE("forward rejects an output given the input's own pointer", "[errors][forward]") {
  // Only final_state may be initial_state's exact pointer: output is never computed in place.
  Fwd f;
  std::vector<float> shared = f.x;
  f.a.input = shared.data();
  f.a.output = shared.data();
  expect_error(f.run(), SLSTM_ERR_ALIASING, "output overlaps input");
  CHECK(t::bitwise_equal(shared, f.x));
  CHECK(t::count_poison(f.fin) == f.fin.size());
}

TEST_CASE("forward rejects an output that overlaps sequence_lengths",
          "[errors][forward][lengths]") {
  Fwd f;
  // One block holds the lengths at its start and is also given as the output.
  std::vector<std::int32_t> block(f.out.size(), 0);
  block[0] = 3;
  block[1] = 1;
  f.a.sequence_lengths = block.data();
  f.a.output = reinterpret_cast<float*>(block.data());
  expect_error(f.run(), SLSTM_ERR_ALIASING, "output overlaps sequence_lengths");
  CHECK(block[0] == 3);
  CHECK(block[1] == 1);
  CHECK(t::count_poison(f.fin) == f.fin.size());
}

TEST_CASE("forward accepts input, output and final_state that lie end to end in one buffer",
          "[errors][forward]") {
  Fwd f;
  REQUIRE(f.run() == SLSTM_OK);  // the same call on separate buffers, for the numbers
  std::vector<float> block = t::poisoned(f.x.size() + f.out.size() + f.fin.size());
  std::copy(f.x.begin(), f.x.end(), block.begin());
  float* const out = block.data() + f.x.size();
  float* const fin = out + f.out.size();
  f.a.input = block.data();
  f.a.output = out;
  f.a.final_state = fin;
  const slstm_status st = f.run();
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  CHECK(t::bitwise_equal(out, f.out.data(), f.out.size()));
  CHECK(t::bitwise_equal(fin, f.fin.data(), f.fin.size()));
}

