#include "kserve_service.h"

#include <utility>

namespace lowbit::server {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::Status NotYet() {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not served by lowbitd yet");
}

}  // namespace

KServeService::KServeService(ModelRegistry& registry, const FrontendLimits& limits,
                             ServerMetrics& metrics, Clock& clock, const DrainState& drain)
    : registry_(registry), limits_(limits), metrics_(metrics), clock_(clock), drain_(drain) {}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* context,
                                                    const inference::ServerLiveRequest*,
                                                    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* context,
                                                     const inference::ServerReadyRequest*,
                                                     inference::ServerReadyResponse* response) {
  bool any_ready = false;
  for (const ModelStatus& status : registry_.List()) {
    any_ready = any_ready || status.state == ModelState::kReady;
  }
  response->set_ready(any_ready && !drain_.draining());
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* context,
                                                    const inference::ModelReadyRequest*,
                                                    inference::ModelReadyResponse*) {
  return FinishNow(context, NotYet());
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(grpc::CallbackServerContext* context,
                                                        const inference::ServerMetadataRequest*,
                                                        inference::ServerMetadataResponse*) {
  return FinishNow(context, NotYet());
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(grpc::CallbackServerContext* context,
                                                       const inference::ModelMetadataRequest*,
                                                       inference::ModelMetadataResponse*) {
  return FinishNow(context, NotYet());
}

grpc::ServerUnaryReactor* KServeService::ModelConfig(grpc::CallbackServerContext* context,
                                                     const inference::ModelConfigRequest*,
                                                     inference::ModelConfigResponse*) {
  return FinishNow(context, NotYet());
}

grpc::ServerUnaryReactor* KServeService::RepositoryIndex(grpc::CallbackServerContext* context,
                                                         const inference::RepositoryIndexRequest*,
                                                         inference::RepositoryIndexResponse*) {
  return FinishNow(context, NotYet());
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const inference::ModelInferRequest*,
                                                    inference::ModelInferResponse*) {
  return FinishNow(context, NotYet());
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
KServeService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return inference::GRPCInferenceService::CallbackService::ModelStreamInfer(context);
}

void KServeService::Infer(const inference::ModelInferRequest&, CallControl, InferDone done) {
  done(Unimplemented("not served by lowbitd yet"), inference::ModelInferResponse());
}

int64_t KServeService::FrameCount(const inference::ModelInferRequest& request) {
  if (request.inputs_size() == 0 || request.inputs(0).shape_size() == 0) return 1;
  return request.inputs(0).shape(0);
}

}  // namespace lowbit::server
