// End to end: lowbitd's server in-process on 127.0.0.1 with the real
// nanodet-g model from the repository's models/, called through a gRPC stub
// with a real photo. Runs from the source tree (CTest's working directory).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "lowbit/v1/detector.grpc.pb.h"
#include "model_repository.h"
#include "server.h"

namespace lowbit::server {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot read " << path;
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// The body of GET http://127.0.0.1:port/path (HTTP/1.0, whole response).
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  EXPECT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  close(fd);
  return response;
}

struct Expected {
  std::string label;
  float x_min, y_min, x_max, y_max;
};

class EndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The repository as lowbitd loads it (ModelRegistry::Create).
    ServerOptions options;
    options.model_repo = "models";
    options.address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    StatusOr<std::unique_ptr<LowbitServer>> server = LowbitServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    if (server_) server_->Shutdown(std::chrono::seconds(5));
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Detector::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  }

  static LowbitServer* server_;
  std::unique_ptr<v1::Detector::Stub> stub_;
};

LowbitServer* EndToEndTest::server_ = nullptr;

TEST_F(EndToEndTest, DetectFindsTheBicycleTheDogAndTheTruckInDogJpg) {
  v1::DetectRequest request;
  request.set_model("nanodet-g");
  request.set_camera_id("porch");
  request.set_frame_id(42);
  request.mutable_frame()->set_encoded(ReadFile("data/images/dog.jpg"));
  v1::DetectResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status status = stub_->Detect(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  EXPECT_EQ(response.model(), "nanodet-g");
  EXPECT_EQ(response.camera_id(), "porch");
  EXPECT_EQ(response.frame_id(), 42u);
  EXPECT_EQ(response.image_width(), 768);
  EXPECT_EQ(response.image_height(), 576);
  EXPECT_EQ(response.batch_size(), 1);
  EXPECT_GT(response.timings().inference_us(), 0);
  EXPECT_GE(response.timings().total_us(),
            response.timings().decode_us() + response.timings().inference_us());

  // ONNX Runtime's answers on a faithful FP32 conversion.
  const std::vector<Expected> expected = {
      {"bicycle", 117, 130, 570, 424}, {"dog", 131, 222, 359, 542}, {"truck", 465, 86, 693, 166}};
  // The same 6-pixel bound as the engine and client tests: the left edge of the
  // bicycle lands at 122.5 with OpenCV's bilinear resize.
  constexpr float kTolerancePixels = 6;
  for (const Expected& want : expected) {
    bool found = false;
    for (const v1::Detection& detection : response.detections()) {
      if (detection.label() != want.label) continue;
      found = true;
      EXPECT_GE(detection.score(), 0.35f);
      EXPECT_NEAR(detection.box().x_min(), want.x_min, kTolerancePixels) << want.label;
      EXPECT_NEAR(detection.box().y_min(), want.y_min, kTolerancePixels) << want.label;
      EXPECT_NEAR(detection.box().x_max(), want.x_max, kTolerancePixels) << want.label;
      EXPECT_NEAR(detection.box().y_max(), want.y_max, kTolerancePixels) << want.label;
    }
    EXPECT_TRUE(found) << "no " << want.label << " in " << response.ShortDebugString();
  }
  for (const v1::Detection& detection : response.detections()) {
    EXPECT_GE(detection.score(), 0.35f) << "below the model's configured threshold";
  }

  const std::string metrics = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("200 OK"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("lowbit_requests_total{code=\"OK\",model=\"nanodet-g\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("lowbit_stage_duration_seconds_count{model=\"nanodet-g\",stage="
                         "\"inference\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(EndToEndTest, StreamedFramesOfManyCamerasAreBatchedAndEachAnswered) {
  const std::string dog = ReadFile("data/images/dog.jpg");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->DetectStream(&context);
  constexpr int kFrames = 8;
  for (int id = 0; id < kFrames; ++id) {
    v1::DetectRequest request;  // default model: nanodet-g
    request.set_camera_id("camera-" + std::to_string(id));
    request.set_frame_id(id);
    request.mutable_frame()->set_encoded(dog);
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());
  std::map<uint64_t, int> detections_per_frame;
  int batched = 0;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    EXPECT_FALSE(response.has_error()) << response.error().message();
    EXPECT_EQ(response.model(), "nanodet-g");
    EXPECT_GE(response.batch_size(), 1);
    EXPECT_LE(response.batch_size(), 4);
    if (response.batch_size() > 1) ++batched;
    detections_per_frame[response.frame_id()] = response.detections_size();
  }
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(detections_per_frame.size(), static_cast<size_t>(kFrames));
  EXPECT_GT(batched, 0) << "8 frames at once never shared an engine call";
  // Batching must not change the answer: same image, same detections.
  for (const auto& [frame, count] : detections_per_frame) {
    EXPECT_EQ(count, detections_per_frame.begin()->second) << "frame " << frame;
  }
  EXPECT_GE(detections_per_frame.begin()->second, 3);
}

TEST_F(EndToEndTest, OneCamerasBurstIsAnsweredInOrderWithTheLatestFrameComputed) {
  const std::string dog = ReadFile("data/images/dog.jpg");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->DetectStream(&context);
  constexpr int kFrames = 12;
  for (int id = 0; id < kFrames; ++id) {
    v1::DetectRequest request;
    request.set_camera_id("porch");
    request.set_frame_id(id);
    request.mutable_frame()->set_encoded(dog);
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());
  std::vector<uint64_t> order;
  int superseded = 0;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    order.push_back(response.frame_id());
    if (response.dropped() == v1::SUPERSEDED) {
      ++superseded;
      EXPECT_EQ(response.error().code(), static_cast<int>(grpc::StatusCode::ABORTED));
    } else {
      EXPECT_FALSE(response.has_error()) << response.error().message();
      EXPECT_GE(response.detections_size(), 3);
    }
  }
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(order.size(), static_cast<size_t>(kFrames));
  for (int id = 0; id < kFrames; ++id) EXPECT_EQ(order[id], static_cast<uint64_t>(id));
  // A dozen frames arrive far faster than the workers run them (tens of ms
  // each): a camera has one waiting slot, so waiting frames are replaced.
  EXPECT_GT(superseded, 0);
  EXPECT_EQ(response.frame_id(), static_cast<uint64_t>(kFrames - 1));
  EXPECT_FALSE(response.has_error()) << "the newest frame must be computed";
}

TEST_F(EndToEndTest, GetModelReportsTheCompiledLayers) {
  grpc::ClientContext context;
  v1::GetModelRequest request;
  request.set_model("nanodet-g");
  v1::GetModelResponse response;
  ASSERT_TRUE(stub_->GetModel(&context, request, &response).ok());
  EXPECT_EQ(response.config().input().width(), 416);
  EXPECT_GT(response.layers_size(), 10);
  EXPECT_GT(response.total_macs(), 1'000'000'000);  // about 2.09 G multiply-adds
}

}  // namespace
}  // namespace lowbit::server
