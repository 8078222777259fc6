// Prometheus metrics of lowbitd (served on --metrics-address at /metrics):
//
//   lowbit_request_duration_seconds{model}          histogram, receipt to response, OK frames
//   lowbit_stage_duration_seconds{model,stage}      histogram, stage = decode|queue|inference|
//                                                   postprocess, OK frames
//   lowbit_requests_total{model,code}               counter, every frame by gRPC code name
//   lowbit_queue_depth{model}                       gauge, frames waiting for a batch
//   lowbit_batch_size{model}                        histogram, frames per engine call
//   lowbit_dropped_requests_total{model,reason}     counter, reason = queue_full|shutting_down
//
// A frame naming no loaded model is counted with model="".
#pragma once

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

  void OnQueueDepth(int depth) override;
  void OnBatchFormed(int batch_size) override;
  void OnDropped(DropReason reason) override;

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
  prometheus::Counter& dropped_queue_full_;
  prometheus::Counter& dropped_shutting_down_;
};

class ServerMetrics {
 public:
  // Batch-size buckets cover 1..max_batch.
  explicit ServerMetrics(int max_batch);

  // The series of `model` (created on first use); the reference stays valid
  // for the lifetime of this object.
  ModelMetrics& ForModel(const std::string& model);

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

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_;
};

}  // namespace lowbit::server
