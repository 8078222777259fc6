// lowbitd assembled: the model registry (per-model schedulers sharing one
// decode budget), lowbit.v1.Detector, lowbit.v1.Admin and KServe v2 on one
// gRPC server with a resource quota, health (per service and overall),
// reflection, and the Prometheus exposer.
//
// Shutdown (SIGTERM) drains in this order:
//   1. DrainState::StartDraining: health NOT_SERVING; every stream stops
//      reading at once; new calls get UNAVAILABLE.
//   2. Streams answer every frame they accepted, then end with UNAVAILABLE;
//      unary calls finish. Waits for that until the grace ends.
//   3. grpc::Server::Shutdown with what is left of the grace: calls still
//      running are cancelled (their waiting frames are dropped unrun).
//   4. The registry drains and stops every scheduler.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>

#include "admission.h"
#include "clock.h"
#include "frontend.h"
#include "metrics.h"
#include "model_repository.h"
#include "options.h"
#include "registry.h"
#include "scheduler.h"

namespace lowbit::server {

class AdminService;
class KServeService;

class LowbitServer {
 public:
  // Loads options.model_repo (a model that fails to load is reported and
  // skipped) and starts serving. Errors: no model loads, an unknown
  // --default-model (INVALID_ARGUMENT), an address that cannot be bound
  // (UNAVAILABLE).
  static StatusOr<std::unique_ptr<LowbitServer>> Start(const ServerOptions& options,
                                                       Clock* clock = &SteadyClock());
  // Serves `models`, already loaded (tests, fake backends); the registry's
  // repository is options.model_repo, used only by Reload.
  static StatusOr<std::unique_ptr<LowbitServer>> Start(const ServerOptions& options,
                                                       std::vector<ModelSpec> models,
                                                       Clock* clock = &SteadyClock());
  ~LowbitServer();  // Shutdown(0) if not shut down yet

  // The drain described above, within `grace` from the call. Idempotent;
  // call from one thread.
  void Shutdown(std::chrono::milliseconds grace);

  int port() const { return port_; }                  // bound gRPC port
  int metrics_port() const { return metrics_port_; }  // 0: no metrics endpoint
  ModelRegistry& registry() { return *registry_; }
  ServerMetrics& metrics() { return *metrics_; }
  const DrainState& drain() const { return drain_; }
  const FrontendLimits& limits() const { return limits_; }
  const DetectorService& detector() const { return *detector_; }

 private:
  LowbitServer() = default;

  // Starts everything but the registry, which `registry_` already holds.
  static StatusOr<std::unique_ptr<LowbitServer>> Serve(std::unique_ptr<LowbitServer> server,
                                                       const ServerOptions& options, Clock* clock);
  static RegistryOptions RegistryOptionsFrom(const ServerOptions& options);
  void SetServing(bool serving);

  // Destroyed bottom-up: gRPC first, then the services, then the registry
  // (after Shutdown has drained it), the budget and the metrics.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<DecodeBudget> budget_;
  std::unique_ptr<ModelRegistry> registry_;
  DrainState drain_;
  FrontendLimits limits_;
  std::unique_ptr<DetectorService> detector_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<KServeService> kserve_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace lowbit::server
