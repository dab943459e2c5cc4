// The header-only C++ wrapper (include/stacklstm/stacklstm.hpp): errors become exceptions
// carrying the C status and message, handles free themselves, spans reach the library
// unchanged, and every result is bitwise the C API's for the same call.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "stacklstm/stacklstm.hpp"
#include "support.hpp"

namespace sl = stacklstm;

namespace {

// Session options for the CPU path under test.
sl::SessionOptions cpp_options(std::int64_t max_batch, std::int64_t max_time) {
  return sl::SessionOptions(max_batch, max_time)
      .backend(SLSTM_BACKEND_CPU)
      .cpu_path(t::cpu_path_under_test());
}

// Canonical weights of a C model, concatenated (to compare two models bit for bit).
std::vector<float> canonical(const sl::Model& m) {
  std::vector<float> all;
  for (const sl::Tensor& w : m.export_weights(SLSTM_FORMAT_CANONICAL)) {
    all.insert(all.end(), w.data.begin(), w.data.end());
  }
  return all;
}

std::vector<std::uint8_t> c_image(const slstm_model* m) {
  std::size_t n = 0;
  REQUIRE(slstm_model_file_size(m, nullptr, &n) == SLSTM_OK);
  std::vector<std::uint8_t> img(n);
  REQUIRE(slstm_model_save_memory(m, nullptr, img.data(), img.size(), nullptr) == SLSTM_OK);
  return img;
}

std::string temp_path(const char* name) {
  return std::string("slstm_test_cpp_") + name + "_" + std::to_string(std::rand()) + ".safetensors";
}

// Runs `fn`, which must throw stacklstm::Error; returns it.
template <class F>
sl::Error thrown_by(F&& fn) {
  try {
    fn();
  } catch (const sl::Error& e) {
    return e;
  }
  FAIL("no stacklstm::Error was thrown");
  return sl::Error(SLSTM_ERR_INTERNAL, "not reached");
}

}  // namespace

// ---- errors ----------------------------------------------------------------------------------

TEST_CASE("C++: a failed call throws Error with the C API's status and message", "[cpp]") {
  auto model = sl::Model::random(3, {4, 5}, 1);
  sl::Session s(model, cpp_options(2, 3));
  const std::vector<float> x(2 * 3 * 3 - 1);  // one element short

  const sl::Error e = thrown_by([&] { (void)s.forward(2, 3, x); });

  auto cs = t::session(model.get(), 2, 3);
  const t::Run c = t::forward(cs.get(), model.get(), t::call_of(2, 3, x));
  REQUIRE(c.status == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(e.status() == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(std::string(e.what()) == slstm_last_error());
  CHECK(std::string(e.what()).find("input") != std::string::npos);
}

TEST_CASE("C++: Error keeps its message after later library calls replace the last error",
          "[cpp]") {
  const sl::Error e =
      thrown_by([] { (void)sl::Model::random(3, {4}, 1, std::numeric_limits<float>::infinity()); });
  const std::string first = e.what();
  (void)thrown_by([] { (void)sl::Model::random(0, {4}, 1); });  // another message now
  CHECK(std::string(slstm_last_error()) != first);
  CHECK(std::string(e.what()) == first);
  CHECK(first.find("forget_bias") != std::string::npos);
}

TEST_CASE("C++: Error is a std::runtime_error with the status's text at hand", "[cpp]") {
  static_assert(std::is_base_of<std::runtime_error, sl::Error>::value, "");
  const sl::Error e(SLSTM_ERR_OUT_OF_RANGE, "batch 11 > max_batch 10");
  CHECK(e.status() == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(std::string(e.what()) == "batch 11 > max_batch 10");
  CHECK(std::string(e.status_string()) == slstm_status_string(SLSTM_ERR_OUT_OF_RANGE));
  // no message: the status's text
  CHECK(std::string(sl::Error(SLSTM_ERR_ALIASING, "").what()) ==
        slstm_status_string(SLSTM_ERR_ALIASING));
}

TEST_CASE("C++: check() passes SLSTM_OK and throws the last error for any other status", "[cpp]") {
  CHECK_NOTHROW(sl::check(SLSTM_OK));
  REQUIRE(slstm_backend_available(static_cast<slstm_backend>(99)) == SLSTM_ERR_INVALID_ARGUMENT);
  const std::string message = slstm_last_error();
  const sl::Error e = thrown_by([] { (void)sl::check(SLSTM_ERR_INVALID_ARGUMENT); });
  CHECK(e.status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(e.what()) == message);
}

TEST_CASE("C++: a failed forward writes nothing into the caller's buffers", "[cpp]") {
  auto model = sl::Model::random(3, {4}, 2);
  sl::Session s(model, cpp_options(2, 3));
  const std::vector<float> x = t::random_vector(2 * 3 * 3, 3);
  const std::vector<std::int32_t> bad_lengths = {1, 4};  // 4 > time
  std::vector<float> out = t::poisoned(2 * 3 * 4);
  std::vector<float> state = t::poisoned(model.state_count(2));
  sl::ForwardOptions o;
  o.sequence_lengths = bad_lengths;
  const sl::Error e = thrown_by([&] { (void)s.forward(2, 3, x, out, state, o); });
  CHECK(e.status() == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(t::count_poison(out) == out.size());
  CHECK(t::count_poison(state) == state.size());
}

// ---- models ----------------------------------------------------------------------------------

TEST_CASE("C++: Model::random has the weights of slstm_model_create_random", "[cpp]") {
  auto cpp = sl::Model::random(6, {5, 3}, 77, 0.5f, 0.25f);
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  const std::int64_t hidden[2] = {5, 3};
  cfg.input_size = 6;
  cfg.num_layers = 2;
  cfg.hidden_sizes = hidden;
  cfg.forget_bias = 0.5f;
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&cfg, 77, 0.25f, &raw) == SLSTM_OK);
  t::Model c(raw);
  CHECK(c_image(cpp.get()) == c_image(c.get()));
}

TEST_CASE("C++: model queries return what the C API returns", "[cpp]") {
  auto m = sl::Model::random(7, {3, 8, 2}, 5, 0.75f);
  CHECK(m.num_layers() == 3);
  CHECK(m.input_size() == 7);
  CHECK(m.hidden_size(1) == 8);
  CHECK(m.hidden_sizes() == std::vector<std::int64_t>{3, 8, 2});
  CHECK(m.output_size() == 2);
  CHECK(m.forget_bias() == 0.75f);
  CHECK(m.state_count(4) == t::state_count(m.get(), 4));
  std::size_t off = 0;
  REQUIRE(slstm_model_state_offset(m.get(), 4, 1, SLSTM_STATE_H, &off) == SLSTM_OK);
  CHECK(m.state_offset(4, 1, SLSTM_STATE_H) == off);
  const sl::Error e = thrown_by([&] { (void)m.hidden_size(3); });
  CHECK(e.status() == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(std::string(e.what()) == slstm_last_error());
}

TEST_CASE("C++: state_part views the block state_offset names and checks the state's size",
          "[cpp]") {
  auto m = sl::Model::random(2, {3, 4}, 5);
  std::vector<float> state(m.state_count(2));
  for (std::size_t k = 0; k < state.size(); ++k) state[k] = static_cast<float>(k);
  const sl::span<float> h1 = m.state_part(state, 2, 1, SLSTM_STATE_H);
  CHECK(h1.data() == state.data() + m.state_offset(2, 1, SLSTM_STATE_H));
  CHECK(h1.size() == 2 * 4);
  const std::vector<float>& cstate = state;
  const sl::span<const float> c0 = m.state_part(cstate, 2, 0, SLSTM_STATE_C);
  CHECK(c0.data() == state.data());
  CHECK(c0.size() == 2 * 3);
  state.pop_back();
  CHECK(thrown_by([&] { (void)m.state_part(state, 2, 1, SLSTM_STATE_H); }).status() ==
        SLSTM_ERR_SHAPE_MISMATCH);
}

TEST_CASE("C++: export_weights returns the shapes and values of the C export in every format",
          "[cpp]") {
  auto m = sl::Model::random(3, {4, 2}, 9);
  for (int f = SLSTM_FORMAT_CANONICAL; f <= SLSTM_FORMAT_CUDNN; ++f) {
    const auto format = static_cast<slstm_weight_format>(f);
    INFO("format " << f);
    const std::vector<sl::Tensor> got = m.export_weights(format);
    REQUIRE(got.size() == 2 * static_cast<std::size_t>(sl::tensors_per_layer(format)));
    // the same tensors exported through the C API into buffers of the shapes given
    std::vector<std::vector<float>> bufs;
    std::vector<slstm_tensor_out> outs;
    for (const auto& w : got) bufs.push_back(t::poisoned(w.data.size()));
    for (std::size_t k = 0; k < got.size(); ++k) {
      slstm_tensor_out o{};
      o.data = bufs[k].data();
      o.ndim = static_cast<std::int32_t>(got[k].shape.size());
      for (std::size_t d = 0; d < got[k].shape.size(); ++d) o.shape[d] = got[k].shape[d];
      outs.push_back(o);
    }
    REQUIRE(slstm_model_export(m.get(), format, outs.data(), outs.size()) == SLSTM_OK);
    for (std::size_t k = 0; k < got.size(); ++k) CHECK(t::bitwise_equal(got[k].data, bufs[k]));
    CHECK(m.weight_shapes(format).size() == got.size());
  }
}

TEST_CASE("C++: from_weights of a model's own export gives the same model in every format",
          "[cpp]") {
  // forget_bias 0, so that formats without a forget_bias slot carry the bias unchanged
  auto m = sl::Model::random(3, {4, 2}, 9, 0.0f);
  for (int f = SLSTM_FORMAT_CANONICAL; f <= SLSTM_FORMAT_CUDNN; ++f) {
    const auto format = static_cast<slstm_weight_format>(f);
    INFO("format " << f);
    auto back = sl::Model::from_weights(format, 3, {4, 2}, m.export_weights(format), 0.0f);
    CHECK(t::bitwise_equal(canonical(back), canonical(m)));
    CHECK(back.forget_bias() == 0.0f);
  }
}

TEST_CASE("C++: from_weights over borrowed tensors keeps TF's forget_bias", "[cpp]") {
  const std::vector<float> kernel = t::random_vector((2 + 3) * 12, 1);
  const std::vector<float> bias = t::random_vector(12, 2);
  const std::array<slstm_tensor, 2> w = {sl::tensor(kernel, {5, 12}), sl::tensor(bias, {12})};
  auto m = sl::Model::from_weights(SLSTM_FORMAT_TF, 2, {3}, w, 1.5f);
  CHECK(m.forget_bias() == 1.5f);
  const auto tf = m.export_weights(SLSTM_FORMAT_TF);
  CHECK(tf[0].shape == std::vector<std::int64_t>{5, 12});
  CHECK(t::bitwise_equal(tf[0].data, kernel));
  CHECK(t::bitwise_equal(tf[1].data, bias));
}

TEST_CASE("C++: from_weights with a wrongly shaped tensor throws the C API's shape error",
          "[cpp]") {
  const std::vector<float> kernel(4 * 12), bias(12);
  const std::array<slstm_tensor, 2> w = {sl::tensor(kernel, {4, 12}), sl::tensor(bias, {12})};
  const sl::Error e = thrown_by([&] { (void)sl::Model::from_weights(SLSTM_FORMAT_TF, 2, {3}, w); });
  CHECK(e.status() == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(std::string(e.what()).find("tensors[0]") != std::string::npos);
  CHECK(std::string(e.what()) == slstm_last_error());
}

TEST_CASE("C++: tensor() refuses a buffer whose size is not its shape's", "[cpp]") {
  const std::vector<float> v(10);
  CHECK(sl::tensor(v, {2, 5}).ndim == 2);
  CHECK(thrown_by([&] { (void)sl::tensor(v, {3, 4}); }).status() == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(thrown_by([&] {
          (void)sl::tensor(v, {10, 1, 1, 1, 1});
        }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(thrown_by([&] { (void)sl::tensor(v, {-2, -5}); }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  std::vector<sl::Tensor> owned(1);
  owned[0].shape = {12};
  owned[0].data.resize(11);
  const sl::Error e =
      thrown_by([&] { (void)sl::Model::from_weights(SLSTM_FORMAT_TF, 2, {3}, owned); });
  CHECK(e.status() == SLSTM_ERR_SHAPE_MISMATCH);
}

TEST_CASE("C++: export_weights into caller buffers equals the returned tensors", "[cpp]") {
  auto m = sl::Model::random(3, {2}, 4);
  std::vector<float> wx = t::poisoned(8 * 3), wh = t::poisoned(8 * 2), b = t::poisoned(8);
  const std::array<slstm_tensor_out, 3> outs = {sl::tensor_out(wx, {8, 3}),
                                                sl::tensor_out(wh, {8, 2}), sl::tensor_out(b, {8})};
  m.export_weights(SLSTM_FORMAT_CANONICAL, outs);
  const auto got = m.export_weights(SLSTM_FORMAT_CANONICAL);
  CHECK(t::bitwise_equal(wx, got[0].data));
  CHECK(t::bitwise_equal(wh, got[1].data));
  CHECK(t::bitwise_equal(b, got[2].data));
}

// ---- model files -----------------------------------------------------------------------------

TEST_CASE("C++: to_bytes is slstm_model_save_memory's image and load(bytes) reads it back",
          "[cpp]") {
  auto m = sl::Model::random(4, {3, 5}, 8, 0.25f);
  const std::vector<std::uint8_t> img = m.to_bytes();
  CHECK(img == c_image(m.get()));
  CHECK(img.size() == m.file_size());
  auto back = sl::Model::load(img);
  CHECK(back.hidden_sizes() == m.hidden_sizes());
  CHECK(back.forget_bias() == 0.25f);
  CHECK(t::bitwise_equal(canonical(back), canonical(m)));
}

TEST_CASE("C++: save_to a buffer too small throws SHAPE_MISMATCH and writes nothing", "[cpp]") {
  auto m = sl::Model::random(4, {3}, 8);
  std::vector<std::uint8_t> buf(m.file_size() - 1, 0xAB);
  CHECK(thrown_by([&] { (void)m.save_to(buf); }).status() == SLSTM_ERR_SHAPE_MISMATCH);
  for (const std::uint8_t c : buf) REQUIRE(c == 0xAB);
}

TEST_CASE("C++: save(path) and load(path) round-trip a model file", "[cpp]") {
  auto m = sl::Model::random(4, {3, 5}, 8);
  const std::string path = temp_path("roundtrip");
  m.save(path, "pytorch");
  auto back = sl::Model::load(path);
  std::remove(path.c_str());
  CHECK(t::bitwise_equal(canonical(back), canonical(m)));
  CHECK(m.to_bytes("pytorch").size() == m.file_size("pytorch"));
}

TEST_CASE("C++: loading a missing file or a bad image throws the library's error", "[cpp]") {
  const sl::Error missing =
      thrown_by([] { (void)sl::Model::load("no/such/dir/model.safetensors"); });
  CHECK(missing.status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(missing.what()).find("no/such/dir") != std::string::npos);
  const std::vector<std::uint8_t> junk = {1, 2, 3};
  const sl::Error bad = thrown_by([&] { (void)sl::Model::load(junk); });
  CHECK(bad.status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(bad.what()) == slstm_last_error());
}

TEST_CASE("C++: a path or source layout with a NUL character is refused, not cut short", "[cpp]") {
  auto m = sl::Model::random(2, {2}, 1);
  const std::string path("model.safetensors\0.bak", 22);
  CHECK(thrown_by([&] { (void)m.save(path); }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(thrown_by([&] { (void)sl::Model::load(path); }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(thrown_by([&] { (void)m.to_bytes(std::string("a\0b", 3)); }).status() ==
        SLSTM_ERR_INVALID_ARGUMENT);
}

// ---- ownership and moves ---------------------------------------------------------------------

TEST_CASE("C++: Model copies share one C model", "[cpp]") {
  static_assert(std::is_copy_constructible<sl::Model>::value, "");
  static_assert(std::is_nothrow_move_constructible<sl::Model>::value, "");
  auto a = sl::Model::random(2, {3}, 1);
  const sl::Model b = a;  // NOLINT(performance-unnecessary-copy-initialization)
  CHECK(a == b);
  CHECK(a.get() == b.get());
  a = sl::Model();
  CHECK_FALSE(a);
  CHECK(b.num_layers() == 1);  // still alive
  CHECK(b != sl::Model::random(2, {3}, 1));
}

TEST_CASE("C++: an empty or moved-from Model throws the library's NULL error", "[cpp]") {
  auto a = sl::Model::random(2, {3}, 1);
  const sl::Model b = std::move(a);
  CHECK(b);
  CHECK_FALSE(a);                                                // NOLINT(bugprone-use-after-move)
  const sl::Error e = thrown_by([&] { (void)a.num_layers(); });  // NOLINT(bugprone-use-after-move)
  CHECK(e.status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(e.what()).find("model") != std::string::npos);
  CHECK(thrown_by([] { sl::Session s(sl::Model(), cpp_options(1, 1)); }).status() ==
        SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("C++: a Session outlives the Model handles it was created from", "[cpp]") {
  sl::Session s;
  {
    auto m = sl::Model::random(3, {4}, 6);
    s = sl::Session(m, cpp_options(1, 2));
  }
  const std::vector<float> x = t::random_vector(6, 1);
  const sl::ForwardResult r = s.forward(1, 2, x);
  CHECK(r.output.size() == 8);
  CHECK(s.model().num_layers() == 1);
}

TEST_CASE("C++: Session is move-only and a moved-from Session throws", "[cpp]") {
  static_assert(!std::is_copy_constructible<sl::Session>::value, "");
  static_assert(!std::is_copy_assignable<sl::Session>::value, "");
  static_assert(std::is_nothrow_move_constructible<sl::Session>::value, "");
  static_assert(std::is_nothrow_move_assignable<sl::Session>::value, "");
  auto m = sl::Model::random(3, {4}, 6);
  sl::Session a(m, cpp_options(1, 2));
  slstm_session* raw = a.get();
  sl::Session b = std::move(a);
  CHECK(b.get() == raw);
  CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move)
  const std::vector<float> x(6);
  // NOLINTNEXTLINE(bugprone-use-after-move)
  const sl::Error e = thrown_by([&] { (void)a.forward(1, 2, x); });
  CHECK(e.status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(b.forward(1, 2, x).output.size() == 8);
  b = sl::Session(m, cpp_options(1, 2));  // move-assign frees the old session (ASan/valgrind)
  CHECK(b.get() != nullptr);
}

TEST_CASE("C++: release and adopt hand C handles over without freeing them twice", "[cpp]") {
  auto m = sl::Model::random(3, {4}, 6);
  sl::Session s(m, cpp_options(1, 1));
  slstm_session* raw = s.release();
  CHECK_FALSE(s);
  slstm_backend b = SLSTM_BACKEND_CUDA;
  CHECK(slstm_session_backend(raw, &b) == SLSTM_OK);
  CHECK(b == SLSTM_BACKEND_CPU);
  slstm_session_destroy(raw);

  t::Model c = t::random_model(3, {4}, 6);
  const sl::Model adopted = sl::Model::adopt(c.release());
  CHECK(adopted.num_layers() == 1);
  CHECK_FALSE(sl::Model::adopt(nullptr));
}

// ---- sessions --------------------------------------------------------------------------------

TEST_CASE("C++: SessionOptions starts from the C defaults and its setters chain", "[cpp]") {
  slstm_session_options c;
  slstm_session_options_init(&c);
  const sl::SessionOptions d;
  CHECK(std::memcmp(&d.c_struct(), &c, sizeof c) == 0);
  const sl::SessionOptions o = sl::SessionOptions(4, 9)
                                   .backend(SLSTM_BACKEND_CUDA)
                                   .cpu_path(SLSTM_CPU_PATH_REFERENCE)
                                   .num_threads(3)
                                   .device(1)
                                   .allow_tf32(true)
                                   .max_time(10);
  CHECK(o.max_batch() == 4);
  CHECK(o.max_time() == 10);
  CHECK(o.backend() == SLSTM_BACKEND_CUDA);
  CHECK(o.cpu_path() == SLSTM_CPU_PATH_REFERENCE);
  CHECK(o.num_threads() == 3);
  CHECK(o.device() == 1);
  CHECK(o.allow_tf32());
  CHECK(o.c_struct().allow_tf32 == 1);
  CHECK(o.cuda_stream() == nullptr);
  CHECK(o.c_struct().struct_size == sizeof(slstm_session_options));
  CHECK(o.precision() == SLSTM_PRECISION_DEFAULT);
  const sl::SessionOptions b = sl::SessionOptions(2, 3).precision(SLSTM_PRECISION_BF16);
  CHECK(b.precision() == SLSTM_PRECISION_BF16);
  CHECK(b.c_struct().precision == SLSTM_PRECISION_BF16);
}

namespace {
// A pool that runs the tasks one after another on the calling thread, counting its calls.
void serial_parallel_for(void* calls, slstm_pool_task task, void* arg, std::int32_t n) {
  ++*static_cast<int*>(calls);
  for (std::int32_t i = 0; i < n; ++i) task(arg, i);
}
}  // namespace

TEST_CASE("C++: SessionOptions keeps a copy of the caller's thread pool and a session runs on it",
          "[cpp][caller-pool][cpu-fast]") {
  int calls = 0;
  sl::SessionOptions o = cpp_options(3, 12).cpu_path(SLSTM_CPU_PATH_FAST);
  CHECK(o.thread_pool() == nullptr);
  CHECK(o.c_struct().thread_pool == nullptr);
  {
    slstm_thread_pool pool{};
    pool.struct_size = sizeof pool;
    pool.num_threads = 4;
    pool.parallel_for = &serial_parallel_for;
    pool.pool_arg = &calls;
    o.thread_pool(pool);
  }  // the options hold their own copy
  REQUIRE(o.thread_pool() != nullptr);
  CHECK(o.c_struct().thread_pool == o.thread_pool());
  CHECK(o.thread_pool()->num_threads == 4);
  const sl::Model m = sl::Model::random(32, {512}, 8);
  const std::vector<float> x = t::random_vector(3 * 12 * 32, 9);
  sl::Session on_pool(m, o);
  const sl::ForwardResult got = on_pool.forward(3, 12, x);
  CHECK(calls == 1);
  sl::Session alone(m, cpp_options(3, 12).cpu_path(SLSTM_CPU_PATH_FAST).num_threads(1));
  const sl::ForwardResult want = alone.forward(3, 12, x);
  CHECK(t::bitwise_equal(got.output, want.output));
  CHECK(t::bitwise_equal(got.final_state, want.final_state));
}

TEST_CASE("C++: a session without max_batch throws the library's INVALID_ARGUMENT", "[cpp]") {
  auto m = sl::Model::random(3, {4}, 6);
  const sl::Error e = thrown_by([&] { sl::Session s(m, sl::SessionOptions().max_time(1)); });
  CHECK(e.status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(e.what()).find("max_batch") != std::string::npos);
}

TEST_CASE("C++: forward over spans is bitwise the C API's forward", "[cpp]") {
  auto m = sl::Model::random(5, {6, 3, 4}, 31, 0.5f);
  const std::int64_t B = 3, T = 4;
  const std::vector<float> x = t::random_vector(B * T * 5, 2);
  const std::vector<std::int32_t> lengths = {4, 0, 2};
  const std::vector<float> s0 = t::random_vector(m.state_count(B), 3);
  for (const slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
    INFO("layout " << layout);
    auto cs = t::session(m.get(), B, T);
    t::Call call = t::call_of(B, T, x, layout);
    call.lengths = &lengths;
    call.initial_state = &s0;
    const t::Run want = t::forward_ok(cs.get(), m.get(), call);

    sl::Session s(m, cpp_options(B, T));
    std::vector<float> out = t::poisoned(want.output.size());
    std::vector<float> state = t::poisoned(want.final_state.size());
    sl::ForwardOptions o;
    o.sequence_lengths = lengths;
    o.initial_state = s0;
    o.layout = layout;
    s.forward(B, T, x, out, state, o);
    CHECK(t::bitwise_equal(out, want.output));
    CHECK(t::bitwise_equal(state, want.final_state));
  }
}

TEST_CASE("C++: the vector-returning forward equals the span forward", "[cpp]") {
  auto m = sl::Model::random(5, {6, 3}, 31);
  const std::vector<float> x = t::random_vector(2 * 3 * 5, 2);
  sl::Session s(m, cpp_options(2, 3));
  std::vector<float> out(2 * 3 * 3), state(m.state_count(2));
  s.forward(2, 3, x, out, state);
  const sl::ForwardResult r = s.forward(2, 3, x);
  CHECK(t::bitwise_equal(r.output, out));
  CHECK(t::bitwise_equal(r.final_state, state));
  // a smaller call than the session's maxima, and T = 0 (final state = initial state)
  CHECK(s.forward(1, 2, sl::span<const float>(x.data(), 10)).output.size() == 6);
  const sl::ForwardResult empty = s.forward(2, 0, {});
  CHECK(empty.output.empty());
  CHECK(empty.final_state == std::vector<float>(m.state_count(2), 0.0f));
}

TEST_CASE("C++: the vector forward refuses a batch past max_batch with the library's error",
          "[cpp]") {
  auto m = sl::Model::random(2, {3}, 1);
  sl::Session s(m, cpp_options(2, 3));
  const std::vector<float> x(3 * 3 * 2);
  const sl::Error e = thrown_by([&] { (void)s.forward(3, 3, x); });
  CHECK(e.status() == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(std::string(e.what()) == slstm_last_error());
  CHECK(std::string(e.what()).find("batch") != std::string::npos);
  // batch 0 / negative time: the library's INVALID_ARGUMENT, nothing allocated first
  CHECK(thrown_by([&] { (void)s.forward(0, 3, x); }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(thrown_by([&] { (void)s.forward(2, -1, x); }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(thrown_by([&] { (void)s.forward(2, 4, x); }).status() == SLSTM_ERR_OUT_OF_RANGE);
}

TEST_CASE("C++: forward may update a state in place", "[cpp]") {
  auto m = sl::Model::random(2, {3, 4}, 1);
  sl::Session s(m, cpp_options(2, 3));
  const std::vector<float> x = t::random_vector(2 * 3 * 2, 7);
  std::vector<float> state = t::random_vector(m.state_count(2), 8);
  sl::ForwardOptions o;
  o.initial_state = state;
  const sl::ForwardResult want = s.forward(2, 3, x, o);
  s.forward(2, 3, x, {}, state, o);  // initial_state and final_state: one buffer
  CHECK(t::bitwise_equal(state, want.final_state));
}

TEST_CASE("C++: device memory is refused by the vector forward and by a CPU session", "[cpp]") {
  auto m = sl::Model::random(2, {3}, 1);
  sl::Session s(m, cpp_options(1, 1));
  const std::vector<float> x(2);
  std::vector<float> out(3);
  sl::ForwardOptions o;
  o.memory = SLSTM_MEMORY_DEVICE;
  CHECK(thrown_by([&] { (void)s.forward(1, 1, x, o); }).status() == SLSTM_ERR_INVALID_ARGUMENT);
  const sl::Error e = thrown_by([&] { (void)s.forward(1, 1, x, out, {}, o); });
  CHECK(e.status() == SLSTM_ERR_UNSUPPORTED);
  CHECK(std::string(e.what()) == slstm_last_error());
}

TEST_CASE("C++: step is bitwise slstm_session_step, and its vector overload too", "[cpp]") {
  auto m = sl::Model::random(4, {5, 3}, 12);
  const std::int64_t B = 2;
  const std::vector<float> x = t::random_vector(B * 4, 1);
  const std::vector<float> s0 = t::random_vector(m.state_count(B), 2);
  auto cs = t::session(m.get(), B, 1);
  std::vector<float> want_out(B * 3), want_state(s0.size());
  REQUIRE(slstm_session_step(cs.get(), B, x.data(), x.size(), s0.data(), s0.size(), want_out.data(),
                             want_out.size(), want_state.data(), want_state.size()) == SLSTM_OK);
  sl::Session s(m, cpp_options(B, 1));
  std::vector<float> out = t::poisoned(want_out.size());
  std::vector<float> state = t::poisoned(want_state.size());
  s.step(B, x, s0, out, state);
  CHECK(t::bitwise_equal(out, want_out));
  CHECK(t::bitwise_equal(state, want_state));
  const sl::StepResult r = s.step(B, x, s0);
  CHECK(t::bitwise_equal(r.output, want_out));
  CHECK(t::bitwise_equal(r.state, want_state));
  // in place, and from zeros (no state)
  std::vector<float> inplace = s0;
  s.step(B, x, inplace, {}, inplace);
  CHECK(t::bitwise_equal(inplace, want_state));
  CHECK(s.step(B, x).state.size() == s0.size());
  CHECK(thrown_by([&] { (void)s.step(B + 1, x); }).status() == SLSTM_ERR_OUT_OF_RANGE);
}

TEST_CASE("C++: a session reports its backend, model and options", "[cpp]") {
  auto m = sl::Model::random(2, {3}, 1);
  const sl::Session s(m, cpp_options(2, 5));
  CHECK(s.backend() == SLSTM_BACKEND_CPU);
  CHECK(s.model() == m);
  CHECK(s.options().max_time() == 5);
}

// ---- spans and library queries ---------------------------------------------------------------

TEST_CASE("C++: spans from vectors, arrays, C arrays and pointers see the same elements", "[cpp]") {
  std::vector<float> v = {1, 2, 3};
  const std::array<float, 2> a = {4, 5};
  float c[4] = {6, 7, 8, 9};
  const sl::span<float> sv = v;
  const sl::span<const float> sa = a;
  const sl::span<float> sc = c;
  const sl::span<const float> sp(v.data() + 1, 2);
  const sl::span<const float> converted = sv;  // span<T> -> span<const T>
  CHECK((sv.data() == v.data() && sv.size() == 3));
  CHECK((sa.data() == a.data() && sa.size() == 2));
  CHECK((sc.data() == c && sc.size() == 4));
  CHECK((sp[0] == 2.0f && sp.size() == 2));
  CHECK((converted.data() == v.data() && converted.size() == 3));
  CHECK(sl::span<const float>().data() == nullptr);
  CHECK(sv.subspan(1, 2).data() == v.data() + 1);
  CHECK(thrown_by([&] { (void)sv.subspan(2, 2); }).status() == SLSTM_ERR_OUT_OF_RANGE);
  float sum = 0;
  for (const float f : sc) sum += f;
  CHECK(sum == 30.0f);
  // what must not compile
  static_assert(!std::is_convertible<const std::vector<float>&, sl::span<float>>::value,
                "no mutable span over const elements");
  static_assert(!std::is_convertible<std::vector<double>&, sl::span<const float>>::value,
                "no span over another element type");
  static_assert(!std::is_convertible<std::vector<float>&&, sl::span<float>>::value,
                "no mutable span over a temporary");
  static_assert(std::is_convertible<std::vector<float>&&, sl::span<const float>>::value,
                "a const span over a temporary argument is fine");
  static_assert(!std::is_convertible<sl::span<const float>, sl::span<float>>::value,
                "constness is not cast away");
}

TEST_CASE("C++: backend_available says yes for the CPU and gives a reason for a no", "[cpp]") {
  const sl::Availability cpu = sl::backend_available(SLSTM_BACKEND_CPU);
  CHECK(cpu);
  CHECK(cpu.reason.empty());
  const sl::Availability cuda = sl::backend_available(SLSTM_BACKEND_CUDA);
  CHECK(cuda.available == (slstm_backend_available(SLSTM_BACKEND_CUDA) == SLSTM_OK));
  if (!cuda) CHECK(cuda.reason == slstm_last_error());
  CHECK(thrown_by([] { (void)sl::backend_available(static_cast<slstm_backend>(7)); }).status() ==
        SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("C++: versions and tensors_per_layer are the C API's", "[cpp]") {
  CHECK(sl::version_number() == slstm_version_number());
  CHECK(sl::version_string() == slstm_version_string());
  CHECK(sl::tensors_per_layer(SLSTM_FORMAT_PYTORCH) == 4);
  CHECK(sl::tensors_per_layer(SLSTM_FORMAT_TF) == 2);
  CHECK(thrown_by([] {
          (void)sl::tensors_per_layer(static_cast<slstm_weight_format>(42));
        }).status() == SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("C++: keyed settings reach the session and describe reports the plan", "[cpp]") {
  const stacklstm::Model m = stacklstm::Model::random(3, {5}, 41);
  stacklstm::SessionOptions o(2, 2);
  o.cpu_path(t::cpu_path_under_test()).config("cuda.graphs=off");
  stacklstm::SessionOptions copy = o;  // the copy's config is its own
  const stacklstm::Session s(m, copy);
  CHECK(s.describe().find("layer 0: ") != std::string::npos);
  CHECK(s.describe(SLSTM_DESCRIBE_JSON).find("\"backend\": \"cpu\"") != std::string::npos);
  o.config("cuda.graphs=maybe");
  try {
    const stacklstm::Session bad(m, o);
    FAIL("a bad keyed setting was accepted");
  } catch (const stacklstm::Error& e) {
    CHECK(e.status() == SLSTM_ERR_INVALID_ARGUMENT);
    CHECK(std::string(e.what()).find("cuda.graphs") != std::string::npos);
  }
}

TEST_CASE("C++: a stack of any layers is made, described and run through the wrapper",
          "[cpp][layers]") {
  slstm_layer_config a = sl::lstm_layer(6);
  a.proj_size = 3;
  slstm_layer_config b = sl::gru_layer(2, true);
  b.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
  const sl::Layers layers{a, b};
  const sl::Model m = sl::Model::random(5, layers, 7);
  CHECK(m.output_size() == 4);
  CHECK(m.layer(0).proj_size == 3);
  CHECK(m.layer(1).cell == SLSTM_CELL_GRU);
  const auto pieces = m.state_pieces(2);
  REQUIRE(pieces.size() == 4);  // LSTM c, h; GRU h forward, h reverse
  CHECK(pieces[1].width == 3);
  CHECK(pieces[3].direction == 1);
  // state_part spans the projected h (width P), not H.
  std::vector<float> state(m.state_count(2), 0.0f);
  CHECK(m.state_part(state, 2, 0, SLSTM_STATE_H).size() == 6);
  const auto infos = sl::Model::format_tensors(SLSTM_FORMAT_CANONICAL, 5, layers);
  CHECK(infos.size() == 4 + 2 * 4);
  CHECK(std::string(infos[3].name) == "W_proj");
  sl::Session session(m, sl::SessionOptions(2, 3));
  const std::vector<float> x(2 * 3 * 5, 0.25f);
  const auto r = session.forward(2, 3, x);
  CHECK(r.output.size() == 2 * 3 * 4);
}

TEST_CASE("C++: export_weights and from_weights round-trip any stack in every format that "
          "expresses it, shaped as slstm_format_tensors says",
          "[cpp][layers]") {
  slstm_layer_config a = sl::lstm_layer(6);
  a.proj_size = 3;
  a.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
  slstm_layer_config b = sl::gru_layer(2, true);
  const sl::Layers layers{a, b};
  const sl::Model m = sl::Model::random(5, layers, 7, 0.0f);
  for (int f = SLSTM_FORMAT_CANONICAL; f <= SLSTM_FORMAT_CUDNN; ++f) {
    const auto format = static_cast<slstm_weight_format>(f);
    INFO("format " << f);
    std::vector<slstm_tensor_info> infos;
    try {
      infos = sl::Model::format_tensors(format, 5, layers);
    } catch (const sl::Error& e) {
      CHECK(e.status() == SLSTM_ERR_UNSUPPORTED);  // e.g. Keras: no projection
      CHECK_THROWS_AS((void)m.export_weights(format), sl::Error);
      continue;
    }
    const auto shapes = m.weight_shapes(format);
    REQUIRE(shapes.size() == infos.size());
    for (std::size_t k = 0; k < infos.size(); ++k) {
      CHECK(shapes[k] == std::vector<std::int64_t>(infos[k].shape,
                                                   infos[k].shape + infos[k].ndim));
    }
    const std::vector<sl::Tensor> w = m.export_weights(format);
    const sl::Model back = sl::Model::from_weights(format, 5, m.layers(), w, 0.0f);
    const std::vector<sl::Tensor> again = back.export_weights(format);
    REQUIRE(again.size() == w.size());
    for (std::size_t k = 0; k < w.size(); ++k) CHECK(t::bitwise_equal(again[k].data, w[k].data));
  }
}

TEST_CASE("C++: Model::layers gives each layer as slstm_model_layer does", "[cpp][layers]") {
  const sl::Model m = sl::Model::random(5, sl::Layers{sl::gru_layer(3, false), sl::lstm_layer(2)},
                                        1);
  const auto got = m.layers().get();
  REQUIRE(got.size() == 2);
  CHECK(got[0].cell == SLSTM_CELL_GRU);
  CHECK(got[0].hidden_size == 3);
  CHECK(got[1].cell == SLSTM_CELL_LSTM);
  CHECK(sl::Model::random(4, {3, 2}, 1).layers().get()[1].hidden_size == 2);
}

TEST_CASE("C++: SessionOptions' const C struct is written by nothing but its setters, and a "
          "copy points into itself",
          "[cpp]") {
  sl::SessionOptions o(2, 3);
  o.config("cpu.kernel=auto");
  const sl::SessionOptions& c = o;
  const slstm_session_options before = c.c_struct();
  CHECK(before.config == o.config().c_str());
  const sl::SessionOptions copy = o;
  CHECK(copy.c_struct().config == copy.config().c_str());
  CHECK(copy.c_struct().config != o.c_struct().config);
  sl::SessionOptions moved(std::move(o));
  CHECK(moved.c_struct().config == moved.config().c_str());
  CHECK(std::string(moved.c_struct().config) == "cpu.kernel=auto");
  sl::SessionOptions assigned;
  assigned = copy;
  CHECK(assigned.c_struct().config == assigned.config().c_str());
}

TEST_CASE("C++: a keyed setting with a NUL character is refused, not cut short", "[cpp]") {
  sl::SessionOptions o(2, 3);
  const std::string with_nul("cpu.kernel=auto\0no.such.key=1", 29);
  CHECK_THROWS_WITH(o.config(with_nul), Catch::Contains("NUL"));
  CHECK(o.config().empty());
}

TEST_CASE("C++: the vector forward and step check their counts before allocating results",
          "[cpp]") {
  const sl::Model m = sl::Model::random(4, {3}, 1);
  // A session whose outputs, were they allocated, would take 2^40 x 3 floats.
  sl::Session s(m,
                sl::SessionOptions(1, std::int64_t{1} << 40).cpu_path(SLSTM_CPU_PATH_REFERENCE));
  const std::vector<float> x(4, 0.5f);
  CHECK_THROWS_WITH((void)s.forward(1, std::int64_t{1} << 40, x), Catch::Contains("input_count"));
  sl::Session s1(m, sl::SessionOptions(2, 1));
  CHECK_THROWS_WITH((void)s1.step(2, x), Catch::Contains("input_count"));
  const std::vector<float> bad_state(5, 0.0f);
  CHECK_THROWS_WITH((void)s1.step(1, x, bad_state), Catch::Contains("state_count"));
}

TEST_CASE("C++: state_part takes non-const arrays and C arrays as it takes vectors", "[cpp]") {
  const sl::Model m = sl::Model::random(4, {3}, 1);
  std::array<float, 6> st{};
  float carr[6] = {};
  const std::array<float, 6>& cst = st;
  static_assert(std::is_same<decltype(m.state_part(st, 1, 0, SLSTM_STATE_H)),
                             sl::span<float>>::value,
                "a non-const array gives a writable span");
  static_assert(std::is_same<decltype(m.state_part(cst, 1, 0, SLSTM_STATE_H)),
                             sl::span<const float>>::value,
                "a const array gives a read-only span");
  CHECK(m.state_part(st, 1, 0, SLSTM_STATE_H).data() == st.data() + 3);
  CHECK(m.state_part(carr, 1, 0, SLSTM_STATE_C).data() == carr);
}
