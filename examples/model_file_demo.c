/* Loads a stacklstm model file (safetensors) and runs it on a batch of sequences.
 *
 *   model_file_demo MODEL.safetensors [batch] [time]
 *   model_file_demo --self-test            (writes a random model to a temporary file first)
 *
 * Prints the architecture, the output shape and the seed check
 * final_state[-1].h == outputs[:, -1, :].  Exit status 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stacklstm/stacklstm.h"

#define CHECK(call)                                                                       \
  do {                                                                                    \
    slstm_status st_ = (call);                                                            \
    if (st_ != SLSTM_OK) {                                                                \
      fprintf(stderr, "%s failed: %s: %s\n", #call, slstm_status_string(st_),             \
              slstm_last_error());                                                        \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

static int run(const char* path, int64_t B, int64_t T) {
  slstm_model* model = NULL;
  CHECK(slstm_model_load_file(path, &model));
  int32_t L = 0;
  int64_t D = 0, H = 0;
  float fb = 0.0f;
  CHECK(slstm_model_num_layers(model, &L));
  CHECK(slstm_model_input_size(model, &D));
  CHECK(slstm_model_forget_bias(model, &fb));
  printf("%s: input_size %lld, %d layers (", path, (long long)D, (int)L);
  for (int32_t l = 0; l < L; ++l) {
    CHECK(slstm_model_hidden_size(model, l, &H));
    printf("%s%lld", l ? ", " : "", (long long)H);
  }
  printf("), forget_bias %g\n", (double)fb);

  slstm_session_options opt;
  slstm_session_options_init(&opt);
  opt.max_batch = B;
  opt.max_time = T;
  slstm_session* session = NULL;
  CHECK(slstm_session_create(model, &opt, &session));
  slstm_model_destroy(model); /* the session keeps it alive */

  size_t state_n = 0, h_off = 0;
  CHECK(slstm_session_backend(session, &opt.backend));
  slstm_model* m2 = NULL;
  CHECK(slstm_model_load_file(path, &m2));
  CHECK(slstm_model_state_count(m2, B, &state_n));
  CHECK(slstm_model_state_offset(m2, B, L - 1, SLSTM_STATE_H, &h_off));
  slstm_model_destroy(m2);

  const size_t in_n = (size_t)(B * T * D), out_n = (size_t)(B * T * H);
  float* x = malloc(in_n * sizeof *x);
  float* y = malloc(out_n * sizeof *y);
  float* s = malloc(state_n * sizeof *s);
  if (!x || !y || !s) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  for (size_t k = 0; k < in_n; ++k) x[k] = (float)((k * 37u) % 101u) / 101.0f - 0.5f;
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = B;
  a.time = T;
  a.input = x;
  a.input_count = in_n;
  a.output = y;
  a.output_count = out_n;
  a.final_state = s;
  a.final_state_count = state_n;
  CHECK(slstm_session_forward(session, &a));
  int same = 1;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t u = 0; u < H; ++u)
      same &= s[h_off + (size_t)(b * H + u)] == y[(size_t)((b * T + T - 1) * H + u)];
  printf("outputs: [%lld, %lld, %lld]  final_state[-1].h == outputs[:, -1, :]: %s\n",
         (long long)B, (long long)T, (long long)H, same ? "true" : "false");
  free(x);
  free(y);
  free(s);
  slstm_session_destroy(session);
  return same ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.safetensors [batch] [time] | --self-test\n", argv[0]);
    return 2;
  }
  const int64_t B = argc > 2 ? atoll(argv[2]) : 4, T = argc > 3 ? atoll(argv[3]) : 5;
  if (B < 1 || T < 1 || B > 4096 || T > 100000) {
    fprintf(stderr, "batch must be in [1, 4096] and time in [1, 100000]\n");
    return 2;
  }
  if (strcmp(argv[1], "--self-test") == 0) {
    const int64_t hidden[3] = {100, 200, 300};
    slstm_model_config cfg;
    slstm_model_config_init(&cfg);
    cfg.input_size = 128;
    cfg.num_layers = 3;
    cfg.hidden_sizes = hidden;
    slstm_model* model = NULL;
    CHECK(slstm_model_create_random(&cfg, 42, 0.0f, &model));
    const char* path = "model_file_demo.safetensors";
    CHECK(slstm_model_save_file(model, path, "random"));
    slstm_model_destroy(model);
    const int rc = run(path, B, T);
    remove(path);
    return rc;
  }
  return run(argv[1], B, T);
}
