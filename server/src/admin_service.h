// lowbit.v1.Admin: model repository control over gRPC (callback API).
#pragma once

#include <grpcpp/grpcpp.h>

#include "background_threads.h"
#include "lowbit/v1/admin.grpc.pb.h"
#include "registry.h"

namespace lowbit::server {

class AdminService final : public v1::Admin::CallbackService {
 public:
  // `registry` must outlive the service.
  explicit AdminService(ModelRegistry& registry);
  // Waits for reloads still running (their calls are finished by then).
  ~AdminService() override;

  // Runs ModelRegistry::Reload on a thread of its own (a load takes seconds;
  // a gRPC callback thread must not block) and finishes the call when every
  // load and swap is done. A reload that fails for one model is still an OK
  // call: each result says what happened to its model.
  grpc::ServerUnaryReactor* ReloadModels(grpc::CallbackServerContext* context,
                                         const v1::ReloadModelsRequest* request,
                                         v1::ReloadModelsResponse* response) override;

 private:
  ModelRegistry& registry_;
  BackgroundThreads reloads_;  // one per ReloadModels call in progress
};

// The wire form of a registry's reload action.
v1::ReloadAction ToProto(ReloadAction action);

}  // namespace lowbit::server
