#include "batch_policy.h"

#include <algorithm>
#include <cassert>

namespace lowbit::server {

ServiceTimeEstimator::ServiceTimeEstimator(int max_batch)
    : windows_(static_cast<size_t>(std::max(max_batch, 1))) {}

bool ServiceTimeEstimator::Record(int batch_size, int64_t service_us) {
  if (batch_size < 1 || batch_size > max_batch()) return false;
  ++batches_;
  bool changed = false;
  for (Window& stale : windows_) {
    if (stale.count > 1 && batches_ - stale.last_batch > kStaleAfter) {
      stale.samples[0] = stale.median;
      stale.count = 1;
      stale.next = 1;
      changed = Update(stale) || changed;
    }
  }
  Window& window = windows_[batch_size - 1];
  window.samples[window.next] = std::max<int64_t>(service_us, 0);
  window.next = (window.next + 1) % kWindow;
  window.count = std::min(window.count + 1, kWindow);
  window.last_batch = batches_;
  return Update(window) || changed;
}

bool ServiceTimeEstimator::Update(Window& window) {
  // The ring holds `count` valid samples at [0, count) until it is full.
  std::array<int64_t, kWindow> sorted = window.samples;
  std::sort(sorted.begin(), sorted.begin() + window.count);
  // 1-based ranks ceil(0.9 n) (the maximum while n < 10) and ceil(0.5 n).
  const int64_t p90 = sorted[(9 * window.count + 9) / 10 - 1];
  const int64_t p50 = sorted[(window.count + 1) / 2 - 1];
  const int64_t estimate = p90 + (p90 - p50);
  const bool changed = estimate != window.estimate || p50 != window.median;
  window.estimate = estimate;
  window.median = p50;
  return changed;
}

int64_t ServiceTimeEstimator::Typical(int batch_size) const {
  if (batch_size < 1 || batch_size > max_batch()) return 0;
  return windows_[batch_size - 1].median;
}

int64_t ServiceTimeEstimator::Estimate(int batch_size) const {
  if (batch_size < 1 || batch_size > max_batch()) return 0;
  return windows_[batch_size - 1].estimate;
}

namespace {

// b1 / s1 > b2 / s2, without division.
bool HigherThroughput(int b1, int64_t s1, int b2, int64_t s2) {
  return static_cast<int64_t>(b1) * s2 > static_cast<int64_t>(b2) * s1;
}

}  // namespace

BatchDecision ChooseBatch(const BatchPolicyInput& input) {
  assert(!input.ages_us.empty());
  const int max_batch = std::max(input.max_batch, 1);
  const int waiting = std::min(static_cast<int>(input.ages_us.size()), max_batch);
  BatchDecision decision;

  // oldest[b - 1]: A(b); frames beyond those waiting add no age.
  // left[b - 1]: R(b), the least time to a deadline among the first b
  // frames; frames yet to arrive add none.
  std::vector<int64_t> oldest(static_cast<size_t>(max_batch));
  std::vector<int64_t> left(static_cast<size_t>(max_batch));
  int64_t age = 0;
  int64_t remaining = BatchPolicyInput::kNoDeadline;
  for (int b = 1; b <= max_batch; ++b) {
    if (b <= waiting) age = std::max(age, input.ages_us[b - 1]);
    if (b <= waiting && b <= static_cast<int>(input.remaining_us.size())) {
      remaining = std::min(remaining, input.remaining_us[b - 1]);
    }
    oldest[b - 1] = age;
    left[b - 1] = remaining;
  }
  auto service = [&](int b) {
    return input.service ? std::max<int64_t>(input.service->Estimate(b), 1) : 0;
  };
  auto in_time = [&](int b) { return service(b) <= left[b - 1]; };
  const int64_t timeout_left = input.batch_timeout_us - input.waited_us;

  if (input.objective_us <= 0) {
    decision.target = max_batch;
    // Wait for company only while every waiting frame can still be answered
    // in time with one more.
    const int64_t room =
        waiting < max_batch ? left[waiting - 1] - service(waiting + 1) : int64_t{0};
    const int64_t wait = std::min(timeout_left, room);
    if (waiting < max_batch && !input.flush && wait > 0) {
      decision.wait_us = wait;
      return decision;
    }
    decision.run = waiting;
    while (decision.run > 1 && !in_time(decision.run)) --decision.run;
    return decision;
  }

  const int64_t objective = input.objective_us;
  auto fits = [&](int b) { return oldest[b - 1] + service(b) <= objective && in_time(b); };
  int target = 0;      // best fitting size over 1..max_batch
  int best_ready = 0;  // best fitting size over 1..waiting
  int efficient = 1;   // highest throughput over 1..waiting, in time
  for (int b = 1; b <= max_batch; ++b) {
    const bool fit = fits(b);
    if (fit && (target == 0 || !HigherThroughput(target, service(target), b, service(b)))) {
      target = b;
    }
    if (b > waiting) continue;
    if (fit &&
        (best_ready == 0 || !HigherThroughput(best_ready, service(best_ready), b, service(b)))) {
      best_ready = b;
    }
    if (in_time(b) && !HigherThroughput(efficient, service(efficient), b, service(b))) {
      efficient = b;
    }
  }

  if (target == 0) {  // overload: nothing fits
    decision.target = efficient;
    decision.run = efficient;
    return decision;
  }
  decision.target = target;
  if (target <= waiting) {
    decision.run = target;
    return decision;
  }
  // The target needs frames that have not arrived. Wait while it still fits
  // (its oldest frame ages, its deadlines near) and the batch timeout allows.
  const int64_t fits_for = std::min(objective - service(target) - oldest[target - 1],
                                    left[target - 1] - service(target));
  const int64_t wait = std::min(fits_for, timeout_left);
  if (!input.flush && wait > 0) {
    decision.wait_us = wait;
    return decision;
  }
  decision.run = best_ready != 0 ? best_ready : efficient;
  return decision;
}

}  // namespace lowbit::server
