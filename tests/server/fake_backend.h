// An InferenceBackend for tests. A frame's identity is its image width (a
// pre-processed tensor's: its first float): the fake's detections and raw
// outputs echo it, so a test sees which result went where. The scheduler's
// warm-up runs zero tensors (identity 0); they are kept apart from batches().
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "backend.h"
#include "fake_clock.h"
#include "scheduler.h"

namespace lowbit::server::testing {

// A BGR8 image whose width is `id` (>= 1) and height 1.
inline engine::Image ImageWithId(int id) {
  engine::Image image;
  image.width = id;
  image.height = 1;
  image.bgr.assign(3 * static_cast<size_t>(id), 0);
  return image;
}

class FakeBackend final : public InferenceBackend {
 public:
  // Floats of one pre-processed frame.
  static constexpr int64_t kTensorFloats = 4;

  // Every Run advances `clock` (if not null) by `inference_time`, after the
  // gate, as if the engine had taken that long.
  explicit FakeBackend(FakeClock* clock = nullptr,
                       std::chrono::microseconds inference_time = std::chrono::microseconds(0))
      : state_(std::make_shared<State>()) {
    state_->clock = clock;
    state_->service_time = [inference_time](int) { return inference_time; };
  }

  StatusOr<std::unique_ptr<InferenceSession>> CreateSession(int threads) const override {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->create_error.ok()) return state_->create_error;
    ++state_->sessions_created;
    return std::unique_ptr<InferenceSession>(new Session(state_));
  }

  int64_t input_floats_per_frame() const override { return kTensorFloats; }

  // A Run of b frames advances the clock by `service_time(b)`.
  void SetServiceTime(std::function<std::chrono::microseconds(int)> service_time) {
    Set([&](State& s) { s.service_time = std::move(service_time); });
  }
  // Called at the start of every Run after the warm-up (on the worker, no
  // lock held) with the batch's frame ids; tests submit arrivals from here.
  void OnRun(std::function<void(const std::vector<int>&)> hook) {
    Set([&](State& s) { s.on_run = std::move(hook); });
  }

  // While closed, every Run blocks after recording its batch.
  void CloseGate() {
    Set([](State& s) { s.gate_open = false; });
  }
  void OpenGate() {
    Set([](State& s) { s.gate_open = true; });
  }
  // A Run holding frame `id` blocks until ReleaseFrame(id).
  void HoldFrame(int id) {
    Set([&](State& s) { s.held.insert(id); });
  }
  void ReleaseFrame(int id) {
    Set([&](State& s) { s.held.erase(id); });
  }
  void FailRuns(Status error) {
    Set([&](State& s) { s.run_error = std::move(error); });
  }
  void FailCreateSession(Status error) {
    Set([&](State& s) { s.create_error = std::move(error); });
  }

  // Blocks until `count` Runs are blocked at the gate or on a held frame.
  void AwaitBlockedRuns(int count) {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->blocked_runs >= count; });
  }
  // Blocks until `count` Runs (warm-up excluded) have returned.
  void AwaitFinishedRuns(int count) {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->finished_runs >= count; });
  }

  // Frame ids of every batch run so far (warm-up excluded), in the order
  // Runs started.
  std::vector<std::vector<int>> batches() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->batches;
  }
  // Sizes of the warm-up runs (all frames identity 0), in order.
  std::vector<int> warmup_sizes() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->warmup_sizes;
  }
  int frames_run() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    int frames = 0;
    for (const std::vector<int>& batch : state_->batches) frames += static_cast<int>(batch.size());
    return frames;
  }
  int sessions_created() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->sessions_created;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool gate_open = true;
    std::multiset<int> held;
    int blocked_runs = 0;
    int finished_runs = 0;
    int sessions_created = 0;
    Status run_error;
    Status create_error;
    FakeClock* clock = nullptr;
    std::function<std::chrono::microseconds(int)> service_time;
    std::function<void(const std::vector<int>&)> on_run;
    std::vector<std::vector<int>> batches;
    std::vector<int> warmup_sizes;
  };

  class Session final : public InferenceSession {
   public:
    explicit Session(std::shared_ptr<State> state) : state_(std::move(state)) {}

    Status Run(std::span<const FrameInput> frames) override {
      ids_.clear();
      bool warmup = true;
      for (const FrameInput& frame : frames) {
        const int id = frame.image ? frame.image->width
                                   : (frame.tensor && !frame.tensor->empty()
                                          ? static_cast<int>((*frame.tensor)[0])
                                          : -1);
        ids_.push_back(id);
        warmup = warmup && id == 0;
      }
      std::unique_lock<std::mutex> lock(state_->mu);
      if (warmup) {
        state_->warmup_sizes.push_back(static_cast<int>(frames.size()));
      } else {
        state_->batches.push_back(ids_);
        if (state_->on_run) {
          std::function<void(const std::vector<int>&)> hook = state_->on_run;
          lock.unlock();
          hook(ids_);
          lock.lock();
        }
      }
      auto blocked = [&] {
        if (!state_->gate_open) return true;
        for (int id : ids_) {
          if (state_->held.count(id)) return true;
        }
        return false;
      };
      ++state_->blocked_runs;
      state_->cv.notify_all();
      state_->cv.wait(lock, [&] { return !blocked(); });
      --state_->blocked_runs;
      Status result = state_->run_error;
      const std::chrono::microseconds service = state_->service_time(static_cast<int>(ids_.size()));
      FakeClock* clock = state_->clock;
      lock.unlock();
      if (clock) clock->Advance(service);
      lock.lock();
      if (!warmup) ++state_->finished_runs;
      state_->cv.notify_all();
      return result;
    }

    // One detection per frame: class_id = frame id, score = the requested
    // threshold, box = the whole image.
    std::vector<engine::Detection> Postprocess(int index, int width, int height,
                                               const engine::DetectOptions& options) override {
      engine::Detection detection;
      detection.box = {0, 0, static_cast<float>(width), static_cast<float>(height)};
      detection.class_id = ids_.at(index);
      detection.label = "id" + std::to_string(ids_.at(index));
      detection.score = options.score_threshold;
      return {detection};
    }

    // One output "out" of shape [1, 2]: {frame id, batch size}.
    std::vector<engine::NamedTensor> RawOutputs(int index) override {
      return {{"out", engine::Tensor({1, 2}, {static_cast<float>(ids_.at(index)),
                                              static_cast<float>(ids_.size())})}};
    }

   private:
    std::shared_ptr<State> state_;
    std::vector<int> ids_;  // of the last Run
  };

  template <typename F>
  void Set(F&& change) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      change(*state_);
    }
    state_->cv.notify_all();
  }

  std::shared_ptr<State> state_;
};

}  // namespace lowbit::server::testing
