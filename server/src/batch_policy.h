// The scheduler's batch-size policy, free of threads and clocks so that it is
// tested (and simulated) on its own: the service-time estimate per batch size
// and the choice of the next batch. Times are microseconds throughout.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace lowbit::server {

// Service time per batch size: a high estimate from the last kWindow
// measurements of that size, p90 + (p90 - p50) of the window (ranks
// ceil(0.9 n) and ceil(0.5 n) of n sorted samples). The objective needs a
// time that a batch rarely overruns, since the batcher lets the oldest frame
// wait until its batch only just fits: for normally distributed times this
// is about the p99.5, for steady times the time itself, and for a uniform
// +-10% jitter above the slowest. Both quantiles ignore the two slowest of 20
// batches, so one slow batch (a page fault, a preempted thread) does not move
// it, while a lasting change (another model taking the cores) shows from its
// first batches on (while fewer than ten are known p90 is the maximum) and
// has replaced the window after kWindow batches of that size.
// A size the batcher has stopped choosing is measured no more, and a window
// made high by a few slow batches would keep it unchosen for good: after
// kStaleAfter batches of other sizes its window shrinks to its median, one
// sample, which the next measurement of that size replaces.
// Not thread-safe: the scheduler guards it with its lock.
class ServiceTimeEstimator {
 public:
  static constexpr int kWindow = 20;
  static constexpr int64_t kStaleAfter = 200;

  explicit ServiceTimeEstimator(int max_batch);

  // Adds one measurement of a batch of `batch_size` (1..max_batch) frames.
  // True if an estimate changed (that size's, or a stale size's).
  bool Record(int batch_size, int64_t service_us);
  // 0 if `batch_size` was never measured or is out of range.
  int64_t Estimate(int batch_size) const;
  // The window's median: what a batch usually takes (0 as above). A frame
  // is given up on only if even this would end after its deadline.
  int64_t Typical(int batch_size) const;
  int max_batch() const { return static_cast<int>(windows_.size()); }

 private:
  struct Window {
    std::array<int64_t, kWindow> samples{};  // ring buffer, `count` valid
    int count = 0;
    int next = 0;
    int64_t estimate = 0;
    int64_t median = 0;
    int64_t last_batch = 0;  // batches_ when last measured
  };
  // Recomputes the estimate and median of `window`; true if they changed.
  static bool Update(Window& window);

  int64_t batches_ = 0;          // measurements of every size
  std::vector<Window> windows_;  // [batch_size - 1]
};

struct BatchPolicyInput {
  int max_batch = 1;
  // Age (now - arrival) of each waiting frame, oldest slot first; at most
  // max_batch entries, at least one.
  std::span<const int64_t> ages_us;
  // Time left until each of those frames' deadline (same order; shorter or
  // empty: no deadline for the rest). A frame is only batched where the
  // batch is predicted to end by its deadline.
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();
  std::span<const int64_t> remaining_us;
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

// Every batch must be predicted to end by the deadline of each of its frames:
// S(b) <= R(b), R(b) the least time left to a deadline among its first b
// frames (the batcher has already dropped the frames that could not make
// theirs even alone, so b = 1 always can).
//
// Without an objective: max_batch frames as soon as they wait, else all of
// them once the oldest slot has waited batch_timeout (or earlier, when one
// more frame would no longer let them end in time), cut down to the largest
// size that ends in time.
//
// With an objective, S(b) the estimate of size b and A(b) the age of the
// oldest of the first b frames (frames yet to arrive add no age), size b
// fits if it ends in time and A(b) + S(b) <= objective. The target is the
// fitting size of highest throughput b / S(b) (the larger on a tie) over
// 1..max_batch. If that many frames wait it runs now. If it needs more
// frames, the batcher waits for them while the target still fits and the
// oldest slot is within batch_timeout; after that it runs the best fitting
// size that waits. If no waiting size fits (overload: the oldest frame is
// late whatever happens), it runs the most efficient waiting size that ends
// in time, which drains the backlog fastest.
//
// The choice looks at the oldest frame only, not at the frames that wait
// behind a batch: with Poisson arrivals near capacity and an objective
// under about 2 S(max_batch), queueing alone breaks the objective at the
// p99 (batch_policy_test's simulation shows where); the policy then falls
// back to the most efficient batches and recovers.
BatchDecision ChooseBatch(const BatchPolicyInput& input);

}  // namespace lowbit::server
