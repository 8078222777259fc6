// lowbit-health: a gRPC health probe for lowbitd (the image's HEALTHCHECK).
//
//   lowbit-health [--timeout-ms N] [--service NAME] [ADDRESS]
//
// Calls grpc.health.v1.Health/Check on ADDRESS (plaintext; default: the
// environment's LOWBIT_HEALTH_ADDRESS, else 127.0.0.1:50051) with a deadline
// of N ms (default 2000) covering connect and call. NAME is a service name
// ("" = the server as a whole, the default; lowbitd also answers for
// lowbit.v1.Detector and the other services it serves).
// Exit codes: 0 only if the answer is SERVING; 1 for any other status
// (NOT_SERVING while lowbitd drains); 2 if the call fails
// (no server, deadline exceeded, unknown service); 64 for bad arguments.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"

namespace {

constexpr int kExitServing = 0;
constexpr int kExitNotServing = 1;
constexpr int kExitCallFailed = 2;
constexpr int kExitUsage = 64;

int Usage(const char* message) {
  if (message != nullptr) std::fprintf(stderr, "lowbit-health: %s\n", message);
  std::fprintf(stderr, "usage: lowbit-health [--timeout-ms N] [--service NAME] [ADDRESS]\n");
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  const char* address_from_environment = std::getenv("LOWBIT_HEALTH_ADDRESS");
  std::string address = address_from_environment != nullptr && address_from_environment[0] != '\0'
                            ? address_from_environment
                            : "127.0.0.1:50051";
  std::string service;
  long timeout_ms = 2000;
  bool address_given = false;
  for (int i = 1; i < argc; ++i) {
    const char* argument = argv[i];
    if (std::strcmp(argument, "--help") == 0 || std::strcmp(argument, "-h") == 0) {
      Usage(nullptr);
      return kExitServing;
    }
    if (std::strcmp(argument, "--timeout-ms") == 0 || std::strcmp(argument, "--service") == 0) {
      if (i + 1 >= argc) return Usage("missing value after an option");
      const char* value = argv[++i];
      if (argument[2] == 's') {
        service = value;
        continue;
      }
      char* end = nullptr;
      timeout_ms = std::strtol(value, &end, 10);
      if (end == value || *end != '\0' || timeout_ms <= 0 || timeout_ms > 600000) {
        return Usage("--timeout-ms takes 1 to 600000");
      }
      continue;
    }
    if (argument[0] == '-') return Usage("unknown option");
    if (address_given) return Usage("more than one address");
    address = argument;
    address_given = true;
  }

  // Keep the probe to one connection attempt inside the deadline: no
  // reconnect back-off across probes (a fresh process each time anyway).
  grpc::ChannelArguments channel_arguments;
  channel_arguments.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  const auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                                 channel_arguments);
  const auto stub = grpc::health::v1::Health::NewStub(channel);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  // Wait for the connection within the deadline rather than failing fast on
  // a server that is still binding its port.
  context.set_wait_for_ready(true);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "lowbit-health: %s: Check failed: %s (code %d)\n", address.c_str(),
                 status.error_message().c_str(), static_cast<int>(status.error_code()));
    return kExitCallFailed;
  }
  const std::string status_name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::printf("%s\n", status_name.c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitServing
                                                                              : kExitNotServing;
}
