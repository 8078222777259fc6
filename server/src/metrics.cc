#include "metrics.h"

namespace lowbit::server {
namespace {

// Seconds; a frame's whole path, 1 ms .. 2 s.
const prometheus::Histogram::BucketBoundaries kRequestBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2};
// Seconds; one stage, 50 us .. 2 s (decode and queueing are often sub-ms).
const prometheus::Histogram::BucketBoundaries kStageBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,   0.1,     0.25,   0.5,   1,      2};

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
                   .Help("Frames refused by a model's scheduler, by reason")
                   .Register(*registry_)) {}

ModelMetrics& ServerMetrics::ForModel(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<ModelMetrics>& entry = models_[model];
  if (!entry) entry = std::make_unique<ModelMetrics>(*this, model);
  return *entry;
}

ModelMetrics::ModelMetrics(ServerMetrics& m, const std::string& model)
    : metrics_(m),
      model_(model),
      request_duration_(m.request_duration_.Add({{"model", model}}, kRequestBuckets)),
      decode_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "decode"}}, kStageBuckets)),
      queue_duration_(m.stage_duration_.Add({{"model", model}, {"stage", "queue"}}, kStageBuckets)),
      inference_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "inference"}}, kStageBuckets)),
      postprocess_duration_(
          m.stage_duration_.Add({{"model", model}, {"stage", "postprocess"}}, kStageBuckets)),
      queue_depth_(m.queue_depth_.Add({{"model", model}})),
      batch_size_(m.batch_size_.Add({{"model", model}}, m.batch_size_buckets_)),
      dropped_queue_full_(
          m.dropped_.Add({{"model", model}, {"reason", DropReasonName(DropReason::kQueueFull)}})),
      dropped_shutting_down_(m.dropped_.Add(
          {{"model", model}, {"reason", DropReasonName(DropReason::kShuttingDown)}})) {
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

void ModelMetrics::OnDropped(DropReason reason) {
  (reason == DropReason::kQueueFull ? dropped_queue_full_ : dropped_shutting_down_).Increment();
}

}  // namespace lowbit::server
