// A Clock that moves only when a test advances it.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "clock.h"

namespace lowbit::server::testing {

class FakeClock final : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  // Waits for a notification of `cv` or for Advance() to reach `deadline`.
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) override {
    const Waiter waiter{&cv, lock.mutex()};
    {
      std::lock_guard<std::mutex> guard(mu_);
      if (now_ >= deadline) return;
      waiters_.push_back(waiter);
      ++waits_started_;
    }
    waits_cv_.notify_all();
    // `lock` is held from registration until wait() releases it, so an
    // Advance() that must lock it to notify cannot slip in between.
    cv.wait(lock);
    std::lock_guard<std::mutex> guard(mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), waiter));
  }

  // Moves time forward and wakes every thread waiting in WaitUntil.
  void Advance(std::chrono::microseconds delta) {
    std::vector<Waiter> waiters;
    {
      std::lock_guard<std::mutex> guard(mu_);
      now_ += delta;
      waiters = waiters_;
    }
    // Locking the waiter's mutex orders this notify after its wait() began.
    // The condition variables and mutexes belong to objects that outlive the
    // wait (a Scheduler under test).
    for (const Waiter& waiter : waiters) {
      std::lock_guard<std::mutex> guard(*waiter.mutex);
      waiter.cv->notify_all();
    }
  }

  // Blocks until WaitUntil has started a wait at least `count` times in all.
  void AwaitWaitsStarted(int64_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    waits_cv_.wait(lock, [&] { return waits_started_ >= count; });
  }

  int64_t waits_started() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waits_started_;
  }

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
    bool operator==(const Waiter&) const = default;
  };

  mutable std::mutex mu_;
  std::condition_variable waits_cv_;
  TimePoint now_{std::chrono::hours(1)};
  std::vector<Waiter> waiters_;
  int64_t waits_started_ = 0;
};

}  // namespace lowbit::server::testing
