// Per-model scheduling: a bounded queue, a dynamic batcher and a pool of
// workers, each owning one InferenceSession.
//
//   Submit --> queue_ (<= queue_capacity frames)
//                 | batcher thread: once a worker is idle, takes up to
//                 | max_batch frames as soon as max_batch are waiting or the
//                 | oldest has waited batch_timeout, whichever is first
//                 v
//              ready_ (one batch per idle worker) --> worker: Run (pre-process
//                 + one engine call for the whole batch), then post-process and
//                 complete each frame in batch order.
//
// Batches form only when a worker can take them, so while all workers are
// busy frames keep accumulating into fuller batches (as Triton's dynamic
// batcher does with model instances).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "clock.h"
#include "lowbit/engine/detector.h"
#include "lowbit/engine/status.h"

namespace lowbit::server {

struct SchedulerOptions {
  int workers = 2;
  int threads_per_worker = 1;
  int max_batch = 4;
  std::chrono::microseconds batch_timeout{2000};
  int queue_capacity = 64;
};

// Microseconds per stage of one frame.
struct StageTimings {
  int64_t decode_us = 0;       // copied from the request; measured by the caller
  int64_t queue_us = 0;        // Submit until its batch starts on a worker
  int64_t inference_us = 0;    // the batch's pre-processing and engine call
  int64_t postprocess_us = 0;  // this frame's head decoding and NMS
};

struct FrameResult {
  std::vector<engine::Detection> detections;
  StageTimings timings;
  int batch_size = 0;  // frames in the engine call that ran this frame
};

// Called exactly once per accepted frame, on a worker thread. Must not throw
// and should not block: it holds up the worker's next batch.
using CompletionCallback = std::function<void(StatusOr<FrameResult>)>;

struct FrameRequest {
  engine::Image image;  // decoded, BGR8
  engine::DetectOptions detect_options;
  int64_t decode_us = 0;
  CompletionCallback on_complete;
};

enum class DropReason { kQueueFull, kShuttingDown };
const char* DropReasonName(DropReason reason);  // "queue_full", "shutting_down"

// Observes a scheduler for metrics. Called with the scheduler's lock held:
// implementations must be quick and must not call back into the scheduler.
class SchedulerListener {
 public:
  virtual ~SchedulerListener() = default;
  virtual void OnQueueDepth(int depth) {}
  virtual void OnBatchFormed(int batch_size) {}
  virtual void OnDropped(DropReason reason) {}
};

class Scheduler {
 public:
  // Creates options.workers sessions of `backend` and starts the threads.
  // `clock` and `listener` (may be null) must outlive the scheduler.
  static StatusOr<std::unique_ptr<Scheduler>> Create(std::string model_name,
                                                     const InferenceBackend& backend,
                                                     const SchedulerOptions& options,
                                                     Clock* clock = &SteadyClock(),
                                                     SchedulerListener* listener = nullptr);
  ~Scheduler();  // Shutdown()

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues one frame. OK: `request.on_complete` will be called exactly once.
  // RESOURCE_EXHAUSTED (queue full) or UNAVAILABLE (shutting down): it is not
  // called and the request is dropped.
  Status Submit(FrameRequest request);

  // Stops accepting frames, runs every queued frame (without waiting for
  // batch timeouts), then stops the threads. Idempotent; call from one thread.
  void Shutdown();

  int queue_depth() const;
  const std::string& model_name() const { return model_name_; }

 private:
  struct Pending {
    FrameRequest request;
    Clock::TimePoint enqueued;
  };
  using Batch = std::vector<Pending>;

  Scheduler(std::string model_name, const SchedulerOptions& options, Clock* clock,
            SchedulerListener* listener, std::vector<std::unique_ptr<InferenceSession>> sessions);
  void BatcherLoop();
  void WorkerLoop(InferenceSession* session);
  void RunBatch(InferenceSession& session, Batch& batch);

  const std::string model_name_;
  const SchedulerOptions options_;
  Clock* const clock_;
  SchedulerListener* const listener_;
  const std::vector<std::unique_ptr<InferenceSession>> sessions_;

  mutable std::mutex mu_;
  // Signalled when queue_ grows, a worker becomes idle, or stopping_ is set.
  std::condition_variable batcher_cv_;
  // Signalled when ready_ grows or batcher_done_ is set.
  std::condition_variable worker_cv_;
  std::deque<Pending> queue_;  // accepted, not batched; size() <= queue_capacity
  std::deque<Batch> ready_;    // formed, not yet taken; each has a reserved idle worker
  int idle_workers_ = 0;       // workers neither running nor reserved for a batch in ready_
  bool stopping_ = false;      // no more Submits accepted
  bool batcher_done_ = false;  // queue_ drained after stopping_; workers exit when ready_ empties

  std::thread batcher_;
  std::vector<std::thread> workers_;
};

}  // namespace lowbit::server
