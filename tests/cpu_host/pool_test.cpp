// The CPU workers (src/cpu/thread_pool.hpp): how long they spin after a job (cpu.spin_us)
// before they sleep, and nudge(), which wakes them to spin without a job; and the team a call
// forms on a thread pool of the caller's (CallerPool).  Timing here only
// bounds what must happen eventually (within seconds) or what must not happen while a spin
// of seconds lasts, so a slow or loaded machine does not fail them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "cpu/thread_pool.hpp"

namespace c = slstm::cpu;

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::int64_t kSecondNs = 1'000'000'000;

void count_job(void* ctx, int) { static_cast<std::atomic<int>*>(ctx)->fetch_add(1); }

// Waits up to 10 s for pool.sleeping() == n; whether it got there.
bool sleeping_within(const c::Pool& pool, int n) {
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < until) {
    if (pool.sleeping() == n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pool.sleeping() == n;
}

}  // namespace

TEST_CASE("pool: workers that never had a job sleep", "[pool]") {
  c::Pool pool(3);
  CHECK(sleeping_within(pool, 2));
}

TEST_CASE("pool: a job's spin time of 0 sends the workers to sleep after it", "[pool]") {
  c::Pool pool(3);
  std::atomic<int> ran{0};
  pool.run(&count_job, &ran, 3, 0);
  CHECK(ran.load() == 3);
  CHECK(sleeping_within(pool, 2));
}

TEST_CASE("pool: after a job the workers spin for its spin time, not asleep", "[pool]") {
  c::Pool pool(2);
  std::atomic<int> ran{0};
  pool.run(&count_job, &ran, 2, 30 * kSecondNs);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(pool.sleeping() == 0);
  // And a pool destroyed while its workers spin does not wait for the spin to end.
  const auto t0 = Clock::now();
  {
    c::Pool spinning(2);
    spinning.run(&count_job, &ran, 2, 30 * kSecondNs);
  }
  CHECK(Clock::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("pool: a spin ends, then the workers sleep", "[pool]") {
  c::Pool pool(2);
  std::atomic<int> ran{0};
  pool.run(&count_job, &ran, 2, 20'000'000);  // 20 ms
  CHECK(sleeping_within(pool, 1));
}

TEST_CASE("pool: nudge wakes sleeping workers to spin without running a job", "[pool]") {
  c::Pool pool(3);
  REQUIRE(sleeping_within(pool, 2));
  pool.nudge(30 * kSecondNs);
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (pool.sleeping() != 0 && Clock::now() < until) std::this_thread::yield();
  CHECK(pool.sleeping() == 0);
  std::atomic<int> ran{0};
  pool.run(&count_job, &ran, 3, 0);
  CHECK(ran.load() == 3);  // the nudge ran nothing; the job ran once on each worker
}

TEST_CASE("pool: runs right after nudges run every job once on every active worker",
          "[pool]") {
  c::Pool pool(4);
  std::atomic<int> ran{0};
  for (int i = 0; i < 2000; ++i) {
    if (i % 3 == 0) pool.nudge(i % 2 == 0 ? 0 : 1'000'000);
    const int active = 1 + i % 4;
    pool.run(&count_job, &ran, active, i % 5 == 0 ? 0 : 100'000);
    REQUIRE(ran.exchange(0) == active);
  }
}

// ---- CallerPool: a call's team on a thread pool of the caller's ---------------------------

namespace {

// What a call on a CallerPool did: how often choose() ran and with which team, and how
// often each worker index ran the job.
struct Record {
  std::atomic<int> chosen{0}, team{0}, keep{1 << 20};
  std::atomic<int> ran[8] = {};
};
int record_choose(void* ctx, int k) {
  auto& r = *static_cast<Record*>(ctx);
  r.chosen.fetch_add(1);
  r.team.store(k);
  return std::min(k, r.keep.load());
}
void record_job(void* ctx, int w) { static_cast<Record*>(ctx)->ran[w].fetch_add(1); }

slstm_thread_pool pool_of(void (*parallel_for)(void*, slstm_pool_task, void*, std::int32_t),
                          int threads) {
  slstm_thread_pool p{};
  p.struct_size = sizeof p;
  p.num_threads = threads;
  p.parallel_for = parallel_for;
  return p;
}

// Every task on a thread of its own, all started at once.
void threads_parallel_for(void*, slstm_pool_task task, void* arg, std::int32_t n) {
  std::vector<std::thread> threads;
  for (std::int32_t i = 0; i < n; ++i) threads.emplace_back([=] { task(arg, i); });
  for (std::thread& t : threads) t.join();
}
// One task after another on the calling thread.
void serial_parallel_for(void*, slstm_pool_task task, void* arg, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) task(arg, i);
}
// A defective pool: runs nothing.
void idle_parallel_for(void*, slstm_pool_task, void*, std::int32_t) {}

}  // namespace

TEST_CASE("caller pool: tasks that all start in time form a whole team, each member one job",
          "[pool][caller-pool]") {
  const c::CallerPool pool(pool_of(&threads_parallel_for, 4), 10 * kSecondNs);
  Record r;
  CHECK(pool.run(&record_job, &record_choose, &r, 4) == 4);
  CHECK(r.chosen.load() == 1);
  CHECK(r.team.load() == 4);
  for (int w = 0; w < 4; ++w) CHECK(r.ran[w].load() == 1);
}

TEST_CASE("caller pool: members beyond what choose keeps return without the job",
          "[pool][caller-pool]") {
  const c::CallerPool pool(pool_of(&threads_parallel_for, 4), 10 * kSecondNs);
  Record r;
  r.keep.store(2);
  CHECK(pool.run(&record_job, &record_choose, &r, 4) == 4);
  CHECK(r.ran[0].load() == 1);
  CHECK(r.ran[1].load() == 1);
  CHECK(r.ran[2].load() == 0);
  CHECK(r.ran[3].load() == 0);
}

TEST_CASE("caller pool: tasks run one after another make a team of one, the rest return at once",
          "[pool][caller-pool]") {
  // A join wait of 1 ms: the first task gives up on the others, which cannot start before it
  // returns.
  const c::CallerPool pool(pool_of(&serial_parallel_for, 4), 1'000'000);
  Record r;
  CHECK(pool.run(&record_job, &record_choose, &r, 4) == 1);
  CHECK(r.chosen.load() == 1);
  CHECK(r.team.load() == 1);
  CHECK(r.ran[0].load() == 1);
  for (int w = 1; w < 4; ++w) CHECK(r.ran[w].load() == 0);
}

TEST_CASE("caller pool: a pool that runs no task leaves the call to the calling thread",
          "[pool][caller-pool]") {
  const c::CallerPool pool(pool_of(&idle_parallel_for, 4), 1'000'000);
  Record r;
  CHECK(pool.run(&record_job, &record_choose, &r, 3) == 1);
  CHECK(r.team.load() == 1);
  CHECK(r.ran[0].load() == 1);
}

TEST_CASE("caller pool: a call hands the pool at most 256 tasks whatever it declares",
          "[pool][caller-pool]") {
  const c::CallerPool pool(pool_of(&serial_parallel_for, 100000), 0);
  CHECK(pool.size() == 256);
}
