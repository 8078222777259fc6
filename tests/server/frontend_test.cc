// The Detector service in-process on 127.0.0.1, over a real gRPC channel,
// with a fake engine: request validation, error codes, streaming semantics,
// metadata RPCs, metrics and shutdown.
#include "frontend.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "fake_backend.h"
#include "generic_calls.h"
#include "server.h"

namespace lowbit::server {
namespace {

using testing::FakeBackend;

// A raw BGR8 frame whose width is `id`: the fake engine's detection echoes it.
v1::DetectRequest RawFrame(int id, const std::string& camera = "cam") {
  v1::DetectRequest request;
  request.set_camera_id(camera);
  request.set_frame_id(static_cast<uint64_t>(id));
  v1::RawImage* raw = request.mutable_frame()->mutable_raw();
  raw->set_width(id);
  raw->set_height(2);
  raw->set_format(v1::BGR8);
  raw->set_pixels(std::string(3 * id * 2, '\x7f'));
  return request;
}

ModelSpec FakeSpec(std::shared_ptr<FakeBackend> backend) {
  ModelSpec spec;
  spec.name = "fake";
  spec.config.set_name("fake");
  spec.config.set_version(3);
  spec.config.mutable_input()->set_width(64);
  spec.config.mutable_input()->set_height(48);
  spec.num_classes = 7;
  spec.layers = {{"conv0", "Conv", {1, 8, 32, 24}, 1000, 216},
                 {"relu0", "Relu", {1, 8, 32, 24}, 0, 0}};
  spec.backend = std::move(backend);
  return spec;
}

// The value of the series of `family` whose labels include all of `labels`;
// -1 if there is none.
double MetricValue(ServerMetrics& metrics, const std::string& family,
                   const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& f : metrics.registry()->Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& metric : f.metric) {
      size_t matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched != labels.size()) continue;
      switch (f.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(metric.histogram.sample_count);
        default:
          return -1;
      }
    }
  }
  return -1;
}

class FrontendTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = {}) {
    options.address = "127.0.0.1:0";
    options.metrics_address = "";
    backend_ = std::make_shared<FakeBackend>();
    std::vector<ModelSpec> specs;
    specs.push_back(FakeSpec(backend_));
    StatusOr<std::unique_ptr<LowbitServer>> server = LowbitServer::Start(options, std::move(specs));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Detector::NewStub(channel_);
  }

  grpc::Status Detect(const v1::DetectRequest& request, v1::DetectResponse* response) {
    grpc::ClientContext context;
    return stub_->Detect(&context, request, response);
  }

  // The status code and message of a Detect that must fail.
  std::pair<grpc::StatusCode, std::string> DetectError(const v1::DetectRequest& request) {
    v1::DetectResponse response;
    grpc::Status status = Detect(request, &response);
    EXPECT_FALSE(status.ok());
    return {status.error_code(), status.error_message()};
  }

  std::shared_ptr<FakeBackend> backend_;
  std::unique_ptr<LowbitServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Detector::Stub> stub_;
};

TEST_F(FrontendTest, DetectReturnsTheFramesDetectionsAndEchoesItsIds) {
  StartServer();
  v1::DetectRequest request = RawFrame(5, "gate-3");
  request.set_score_threshold(0.25f);
  v1::DetectResponse response;
  grpc::Status status = Detect(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model(), "fake");  // the default model
  EXPECT_EQ(response.camera_id(), "gate-3");
  EXPECT_EQ(response.frame_id(), 5u);
  EXPECT_EQ(response.image_width(), 5);
  EXPECT_EQ(response.image_height(), 2);
  EXPECT_EQ(response.batch_size(), 1);
  ASSERT_EQ(response.detections_size(), 1);
  EXPECT_EQ(response.detections(0).class_id(), 5);
  EXPECT_EQ(response.detections(0).label(), "id5");
  EXPECT_FLOAT_EQ(response.detections(0).score(), 0.25f);
  EXPECT_FLOAT_EQ(response.detections(0).box().x_max(), 5);
  EXPECT_FALSE(response.has_error());
  EXPECT_GE(response.timings().total_us(), response.timings().inference_us());
  EXPECT_EQ(
      MetricValue(server_->metrics(), "lowbit_requests_total", {{"model", "fake"}, {"code", "OK"}}),
      1);
  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_request_duration_seconds", {{"model", "fake"}}),
            1);
  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_stage_duration_seconds",
                        {{"model", "fake"}, {"stage", "inference"}}),
            1);
  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_batch_size", {{"model", "fake"}}), 1);
}

TEST_F(FrontendTest, BadFramesAreInvalidArgumentWithActionableMessagesAndServingContinues) {
  ServerOptions options;
  options.max_image_bytes = 1000;
  options.max_pixels = 10000;
  StartServer(options);

  v1::DetectRequest empty;
  auto [code, message] = DetectError(empty);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("set frame.encoded"), std::string::npos) << message;

  v1::DetectRequest empty_encoded;
  empty_encoded.mutable_frame()->set_encoded("");
  std::tie(code, message) = DetectError(empty_encoded);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("frame.encoded is empty"), std::string::npos) << message;

  v1::DetectRequest corrupt;
  corrupt.mutable_frame()->set_encoded("\xff\xd8\xff\xe0 this is not really a JPEG");
  std::tie(code, message) = DetectError(corrupt);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("frame.encoded"), std::string::npos) << message;

  v1::DetectRequest too_big;
  too_big.mutable_frame()->set_encoded(std::string(1001, 'x'));
  std::tie(code, message) = DetectError(too_big);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("--max-image-bytes"), std::string::npos) << message;

  v1::DetectRequest short_pixels = RawFrame(4);
  short_pixels.mutable_frame()->mutable_raw()->mutable_pixels()->resize(20);
  std::tie(code, message) = DetectError(short_pixels);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("frame.raw.pixels has 20 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("needs 24"), std::string::npos) << message;

  v1::DetectRequest no_format = RawFrame(4);
  no_format.mutable_frame()->mutable_raw()->set_format(v1::PIXEL_FORMAT_UNSPECIFIED);
  std::tie(code, message) = DetectError(no_format);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("BGR8 or RGB8"), std::string::npos) << message;

  v1::DetectRequest too_many_pixels;
  v1::RawImage* raw = too_many_pixels.mutable_frame()->mutable_raw();
  raw->set_width(200);
  raw->set_height(100);
  raw->set_format(v1::RGB8);
  std::tie(code, message) = DetectError(too_many_pixels);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("--max-pixels"), std::string::npos) << message;

  v1::DetectRequest bad_threshold = RawFrame(3);
  bad_threshold.set_score_threshold(1.5f);
  std::tie(code, message) = DetectError(bad_threshold);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("score_threshold"), std::string::npos) << message;

  v1::DetectRequest unknown_model = RawFrame(3);
  unknown_model.set_model("yolo");
  std::tie(code, message) = DetectError(unknown_model);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(message.find("unknown model 'yolo'"), std::string::npos) << message;
  EXPECT_NE(message.find("fake"), std::string::npos) << message;

  // Still serving.
  v1::DetectResponse response;
  ASSERT_TRUE(Detect(RawFrame(9), &response).ok());
  EXPECT_EQ(response.detections(0).class_id(), 9);

  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_requests_total",
                        {{"model", "fake"}, {"code", "INVALID_ARGUMENT"}}),
            8);
  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_requests_total",
                        {{"model", ""}, {"code", "NOT_FOUND"}}),
            1);
  EXPECT_EQ(backend_->batches().size(), 1u);  // only the good frame reached the engine
}

TEST_F(FrontendTest, StreamAnswersEveryFrameTaggedAndEndsCleanlyAfterHalfClose) {
  StartServer();
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  constexpr int kFrames = 12;
  for (int id = 1; id <= kFrames; ++id) {
    v1::DetectRequest request = RawFrame(id, id % 2 ? "odd" : "even");
    if (id == 6) request.mutable_frame()->clear_data();  // a bad frame mid-stream
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());

  std::map<uint64_t, v1::DetectResponse> results;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    EXPECT_EQ(results.count(response.frame_id()), 0u) << "answered twice: " << response.frame_id();
    results[response.frame_id()] = response;
  }
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(results.size(), static_cast<size_t>(kFrames));
  for (int id = 1; id <= kFrames; ++id) {
    const v1::DetectResponse& result = results.at(id);
    EXPECT_EQ(result.camera_id(), id % 2 ? "odd" : "even");
    EXPECT_EQ(result.model(), "fake");
    if (id == 6) {
      EXPECT_EQ(result.error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(result.error().message().find("no image"), std::string::npos);
      EXPECT_EQ(result.detections_size(), 0);
    } else {
      EXPECT_FALSE(result.has_error()) << result.error().message();
      ASSERT_EQ(result.detections_size(), 1);
      EXPECT_EQ(result.detections(0).class_id(), id);
    }
  }
}

TEST_F(FrontendTest, FullQueueGivesResourceExhaustedAndCountsADrop) {
  ServerOptions options;
  options.workers = 1;
  options.max_batch = 1;
  options.queue_capacity = 1;
  StartServer(options);
  backend_->CloseGate();

  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  ASSERT_TRUE(stream->Write(RawFrame(1)));
  backend_->AwaitBlockedRuns(1);            // frame 1 holds the only worker
  ASSERT_TRUE(stream->Write(RawFrame(2)));  // fills the queue
  ASSERT_TRUE(stream->Write(RawFrame(3)));  // over capacity
  v1::DetectResponse response;
  ASSERT_TRUE(stream->Read(&response));  // frames 1 and 2 cannot finish yet
  EXPECT_EQ(response.frame_id(), 3u);
  EXPECT_EQ(response.error().code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(response.error().message().find("--queue-capacity"), std::string::npos);

  backend_->OpenGate();
  ASSERT_TRUE(stream->WritesDone());
  std::vector<uint64_t> answered;
  while (stream->Read(&response)) {
    EXPECT_FALSE(response.has_error());
    answered.push_back(response.frame_id());
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answered, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_dropped_requests_total",
                        {{"model", "fake"}, {"reason", "queue_full"}}),
            1);
  EXPECT_EQ(MetricValue(server_->metrics(), "lowbit_requests_total",
                        {{"model", "fake"}, {"code", "RESOURCE_EXHAUSTED"}}),
            1);
}

TEST_F(FrontendTest, ListModelsAndGetModelDescribeTheModel) {
  StartServer();
  grpc::ClientContext list_context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&list_context, {}, &list).ok());
  EXPECT_EQ(list.default_model(), "fake");
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).name(), "fake");
  EXPECT_EQ(list.models(0).version(), 3);
  EXPECT_EQ(list.models(0).input_width(), 64);
  EXPECT_EQ(list.models(0).input_height(), 48);
  EXPECT_EQ(list.models(0).num_classes(), 7);

  grpc::ClientContext get_context;
  v1::GetModelRequest get_request;
  get_request.set_model("fake");
  v1::GetModelResponse model;
  ASSERT_TRUE(stub_->GetModel(&get_context, get_request, &model).ok());
  EXPECT_EQ(model.config().input().width(), 64);
  ASSERT_EQ(model.layers_size(), 2);
  EXPECT_EQ(model.layers(0).name(), "conv0");
  EXPECT_EQ(model.layers(0).op(), "Conv");
  EXPECT_EQ(model.layers(0).output_shape_size(), 4);
  EXPECT_EQ(model.total_macs(), 1000);
  EXPECT_EQ(model.total_params(), 216);

  grpc::ClientContext missing_context;
  get_request.set_model("nope");
  grpc::Status missing = stub_->GetModel(&missing_context, get_request, &model);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(FrontendTest, ShutdownAnswersFramesAlreadyAccepted) {
  ServerOptions options;
  options.workers = 1;
  options.max_batch = 1;
  StartServer(options);
  backend_->CloseGate();

  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(stream->Write(RawFrame(id)));
  ASSERT_TRUE(stream->WritesDone());
  backend_->AwaitBlockedRuns(1);

  std::thread shutdown([&] { server_->Shutdown(std::chrono::seconds(30)); });
  backend_->OpenGate();
  std::vector<uint64_t> answered;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    EXPECT_FALSE(response.has_error()) << response.error().message();
    answered.push_back(response.frame_id());
  }
  EXPECT_TRUE(stream->Finish().ok());
  shutdown.join();
  EXPECT_EQ(answered, (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(FrontendTest, HealthReportsServingForTheServerAndTheDetectorService) {
  StartServer();
  std::string reply;
  const std::string check = "/grpc.health.v1.Health/Check";
  for (const std::string service : {"", "lowbit.v1.Detector"}) {
    grpc::Status status =
        testing::GenericUnary(channel_.get(), check, testing::HealthCheckRequest(service), &reply);
    ASSERT_TRUE(status.ok()) << "'" << service << "': " << status.error_message();
    EXPECT_EQ(reply, testing::HealthCheckResponse(1)) << "'" << service << "' not SERVING";
  }
  grpc::Status unknown = testing::GenericUnary(
      channel_.get(), check, testing::HealthCheckRequest("no.such.Service"), &reply);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(FrontendTest, ReflectionListsTheDetectorService) {
  StartServer();
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited.
  const std::string list_services("\x3a\x00", 2);
  std::string reply;
  grpc::Status status = testing::GenericExchange(
      channel_.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      list_services, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(reply.find("lowbit.v1.Detector"), std::string::npos);
  EXPECT_NE(reply.find("grpc.health.v1.Health"), std::string::npos);
}

TEST(ServerStartTest, UnknownDefaultModelIsRejected) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_address = "";
  options.default_model = "missing";
  std::vector<ModelSpec> specs;
  specs.push_back(FakeSpec(std::make_shared<FakeBackend>()));
  StatusOr<std::unique_ptr<LowbitServer>> server = LowbitServer::Start(options, std::move(specs));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--default-model 'missing'"), std::string::npos);
}

}  // namespace
}  // namespace lowbit::server
