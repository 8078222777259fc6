#include "metrics.h"

#include <algorithm>

namespace lowbit::server {
namespace {

// Seconds, 0.1 ms .. 10 s: fine from 1 ms to 100 ms, where camera frames'
// stages and answers fall, coarse beyond (overload, slow models).
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04,
    0.05,   0.075,   0.1,    0.15,  0.2,   0.3,   0.5,   0.75,   1,    2,     5,    10};

prometheus::Histogram::BucketBoundaries BatchSizeBuckets(int max_batch) {
  prometheus::Histogram::BucketBoundaries buckets;
  // Every size up to 16, then powers of two, so large batches stay cheap.
  for (int size = 1; size <= max_batch; size = size < 16 ? size + 1 : size * 2) {
    buckets.push_back(size);
  }
  if (buckets.back() != max_batch) buckets.push_back(max_batch);
  return buckets;
}

double Seconds(int64_t microseconds) { return static_cast<double>(microseconds) * 1e-6; }

}  // namespace

ServerMetrics::ServerMetrics(int max_batch)
    : registry_(std::make_shared<prometheus::Registry>()),
      batch_size_buckets_(BatchSizeBuckets(max_batch)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("lowbit_request_duration_seconds")
                            .Help("Seconds from a frame's receipt to its response, OK frames")
                            .Register(*registry_)),
      stage_duration_(prometheus::BuildHistogram()
                          .Name("lowbit_stage_duration_seconds")
                          .Help("Seconds per stage of a frame (decode, queue, inference = "
                                "batch pre-processing + engine call, postprocess), OK frames")
                          .Register(*registry_)),
      requests_(prometheus::BuildCounter()
                    .Name("lowbit_requests_total")
                    .Help("Frames answered, by gRPC status code")
                    .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("lowbit_queue_depth")
                       .Help("Frames waiting to be batched")
                       .Register(*registry_)),
      batch_size_(prometheus::BuildHistogram()
                      .Name("lowbit_batch_size")
                      .Help("Frames per engine call")
                      .Register(*registry_)),
      dropped_(prometheus::BuildCounter()
                   .Name("lowbit_dropped_requests_total")
                   .Help("Frames refused or dropped before being computed, by reason")
                   .Register(*registry_)),
      inferences_(prometheus::BuildCounter()
                      .Name("lowbit_inferences_total")
                      .Help("Frames computed by the engine, by model version")
                      .Register(*registry_)),
      frame_age_(prometheus::BuildHistogram()
                     .Name("lowbit_frame_age_seconds")
                     .Help("Seconds from a frame's capture timestamp to its answer, OK frames")
                     .Register(*registry_)),
      target_batch_size_(prometheus::BuildGauge()
                             .Name("lowbit_batch_target_size")
                             .Help("Batch size the latency-objective batcher aims at now")
                             .Register(*registry_)),
      batch_service_(prometheus::BuildGauge()
                         .Name("lowbit_batch_service_seconds")
                         .Help("Estimated seconds to serve one batch of batch_size frames "
                               "(decode, pre-process, engine, post-process; recent p90)")
                         .Register(*registry_)),
      active_cameras_(prometheus::BuildGauge()
                          .Name("lowbit_active_cameras")
                          .Help("Distinct cameras that sent a frame in the last 10 s")
                          .Register(*registry_)),
      model_loads_(prometheus::BuildCounter()
                       .Name("lowbit_model_loads_total")
                       .Help("Model load and reload attempts, by result (ok, failed)")
                       .Register(*registry_)),
      model_ready_(prometheus::BuildGauge()
                       .Name("lowbit_model_ready")
                       .Help("1 while a version of the model is served, else 0")
                       .Register(*registry_)) {}

ModelMetrics& ServerMetrics::ForModel(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<ModelMetrics>& entry = models_[model];
  if (!entry) entry = std::make_unique<ModelMetrics>(*this, model);
  return *entry;
}

void ServerMetrics::RecordModelLoad(const std::string& model, bool ok) {
  model_loads_.Add({{"model", model}, {"result", ok ? "ok" : "failed"}}).Increment();
}

void ServerMetrics::SetModelReady(const std::string& model, bool ready) {
  model_ready_.Add({{"model", model}}).Set(ready ? 1 : 0);
}

ModelMetrics::ModelMetrics(ServerMetrics& m, const std::string& model)
    : metrics_(m),
      model_(model),
      request_duration_(m.request_duration_.Add({{"model", model}}, kDurationBuckets)),
      decode_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "decode"}}, kDurationBuckets)),
      queue_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "queue"}}, kDurationBuckets)),
      inference_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "inference"}}, kDurationBuckets)),
      postprocess_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "postprocess"}}, kDurationBuckets)),
      queue_depth_(m.queue_depth_.Add({{"model", model}})),
      batch_size_(m.batch_size_.Add({{"model", model}}, m.batch_size_buckets_)),
      frame_age_(m.frame_age_.Add({{"model", model}}, kDurationBuckets)),
      target_batch_size_(m.target_batch_size_.Add({{"model", model}})),
      active_cameras_(m.active_cameras_.Add({{"model", model}})) {
  for (size_t i = 1; i < dropped_.size(); ++i) {
    const char* reason = DropReasonName(static_cast<DropReason>(i));
    dropped_[i] = &m.dropped_.Add({{"model", model}, {"reason", reason}});
  }
  // Exported from the start, so rates work before the first frame.
  m.requests_.Add({{"model", model}, {"code", StatusCodeName(StatusCode::kOk)}});
}

void ModelMetrics::RecordSuccess(const StageTimings& timings, int64_t total_us) {
  request_duration_.Observe(Seconds(total_us));
  decode_duration_.Observe(Seconds(timings.decode_us));
  queue_duration_.Observe(Seconds(timings.queue_us));
  inference_duration_.Observe(Seconds(timings.inference_us));
  postprocess_duration_.Observe(Seconds(timings.postprocess_us));
}

void ModelMetrics::RecordCode(StatusCode code) {
  // Family::Add returns the existing series for known labels.
  metrics_.requests_.Add({{"model", model_}, {"code", StatusCodeName(code)}}).Increment();
}

void ModelMetrics::OnQueueDepth(int depth) { queue_depth_.Set(depth); }

void ModelMetrics::OnBatchFormed(int batch_size) { batch_size_.Observe(batch_size); }

void ModelMetrics::OnDropped(DropReason reason) { RecordDropped(reason); }

void ModelMetrics::RecordDropped(DropReason reason) {
  const size_t index = static_cast<size_t>(reason);
  if (index == 0 || index >= dropped_.size()) return;  // kNone: not a drop
  dropped_[index]->Increment();
}

void ModelMetrics::RecordInference(int64_t version) {
  metrics_.inferences_.Add({{"model", model_}, {"version", std::to_string(version)}}).Increment();
}

void ModelMetrics::RecordFrameAge(int64_t age_us) {
  frame_age_.Observe(Seconds(std::max<int64_t>(age_us, 0)));
}

void ModelMetrics::OnTargetBatchSize(int batch_size) { target_batch_size_.Set(batch_size); }

void ModelMetrics::OnServiceTime(int batch_size, int64_t service_us) {
  metrics_.batch_service_.Add({{"model", model_}, {"batch_size", std::to_string(batch_size)}})
      .Set(Seconds(service_us));
}

void ModelMetrics::OnActiveCameras(int cameras) { active_cameras_.Set(cameras); }

}  // namespace lowbit::server
