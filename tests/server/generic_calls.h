// Calls to the standard gRPC services (health, reflection) without their C++
// stubs, which Debian's gRPC does not ship: messages are hand-encoded bytes.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <string>

namespace lowbit::server::testing {

inline std::string ToString(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  if (!buffer.TrySingleSlice(&slice).ok()) {
    grpc::ByteBuffer copy(buffer);
    if (!copy.DumpToSingleSlice(&slice).ok()) return "";
  }
  return std::string(reinterpret_cast<const char*>(slice.begin()), slice.size());
}

inline grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// One unary call of `method` ("/package.Service/Method") with `request`
// bytes; the response bytes go to `response`.
inline grpc::Status GenericUnary(grpc::Channel* channel, const std::string& method,
                                 const std::string& request, std::string* response) {
  grpc::GenericStub stub(channel->shared_from_this());
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareUnaryCall(&context, method, ToBuffer(request), &queue);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  queue.Next(&tag, &ok);
  if (status.ok()) *response = ToString(reply);
  return status;
}

// One request and its reply on bidirectional stream `method`.
inline grpc::Status GenericExchange(grpc::Channel* channel, const std::string& method,
                                    const std::string& request, std::string* response) {
  grpc::GenericStub stub(channel->shared_from_this());
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(&context, method, &queue);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](int id) {
    queue.Next(&tag, &ok);
    return ok && tag == reinterpret_cast<void*>(id);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step(1)) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "call did not start");
  call->Write(ToBuffer(request), reinterpret_cast<void*>(2));
  if (!step(2)) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  if (step(3)) *response = ToString(reply);
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  return status;
}

// grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited.
inline std::string HealthCheckRequest(const std::string& service) {
  return std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
}
// grpc.health.v1.HealthCheckResponse{status}: field 1, varint; 1 = SERVING,
// 2 = NOT_SERVING.
inline std::string HealthCheckResponse(int status) {
  return std::string("\x08", 1) + static_cast<char>(status);
}

}  // namespace lowbit::server::testing
