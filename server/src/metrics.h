// Prometheus metrics of lowbitd (served on --metrics-address at /metrics).
// Durations are seconds, with buckets from 0.1 ms to 10 s (kDurationBuckets
// in metrics.cc: fine between 1 ms and 100 ms, where camera frames live).
//
// Per frame (the front end records them):
//   lowbit_request_duration_seconds{model}          histogram, receipt to response, OK frames
//   lowbit_stage_duration_seconds{model,stage}      histogram, stage = decode|queue|inference|
//                                                   postprocess, OK frames (StageTimings)
//   lowbit_frame_age_seconds{model}                 histogram, capture timestamp to answer, OK
//                                                   frames that carry a capture timestamp
//   lowbit_requests_total{model,code}               counter, every frame by gRPC code name
//   lowbit_inferences_total{model,version}          counter, frames computed by the engine, by
//                                                   the served model version (1, 2, ...)
//   lowbit_dropped_requests_total{model,reason}     counter, frames refused or dropped before
//                                                   being computed; reason = superseded|stale|
//                                                   queue_full|deadline|cancelled|shutting_down
//                                                   (DropReasonName); the scheduler's and the
//                                                   front end's own (e.g. stale on arrival)
// Per model (the scheduler reports them through SchedulerListener):
//   lowbit_queue_depth{model}                       gauge, slots waiting for a batch
//   lowbit_batch_size{model}                        histogram, frames per engine call
//   lowbit_batch_target_size{model}                 gauge, the batch size the latency-objective
//                                                   policy aims at now (0 without an objective)
//   lowbit_batch_service_seconds{model,batch_size}  gauge, the current service-time estimate of
//                                                   one batch of that size (decode, pre-process,
//                                                   engine call, post-processing)
//   lowbit_active_cameras{model}                    gauge, distinct camera_ids that submitted a
//                                                   frame in the last 10 s
// Per repository entry (the registry records them):
//   lowbit_model_loads_total{model,result}          counter, result = ok|failed, every load or
//                                                   reload attempt
//   lowbit_model_ready{model}                       gauge, 1 while a version is served, else 0
//
// A frame naming no loaded model is counted with model="".
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "lowbit/engine/status.h"
#include "scheduler.h"

namespace lowbit::server {

class ServerMetrics;

// One model's series. Thread-safe.
class ModelMetrics final : public SchedulerListener {
 public:
  ModelMetrics(ServerMetrics& metrics, const std::string& model);

  // A frame answered with detections; `total_us` from receipt to response.
  void RecordSuccess(const StageTimings& timings, int64_t total_us);
  // Every answered frame, successful or not.
  void RecordCode(StatusCode code);

  // A frame computed by `version` of this model.
  void RecordInference(int64_t version);
  // An answered frame's age, from its capture timestamp to the answer.
  void RecordFrameAge(int64_t age_us);
  // A frame the front end dropped itself (e.g. stale on arrival); the same
  // series as OnDropped.
  void RecordDropped(DropReason reason);

  void OnQueueDepth(int depth) override;
  void OnBatchFormed(int batch_size) override;
  void OnDropped(DropReason reason) override;
  void OnTargetBatchSize(int batch_size) override;
  void OnServiceTime(int batch_size, int64_t service_us) override;
  void OnActiveCameras(int cameras) override;

 private:
  ServerMetrics& metrics_;
  const std::string model_;
  prometheus::Histogram& request_duration_;
  prometheus::Histogram& decode_duration_;
  prometheus::Histogram& queue_duration_;
  prometheus::Histogram& inference_duration_;
  prometheus::Histogram& postprocess_duration_;
  prometheus::Gauge& queue_depth_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& frame_age_;
  prometheus::Gauge& target_batch_size_;
  prometheus::Gauge& active_cameras_;
  // [DropReason], kNone unused.
  std::array<prometheus::Counter*, static_cast<size_t>(DropReason::kShuttingDown) + 1> dropped_{};
};

class ServerMetrics {
 public:
  // Batch-size buckets cover 1..max_batch.
  explicit ServerMetrics(int max_batch);

  // The series of `model` (created on first use); the reference stays valid
  // for the lifetime of this object.
  ModelMetrics& ForModel(const std::string& model);

  // One load (or reload) attempt of a repository entry.
  void RecordModelLoad(const std::string& model, bool ok);
  // Whether `model` has a served version now.
  void SetModelReady(const std::string& model, bool ready);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  friend class ModelMetrics;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram::BucketBoundaries batch_size_buckets_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Family<prometheus::Counter>& inferences_;
  prometheus::Family<prometheus::Histogram>& frame_age_;
  prometheus::Family<prometheus::Gauge>& target_batch_size_;
  prometheus::Family<prometheus::Gauge>& batch_service_;
  prometheus::Family<prometheus::Gauge>& active_cameras_;
  prometheus::Family<prometheus::Counter>& model_loads_;
  prometheus::Family<prometheus::Gauge>& model_ready_;

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_;
};

}  // namespace lowbit::server
