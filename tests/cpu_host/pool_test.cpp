// The CPU workers (src/cpu/thread_pool.hpp): how long they spin after a job (cpu.spin_us)
// before they sleep, and nudge(), which wakes them to spin without a job.  Timing here only
// bounds what must happen eventually (within seconds) or what must not happen while a spin
// of seconds lasts, so a slow or loaded machine does not fail them.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

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
