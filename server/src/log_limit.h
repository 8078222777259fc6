// Rate limits for log lines written per request, so a flood of bad frames
// cannot fill the disk or drown the log: one LogLimiter per log site.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "clock.h"

namespace lowbit::server {

// At most `burst` lines per `period`; the lines over it are counted, and the
// next line let through says how many were suppressed. Thread-safe.
class LogLimiter {
 public:
  explicit LogLimiter(int burst = 10, std::chrono::seconds period = std::chrono::seconds(10),
                      const Clock* clock = &SteadyClock());

  // True if a line may be written now; then *suppressed is the number of
  // lines refused since the last one let through (0 usually).
  bool Allow(int64_t* suppressed);

 private:
  const int burst_;
  const std::chrono::seconds period_;
  const Clock* clock_;
  std::mutex mu_;
  Clock::TimePoint window_start_{};
  int in_window_ = 0;
  int64_t suppressed_ = 0;
};

// " (N more such lines suppressed since the last one)", or "" for N = 0: the
// tail of a line LogLimiter let through.
std::string SuppressedNote(int64_t suppressed);

}  // namespace lowbit::server
