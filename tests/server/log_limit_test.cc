// LogLimiter: a burst per period, the rest counted and reported once.
#include "log_limit.h"

#include <gtest/gtest.h>

#include "fake_clock.h"

namespace lowbit::server {
namespace {

using std::chrono::seconds;

TEST(LogLimiterTest, LetsABurstThroughPerPeriodAndCountsTheRest) {
  testing::FakeClock clock;
  LogLimiter limiter(3, seconds(10), &clock);
  int64_t suppressed = -1;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limiter.Allow(&suppressed)) << i;
    EXPECT_EQ(suppressed, 0);
  }
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Allow(&suppressed));
  clock.Advance(seconds(9));
  EXPECT_FALSE(limiter.Allow(&suppressed));  // still the same period
  clock.Advance(seconds(1));
  ASSERT_TRUE(limiter.Allow(&suppressed));
  EXPECT_EQ(suppressed, 1001);  // reported once, by the first line let through
  ASSERT_TRUE(limiter.Allow(&suppressed));
  EXPECT_EQ(suppressed, 0);
  EXPECT_EQ(SuppressedNote(0), "");
  EXPECT_EQ(SuppressedNote(1001), " (1001 more such lines suppressed since the last one)");
}

}  // namespace
}  // namespace lowbit::server
