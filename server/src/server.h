// lowbitd assembled: per-model schedulers, the Detector service, the gRPC
// health and reflection services, and the Prometheus exposer.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>

#include "clock.h"
#include "frontend.h"
#include "metrics.h"
#include "model_repository.h"
#include "options.h"

namespace lowbit::server {

class LowbitServer {
 public:
  // Starts serving `models` as `options` say. Errors: an unknown
  // --default-model (INVALID_ARGUMENT), an address that cannot be bound
  // (UNAVAILABLE), a model whose sessions cannot be created.
  static StatusOr<std::unique_ptr<LowbitServer>> Start(const ServerOptions& options,
                                                       std::vector<ModelSpec> models,
                                                       Clock* clock = &SteadyClock());
  ~LowbitServer();  // Shutdown(0) if not shut down yet

  // Refuses new calls and reports NOT_SERVING on health, lets in-flight calls
  // finish for up to `grace` (then cancels them), drains every model's queue
  // and stops its workers. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  int port() const { return port_; }                  // bound gRPC port
  int metrics_port() const { return metrics_port_; }  // 0: no metrics endpoint
  const ModelSet& models() const { return *models_; }
  ServerMetrics& metrics() { return *metrics_; }

 private:
  LowbitServer() = default;

  // Destroyed bottom-up: gRPC first, then the service, then the schedulers.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<ModelSet> models_;
  std::unique_ptr<DetectorService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace lowbit::server
