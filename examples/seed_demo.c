/* The seed scenario: TF's MultiRNNCell([BasicLSTMCell(n) for n in [100, 200, 300]]) over a
 * batch of 10 sequences of 128-dimensional inputs, through dynamic_rnn and through one
 * MultiRNNCell step.  Prints every shape and checks final_state[-1].h == outputs[:, -1, :].
 * Runs on the GPU when one is usable, else on the CPU.  Usage: seed_demo [time (default 7)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

int main(int argc, char** argv) {
  const int64_t hidden[3] = {100, 200, 300};
  const int64_t B = 10, D = 128, T = argc > 1 ? atoll(argv[1]) : 7;
  const int64_t H = hidden[2];
  if (T < 1 || T > 100000) {
    fprintf(stderr, "time must be in [1, 100000]\n");
    return 2;
  }
  printf("libstacklstm %s\n", slstm_version_string());

  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = D;
  cfg.num_layers = 3;
  cfg.hidden_sizes = hidden;
  slstm_model* model = NULL;
  CHECK(slstm_model_create_random(&cfg, 42, 0.0f, &model));

  slstm_session_options opt;
  slstm_session_options_init(&opt);
  opt.max_batch = B;
  opt.max_time = T;
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) == SLSTM_OK) {
    opt.backend = SLSTM_BACKEND_CUDA;
  } else {
    printf("CUDA backend unavailable (%s); using the CPU\n", slstm_last_error());
  }
  slstm_session* session = NULL;
  CHECK(slstm_session_create(model, &opt, &session));
  printf("backend: %s\n", opt.backend == SLSTM_BACKEND_CUDA ? "CUDA" : "CPU");

  size_t n_state = 0;
  CHECK(slstm_model_state_count(model, B, &n_state));
  float* x = malloc(sizeof(float) * (size_t)(B * T * D));
  float* out = malloc(sizeof(float) * (size_t)(B * T * H));
  float* state = malloc(sizeof(float) * n_state);
  float* state0 = malloc(sizeof(float) * n_state);
  float* step_out = malloc(sizeof(float) * (size_t)(B * H));
  if (!x || !out || !state || !state0 || !step_out) return 1;
  srand(7);
  for (int64_t k = 0; k < B * T * D; ++k) x[k] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
  for (size_t k = 0; k < n_state; ++k) state0[k] = (float)rand() / (float)RAND_MAX - 0.5f;

  /* outputs, states = tf.nn.dynamic_rnn(mul_cells, X, time_major=False) */
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = B;
  a.time = T;
  a.input = x;
  a.input_count = (size_t)(B * T * D);
  a.output = out;
  a.output_count = (size_t)(B * T * H);
  a.final_state = state;
  a.final_state_count = n_state;
  CHECK(slstm_session_forward(session, &a));

  printf("inputs        shape (%lld, %lld, %lld)\n", (long long)B, (long long)T, (long long)D);
  printf("outputs       shape (%lld, %lld, %lld)\n", (long long)B, (long long)T, (long long)H);
  for (int32_t l = 0; l < 3; ++l) {
    printf("states[%d].c   shape (%lld, %lld)\n", l, (long long)B, (long long)hidden[l]);
    printf("states[%d].h   shape (%lld, %lld)\n", l, (long long)B, (long long)hidden[l]);
  }
  size_t h_off = 0;
  CHECK(slstm_model_state_offset(model, B, 2, SLSTM_STATE_H, &h_off));
  double max_diff = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t u = 0; u < H; ++u) {
      double d = fabs((double)state[h_off + b * H + u] - (double)out[(b * T + T - 1) * H + u]);
      if (d > max_diff) max_diff = d;
    }
  }
  printf("final_state[-1].h == outputs[:, -1, :]: %s (max |diff| = %g)\n",
         max_diff == 0.0 ? "true" : "FALSE", max_diff);

  /* outputs, states = mul_cells(inputs, (state0, state1, state2)) */
  CHECK(slstm_session_step(session, B, x, (size_t)(B * D), state0, n_state, step_out,
                           (size_t)(B * H), state, n_state));
  printf("step: outputs shape (%lld, %lld); states[0].h shape (%lld, %lld); "
         "states[2].h shape (%lld, %lld)\n",
         (long long)B, (long long)H, (long long)B, (long long)hidden[0], (long long)B,
         (long long)hidden[2]);
  double step_diff = 0.0;
  for (int64_t k = 0; k < B * H; ++k) {
    double d = fabs((double)state[h_off + k] - (double)step_out[k]);
    if (d > step_diff) step_diff = d;
  }
  printf("step: states[-1].h == outputs: %s\n", step_diff == 0.0 ? "true" : "FALSE");

  free(x);
  free(out);
  free(state);
  free(state0);
  free(step_out);
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return (max_diff == 0.0 && step_diff == 0.0) ? 0 : 1;
}
