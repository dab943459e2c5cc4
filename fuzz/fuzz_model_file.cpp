// libFuzzer target: the model-file (safetensors) loader, slstm_model_load_memory.
//
// The input is the file image itself.  Properties checked (a violation traps):
// * the status is a valid slstm_status other than SLSTM_ERR_INTERNAL; on failure out_model
//   keeps its sentinel and slstm_last_error() says something;
// * a model that loads is usable: its architecture is queryable, it saves to an image of
//   slstm_model_file_size bytes, that image loads back to a model with bitwise identical
//   canonical weights (every tensor of any stack), and a session on it runs one forward step
//   on the reference path (slstm_session_step, or a forward call of T = 1 for a model with a
//   reverse or bidirectional layer);
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

// The model's layers (slstm_model_layer) and the architecture they make.
std::vector<slstm_layer_config> layers_of(const slstm_model* m) {
  std::int32_t n = 0;
  if (slstm_model_num_layers(m, &n) != SLSTM_OK) violated("num_layers");
  std::vector<slstm_layer_config> ls(static_cast<std::size_t>(n));
  for (std::int32_t l = 0; l < n; ++l) {
    slstm_layer_config_init(&ls[static_cast<std::size_t>(l)]);
    if (slstm_model_layer(m, l, &ls[static_cast<std::size_t>(l)]) != SLSTM_OK) violated("layer");
  }
  return ls;
}

// The canonical weights of a model (every tensor slstm_format_tensors lists for its
// architecture), concatenated.
std::vector<float> canonical(const slstm_model* m) {
  const std::vector<slstm_layer_config> ls = layers_of(m);
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  if (slstm_model_input_size(m, &cfg.input_size) != SLSTM_OK) violated("input_size");
  if (slstm_model_forget_bias(m, &cfg.forget_bias) != SLSTM_OK) violated("forget_bias");
  cfg.num_layers = static_cast<std::int32_t>(ls.size());
  cfg.layers = ls.data();
  std::size_t count = 0;
  if (slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, nullptr, 0, &count) != SLSTM_OK) {
    violated("format_tensors of a loaded model");
  }
  std::vector<slstm_tensor_info> infos(count);
  for (slstm_tensor_info& i : infos) i.struct_size = sizeof(slstm_tensor_info);
  if (slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, infos.data(), count, &count) !=
      SLSTM_OK) {
    violated("format_tensors of a loaded model");
  }
  std::size_t total = 0;
  for (const slstm_tensor_info& i : infos) {
    std::size_t n = 1;
    for (std::int32_t d = 0; d < i.ndim; ++d) n *= static_cast<std::size_t>(i.shape[d]);
    total += n;
  }
  std::vector<float> w(total);
  std::vector<slstm_tensor_out> ts(count);
  float* p = w.data();
  for (std::size_t k = 0; k < count; ++k) {
    ts[k] = slstm_tensor_out{};
    ts[k].data = p;
    ts[k].ndim = infos[k].ndim;
    std::size_t n = 1;
    for (std::int32_t d = 0; d < infos[k].ndim; ++d) {
      ts[k].shape[d] = infos[k].shape[d];
      n *= static_cast<std::size_t>(infos[k].shape[d]);
    }
    p += n;
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

  // One step of a one-row session on the reference path: slstm_session_step, or for a model
  // with a reverse or bidirectional layer (which needs the whole sequence) a forward call of
  // one step.
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
  bool forward_only = true;
  for (const slstm_layer_config& l : layers_of(m)) {
    forward_only = forward_only && l.direction == SLSTM_DIRECTION_FORWARD;
  }
  if (forward_only) {
    if (slstm_session_step(s, 1, x.data(), x.size(), nullptr, 0, nullptr, 0, state.data(),
                           state.size()) != SLSTM_OK) {
      violated("step on a loaded model");
    }
  } else {
    std::int64_t width = 0;
    if (slstm_model_output_size(m, &width) != SLSTM_OK) violated("output_size");
    std::vector<float> out(static_cast<std::size_t>(width));
    slstm_forward_args a;
    slstm_forward_args_init(&a);
    a.batch = 1;
    a.time = 1;
    a.input = x.data();
    a.input_count = x.size();
    a.output = out.data();
    a.output_count = out.size();
    a.final_state = state.data();
    a.final_state_count = state.size();
    if (slstm_session_forward(s, &a) != SLSTM_OK) violated("forward on a loaded model");
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
