// Versioned structs (header "ABI"): the init functions write exactly the caller's size, the
// library reads only what the caller's size covers, takes a newer caller's struct when the
// fields it does not know are zero and refuses it otherwise.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../capi/versioned.hpp"
#include "support.hpp"

namespace {

constexpr unsigned char kGuard = 0xAB;
constexpr std::size_t kSlack = 64;  // bytes after the struct in every test buffer

// A buffer of `size` + kSlack guard bytes, aligned for any of the structs.
struct Bytes {
  explicit Bytes(std::size_t size) : storage((size + kSlack) / 8 + 1, 0), n(size) {
    std::memset(data(), kGuard, size + kSlack);
  }
  unsigned char* data() { return reinterpret_cast<unsigned char*>(storage.data()); }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data());
  }
  // Bytes [from, n + kSlack) untouched?
  bool guard_intact(std::size_t from) {
    for (std::size_t k = from; k < n + kSlack; ++k) {
      if (data()[k] != kGuard) return false;
    }
    return true;
  }
  std::vector<std::uint64_t> storage;
  std::size_t n;
};

// The versioned structs, each with its sized init and its first published size (the end of
// its last field in libstacklstm 0.1, or in the version that added the struct).
template <typename T>
struct Api;
template <>
struct Api<slstm_model_config> {
  static void init(slstm_model_config* p, std::size_t n) { slstm_model_config_init_sized(p, n); }
  static void legacy(slstm_model_config* p) { (slstm_model_config_init)(p); }
  static constexpr std::size_t v1 = SLSTM_V1_SIZE(slstm_model_config, forget_bias);
};
template <>
struct Api<slstm_session_options> {
  static void init(slstm_session_options* p, std::size_t n) {
    slstm_session_options_init_sized(p, n);
  }
  static void legacy(slstm_session_options* p) { (slstm_session_options_init)(p); }
  static constexpr std::size_t v1 = SLSTM_V1_SIZE(slstm_session_options, cuda_stream);
};
template <>
struct Api<slstm_forward_args> {
  static void init(slstm_forward_args* p, std::size_t n) { slstm_forward_args_init_sized(p, n); }
  static void legacy(slstm_forward_args* p) { (slstm_forward_args_init)(p); }
  static constexpr std::size_t v1 = SLSTM_V1_SIZE(slstm_forward_args, memory);
};
template <>
struct Api<slstm_slot_forward_args> {
  static void init(slstm_slot_forward_args* p, std::size_t n) {
    slstm_slot_forward_args_init_sized(p, n);
  }
  static constexpr std::size_t v1 = SLSTM_V1_SIZE(slstm_slot_forward_args, memory);
};
// slstm_session_options as 0.2 published it (config appended; max_slots came after).
constexpr std::size_t kSessionOptionsV2 = SLSTM_V1_SIZE(slstm_session_options, config);
// ... as 0.3 and 0.4 published it (max_slots appended; precision came after).
constexpr std::size_t kSessionOptionsV3 = SLSTM_V1_SIZE(slstm_session_options, max_slots);
// ... as 0.5 to 0.13 published it (precision appended; thread_pool came after).
constexpr std::size_t kSessionOptionsV13 = SLSTM_V1_SIZE(slstm_session_options, precision);
template <>
struct Api<slstm_onnx_lstm_node> {
  static void init(slstm_onnx_lstm_node* p, std::size_t n) {
    slstm_onnx_lstm_node_init_sized(p, n);
  }
  static void legacy(slstm_onnx_lstm_node* p) { (slstm_onnx_lstm_node_init)(p); }
  static constexpr std::size_t v1 = SLSTM_V1_SIZE(slstm_onnx_lstm_node, peepholes);
};
template <>
struct Api<slstm_onnx_gru_node> {
  static void init(slstm_onnx_gru_node* p, std::size_t n) { slstm_onnx_gru_node_init_sized(p, n); }
  static constexpr std::size_t v1 = SLSTM_V1_SIZE(slstm_onnx_gru_node, activations);
};

template <typename T>
void check_init_writes_exactly(std::size_t size) {
  Bytes b(size);
  Api<T>::init(b.as<T>(), size);
  INFO("struct of " << sizeof(T) << " bytes initialised as " << size);
  CHECK(b.guard_intact(size));
  CHECK(b.as<T>()->struct_size == size);
  for (std::size_t k = sizeof(T); k < size; ++k) CHECK(b.data()[k] == 0);
}

// One forward call whose args live in `b` (size bytes, initialised by the sized init).
slstm_status forward_with(Bytes& b, std::size_t size, slstm_session* s,
                          const std::vector<float>& x, std::vector<float>& out) {
  slstm_forward_args* a = b.as<slstm_forward_args>();
  slstm_forward_args_init_sized(a, size);
  a->batch = 1;
  a->time = 1;
  a->input = x.data();
  a->input_count = x.size();
  a->output = out.data();
  a->output_count = out.size();
  return slstm_session_forward(s, a);
}

// A batch-1, time-1 session from options laid out as an older header had them (`size`
// bytes, initialised by the sized init, which must write no more).
t::Session session_from_options_of_size(const slstm_model* m, std::size_t size) {
  Bytes b(size);
  slstm_session_options_init_sized(b.as<slstm_session_options>(), size);
  CHECK(b.guard_intact(size));
  slstm_session_options* o = b.as<slstm_session_options>();
  o->max_batch = 1;
  o->max_time = 1;
  o->cpu_path = t::cpu_path_under_test();
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m, o, &raw) == SLSTM_OK);
  return t::Session(raw);
}

}  // namespace

TEST_CASE("a sized init writes exactly the caller's struct_size bytes, zeros past its own",
          "[api][abi]") {
  for (std::size_t size : {std::size_t{4}, std::size_t{12}, Api<slstm_forward_args>::v1,
                           sizeof(slstm_forward_args), sizeof(slstm_forward_args) + 24}) {
    check_init_writes_exactly<slstm_forward_args>(size);
  }
  for (std::size_t size : {Api<slstm_model_config>::v1, sizeof(slstm_model_config) + 8}) {
    check_init_writes_exactly<slstm_model_config>(size);
  }
  for (std::size_t size : {Api<slstm_session_options>::v1, kSessionOptionsV2, kSessionOptionsV3,
                           kSessionOptionsV13, sizeof(slstm_session_options),
                           sizeof(slstm_session_options) + 8}) {
    check_init_writes_exactly<slstm_session_options>(size);
  }
  for (std::size_t size : {std::size_t{4}, Api<slstm_slot_forward_args>::v1,
                           sizeof(slstm_slot_forward_args), sizeof(slstm_slot_forward_args) + 16}) {
    check_init_writes_exactly<slstm_slot_forward_args>(size);
  }
  for (std::size_t size : {Api<slstm_onnx_lstm_node>::v1, sizeof(slstm_onnx_lstm_node) + 8}) {
    check_init_writes_exactly<slstm_onnx_lstm_node>(size);
  }
  for (std::size_t size : {std::size_t{4}, Api<slstm_onnx_gru_node>::v1,
                           sizeof(slstm_onnx_gru_node) + 8}) {
    check_init_writes_exactly<slstm_onnx_gru_node>(size);
  }
}

TEST_CASE("a sized init too small for struct_size, or NULL, writes nothing", "[api][abi]") {
  Bytes b(3);
  slstm_session_options_init_sized(b.as<slstm_session_options>(), 3);
  CHECK(b.guard_intact(0));
  slstm_session_options_init_sized(nullptr, sizeof(slstm_session_options));
}

TEST_CASE("the exported init of a binary built against 0.1 writes that layout and no more",
          "[api][abi]") {
  Bytes a(Api<slstm_forward_args>::v1);
  Api<slstm_forward_args>::legacy(a.as<slstm_forward_args>());
  CHECK(a.guard_intact(Api<slstm_forward_args>::v1));
  CHECK(a.as<slstm_forward_args>()->struct_size == Api<slstm_forward_args>::v1);
  Bytes o(Api<slstm_session_options>::v1);
  Api<slstm_session_options>::legacy(o.as<slstm_session_options>());
  CHECK(o.guard_intact(Api<slstm_session_options>::v1));
  Bytes c(Api<slstm_model_config>::v1);
  Api<slstm_model_config>::legacy(c.as<slstm_model_config>());
  CHECK(c.guard_intact(Api<slstm_model_config>::v1));
  CHECK(c.as<slstm_model_config>()->forget_bias == 1.0f);
  Bytes n(Api<slstm_onnx_lstm_node>::v1);
  Api<slstm_onnx_lstm_node>::legacy(n.as<slstm_onnx_lstm_node>());
  CHECK(n.guard_intact(Api<slstm_onnx_lstm_node>::v1));
}

TEST_CASE("the init macro passes the size the caller's header gives the struct", "[api][abi]") {
  Bytes b(sizeof(slstm_session_options));
  slstm_session_options_init(b.as<slstm_session_options>());
  CHECK(b.as<slstm_session_options>()->struct_size == sizeof(slstm_session_options));
  CHECK(b.guard_intact(sizeof(slstm_session_options)));
}

TEST_CASE("structs initialised by the 0.1 init functions are accepted", "[api][abi]") {
  slstm_model_config cfg;
  (slstm_model_config_init)(&cfg);
  const std::int64_t hidden[1] = {3};
  cfg.input_size = 2;
  cfg.num_layers = 1;
  cfg.hidden_sizes = hidden;
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&cfg, 1, 0.0f, &raw) == SLSTM_OK);
  t::Model m(raw);
  slstm_session_options o;
  (slstm_session_options_init)(&o);
  o.max_batch = 1;
  o.max_time = 1;
  o.cpu_path = t::cpu_path_under_test();
  slstm_session* s = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &s) == SLSTM_OK);
  t::Session session(s);
  std::vector<float> x = {0.5f, -0.25f}, out(3);
  slstm_forward_args a;
  (slstm_forward_args_init)(&a);
  a.batch = 1;
  a.time = 1;
  a.input = x.data();
  a.input_count = 2;
  a.output = out.data();
  a.output_count = 3;
  CHECK(slstm_session_forward(s, &a) == SLSTM_OK);
  slstm_onnx_lstm_node node;
  (slstm_onnx_lstm_node_init)(&node);
  CHECK(slstm_onnx_check_node(&node) == SLSTM_OK);
}

TEST_CASE("a struct from a newer header is accepted when the fields this library lacks are zero",
          "[api][abi]") {
  t::Model m = t::random_model(2, {3}, 7);
  t::Session s = t::session(m.get(), 1, 1);
  const std::vector<float> x = {0.5f, -0.25f};
  std::vector<float> want(3), got(3);
  Bytes plain(sizeof(slstm_forward_args));
  REQUIRE(forward_with(plain, sizeof(slstm_forward_args), s.get(), x, want) == SLSTM_OK);
  const std::size_t newer = sizeof(slstm_forward_args) + 16;
  Bytes b(newer);
  CHECK(forward_with(b, newer, s.get(), x, got) == SLSTM_OK);
  CHECK(t::bitwise_equal(got, want));
}

TEST_CASE("a struct from a newer header that sets a field this library lacks is refused",
          "[api][abi]") {
  t::Model m = t::random_model(2, {3}, 7);
  t::Session s = t::session(m.get(), 1, 1);
  const std::vector<float> x = {0.5f, -0.25f};
  std::vector<float> out = t::poisoned(3);
  const std::size_t newer = sizeof(slstm_forward_args) + 16;
  Bytes b(newer);
  slstm_forward_args_init_sized(b.as<slstm_forward_args>(), newer);
  b.data()[sizeof(slstm_forward_args) + 5] = 1;  // a newer field set to a non-default value
  slstm_forward_args* a = b.as<slstm_forward_args>();
  a->batch = 1;
  a->time = 1;
  a->input = x.data();
  a->input_count = 2;
  a->output = out.data();
  a->output_count = 3;
  CHECK(slstm_session_forward(s.get(), a) == SLSTM_ERR_UNSUPPORTED);
  CHECK(std::string(slstm_last_error()).find("args->struct_size") != std::string::npos);
  CHECK(t::count_poison(out) == out.size());

  Bytes o(sizeof(slstm_session_options) + 8);
  slstm_session_options_init_sized(o.as<slstm_session_options>(),
                                   sizeof(slstm_session_options) + 8);
  o.as<slstm_session_options>()->max_batch = 1;
  o.as<slstm_session_options>()->max_time = 1;
  o.data()[sizeof(slstm_session_options)] = 2;
  slstm_session* raw = nullptr;
  CHECK(slstm_session_create(m.get(), o.as<slstm_session_options>(), &raw) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK(raw == nullptr);
}

TEST_CASE("a struct_size below the first published size or implausibly large is refused",
          "[api][abi]") {
  t::Model m = t::random_model(2, {3}, 7);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.max_batch = 1;
  o.max_time = 1;
  slstm_session* raw = nullptr;
  o.struct_size = static_cast<std::uint32_t>(Api<slstm_session_options>::v1 - 1);
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_INVALID_ARGUMENT);
  o.struct_size = 0xffffffffu;  // no tail is scanned for a size like this
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("options->struct_size") != std::string::npos);
  CHECK(raw == nullptr);
}

// The mechanism itself, on two versions of a made-up struct: the library's (v2) reading a
// struct from an older caller (v1), which lacks the appended field.
namespace {
struct DemoV1 {
  std::uint32_t struct_size;
  std::int32_t a;
};
struct DemoV2 {
  std::uint32_t struct_size;
  std::int32_t a;
  std::int64_t b;  // appended in "v2", default 42 here to tell defaults from copied bytes
};
DemoV2 demo_defaults() { return DemoV2{sizeof(DemoV2), 1, 42}; }
}  // namespace

TEST_CASE("a struct from an older header reads its own fields and defaults for the rest",
          "[api][abi]") {
  DemoV1 old{sizeof(DemoV1), 7};
  const DemoV2 got = slstm::capi::read_versioned(reinterpret_cast<const DemoV2*>(&old),
                                                 sizeof(DemoV1), "demo", demo_defaults());
  CHECK(got.a == 7);
  CHECK(got.b == 42);
  DemoV2 current{sizeof(DemoV2), 8, 9};
  const DemoV2 same =
      slstm::capi::read_versioned(&current, sizeof(DemoV1), "demo", demo_defaults());
  CHECK(same.a == 8);
  CHECK(same.b == 9);
}

TEST_CASE("an init for an older caller's size fills only the fields that caller has",
          "[api][abi]") {
  Bytes b(sizeof(DemoV1));
  slstm::capi::init_sized(b.data(), sizeof(DemoV1), demo_defaults());
  CHECK(b.guard_intact(sizeof(DemoV1)));
  DemoV1 got;
  std::memcpy(&got, b.data(), sizeof got);
  CHECK(got.struct_size == sizeof(DemoV1));
  CHECK(got.a == 1);
}

TEST_CASE("the static initializers give the init functions' defaults in C++ too", "[api][abi]") {
  const slstm_session_options o = SLSTM_SESSION_OPTIONS_INIT;
  slstm_session_options want;
  slstm_session_options_init(&want);
  CHECK(o.struct_size == want.struct_size);
  CHECK(o.backend == want.backend);
  CHECK(o.cpu_path == want.cpu_path);
  const slstm_model_config c = SLSTM_MODEL_CONFIG_INIT;
  CHECK(c.forget_bias == 1.0f);
  CHECK(c.struct_size == sizeof c);
  const slstm_forward_args a = SLSTM_FORWARD_ARGS_INIT;
  CHECK(a.struct_size == sizeof a);
  CHECK(a.memory == SLSTM_MEMORY_HOST);
  const slstm_onnx_lstm_node n = SLSTM_ONNX_LSTM_NODE_INIT;
  CHECK(slstm_onnx_check_node(&n) == SLSTM_OK);
  const slstm_onnx_gru_node g = SLSTM_ONNX_GRU_NODE_INIT;
  slstm_onnx_gru_node gw;
  slstm_onnx_gru_node_init(&gw);
  CHECK(g.struct_size == gw.struct_size);
  CHECK(g.direction == gw.direction);
  CHECK(g.has_clip == gw.has_clip);
  CHECK(g.linear_before_reset == gw.linear_before_reset);
  CHECK(g.num_activations == gw.num_activations);
  CHECK(g.activations == gw.activations);
  CHECK(o.max_slots == 0);
  CHECK(want.max_slots == 0);
  const slstm_slot_forward_args sa = SLSTM_SLOT_FORWARD_ARGS_INIT;
  slstm_slot_forward_args sw;
  slstm_slot_forward_args_init(&sw);
  CHECK(sa.struct_size == sizeof sa);
  CHECK(sw.struct_size == sizeof sw);
  CHECK(sa.layout == sw.layout);
  CHECK(sa.memory == SLSTM_MEMORY_HOST);
  CHECK(sw.memory == SLSTM_MEMORY_HOST);
  CHECK(sw.slot_ids == nullptr);
  CHECK(sw.batch == 0);
}

TEST_CASE("session options of 0.2's size (without max_slots) create a session without slots",
          "[api][abi][slot]") {
  t::Model m = t::random_model(2, {3}, 7);
  t::Session s = session_from_options_of_size(m.get(), kSessionOptionsV2);
  std::int64_t max_slots = -1;
  REQUIRE(slstm_session_slot_info(s.get(), &max_slots, nullptr) == SLSTM_OK);
  CHECK(max_slots == 0);
}

TEST_CASE("slot forward args from a newer header are taken while the new fields are zero",
          "[api][abi][slot]") {
  t::Model m = t::random_model(2, {3}, 7);
  slstm_session_options o = t::options(1, 1);
  o.max_slots = 1;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  std::int64_t slot = -1;
  REQUIRE(slstm_session_slot_open(s.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot) == SLSTM_OK);
  const std::vector<float> x = {0.5f, -0.25f};
  std::vector<float> out(3);
  const std::size_t newer = sizeof(slstm_slot_forward_args) + 16;
  Bytes b(newer);
  slstm_slot_forward_args_init_sized(b.as<slstm_slot_forward_args>(), newer);
  slstm_slot_forward_args* a = b.as<slstm_slot_forward_args>();
  a->batch = 1;
  a->slot_ids = &slot;
  a->slot_ids_count = 1;
  a->time = 1;
  a->input = x.data();
  a->input_count = 2;
  a->output = out.data();
  a->output_count = 3;
  CHECK(slstm_session_slot_forward(s.get(), a) == SLSTM_OK);
  b.data()[sizeof(slstm_slot_forward_args) + 3] = 1;
  CHECK(slstm_session_slot_forward(s.get(), a) == SLSTM_ERR_UNSUPPORTED);
  CHECK(std::string(slstm_last_error()).find("args->struct_size") != std::string::npos);
  a->struct_size = static_cast<std::uint32_t>(Api<slstm_slot_forward_args>::v1 - 1);
  CHECK(slstm_session_slot_forward(s.get(), a) == SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("session options from a 0.4 header (no precision field) make an FP32 session",
          "[api][abi][precision]") {
  t::Model m = t::random_model(2, {3}, 7);
  t::Session s = session_from_options_of_size(m.get(), kSessionOptionsV3);
  CHECK(t::json_value(t::describe_json(s.get()), "precision") == "fp32");
}

TEST_CASE("session options from a 0.13 header (no thread_pool field) run on no caller's pool",
          "[api][abi]") {
  // The bytes past the 0.13 size are the guard's, not zeros: read as a pointer they would
  // crash the call.
  t::Model m = t::random_model(2, {3}, 7);
  t::Session s = session_from_options_of_size(m.get(), kSessionOptionsV13);
  CHECK(t::json_value(t::describe_json(s.get()), "pool").find("caller") == std::string::npos);
  const std::vector<float> x = {0.5f, -0.25f};
  t::forward_ok(s.get(), m.get(), t::call_of(1, 1, x));
}

TEST_CASE("a query's out struct with an implausibly large struct_size is refused and not written",
          "[api][abi]") {
  t::Model m = t::random_model(2, {3}, 8);
  // Room for every byte such a struct_size claims, so a write past the struct stays in it.
  const std::uint32_t claimed = 1u << 20;
  std::vector<unsigned char> room(claimed, 0x5a);
  auto* out = reinterpret_cast<slstm_layer_config*>(room.data());
  out->struct_size = claimed;
  CHECK(slstm_model_layer(m.get(), 0, out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("out->struct_size") != std::string::npos);
  CHECK(std::count(room.begin() + sizeof(std::uint32_t), room.end(), 0x5a) ==
        static_cast<std::ptrdiff_t>(room.size() - sizeof(std::uint32_t)));
}

TEST_CASE("slstm_format_tensors refuses infos whose struct_size differ and writes none",
          "[api][abi]") {
  const std::int64_t hidden[] = {3};
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = 2;
  cfg.num_layers = 1;
  cfg.hidden_sizes = hidden;
  std::vector<slstm_tensor_info> infos(3);
  std::memset(infos.data(), 0x5a, infos.size() * sizeof(slstm_tensor_info));
  for (slstm_tensor_info& info : infos) info.struct_size = sizeof(slstm_tensor_info);
  infos[1].struct_size = sizeof(slstm_tensor_info) + 8;
  const std::vector<slstm_tensor_info> before = infos;
  std::size_t n = 77;
  CHECK(slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, infos.data(), infos.size(), &n) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slstm_last_error()).find("infos[1].struct_size") != std::string::npos);
  CHECK(n == 77);
  CHECK(std::memcmp(infos.data(), before.data(), infos.size() * sizeof(slstm_tensor_info)) == 0);
}

// Every versioned struct the library reads, through the function that reads it: a struct
// from a newer header is taken while the bytes past this library's struct are zero and
// refused (SLSTM_ERR_UNSUPPORTED) when one is set; a struct_size below the first published
// size, or implausibly large, is SLSTM_ERR_INVALID_ARGUMENT; a refusal names the struct's
// struct_size and writes nothing (`call` checks its own outputs).
namespace {
template <typename T, typename Init, typename Fill, typename Call>
void check_versioned_reads(const std::string& name, std::size_t v1, Init init, Fill fill,
                           Call call) {
  const auto make = [&](Bytes& b, std::size_t size) {
    init(b.as<T>(), size);
    fill(*b.as<T>());
    return b.as<T>();
  };
  INFO(name);
  Bytes plain(sizeof(T));
  REQUIRE(call(make(plain, sizeof(T)), true) == SLSTM_OK);

  const std::size_t newer = sizeof(T) + 16;
  Bytes zero(newer);
  CHECK(call(make(zero, newer), true) == SLSTM_OK);

  Bytes set(newer);
  T* s = make(set, newer);
  set.data()[sizeof(T) + 5] = 1;  // a field of a newer header, set
  CHECK(call(s, false) == SLSTM_ERR_UNSUPPORTED);
  CHECK(std::string(slstm_last_error()).find(name + "->struct_size") != std::string::npos);

  for (const std::uint32_t size : {static_cast<std::uint32_t>(v1 - 1), 0xffffffffu}) {
    Bytes bad(sizeof(T));
    T* b = make(bad, sizeof(T));
    b->struct_size = size;
    CHECK(call(b, false) == SLSTM_ERR_INVALID_ARGUMENT);
    CHECK(std::string(slstm_last_error()).find(name + "->struct_size") != std::string::npos);
  }
}

void serial_for(void*, slstm_pool_task task, void* arg, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) task(arg, i);
}
}  // namespace

TEST_CASE("every versioned struct the library reads takes a newer header's zero tail and "
          "refuses a set one or a size outside the published range, naming it",
          "[api][abi]") {
  const std::int64_t hidden = 3;
  slstm_model* const sentinel = reinterpret_cast<slstm_model*>(0x1);
  const auto create_model = [&](const slstm_model_config* c, bool ok) {
    slstm_model* m = sentinel;
    const slstm_status st = slstm_model_create_random(c, 7, 0.0f, &m);
    if (st == SLSTM_OK) slstm_model_destroy(m);
    CHECK((ok || m == sentinel));
    return st;
  };
  check_versioned_reads<slstm_model_config>(
      "config", Api<slstm_model_config>::v1, &slstm_model_config_init_sized,
      [&](slstm_model_config& c) {
        c.input_size = 2;
        c.num_layers = 1;
        c.hidden_sizes = &hidden;
      },
      create_model);
  check_versioned_reads<slstm_layer_config>(
      "config->layers[0]", SLSTM_V1_SIZE(slstm_layer_config, gru_reset_after),
      &slstm_layer_config_init_sized, [&](slstm_layer_config& l) { l.hidden_size = hidden; },
      [&](const slstm_layer_config* l, bool ok) {
        slstm_model_config c;
        slstm_model_config_init(&c);
        c.input_size = 2;
        c.num_layers = 1;
        c.layers = l;
        return create_model(&c, ok);
      });

  t::Model m = t::random_model(2, {hidden}, 7);
  const auto create_session = [&](const slstm_session_options* o, bool ok) {
    slstm_session* s = reinterpret_cast<slstm_session*>(0x1);
    const slstm_status st = slstm_session_create(m.get(), o, &s);
    if (st == SLSTM_OK) slstm_session_destroy(s);
    CHECK((ok || s == reinterpret_cast<slstm_session*>(0x1)));
    return st;
  };
  const auto small_session = [](slstm_session_options& o) {
    o.max_batch = 1;
    o.max_time = 1;
    o.max_slots = 1;
    o.cpu_path = t::cpu_path_under_test();
  };
  check_versioned_reads<slstm_session_options>(
      "options", Api<slstm_session_options>::v1, &slstm_session_options_init_sized,
      small_session, create_session);
  check_versioned_reads<slstm_thread_pool>(
      "options->thread_pool", sizeof(slstm_thread_pool),
      [](slstm_thread_pool* p, std::size_t size) {
        std::memset(p, 0, size);
        p->struct_size = static_cast<std::uint32_t>(size);
      },
      [](slstm_thread_pool& p) {
        p.num_threads = 1;
        p.parallel_for = &serial_for;
      },
      [&](const slstm_thread_pool* p, bool ok) {
        slstm_session_options o;
        slstm_session_options_init(&o);
        small_session(o);
        o.thread_pool = p;
        return create_session(&o, ok);
      });

  t::Session s = t::session(m.get(), 1, 1);
  const std::vector<float> x = {0.5f, -0.25f};
  std::vector<float> out;
  const auto one_row = [&](auto& a) {  // forward or slot args: one row, one step, poisoned out
    out = t::poisoned(3);
    a.batch = 1;
    a.time = 1;
    a.input = x.data();
    a.input_count = x.size();
    a.output = out.data();
    a.output_count = out.size();
  };
  check_versioned_reads<slstm_forward_args>(
      "args", Api<slstm_forward_args>::v1, &slstm_forward_args_init_sized, one_row,
      [&](const slstm_forward_args* a, bool ok) {
        const slstm_status st = slstm_session_forward(s.get(), a);
        CHECK((ok || t::count_poison(out) == out.size()));
        return st;
      });

  slstm_session_options so = t::options(1, 1);
  so.max_slots = 1;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &so, &raw) == SLSTM_OK);
  const t::Session slots(raw);
  std::int64_t slot = -1;
  REQUIRE(slstm_session_slot_open(slots.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot) ==
          SLSTM_OK);
  check_versioned_reads<slstm_slot_forward_args>(
      "args", Api<slstm_slot_forward_args>::v1, &slstm_slot_forward_args_init_sized,
      [&](slstm_slot_forward_args& a) {
        one_row(a);
        a.slot_ids = &slot;
        a.slot_ids_count = 1;
      },
      [&](const slstm_slot_forward_args* a, bool ok) {
        const slstm_status st = slstm_session_slot_forward(slots.get(), a);
        CHECK((ok || t::count_poison(out) == out.size()));
        return st;
      });

  const auto layer_of = [](auto node_layer) {
    return [node_layer](const auto* node, bool ok) {
      slstm_layer_config l;
      slstm_layer_config_init(&l);
      l.hidden_size = 99;  // what a refusal leaves
      const slstm_status st = node_layer(node, 4, &l);
      CHECK(l.hidden_size == (ok ? 4 : 99));
      return st;
    };
  };
  const auto no_fill = [](auto&) {};
  check_versioned_reads<slstm_onnx_lstm_node>(
      "node", Api<slstm_onnx_lstm_node>::v1, &slstm_onnx_lstm_node_init_sized, no_fill,
      [](const slstm_onnx_lstm_node* n, bool) { return slstm_onnx_check_node(n); });
  check_versioned_reads<slstm_onnx_lstm_node>("node", Api<slstm_onnx_lstm_node>::v1,
                                              &slstm_onnx_lstm_node_init_sized, no_fill,
                                              layer_of(&slstm_onnx_lstm_node_layer));
  check_versioned_reads<slstm_onnx_gru_node>("node", Api<slstm_onnx_gru_node>::v1,
                                             &slstm_onnx_gru_node_init_sized, no_fill,
                                             layer_of(&slstm_onnx_gru_node_layer));
}
