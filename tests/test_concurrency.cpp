// Concurrency (issue 8): a model is shared by threads, each with its own session; sessions and
// models are created and destroyed while other threads run.  Every forward's result must be
// bitwise equal to the same call run single-threaded, on the CPU path under test.
//
// These tests are what the ThreadSanitizer build runs (.ci/reliability.sh, tag
// [concurrency]); in a normal build they take a few seconds.  Catch2's assertions are not
// thread-safe, so the worker threads only count and describe mismatches; the test's own
// thread asserts on the totals.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

constexpr std::int64_t kD = 5;
const std::vector<std::int64_t> kHidden = {20, 7, 12};  // 20: two 16-unit groups on the fast path
constexpr std::uint64_t kModelSeed = 8001;
constexpr std::int64_t kMaxBatch = 7;
constexpr std::int64_t kMaxTime = 9;
constexpr int kThreads = 8;

// One forward call: shapes, layout, optional lengths and initial state, all deterministic.
struct Job {
  std::int64_t batch = 1, time = 1;
  slstm_layout layout = SLSTM_BATCH_MAJOR;
  bool step = false;  // run through slstm_session_step (time == 1, batch-major)
  std::vector<float> input;
  std::vector<std::int32_t> lengths;  // empty: none
  std::vector<float> initial_state;   // empty: zeros
};

struct Result {
  slstm_status status = SLSTM_ERR_INTERNAL;
  std::vector<float> output, final_state;
  bool operator==(const Result& o) const {
    return status == o.status && t::bitwise_equal(output, o.output) &&
           t::bitwise_equal(final_state, o.final_state);
  }
};

std::size_t state_count(const slstm_model* m, std::int64_t batch) {
  std::size_t n = 0;
  slstm_model_state_count(m, batch, &n);
  return n;
}

// Different shapes and lengths, including time 0, length 0, both layouts and single steps.
std::vector<Job> make_jobs(const slstm_model* m, int count) {
  std::vector<Job> jobs;
  std::uint64_t r = 12345;
  auto next = [&r](std::uint64_t n) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    return (r >> 33) % n;
  };
  for (int k = 0; k < count; ++k) {
    Job j;
    j.batch = 1 + static_cast<std::int64_t>(next(kMaxBatch));
    j.step = k % 7 == 3;
    j.time = j.step ? 1 : static_cast<std::int64_t>(next(kMaxTime + 1));
    j.layout = !j.step && next(2) ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR;
    j.input = t::random_vector(static_cast<std::size_t>(j.batch * j.time * kD), 100 + k);
    if (!j.step && next(2)) {
      for (std::int64_t b = 0; b < j.batch; ++b) {
        j.lengths.push_back(static_cast<std::int32_t>(next(static_cast<std::uint64_t>(j.time) + 1)));
      }
    }
    if (next(2)) j.initial_state = t::random_vector(state_count(m, j.batch), 900 + k, -0.5f, 0.5f);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

Result run(slstm_session* s, const slstm_model* m, const Job& j) {
  Result r;
  r.output.assign(static_cast<std::size_t>(j.batch * j.time * kHidden.back()), -7.0f);
  r.final_state.assign(state_count(m, j.batch), -7.0f);
  if (j.step) {
    r.status = slstm_session_step(
        s, j.batch, j.input.data(), j.input.size(),
        j.initial_state.empty() ? nullptr : j.initial_state.data(), j.initial_state.size(),
        r.output.data(), r.output.size(), r.final_state.data(), r.final_state.size());
    return r;
  }
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.layout = j.layout;
  a.batch = j.batch;
  a.time = j.time;
  a.input = j.input.empty() ? nullptr : j.input.data();
  a.input_count = j.input.size();
  if (!j.lengths.empty()) {
    a.sequence_lengths = j.lengths.data();
    a.sequence_lengths_count = j.lengths.size();
  }
  if (!j.initial_state.empty()) {
    a.initial_state = j.initial_state.data();
    a.initial_state_count = j.initial_state.size();
  }
  if (!r.output.empty()) {
    a.output = r.output.data();
    a.output_count = r.output.size();
  }
  a.final_state = r.final_state.data();
  a.final_state_count = r.final_state.size();
  r.status = slstm_session_forward(s, &a);
  return r;
}

// The session options every session of these tests uses (the results of the fast path
// depend on its options, so the single-threaded oracle uses the very same ones).
slstm_session_options session_options() {
  slstm_session_options o = t::options(kMaxBatch, kMaxTime);
  o.num_threads = 2;  // the fast path's own worker pool runs too
  return o;
}

slstm_session* new_session(const slstm_model* m) {
  const slstm_session_options o = session_options();
  slstm_session* s = nullptr;
  return slstm_session_create(m, &o, &s) == SLSTM_OK ? s : nullptr;
}

slstm_model* new_model() {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = kD;
  cfg.num_layers = static_cast<std::int32_t>(kHidden.size());
  cfg.hidden_sizes = kHidden.data();
  slstm_model* m = nullptr;
  return slstm_model_create_random(&cfg, kModelSeed, 0.0f, &m) == SLSTM_OK ? m : nullptr;
}

// The oracle: every job run once, in order, on one session of one thread.
std::vector<Result> single_threaded(const slstm_model* m, const std::vector<Job>& jobs) {
  t::Session s(new_session(m));
  REQUIRE(s);
  std::vector<Result> want;
  for (const Job& j : jobs) {
    want.push_back(run(s.get(), m, j));
    INFO(slstm_last_error());
    REQUIRE(want.back().status == SLSTM_OK);
  }
  return want;
}

// Mismatch bookkeeping shared by worker threads.
struct Tally {
  std::atomic<long> forwards{0};
  std::atomic<long> mismatches{0};
  std::atomic<long> setup_failures{0};
  std::mutex mutex;
  std::string first;
  void mismatch(const std::string& what) {
    if (mismatches.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lock(mutex);
      first = what;
    }
  }
};

void check(Tally& tally, const Result& got, const Result& want, const char* who, int job) {
  tally.forwards.fetch_add(1);
  if (!(got == want)) {
    tally.mismatch(std::string(who) + ": job " + std::to_string(job) + " differs (status " +
                   std::to_string(got.status) + ")");
  }
}

}  // namespace

TEST_CASE("eight threads sharing one model give the single-threaded results bitwise",
          "[concurrency]") {
  t::Model model(new_model());
  REQUIRE(model);
  const std::vector<Job> jobs = make_jobs(model.get(), 64);
  const std::vector<Result> want = single_threaded(model.get(), jobs);
  constexpr int kRounds = 8;  // 8 threads x 8 rounds x 64 jobs = 4096 forwards

  Tally tally;
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      t::Session s(new_session(model.get()));
      if (!s) {
        tally.setup_failures.fetch_add(1);
        return;
      }
      for (int round = 0; round < kRounds; ++round) {
        // Each thread walks the jobs from its own offset with its own stride, so at any time
        // the threads run different shapes.
        for (std::size_t k = 0; k < jobs.size(); ++k) {
          const std::size_t j = (w * 11 + k * (2 * w + 1) + round) % jobs.size();
          check(tally, run(s.get(), model.get(), jobs[j]), want[j], "shared model", static_cast<int>(j));
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  INFO(tally.first);
  CHECK(tally.setup_failures.load() == 0);
  CHECK(tally.forwards.load() == long{kThreads} * kRounds * static_cast<long>(jobs.size()));
  CHECK(tally.mismatches.load() == 0);
}

TEST_CASE("sessions and models created and destroyed concurrently leave running forwards exact",
          "[concurrency]") {
  // Three handles to models with identical weights: `shared` is destroyed by this thread while
  // the runners' sessions still use it (a session keeps its model alive); `churn_model` is
  // used by the churners to create sessions; churners also create and destroy models of
  // their own.
  slstm_model* shared = new_model();
  t::Model churn_model(new_model());
  REQUIRE(shared != nullptr);
  REQUIRE(churn_model);
  const std::vector<Job> jobs = make_jobs(churn_model.get(), 32);
  const std::vector<Result> want = single_threaded(churn_model.get(), jobs);

  constexpr int kRunners = 4, kChurners = 4, kChurnIterations = 24;
  Tally tally;
  std::atomic<int> runners_ready{0};
  std::atomic<int> churners_left{kChurners};
  std::vector<std::thread> threads;
  for (int w = 0; w < kRunners; ++w) {
    threads.emplace_back([&, w] {
      slstm_session* raw = new_session(shared);
      runners_ready.fetch_add(1);
      t::Session s(raw);
      if (!s) {
        tally.setup_failures.fetch_add(1);
        return;
      }
      // Run until every churner is done (and at least two full passes).
      for (int pass = 0; pass < 2 || churners_left.load() > 0; ++pass) {
        for (std::size_t k = 0; k < jobs.size(); ++k) {
          const std::size_t j = (k * 5 + w * 7 + pass) % jobs.size();
          check(tally, run(s.get(), churn_model.get(), jobs[j]), want[j], "runner",
                static_cast<int>(j));
        }
      }
    });
  }
  for (int w = 0; w < kChurners; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kChurnIterations; ++i) {
        const std::size_t j = static_cast<std::size_t>(w * 13 + i * 3) % jobs.size();
        if ((i + w) % 2 == 0) {
          // A session of the long-lived model, created, used once, destroyed.
          t::Session s(new_session(churn_model.get()));
          if (!s) {
            tally.setup_failures.fetch_add(1);
            continue;
          }
          check(tally, run(s.get(), churn_model.get(), jobs[j]), want[j], "churned session",
                static_cast<int>(j));
        } else {
          // A model of this thread's own, destroyed while its session still runs.
          slstm_model* own = new_model();
          slstm_session* raw = own ? new_session(own) : nullptr;
          slstm_model_destroy(own);
          t::Session s(raw);
          if (!s) {
            tally.setup_failures.fetch_add(1);
            continue;
          }
          check(tally, run(s.get(), churn_model.get(), jobs[j]), want[j], "churned model",
                static_cast<int>(j));
        }
      }
      churners_left.fetch_sub(1);
    });
  }
  while (runners_ready.load() < kRunners) std::this_thread::yield();
  slstm_model_destroy(shared);  // the runners' sessions keep it alive
  for (std::thread& th : threads) th.join();
  INFO(tally.first);
  CHECK(tally.setup_failures.load() == 0);
  CHECK(tally.forwards.load() >= kRunners * 2 * static_cast<long>(jobs.size()) +
                                     kChurners * kChurnIterations);
  CHECK(tally.mismatches.load() == 0);
}

TEST_CASE("each thread reads its own last-error message while other threads fail differently",
          "[concurrency]") {
  t::Model model(new_model());
  REQUIRE(model);
  std::atomic<long> wrong{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 300; ++i) {
        // Thread w fails with its own max_batch, -(w + 1000 * i + 1), and must read it back.
        const std::int64_t bad = -(w + 1000 * static_cast<std::int64_t>(i) + 1);
        slstm_session_options o = session_options();
        o.max_batch = bad;
        slstm_session* s = nullptr;
        const slstm_status st = slstm_session_create(model.get(), &o, &s);
        const std::string msg = slstm_last_error();
        char copy[256];
        slstm_last_error_copy(copy, sizeof copy);
        const std::string tail = ", got " + std::to_string(bad);
        const bool ends_with_own = msg.size() >= tail.size() &&
                                   msg.compare(msg.size() - tail.size(), tail.size(), tail) == 0;
        if (st != SLSTM_ERR_INVALID_ARGUMENT || s != nullptr || !ends_with_own || msg != copy) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("threads racing on one session get SLSTM_ERR_BUSY or exact results, never corrupted ones",
          "[concurrency]") {
  // Against the contract (a session serves one thread at a time), four threads call one
  // session at once: each call either runs alone and gives the single-threaded result
  // bitwise, or finds the session busy and writes nothing.
  t::Model model(new_model());
  REQUIRE(model);
  const std::vector<Job> jobs = make_jobs(model.get(), 12);
  t::Session oracle_session(new_session(model.get()));
  REQUIRE(oracle_session);
  std::vector<Result> want;
  for (const Job& j : jobs) want.push_back(run(oracle_session.get(), model.get(), j));
  t::Session shared(new_session(model.get()));
  REQUIRE(shared);
  std::atomic<long> ok{0}, busy{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 150; ++i) {
        const std::size_t k = static_cast<std::size_t>(w * 7 + i) % jobs.size();
        const Result r = run(shared.get(), model.get(), jobs[k]);
        if (r == want[k]) {
          ok.fetch_add(1);
        } else if (r.status == SLSTM_ERR_BUSY) {
          bool untouched = true;
          for (float v : r.output) untouched = untouched && v == -7.0f;
          for (float v : r.final_state) untouched = untouched && v == -7.0f;
          (untouched ? busy : wrong).fetch_add(1);
        } else {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  INFO("ok " << ok.load() << ", busy " << busy.load());
  CHECK(wrong.load() == 0);
  CHECK(ok.load() > 0);
}
