// The scheduler's batch-size policy, free of threads and clocks so that it is
// tested (and simulated) on its own: the service-time estimate per batch size
// and the choice of the next batch. Times are microseconds throughout.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace lowbit::server {

// Service time per batch size: the p90 of the last kWindow measurements of
// that size (their maximum while fewer than ten are known). A high quantile
// of a short window is what the objective needs: a batch must finish by the
// deadline of its oldest frame nine times in ten even on a noisy box, one
// slow batch (a page fault, a preempted thread) moves it by at most one rank,
// and a lasting change (another model taking the cores) replaces it within
// kWindow batches of that size (within two, if it is a slow-down).
// Not thread-safe: the scheduler guards it with its lock.
class ServiceTimeEstimator {
 public:
  static constexpr int kWindow = 20;

  explicit ServiceTimeEstimator(int max_batch);

  // Adds one measurement of a batch of `batch_size` (1..max_batch) frames.
  // True if the estimate of that size changed.
  bool Record(int batch_size, int64_t service_us);
  // 0 if `batch_size` was never measured or is out of range.
  int64_t Estimate(int batch_size) const;
  int max_batch() const { return static_cast<int>(windows_.size()); }

 private:
  struct Window {
    std::array<int64_t, kWindow> samples{};  // ring buffer, `count` valid
    int count = 0;
    int next = 0;
    int64_t estimate = 0;
  };
  std::vector<Window> windows_;  // [batch_size - 1]
};

struct BatchPolicyInput {
  int max_batch = 1;
  // Age (now - arrival) of each waiting frame, oldest slot first; at most
  // max_batch entries, at least one.
  std::span<const int64_t> ages_us;
  // How long the oldest slot has waited: the batch timeout counts from here.
  int64_t waited_us = 0;
  int64_t batch_timeout_us = 0;
  // Arrival-to-answer objective of one frame; 0: none.
  int64_t objective_us = 0;
  // Shutting down: nothing more arrives, run what waits now.
  bool flush = false;
  // Required with an objective. Sizes never measured count as 1 us.
  const ServiceTimeEstimator* service = nullptr;
};

struct BatchDecision {
  int run = 0;          // frames to take now, oldest slot first; 0: wait
  int64_t wait_us = 0;  // when run == 0: decide again after at most this long
  int target = 0;       // the batch size aimed at (max_batch without an objective)
};

// Without an objective: max_batch frames as soon as they wait, else all of
// them once the oldest slot has waited batch_timeout.
//
// With one, S(b) the estimate of size b and A(b) the age of the oldest of the
// first b frames (frames yet to arrive add no age), size b fits if
// A(b) + S(b) <= objective. The target is the fitting size of highest
// throughput b / S(b) (the larger on a tie) over 1..max_batch. If that many
// frames wait it runs now. If it needs more frames, the batcher waits for
// them while the target still fits and the oldest slot is within
// batch_timeout; after that it runs the best fitting size that waits. If no
// waiting size fits (overload: the oldest frame is late whatever happens),
// it runs the most efficient waiting size, which drains the backlog fastest.
BatchDecision ChooseBatch(const BatchPolicyInput& input);

}  // namespace lowbit::server
