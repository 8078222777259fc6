// Scheduler with a fake engine and a fake clock: batching, timeouts, the
// queue bound, completion, shutdown.
#include "scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "fake_backend.h"
#include "fake_clock.h"

namespace lowbit::server {
namespace {

using std::chrono::microseconds;
using testing::FakeBackend;
using testing::FakeClock;
using testing::ImageWithId;
using Batches = std::vector<std::vector<int>>;

// Every completion, by frame id.
class Completions {
 public:
  CompletionCallback For(int id) {
    return [this, id](StatusOr<FrameResult> result) {
      std::lock_guard<std::mutex> lock(mu_);
      results_[id].push_back(std::move(result));
      ++total_;
      cv_.notify_all();
    };
  }
  void AwaitTotal(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return total_ >= count; });
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  int CountFor(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(id);
    return it == results_.end() ? 0 : static_cast<int>(it->second.size());
  }
  // The first completion of `id`; it must exist.
  StatusOr<FrameResult> ResultFor(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    return results_.at(id).at(0);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::vector<StatusOr<FrameResult>>> results_;
  int total_ = 0;
};

class RecordingListener final : public SchedulerListener {
 public:
  void OnQueueDepth(int depth) override {
    std::lock_guard<std::mutex> lock(mu_);
    max_depth = std::max(max_depth, depth);
    last_depth = depth;
  }
  void OnBatchFormed(int size) override {
    std::lock_guard<std::mutex> lock(mu_);
    batch_sizes.push_back(size);
  }
  void OnDropped(DropReason reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++dropped[reason];
  }
  int Dropped(DropReason reason) {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped[reason];
  }

  std::mutex mu_;
  int max_depth = 0;
  int last_depth = 0;
  std::vector<int> batch_sizes;
  std::map<DropReason, int> dropped;
};

SchedulerOptions Options(int workers, int max_batch, microseconds timeout, int capacity = 64) {
  SchedulerOptions options;
  options.workers = workers;
  options.max_batch = max_batch;
  options.batch_timeout = timeout;
  options.queue_capacity = capacity;
  return options;
}

FrameRequest Request(int id, CompletionCallback done, float score_threshold = 0) {
  FrameRequest request;
  request.image = ImageWithId(id);
  request.detect_options.score_threshold = score_threshold;
  request.decode_us = 10 * id;
  request.on_complete = std::move(done);
  return request;
}

std::unique_ptr<Scheduler> MakeScheduler(const FakeBackend& backend, SchedulerOptions options,
                                         FakeClock* clock, SchedulerListener* listener = nullptr) {
  StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create("fake", backend, options, clock, listener);
  EXPECT_TRUE(scheduler.ok()) << scheduler.status().ToString();
  return std::move(scheduler).value();
}

TEST(SchedulerTest, CreatesOneSessionPerWorker) {
  FakeClock clock;
  FakeBackend backend;
  auto scheduler = MakeScheduler(backend, Options(3, 4, microseconds(2000)), &clock);
  EXPECT_EQ(backend.sessions_created(), 3);
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
  EXPECT_EQ(done.ResultFor(1)->batch_size, 4);
  EXPECT_EQ(done.ResultFor(8)->batch_size, 4);
  EXPECT_EQ(done.ResultFor(9)->batch_size, 1);
  EXPECT_EQ(listener.batch_sizes, (std::vector<int>{4, 4, 1}));
  EXPECT_EQ(listener.max_depth, 5);
  EXPECT_EQ(listener.last_depth, 0);
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
  StatusOr<FrameResult> result = done.ResultFor(7);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->batch_size, 1);
  EXPECT_EQ(result->timings.queue_us, 2000);
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

  Status rejected = scheduler->Submit(Request(4, done.For(4)));
  EXPECT_EQ(rejected.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(rejected.message().find("--queue-capacity"), std::string::npos);
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 1);

  backend.OpenGate();
  done.AwaitTotal(3);
  scheduler->Shutdown();
  EXPECT_EQ(done.CountFor(1), 1);
  EXPECT_EQ(done.CountFor(2), 1);
  EXPECT_EQ(done.CountFor(3), 1);
  EXPECT_EQ(done.CountFor(4), 0);
  EXPECT_EQ(done.total(), 3);
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
    StatusOr<FrameResult> result = done.ResultFor(id);
    ASSERT_TRUE(result.ok());
    ASSERT_EQ(result->detections.size(), 1u);
    EXPECT_EQ(result->detections[0].class_id, id);
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
  for (int id = 1; id <= 5; ++id) EXPECT_EQ(done.CountFor(id), 1) << "frame " << id;
  EXPECT_EQ(backend.batches(), (Batches{{1, 2}, {3, 4}, {5}}));

  Status late = scheduler->Submit(Request(6, done.For(6)));
  EXPECT_EQ(late.code(), StatusCode::kUnavailable);
  EXPECT_EQ(listener.Dropped(DropReason::kShuttingDown), 1);
  scheduler->Shutdown();  // idempotent
  EXPECT_EQ(done.CountFor(6), 0);
}

TEST(SchedulerTest, EachFrameOfABatchGetsItsOwnResultAndTimings) {
  FakeClock clock;
  FakeBackend backend(&clock, /*inference_time=*/microseconds(5000));
  Completions done;
  auto scheduler = MakeScheduler(backend, Options(1, 4, microseconds(2000)), &clock);
  for (int id = 1; id <= 4; ++id) {
    ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id), 0.1f * id)).ok());
  }
  done.AwaitTotal(4);
  ASSERT_EQ(backend.batches(), (Batches{{1, 2, 3, 4}}));
  for (int id = 1; id <= 4; ++id) {
    StatusOr<FrameResult> result = done.ResultFor(id);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    ASSERT_EQ(result->detections.size(), 1u);
    const engine::Detection& detection = result->detections[0];
    EXPECT_EQ(detection.class_id, id);
    EXPECT_EQ(detection.label, "id" + std::to_string(id));
    EXPECT_FLOAT_EQ(detection.score, 0.1f * id);  // this frame's own options
    EXPECT_EQ(detection.box.x_max, id);           // this frame's own image size
    EXPECT_EQ(result->batch_size, 4);
    EXPECT_EQ(result->timings.decode_us, 10 * id);
    EXPECT_EQ(result->timings.queue_us, 0);
    EXPECT_EQ(result->timings.inference_us, 5000);
    EXPECT_EQ(result->timings.postprocess_us, 0);
  }
}

TEST(SchedulerTest, EngineErrorFailsEveryFrameOfTheBatchOnce) {
  FakeClock clock;
  FakeBackend backend;
  Completions done;
  backend.FailRuns(Internal("kernel exploded"));
  auto scheduler = MakeScheduler(backend, Options(1, 2, microseconds(2000)), &clock);
  ASSERT_TRUE(scheduler->Submit(Request(1, done.For(1))).ok());
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  done.AwaitTotal(2);
  scheduler->Shutdown();
  for (int id : {1, 2}) {
    EXPECT_EQ(done.CountFor(id), 1);
    StatusOr<FrameResult> result = done.ResultFor(id);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInternal);
    EXPECT_NE(result.status().message().find("kernel exploded"), std::string::npos);
    EXPECT_NE(result.status().message().find("batch of 2"), std::string::npos);
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
