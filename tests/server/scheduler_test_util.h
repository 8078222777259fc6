// What the scheduler tests share: a record of completions, a recording
// listener, a counting decoder and request builders. A frame's id is its
// image width (see fake_backend.h).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "fake_clock.h"
#include "scheduler.h"

namespace lowbit::server::testing {

using Batches = std::vector<std::vector<int>>;

// Every completion, by frame id, and the order of all of them.
class Completions {
 public:
  CompletionCallback For(int id) {
    return [this, id](FrameOutcome outcome) {
      std::lock_guard<std::mutex> lock(mu_);
      outcomes_[id].push_back(std::move(outcome));
      order_.push_back(id);
      cv_.notify_all();
    };
  }
  void AwaitTotal(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return static_cast<int>(order_.size()) >= count; });
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(order_.size());
  }
  int CountFor(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = outcomes_.find(id);
    return it == outcomes_.end() ? 0 : static_cast<int>(it->second.size());
  }
  // The first completion of `id`; it must exist.
  FrameOutcome OutcomeFor(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_.at(id).at(0);
  }
  // Frame ids in the order they completed.
  std::vector<int> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::vector<FrameOutcome>> outcomes_;
  std::vector<int> order_;
};

class RecordingListener final : public SchedulerListener {
 public:
  void OnQueueDepth(int depth) override {
    std::lock_guard<std::mutex> lock(mu_);
    max_depth_ = std::max(max_depth_, depth);
    last_depth_ = depth;
  }
  void OnBatchFormed(int size) override {
    std::lock_guard<std::mutex> lock(mu_);
    batch_sizes_.push_back(size);
  }
  void OnDropped(DropReason reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++dropped_[reason];
  }
  void OnTargetBatchSize(int size) override {
    std::lock_guard<std::mutex> lock(mu_);
    targets_.push_back(size);
  }
  void OnServiceTime(int size, int64_t us) override {
    std::lock_guard<std::mutex> lock(mu_);
    service_us_[size] = us;
  }
  void OnActiveCameras(int cameras) override {
    std::lock_guard<std::mutex> lock(mu_);
    active_cameras_ = cameras;
  }

  int Dropped(DropReason reason) {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_[reason];
  }
  int max_depth() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_depth_;
  }
  int last_depth() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_depth_;
  }
  std::vector<int> batch_sizes() {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_sizes_;
  }
  std::vector<int> targets() {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }
  int64_t service_us(int size) {
    std::lock_guard<std::mutex> lock(mu_);
    return service_us_[size];
  }
  int active_cameras() {
    std::lock_guard<std::mutex> lock(mu_);
    return active_cameras_;
  }

 private:
  std::mutex mu_;
  int max_depth_ = 0;
  int last_depth_ = 0;
  std::vector<int> batch_sizes_;
  std::map<DropReason, int> dropped_;
  std::vector<int> targets_;
  std::map<int, int64_t> service_us_;
  int active_cameras_ = 0;
};

// Decodes a kEncoded payload whose bytes are "<id>" into ImageWithId(id)
// ("bad": INVALID_ARGUMENT); counts calls and the most decode-budget bytes
// in use seen while decoding.
class CountingDecoder {
 public:
  explicit CountingDecoder(const DecodeBudget* budget = nullptr) : budget_(budget) {}

  FrameDecoder decoder() {
    return [this](const FramePayload& payload, engine::Image* image) -> Status {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++calls_;
        decoded_ids_.push_back(payload.encoded);
        if (budget_) max_in_use_ = std::max(max_in_use_, budget_->in_use());
      }
      if (payload.encoded == "bad") return InvalidArgument("corrupt JPEG data");
      *image = ImageWithId(std::stoi(payload.encoded));
      return Status::Ok();
    };
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int64_t max_in_use() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_use_;
  }

 private:
  const DecodeBudget* budget_;
  std::mutex mu_;
  int calls_ = 0;
  int64_t max_in_use_ = 0;
  std::vector<std::string> decoded_ids_;
};

inline SchedulerOptions Options(int workers, int max_batch, std::chrono::microseconds timeout,
                                int capacity = 64) {
  SchedulerOptions options;
  options.workers = workers;
  options.max_batch = max_batch;
  options.batch_timeout = timeout;
  options.queue_capacity = capacity;
  return options;
}

// A decoded-pixels frame with identity `id`.
inline FrameRequest Request(int id, CompletionCallback done, float score_threshold = 0) {
  FrameRequest request;
  request.payload.kind = FramePayload::Kind::kImage;
  request.payload.image = ImageWithId(id);
  request.detect_options.score_threshold = score_threshold;
  request.on_complete = std::move(done);
  return request;
}

// Request(id) from client `source` (FrameRequest::source).
inline FrameRequest RequestFrom(const std::string& source, int id, CompletionCallback done) {
  FrameRequest request = Request(id, std::move(done));
  request.source = source;
  return request;
}

// An encoded frame "<id>" whose header claims `width` x `height` pixels.
inline FrameRequest EncodedRequest(int id, CompletionCallback done, int width = 8, int height = 8) {
  FrameRequest request;
  request.payload.kind = FramePayload::Kind::kEncoded;
  request.payload.encoded = std::to_string(id);
  request.payload.width = width;
  request.payload.height = height;
  request.on_complete = std::move(done);
  return request;
}

inline FrameRequest CameraRequest(int id, const std::string& camera, CompletionCallback done) {
  FrameRequest request = Request(id, std::move(done));
  request.camera_id = camera;
  return request;
}

inline std::unique_ptr<Scheduler> MakeScheduler(const FakeBackend& backend,
                                                SchedulerOptions options, FakeClock* clock,
                                                SchedulerListener* listener = nullptr,
                                                DecodeBudget* budget = nullptr,
                                                FrameDecoder decoder = nullptr) {
  StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create("fake", backend, options, clock, listener, budget, std::move(decoder));
  if (!scheduler.ok()) return nullptr;
  return std::move(scheduler).value();
}

}  // namespace lowbit::server::testing
