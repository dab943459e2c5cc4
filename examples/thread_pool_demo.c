/* Lending a CPU session the application's own thread pool (slstm_session_options.thread_pool,
 * since 0.14).  The pool here is a plain POSIX-threads pool with a queue, as an application
 * might already have; the library asks it for up to num_threads tasks per call and runs on
 * those that start in time.  The seed stack runs once on the lent pool and once on the
 * session's own workers: the outputs must be the same bits.  Usage: thread_pool_demo [threads] */
#include <pthread.h>
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

/* ---- the application's pool: `threads` threads taking numbered tasks off a counter ---- */

typedef struct app_pool {
  pthread_mutex_t mutex;
  pthread_cond_t work, done;
  slstm_pool_task task; /* the batch being run: task(arg, next..n-1) */
  void* arg;
  int next, n, running, stop, threads;
  pthread_t* thread;
} app_pool;

static void* app_pool_loop(void* p) {
  app_pool* pool = (app_pool*)p;
  pthread_mutex_lock(&pool->mutex);
  for (;;) {
    while (!pool->stop && pool->next >= pool->n) pthread_cond_wait(&pool->work, &pool->mutex);
    if (pool->stop) break;
    const int i = pool->next++;
    ++pool->running;
    pthread_mutex_unlock(&pool->mutex);
    pool->task(pool->arg, i);
    pthread_mutex_lock(&pool->mutex);
    if (--pool->running == 0 && pool->next >= pool->n) pthread_cond_broadcast(&pool->done);
  }
  pthread_mutex_unlock(&pool->mutex);
  return NULL;
}

/* slstm_thread_pool.parallel_for: hands the n tasks to the threads and waits for them (one
 * batch at a time: a second caller waits for the first's to finish). */
static void app_parallel_for(void* p, slstm_pool_task task, void* arg, int32_t n) {
  app_pool* pool = (app_pool*)p;
  pthread_mutex_lock(&pool->mutex);
  while (pool->next < pool->n || pool->running > 0) pthread_cond_wait(&pool->done, &pool->mutex);
  pool->task = task;
  pool->arg = arg;
  pool->next = 0;
  pool->n = n;
  pthread_cond_broadcast(&pool->work);
  while (pool->next < pool->n || pool->running > 0) pthread_cond_wait(&pool->done, &pool->mutex);
  pthread_cond_broadcast(&pool->done);
  pthread_mutex_unlock(&pool->mutex);
}

static int app_pool_start(app_pool* pool, int threads) {
  memset(pool, 0, sizeof *pool);
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_cond_init(&pool->work, NULL);
  pthread_cond_init(&pool->done, NULL);
  pool->thread = calloc((size_t)threads, sizeof(pthread_t));
  if (pool->thread == NULL) return 0;
  for (; pool->threads < threads; ++pool->threads) {
    if (pthread_create(&pool->thread[pool->threads], NULL, app_pool_loop, pool) != 0) break;
  }
  return pool->threads > 0;
}

static void app_pool_stop(app_pool* pool) {
  pthread_mutex_lock(&pool->mutex);
  pool->stop = 1;
  pthread_cond_broadcast(&pool->work);
  pthread_mutex_unlock(&pool->mutex);
  for (int i = 0; i < pool->threads; ++i) pthread_join(pool->thread[i], NULL);
  free(pool->thread);
  pthread_cond_destroy(&pool->done);
  pthread_cond_destroy(&pool->work);
  pthread_mutex_destroy(&pool->mutex);
}

/* ---- the library on it ------------------------------------------------------------------ */

/* Runs the seed stack over x on a session created with `lent` (NULL: its own workers). */
static void run(const slstm_model* model, const slstm_thread_pool* lent, const float* x,
                int64_t B, int64_t T, float* out, size_t out_count, char* pool_line) {
  slstm_session_options opt;
  slstm_session_options_init(&opt);
  opt.max_batch = B;
  opt.max_time = T;
  opt.thread_pool = lent;
  slstm_session* session = NULL;
  CHECK(slstm_session_create(model, &opt, &session));
  slstm_forward_args args;
  slstm_forward_args_init(&args);
  args.batch = B;
  args.time = T;
  args.input = x;
  args.input_count = (size_t)(B * T * 128);
  args.output = out;
  args.output_count = out_count;
  CHECK(slstm_session_forward(session, &args));
  /* The plan's "pool" parameter says which threads ran the call. */
  char plan[16384];
  size_t length = 0;
  CHECK(slstm_session_describe(session, SLSTM_DESCRIBE_JSON, plan, sizeof plan, &length));
  const char* key = "\"pool\": \"";
  const char* value = strstr(plan, key);
  size_t k = 0;
  if (value != NULL) {
    value += strlen(key);
    for (; value[k] != '\0' && value[k] != '"' && k + 1 < 512; ++k) pool_line[k] = value[k];
  }
  pool_line[k] = '\0';
  slstm_session_destroy(session);
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 4;
  if (threads < 1 || threads > 256) {
    fprintf(stderr, "threads must be in [1, 256]\n");
    return 2;
  }
  const int64_t hidden[3] = {100, 200, 300};
  const int64_t B = 10, T = 50, D = 128;
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = D;
  cfg.num_layers = 3;
  cfg.hidden_sizes = hidden;
  slstm_model* model = NULL;
  CHECK(slstm_model_create_random(&cfg, 42, 0.0f, &model));

  const size_t n_out = (size_t)(B * T * hidden[2]);
  float* x = malloc(sizeof(float) * (size_t)(B * T * D));
  float* on_pool = malloc(sizeof(float) * n_out);
  float* own = malloc(sizeof(float) * n_out);
  if (x == NULL || on_pool == NULL || own == NULL) return 1;
  srand(7);
  for (int64_t i = 0; i < B * T * D; ++i) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;

  app_pool pool;
  if (!app_pool_start(&pool, threads)) {
    fprintf(stderr, "cannot start the application's threads\n");
    return 1;
  }
  slstm_thread_pool lent;
  lent.struct_size = sizeof lent;
  lent.num_threads = pool.threads;
  lent.parallel_for = app_parallel_for;
  lent.pool_arg = &pool;

  char line_pool[512], line_own[512];
  run(model, &lent, x, B, T, on_pool, n_out, line_pool);
  run(model, NULL, x, B, T, own, n_out, line_own);
  app_pool_stop(&pool);

  printf("seed stack [100, 200, 300], batch %lld, time %lld, input %lld\n", (long long)B,
         (long long)T, (long long)D);
  printf("on the application's pool: %s\n", line_pool);
  printf("on the session's own:      %s\n", line_own);
  const int same = memcmp(on_pool, own, sizeof(float) * n_out) == 0;
  printf("outputs the same bits: %s\n", same ? "yes" : "NO");
  free(x);
  free(on_pool);
  free(own);
  slstm_model_destroy(model);
  return same ? 0 : 1;
}
