#include "server.h"

#include <algorithm>
#include <exception>
#include <limits>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

namespace lowbit::server {
namespace {

constexpr const char* kDetectorServiceName = "lowbit.v1.Detector";
// Room for a request's fields around its image payload.
constexpr int64_t kMessageOverheadBytes = 64 * 1024;

std::string WithPort(const std::string& address, int port) {
  std::string host;
  int unused = 0;
  if (!SplitHostPort(address, &host, &unused).ok()) return address;
  return host + ":" + std::to_string(port);
}

std::string ChooseDefaultModel(const std::vector<ModelSpec>& models) {
  for (const ModelSpec& spec : models) {
    if (spec.name == "nanodet-g") return spec.name;
  }
  return models.front().name;
}

}  // namespace

StatusOr<std::unique_ptr<LowbitServer>> LowbitServer::Start(const ServerOptions& options,
                                                            std::vector<ModelSpec> models,
                                                            Clock* clock) {
  if (models.empty()) return FailedPrecondition("no models to serve");
  std::sort(models.begin(), models.end(),
            [](const ModelSpec& a, const ModelSpec& b) { return a.name < b.name; });
  std::string default_model = options.default_model;
  if (default_model.empty()) {
    default_model = ChooseDefaultModel(models);
  } else if (std::none_of(models.begin(), models.end(),
                          [&](const ModelSpec& spec) { return spec.name == default_model; })) {
    std::string names;
    for (const ModelSpec& spec : models) names += (names.empty() ? "" : ", ") + spec.name;
    return InvalidArgument("--default-model '" + default_model +
                           "' is not in the model repository (" + names + ")");
  }

  std::unique_ptr<LowbitServer> server(new LowbitServer());
  server->metrics_ = std::make_unique<ServerMetrics>(options.max_batch);

  SchedulerOptions scheduler_options;
  scheduler_options.workers = options.workers;
  scheduler_options.threads_per_worker = options.threads_per_worker;
  scheduler_options.max_batch = options.max_batch;
  scheduler_options.batch_timeout = std::chrono::microseconds(options.batch_timeout_us);
  scheduler_options.queue_capacity = options.queue_capacity;
  std::vector<std::unique_ptr<ServedModel>> served;
  for (ModelSpec& spec : models) {
    auto model = std::make_unique<ServedModel>();
    model->metrics = &server->metrics_->ForModel(spec.name);
    LOWBIT_ASSIGN_OR_RETURN(
        model->scheduler,
        Scheduler::Create(spec.name, *spec.backend, scheduler_options, clock, model->metrics));
    model->spec = std::move(spec);
    served.push_back(std::move(model));
  }
  server->models_ = std::make_unique<ModelSet>(std::move(served), default_model);

  if (!options.metrics_address.empty()) {
    try {
      server->exposer_ = std::make_unique<prometheus::Exposer>(options.metrics_address);
    } catch (const std::exception& e) {
      return Unavailable("cannot serve metrics on --metrics-address " + options.metrics_address +
                         " (" + e.what() + "); is the port in use?");
    }
    server->exposer_->RegisterCollectable(server->metrics_->registry());
    const std::vector<int> ports = server->exposer_->GetListeningPorts();
    server->metrics_port_ = ports.empty() ? 0 : ports.front();
  }

  FrontendLimits limits;
  limits.max_image_bytes = options.max_image_bytes;
  limits.max_pixels = options.max_pixels;
  limits.max_pending_per_stream =
      2 * (options.queue_capacity + options.workers * options.max_batch);
  server->service_ =
      std::make_unique<DetectorService>(*server->models_, limits, *server->metrics_, *clock);

  // Both register process-wide plugins that ServerBuilder picks up when built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second lowbitd on the same
  // port would silently share it instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(
      options.max_image_bytes + kMessageOverheadBytes, std::numeric_limits<int>::max())));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    server->server_.reset();
    return Unavailable("cannot listen on --address " + options.address +
                       " (port in use, or not an address of this host?)");
  }
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  health->SetServingStatus(kDetectorServiceName, true);
  health->SetServingStatus(true);

  spdlog::info(
      "serving {} model(s): {} (default {}); {} worker(s) x {} thread(s) per model, "
      "max batch {}, batch timeout {} us, queue capacity {}",
      server->models_->models().size(), server->models_->Names(), default_model, options.workers,
      options.threads_per_worker, options.max_batch, options.batch_timeout_us,
      options.queue_capacity);
  spdlog::info("listening on {} (gRPC: {}, grpc.health.v1.Health, reflection)",
               WithPort(options.address, server->port_), kDetectorServiceName);
  if (server->exposer_) {
    spdlog::info("metrics at http://{}/metrics",
                 WithPort(options.metrics_address, server->metrics_port_));
  }
  return server;
}

void LowbitServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_) {
    spdlog::info("shutting down: refusing new calls, finishing in-flight ones (up to {} ms)",
                 grace.count());
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() + grace);
    server_->Wait();
  }
  // No call is left, so no frame can arrive; this runs what is still queued.
  if (models_) {
    for (const auto& model : models_->models()) model->scheduler->Shutdown();
  }
  spdlog::info("shutdown complete");
}

LowbitServer::~LowbitServer() { Shutdown(std::chrono::milliseconds(0)); }

}  // namespace lowbit::server
