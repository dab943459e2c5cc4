// libFuzzer target: the model-file (safetensors) loader, slstm_model_load_memory.
//
// The input is the file image itself.  Properties checked (a violation traps):
// * the status is a valid slstm_status other than SLSTM_ERR_INTERNAL; on failure out_model
//   keeps its sentinel and slstm_last_error() says something;
// * a model that loads is usable: its architecture is queryable, it saves to an image of
//   slstm_model_file_size bytes, that image loads back to a model with bitwise identical
//   canonical weights, and a session on it runs one forward step on the reference path;
// * the loader's own JSON parser accepts no header that nlohmann/json rejects: a header that
//   loads, less its space padding, is valid strict JSON to nlohmann::json::accept too;
// * plus everything ASan/UBSan/LSan check.
// The loader allocates nothing that the image's bytes do not back, so the fuzzer's memory
// is bounded by its input size (libFuzzer's -max_len: 4 MiB in fuzz/run.sh, so that large
// headers are reached; the seeds include a 1000-layer model and a 100 kB hostile header).
#include <cstdint>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

#include "stacklstm/stacklstm.h"

namespace {

[[noreturn]] void violated(const char* what) {
  (void)what;
  __builtin_trap();
}

void check_status(slstm_status st) {
  if (st < SLSTM_OK || st >= SLSTM_ERR_INTERNAL) violated("status invalid or internal");
  const char* msg = slstm_last_error();
  if (msg == nullptr || (st != SLSTM_OK && *msg == '\0')) violated("no message");
}

// The canonical weights of a model, every layer concatenated.
std::vector<float> canonical(const slstm_model* m) {
  std::int32_t layers = 0;
  std::int64_t in = 0;
  if (slstm_model_num_layers(m, &layers) != SLSTM_OK) violated("num_layers");
  if (slstm_model_input_size(m, &in) != SLSTM_OK) violated("input_size");
  std::size_t total = 0;
  std::vector<std::int64_t> h(static_cast<std::size_t>(layers));
  std::int64_t prev = in;
  for (std::int32_t l = 0; l < layers; ++l) {
    if (slstm_model_hidden_size(m, l, &h[l]) != SLSTM_OK) violated("hidden_size");
    total += static_cast<std::size_t>(4 * h[l] * (prev + h[l] + 1));
    prev = h[l];
  }
  std::vector<float> w(total);
  std::vector<slstm_tensor_out> ts;
  float* p = w.data();
  prev = in;
  for (std::int32_t l = 0; l < layers; ++l) {
    const std::int64_t H = h[l];
    ts.push_back({p, 2, {4 * H, prev, 0, 0}});
    p += 4 * H * prev;
    ts.push_back({p, 2, {4 * H, H, 0, 0}});
    p += 4 * H * H;
    ts.push_back({p, 1, {4 * H, 0, 0, 0}});
    p += 4 * H;
    prev = H;
  }
  if (slstm_model_export(m, SLSTM_FORMAT_CANONICAL, ts.data(), ts.size()) != SLSTM_OK) {
    violated("export of a loaded model");
  }
  return w;
}

void exercise(const slstm_model* m) {
  std::size_t n = 0;
  if (slstm_model_file_size(m, nullptr, &n) != SLSTM_OK) violated("file_size");
  std::vector<unsigned char> image(n);
  std::size_t wrote = 0;
  if (slstm_model_save_memory(m, nullptr, image.data(), n, &wrote) != SLSTM_OK || wrote != n) {
    violated("save_memory");
  }
  slstm_model* back = nullptr;
  if (slstm_model_load_memory(image.data(), n, &back) != SLSTM_OK) violated("reload");
  const std::vector<float> a = canonical(m), b = canonical(back);
  float fa = 0, fb = 1;
  slstm_model_forget_bias(m, &fa);
  slstm_model_forget_bias(back, &fb);
  if (a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0 ||
      std::memcmp(&fa, &fb, sizeof fa) != 0) {
    violated("save/load round trip changed the weights");
  }
  slstm_model_destroy(back);

  // One step of a one-row session on the reference path.
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  o.max_batch = 1;
  o.max_time = 1;
  slstm_session* s = nullptr;
  if (slstm_session_create(m, &o, &s) != SLSTM_OK) violated("session on a loaded model");
  std::int64_t d = 0;
  slstm_model_input_size(m, &d);
  std::size_t n_state = 0;
  slstm_model_state_count(m, 1, &n_state);
  std::vector<float> x(static_cast<std::size_t>(d), 0.5f), state(n_state);
  if (slstm_session_step(s, 1, x.data(), x.size(), nullptr, 0, nullptr, 0, state.data(),
                         state.size()) != SLSTM_OK) {
    violated("step on a loaded model");
  }
  slstm_session_destroy(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  slstm_model* const sentinel = reinterpret_cast<slstm_model*>(0x10);
  slstm_model* m = sentinel;
  const slstm_status st = slstm_model_load_memory(size ? data : nullptr, size, &m);
  check_status(st);
  if (st != SLSTM_OK) {
    if (m != sentinel) violated("out_model written on failure");
    return 0;
  }
  // Differential check of the header parser (the image is >= 8 bytes and its header inside).
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | data[k];
  const std::uint8_t* text = data + 8;
  std::size_t len = static_cast<std::size_t>(n);
  while (len > 0 && text[len - 1] == ' ') --len;
  if (!nlohmann::json::accept(text, text + len)) violated("loaded a header nlohmann rejects");
  exercise(m);
  slstm_model_destroy(m);
  return 0;
}
