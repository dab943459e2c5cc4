/* The floor of bench/python/overhead.py: the same calls as the Python benchmark (a tiny
 * model: input 4, one layer of 4, batch 1, time 1) made from C with arguments built once.
 * Prints one line per call kind and clock: "<name>_cpu <thread CPU ns per call, best of
 * REPEATS>" and "<name>_wall <wall ns per call, best of REPEATS>".
 *
 *   cc -O2 -std=c99 -I include -I BUILD/include bench/python/c_floor.c -L DIR -lstacklstm -Wl,-rpath,DIR -o c_floor
 *   ./c_floor [calls per repeat] [repeats]
 */
#define _POSIX_C_SOURCE 199309L
#include <stacklstm/stacklstm.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The thread's CPU time (a shared machine's wall clock mostly measures the other
 * processes) and the wall clock, as overhead.py's Python side measures both. */
static double now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(slstm_status st, const char* what) {
  fprintf(stderr, "c_floor: %s: %s: %s\n", what, slstm_status_string(st), slstm_last_error());
  exit(1);
}

int main(int argc, char** argv) {
  long calls = argc > 1 ? atol(argv[1]) : 1000;
  int repeats = argc > 2 ? atoi(argv[2]) : 50;
  int64_t hidden[1] = {4};
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = 4;
  cfg.num_layers = 1;
  cfg.hidden_sizes = hidden;
  slstm_model* model = NULL;
  slstm_status st = slstm_model_create_random(&cfg, 1, 0.0f, &model);
  if (st) die(st, "slstm_model_create_random");
  slstm_session_options opt;
  slstm_session_options_init(&opt);
  opt.max_batch = 1;
  opt.max_time = 1;
  slstm_session* session = NULL;
  st = slstm_session_create(model, &opt, &session);
  if (st) die(st, "slstm_session_create");
  size_t count = 0;
  slstm_model_state_count(model, 1, &count);
  float x[4] = {0.1f, -0.2f, 0.3f, 0.4f}, out[4], state[16], fin[16];
  for (size_t k = 0; k < 16; ++k) state[k] = 0.0f;
  slstm_forward_args args;
  slstm_forward_args_init(&args);
  args.batch = 1;
  args.time = 1;
  args.input = x;
  args.input_count = 4;
  args.output = out;
  args.output_count = 4;
  args.final_state = fin;
  args.final_state_count = count;
  const char* names[2] = {"forward", "step"};
  const clockid_t clocks[2] = {CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC};
  const char* clock_names[2] = {"cpu", "wall"};
  for (int kind = 0; kind < 4; ++kind) {
    double best = 1e30;
    clockid_t clock = clocks[kind % 2];
    for (int r = 0; r < repeats; ++r) {
      double t0 = now_ns(clock);
      for (long i = 0; i < calls; ++i) {
        st = kind < 2 ? slstm_session_forward(session, &args)
                      : slstm_session_step(session, 1, x, 4, state, count, out, 4, fin, count);
        if (st) die(st, names[kind / 2]);
      }
      double per = (now_ns(clock) - t0) / (double)calls;
      if (per < best) best = per;
    }
    printf("%s_%s %.1f\n", names[kind / 2], clock_names[kind % 2], best);
  }
  slstm_session_destroy(session);
  slstm_model_destroy(model);
  return 0;
}
