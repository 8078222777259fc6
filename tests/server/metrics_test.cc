// The Prometheus series of metrics.h, by the names and labels its header
// comment documents, as /metrics would serve them.
#include "metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <string>

namespace lowbit::server {
namespace {

std::string Scrape(const ServerMetrics& metrics) {
  return prometheus::TextSerializer().Serialize(metrics.registry()->Collect());
}

void ExpectSeries(const std::string& text, const std::string& series) {
  EXPECT_NE(text.find(series + "\n"), std::string::npos) << "missing: " << series;
}

TEST(MetricsTest, EveryDropReasonIsExportedFromTheStart) {
  ServerMetrics metrics(4);
  metrics.ForModel("m");
  const std::string text = Scrape(metrics);
  for (const char* reason :
       {"superseded", "stale", "queue_full", "deadline", "cancelled", "shutting_down"}) {
    ExpectSeries(text, "lowbit_dropped_requests_total{model=\"m\",reason=\"" + std::string(reason) +
                           "\"} 0");
  }
  EXPECT_EQ(text.find("reason=\"none\""), std::string::npos);
}

TEST(MetricsTest, SchedulerAndFrontEndEventsReachTheirSeries) {
  ServerMetrics metrics(4);
  ModelMetrics& model = metrics.ForModel("m");
  model.OnDropped(DropReason::kSuperseded);
  model.OnDropped(DropReason::kSuperseded);
  model.RecordDropped(DropReason::kStale);  // the front end's own
  model.RecordDropped(DropReason::kNone);   // not a drop: ignored
  model.RecordInference(1);
  model.RecordInference(2);
  model.RecordInference(2);
  model.RecordFrameAge(12000);
  model.OnQueueDepth(3);
  model.OnBatchFormed(2);
  model.OnTargetBatchSize(3);
  model.OnServiceTime(2, 25000);
  model.OnActiveCameras(16);
  StageTimings timings;
  timings.queue_us = 1500;
  model.RecordSuccess(timings, 40000);
  model.RecordCode(StatusCode::kAborted);
  metrics.RecordModelLoad("m", true);
  metrics.RecordModelLoad("bad", false);
  metrics.RecordModelLoad("bad", false);
  metrics.SetModelReady("m", true);
  metrics.SetModelReady("bad", false);

  const std::string text = Scrape(metrics);
  ExpectSeries(text, "lowbit_dropped_requests_total{model=\"m\",reason=\"superseded\"} 2");
  ExpectSeries(text, "lowbit_dropped_requests_total{model=\"m\",reason=\"stale\"} 1");
  ExpectSeries(text, "lowbit_inferences_total{model=\"m\",version=\"1\"} 1");
  ExpectSeries(text, "lowbit_inferences_total{model=\"m\",version=\"2\"} 2");
  ExpectSeries(text, "lowbit_frame_age_seconds_count{model=\"m\"} 1");
  ExpectSeries(text, "lowbit_frame_age_seconds_bucket{model=\"m\",le=\"0.015\"} 1");
  ExpectSeries(text, "lowbit_frame_age_seconds_bucket{model=\"m\",le=\"0.01\"} 0");
  ExpectSeries(text, "lowbit_queue_depth{model=\"m\"} 3");
  ExpectSeries(text, "lowbit_batch_size_count{model=\"m\"} 1");
  ExpectSeries(text, "lowbit_batch_target_size{model=\"m\"} 3");
  ExpectSeries(text, "lowbit_batch_service_seconds{batch_size=\"2\",model=\"m\"} 0.025");
  ExpectSeries(text, "lowbit_active_cameras{model=\"m\"} 16");
  ExpectSeries(text, "lowbit_request_duration_seconds_count{model=\"m\"} 1");
  ExpectSeries(text, "lowbit_request_duration_seconds_bucket{model=\"m\",le=\"0.04\"} 1");
  ExpectSeries(text,
               "lowbit_stage_duration_seconds_bucket{model=\"m\",stage=\"queue\",le=\"0.002\"} 1");
  ExpectSeries(text, "lowbit_requests_total{code=\"ABORTED\",model=\"m\"} 1");
  ExpectSeries(text, "lowbit_model_loads_total{model=\"m\",result=\"ok\"} 1");
  ExpectSeries(text, "lowbit_model_loads_total{model=\"bad\",result=\"failed\"} 2");
  ExpectSeries(text, "lowbit_model_ready{model=\"m\"} 1");
  ExpectSeries(text, "lowbit_model_ready{model=\"bad\"} 0");
}

TEST(MetricsTest, DurationBucketsSpanMillisecondsToSeconds) {
  ServerMetrics metrics(4);
  metrics.ForModel("m").RecordFrameAge(0);
  const std::string text = Scrape(metrics);
  ExpectSeries(text, "lowbit_frame_age_seconds_bucket{model=\"m\",le=\"0.00025\"} 1");
  ExpectSeries(text, "lowbit_frame_age_seconds_bucket{model=\"m\",le=\"10\"} 1");
}

}  // namespace
}  // namespace lowbit::server
