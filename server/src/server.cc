#include "server.h"

#include <algorithm>
#include <exception>
#include <limits>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <spdlog/spdlog.h>

#include "admin_service.h"
#include "kserve_service.h"
#include "tls.h"

namespace lowbit::server {
namespace {

constexpr const char* kServiceNames[] = {"lowbit.v1.Detector", "lowbit.v1.Admin",
                                         "inference.GRPCInferenceService"};
// Room for a request's fields around its image payload.
constexpr int64_t kMessageOverheadBytes = 64 * 1024;
constexpr int64_t kMiB = 1024 * 1024;
// Of the grace, what is kept back (at most) for cancelling the calls left
// and finishing the batches already running, so that lowbitd exits within
// the grace: a third of it, up to this.
constexpr std::chrono::milliseconds kMaxStopReserve{500};

std::string WithPort(const std::string& address, int port) {
  std::string host;
  int unused = 0;
  if (!SplitHostPort(address, &host, &unused).ok()) return address;
  return host + ":" + std::to_string(port);
}

}  // namespace

RegistryOptions LowbitServer::RegistryOptionsFrom(const ServerOptions& options) {
  RegistryOptions registry;
  registry.repository = options.model_repo;
  registry.default_model = options.default_model;
  SchedulerOptions& scheduler = registry.scheduler;
  scheduler.workers = options.workers;
  scheduler.threads_per_worker = options.threads_per_worker;
  scheduler.max_batch = options.max_batch;
  scheduler.batch_timeout = std::chrono::microseconds(options.batch_timeout_us);
  scheduler.latency_objective = std::chrono::milliseconds(options.latency_objective_ms);
  scheduler.queue_capacity = options.queue_capacity;
  scheduler.queue_bytes_capacity = options.queue_memory_mb * kMiB;
  return registry;
}

StatusOr<std::unique_ptr<LowbitServer>> LowbitServer::Start(const ServerOptions& options,
                                                            Clock* clock) {
  std::unique_ptr<LowbitServer> server(new LowbitServer());
  server->metrics_ = std::make_unique<ServerMetrics>(options.max_batch);
  server->budget_ = std::make_unique<DecodeBudget>(options.decode_memory_mb * kMiB);
  LOWBIT_ASSIGN_OR_RETURN(server->registry_,
                          ModelRegistry::Create(RegistryOptionsFrom(options), *server->metrics_,
                                                *clock, server->budget_.get()));
  return Serve(std::move(server), options, clock);
}

StatusOr<std::unique_ptr<LowbitServer>> LowbitServer::Start(const ServerOptions& options,
                                                            std::vector<ModelSpec> models,
                                                            Clock* clock) {
  if (models.empty()) return FailedPrecondition("no models to serve");
  std::unique_ptr<LowbitServer> server(new LowbitServer());
  server->metrics_ = std::make_unique<ServerMetrics>(options.max_batch);
  server->budget_ = std::make_unique<DecodeBudget>(options.decode_memory_mb * kMiB);
  LOWBIT_ASSIGN_OR_RETURN(server->registry_, ModelRegistry::FromSpecs(
                                                 RegistryOptionsFrom(options), std::move(models),
                                                 *server->metrics_, *clock, server->budget_.get()));
  return Serve(std::move(server), options, clock);
}

StatusOr<std::unique_ptr<LowbitServer>> LowbitServer::Serve(std::unique_ptr<LowbitServer> server,
                                                            const ServerOptions& options,
                                                            Clock* clock) {
  if (!options.metrics_address.empty()) {
    try {
      // The embedded web server serves one connection per thread and, by
      // default, waits 30 s for a request on a connection that sends none:
      // two idle connections held /metrics that long. Idle connections now
      // close after 2 s, and 4 threads leave room for the scraper meanwhile.
      server->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
          "listening_ports", options.metrics_address, "num_threads", "4", "request_timeout_ms",
          "2000"});
    } catch (const std::exception& e) {
      return Unavailable("cannot serve metrics on --metrics-address " + options.metrics_address +
                         " (" + e.what() + "); is the port in use?");
    }
    server->exposer_->RegisterCollectable(server->metrics_->registry());
    const std::vector<int> ports = server->exposer_->GetListeningPorts();
    server->metrics_port_ = ports.empty() ? 0 : ports.front();
  }

  FrontendLimits& limits = server->limits_;
  limits.max_image_bytes = options.max_image_bytes;
  limits.max_pixels = options.max_pixels;
  // A stream never holds more frames than its model's queue can take.
  limits.max_pending_per_stream = std::min(options.max_pending_per_stream, options.queue_capacity);
  limits.max_pending_bytes_per_stream = options.max_pending_kb_per_stream * 1024;
  limits.streams = std::make_shared<StreamSlots>(options.max_streams);
  server->detector_ = std::make_unique<DetectorService>(*server->registry_, limits,
                                                        *server->metrics_, *clock, server->drain_);
  server->admin_ = std::make_unique<AdminService>(*server->registry_);
  server->kserve_ = std::make_unique<KServeService>(*server->registry_, limits, *server->metrics_,
                                                    *clock, server->drain_);

  // Both register process-wide plugins that ServerBuilder picks up when built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second lowbitd on the same
  // port would silently share it instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc::ResourceQuota quota("lowbitd");
  quota.SetMaxThreads(options.grpc_max_threads);
  quota.Resize(static_cast<size_t>(options.grpc_memory_mb * kMiB));
  builder.SetResourceQuota(quota);
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                          MakeServerCredentials(options));
  builder.AddListeningPort(options.address, credentials, &server->port_);
  builder.RegisterService(server->detector_.get());
  builder.RegisterService(server->admin_.get());
  builder.RegisterService(server->kserve_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(
      options.max_image_bytes + kMessageOverheadBytes, std::numeric_limits<int>::max())));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    server->server_.reset();
    return Unavailable("cannot listen on --address " + options.address +
                       " (port in use, or not an address of this host?)");
  }
  server->SetServing(true);

  if (options.repository_poll_s > 0) {
    server->registry_->StartPolling(std::chrono::seconds(options.repository_poll_s));
  }

  int ready = 0;
  for (const ModelStatus& entry : server->registry_->List()) {
    if (entry.state == ModelState::kReady) {
      ++ready;
    } else {
      spdlog::error("model {} is not served: {}", entry.name, entry.message);
    }
  }
  spdlog::info(
      "serving {} model(s): {} (default {}); {} worker(s) x {} thread(s) per model, max batch {}, "
      "batch timeout {} us, latency objective {} ms, queue {} frames / {} MiB, decode budget {} "
      "MiB, {} frames / {} KiB pending per stream, at most {} streams",
      ready, server->registry_->Names(), server->registry_->default_model(), options.workers,
      options.threads_per_worker, options.max_batch, options.batch_timeout_us,
      options.latency_objective_ms, options.queue_capacity, options.queue_memory_mb,
      options.decode_memory_mb, limits.max_pending_per_stream, options.max_pending_kb_per_stream,
      options.max_streams);
  spdlog::info(
      "listening on {} ({}; gRPC: lowbit.v1.Detector, lowbit.v1.Admin, "
      "inference.GRPCInferenceService, grpc.health.v1.Health, reflection; quota {} threads, {} "
      "MiB)",
      WithPort(options.address, server->port_), DescribeTransport(options),
      options.grpc_max_threads, options.grpc_memory_mb);
  if (options.repository_poll_s > 0) {
    spdlog::info("polling {} every {} s for model changes", options.model_repo,
                 options.repository_poll_s);
  }
  if (server->exposer_) {
    spdlog::info("metrics at http://{}/metrics (plain HTTP)",
                 WithPort(options.metrics_address, server->metrics_port_));
  }
  return server;
}

void LowbitServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  for (const char* name : kServiceNames) health->SetServingStatus(name, serving);
  health->SetServingStatus(serving);
}

void LowbitServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + grace;
  drain_.StartDraining();
  if (server_) {
    spdlog::info(
        "draining: streams stop reading and answer the frames they accepted, new calls get "
        "UNAVAILABLE ({} Detector call(s) in progress; up to {} ms)",
        detector_->calls_in_progress(), grace.count());
    SetServing(false);
    const auto wait_end =
        end - std::min<std::chrono::steady_clock::duration>(kMaxStopReserve, grace / 3);
    const bool drained = detector_->AwaitCallsDone(wait_end);
    if (!drained) {
      spdlog::warn("drain timeout: cancelling {} Detector call(s) still in progress",
                   detector_->calls_in_progress());
    }
    // Other services' calls (KServe, Admin) get until the same point; then
    // whatever is still running is cancelled (its waiting frames dropped).
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::max(std::chrono::steady_clock::duration::zero(),
                               wait_end - std::chrono::steady_clock::now()));
    server_->Wait();
  }
  // No call is left, so no frame can arrive; this runs what is still queued
  // (frames of cancelled calls are dropped unrun).
  if (registry_) registry_->Shutdown();
  spdlog::info("shutdown complete after {} ms",
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count());
}

LowbitServer::~LowbitServer() { Shutdown(std::chrono::milliseconds(0)); }

}  // namespace lowbit::server
