/* Uses only the public header, compiled as strict C99: TF's published two-layer vector
 * through slstm_session_step.  Exit 0 on success. */
#include <math.h>
#include <stdio.h>

#include "stacklstm/stacklstm.h"

static int fail(const char* what, slstm_status st) {
  fprintf(stderr, "%s: %s: %s\n", what, slstm_status_string(st), slstm_last_error());
  return 1;
}

int main(void) {
  const int64_t hidden[2] = {2, 2};
  float kernel[4 * 8], bias[8], x[2] = {1.0f, 1.0f}, state[8], next[8], out[2];
  slstm_tensor tensors[4];
  slstm_model_config cfg;
  slstm_session_options opt;
  slstm_model* model = NULL;
  slstm_session* session = NULL;
  slstm_status st;
  const double want[4] = {0.68967271, 0.44848421, 0.39897051, 0.24024698};
  int i, l, bad = 0;

  for (i = 0; i < 32; ++i) kernel[i] = 0.5f;
  for (i = 0; i < 8; ++i) bias[i] = 0.0f, state[i] = 0.1f;
  for (l = 0; l < 2; ++l) {
    tensors[2 * l].data = kernel;
    tensors[2 * l].ndim = 2;
    tensors[2 * l].shape[0] = 4;
    tensors[2 * l].shape[1] = 8;
    tensors[2 * l + 1].data = bias;
    tensors[2 * l + 1].ndim = 1;
    tensors[2 * l + 1].shape[0] = 8;
  }
  slstm_model_config_init(&cfg);
  cfg.input_size = 2;
  cfg.num_layers = 2;
  cfg.hidden_sizes = hidden;
  st = slstm_model_create(&cfg, SLSTM_FORMAT_TF, tensors, 4, &model);
  if (st != SLSTM_OK) return fail("slstm_model_create", st);

  slstm_session_options_init(&opt);
  opt.max_batch = 1;
  opt.max_time = 1;
  st = slstm_session_create(model, &opt, &session);
  if (st != SLSTM_OK) return fail("slstm_session_create", st);
  st = slstm_session_step(session, 1, x, 2, state, 8, out, 2, next, 8);
  if (st != SLSTM_OK) return fail("slstm_session_step", st);
  for (i = 0; i < 8; ++i) {
    if (fabs(next[i] - want[i / 2]) > 1e-6) {
      fprintf(stderr, "state[%d] = %.8f, want %.8f\n", i, next[i], want[i / 2]);
      bad = 1;
    }
  }
  if (out[0] != next[6] || out[1] != next[7]) bad = 1;
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  printf("%s\n", bad ? "FAIL" : "ok: TF golden vector reproduced from C");
  return bad;
}
