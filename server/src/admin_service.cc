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

AdminService::~AdminService() {
  std::lock_guard<std::mutex> lock(mu_);
  JoinFinished(/*all=*/true);
}

grpc::ServerUnaryReactor* AdminService::ReloadModels(grpc::CallbackServerContext* context,
                                                     const v1::ReloadModelsRequest* request,
                                                     v1::ReloadModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto done = std::make_shared<std::atomic<bool>>(false);
  // `request` and `response` stay valid until Finish.
  std::thread thread([this, reactor, request, response, done] {
    for (const ReloadResult& result : registry_.Reload(request->model(), request->force())) {
      v1::ModelReloadResult* out = response->add_results();
      out->set_model(result.model);
      out->set_action(ToProto(result.action));
      out->set_version(result.version);
      out->set_message(result.message);
      out->set_load_ms(result.load_ms);
    }
    reactor->Finish(grpc::Status::OK);
    done->store(true);
  });
  std::lock_guard<std::mutex> lock(mu_);
  JoinFinished(/*all=*/false);
  running_.push_back(Running{std::move(thread), std::move(done)});
  return reactor;
}

void AdminService::JoinFinished(bool all) {
  for (auto it = running_.begin(); it != running_.end();) {
    if (all || it->done->load()) {
      it->thread.join();
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace lowbit::server
