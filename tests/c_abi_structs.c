/* The versioned structs as a C caller sees them (strict C99, public header only):
 *   - the static initializers (SLSTM_*_INIT) and the init macros give the same defaults;
 *   - a caller built against a NEWER header (simulated: each struct followed by a field this
 *     library does not know) is served while that field is 0 and refused once it is set.
 * Exit 0 on success; every failed check prints one line. */
#include <stdio.h>
#include <string.h>

#include "stacklstm/stacklstm.h"

static int failures = 0;
#define EXPECT(cond)                                                 \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                    \
    }                                                                \
  } while (0)

/* What a newer header would declare: the same struct with one more field. */
typedef struct {
  slstm_session_options base;
  int64_t added_later;
} newer_session_options;
typedef struct {
  slstm_forward_args base;
  int32_t added_later;
} newer_forward_args;

static void initializers_match_the_init_functions(void) {
  slstm_model_config c1 = SLSTM_MODEL_CONFIG_INIT, c2;
  slstm_session_options o1 = SLSTM_SESSION_OPTIONS_INIT, o2;
  slstm_forward_args a1 = SLSTM_FORWARD_ARGS_INIT, a2;
  slstm_onnx_lstm_node n1 = SLSTM_ONNX_LSTM_NODE_INIT, n2;
  slstm_slot_forward_args s1 = SLSTM_SLOT_FORWARD_ARGS_INIT, s2;
  slstm_onnx_gru_node g1 = SLSTM_ONNX_GRU_NODE_INIT, g2;
  memset(&c2, 0xAB, sizeof c2);
  memset(&o2, 0xAB, sizeof o2);
  memset(&a2, 0xAB, sizeof a2);
  memset(&n2, 0xAB, sizeof n2);
  memset(&s2, 0xAB, sizeof s2);
  memset(&g2, 0xAB, sizeof g2);
  slstm_model_config_init(&c2);
  slstm_session_options_init(&o2);
  slstm_forward_args_init(&a2);
  slstm_onnx_lstm_node_init(&n2);
  slstm_slot_forward_args_init(&s2);
  slstm_onnx_gru_node_init(&g2);
  EXPECT(g1.struct_size == g2.struct_size && g1.struct_size == sizeof g1);
  EXPECT(g1.direction == g2.direction && g1.has_clip == g2.has_clip && g1.clip == g2.clip);
  EXPECT(g1.linear_before_reset == g2.linear_before_reset && g1.layout == g2.layout);
  EXPECT(g1.num_activations == g2.num_activations && g1.activations == g2.activations);
  EXPECT(c1.struct_size == c2.struct_size && c1.struct_size == sizeof c1);
  EXPECT(c1.input_size == c2.input_size && c1.num_layers == c2.num_layers);
  EXPECT(c1.hidden_sizes == c2.hidden_sizes && c1.forget_bias == c2.forget_bias);
  EXPECT(o1.struct_size == o2.struct_size && o1.backend == o2.backend);
  EXPECT(o1.max_batch == o2.max_batch && o1.max_time == o2.max_time);
  EXPECT(o1.cpu_path == o2.cpu_path && o1.num_threads == o2.num_threads);
  EXPECT(o1.device == o2.device && o1.allow_tf32 == o2.allow_tf32);
  EXPECT(o1.cuda_stream == o2.cuda_stream);
  EXPECT(o1.config == o2.config && o1.max_slots == o2.max_slots && o1.max_slots == 0);
  EXPECT(o1.precision == o2.precision && o1.precision == SLSTM_PRECISION_DEFAULT);
  EXPECT(o1.thread_pool == o2.thread_pool && o1.thread_pool == NULL);
  EXPECT(a1.struct_size == a2.struct_size && a1.layout == a2.layout);
  EXPECT(a1.batch == a2.batch && a1.time == a2.time && a1.memory == a2.memory);
  EXPECT(a1.input == a2.input && a1.input_count == a2.input_count);
  EXPECT(a1.sequence_lengths == a2.sequence_lengths && a1.initial_state == a2.initial_state);
  EXPECT(a1.output == a2.output && a1.final_state == a2.final_state);
  EXPECT(a1.final_state_count == a2.final_state_count);
  EXPECT(n1.struct_size == n2.struct_size && n1.direction == n2.direction);
  EXPECT(n1.has_clip == n2.has_clip && n1.input_forget == n2.input_forget);
  EXPECT(n1.num_activations == n2.num_activations && n1.peepholes == n2.peepholes);
  EXPECT(s1.struct_size == s2.struct_size && s1.struct_size == sizeof s1);
  EXPECT(s1.layout == s2.layout && s1.batch == s2.batch && s1.time == s2.time);
  EXPECT(s1.slot_ids == s2.slot_ids && s1.slot_ids_count == s2.slot_ids_count);
  EXPECT(s1.input == s2.input && s1.input_count == s2.input_count);
  EXPECT(s1.sequence_lengths == s2.sequence_lengths);
  EXPECT(s1.sequence_lengths_count == s2.sequence_lengths_count);
  EXPECT(s1.output == s2.output && s1.output_count == s2.output_count);
  EXPECT(s1.memory == s2.memory && s1.memory == SLSTM_MEMORY_HOST);
}

static void a_newer_caller_is_served_while_its_new_fields_are_zero(void) {
  const int64_t hidden[1] = {3};
  slstm_model_config cfg = SLSTM_MODEL_CONFIG_INIT;
  slstm_model* model = NULL;
  slstm_session* session = NULL;
  newer_session_options o;
  newer_forward_args a;
  float x[2] = {0.5f, -0.25f}, out[3] = {0, 0, 0};
  cfg.input_size = 2;
  cfg.num_layers = 1;
  cfg.hidden_sizes = hidden;
  EXPECT(slstm_model_create_random(&cfg, 1, 0.0f, &model) == SLSTM_OK);

  slstm_session_options_init_sized(&o.base, sizeof o);
  EXPECT(o.base.struct_size == sizeof o && o.added_later == 0);
  o.base.max_batch = 1;
  o.base.max_time = 1;
  o.added_later = 1; /* a field this library does not know, set: refused */
  EXPECT(slstm_session_create(model, &o.base, &session) == SLSTM_ERR_UNSUPPORTED);
  EXPECT(session == NULL);
  o.added_later = 0; /* left at its default: served */
  EXPECT(slstm_session_create(model, &o.base, &session) == SLSTM_OK);

  slstm_forward_args_init_sized(&a.base, sizeof a);
  a.base.batch = 1;
  a.base.time = 1;
  a.base.input = x;
  a.base.input_count = 2;
  a.base.output = out;
  a.base.output_count = 3;
  EXPECT(slstm_session_forward(session, &a.base) == SLSTM_OK);
  a.added_later = -7;
  EXPECT(slstm_session_forward(session, &a.base) == SLSTM_ERR_UNSUPPORTED);
  slstm_session_destroy(session);
  slstm_model_destroy(model);
}

int main(void) {
  initializers_match_the_init_functions();
  a_newer_caller_is_served_while_its_new_fields_are_zero();
  printf("%s\n", failures ? "FAIL" : "ok: versioned structs behave as the header says");
  return failures ? 1 : 0;
}
