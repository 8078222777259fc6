// Per-model scheduling: admission, per-camera slots, a batcher and a pool of
// workers, each owning one InferenceSession.
//
//   Submit (admission: nothing decoded yet)
//     --> slots_: FIFO of waiting slots (<= queue_capacity slots,
//         <= queue_bytes_capacity payload bytes). A frame with a camera_id
//         shares its camera's slot: a newer frame replaces the waiting one
//         (latest frame wins; the older is answered as dropped SUPERSEDED)
//         and keeps the slot's place, so a busy camera is served in turn,
//         never starved and never ahead of the others.
//     --> batcher: drops cancelled frames and those that can no longer be
//         answered by their deadline (never decoded or computed); once a
//         worker is idle, chooses a batch size (below) and takes the oldest
//         slots first, within the shared DecodeBudget.
//     --> worker: decodes the batch's encoded frames, one engine call for the
//         batch, post-processes and completes each frame in batch order.
//         A camera's frames are completed in the order they were submitted
//         (drops included): one that ends before an earlier frame of its
//         camera (on another worker) is handed over when that one is.
//
// Batch size: without a latency objective, up to max_batch frames as soon as
// max_batch are waiting or the oldest has waited batch_timeout (fewer if a
// larger batch would end after a frame's deadline). With one,
// the batcher keeps measured service times per batch size (seeded by a
// warm-up run of every size 1..max_batch at Create, which also prepares the
// engine for each size) and picks, among the sizes whose predicted
// completion keeps the oldest waiting frame under the objective, the one of
// highest throughput; it waits for a fuller batch only while that still
// fits the objective (and at most batch_timeout).
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
  // Longest wait, after a batch's first frame, for a fuller batch.
  std::chrono::microseconds batch_timeout{2000};
  // Arrival-to-answer objective of one frame; 0: no objective.
  std::chrono::microseconds latency_objective{0};
  // Waiting slots (a camera's slot counts once, whatever it replaced).
  int queue_capacity = 64;
  // Payload bytes (encoded files, raw pixels, tensors) of waiting frames.
  int64_t queue_bytes_capacity = 256LL * 1024 * 1024;
};

// Bytes of decoded pixels in flight (3 * width * height per frame), shared by
// every model's scheduler. A batch takes only frames whose bytes it can
// reserve; they are released when the frame is completed. Thread-safe.
class DecodeBudget {
 public:
  explicit DecodeBudget(int64_t capacity_bytes);

  bool TryAcquire(int64_t bytes);
  void Release(int64_t bytes);
  int64_t capacity() const { return capacity_; }
  int64_t in_use() const;

  // `wake` is called (without any lock held) after every Release; a
  // scheduler waiting for budget registers its batcher's wake-up here.
  // Returns an id for Unsubscribe.
  int Subscribe(std::function<void()> wake);
  void Unsubscribe(int id);

 private:
  const int64_t capacity_;
  mutable std::mutex mu_;
  int64_t in_use_ = 0;
  int next_id_ = 0;
  std::vector<std::pair<int, std::function<void()>>> subscribers_;
};

// Microseconds per stage of one frame.
struct StageTimings {
  int64_t decode_us = 0;       // header check at admission + decode on the worker
  int64_t queue_us = 0;        // Submit until its batch starts on a worker
  int64_t inference_us = 0;    // the batch's pre-processing and engine call
  int64_t postprocess_us = 0;  // this frame's head decoding and NMS
};

struct FrameResult {
  std::vector<engine::Detection> detections;    // if FrameRequest::want_detections
  std::vector<engine::NamedTensor> raw_outputs;  // if FrameRequest::want_raw_outputs
  int image_width = 0;  // of the decoded image; 0 for a tensor payload
  int image_height = 0;
  StageTimings timings;
  int batch_size = 0;  // frames in the engine call that ran this frame
};

enum class DropReason {
  kNone,
  kSuperseded,  // a newer frame of the same camera replaced it while it waited
  kStale,       // past its frame-age limit when its batch formed
  kQueueFull,   // refused at admission: no slot or no queue bytes left
  kDeadline,    // the call's deadline passed before its batch formed
  kCancelled,   // the call was cancelled before its batch formed
  kShuttingDown,
};
// "superseded", "stale", "queue_full", "deadline", "cancelled",
// "shutting_down" ("none" for kNone): the metrics label values.
const char* DropReasonName(DropReason reason);

// How one accepted frame ended.
struct FrameOutcome {
  // OK: `result` holds the answer. Otherwise the error; for a dropped frame
  // ABORTED (superseded), DEADLINE_EXCEEDED (stale, deadline), CANCELLED or
  // UNAVAILABLE (shutting down), with a message saying why.
  Status status;
  // != kNone: the frame was dropped, unanswered. Never computed, unless
  // `computed`: its batch ran past the frame's deadline (a stale result is
  // withheld rather than handed to a live camera).
  DropReason dropped = DropReason::kNone;
  bool computed = false;
  FrameResult result;
};

// Called exactly once per accepted frame, on a worker, batcher or Submit
// thread, with no scheduler lock held. Must not throw and should not block.
using CompletionCallback = std::function<void(FrameOutcome)>;

// A frame's data as queued. Decoding happens on a worker, so a frame that is
// dropped or refused is never decoded.
struct FramePayload {
  enum class Kind { kEncoded, kImage, kTensor };
  Kind kind = Kind::kImage;
  // kEncoded: a JPEG or PNG file; width and height are from its header
  // (checked against the limits at admission).
  std::string encoded;
  int width = 0;
  int height = 0;
  // kImage: decoded pixels (raw frames).
  engine::Image image;
  // kTensor: one pre-processed frame, input_floats_per_frame() floats.
  std::vector<float> tensor;

  int64_t queued_bytes() const;   // counted against queue_bytes_capacity
  int64_t decoded_bytes() const;  // reserved in the DecodeBudget (kEncoded only)
};

// Decodes a kEncoded payload into BGR8 pixels in `image`, whose buffer a
// worker reuses from frame to frame. The default decodes with
// engine::DecodeImageInto; tests substitute their own.
using FrameDecoder = std::function<Status(const FramePayload& payload, engine::Image* image)>;
FrameDecoder DefaultFrameDecoder(const engine::DecodeLimits& limits);

struct FrameRequest {
  FramePayload payload;
  engine::DetectOptions detect_options;
  bool want_detections = true;
  bool want_raw_outputs = false;
  // Frames with the same non-empty camera_id share one slot (latest frame
  // wins). Empty: the frame has a slot of its own.
  std::string camera_id;
  // The client the frame came from (its connection: gRPC's peer). When the
  // queue is full, a frame whose source has fewer frames waiting takes the
  // place of the newest waiting frame of the source with the most (answered
  // QUEUE_FULL), so one flooding client cannot lock the others out. All
  // frames of one source (or all with none) are refused as before.
  std::string source;
  // When the request arrived; queue time and the objective count from here.
  Clock::TimePoint received{};
  // The frame is dropped, with `deadline_reason`, if its batch has not formed
  // by then, or as soon as even a batch of one would usually (the median of
  // its recent service times) end after it; a batch only takes frames it is
  // predicted (service_time_us) to answer by their deadlines.
  Clock::TimePoint deadline = Clock::TimePoint::max();
  DropReason deadline_reason = DropReason::kDeadline;  // kDeadline or kStale
  // Polled when batches form (may be empty); true drops the frame as
  // kCancelled.
  std::function<bool()> cancelled;
  CompletionCallback on_complete;
};

// Observes a scheduler for metrics. Called with the scheduler's lock held:
// implementations must be quick and must not call back into the scheduler.
class SchedulerListener {
 public:
  virtual ~SchedulerListener() = default;
  virtual void OnQueueDepth(int depth) {}
  virtual void OnBatchFormed(int batch_size) {}
  virtual void OnDropped(DropReason reason) {}
  // The batch size the objective-driven policy targets now.
  virtual void OnTargetBatchSize(int batch_size) {}
  // The service-time estimate of `batch_size` changed (microseconds).
  virtual void OnServiceTime(int batch_size, int64_t service_us) {}
  // Distinct camera_ids that submitted a frame in the last 10 s.
  virtual void OnActiveCameras(int cameras) {}
};

class Scheduler {
 public:
  // Creates options.workers sessions of `backend`, runs each once at every
  // batch size 1..max_batch (warm-up and first service times), and starts
  // the threads. `clock`, `budget` and `listener` (may be null) must outlive
  // the scheduler; a null `budget` means no decode budget.
  static StatusOr<std::unique_ptr<Scheduler>> Create(
      std::string model_name, const InferenceBackend& backend, const SchedulerOptions& options,
      Clock* clock = &SteadyClock(), SchedulerListener* listener = nullptr,
      DecodeBudget* budget = nullptr, FrameDecoder decoder = nullptr);
  ~Scheduler();  // Shutdown()

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Admits one frame. OK: `request` has been taken and its on_complete will
  // be called exactly once (possibly as dropped). Otherwise `request` is left
  // as it was and on_complete is not called: RESOURCE_EXHAUSTED (no slot or
  // queue bytes left; counted as kQueueFull), UNAVAILABLE (shutting down),
  // INVALID_ARGUMENT (a frame larger than the whole decode budget),
  // DEADLINE_EXCEEDED (its deadline has already passed; counted).
  Status Submit(FrameRequest&& request);

  // Stops accepting frames, runs every waiting frame (without waiting for
  // batch timeouts), then stops the threads. Idempotent; call from one thread.
  void Shutdown();

  int queue_depth() const;  // waiting slots
  const std::string& model_name() const { return model_name_; }

  // Measured service time of a batch of `batch_size` (decode, pre-process,
  // engine call, post-processing), microseconds; 0 if never measured.
  int64_t service_time_us(int batch_size) const;

 private:
  class Impl;
  explicit Scheduler(std::string model_name);

  const std::string model_name_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit::server
