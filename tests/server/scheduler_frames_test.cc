// Scheduler with a fake engine, a fake clock and a counting decoder: what
// happens to a frame before it is computed. Admission before decode,
// deadlines and cancellation (never decoded nor run), latest frame wins per
// camera (slot order, per-camera order, fairness), the decode budget.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fake_backend.h"
#include "fake_clock.h"
#include "scheduler.h"
#include "scheduler_test_util.h"

namespace lowbit::server {
namespace {

using std::chrono::microseconds;
using testing::Batches;
using testing::CameraRequest;
using testing::Completions;
using testing::CountingDecoder;
using testing::EncodedRequest;
using testing::FakeBackend;
using testing::FakeClock;
using testing::MakeScheduler;
using testing::Options;
using testing::RecordingListener;
using testing::Request;

// One fake engine, clock, listener and counting decoder per test; a decode
// budget when the test sets one.
class SchedulerFramesTest : public ::testing::Test {
 protected:
  // `budget_bytes` 0: no decode budget.
  void Start(SchedulerOptions options, int64_t budget_bytes = 0) {
    if (budget_bytes > 0) budget = std::make_unique<DecodeBudget>(budget_bytes);
    decoder = std::make_unique<CountingDecoder>(budget.get());
    scheduler =
        MakeScheduler(backend, options, &clock, &listener, budget.get(), decoder->decoder());
    ASSERT_NE(scheduler, nullptr);
  }
  // Closes the gate and keeps the first worker busy with frame 100.
  void OccupyAWorker() {
    backend.CloseGate();
    ASSERT_TRUE(scheduler->Submit(Request(100, done.For(100))).ok());
    backend.AwaitBlockedRuns(1);
  }

  FakeClock clock;
  FakeBackend backend;
  RecordingListener listener;
  Completions done;
  std::unique_ptr<DecodeBudget> budget;
  std::unique_ptr<CountingDecoder> decoder;
  std::unique_ptr<Scheduler> scheduler;  // last: stopped before the rest goes
};

TEST_F(SchedulerFramesTest, FrameWhoseDeadlineHasPassedIsRefusedAtAdmission) {
  Start(Options(1, 1, microseconds(0)));
  FrameRequest late = EncodedRequest(1, done.For(1));
  late.deadline = clock.Now();
  Status refused = scheduler->Submit(std::move(late));
  EXPECT_EQ(refused.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(listener.Dropped(DropReason::kDeadline), 1);
  EXPECT_TRUE(static_cast<bool>(late.on_complete));  // left as it was
  EXPECT_EQ(late.payload.encoded, "1");

  FrameRequest stale = EncodedRequest(2, done.For(2));
  stale.deadline = clock.Now() - microseconds(1);
  stale.deadline_reason = DropReason::kStale;
  refused = scheduler->Submit(std::move(stale));
  EXPECT_EQ(refused.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(refused.message().find("max age"), std::string::npos);
  EXPECT_EQ(listener.Dropped(DropReason::kStale), 1);

  scheduler->Shutdown();
  EXPECT_EQ(decoder->calls(), 0);
  EXPECT_EQ(backend.frames_run(), 0);
  EXPECT_EQ(done.total(), 0);
}

TEST_F(SchedulerFramesTest, ExpiredFramesAreAnsweredAtTheirDeadlineNeverDecodedNorRun) {
  Start(Options(1, 4, microseconds(0)));
  OccupyAWorker();  // the only worker, from here on

  FrameRequest deadline = EncodedRequest(2, done.For(2));
  deadline.deadline = clock.Now() + microseconds(1000);
  FrameRequest stale = EncodedRequest(3, done.For(3));
  stale.deadline = clock.Now() + microseconds(1500);
  stale.deadline_reason = DropReason::kStale;
  ASSERT_TRUE(scheduler->Submit(std::move(deadline)).ok());
  ASSERT_TRUE(scheduler->Submit(std::move(stale)).ok());
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(4, done.For(4))).ok());

  clock.Advance(microseconds(1000));
  done.AwaitTotal(1);  // at its deadline, while the worker is still busy
  FrameOutcome outcome = done.OutcomeFor(2);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(outcome.dropped, DropReason::kDeadline);
  EXPECT_NE(outcome.status.message().find("deadline"), std::string::npos);
  EXPECT_EQ(done.CountFor(3), 0);

  clock.Advance(microseconds(500));
  done.AwaitTotal(2);
  outcome = done.OutcomeFor(3);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(outcome.dropped, DropReason::kStale);
  EXPECT_NE(outcome.status.message().find("frame older than its max age"), std::string::npos);
  EXPECT_EQ(scheduler->queue_depth(), 1);

  backend.OpenGate();
  done.AwaitTotal(4);
  EXPECT_TRUE(done.OutcomeFor(4).status.ok());
  EXPECT_EQ(backend.batches(), (Batches{{100}, {4}}));
  EXPECT_EQ(decoder->calls(), 1);  // frame 4 only
  EXPECT_EQ(listener.Dropped(DropReason::kDeadline), 1);
  EXPECT_EQ(listener.Dropped(DropReason::kStale), 1);
}

TEST_F(SchedulerFramesTest, AFrameThatCannotBeAnsweredInTimeIsDroppedAtOnce) {
  FakeBackend slow(&clock);
  slow.SetServiceTime([](int b) { return microseconds(10000 * b); });
  scheduler = MakeScheduler(slow, Options(1, 4, microseconds(0)), &clock, &listener, nullptr,
                            (decoder = std::make_unique<CountingDecoder>())->decoder());
  ASSERT_EQ(scheduler->service_time_us(1), 10000);
  // 5 ms left, a batch of one takes 10 ms: answered now, not computed.
  FrameRequest deadline = EncodedRequest(1, done.For(1));
  deadline.deadline = clock.Now() + microseconds(5000);
  ASSERT_TRUE(scheduler->Submit(std::move(deadline)).ok());
  FrameRequest stale = EncodedRequest(2, done.For(2));
  stale.deadline = clock.Now() + microseconds(9999);
  stale.deadline_reason = DropReason::kStale;
  ASSERT_TRUE(scheduler->Submit(std::move(stale)).ok());
  done.AwaitTotal(2);
  EXPECT_EQ(done.OutcomeFor(1).status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(done.OutcomeFor(1).status.message().find("would pass"), std::string::npos);
  EXPECT_EQ(done.OutcomeFor(1).dropped, DropReason::kDeadline);
  EXPECT_EQ(done.OutcomeFor(2).dropped, DropReason::kStale);
  EXPECT_NE(done.OutcomeFor(2).status.message().find("max age"), std::string::npos);
  // 10 ms left is enough.
  FrameRequest in_time = EncodedRequest(3, done.For(3));
  in_time.deadline = clock.Now() + microseconds(10000);
  ASSERT_TRUE(scheduler->Submit(std::move(in_time)).ok());
  done.AwaitTotal(3);
  EXPECT_TRUE(done.OutcomeFor(3).status.ok());
  scheduler.reset();  // before `slow` goes
  EXPECT_EQ(decoder->calls(), 1);
  EXPECT_EQ(slow.batches(), (Batches{{3}}));
}

// The estimate says 10 ms, the run takes 30 ms: frames whose deadline passes
// during the run are computed but withheld (stale or deadline, as set), and
// counted as dropped; a frame with time to spare is answered.
TEST_F(SchedulerFramesTest, AResultReadyAfterTheFramesDeadlineIsWithheld) {
  FakeBackend slow(&clock);
  slow.SetServiceTime([](int) { return microseconds(10000); });
  scheduler = MakeScheduler(slow, Options(1, 4, microseconds(0)), &clock, &listener);
  ASSERT_EQ(scheduler->service_time_us(1), 10000);
  slow.SetServiceTime([](int) { return microseconds(30000); });
  slow.CloseGate();
  ASSERT_TRUE(scheduler->Submit(Request(100, done.For(100))).ok());
  slow.AwaitBlockedRuns(1);
  FrameRequest stale = CameraRequest(1, "cam1", done.For(1));
  stale.deadline = clock.Now() + microseconds(50000);  // 20 ms after frame 100's run
  stale.deadline_reason = DropReason::kStale;
  ASSERT_TRUE(scheduler->Submit(std::move(stale)).ok());
  FrameRequest deadline = CameraRequest(2, "cam2", done.For(2));
  deadline.deadline = clock.Now() + microseconds(50000);
  ASSERT_TRUE(scheduler->Submit(std::move(deadline)).ok());
  FrameRequest in_time = CameraRequest(3, "cam3", done.For(3));
  in_time.deadline = clock.Now() + microseconds(60000);
  ASSERT_TRUE(scheduler->Submit(std::move(in_time)).ok());
  slow.OpenGate();
  done.AwaitTotal(4);
  // Frame 100 ends at 30 ms; the batch {1, 2, 3} forms with 20 ms left (the
  // estimate, 10 ms, fits) and ends at 60 ms.
  EXPECT_EQ(slow.batches(), (Batches{{100}, {1, 2, 3}}));
  const FrameOutcome late_stale = done.OutcomeFor(1);
  EXPECT_EQ(late_stale.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(late_stale.dropped, DropReason::kStale);
  EXPECT_TRUE(late_stale.computed);
  EXPECT_NE(late_stale.status.message().find("10 ms past it"), std::string::npos)
      << late_stale.status.message();
  const FrameOutcome late_deadline = done.OutcomeFor(2);
  EXPECT_EQ(late_deadline.dropped, DropReason::kDeadline);
  EXPECT_TRUE(late_deadline.computed);
  EXPECT_NE(late_deadline.status.message().find("deadline passed while"), std::string::npos);
  const FrameOutcome answered = done.OutcomeFor(3);
  EXPECT_TRUE(answered.status.ok());
  EXPECT_FALSE(answered.computed);
  EXPECT_EQ(answered.dropped, DropReason::kNone);
  EXPECT_EQ(listener.Dropped(DropReason::kStale), 1);
  EXPECT_EQ(listener.Dropped(DropReason::kDeadline), 1);
  scheduler.reset();  // before `slow` goes
}

// S(b) = 10 ms * b, no objective. Four frames with 35 ms left wait while
// frame 100 runs (10 ms); then a batch of 2 (20 ms) is all that can end in
// time, and the last two are dropped once 5 ms are left.
TEST_F(SchedulerFramesTest, ABatchTakesOnlyTheFramesItCanAnswerInTime) {
  FakeBackend slow(&clock);
  slow.SetServiceTime([](int b) { return microseconds(10000 * b); });
  scheduler = MakeScheduler(slow, Options(1, 4, microseconds(0)), &clock, &listener);
  slow.CloseGate();
  ASSERT_TRUE(scheduler->Submit(Request(100, done.For(100))).ok());
  slow.AwaitBlockedRuns(1);
  for (int id = 1; id <= 4; ++id) {
    FrameRequest request = CameraRequest(id, "cam" + std::to_string(id), done.For(id));
    request.deadline = clock.Now() + microseconds(35000);
    request.deadline_reason = DropReason::kStale;
    ASSERT_TRUE(scheduler->Submit(std::move(request)).ok());
  }
  slow.OpenGate();
  done.AwaitTotal(5);
  EXPECT_EQ(slow.batches(), (Batches{{100}, {1, 2}}));
  EXPECT_TRUE(done.OutcomeFor(1).status.ok());
  EXPECT_TRUE(done.OutcomeFor(2).status.ok());
  EXPECT_EQ(done.OutcomeFor(3).dropped, DropReason::kStale);
  EXPECT_EQ(done.OutcomeFor(4).dropped, DropReason::kStale);
  EXPECT_EQ(listener.Dropped(DropReason::kStale), 2);
  scheduler.reset();  // before `slow` goes
}

TEST_F(SchedulerFramesTest, CancelledFramesAreDroppedNeverDecodedNorRun) {
  Start(Options(1, 4, microseconds(0)));
  OccupyAWorker();
  std::atomic<bool> gone{false};
  FrameRequest cancelled = EncodedRequest(2, done.For(2));
  cancelled.cancelled = [&gone] { return gone.load(); };
  ASSERT_TRUE(scheduler->Submit(std::move(cancelled)).ok());
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(3, done.For(3))).ok());
  gone = true;  // the client went away while the frame waited
  backend.OpenGate();
  done.AwaitTotal(3);
  FrameOutcome outcome = done.OutcomeFor(2);
  EXPECT_EQ(outcome.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(outcome.dropped, DropReason::kCancelled);
  EXPECT_TRUE(done.OutcomeFor(3).status.ok());
  EXPECT_EQ(backend.batches(), (Batches{{100}, {3}}));
  EXPECT_EQ(decoder->calls(), 1);
  EXPECT_EQ(listener.Dropped(DropReason::kCancelled), 1);
}

TEST_F(SchedulerFramesTest, RefusedFramesAreNeverDecoded) {
  Start(Options(1, 1, microseconds(0), /*capacity=*/2));
  backend.CloseGate();
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(1, done.For(1))).ok());
  backend.AwaitBlockedRuns(1);
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(2, done.For(2))).ok());
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(3, done.For(3))).ok());
  for (int id = 4; id <= 20; ++id) {
    EXPECT_EQ(scheduler->Submit(EncodedRequest(id, done.For(id))).code(),
              StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(decoder->calls(), 1);
  backend.OpenGate();
  done.AwaitTotal(3);
  scheduler->Shutdown();
  EXPECT_EQ(scheduler->Submit(EncodedRequest(21, done.For(21))).code(), StatusCode::kUnavailable);
  EXPECT_EQ(decoder->calls(), 3);  // exactly the frames computed
  EXPECT_EQ(backend.frames_run(), 3);
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 17);
  EXPECT_EQ(listener.Dropped(DropReason::kShuttingDown), 1);
  EXPECT_EQ(done.total(), 3);
}

TEST_F(SchedulerFramesTest, LatestFrameWinsAndKeepsItsCamerasPlace) {
  Start(Options(1, 4, microseconds(0), /*capacity=*/3));
  OccupyAWorker();
  // Slots in order: a, b, c; the queue is full.
  for (const auto& [id, camera] :
       std::vector<std::pair<int, std::string>>{{1, "a"}, {2, "b"}, {3, "c"}}) {
    ASSERT_TRUE(scheduler->Submit(CameraRequest(id, camera, done.For(id))).ok()) << id;
  }
  EXPECT_EQ(scheduler->Submit(CameraRequest(4, "d", done.For(4))).code(),
            StatusCode::kResourceExhausted);
  // A camera's newer frame still replaces its own waiting one, in its place.
  ASSERT_TRUE(scheduler->Submit(CameraRequest(5, "a", done.For(5))).ok());
  ASSERT_TRUE(scheduler->Submit(CameraRequest(6, "b", done.For(6))).ok());
  ASSERT_TRUE(scheduler->Submit(CameraRequest(7, "a", done.For(7))).ok());
  EXPECT_EQ(scheduler->queue_depth(), 3);
  done.AwaitTotal(3);  // 1, 2, 5 superseded, answered without waiting for the engine
  for (int id : {1, 2, 5}) {
    FrameOutcome outcome = done.OutcomeFor(id);
    EXPECT_EQ(outcome.status.code(), StatusCode::kAborted) << id;
    EXPECT_EQ(outcome.dropped, DropReason::kSuperseded) << id;
  }
  EXPECT_EQ(listener.Dropped(DropReason::kSuperseded), 3);
  EXPECT_EQ(listener.Dropped(DropReason::kQueueFull), 1);
  backend.OpenGate();
  done.AwaitTotal(6);
  EXPECT_EQ(backend.batches(), (Batches{{100}, {7, 6, 3}}));
  EXPECT_EQ(done.CountFor(4), 0);
}

TEST_F(SchedulerFramesTest, ACamerasAnswersKeepItsOrderAcrossWorkers) {
  Start(Options(2, 4, microseconds(0)));
  backend.HoldFrame(1);
  ASSERT_TRUE(scheduler->Submit(CameraRequest(1, "a", done.For(1))).ok());
  backend.AwaitBlockedRuns(1);
  ASSERT_TRUE(scheduler->Submit(CameraRequest(2, "a", done.For(2))).ok());
  ASSERT_TRUE(scheduler->Submit(Request(3, done.For(3))).ok());
  // Frames 2 and 3 are computed on the other worker while frame 1 is still
  // held; frame 3, of no camera, is answered...
  done.AwaitTotal(1);
  EXPECT_EQ(done.order(), (std::vector<int>{3}));
  const Batches batches = backend.batches();
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[1][0], 2);
  backend.ReleaseFrame(1);
  done.AwaitTotal(3);
  // ...but frame 2 only after frame 1.
  EXPECT_EQ(done.order(), (std::vector<int>{3, 1, 2}));
}

TEST_F(SchedulerFramesTest, ASupersededFrameIsReportedAfterItsCamerasEarlierAnswer) {
  Start(Options(1, 4, microseconds(0)));
  backend.HoldFrame(1);
  ASSERT_TRUE(scheduler->Submit(CameraRequest(1, "a", done.For(1))).ok());
  backend.AwaitBlockedRuns(1);
  ASSERT_TRUE(scheduler->Submit(CameraRequest(2, "a", done.For(2))).ok());
  ASSERT_TRUE(scheduler->Submit(CameraRequest(3, "a", done.For(3))).ok());
  EXPECT_EQ(done.total(), 0);  // 2 is dropped, but reported after 1
  backend.ReleaseFrame(1);
  done.AwaitTotal(3);
  EXPECT_EQ(done.order(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(done.OutcomeFor(2).dropped, DropReason::kSuperseded);
  EXPECT_EQ(backend.batches(), (Batches{{1}, {3}}));
}

// One camera sends ten times as many frames as each of three others, far
// more than the engine can take: every camera gets the same share of the
// answers, and each camera's frames are computed and answered in order.
TEST_F(SchedulerFramesTest, ABusyCameraCannotStarveTheOthers) {
  constexpr int kRuns = 300;
  Start(Options(1, 2, microseconds(0)));
  std::mutex mu;
  std::map<int, std::string> camera_of;
  std::atomic<int> next_id{1};
  std::atomic<int> submitted{0};
  std::atomic<int> runs{0};
  // Held across Submit: ids follow submission order, camera by camera.
  auto submit = [&](const std::string& camera) {
    std::lock_guard<std::mutex> lock(mu);
    const int id = next_id++;
    camera_of[id] = camera;
    if (scheduler->Submit(CameraRequest(id, camera, done.For(id))).ok()) ++submitted;
  };
  auto arrivals = [&] {
    for (int i = 0; i < 10; ++i) {
      submit("busy");
      if (i % 3 == 0 && i / 3 < 3) submit("quiet" + std::to_string(i / 3));
    }
  };
  // Each engine call sees 13 new frames arrive: 10 of "busy", one per quiet
  // camera; it takes two.
  backend.OnRun([&](const std::vector<int>&) {
    if (++runs <= kRuns) arrivals();
  });
  arrivals();
  backend.AwaitFinishedRuns(kRuns);
  done.AwaitTotal(submitted.load());
  scheduler->Shutdown();

  std::map<std::string, int> computed;
  std::map<std::string, int> last_computed;
  for (const std::vector<int>& batch : backend.batches()) {
    for (int id : batch) {
      const std::string& camera = camera_of.at(id);
      ++computed[camera];
      EXPECT_GT(id, last_computed[camera]) << camera;  // computed in order
      last_computed[camera] = id;
    }
  }
  std::map<std::string, int> last_answered;
  for (int id : done.order()) {
    const std::string& camera = camera_of.at(id);
    EXPECT_GT(id, last_answered[camera]) << camera;  // answered in order
    last_answered[camera] = id;
  }
  ASSERT_EQ(computed.size(), 4u);
  int least = computed.begin()->second;
  int most = least;
  for (const auto& [camera, count] : computed) {
    least = std::min(least, count);
    most = std::max(most, count);
  }
  EXPECT_GE(least, 100);
  EXPECT_GE(static_cast<double>(least), 0.8 * most)
      << "busy " << computed["busy"] << ", quiet0 " << computed["quiet0"];
}

TEST_F(SchedulerFramesTest, DecodeBudgetIsNeverExceeded) {
  constexpr int64_t kFrameBytes = 3 * 10 * 10;
  Start(Options(2, 4, microseconds(0)), 2 * kFrameBytes);
  backend.CloseGate();
  for (int id = 1; id <= 12; ++id) {
    ASSERT_TRUE(scheduler->Submit(EncodedRequest(id, done.For(id), 10, 10)).ok());
  }
  // Two frames' pixels are reserved (in one batch or two), then no more.
  for (int i = 0; i < 1000 && budget->in_use() < 2 * kFrameBytes; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(budget->in_use(), 2 * kFrameBytes);
  backend.OpenGate();
  done.AwaitTotal(12);
  scheduler->Shutdown();
  for (int id = 1; id <= 12; ++id) EXPECT_TRUE(done.OutcomeFor(id).status.ok()) << id;
  EXPECT_EQ(decoder->calls(), 12);
  EXPECT_GT(decoder->max_in_use(), 0);
  EXPECT_LE(decoder->max_in_use(), budget->capacity());
  for (int size : listener.batch_sizes()) EXPECT_LE(size, 2);
  EXPECT_EQ(budget->in_use(), 0);
}

TEST_F(SchedulerFramesTest, BatcherWaitsForTheBudgetAndImagesNeedNone) {
  constexpr int64_t kFrameBytes = 3 * 10 * 10;
  Start(Options(1, 4, microseconds(0)), kFrameBytes);
  ASSERT_TRUE(budget->TryAcquire(kFrameBytes));  // another model's frame is decoding
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(1, done.For(1), 10, 10)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(done.total(), 0);
  EXPECT_EQ(decoder->calls(), 0);
  EXPECT_EQ(scheduler->queue_depth(), 1);
  budget->Release(kFrameBytes);
  done.AwaitTotal(1);
  EXPECT_TRUE(done.OutcomeFor(1).status.ok());
  EXPECT_EQ(budget->in_use(), 0);

  // Decoded pixels take no budget, even while it is exhausted.
  ASSERT_TRUE(budget->TryAcquire(kFrameBytes));
  ASSERT_TRUE(scheduler->Submit(Request(2, done.For(2))).ok());
  done.AwaitTotal(2);
  budget->Release(kFrameBytes);
  EXPECT_EQ(backend.batches(), (Batches{{1}, {2}}));
}

TEST_F(SchedulerFramesTest, AFrameLargerThanTheWholeBudgetIsRefused) {
  Start(Options(1, 4, microseconds(0)), 3 * 10 * 10);
  FrameRequest huge = EncodedRequest(1, done.For(1), 5792, 5792);
  Status refused = scheduler->Submit(std::move(huge));
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("decode budget"), std::string::npos);
  EXPECT_TRUE(static_cast<bool>(huge.on_complete));
  scheduler->Shutdown();
  EXPECT_EQ(decoder->calls(), 0);
  EXPECT_EQ(done.total(), 0);
}

TEST_F(SchedulerFramesTest, AFrameThatFailsToDecodeIsAnsweredAndTheRestRun) {
  Start(Options(1, 3, microseconds(0)), 1 << 20);
  OccupyAWorker();
  FrameRequest bad = EncodedRequest(2, done.For(2));
  bad.payload.encoded = "bad";
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(1, done.For(1))).ok());
  ASSERT_TRUE(scheduler->Submit(std::move(bad)).ok());
  ASSERT_TRUE(scheduler->Submit(EncodedRequest(3, done.For(3))).ok());
  backend.OpenGate();
  done.AwaitTotal(4);
  FrameOutcome failed = done.OutcomeFor(2);
  EXPECT_EQ(failed.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(failed.status.message().find("corrupt JPEG data"), std::string::npos);
  EXPECT_EQ(failed.dropped, DropReason::kNone);
  EXPECT_EQ(backend.batches(), (Batches{{100}, {1, 3}}));
  EXPECT_EQ(done.OutcomeFor(1).result.batch_size, 2);
  EXPECT_EQ(done.OutcomeFor(3).result.image_width, 3);
  scheduler->Shutdown();
  EXPECT_EQ(budget->in_use(), 0);
}

TEST_F(SchedulerFramesTest, ActiveCamerasAreThoseOfTheLastTenSeconds) {
  Start(Options(1, 4, microseconds(0)));
  auto await_active = [&](int count) {
    for (int i = 0; i < 1000 && listener.active_cameras() != count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return listener.active_cameras();
  };
  int id = 1;
  for (const char* camera : {"a", "b", "c"}) {
    ASSERT_TRUE(scheduler->Submit(CameraRequest(id, camera, done.For(id))).ok());
    ++id;
  }
  ASSERT_TRUE(scheduler->Submit(Request(id, done.For(id))).ok());  // no camera
  EXPECT_EQ(listener.active_cameras(), 3);
  done.AwaitTotal(4);
  clock.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(scheduler->Submit(CameraRequest(10, "a", done.For(10))).ok());
  EXPECT_EQ(listener.active_cameras(), 3);
  clock.Advance(std::chrono::seconds(6));  // b and c last sent 11 s ago
  EXPECT_EQ(await_active(1), 1);
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(await_active(0), 0);
}

}  // namespace
}  // namespace lowbit::server
