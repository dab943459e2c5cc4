// The C API's housekeeping: versions, status texts, the per-thread last error, NULL-safety
// of destroy/init, backend queries.
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

TEST_CASE("the runtime version matches the header's version macros", "[api][version]") {
  CHECK(slstm_version_number() == SLSTM_VERSION_NUMBER);
  CHECK(std::string(slstm_version_string()) == SLSTM_VERSION_STRING);
  CHECK(SLSTM_VERSION_NUMBER ==
        SLSTM_VERSION_MAJOR * 10000 + SLSTM_VERSION_MINOR * 100 + SLSTM_VERSION_PATCH);
}

TEST_CASE("every status has its own static text and unknown values say so", "[api][status]") {
  std::set<std::string> texts;
  for (int s = SLSTM_OK; s <= SLSTM_ERR_INTERNAL; ++s) {
    const char* text = slstm_status_string(static_cast<slstm_status>(s));
    REQUIRE(text != nullptr);
    CHECK(std::strlen(text) > 0);
    CHECK(std::string(text) != "unknown status");
    texts.insert(text);
  }
  CHECK(texts.size() == static_cast<std::size_t>(SLSTM_ERR_INTERNAL + 1));
  CHECK(std::string(slstm_status_string(static_cast<slstm_status>(1234))) == "unknown status");
}

TEST_CASE("slstm_last_error_copy truncates like snprintf and returns the full length",
          "[api][errors]") {
  REQUIRE(slstm_session_forward(nullptr, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  const std::string full = slstm_last_error();
  REQUIRE(full == "session is NULL");
  CHECK(slstm_last_error_copy(nullptr, 0) == full.size());
  char small[5];
  std::memset(small, 'x', sizeof small);
  CHECK(slstm_last_error_copy(small, sizeof small) == full.size());
  CHECK(std::string(small) == full.substr(0, 4));
  char big[64];
  CHECK(slstm_last_error_copy(big, sizeof big) == full.size());
  CHECK(std::string(big) == full);
}

TEST_CASE("the last error is per thread", "[api][errors][threads]") {
  REQUIRE(slstm_session_forward(nullptr, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  std::string in_other_thread = "unset";
  std::thread th([&] {
    in_other_thread = slstm_last_error();
    std::int32_t n = 0;
    slstm_format_tensors_per_layer(static_cast<slstm_weight_format>(42), &n);
  });
  th.join();
  CHECK(in_other_thread.empty());                          // nothing failed there yet
  CHECK(std::string(slstm_last_error()) == "session is NULL");  // unchanged here
}

TEST_CASE("destroy(NULL) and init(NULL) are no-ops", "[api][ownership]") {
  slstm_model_destroy(nullptr);
  slstm_session_destroy(nullptr);
  slstm_model_config_init(nullptr);
  slstm_session_options_init(nullptr);
  slstm_forward_args_init(nullptr);
  SUCCEED("no crash");
}

TEST_CASE("init functions set struct_size and the documented defaults", "[api][abi]") {
  slstm_model_config cfg;
  std::memset(&cfg, 0xAB, sizeof cfg);
  slstm_model_config_init(&cfg);
  CHECK(cfg.struct_size == sizeof cfg);
  CHECK(cfg.forget_bias == 1.0f);
  CHECK(cfg.num_layers == 0);
  CHECK(cfg.hidden_sizes == nullptr);
  slstm_session_options o;
  std::memset(&o, 0xAB, sizeof o);
  slstm_session_options_init(&o);
  CHECK(o.struct_size == sizeof o);
  CHECK(o.backend == SLSTM_BACKEND_CPU);
  CHECK(o.cpu_path == SLSTM_CPU_PATH_AUTO);
  CHECK(o.num_threads == 0);
  CHECK(o.allow_tf32 == 0);
  CHECK(o.cuda_stream == nullptr);
  slstm_forward_args a;
  std::memset(&a, 0xAB, sizeof a);
  slstm_forward_args_init(&a);
  CHECK(a.struct_size == sizeof a);
  CHECK(a.layout == SLSTM_BATCH_MAJOR);
  CHECK(a.memory == SLSTM_MEMORY_HOST);
  CHECK(a.input == nullptr);
  CHECK(a.output_count == 0);
}

TEST_CASE("the CPU backend is always available and unknown backends are rejected",
          "[api][backend]") {
  CHECK(slstm_backend_available(SLSTM_BACKEND_CPU) == SLSTM_OK);
  CHECK(slstm_backend_available(static_cast<slstm_backend>(17)) == SLSTM_ERR_INVALID_ARGUMENT);
  t::Model m = t::random_model(3, {2}, 1);
  t::Session s = t::session(m.get(), 1, 1);
  slstm_backend b = SLSTM_BACKEND_CUDA;
  REQUIRE(slstm_session_backend(s.get(), &b) == SLSTM_OK);
  CHECK(b == SLSTM_BACKEND_CPU);
}

TEST_CASE("the reference CPU path can always be selected explicitly", "[api][backend]") {
  t::Model m = t::random_model(3, {2}, 1);
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  slstm_session* s = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &s) == SLSTM_OK);
  slstm_session_destroy(s);
}

TEST_CASE("a packed state is laid out c0 h0 c1 h1 ... with [batch, H_l] blocks", "[api][state]") {
  t::Model m = t::random_model(3, {2, 5}, 1);
  std::size_t n = 0, off = 0;
  REQUIRE(slstm_model_state_count(m.get(), 3, &n) == SLSTM_OK);
  CHECK(n == 2 * 3 * (2 + 5));
  REQUIRE(slstm_model_state_offset(m.get(), 3, 0, SLSTM_STATE_C, &off) == SLSTM_OK);
  CHECK(off == 0);
  REQUIRE(slstm_model_state_offset(m.get(), 3, 0, SLSTM_STATE_H, &off) == SLSTM_OK);
  CHECK(off == 6);
  REQUIRE(slstm_model_state_offset(m.get(), 3, 1, SLSTM_STATE_C, &off) == SLSTM_OK);
  CHECK(off == 12);
  REQUIRE(slstm_model_state_offset(m.get(), 3, 1, SLSTM_STATE_H, &off) == SLSTM_OK);
  CHECK(off == 27);
}

TEST_CASE("slstm_last_error_copy with size 0 writes nothing, even where buf is given",
          "[api][errors]") {
  REQUIRE(slstm_session_forward(nullptr, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  const std::string full = slstm_last_error();
  std::vector<char> buf(full.size() + 64, 'x');
  CHECK(slstm_last_error_copy(buf.data(), 0) == full.size());
  CHECK(std::string(buf.data(), buf.size()) == std::string(buf.size(), 'x'));
}
