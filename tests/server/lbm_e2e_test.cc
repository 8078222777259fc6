// lowbitd serving a model repository entry whose model_file is a compiled
// .lbm (written here from models/nanodet-g/model.onnx): the entry loads
// without compiling, detects what the ONNX entry detects in dog.jpg, and
// GetModel reports each layer's bits, kernel and weight bytes and where the
// kernels were chosen. Real server on 127.0.0.1; runs from the source tree.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "lowbit/engine/model.h"
#include "lowbit/v1/detector.grpc.pb.h"
#include "model_repository.h"
#include "server.h"

namespace lowbit::server {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot read " << path;
  return std::string(std::istreambuf_iterator<char>(file), {});
}

class LbmServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_ = fs::temp_directory_path() / ("lbm_repo_" + std::to_string(::getpid()));
    const fs::path entry = repository_ / "nanodet-lbm";
    fs::create_directories(entry);
    auto model = engine::Model::LoadOnnx("models/nanodet-g/model.onnx");
    ASSERT_TRUE(model.ok()) << model.status().ToString()
                            << " (deploy/models/fetch-models.sh installs models/)";
    ASSERT_TRUE(engine::WriteCompiledModel(**model, (entry / "model.lbm").string()).ok());
    fs::copy_file("models/nanodet-g/labels.txt", entry / "labels.txt");
    std::string config = ReadFile("models/nanodet-g/config.pbtxt");
    const std::string onnx_line = "model_file: \"model.onnx\"";
    ASSERT_NE(config.find(onnx_line), std::string::npos);
    config.replace(config.find(onnx_line), onnx_line.size(), "model_file: \"model.lbm\"");
    std::ofstream(entry / "config.pbtxt") << config;

    StatusOr<std::vector<ModelSpec>> models = LoadModelRepository(repository_.string());
    ASSERT_TRUE(models.ok()) << models.status().ToString();
    ServerOptions options;
    options.address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    StatusOr<std::unique_ptr<LowbitServer>> server =
        LowbitServer::Start(options, std::move(models).value());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    stub_ = v1::Detector::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(5));
    server_.reset();
    fs::remove_all(repository_);
  }

  fs::path repository_;
  std::unique_ptr<LowbitServer> server_;
  std::unique_ptr<v1::Detector::Stub> stub_;
};

TEST_F(LbmServingTest, ACompiledEntryDetectsAndReportsItsLayers) {
  v1::DetectRequest request;
  request.set_model("nanodet-lbm");
  request.mutable_frame()->set_encoded(ReadFile("data/images/dog.jpg"));
  v1::DetectResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status status = stub_->Detect(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<std::string> labels;
  for (const v1::Detection& detection : response.detections()) labels.push_back(detection.label());
  ASSERT_GE(labels.size(), 3u) << response.ShortDebugString();
  EXPECT_EQ(std::vector<std::string>(labels.begin(), labels.begin() + 3),
            (std::vector<std::string>{"bicycle", "dog", "truck"}));

  grpc::ClientContext model_context;
  v1::GetModelRequest model_request;
  model_request.set_model("nanodet-lbm");
  v1::GetModelResponse model;
  ASSERT_TRUE(stub_->GetModel(&model_context, model_request, &model).ok());
  EXPECT_EQ(model.config().model_file(), "model.lbm");
  EXPECT_TRUE(model.compiled().precompiled());
  EXPECT_EQ(model.compiled().source_model(), "models/nanodet-g/model.onnx");
  EXPECT_FALSE(model.compiled().kernel_isa().empty());
  int convs = 0;
  int64_t weight_bytes = 0;
  for (const v1::LayerInfo& layer : model.layers()) {
    weight_bytes += layer.weight_bytes();
    if (layer.op().rfind("Conv", 0) != 0) continue;
    ++convs;
    EXPECT_EQ(layer.kernel(), "xnnpack_f32") << layer.name();
    EXPECT_EQ(layer.weight_bits(), 32) << layer.name();
    EXPECT_EQ(layer.activation_bits(), 32) << layer.name();
    EXPECT_EQ(layer.weight_bytes(), layer.params() * 4) << layer.name();
  }
  EXPECT_EQ(convs, 34);
  EXPECT_EQ(model.total_weight_bytes(), weight_bytes);
  EXPECT_EQ(model.total_weight_bytes(), model.total_params() * 4);
}

}  // namespace
}  // namespace lowbit::server
