// The gRPC front end: lowbit.v1.Detector on the synchronous gRPC API.
//
// Each call runs on a gRPC thread. A frame is validated and decoded on that
// thread, then queued on its model's Scheduler; the call's thread waits
// (unary) or keeps reading (stream) while workers run batches. A stream has
// one extra thread that writes results in completion order, so a slow client
// never blocks a worker.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "clock.h"
#include "lowbit/engine/status.h"
#include "lowbit/v1/detector.grpc.pb.h"
#include "metrics.h"
#include "model_repository.h"
#include "scheduler.h"

namespace lowbit::server {

// google.rpc codes map one to one.
grpc::Status ToGrpcStatus(const Status& status);

struct ServedModel {
  ModelSpec spec;
  ModelMetrics* metrics = nullptr;  // owned by ServerMetrics
  std::unique_ptr<Scheduler> scheduler;
};

// The models being served. Immutable after construction.
class ModelSet {
 public:
  // `default_model` must name one of `models`.
  ModelSet(std::vector<std::unique_ptr<ServedModel>> models, std::string default_model)
      : models_(std::move(models)), default_model_(std::move(default_model)) {}

  // Empty `name`: the default model. Null if no such model.
  ServedModel* Find(const std::string& name) const;
  // "a, b, c"
  std::string Names() const;

  const std::vector<std::unique_ptr<ServedModel>>& models() const { return models_; }
  const std::string& default_model() const { return default_model_; }

 private:
  std::vector<std::unique_ptr<ServedModel>> models_;
  std::string default_model_;
};

struct FrontendLimits {
  int64_t max_image_bytes = 16LL * 1024 * 1024;
  int64_t max_pixels = 32LL * 1024 * 1024;
  // Frames of one stream queued, running or answered but not yet written;
  // at the limit the stream stops reading until results are written. Bounds
  // a stream's memory when its client reads slowly.
  int max_pending_per_stream = 256;
};

class DetectorService final : public v1::Detector::Service {
 public:
  // All references must outlive the service.
  DetectorService(const ModelSet& models, const FrontendLimits& limits, ServerMetrics& metrics,
                  Clock& clock)
      : models_(models), limits_(limits), metrics_(metrics), clock_(clock) {}

  grpc::Status Detect(grpc::ServerContext* context, const v1::DetectRequest* request,
                      v1::DetectResponse* response) override;
  grpc::Status DetectStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::DetectResponse, v1::DetectRequest>* stream) override;
  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status GetModel(grpc::ServerContext* context, const v1::GetModelRequest* request,
                        v1::GetModelResponse* response) override;

 private:
  // Called exactly once per frame: OK with detections, or the error (also set
  // in `response.error`). `response` carries model, camera_id and frame_id
  // either way.
  using ResponseCallback = std::function<void(const Status& status, v1::DetectResponse response)>;

  // Validates, decodes and queues `request`. `done` runs on this thread if the
  // frame is rejected, otherwise on a worker thread.
  void ProcessFrame(const v1::DetectRequest& request, ResponseCallback done);
  StatusOr<engine::Image> DecodeFrame(const v1::Frame& frame) const;
  // Counts, logs and answers a frame that failed.
  void Fail(ServedModel* model, const Status& status, v1::DetectResponse response,
            const ResponseCallback& done);

  const ModelSet& models_;
  const FrontendLimits limits_;
  ServerMetrics& metrics_;
  Clock& clock_;
};

}  // namespace lowbit::server
