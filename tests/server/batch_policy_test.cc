// The batch-size policy and the service-time estimate on their own, and a
// discrete-event simulation of a model under camera load (Poisson arrivals,
// jittered service times, the estimate learning as batches end) that checks
// what the policy promises: p99 under the objective while batching for
// throughput.
#include "batch_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <vector>

namespace lowbit::server {
namespace {

// 4 ms fixed + 2 ms per frame (us).
int64_t Linear(int b) { return 4000 + 2000 * b; }

// One measurement per size: times_us[b - 1] for size b.
ServiceTimeEstimator Measured(const std::vector<int64_t>& times_us) {
  ServiceTimeEstimator estimator(static_cast<int>(times_us.size()));
  for (size_t b = 1; b <= times_us.size(); ++b)
    estimator.Record(static_cast<int>(b), times_us[b - 1]);
  return estimator;
}

ServiceTimeEstimator Seeded(int max_batch, const std::function<int64_t(int)>& service) {
  ServiceTimeEstimator estimator(max_batch);
  for (int b = 1; b <= max_batch; ++b) estimator.Record(b, service(b));
  return estimator;
}

TEST(ServiceTimeEstimatorTest, UnmeasuredAndOutOfRangeSizesAreZero) {
  ServiceTimeEstimator estimator(4);
  EXPECT_EQ(estimator.Estimate(1), 0);
  EXPECT_FALSE(estimator.Record(0, 100));
  EXPECT_FALSE(estimator.Record(5, 100));
  EXPECT_EQ(estimator.Estimate(5), 0);
  EXPECT_TRUE(estimator.Record(2, 100));
  EXPECT_FALSE(estimator.Record(2, 100));  // unchanged
  EXPECT_EQ(estimator.Estimate(2), 100);
  EXPECT_EQ(estimator.Estimate(1), 0);
}

TEST(ServiceTimeEstimatorTest, SteadyTimesAreEstimatedExactly) {
  ServiceTimeEstimator estimator(1);
  for (int i = 0; i < 50; ++i) estimator.Record(1, 7000);
  EXPECT_EQ(estimator.Estimate(1), 7000);
}

TEST(ServiceTimeEstimatorTest, IsP90PlusItsDistanceFromTheMedian) {
  ServiceTimeEstimator estimator(1);
  // 100, 200, ..., 2000: p90 = 1800 (rank 18), p50 = 1000 (rank 10).
  for (int i = 1; i <= 20; ++i) estimator.Record(1, 100 * i);
  EXPECT_EQ(estimator.Estimate(1), 1800 + 800);
  EXPECT_EQ(estimator.Typical(1), 1000);
  // Fewer than ten: p90 is the maximum. 100, 200, 300: p50 = 200.
  ServiceTimeEstimator few(1);
  for (int i = 1; i <= 3; ++i) few.Record(1, 100 * i);
  EXPECT_EQ(few.Estimate(1), 300 + 100);
  EXPECT_EQ(few.Typical(1), 200);
}

TEST(ServiceTimeEstimatorTest, OneSlowBatchDoesNotMoveAFullWindow) {
  ServiceTimeEstimator estimator(1);
  for (int i = 0; i < 20; ++i) estimator.Record(1, 5000);
  estimator.Record(1, 500000);  // a preempted batch
  EXPECT_EQ(estimator.Estimate(1), 5000);
  estimator.Record(1, 500000);
  EXPECT_EQ(estimator.Estimate(1), 5000);
  estimator.Record(1, 500000);  // three of twenty: a lasting change
  EXPECT_GT(estimator.Estimate(1), 500000);
}

TEST(ServiceTimeEstimatorTest, ASizeLeftUnmeasuredShrinksToItsMedian) {
  ServiceTimeEstimator estimator(2);
  estimator.Record(2, 8000);
  estimator.Record(2, 30000);  // two slow batches while the box was busy
  estimator.Record(2, 30000);
  EXPECT_EQ(estimator.Estimate(2), 30000 + 0);  // p90 = p50 = 30000 of three
  estimator.Record(2, 8000);
  EXPECT_EQ(estimator.Estimate(2), 30000 + 30000 - 8000);  // p50 = 8000 of four
  for (int64_t i = 0; i < ServiceTimeEstimator::kStaleAfter; ++i) {
    estimator.Record(1, 5000);
    ASSERT_EQ(estimator.Estimate(2), 52000) << i;
  }
  EXPECT_TRUE(estimator.Record(1, 5000));  // size 2 is stale now
  EXPECT_EQ(estimator.Estimate(2), 8000);
  EXPECT_EQ(estimator.Typical(2), 8000);
  estimator.Record(2, 9000);  // measured again: a window of two
  EXPECT_EQ(estimator.Estimate(2), 9000 + 1000);
}

TEST(ServiceTimeEstimatorTest, TheWindowForgetsOldMeasurements) {
  ServiceTimeEstimator estimator(1);
  for (int i = 0; i < 20; ++i) estimator.Record(1, 9000);
  for (int i = 0; i < ServiceTimeEstimator::kWindow; ++i) estimator.Record(1, 3000);
  EXPECT_EQ(estimator.Estimate(1), 3000);
}

BatchDecision Decide(std::vector<int64_t> ages, int max_batch, int64_t waited, int64_t timeout,
                     int64_t objective, const ServiceTimeEstimator* service, bool flush = false) {
  BatchPolicyInput input;
  input.max_batch = max_batch;
  input.ages_us = ages;
  input.waited_us = waited;
  input.batch_timeout_us = timeout;
  input.objective_us = objective;
  input.service = service;
  input.flush = flush;
  return ChooseBatch(input);
}

BatchDecision DecideWithDeadlines(std::vector<int64_t> ages, std::vector<int64_t> remaining,
                                  int max_batch, int64_t timeout, int64_t objective,
                                  const ServiceTimeEstimator* service) {
  BatchPolicyInput input;
  input.max_batch = max_batch;
  input.ages_us = ages;
  input.remaining_us = remaining;
  input.batch_timeout_us = timeout;
  input.objective_us = objective;
  input.service = service;
  return ChooseBatch(input);
}

TEST(ChooseBatchTest, ABatchOnlyTakesFramesItCanAnswerByTheirDeadlines) {
  const ServiceTimeEstimator service = Seeded(4, Linear);  // 6, 8, 10, 12 ms
  const std::vector<int64_t> fresh(4, 0);
  // The second frame has 9 ms left: a batch of 3 (10 ms) would end late.
  for (int64_t objective : {int64_t{0}, int64_t{1000000}}) {
    BatchDecision d =
        DecideWithDeadlines(fresh, {100000, 9000, 100000, 100000}, 4, 0, objective, &service);
    EXPECT_EQ(d.run, 2) << objective;
    d = DecideWithDeadlines(fresh, {100000, 25000, 100000, 100000}, 4, 0, objective, &service);
    EXPECT_EQ(d.run, 4) << objective;
  }
  // Without an objective a lone frame waits for company only while a batch
  // of two still ends in time: 9 - 8 = 1 ms, not the 5 ms timeout.
  BatchDecision d = DecideWithDeadlines({0}, {9000}, 4, 5000, 0, &service);
  EXPECT_EQ(d.run, 0);
  EXPECT_EQ(d.wait_us, 1000);
  d = DecideWithDeadlines({0}, {8000}, 4, 5000, 0, &service);
  EXPECT_EQ(d.run, 1);
  // With one, the wait for a batch of 4 (12 ms) ends 12 ms before the deadline.
  d = DecideWithDeadlines({0}, {20000}, 4, 1000000, 1000000, &service);
  EXPECT_EQ(d.run, 0);
  EXPECT_EQ(d.target, 4);
  EXPECT_EQ(d.wait_us, 8000);
}

TEST(ChooseBatchTest, WithoutAnObjectiveAFullBatchRunsAtOnce) {
  BatchDecision d = Decide({0, 0, 0, 0}, 4, 0, 2000, 0, nullptr);
  EXPECT_EQ(d.run, 4);
  EXPECT_EQ(d.target, 4);
}

TEST(ChooseBatchTest, WithoutAnObjectiveAPartialBatchWaitsForTheTimeout) {
  BatchDecision d = Decide({500, 0}, 4, 500, 2000, 0, nullptr);
  EXPECT_EQ(d.run, 0);
  EXPECT_EQ(d.wait_us, 1500);
  d = Decide({2000, 0}, 4, 2000, 2000, 0, nullptr);
  EXPECT_EQ(d.run, 2);
  d = Decide({0}, 4, 0, 2000, 0, nullptr, /*flush=*/true);
  EXPECT_EQ(d.run, 1);
}

TEST(ChooseBatchTest, ObjectiveRunsTheFittingSizeOfHighestThroughput) {
  const ServiceTimeEstimator service = Seeded(8, Linear);
  // 6 ms old: b fits while 6 + 4 + 2b <= 20.
  BatchDecision d = Decide(std::vector<int64_t>(8, 6000), 8, 6000, 1000000, 20000, &service);
  EXPECT_EQ(d.run, 5);
  EXPECT_EQ(d.target, 5);
  // Loose: everything.
  d = Decide(std::vector<int64_t>(8, 6000), 8, 6000, 1000000, 100000, &service);
  EXPECT_EQ(d.run, 8);
}

TEST(ChooseBatchTest, TheOldestFrameOfTheBatchCountsNotTheFirst) {
  const ServiceTimeEstimator service = Seeded(4, Linear);
  // The first slot's frame is fresh (its camera replaced it); the second is
  // 10 ms old. Within 17 ms only the first frame fits (alone: 6 ms; with the
  // second, 10 + 8 ms).
  BatchDecision d = Decide({0, 10000, 10000}, 4, 10000, 1000000, 17000, &service);
  EXPECT_EQ(d.run, 1);
}

TEST(ChooseBatchTest, HigherThroughputWinsNotTheLargerBatch) {
  // A size the engine handles badly: 2 frames cost 4x one.
  const ServiceTimeEstimator service = Measured({5000, 20000, 21000, 40000});
  // Per frame: 5, 10, 7, 10 ms. Everything fits a loose objective.
  BatchDecision d = Decide({0, 0, 0, 0}, 4, 0, 1000000, 1000000, &service);
  EXPECT_EQ(d.run, 1);
  EXPECT_EQ(d.target, 1);
}

TEST(ChooseBatchTest, WaitsForAFullerBatchWhileItStillFits) {
  const ServiceTimeEstimator service = Seeded(4, Linear);
  // S(4) = 12 ms: a lone fresh frame may wait 30 - 12 = 18 ms.
  BatchDecision d = Decide({0}, 4, 0, 1000000, 30000, &service);
  EXPECT_EQ(d.run, 0);
  EXPECT_EQ(d.target, 4);
  EXPECT_EQ(d.wait_us, 18000);
  // But never past the batch timeout.
  d = Decide({0}, 4, 0, 5000, 30000, &service);
  EXPECT_EQ(d.run, 0);
  EXPECT_EQ(d.wait_us, 5000);
  d = Decide({5000}, 4, 5000, 5000, 30000, &service);
  EXPECT_EQ(d.run, 1);
  // At 18 ms the batch of 4 no longer fits after waiting: two go now.
  d = Decide({18000, 0}, 4, 18000, 1000000, 30000, &service);
  EXPECT_EQ(d.run, 2);
  // Shutting down: no waiting.
  d = Decide({0}, 4, 0, 1000000, 30000, &service, /*flush=*/true);
  EXPECT_EQ(d.run, 1);
}

TEST(ChooseBatchTest, WhenNothingFitsTheMostEfficientWaitingSizeRuns) {
  const ServiceTimeEstimator service = Measured({10000, 30000, 24000, 50000});
  // Per frame: 10, 15, 8, 12.5 ms; all frames already past 20 ms.
  BatchDecision d = Decide({25000, 25000, 25000, 25000}, 4, 25000, 1000000, 20000, &service);
  EXPECT_EQ(d.run, 3);
  EXPECT_EQ(d.target, 3);
  d = Decide({25000, 25000}, 4, 25000, 1000000, 20000, &service);
  EXPECT_EQ(d.run, 1);
}

// ---------------------------------------------------------------------------
// Simulation: workers, Poisson arrivals, service times S(b) * (1 +- jitter),
// the estimator seeded by a warm-up and fed as batches end. Frames have
// slots of their own (no cameras), the queue is unbounded.

struct Load {
  int workers = 1;
  int max_batch = 8;
  int64_t objective_us = 0;
  int64_t batch_timeout_us = 50000;
  std::function<int64_t(int)> service_us = Linear;
  // From `change_at_us` on, the engine takes `slowdown` times as long.
  int64_t change_at_us = std::numeric_limits<int64_t>::max();
  double slowdown = 1;
  double jitter = 0.1;
  double fps = 100;
  int64_t duration_us = 60'000'000;
  uint64_t seed = 1;
};

struct Outcome {
  std::vector<std::pair<int64_t, int64_t>> frames;  // arrival, latency
  std::vector<int> batch_sizes;
  int64_t arrived = 0;
  int64_t end_us = 0;  // last answer

  // p99 latency of frames arriving in [from, to).
  int64_t P99(int64_t from = 0, int64_t to = std::numeric_limits<int64_t>::max()) const {
    std::vector<int64_t> latencies;
    for (const auto& [arrival, latency] : frames) {
      if (arrival >= from && arrival < to) latencies.push_back(latency);
    }
    std::sort(latencies.begin(), latencies.end());
    if (latencies.empty()) return 0;
    return latencies[(latencies.size() * 99 + 99) / 100 - 1];
  }
  double Throughput() const {  // answered frames per second
    return end_us > 0 ? frames.size() * 1e6 / end_us : 0;
  }
  void Print(const char* what) const {
    std::printf("%-34s p99 %6.1f ms, mean batch %.2f, %6.1f fps\n", what, P99() / 1000.0,
                MeanBatch(), Throughput());
  }
  double MeanBatch() const {
    double sum = 0;
    for (int b : batch_sizes) sum += b;
    return batch_sizes.empty() ? 0 : sum / batch_sizes.size();
  }
};

class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  double Uniform() {  // [0, 1)
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state_ >> 11) * (1.0 / 9007199254740992.0);
  }

 private:
  uint64_t state_;
};

Outcome Simulate(const Load& load) {
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  Random random(load.seed);
  auto true_service = [&](int b, int64_t at) {
    const double slow = at >= load.change_at_us ? load.slowdown : 1.0;
    const double noise = 1 + load.jitter * (2 * random.Uniform() - 1);
    return static_cast<int64_t>(std::llround(load.service_us(b) * slow * noise));
  };
  ServiceTimeEstimator estimator = Seeded(load.max_batch, load.service_us);
  struct Worker {
    int64_t busy_until = 0;
    int batch = 0;  // running, 0 if idle
    int64_t service = 0;
  };
  std::vector<Worker> workers(static_cast<size_t>(load.workers));
  std::deque<int64_t> queue;  // arrival times
  Outcome outcome;
  int64_t next_arrival = 0;
  int64_t wake = kNever;
  int64_t now = 0;
  std::vector<int64_t> ages;
  while (true) {
    for (Worker& worker : workers) {  // batches that ended by now
      if (worker.batch > 0 && worker.busy_until <= now) {
        estimator.Record(worker.batch, worker.service);
        worker.batch = 0;
      }
    }
    while (next_arrival <= now && next_arrival < load.duration_us) {
      queue.push_back(next_arrival);
      ++outcome.arrived;
      const double gap = -std::log(1 - random.Uniform()) * 1e6 / load.fps;
      next_arrival += std::max<int64_t>(1, std::llround(gap));
    }
    wake = kNever;
    for (Worker& worker : workers) {
      if (worker.batch > 0 || queue.empty()) continue;
      ages.clear();
      for (size_t i = 0; i < queue.size() && static_cast<int>(i) < load.max_batch; ++i) {
        ages.push_back(now - queue[i]);
      }
      BatchPolicyInput input;
      input.max_batch = load.max_batch;
      input.ages_us = ages;

      input.waited_us = now - queue.front();
      input.batch_timeout_us = load.batch_timeout_us;
      input.objective_us = load.objective_us;
      input.flush = next_arrival >= load.duration_us;
      input.service = &estimator;
      const BatchDecision decision = ChooseBatch(input);
      if (decision.run == 0) {
        wake = now + decision.wait_us;
        break;
      }
      worker.batch = decision.run;
      worker.service = true_service(decision.run, now);
      worker.busy_until = now + worker.service;
      outcome.batch_sizes.push_back(decision.run);
      for (int i = 0; i < decision.run; ++i) {
        outcome.frames.emplace_back(queue.front(), worker.busy_until - queue.front());
        queue.pop_front();
      }
      outcome.end_us = std::max(outcome.end_us, worker.busy_until);
    }
    int64_t next = next_arrival < load.duration_us ? next_arrival : kNever;
    next = std::min(next, wake);
    for (const Worker& worker : workers) {
      if (worker.batch > 0) next = std::min(next, worker.busy_until);
    }
    if (next == kNever) break;
    now = std::max(next, now);
  }
  return outcome;
}

// Above what batch 1 can serve (167 fps), below what batch 8 can (400 fps).
TEST(BatchPolicySimulationTest, ObjectiveKeepsP99UnderItWhileBatchingAboveBatchOneCapacity) {
  Load load;
  load.fps = 250;
  load.objective_us = 60000;
  const Outcome batched = Simulate(load);
  batched.Print("250 fps, 60 ms objective");
  EXPECT_EQ(static_cast<int64_t>(batched.frames.size()), batched.arrived);
  EXPECT_LE(batched.P99(), load.objective_us);
  EXPECT_GE(batched.MeanBatch(), 2.0);
  // Every frame is answered about when the load ends: the engine kept up.
  EXPECT_LT(batched.end_us, load.duration_us + 100000);

  // Batch 1 cannot keep up: the backlog grows for the whole minute.
  load.max_batch = 1;
  const Outcome single = Simulate(load);
  single.Print("250 fps, batch 1");
  EXPECT_GT(single.P99(), 10 * load.objective_us);
  EXPECT_GT(single.end_us, load.duration_us + 10'000'000);
}

TEST(BatchPolicySimulationTest, ATightObjectiveTakesSmallerBatchesThanALooseOne) {
  Load load;
  load.fps = 150;
  load.objective_us = 30000;
  const Outcome tight = Simulate(load);
  tight.Print("150 fps, 30 ms objective");
  load.objective_us = 100000;
  const Outcome loose = Simulate(load);
  loose.Print("150 fps, 100 ms objective");
  EXPECT_LE(tight.P99(), 30000);
  EXPECT_LE(loose.P99(), 100000);
  EXPECT_LT(tight.MeanBatch() + 1, loose.MeanBatch());
  EXPECT_GT(tight.MeanBatch(), 1.0);
}

TEST(BatchPolicySimulationTest, TwoWorkersKeepP99UnderTheObjective) {
  Load load;
  load.workers = 2;
  load.fps = 450;
  load.objective_us = 30000;
  const Outcome outcome = Simulate(load);
  outcome.Print("2 workers, 450 fps, 30 ms objective");
  EXPECT_EQ(static_cast<int64_t>(outcome.frames.size()), outcome.arrived);
  EXPECT_LE(outcome.P99(), load.objective_us);
  EXPECT_GT(outcome.MeanBatch(), 1.5);
}

// The engine becomes 1.5x slower half-way (another model took the cores):
// within a second the estimate has followed, and the second half's p99 is
// that of a scheduler seeded with the slower times from the start.
TEST(BatchPolicySimulationTest, TheEstimateFollowsASlowerEngine) {
  Load load;
  load.fps = 150;
  load.objective_us = 80000;
  load.change_at_us = 30'000'000;
  load.slowdown = 1.5;
  const Outcome changed = Simulate(load);
  Load known = load;
  known.service_us = [](int b) { return Linear(b) * 3 / 2; };
  known.change_at_us = std::numeric_limits<int64_t>::max();
  const Outcome slow = Simulate(known);
  const int64_t after = changed.P99(load.change_at_us + 1'000'000);
  const int64_t slow_after = slow.P99(load.change_at_us + 1'000'000);
  std::printf("p99 before the change %.1f ms, after %.1f ms, slow from the start %.1f ms\n",
              changed.P99(0, load.change_at_us) / 1000.0, after / 1000.0, slow_after / 1000.0);
  EXPECT_LE(changed.P99(0, load.change_at_us), load.objective_us);
  EXPECT_LE(after, load.objective_us);
  EXPECT_LE(after, slow_after * 11 / 10);
  EXPECT_EQ(static_cast<int64_t>(changed.frames.size()), changed.arrived);
}

}  // namespace
}  // namespace lowbit::server
