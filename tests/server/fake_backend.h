// An InferenceBackend for tests. A frame's identity is its image width: the
// fake's detections echo it, so a test sees which result went where.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
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
  // Advanced by `inference_time` inside every Run, if not null.
  explicit FakeBackend(FakeClock* clock = nullptr,
                       std::chrono::microseconds inference_time = std::chrono::microseconds(0))
      : state_(std::make_shared<State>()) {
    state_->clock = clock;
    state_->inference_time = inference_time;
  }

  StatusOr<std::unique_ptr<InferenceSession>> CreateSession(int threads) const override {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->create_error.ok()) return state_->create_error;
    ++state_->sessions_created;
    return std::unique_ptr<InferenceSession>(new Session(state_));
  }

  // While closed, every Run blocks after recording its batch.
  void CloseGate() {
    Set([](State& s) { s.gate_open = false; });
  }
  void OpenGate() {
    Set([](State& s) { s.gate_open = true; });
  }
  void FailRuns(Status error) {
    Set([&](State& s) { s.run_error = std::move(error); });
  }
  void FailCreateSession(Status error) {
    Set([&](State& s) { s.create_error = std::move(error); });
  }

  // Blocks until `count` Runs are waiting at the closed gate.
  void AwaitBlockedRuns(int count) {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->blocked_runs >= count; });
  }

  // Frame ids of every batch run so far, in the order Runs started.
  std::vector<std::vector<int>> batches() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->batches;
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
    int blocked_runs = 0;
    int sessions_created = 0;
    Status run_error;
    Status create_error;
    FakeClock* clock = nullptr;
    std::chrono::microseconds inference_time{0};
    std::vector<std::vector<int>> batches;
  };

  class Session final : public InferenceSession {
   public:
    explicit Session(std::shared_ptr<State> state) : state_(std::move(state)) {}

    Status Run(std::span<const engine::Image* const> frames) override {
      ids_.clear();
      for (const engine::Image* frame : frames) ids_.push_back(frame->width);
      std::unique_lock<std::mutex> lock(state_->mu);
      state_->batches.push_back(ids_);
      ++state_->blocked_runs;
      state_->cv.notify_all();
      state_->cv.wait(lock, [&] { return state_->gate_open; });
      --state_->blocked_runs;
      Status result = state_->run_error;
      lock.unlock();
      if (state_->clock) state_->clock->Advance(state_->inference_time);
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
