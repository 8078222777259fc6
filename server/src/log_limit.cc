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

std::string SuppressedNote(int64_t suppressed) {
  if (suppressed <= 0) return std::string();
  return " (" + std::to_string(suppressed) + " more such lines suppressed since the last one)";
}

}  // namespace lowbit::server
