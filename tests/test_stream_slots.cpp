// Stream slots (issue 17, item 1; header "Stream slots"): a session holds the states of up
// to max_slots streams, and one call advances any set of them as one batch.  Each slot's
// outputs and state are bitwise those of a dedicated batch-1 session fed the same inputs, on
// every CPU path; bad ids, duplicates, closed slots and full tables get their statuses and
// change nothing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "stacklstm/stacklstm.hpp"
#include "support.hpp"

namespace {

t::Session slot_session(const slstm_model* model, std::int64_t max_batch, std::int64_t max_time,
                        std::int64_t max_slots, std::int32_t threads = 0) {
  slstm_session_options o = t::options(max_batch, max_time);
  o.max_slots = max_slots;
  o.num_threads = threads;
  slstm_session* raw = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &raw);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Session(raw);
}

std::int64_t open_slot(slstm_session* s, const std::vector<float>* state = nullptr) {
  std::int64_t slot = -1;
  const slstm_status st = state ? slstm_session_slot_open(s, state->data(), state->size(),
                                                           SLSTM_MEMORY_HOST, &slot)
                                : slstm_session_slot_open(s, nullptr, 0, SLSTM_MEMORY_HOST, &slot);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return slot;
}

std::vector<float> slot_state(slstm_session* s, const slstm_model* m, std::int64_t slot) {
  std::vector<float> state = t::poisoned(t::state_count(m, 1));
  const slstm_status st =
      slstm_session_slot_get_state(s, slot, state.data(), state.size(), SLSTM_MEMORY_HOST);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return state;
}

std::int64_t open_count(const slstm_session* s) {
  std::int64_t max_slots = -1, open = -1;
  REQUIRE(slstm_session_slot_info(s, &max_slots, &open) == SLSTM_OK);
  return open;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A slot call over `slots` with inputs x (layout as given), lengths optional; output poisoned.
// No Catch assertion inside: the BUSY test calls it from a second thread (Catch is not
// thread-safe), so the last layer's size is asked of the C API directly.
struct SlotRun {
  slstm_status status = SLSTM_OK;
  std::vector<float> output;
};
SlotRun slot_forward(slstm_session* s, const slstm_model* m, const std::vector<std::int64_t>& slots,
                     std::int64_t time, const std::vector<float>& x,
                     const std::vector<std::int32_t>* lengths = nullptr,
                     slstm_layout layout = SLSTM_BATCH_MAJOR) {
  SlotRun r;
  const auto B = static_cast<std::int64_t>(slots.size());
  std::int32_t layers = 0;
  std::int64_t h_last = 0;
  if (slstm_model_num_layers(m, &layers) != SLSTM_OK ||
      slstm_model_hidden_size(m, layers - 1, &h_last) != SLSTM_OK) {
    r.status = SLSTM_ERR_INTERNAL;
    return r;
  }
  r.output = t::poisoned(static_cast<std::size_t>(B * time * h_last));
  slstm_slot_forward_args a;
  slstm_slot_forward_args_init(&a);
  a.layout = layout;
  a.batch = B;
  a.slot_ids = slots.data();
  a.slot_ids_count = slots.size();
  a.time = time;
  a.input = x.data();
  a.input_count = x.size();
  if (lengths) {
    a.sequence_lengths = lengths->data();
    a.sequence_lengths_count = lengths->size();
  }
  a.output = r.output.data();
  a.output_count = r.output.size();
  r.status = slstm_session_slot_forward(s, &a);
  return r;
}

// Row b of a [B, T, W] / [T, B, W] array as [T, W].
std::vector<float> row_of(const std::vector<float>& a, std::int64_t B, std::int64_t T,
                          std::int64_t W, std::int64_t b, slstm_layout layout) {
  std::vector<float> out;
  for (std::int64_t t = 0; t < T; ++t) {
    const std::int64_t r = layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
    out.insert(out.end(), a.begin() + r * W, a.begin() + (r + 1) * W);
  }
  return out;
}

// The slots of every stream against a dedicated batch-1 session that carries each stream's
// state itself, over `rounds` calls of random subsets (sizes 1..max_batch, shuffled order),
// chunk lengths 0..max_time, per-slot lengths (0 included) and both layouts.
void check_slots_match_dedicated_sessions(const std::vector<std::int64_t>& hidden,
                                          std::int64_t max_batch, std::int64_t max_time,
                                          std::int64_t streams, int rounds, std::uint64_t seed,
                                          std::int32_t threads = 0) {
  constexpr std::int64_t D = 13;
  t::Model m = t::random_model(D, hidden, seed);
  const std::int64_t H = t::output_size(m.get());
  t::Session slots = slot_session(m.get(), max_batch, max_time, streams, threads);
  t::Session single = t::session(m.get(), 1, max_time);
  std::mt19937_64 rng(seed);

  // Streams 0, 3, 6, ... start from a given state, the others from zeros.
  std::vector<std::vector<float>> state(static_cast<std::size_t>(streams));
  std::vector<std::int64_t> slot_of(static_cast<std::size_t>(streams));
  for (std::int64_t k = 0; k < streams; ++k) {
    auto& st = state[static_cast<std::size_t>(k)];
    if (k % 3 == 0) {
      st = t::random_vector(t::state_count(m.get(), 1), seed + 100 + k);
      slot_of[static_cast<std::size_t>(k)] = open_slot(slots.get(), &st);
    } else {
      st.assign(t::state_count(m.get(), 1), 0.0f);
      slot_of[static_cast<std::size_t>(k)] = open_slot(slots.get());
    }
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(streams));
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::int64_t> batches;  // every size once, then random ones
  for (std::int64_t b = 1; b <= std::min(max_batch, streams); ++b) batches.push_back(b);
  for (int r = 0; r < rounds; ++r) {
    const std::int64_t B = r < static_cast<int>(batches.size())
                               ? batches[static_cast<std::size_t>(r)]
                               : 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(
                                         std::min(max_batch, streams)));
    const auto T = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(max_time + 1));
    const slstm_layout layout = rng() % 2 ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::int64_t> ids;
    std::vector<std::int32_t> lengths;
    for (std::int64_t i = 0; i < B; ++i) {
      ids.push_back(slot_of[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])]);
      lengths.push_back(static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(T + 1)));
    }
    const bool with_lengths = r % 3 != 0;
    const std::vector<float> x =
        t::random_vector(static_cast<std::size_t>(B * T * D), seed * 1000 + r);
    INFO("round " << r << ": batch " << B << ", time " << T << ", layout " << layout);
    const SlotRun got =
        slot_forward(slots.get(), m.get(), ids, T, x, with_lengths ? &lengths : nullptr, layout);
    INFO(slstm_last_error());
    REQUIRE(got.status == SLSTM_OK);
    for (std::int64_t i = 0; i < B; ++i) {
      const std::int64_t k = order[static_cast<std::size_t>(i)];
      auto& st = state[static_cast<std::size_t>(k)];
      const std::vector<float> xi = row_of(x, B, T, D, i, layout);
      const std::vector<std::int32_t> len = {with_lengths ? lengths[static_cast<std::size_t>(i)]
                                                          : static_cast<std::int32_t>(T)};
      t::Call c = t::call_of(1, T, xi);
      c.lengths = &len;
      c.initial_state = &st;
      const t::Run want = t::forward_ok(single.get(), m.get(), c);
      INFO("row " << i << " (stream " << k << ", slot " << ids[static_cast<std::size_t>(i)]
                  << ", length " << len[0] << ")");
      CHECK(t::bitwise_equal(row_of(got.output, B, T, H, i, layout), want.output));
      st = want.final_state;
    }
  }
  for (std::int64_t k = 0; k < streams; ++k) {
    INFO("stream " << k);
    CHECK(t::bitwise_equal(slot_state(slots.get(), m.get(), slot_of[static_cast<std::size_t>(k)]),
                           state[static_cast<std::size_t>(k)]));
  }
}

}  // namespace

TEST_CASE("stream slots: each slot's numbers are bitwise a dedicated batch-1 session's",
          "[slot]") {
  // Odd widths: a partial 16-unit group in every layer; batch sizes 1..13 cover every
  // remainder of the 6-row kernel blocks (and the batch split at B >= 10 with T >= 8).
  check_slots_match_dedicated_sessions({37, 5, 19}, 13, 9, 17, 40, 11);
}

TEST_CASE("stream slots: bitwise with a single worker thread and with more workers than cores",
          "[slot]") {
  check_slots_match_dedicated_sessions({70, 33}, 11, 8, 12, 18, 12, 1);
  check_slots_match_dedicated_sessions({70, 33}, 11, 8, 12, 18, 13, 3);
}

TEST_CASE("stream slots: one frame at a time for many streams stays bitwise", "[slot]") {
  check_slots_match_dedicated_sessions({48}, 16, 1, 24, 60, 14);
}

TEST_CASE("stream slots: a new slot holds the given state or zeros and reads back exactly",
          "[slot]") {
  t::Model m = t::random_model(3, {5, 4}, 21);
  t::Session s = slot_session(m.get(), 2, 2, 3);
  const std::vector<float> given = t::random_vector(t::state_count(m.get(), 1), 22);
  const std::int64_t a = open_slot(s.get(), &given);
  const std::int64_t b = open_slot(s.get());
  CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), a), given));
  CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), b),
                         std::vector<float>(t::state_count(m.get(), 1), 0.0f)));
}

TEST_CASE("stream slots: open takes the lowest closed slot and close frees it", "[slot]") {
  t::Model m = t::random_model(3, {4}, 23);
  t::Session s = slot_session(m.get(), 2, 1, 3);
  CHECK(open_slot(s.get()) == 0);
  CHECK(open_slot(s.get()) == 1);
  CHECK(open_slot(s.get()) == 2);
  CHECK(open_count(s.get()) == 3);
  REQUIRE(slstm_session_slot_close(s.get(), 1) == SLSTM_OK);
  REQUIRE(slstm_session_slot_close(s.get(), 0) == SLSTM_OK);
  CHECK(open_count(s.get()) == 1);
  CHECK(open_slot(s.get()) == 0);
  CHECK(open_slot(s.get()) == 1);
}

TEST_CASE("stream slots: set_state with NULL resets a slot to zeros and with a state sets it",
          "[slot]") {
  t::Model m = t::random_model(3, {4}, 24);
  t::Session s = slot_session(m.get(), 1, 1, 1);
  const std::vector<float> given = t::random_vector(t::state_count(m.get(), 1), 25);
  const std::int64_t slot = open_slot(s.get(), &given);
  REQUIRE(slstm_session_slot_set_state(s.get(), slot, nullptr, 0, SLSTM_MEMORY_HOST) == SLSTM_OK);
  CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), slot),
                         std::vector<float>(given.size(), 0.0f)));
  REQUIRE(slstm_session_slot_set_state(s.get(), slot, given.data(), given.size(),
                                       SLSTM_MEMORY_HOST) == SLSTM_OK);
  CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), slot), given));
}

TEST_CASE("stream slots: slot_info reports max_slots and the open count", "[slot]") {
  t::Model m = t::random_model(3, {4}, 26);
  t::Session s = slot_session(m.get(), 1, 1, 5);
  std::int64_t max_slots = -1, open = -1;
  REQUIRE(slstm_session_slot_info(s.get(), &max_slots, &open) == SLSTM_OK);
  CHECK(max_slots == 5);
  CHECK(open == 0);
  open_slot(s.get());
  REQUIRE(slstm_session_slot_info(s.get(), nullptr, &open) == SLSTM_OK);
  CHECK(open == 1);
  t::Session plain = t::session(m.get(), 1, 1);
  REQUIRE(slstm_session_slot_info(plain.get(), &max_slots, nullptr) == SLSTM_OK);
  CHECK(max_slots == 0);
}

TEST_CASE("stream slots: a call of time 0 changes no slot", "[slot]") {
  t::Model m = t::random_model(3, {4}, 27);
  t::Session s = slot_session(m.get(), 2, 2, 2);
  const std::vector<float> given = t::random_vector(t::state_count(m.get(), 1), 28);
  const std::int64_t a = open_slot(s.get(), &given);
  const std::int64_t b = open_slot(s.get());
  const std::vector<float> none;
  REQUIRE(slot_forward(s.get(), m.get(), {b, a}, 0, none).status == SLSTM_OK);
  CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), a), given));
}

TEST_CASE("stream slots: a session without slots refuses open with SLSTM_ERR_SLOTS_FULL",
          "[slot][errors]") {
  t::Model m = t::random_model(3, {4}, 29);
  t::Session s = t::session(m.get(), 1, 1);
  std::int64_t slot = -7;
  CHECK(slstm_session_slot_open(s.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot) ==
        SLSTM_ERR_SLOTS_FULL);
  CHECK(has(slstm_last_error(), "max_slots = 0"));
  CHECK(slot == -7);
  CHECK(std::string(slstm_status_string(SLSTM_ERR_SLOTS_FULL)) != "unknown status");
}

TEST_CASE("stream slots: open on a full table is SLSTM_ERR_SLOTS_FULL and changes nothing",
          "[slot][errors]") {
  t::Model m = t::random_model(3, {4}, 30);
  t::Session s = slot_session(m.get(), 1, 1, 2);
  open_slot(s.get());
  open_slot(s.get());
  std::int64_t slot = -7;
  CHECK(slstm_session_slot_open(s.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot) ==
        SLSTM_ERR_SLOTS_FULL);
  CHECK(has(slstm_last_error(), "all 2 stream slots are open"));
  CHECK(slot == -7);
  CHECK(open_count(s.get()) == 2);
}

TEST_CASE("stream slots: max_slots below 0 or above SLSTM_MAX_SLOTS is refused",
          "[slot][errors]") {
  t::Model m = t::random_model(3, {4}, 31);
  slstm_session_options o = t::options(1, 1);
  slstm_session* raw = nullptr;
  o.max_slots = -1;
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(has(slstm_last_error(), "options->max_slots"));
  o.max_slots = SLSTM_MAX_SLOTS + 1;
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(has(slstm_last_error(), "options->max_slots"));
  CHECK(raw == nullptr);
}

namespace {
// Two open slots with known states, for the error cases: each checks that its failed call
// left both states (and the output) untouched.
struct ErrorFixture {
  t::Model m = t::random_model(3, {6, 4}, 40);
  t::Session s = slot_session(m.get(), 3, 2, 4);
  std::vector<float> state_a = t::random_vector(t::state_count(m.get(), 1), 41);
  std::vector<float> state_b = t::random_vector(t::state_count(m.get(), 1), 42);
  std::int64_t a = open_slot(s.get(), &state_a);
  std::int64_t b = open_slot(s.get(), &state_b);
  std::vector<float> x = t::random_vector(2 * 2 * 3, 43);  // batch 2, time 2

  void check_unchanged() {
    CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), a), state_a));
    CHECK(t::bitwise_equal(slot_state(s.get(), m.get(), b), state_b));
    CHECK(open_count(s.get()) == 2);
  }
  void check_refused(const SlotRun& r, slstm_status want, const std::string& message_part) {
    CHECK(r.status == want);
    INFO(slstm_last_error());
    CHECK(has(slstm_last_error(), message_part));
    CHECK(t::count_poison(r.output) == r.output.size());
    check_unchanged();
  }
};
}  // namespace

TEST_CASE("stream slots: a slot id outside 0..max_slots-1 is SLSTM_ERR_OUT_OF_RANGE naming it",
          "[slot][errors]") {
  ErrorFixture f;
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.a, 4}, 2, f.x), SLSTM_ERR_OUT_OF_RANGE,
                  "slot_ids[1] is 4");
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {-1, f.a}, 2, f.x), SLSTM_ERR_OUT_OF_RANGE,
                  "slot_ids[0] is -1");
}

TEST_CASE("stream slots: a closed slot in a call is SLSTM_ERR_INVALID_ARGUMENT naming it",
          "[slot][errors]") {
  ErrorFixture f;
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.b, 3}, 2, f.x),
                  SLSTM_ERR_INVALID_ARGUMENT, "slot_ids[1] is 3: that slot is not open");
}

TEST_CASE("stream slots: the same slot twice in a call is SLSTM_ERR_INVALID_ARGUMENT naming both",
          "[slot][errors]") {
  ErrorFixture f;
  const std::vector<float> x3 = t::random_vector(3 * 2 * 3, 44);
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.b, f.a, f.b}, 2, x3),
                  SLSTM_ERR_INVALID_ARGUMENT, "slot_ids[0] and slot_ids[2] are both");
  // The marks of a refused call do not linger: the next call with the same slots once runs.
  const SlotRun ok = slot_forward(f.s.get(), f.m.get(), {f.b, f.a}, 2, f.x);
  CHECK(ok.status == SLSTM_OK);
}

TEST_CASE("stream slots: NULL slot_ids or a wrong slot_ids_count is refused", "[slot][errors]") {
  ErrorFixture f;
  std::vector<float> out = t::poisoned(2 * 2 * 4);
  const std::int64_t ids[2] = {f.a, f.b};
  slstm_slot_forward_args a = SLSTM_SLOT_FORWARD_ARGS_INIT;
  a.batch = 2;
  a.time = 2;
  a.input = f.x.data();
  a.input_count = f.x.size();
  a.output = out.data();
  a.output_count = out.size();
  a.slot_ids_count = 2;
  CHECK(slstm_session_slot_forward(f.s.get(), &a) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(has(slstm_last_error(), "slot_ids is NULL"));
  a.slot_ids = ids;
  a.slot_ids_count = 1;
  CHECK(slstm_session_slot_forward(f.s.get(), &a) == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(has(slstm_last_error(), "slot_ids_count"));
  CHECK(t::count_poison(out) == out.size());
  f.check_unchanged();
}

TEST_CASE("stream slots: the forward checks of counts and batch and lengths apply to slot calls",
          "[slot][errors]") {
  ErrorFixture f;
  const std::vector<float> short_x(f.x.begin(), f.x.end() - 1);
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.a, f.b}, 2, short_x),
                  SLSTM_ERR_SHAPE_MISMATCH, "input_count");
  const std::vector<std::int32_t> bad_lengths = {1, 3};
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.a, f.b}, 2, f.x, &bad_lengths),
                  SLSTM_ERR_OUT_OF_RANGE, "sequence_lengths[1]");
  const std::vector<float> x4 = t::random_vector(4 * 2 * 3, 45);
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.a, f.b, 2, 3}, 2, x4),
                  SLSTM_ERR_OUT_OF_RANGE, "max_batch");
  f.check_refused(slot_forward(f.s.get(), f.m.get(), {f.a, f.b}, 3, x4),
                  SLSTM_ERR_OUT_OF_RANGE, "max_time");
}

TEST_CASE("stream slots: an output overlapping the input or slot_ids is SLSTM_ERR_ALIASING",
          "[slot][errors]") {
  ErrorFixture f;
  // One block: [slot ids as floats' room | input | output], overlapping on purpose.
  std::vector<float> buf = t::random_vector(64, 46);
  slstm_slot_forward_args a = SLSTM_SLOT_FORWARD_ARGS_INIT;
  const std::int64_t ids[2] = {f.a, f.b};
  a.batch = 2;
  a.time = 2;
  a.slot_ids = ids;
  a.slot_ids_count = 2;
  a.input = buf.data();
  a.input_count = 12;
  a.output = buf.data() + 8;  // overlaps input[8..12)
  a.output_count = 16;
  CHECK(slstm_session_slot_forward(f.s.get(), &a) == SLSTM_ERR_ALIASING);
  CHECK(has(slstm_last_error(), "output overlaps input"));
  std::vector<std::int64_t> id_buf(16, 0);
  id_buf[0] = f.a;
  id_buf[1] = f.b;
  a.slot_ids = id_buf.data();
  a.input = f.x.data();
  a.output = reinterpret_cast<float*>(id_buf.data());  // over the ids
  CHECK(slstm_session_slot_forward(f.s.get(), &a) == SLSTM_ERR_ALIASING);
  CHECK(has(slstm_last_error(), "output overlaps slot_ids"));
  CHECK(id_buf[0] == f.a);
  f.check_unchanged();
}

TEST_CASE("stream slots: close and set_state and get_state refuse bad or closed slots",
          "[slot][errors]") {
  ErrorFixture f;
  std::vector<float> st = t::poisoned(t::state_count(f.m.get(), 1));
  CHECK(slstm_session_slot_close(f.s.get(), 2) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(has(slstm_last_error(), "slot is 2: that slot is not open"));
  CHECK(slstm_session_slot_close(f.s.get(), 9) == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(slstm_session_slot_get_state(f.s.get(), 3, st.data(), st.size(), SLSTM_MEMORY_HOST) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(slstm_session_slot_get_state(f.s.get(), f.a, st.data(), st.size() - 1,
                                     SLSTM_MEMORY_HOST) == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(has(slstm_last_error(), "state_count"));
  CHECK(slstm_session_slot_get_state(f.s.get(), f.a, nullptr, 0, SLSTM_MEMORY_HOST) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(t::count_poison(st) == st.size());
  const std::vector<float> other = t::random_vector(st.size(), 47);
  CHECK(slstm_session_slot_set_state(f.s.get(), f.a, other.data(), other.size() + 1,
                                     SLSTM_MEMORY_HOST) == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(slstm_session_slot_set_state(f.s.get(), f.a, nullptr, 3, SLSTM_MEMORY_HOST) ==
        SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(slstm_session_slot_set_state(f.s.get(), -1, other.data(), other.size(),
                                     SLSTM_MEMORY_HOST) == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(slstm_session_slot_set_state(f.s.get(), f.a, other.data(), other.size(),
                                     SLSTM_MEMORY_DEVICE) == SLSTM_ERR_UNSUPPORTED);
  CHECK(slstm_session_slot_set_state(f.s.get(), f.a, other.data(), other.size(),
                                     static_cast<slstm_memory>(5)) == SLSTM_ERR_INVALID_ARGUMENT);
  std::int64_t slot = -7;
  CHECK(slstm_session_slot_open(f.s.get(), other.data(), other.size() - 1, SLSTM_MEMORY_HOST,
                                &slot) == SLSTM_ERR_SHAPE_MISMATCH);
  CHECK(slstm_session_slot_open(f.s.get(), nullptr, 0, SLSTM_MEMORY_HOST, nullptr) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(slot == -7);
  f.check_unchanged();
}

TEST_CASE("stream slots: a slot call on a session another thread is using is SLSTM_ERR_BUSY",
          "[slot][concurrency]") {
  t::Model m = t::random_model(16, {256, 256}, 50);
  t::Session s = slot_session(m.get(), 8, 64, 8);
  std::vector<std::int64_t> ids;
  for (int k = 0; k < 8; ++k) ids.push_back(open_slot(s.get()));
  const std::vector<float> x = t::random_vector(8 * 64 * 16, 51);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread worker([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!stop.load() && std::chrono::steady_clock::now() < deadline) {
      // BUSY is the worker's legitimate answer when the reader holds the session just then.
      const slstm_status r = slot_forward(s.get(), m.get(), ids, 64, x).status;
      if (r != SLSTM_OK && r != SLSTM_ERR_BUSY) ++failures;
    }
  });
  bool saw_busy = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<float> st(t::state_count(m.get(), 1));
  while (!saw_busy && std::chrono::steady_clock::now() < deadline) {
    const slstm_status r =
        slstm_session_slot_get_state(s.get(), ids[3], st.data(), st.size(), SLSTM_MEMORY_HOST);
    saw_busy = r == SLSTM_ERR_BUSY;
  }
  stop = true;
  worker.join();
  CHECK(saw_busy);
  CHECK(has(slstm_last_error(), "another thread"));
  CHECK(failures.load() == 0);
}

TEST_CASE("stream slots: the C++ wrapper's slot calls give the C API's results", "[slot][cpp]") {
  namespace sl = stacklstm;
  const sl::Model m = sl::Model::random(5, {9, 6}, 60);
  sl::Session s(m, sl::SessionOptions(3, 2)
                       .backend(SLSTM_BACKEND_CPU)
                       .cpu_path(t::cpu_path_under_test())
                       .max_slots(3));
  sl::Session single(m, sl::SessionOptions(1, 2).backend(SLSTM_BACKEND_CPU).cpu_path(
                            t::cpu_path_under_test()));
  const std::vector<float> given = t::random_vector(m.state_count(1), 61);
  const std::int64_t a = s.slot_open(given);
  const std::int64_t b = s.slot_open();
  CHECK(s.slot_open_count() == 2);
  const std::vector<float> x = t::random_vector(2 * 2 * 5, 62);  // rows: b, a
  std::vector<float> out(2 * 2 * 6);
  const std::vector<std::int64_t> ids = {b, a};
  s.slot_forward(ids, 2, x, out);
  const sl::ForwardResult want_a = single.forward(
      1, 2, sl::span<const float>(x.data() + 10, 10), [&] {
        sl::ForwardOptions o;
        o.initial_state = given;
        return o;
      }());
  CHECK(t::bitwise_equal(std::vector<float>(out.begin() + 12, out.end()), want_a.output));
  std::vector<float> got(m.state_count(1));
  s.slot_get_state(a, got);
  CHECK(t::bitwise_equal(got, want_a.final_state));
  s.slot_set_state(a);
  s.slot_get_state(a, got);
  CHECK(std::all_of(got.begin(), got.end(), [](float v) { return v == 0.0f; }));
  s.slot_close(b);
  CHECK(s.slot_open_count() == 1);
  try {
    s.slot_forward(ids, 2, x, out);
    FAIL("no stacklstm::Error was thrown");
  } catch (const sl::Error& e) {
    CHECK(e.status() == SLSTM_ERR_INVALID_ARGUMENT);
  }
}

TEST_CASE("stream slots: a slot table too large to allocate is SLSTM_ERR_OUT_OF_MEMORY",
          "[slot][errors][memory]") {
  // 1024 layers of 16 units: 32768 floats per slot, so SLSTM_MAX_SLOTS slots would take
  // 2^31 x 2^15 x 4 bytes = 256 TiB, more than a 47-bit address space holds.
  t::Model m = t::random_model(16, std::vector<std::int64_t>(1024, 16), 70);
  slstm_session_options o = t::options(1, 1);
  o.max_slots = SLSTM_MAX_SLOTS;
  slstm_session* raw = nullptr;
  CHECK(slstm_session_create(m.get(), &o, &raw) == SLSTM_ERR_OUT_OF_MEMORY);
  CHECK(has(slstm_last_error(), "max_slots"));
  CHECK(raw == nullptr);
}

TEST_CASE("stream slots: a session with slots runs plain forward calls as one without",
          "[slot]") {
  t::Model m = t::random_model(5, {21, 8}, 71);
  t::Session with = slot_session(m.get(), 4, 3, 6);
  t::Session without = t::session(m.get(), 4, 3);
  open_slot(with.get());
  const std::vector<float> x = t::random_vector(4 * 3 * 5, 72);
  const std::vector<float> init = t::random_vector(t::state_count(m.get(), 4), 73);
  t::Call c = t::call_of(4, 3, x);
  c.initial_state = &init;
  t::check_same_bits(with.get(), without.get(), m.get(), c);
  CHECK(open_count(with.get()) == 1);
}
