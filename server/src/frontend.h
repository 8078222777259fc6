// The gRPC front end: lowbit.v1.Detector on gRPC's callback API.
//
// No thread belongs to a call. gRPC's callback threads run the reactions
// (a message read, a write done, a cancellation); a frame is checked there
// (sizes, the image header: nothing decoded) and handed to its model's
// Scheduler with the call's deadline and cancellation, and the reaction
// returns. Workers decode, run and post-process; a frame's completion
// (on a worker, the batcher or the Submit thread) finishes the unary call or
// queues the stream's response, and the stream's next write starts from it.
//
// A stream holds at most `max_pending_per_stream` frames read but not yet
// written (waiting, running, or answered but held), and its answered,
// unwritten results at most `max_pending_bytes_per_stream`: at either limit
// it stops reading, so gRPC's flow control slows the sender; nothing is
// dropped for it. A stream over `limits.streams` is refused at once. Responses are written one at a time, in read order per camera_id (a
// later frame of a camera that finished first, on another worker, is held
// until the earlier ones are written), so a slow reader holds back only its
// own stream.
//
// On DrainState::StartDraining (SIGTERM) every stream stops reading at once,
// answers the frames it accepted (a frame whose read completes afterwards
// is answered as dropped SHUTTING_DOWN), and ends with UNAVAILABLE; new
// calls get UNAVAILABLE.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "admission.h"
#include "clock.h"
#include "lowbit/engine/status.h"
#include "log_limit.h"
#include "lowbit/v1/detector.grpc.pb.h"
#include "metrics.h"
#include "registry.h"
#include "scheduler.h"

namespace lowbit::server {

// The scheduler's drop reason as the protocol's.
v1::DropReason ToProtoDropReason(DropReason reason);

class DetectorService final : public v1::Detector::CallbackService {
 public:
  // All references must outlive the service, and the service must outlive
  // every frame it submitted (shut the registry down first).
  DetectorService(ModelRegistry& registry, const FrontendLimits& limits, ServerMetrics& metrics,
                  Clock& clock, const DrainState& drain);

  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context,
                                   const v1::DetectRequest* request,
                                   v1::DetectResponse* response) override;
  grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::GetModelResponse* response) override;

  // Blocks until no Detect or DetectStream call is in progress (all
  // finished and done) or `deadline`; true if none is left.
  bool AwaitCallsDone(std::chrono::steady_clock::time_point deadline);
  int calls_in_progress() const;

 private:
  class UnaryCall;
  class StreamCall;

  // Called exactly once per frame: OK with the detections, or the error
  // (also in `response.error`, with `response.dropped` for a frame dropped
  // before it was computed). `response` carries model, camera_id and
  // frame_id either way.
  using ResponseCallback = std::function<void(const Status& status, v1::DetectResponse response)>;

  // What a frame inherits from its call.
  struct CallInfo {
    Clock::TimePoint deadline = Clock::TimePoint::max();
    std::function<bool()> cancelled;
    std::string source;  // the client's connection (gRPC peer): FrameRequest::source
  };

  // Checks and submits `request`, whose encoded bytes (if any) are passed
  // separately in `encoded` so that a stream can move them out of its
  // message. `done` runs on this thread if the frame is refused before it
  // reaches a scheduler, otherwise wherever the scheduler completes it.
  void ProcessFrame(const v1::DetectRequest& request, std::string encoded, const CallInfo& call,
                    ResponseCallback done);
  // Counts, logs and answers a frame that was not computed.
  void Fail(ModelMetrics& metrics, const Status& status, DropReason dropped,
            v1::DetectResponse response, const ResponseCallback& done);
  ModelMetrics& MetricsFor(const std::string& model_name);
  // Answers a frame read after draining began.
  void AnswerShuttingDown(const v1::DetectRequest& request, const ResponseCallback& done);

  // Finishes `reactor` with UNAVAILABLE if the server is draining.
  bool RefusedWhileDraining(grpc::ServerUnaryReactor* reactor) const;

  void CallStarted();
  void CallEnded();

  ModelRegistry& registry_;
  const FrontendLimits limits_;
  ServerMetrics& metrics_;
  Clock& clock_;
  // Lines about frames not answered, at warning level (debug ones are off
  // by default).
  LogLimiter warnings_;
  const DrainState& drain_;

  mutable std::mutex calls_mu_;
  std::condition_variable calls_cv_;
  int calls_ = 0;
};

}  // namespace lowbit::server
