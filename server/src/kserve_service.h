// The KServe v2 / Triton gRPC protocol (inference.GRPCInferenceService,
// proto/inference/grpc_service.proto) beside lowbit.v1.Detector, on gRPC's
// callback API: no thread per call or per stream.
//
// Frames go through the same path as lowbit's own service: admission
// (admission.h: size and header checks, no decode), the call's deadline,
// ModelRegistry lookup that survives a hot reload, and the model's
// Scheduler, so they batch with Detector frames.
//
// How a lowbit model appears (exactly one input per request):
//   tensor form   input  <config input.tensor_name> FP32 [N, ...per frame...]
//                        (e.g. "input" [N,3,416,416]), pre-processed as the
//                        model's config says; N frames, one FrameRequest each.
//                 output the model's outputs (names as the model declares),
//                        FP32, [N, ...per frame...]
//   image form    input  "IMAGE" BYTES [N] or [N,1]: encoded JPEG/PNG files
//                 output COUNT INT32 [N], BOXES FP32 [N,K,4] (x_min, y_min,
//                        x_max, y_max in original pixels), SCORES FP32 [N,K],
//                        CLASSES INT32 [N,K] (-1 padding), LABELS BYTES [N,K]
//                        ("" padding), IMAGE_SIZE INT32 [N,2] (width, height);
//                        K = the most detections of any frame of the request;
//                        for a classification head, its top classes (each
//                        box the whole image).
// Classification extension (Triton's): a tensor-form output requested with
// the parameter classification = k (int64) is answered instead as BYTES
// [N, k], per frame its k highest elements as "value:index:label" (the
// model's labels; "value:index" past them), highest first.
// Request parameters: score_threshold, iou_threshold (double; override the
// model's), camera_id (string; the frame shares its camera's latest-frame-
// wins slot; N must be 1), timeout (int64 microseconds: dropped with
// DEADLINE_EXCEEDED if its batch has not formed by then). `outputs` selects
// and orders the outputs. Every output is answered in raw_output_contents.
// Model versions are the registry's load counters ("1", "2" after a reload).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "admission.h"
#include "clock.h"
#include "inference/grpc_service.grpc.pb.h"
#include "lowbit/engine/status.h"
#include "metrics.h"
#include "registry.h"

namespace lowbit::server {

class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // All references must outlive the service.
  KServeService(ModelRegistry& registry, const FrontendLimits& limits, ServerMetrics& metrics,
                Clock& clock, const DrainState& drain);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;

  // One request's answer: OK with `response` filled, or the error (then
  // `response` carries only id, model name and version). Called exactly once,
  // on the calling thread (rejected before any frame was queued) or on a
  // scheduler thread.
  using InferDone =
      std::function<void(const Status& status, inference::ModelInferResponse response)>;

  // How the call that carries a request ends its frames early.
  struct CallControl {
    Clock::TimePoint received{};
    Clock::TimePoint deadline = Clock::TimePoint::max();
    // Polled while frames wait; true drops them as cancelled. Must stay
    // callable until `done` has run.
    std::function<bool()> cancelled;
    std::string source;  // the client's connection (gRPC peer): FrameRequest::source
  };

  // Validates `request`, queues its N frames and answers through `done` once
  // all N are answered. Shared by ModelInfer and ModelStreamInfer.
  void Infer(const inference::ModelInferRequest& request, CallControl control, InferDone done);

  // Frames of `request` (its input's first dimension; 1 if it has none), for
  // a stream's flow control before the request is parsed.
  static int64_t FrameCount(const inference::ModelInferRequest& request);

  const FrontendLimits& limits() const { return limits_; }
  const DrainState& drain() const { return drain_; }
  Clock& clock() const { return clock_; }

 private:
  ModelRegistry& registry_;
  const FrontendLimits limits_;
  ServerMetrics& metrics_;
  Clock& clock_;
  const DrainState& drain_;
};

}  // namespace lowbit::server
