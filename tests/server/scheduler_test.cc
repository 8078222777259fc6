// Scheduler with a fake engine and a fake clock: warm-up, batch formation,
// the latency-objective batch size, the queue bounds, completion, shutdown.
// Cameras, deadlines, cancellation and the decode budget are in
// scheduler_frames_test.cc.
#include "scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "fake_backend.h"
#include "fake_clock.h"
#include "scheduler_test_util.h"

namespace lowbit::server {
namespace {

using std::chrono::microseconds;
using testing::Batches;
using testing::Completions;
using testing::FakeBackend;
using testing::FakeClock;
using testing::MakeScheduler;
using testing::Options;
using testing::RecordingListener;
using testing::Request;
using testing::RequestFrom;

// 4 ms fixed + 2 ms per frame: throughput grows with the batch size.
microseconds LinearServiceTime(int batch_size) { return microseconds(4000 + 2000 * batch_size); }

TEST(SchedulerTest, CreatesOneSessionPerWorkerAndWarmsUpEveryBatchSize) {
  FakeClock clock;
  FakeBackend backend;
  auto scheduler = MakeScheduler(backend, Options(3, 4, microseconds(2000)), &clock);
  ASSERT_NE(scheduler, nullptr);
  EXPECT_EQ(backend.sessions_created(), 3);
  // Per session: one untimed run at max_batch, then every size once.
  EXPECT_EQ(backend.warmup_sizes(),
            (std::vector<int>{4, 1, 2, 3, 4, 4, 1, 2, 3, 4, 4, 1, 2, 3, 4}));
  EXPECT_TRUE(backend.batches().empty());
}

TEST(SchedulerTest, WarmUpSeedsTheServiceTimeOfEveryBatchSize) {
  FakeClock clock;
  FakeBackend backend(&clock);
  backend.SetServiceTime(LinearServiceTime);
  RecordingListener listener;
  auto scheduler = MakeScheduler(backend, Options(2, 6, microseconds(2000)), &clock, &listener);
  ASSERT_NE(scheduler, nullptr);
  for (int b = 1; b <= 6; ++b) {
    EXPECT_EQ(scheduler->service_time_us(b), LinearServiceTime(b).count()) << "batch " << b;
    EXPECT_EQ(listener.service_us(b), LinearServiceTime(b).count()) << "batch " << b;
  }
  EXPECT_EQ(scheduler->service_time_us(7), 0);
  EXPECT_EQ(scheduler->service_time_us(0), 0);
}

TEST(SchedulerTest, CreateFailsWhenASessionCannotBeCreated) {
  FakeClock clock;
  FakeBackend backend;
  backend.FailCreateSession(Internal("out of memory"));
  StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create("fake", backend, Options(2, 4, microseconds(2000)), &clock);
  ASSERT_FALSE(scheduler.ok());
  EXPECT_EQ(scheduler.status().code(), StatusCode::kInternal);
  EXPECT_NE(scheduler.status().message().find("out of memory"), std::string::npos);
  EXPECT_NE(scheduler.status().message().find("model fake"), std::string::npos);
}

TEST(SchedulerTest, CreateFailsWhenTheWarmUpFails) {
  FakeClock clock;
  FakeBackend backend;
  backend.FailRuns(Internal("kernel exploded"));
  StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create("fake", backend, Options(1, 4, microseconds(2000)), &clock);
  ASSERT_FALSE(scheduler.ok());
  EXPECT_EQ(scheduler.status().code(), StatusCode::kInternal);
  EXPECT_NE(scheduler.status().message().find("warming up"), std::string::npos);
  EXPECT_NE(scheduler.status().message().find("kernel exploded"), std::string::npos);
}

TEST(SchedulerTest, CreateRefusesOptionsOutOfRange) {
  FakeClock clock;
  FakeBackend backend;
  SchedulerOptions options = Options(1, 4, microseconds(2000));
  options.latency_objective = microseconds(-1);
  EXPECT_EQ(Scheduler::Create("fake", backend, options, &clock).status().code(),
            StatusCode::kInvalidArgument);
  options = Options(0, 4, microseconds(2000));
  EXPECT_EQ(Scheduler::Create("fake", backend, options, &clock).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, BatchesFormUpToMaxBatchWithoutWaitingForTheTimeout) {
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 4, microseconds(2000)), &clock, &listener);
  backend.CloseGate();
  // The clock never moves here: only a full batch can be dispatched.
  for (int id = 1; id <= 4; ++id) ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());
  backend.AwaitBlockedRuns(1);
  // The only worker is busy: these five wait and form the next batches.
  for (int id = 5; id <= 9; ++id) ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());
  EXPECT_EQ(scheduler->queue_depth(), 5);
  backend.OpenGate();
  done.AwaitTotal(8);
  EXPECT_EQ(backend.batches(), (Batches{{1, 2, 3, 4}, {5, 6, 7, 8}}));
  EXPECT_EQ(done.CountFor(9), 0);

  // Frame 9 is alone: it goes once it has waited the batch timeout.
  clock.Advance(microseconds(2000));
  done.AwaitTotal(9);
  EXPECT_EQ(backend.batches(), (Batches{{1, 2, 3, 4}, {5, 6, 7, 8}, {9}}));
  EXPECT_EQ(done.OutcomeFor(1).result.batch_size, 4);
  EXPECT_EQ(done.OutcomeFor(8).result.batch_size, 4);
  EXPECT_EQ(done.OutcomeFor(9).result.batch_size, 1);
  EXPECT_EQ(listener.batch_sizes(), (std::vector<int>{4, 4, 1}));
  EXPECT_EQ(listener.max_depth(), 5);
  EXPECT_EQ(listener.last_depth(), 0);
  // Without an objective there is no target to report.
  EXPECT_TRUE(listener.targets().empty());
}

TEST(SchedulerTest, LoneRequestIsDispatchedExactlyAtTheBatchTimeout) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(2, 4, microseconds(2000)), &clock);
  ASSERT_TRUE(scheduler->Submit(Request(7, done.For(7))).ok());

  clock.AwaitWaitsStarted(1);  // the batcher holds frame 7, waiting for company
  EXPECT_TRUE(backend.batches().empty());
  clock.Advance(microseconds(1999));
  clock.AwaitWaitsStarted(2);  // woke up, found it 1 us early, waits again
  EXPECT_TRUE(backend.batches().empty());
  EXPECT_EQ(done.total(), 0);

  clock.Advance(microseconds(1));
  done.AwaitTotal(1);
  EXPECT_EQ(backend.batches(), (Batches{{7}}));
  FrameOutcome outcome = done.OutcomeFor(7);
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_EQ(outcome.dropped, DropReason::kNone);
  EXPECT_EQ(outcome.result.batch_size, 1);
  EXPECT_EQ(outcome.result.timings.queue_us, 2000);
}

TEST(SchedulerTest, ZeroTimeoutRunsWhateverIsQueuedAtOnce) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 8, microseconds(0)), &clock);
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  done.AwaitTotal(1);
  EXPECT_EQ(backend.batches(), (Batches{{1}}));
  EXPECT_EQ(clock.waits_started(), 0);
}

// One worker, S(b) = 4 ms + 2 ms * b. Frame 1 arrives already 1 s old (past
// any objective: it runs at once, alone) and frames 2..9 arrive while it runs;
// when it ends they are 6 ms old. Under a 20 ms objective a batch of b fits
// while 6 + 4 + 2b <= 20, so the batcher takes 5 (the most frames per second
// that still fits); the remaining three are then 20 ms old, past the
// objective whatever happens, and go as one batch (the most efficient size
// waiting). Under 100 ms all eight go at once.
Batches BatchesUnderObjective(microseconds objective, std::vector<int>* targets,
                              std::vector<int64_t>* latencies_us) {
  FakeClock clock;
  FakeBackend backend(&clock);
  backend.SetServiceTime(LinearServiceTime);
  RecordingListener listener;
  Completions done;
  SchedulerOptions options = Options(1, 8, std::chrono::seconds(1));
  options.latency_objective = objective;
  auto scheduler = MakeScheduler(backend, options, &clock, &listener);
  std::map<int, Clock::TimePoint> arrival;
  std::map<int, Clock::TimePoint> answered;
  std::mutex mu;
  auto submit = [&](int id, microseconds age) {
    FrameRequest request = Request(id, [&, id, callback = done.For(id)](FrameOutcome outcome) {
      {
        std::lock_guard<std::mutex> lock(mu);
        answered[id] = clock.Now();
      }
      callback(std::move(outcome));
    });
    request.received = clock.Now() - age;
    {
      std::lock_guard<std::mutex> lock(mu);
      arrival[id] = request.received;
    }
    EXPECT_TRUE(scheduler->Submit(std::move(request)).ok());
  };
  backend.CloseGate();
  submit(1, std::chrono::seconds(1));
  backend.AwaitBlockedRuns(1);
  for (int id = 2; id <= 9; ++id) submit(id, microseconds(0));
  backend.OpenGate();
  done.AwaitTotal(9);
  scheduler->Shutdown();
  *targets = listener.targets();
  for (int id = 1; id <= 9; ++id) {
    latencies_us->push_back(MicrosecondsBetween(arrival[id], answered[id]));
  }
  return backend.batches();
}

TEST(SchedulerTest, ObjectiveTakesTheLargestBatchThatStillFits) {
  std::vector<int> targets;
  std::vector<int64_t> latencies;
  const Batches tight = BatchesUnderObjective(microseconds(20000), &targets, &latencies);
  EXPECT_EQ(tight, (Batches{{1}, {2, 3, 4, 5, 6}, {7, 8, 9}}));
  EXPECT_EQ(targets, (std::vector<int>{1, 5, 3}));
  // Every frame the policy could keep within 20 ms was answered within it.
  for (int id = 2; id <= 6; ++id) EXPECT_LE(latencies[id - 1], 20000) << "frame " << id;
  for (int id = 7; id <= 9; ++id) EXPECT_GT(latencies[id - 1], 20000) << "frame " << id;

  targets.clear();
  latencies.clear();
  const Batches loose = BatchesUnderObjective(microseconds(100000), &targets, &latencies);
  EXPECT_EQ(loose, (Batches{{1}, {2, 3, 4, 5, 6, 7, 8, 9}}));
  EXPECT_EQ(targets, (std::vector<int>{1, 8}));
  for (int id = 2; id <= 9; ++id) EXPECT_LE(latencies[id - 1], 100000) << "frame " << id;
}

TEST(SchedulerTest, ObjectiveWaitsForAFullerBatchOnlyWhileItStillFits) {
  FakeClock clock;
  FakeBackend backend(&clock);
  backend.SetServiceTime(LinearServiceTime);
  Completions done;
  SchedulerOptions options = Options(1, 4, std::chrono::seconds(1));
  // S(4) = 12 ms: a lone frame may wait 30 - 12 = 18 ms for company.
  options.latency_objective = microseconds(30000);
  auto scheduler = MakeScheduler(backend, options, &clock);
  const int64_t waits_before = clock.waits_started();
  FrameRequest first = Request(1, done.For(1));
  first.received = clock.Now();
  ASSERT_TRUE(scheduler->Submit(std::move(first)).ok());
  clock.AwaitWaitsStarted(waits_before + 1);
  clock.Advance(microseconds(10000));
  clock.AwaitWaitsStarted(waits_before + 2);  // 8 ms more for a batch of 4
  // A second frame arrives within the wait: still waiting for a batch of 4.
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  clock.AwaitWaitsStarted(waits_before + 3);
  EXPECT_TRUE(backend.batches().empty());
  clock.Advance(microseconds(7999));
  clock.AwaitWaitsStarted(waits_before + 4);
  EXPECT_TRUE(backend.batches().empty());
  // At 18 ms a batch of 4 would end at 30 ms: no more waiting. A batch of 2
  // (S = 8 ms) still ends within the objective.
  clock.Advance(microseconds(1));
  done.AwaitTotal(2);
  EXPECT_EQ(backend.batches(), (Batches{{1, 2}}));
  EXPECT_EQ(done.OutcomeFor(1).result.timings.queue_us, 18000);
}

TEST(SchedulerTest, ServiceTimeEstimateFollowsMeasuredBatches) {
  FakeClock clock;
  FakeBackend backend(&clock);
  backend.SetServiceTime(LinearServiceTime);
  RecordingListener listener;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 4, microseconds(0)), &clock, &listener);
  ASSERT_EQ(scheduler->service_time_us(1), 6000);
  // The engine becomes three times slower (another process took the cores):
  // the estimate covers it from the first slow batch.
  backend.SetServiceTime([](int b) { return 3 * LinearServiceTime(b); });
  int id = 1;
  ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());
  done.AwaitTotal(id);
  EXPECT_GE(scheduler->service_time_us(1), 18000);
  EXPECT_EQ(listener.service_us(1), scheduler->service_time_us(1));
  EXPECT_EQ(scheduler->service_time_us(2), 8000);  // not measured since the warm-up
  // Back to normal: the window forgets the slow batch.
  backend.SetServiceTime(LinearServiceTime);
  for (++id; id <= 25; ++id) {
    ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());
    done.AwaitTotal(id);
  }
  EXPECT_EQ(scheduler->service_time_us(1), 6000);
  EXPECT_EQ(listener.service_us(1), 6000);
}

TEST(SchedulerTest, RejectsFramesOverQueueCapacityAndNeverCompletesThem) {
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  auto scheduler =
      MakeScheduler(backend, Options(1, 1, microseconds(2000), /*capacity=*/2), &clock, &listener);
  backend.CloseGate();
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  backend.AwaitBlockedRuns(1);  // frame 1 left the queue for the worker
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  ASSERT_TRUE(scheduler->Submit(Request(3, done.For(3))).ok());
  EXPECT_EQ(scheduler->queue_depth(), 2);

  FrameRequest fourth = Request(4, done.For(4));
  Status rejected = scheduler->Submit(std::move(fourth));
  EXPECT_EQ(rejected.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(rejected.message().find("--queue-capacity"), std::string::npos);
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 1);
  // A refused request is left as it was: the caller still owns its callback.
  EXPECT_TRUE(static_cast<bool>(fourth.on_complete));
  EXPECT_EQ(fourth.payload.image.width, 4);

  backend.OpenGate();
  done.AwaitTotal(3);
  scheduler->Shutdown();
  EXPECT_EQ(done.CountFor(1), 1);
  EXPECT_EQ(done.CountFor(2), 1);
  EXPECT_EQ(done.CountFor(3), 1);
  EXPECT_EQ(done.CountFor(4), 0);
  EXPECT_EQ(done.total(), 3);
}

TEST(SchedulerTest, AFullQueueMakesTheSourceWithTheMostWaitingYieldItsNewestFrame) {
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  auto scheduler =
      MakeScheduler(backend, Options(1, 1, microseconds(2000), /*capacity=*/4), &clock, &listener);
  auto from = [&](int id, const std::string& source) {
    return scheduler->Submit(RequestFrom(source, id, done.For(id)));
  };
  backend.CloseGate();
  ASSERT_TRUE(from(1, "flood").ok());
  backend.AwaitBlockedRuns(1);
  for (int id = 2; id <= 5; ++id) ASSERT_TRUE(from(id, "flood").ok());  // the queue is full

  // Another client's frame takes the place of the flood's newest (5), then
  // of its next newest (4): the flood still has more waiting.
  ASSERT_TRUE(from(6, "camera").ok());
  EXPECT_EQ(done.CountFor(5), 1);
  EXPECT_EQ(done.OutcomeFor(5).dropped, DropReason::kQueueFull);
  EXPECT_EQ(done.OutcomeFor(5).status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(done.OutcomeFor(5).status.message().find("fewer frames waiting"), std::string::npos);
  ASSERT_TRUE(from(7, "camera").ok());
  EXPECT_EQ(done.OutcomeFor(4).dropped, DropReason::kQueueFull);
  // Two each: neither gives way to the other any more, and a source never
  // evicts its own frames.
  EXPECT_EQ(from(8, "camera").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(from(9, "flood").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(scheduler->queue_depth(), 4);
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 4);  // 2 evicted, 2 refused

  backend.OpenGate();
  done.AwaitTotal(7);
  scheduler->Shutdown();
  for (int id : {1, 2, 3, 6, 7}) {
    EXPECT_TRUE(done.OutcomeFor(id).status.ok()) << id;
    EXPECT_EQ(done.CountFor(id), 1) << id;
  }
  EXPECT_EQ(done.CountFor(8), 0);
  EXPECT_EQ(done.CountFor(9), 0);
  EXPECT_EQ(done.total(), 7);
}

TEST(SchedulerTest, BatchesTakeTheSourcesInTurnSoAFloodDoesNotDelayTheOthers) {
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  auto scheduler =
      MakeScheduler(backend, Options(1, 1, microseconds(0), /*capacity=*/8), &clock, &listener);
  auto from = [&](int id, const std::string& source) {
    return scheduler->Submit(RequestFrom(source, id, done.For(id)));
  };
  backend.CloseGate();
  ASSERT_TRUE(from(1, "flood").ok());
  backend.AwaitBlockedRuns(1);
  for (int id = 2; id <= 5; ++id) ASSERT_TRUE(from(id, "flood").ok());
  ASSERT_TRUE(from(6, "camera").ok());
  ASSERT_TRUE(from(7, "flood").ok());
  ASSERT_TRUE(from(8, "camera").ok());
  backend.OpenGate();
  done.AwaitTotal(8);
  scheduler->Shutdown();
  // Oldest first within a source; across sources in turn (the flood had
  // nothing waiting when 1 ran, so the two start even and the older, 2,
  // goes first): each camera frame waits for one flood frame at most.
  std::vector<int> ran;
  for (const std::vector<int>& batch : backend.batches())
    ran.insert(ran.end(), batch.begin(), batch.end());
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 6, 3, 8, 4, 5, 7}));
}

TEST(SchedulerTest, RejectsFramesOverQueueBytes) {
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  SchedulerOptions options = Options(1, 1, microseconds(2000));
  options.queue_bytes_capacity = 3 * 10 + 3 * 20;  // frames 10 and 20 (3 bytes per pixel)
  auto scheduler = MakeScheduler(backend, options, &clock, &listener);
  backend.CloseGate();
  ASSERT_TRUE(scheduler->Submit(Request(5, done.For(5))).ok());  // runs: its bytes leave the queue
  backend.AwaitBlockedRuns(1);
  ASSERT_TRUE(scheduler->Submit(Request(10, done.For(10))).ok());
  ASSERT_TRUE(scheduler->Submit(Request(20, done.For(20))).ok());
  Status rejected = scheduler->Submit(Request(1, done.For(1)));
  EXPECT_EQ(rejected.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(rejected.message().find("--queue-memory-mb"), std::string::npos);
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 1);
  EXPECT_EQ(scheduler->queue_depth(), 2);
  backend.OpenGate();
  done.AwaitTotal(3);
  // Once they left the queue, their bytes are free again.
  ASSERT_TRUE(scheduler->Submit(Request(30, done.For(30))).ok());
  done.AwaitTotal(4);
  EXPECT_EQ(done.CountFor(1), 0);
}

TEST(SchedulerTest, EveryFrameFromManyThreadsCompletesExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kFramesPerThread = 250;
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  // Zero timeout: batches form from whatever has piled up while workers ran.
  auto scheduler = MakeScheduler(
      backend, Options(3, 4, microseconds(0), kThreads * kFramesPerThread), &clock, &listener);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kFramesPerThread; ++i) {
        const int id = 1 + t * kFramesPerThread + i;
        EXPECT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());
      }
    });
  }
  for (std::thread& submitter : submitters) submitter.join();
  done.AwaitTotal(kThreads * kFramesPerThread);
  scheduler->Shutdown();

  EXPECT_EQ(done.total(), kThreads * kFramesPerThread);
  int frames_in_batches = 0;
  for (const std::vector<int>& batch : backend.batches()) {
    EXPECT_GE(batch.size(), 1u);
    EXPECT_LE(batch.size(), 4u);
    frames_in_batches += static_cast<int>(batch.size());
  }
  EXPECT_EQ(frames_in_batches, kThreads * kFramesPerThread);
  for (int id = 1; id <= kThreads * kFramesPerThread; ++id) {
    ASSERT_EQ(done.CountFor(id), 1) << "frame " << id;
    FrameOutcome outcome = done.OutcomeFor(id);
    ASSERT_TRUE(outcome.status.ok());
    ASSERT_EQ(outcome.result.detections.size(), 1u);
    EXPECT_EQ(outcome.result.detections[0].class_id, id);
  }
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 0);
}

TEST(SchedulerTest, ShutdownRunsEveryQueuedFrameWithoutWaitingForTimeouts) {
  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  // A batch timeout the fake clock never reaches.
  auto scheduler = MakeScheduler(backend, Options(1, 2, std::chrono::hours(1)), &clock, &listener);
  backend.CloseGate();
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  backend.AwaitBlockedRuns(1);
  for (int id = 3; id <= 5; ++id) ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());

  std::thread shutdown([&] { scheduler->Shutdown(); });
  backend.OpenGate();
  shutdown.join();

  EXPECT_EQ(done.total(), 5);
  for (int id = 1; id <= 5; ++id) {
    EXPECT_EQ(done.CountFor(id), 1) << "frame " << id;
    EXPECT_TRUE(done.OutcomeFor(id).status.ok()) << "frame " << id;
  }
  EXPECT_EQ(backend.batches(), (Batches{{1, 2}, {3, 4}, {5}}));

  Status late = scheduler->Submit(Request(6, done.For(6)));
  EXPECT_EQ(late.code(), StatusCode::kUnavailable);
  EXPECT_EQ(listener.Dropped(DropReason::kShuttingDown), 1);
  scheduler->Shutdown();  // idempotent
  EXPECT_EQ(done.CountFor(6), 0);
}

TEST(SchedulerTest, ShutdownWithAnObjectiveRunsWhatWaitsWithoutWaiting) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  SchedulerOptions options = Options(1, 4, std::chrono::hours(1));
  options.latency_objective = std::chrono::hours(1);  // would wait for a batch of 4
  auto scheduler = MakeScheduler(backend, options, &clock);
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  clock.AwaitWaitsStarted(1);
  EXPECT_EQ(done.total(), 0);
  scheduler->Shutdown();
  EXPECT_EQ(done.total(), 1);
  EXPECT_EQ(backend.batches(), (Batches{{1}}));
}

TEST(SchedulerTest, EachFrameOfABatchGetsItsOwnResultAndTimings) {
  FakeClock clock;
  FakeBackend backend(&clock, /*inference_time=*/microseconds(5000));
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 4, microseconds(2000)), &clock);
  for (int id = 1; id <= 4; ++id) {
    FrameRequest request = Request(id, done.For(id), 0.1f * id);
    request.want_raw_outputs = id % 2 == 0;
    ASSERT_TRUE(scheduler->Submit(std::move(request)).ok());
  }
  done.AwaitTotal(4);
  ASSERT_EQ(backend.batches(), (Batches{{1, 2, 3, 4}}));
  for (int id = 1; id <= 4; ++id) {
    FrameOutcome outcome = done.OutcomeFor(id);
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
    const FrameResult& result = outcome.result;
    ASSERT_EQ(result.detections.size(), 1u);
    const engine::Detection& detection = result.detections[0];
    EXPECT_EQ(detection.class_id, id);
    EXPECT_EQ(detection.label, "id" + std::to_string(id));
    EXPECT_FLOAT_EQ(detection.score, 0.1f * id);  // this frame's own options
    EXPECT_EQ(detection.box.x_max, id);           // this frame's own image size
    EXPECT_EQ(result.image_width, id);
    EXPECT_EQ(result.image_height, 1);
    EXPECT_EQ(result.batch_size, 4);
    EXPECT_EQ(result.timings.decode_us, 0);
    EXPECT_EQ(result.timings.queue_us, 0);
    EXPECT_EQ(result.timings.inference_us, 5000);
    EXPECT_EQ(result.timings.postprocess_us, 0);
    if (id % 2 == 0) {
      ASSERT_EQ(result.raw_outputs.size(), 1u);
      EXPECT_EQ(result.raw_outputs[0].tensor.values(), (std::vector<float>{float(id), 4.0f}));
    } else {
      EXPECT_TRUE(result.raw_outputs.empty());
    }
  }
}

TEST(SchedulerTest, TensorFramesRunAndPayloadsOfTheWrongSizeAreRefused) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 1, microseconds(0)), &clock);
  FrameRequest request;
  request.payload.kind = FramePayload::Kind::kTensor;
  request.payload.tensor = {7, 0, 0, 0};
  request.want_detections = false;
  request.want_raw_outputs = true;
  request.on_complete = done.For(7);
  ASSERT_TRUE(scheduler->Submit(std::move(request)).ok());
  done.AwaitTotal(1);
  FrameOutcome outcome = done.OutcomeFor(7);
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_TRUE(outcome.result.detections.empty());
  EXPECT_EQ(outcome.result.image_width, 0);
  ASSERT_EQ(outcome.result.raw_outputs.size(), 1u);
  EXPECT_EQ(outcome.result.raw_outputs[0].tensor.values()[0], 7.0f);

  FrameRequest wrong;
  wrong.payload.kind = FramePayload::Kind::kTensor;
  wrong.payload.tensor = {8, 0, 0};
  wrong.on_complete = done.For(8);
  Status refused = scheduler->Submit(std::move(wrong));
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("4 floats"), std::string::npos);

  FrameRequest short_image = Request(9, done.For(9));
  short_image.payload.image.bgr.pop_back();  // 26 bytes for 9 x 1 pixels
  EXPECT_EQ(scheduler->Submit(std::move(short_image)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(backend.frames_run(), 1);
}

TEST(SchedulerTest, EngineErrorFailsEveryFrameOfTheBatchOnce) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 2, microseconds(2000)), &clock);
  backend.FailRuns(Internal("kernel exploded"));
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  done.AwaitTotal(2);
  scheduler->Shutdown();
  for (int id : {1, 2}) {
    EXPECT_EQ(done.CountFor(id), 1);
    FrameOutcome outcome = done.OutcomeFor(id);
    ASSERT_FALSE(outcome.status.ok());
    EXPECT_EQ(outcome.dropped, DropReason::kNone);
    EXPECT_EQ(outcome.status.code(), StatusCode::kInternal);
    EXPECT_NE(outcome.status.message().find("kernel exploded"), std::string::npos);
    EXPECT_NE(outcome.status.message().find("batch of 2"), std::string::npos);
  }
}

TEST(SchedulerTest, BusyWorkersLetFramesAccumulateIntoFullerBatches) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(2, 3, microseconds(0)), &clock);
  backend.CloseGate();
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  backend.AwaitBlockedRuns(1);
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  backend.AwaitBlockedRuns(2);  // both workers busy
  for (int id = 3; id <= 6; ++id) ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());
  backend.OpenGate();
  done.AwaitTotal(6);
  // Batches are formed in queue order; the two workers may start them in
  // either order.
  const Batches batches = backend.batches();
  ASSERT_EQ(batches.size(), 4u);
  Batches later(batches.begin() + 2, batches.end());
  std::sort(later.begin(), later.end());
  EXPECT_EQ(later, (Batches{{3, 4, 5}, {6}}));
}

}  // namespace
}  // namespace lowbit::server
