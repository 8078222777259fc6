#include "admin_service.h"

#include <string>
#include <utility>

namespace lowbit::server {

v1::ReloadAction ToProto(ReloadAction action) {
  switch (action) {
    case ReloadAction::kUnchanged:
      return v1::RELOAD_ACTION_UNCHANGED;
    case ReloadAction::kLoaded:
      return v1::RELOAD_ACTION_LOADED;
    case ReloadAction::kReloaded:
      return v1::RELOAD_ACTION_RELOADED;
    case ReloadAction::kUnloaded:
      return v1::RELOAD_ACTION_UNLOADED;
    case ReloadAction::kFailed:
      return v1::RELOAD_ACTION_FAILED;
  }
  return v1::RELOAD_ACTION_UNSPECIFIED;
}

AdminService::AdminService(ModelRegistry& registry) : registry_(registry) {}

AdminService::~AdminService() { reloads_.JoinAll(); }

grpc::ServerUnaryReactor* AdminService::ReloadModels(grpc::CallbackServerContext* context,
                                                     const v1::ReloadModelsRequest* request,
                                                     v1::ReloadModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `request` and `response` stay valid until Finish.
  reloads_.Start([this, reactor, request, response] {
    for (const ReloadResult& result : registry_.Reload(request->model(), request->force())) {
      v1::ModelReloadResult* out = response->add_results();
      out->set_model(result.model);
      out->set_action(ToProto(result.action));
      out->set_version(result.version);
      out->set_message(result.message);
      out->set_load_ms(result.load_ms);
    }
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace lowbit::server
