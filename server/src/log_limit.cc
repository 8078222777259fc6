#include "log_limit.h"

namespace lowbit::server {

LogLimiter::LogLimiter(int burst, std::chrono::seconds period, const Clock* clock)
    : burst_(burst), period_(period), clock_(clock) {}

bool LogLimiter::Allow(int64_t* suppressed) {
  const Clock::TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (in_window_ == 0 || now - window_start_ >= period_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace lowbit::server
