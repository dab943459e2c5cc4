/* The seed scenario of seed_demo.c (3 layers [100, 200, 300], batch 10, input 128, time 7,
 * model seed 42, inputs from srand(7)), on the CPU backend, printing what the Rust and Go
 * examples (examples/rust, examples/go) print, line for line: the shapes, the two bitwise
 * checks, a few output values, FNV-1a 64 checksums of every float produced, and the message
 * of a call the library must refuse.  examples/check_foreign.sh compares their output with
 * this program's, so a binding that passes a wrong pointer, count, struct field or enum
 * value shows up as a difference.  Exit 0 when both checks hold and the bad call is refused.
 *
 * Checksums: FNV-1a 64 over each float's IEEE-754 bits as 4 little-endian bytes.  The same
 * model seed and inputs give the same bits in every language on one machine (the CPU backend
 * is deterministic); another CPU may pick other kernels and print other checksums. */
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
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

static uint64_t fnv1a64(const float* v, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t k = 0; k < n; ++k) {
    uint32_t bits;
    memcpy(&bits, &v[k], sizeof bits);
    for (int byte = 0; byte < 4; ++byte) {
      h ^= (bits >> (8 * byte)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

static int same_bits(const float* a, const float* b, size_t n) {
  return memcmp(a, b, n * sizeof(float)) == 0;
}

int main(void) {
  const int64_t hidden[3] = {100, 200, 300};
  const int64_t B = 10, D = 128, T = 7;

  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = D;
  cfg.num_layers = 3;
  cfg.hidden_sizes = hidden;
  slstm_model* model = NULL;
  CHECK(slstm_model_create_random(&cfg, 42, 0.0f, &model));

  int32_t L = 0;
  int64_t input_size = 0, H[3] = {0, 0, 0};
  CHECK(slstm_model_num_layers(model, &L));
  CHECK(slstm_model_input_size(model, &input_size));
  for (int32_t l = 0; l < L && l < 3; ++l) CHECK(slstm_model_hidden_size(model, l, &H[l]));
  const int64_t H_last = H[L - 1];

  printf("libstacklstm %s\n", slstm_version_string());
  printf("seed scenario: %d layers [%lld, %lld, %lld], batch %lld, input %lld, time %lld, "
         "model seed 42, CPU\n",
         L, (long long)H[0], (long long)H[1], (long long)H[2], (long long)B,
         (long long)input_size, (long long)T);

  slstm_session_options opt;
  slstm_session_options_init(&opt);
  opt.backend = SLSTM_BACKEND_CPU;
  opt.max_batch = B;
  opt.max_time = T;
  slstm_session* session = NULL;
  CHECK(slstm_session_create(model, &opt, &session));

  size_t n_state = 0;
  CHECK(slstm_model_state_count(model, B, &n_state));
  const size_t n_in = (size_t)(B * T * D), n_out = (size_t)(B * T * H_last);
  float* x = malloc(sizeof(float) * n_in);
  float* out = malloc(sizeof(float) * n_out);
  float* state = malloc(sizeof(float) * n_state);
  float* state0 = malloc(sizeof(float) * n_state);
  float* step_out = malloc(sizeof(float) * (size_t)(B * H_last));
  float* step_state = malloc(sizeof(float) * n_state);
  if (!x || !out || !state || !state0 || !step_out || !step_state) return 1;
  /* seed_demo.c's inputs, from the C library's rand(). */
  srand(7);
  for (size_t k = 0; k < n_in; ++k) x[k] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
  for (size_t k = 0; k < n_state; ++k) state0[k] = (float)rand() / (float)RAND_MAX - 0.5f;

  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = B;
  a.time = T;
  a.input = x;
  a.input_count = n_in;
  a.output = out;
  a.output_count = n_out;
  a.final_state = state;
  a.final_state_count = n_state;
  CHECK(slstm_session_forward(session, &a));

  printf("inputs        shape (%lld, %lld, %lld)\n", (long long)B, (long long)T, (long long)D);
  printf("outputs       shape (%lld, %lld, %lld)\n", (long long)B, (long long)T,
         (long long)H_last);
  for (int32_t l = 0; l < L; ++l) {
    printf("states[%d].c   shape (%lld, %lld)\n", l, (long long)B, (long long)H[l]);
    printf("states[%d].h   shape (%lld, %lld)\n", l, (long long)B, (long long)H[l]);
  }
  size_t h_off = 0;
  CHECK(slstm_model_state_offset(model, B, L - 1, SLSTM_STATE_H, &h_off));
  int last_ok = 1;
  for (int64_t b = 0; b < B; ++b) {
    last_ok &= same_bits(&state[h_off + (size_t)(b * H_last)],
                         &out[(size_t)((b * T + T - 1) * H_last)], (size_t)H_last);
  }
  printf("final_state[-1].h == outputs[:, -1, :]: %s (bitwise)\n", last_ok ? "true" : "FALSE");

  CHECK(slstm_session_step(session, B, x, (size_t)(B * D), state0, n_state, step_out,
                           (size_t)(B * H_last), step_state, n_state));
  printf("step: outputs shape (%lld, %lld); states[0].h shape (%lld, %lld); "
         "states[%d].h shape (%lld, %lld)\n",
         (long long)B, (long long)H_last, (long long)B, (long long)H[0], L - 1, (long long)B,
         (long long)H_last);
  const int step_ok = same_bits(&step_state[h_off], step_out, (size_t)(B * H_last));
  printf("step: states[-1].h == outputs: %s (bitwise)\n", step_ok ? "true" : "FALSE");

  printf("outputs[0, -1, 0:4]: %.6f %.6f %.6f %.6f\n", (double)out[(T - 1) * H_last],
         (double)out[(T - 1) * H_last + 1], (double)out[(T - 1) * H_last + 2],
         (double)out[(T - 1) * H_last + 3]);
  printf("fnv1a64 outputs     %016llx\n", (unsigned long long)fnv1a64(out, n_out));
  printf("fnv1a64 final_state %016llx\n", (unsigned long long)fnv1a64(state, n_state));
  printf("fnv1a64 step output %016llx\n",
         (unsigned long long)fnv1a64(step_out, (size_t)(B * H_last)));
  printf("fnv1a64 step state  %016llx\n", (unsigned long long)fnv1a64(step_state, n_state));

  /* A call the library must refuse: batch above the session's max_batch. */
  a.batch = B + 1;
  const slstm_status refused = slstm_session_forward(session, &a);
  printf("refused: forward with batch %lld: %s: %s\n", (long long)(B + 1),
         slstm_status_string(refused), slstm_last_error());

  free(x);
  free(out);
  free(state);
  free(state0);
  free(step_out);
  free(step_state);
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return (last_ok && step_ok && refused == SLSTM_ERR_OUT_OF_RANGE) ? 0 : 1;
}
