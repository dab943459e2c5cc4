/* Prints one hash per (model, shape, layout) of the output and final state bits a CPU path
 * produces, for proving that a refactoring changed no bit: build this program against two
 * commits' libraries and diff what they print (see docs/architecture.md, "Refactoring").
 * Uses the public C API only, so it builds against any commit.  The kernel is the CPU's
 * best unless SLSTM_CPU_KERNEL=avx2|portable lowers it.
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

int main(int argc, char** argv) {
  static const int64_t stacks[4][4] = {{100, 200, 300, 0}, {1, 0, 0, 0}, {33, 17, 64, 0},
                                       {257, 0, 0, 0}};
  static const int64_t shapes[5][2] = {{10, 5}, {1, 37}, {3, 1}, {12, 10}, {2, 0}};
  const slstm_cpu_path path =
      argc > 1 && strcmp(argv[1], "reference") == 0 ? SLSTM_CPU_PATH_REFERENCE : SLSTM_CPU_PATH_FAST;
  int m, s, lay;
  for (m = 0; m < 4; ++m) {
    int64_t hidden[4];
    int32_t L = 0;
    slstm_model_config cfg;
    slstm_model* model = NULL;
    while (L < 4 && stacks[m][L] > 0) hidden[L] = stacks[m][L], ++L;
    slstm_model_config_init(&cfg);
    cfg.input_size = 13 + m;
    cfg.num_layers = L;
    cfg.hidden_sizes = hidden;
    cfg.forget_bias = m == 2 ? 0.0f : 1.0f;
    if (slstm_model_create_random(&cfg, 100 + (uint64_t)m, 0.0f, &model) != SLSTM_OK) return 1;
    for (s = 0; s < 5; ++s) {
      for (lay = 0; lay < 2; ++lay) {
        const int64_t B = shapes[s][0], T = shapes[s][1], D = cfg.input_size, H = hidden[L - 1];
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
        out = malloc(sizeof(float) * (size_t)(B * T * H + 1));
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
        a.output_count = T > 0 ? (size_t)(B * T * H) : 0;
        a.final_state = fin;
        a.final_state_count = n_state;
        if (slstm_session_forward(session, &a) != SLSTM_OK) return 3;
        if (T > 0) h = fnv(h, out, sizeof(float) * (size_t)(B * T * H));
        h = fnv(h, fin, sizeof(float) * n_state);
        printf("model %d shape %lldx%lld %s: %016llx\n", m, (long long)B, (long long)T,
               lay ? "time-major+lengths" : "batch-major", (unsigned long long)h);
        free(x), free(out), free(init), free(fin), free(len);
        slstm_session_destroy(session);
      }
    }
    slstm_model_destroy(model);
  }
  return 0;
}
