// The scheduler's notion of time, injectable so tests drive it by hand.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace lowbit::server {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  virtual TimePoint Now() const = 0;

  // Blocks on `cv` (with `lock` held on entry and on return) until `cv` is
  // notified or this clock reaches `deadline`, whichever comes first; it may
  // also return spuriously. Callers re-check their condition in a loop.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) = 0;
};

// std::chrono::steady_clock. Shared, stateless.
Clock& SteadyClock();

inline int64_t MicrosecondsBetween(Clock::TimePoint from, Clock::TimePoint to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

}  // namespace lowbit::server
