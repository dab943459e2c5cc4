/* Prints one hash per (model, shape, layout) of the output and final state bits a CPU path
 * produces (models 0-3: forward BasicLSTMCell stacks; 4-8: the generic path's, with GRU,
 * peepholes, clips, a projection, reverse, bidirectional and residual layers), for proving
 * that a refactoring changed no bit: build this program against two commits' libraries and
 * diff what they print (see docs/architecture.md, "Refactoring").  Uses the public C API
 * only, so it builds against any commit with slstm_layer_config (0.8 on).  The kernel is
 * the CPU's best unless SLSTM_CPU_KERNEL=avx2|portable lowers it.
 *   Usage: output_hashes reference|fast */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stacklstm/stacklstm.h"

static uint64_t fnv(uint64_t h, const void* p, size_t n) {
  const unsigned char* b = (const unsigned char*)p;
  size_t k;
  for (k = 0; k < n; ++k) h = (h ^ b[k]) * 1099511628211ull;
  return h;
}

static float uniform(uint64_t* s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Hashes model `m`'s outputs and final states over the 5 shapes x 2 layouts (2 threads);
 * returns nonzero where a call fails. */
static int hash_model(int m, slstm_model* model, int64_t D, slstm_cpu_path path) {
  static const int64_t shapes[5][2] = {{10, 5}, {1, 37}, {3, 1}, {12, 10}, {2, 0}};
  int64_t W = 0;
  int s, lay;
  if (slstm_model_output_size(model, &W) != SLSTM_OK) return 1;
  for (s = 0; s < 5; ++s) {
    for (lay = 0; lay < 2; ++lay) {
      const int64_t B = shapes[s][0], T = shapes[s][1];
      slstm_session_options o;
      slstm_session* session = NULL;
      slstm_forward_args a;
      size_t n_state = 0, k;
      float *x, *init, *out, *fin;
      int32_t* len;
      uint64_t seed = 7 + (uint64_t)(m * 100 + s * 10 + lay), h = 1469598103934665603ull;
      slstm_session_options_init(&o);
      o.max_batch = B;
      o.max_time = T > 0 ? T : 1;
      o.cpu_path = path;
      o.num_threads = 2;
      if (slstm_session_create(model, &o, &session) != SLSTM_OK) return 2;
      slstm_model_state_count(model, B, &n_state);
      x = malloc(sizeof(float) * (size_t)(B * T * D + 1));
      out = malloc(sizeof(float) * (size_t)(B * T * W + 1));
      init = malloc(sizeof(float) * n_state);
      fin = malloc(sizeof(float) * n_state);
      len = malloc(sizeof(int32_t) * (size_t)B);
      for (k = 0; k < (size_t)(B * T * D); ++k) x[k] = uniform(&seed);
      for (k = 0; k < n_state; ++k) init[k] = 0.5f * uniform(&seed);
      for (k = 0; k < (size_t)B; ++k) len[k] = (int32_t)((k * 7 + 3) % (size_t)(T + 1));
      slstm_forward_args_init(&a);
      a.layout = lay ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR;
      a.batch = B;
      a.time = T;
      a.input = T > 0 ? x : NULL;
      a.input_count = T > 0 ? (size_t)(B * T * D) : 0;
      a.sequence_lengths = lay ? len : NULL;
      a.sequence_lengths_count = lay ? (size_t)B : 0;
      a.initial_state = s % 2 ? init : NULL;
      a.initial_state_count = s % 2 ? n_state : 0;
      a.output = T > 0 ? out : NULL;
      a.output_count = T > 0 ? (size_t)(B * T * W) : 0;
      a.final_state = fin;
      a.final_state_count = n_state;
      if (slstm_session_forward(session, &a) != SLSTM_OK) return 3;
      if (T > 0) h = fnv(h, out, sizeof(float) * (size_t)(B * T * W));
      h = fnv(h, fin, sizeof(float) * n_state);
      printf("model %d shape %lldx%lld %s: %016llx\n", m, (long long)B, (long long)T,
             lay ? "time-major+lengths" : "batch-major", (unsigned long long)h);
      free(x), free(out), free(init), free(fin), free(len);
      slstm_session_destroy(session);
    }
  }
  return 0;
}

/* Models 4-8 (the generic path's stacks, slstm_layer_config), layer l of model m: */
static slstm_layer_config layer_of(int m, int l) {
  slstm_layer_config c;
  slstm_layer_config_init(&c);
  switch (m * 10 + l) {
    case 40: c.hidden_size = 13, c.direction = SLSTM_DIRECTION_BIDIRECTIONAL; break;
    case 50: c.hidden_size = 21, c.cell = SLSTM_CELL_GRU; break;  /* reset before */
    case 51: c.hidden_size = 40; break;
    case 60: c.hidden_size = 40, c.direction = SLSTM_DIRECTION_REVERSE; break;
    case 61:
      c.hidden_size = 17, c.cell = SLSTM_CELL_GRU, c.gru_reset_after = 1;
      c.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
      break;
    case 70:
      c.hidden_size = 19, c.peepholes = 1, c.cell_clip = 0.7f, c.proj_size = 9;
      c.proj_clip = 0.4f;
      break;
    case 80: c.hidden_size = 16, c.cell = SLSTM_CELL_GRU, c.gru_reset_after = 1; break;
    default:  /* 81: a residual GRU on layer 0's 16 */
      c.hidden_size = 16, c.cell = SLSTM_CELL_GRU, c.residual = 1;
      break;
  }
  return c;
}

int main(int argc, char** argv) {
  static const int64_t stacks[4][4] = {{100, 200, 300, 0}, {1, 0, 0, 0}, {33, 17, 64, 0},
                                       {257, 0, 0, 0}};
  static const int32_t layer_counts[5] = {1, 2, 2, 1, 2};  /* models 4-8 */
  const slstm_cpu_path path =
      argc > 1 && strcmp(argv[1], "reference") == 0 ? SLSTM_CPU_PATH_REFERENCE : SLSTM_CPU_PATH_FAST;
  int m, l, rc;
  for (m = 0; m < 9; ++m) {
    int64_t hidden[4];
    slstm_layer_config layers[2];
    int32_t L = 0;
    slstm_model_config cfg;
    slstm_model* model = NULL;
    slstm_model_config_init(&cfg);
    cfg.input_size = 13 + m;
    if (m < 4) {  /* forward BasicLSTMCell stacks (the fused path) */
      while (L < 4 && stacks[m][L] > 0) hidden[L] = stacks[m][L], ++L;
      cfg.hidden_sizes = hidden;
    } else {
      L = layer_counts[m - 4];
      for (l = 0; l < L; ++l) layers[l] = layer_of(m, l);
      cfg.layers = layers;
    }
    cfg.num_layers = L;
    cfg.forget_bias = m == 2 ? 0.0f : 1.0f;
    if (slstm_model_create_random(&cfg, 100 + (uint64_t)m, 0.0f, &model) != SLSTM_OK) return 1;
    rc = hash_model(m, model, cfg.input_size, path);
    slstm_model_destroy(model);
    if (rc != 0) return rc;
  }
  return 0;
}
