// The Detector service in-process on 127.0.0.1, over a real gRPC channel,
// with a fake engine: request validation and admission before decode, error
// codes, streaming semantics (per-camera order, latest frame wins, stale
// frames, flow control), deadlines and cancellation, metadata RPCs,
// metrics, health and the SIGTERM drain.
#include "frontend.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "fake_backend.h"
#include "generic_calls.h"
#include "metrics_test_util.h"
#include "server.h"

namespace lowbit::server {
namespace {

using testing::FakeBackend;
using testing::MetricValue;
using Ms = std::chrono::milliseconds;

// A raw BGR8 frame whose width is `id`: the fake engine's detection echoes it.
v1::DetectRequest RawFrame(int id, const std::string& camera = "", int height = 2) {
  v1::DetectRequest request;
  request.set_camera_id(camera);
  request.set_frame_id(static_cast<uint64_t>(id));
  v1::RawImage* raw = request.mutable_frame()->mutable_raw();
  raw->set_width(id);
  raw->set_height(height);
  raw->set_format(v1::BGR8);
  raw->set_pixels(std::string(3 * id * height, '\x7f'));
  return request;
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot read " << path << " (run from the source tree)";
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// A 623-byte JPEG whose frame header claims 5792x5792 pixels (a decode
// would need 100 MB): SOI, SOF0, SOS, filler scan data, EOI.
std::string JpegClaiming5792x5792() {
  std::string bytes = {'\xFF', '\xD8', '\xFF', '\xC0', '\x00', '\x11', '\x08', '\x16', '\xA0',
                       '\x16', '\xA0', '\x03', '\x01', '\x22', '\x00', '\x02', '\x11', '\x01',
                       '\x03', '\x11', '\x01', '\xFF', '\xDA', '\x00', '\x0C', '\x03', '\x01',
                       '\x00', '\x02', '\x11', '\x03', '\x11', '\x00', '\x3F', '\x00'};
  bytes.resize(621, '\x55');
  return bytes + "\xFF\xD9";
}

int64_t WallClockMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

double Dropped(ServerMetrics& metrics, const std::string& reason) {
  return std::max(0.0, MetricValue(metrics, "lowbit_dropped_requests_total",
                                   {{"model", "fake"}, {"reason", reason}}));
}

// Polls `condition` for up to 10 s.
bool Eventually(const std::function<bool()>& condition) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(Ms(2));
  }
  return condition();
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

  void TearDown() override {
    if (backend_) backend_->OpenGate();
  }

  // One worker running one frame at a time: a test decides, with the
  // fake's gate, when the server is busy. The gate starts closed.
  void StartOneWorkerServer(ServerOptions options = {}) {
    options.workers = 1;
    options.max_batch = 1;
    StartServer(options);
    backend_->CloseGate();
  }

  using Stream = grpc::ClientReaderWriter<v1::DetectRequest, v1::DetectResponse>;
  // A stream whose frame `id` holds the only worker (at the closed gate).
  std::unique_ptr<Stream> OccupyTheWorker(grpc::ClientContext* context, int id = 1) {
    auto stream = stub_->DetectStream(context);
    EXPECT_TRUE(stream->Write(RawFrame(id)));
    backend_->AwaitBlockedRuns(1);
    return stream;
  }
  // Half-closes `stream`, reads it to the end and returns its status.
  static grpc::Status EndStream(Stream& stream) {
    stream.WritesDone();
    v1::DetectResponse response;
    while (stream.Read(&response)) {
    }
    return stream.Finish();
  }

  grpc::Status Detect(const v1::DetectRequest& request, v1::DetectResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Detect(&context, request, response);
  }

  // The status code and message of a Detect that must fail.
  std::pair<grpc::StatusCode, std::string> DetectError(const v1::DetectRequest& request) {
    v1::DetectResponse response;
    grpc::Status status = Detect(request, &response);
    EXPECT_FALSE(status.ok());
    return {status.error_code(), status.error_message()};
  }

  ServerMetrics& metrics() { return server_->metrics(); }

  // A stream of frames 1, 2, ... without a camera (answered in read order)
  // while frame 1 is held on a worker: every later answer waits, unwritten,
  // behind it. Returns how many frames the server read before it stopped
  // reading, then releases frame 1 and checks every frame is answered.
  int FramesReadBehindAHeldFrame(ServerOptions options) {
    options.workers = 2;
    options.max_batch = 1;
    StartServer(options);
    backend_->HoldFrame(1);
    grpc::ClientContext context;
    auto stream = stub_->DetectStream(&context);
    constexpr int kFrames = 200;
    std::thread writer([&] {
      for (int id = 1; id <= kFrames; ++id) {
        if (!stream->Write(RawFrame(id))) break;
        // Paced, so each frame is answered before the next is read: the
        // pending results then grow one by one.
        std::this_thread::sleep_for(Ms(2));
      }
      stream->WritesDone();
    });
    backend_->AwaitBlockedRuns(1);
    int before = -1;
    int computed = 0;
    while (computed != before) {  // until no frame has run for 300 ms
      before = computed;
      std::this_thread::sleep_for(Ms(300));
      computed = static_cast<int>(backend_->batches().size());
    }
    backend_->ReleaseFrame(1);
    int answered = 0;
    v1::DetectResponse response;
    while (stream->Read(&response)) {
      EXPECT_FALSE(response.has_error()) << response.error().message();
      EXPECT_EQ(response.frame_id(), static_cast<uint64_t>(++answered));
    }
    writer.join();
    EXPECT_TRUE(stream->Finish().ok());
    EXPECT_EQ(answered, kFrames);
    return computed;
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
  request.set_capture_time_us(WallClockMicros() - 20'000);
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
  EXPECT_EQ(response.dropped(), v1::DROP_REASON_UNSPECIFIED);
  EXPECT_GE(response.timings().total_us(), response.timings().inference_us());
  EXPECT_GE(response.timings().frame_age_us(), 20'000);
  EXPECT_LT(response.timings().frame_age_us(), 20'000'000);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_requests_total", {{"model", "fake"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_request_duration_seconds", {{"model", "fake"}}), 1);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_stage_duration_seconds",
                        {{"model", "fake"}, {"stage", "inference"}}),
            1);
  EXPECT_EQ(
      MetricValue(metrics(), "lowbit_inferences_total", {{"model", "fake"}, {"version", "1"}}), 1);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_frame_age_seconds", {{"model", "fake"}}), 1);
}

TEST_F(FrontendTest, AnEncodedFrameIsDecodedOnAWorker) {
  StartServer();
  v1::DetectRequest request;
  request.mutable_frame()->set_encoded(ReadFile("data/images/dog.jpg"));
  v1::DetectResponse response;
  grpc::Status status = Detect(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.image_width(), 768);
  EXPECT_EQ(response.image_height(), 576);
  ASSERT_EQ(response.detections_size(), 1);
  EXPECT_EQ(response.detections(0).class_id(), 768);  // the fake saw the decoded image
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

  EXPECT_EQ(MetricValue(metrics(), "lowbit_requests_total",
                        {{"model", "fake"}, {"code", "INVALID_ARGUMENT"}}),
            8);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_requests_total", {{"model", ""}, {"code", "NOT_FOUND"}}),
            1);
  EXPECT_EQ(backend_->batches().size(), 1u);  // only the good frame reached the engine
}

// Hostile or careless requests: ids and names longer than any real one, a
// negative threshold, a pixel format that does not exist. Each is refused
// with a short message that does not echo the offending value.
TEST_F(FrontendTest, OverlongIdsNegativeThresholdsAndUnknownFormatsAreRefused) {
  StartServer();
  const std::string huge(1 << 20, 'c');

  v1::DetectRequest long_camera = RawFrame(3);
  long_camera.set_camera_id(huge);
  auto [code, message] = DetectError(long_camera);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("camera_id is 1048576 bytes long; at most 256"), std::string::npos)
      << message;
  EXPECT_LT(message.size(), 200u);

  v1::DetectRequest long_model = RawFrame(3);
  long_model.set_model(huge);
  std::tie(code, message) = DetectError(long_model);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("model is 1048576 bytes long"), std::string::npos) << message;

  // A stream answers the same, without echoing the camera id back.
  {
    grpc::ClientContext context;
    auto stream = stub_->DetectStream(&context);
    ASSERT_TRUE(stream->Write(long_camera));
    ASSERT_TRUE(stream->WritesDone());
    v1::DetectResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    EXPECT_TRUE(response.camera_id().empty());
    EXPECT_EQ(response.frame_id(), 3u);
    EXPECT_TRUE(stream->Finish().ok());
  }

  // An unknown model of allowed length: named in the message, but cut short.
  v1::DetectRequest unknown_model = RawFrame(3);
  unknown_model.set_model(std::string(200, 'm'));
  std::tie(code, message) = DetectError(unknown_model);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(message.find("... (200 bytes)"), std::string::npos) << message;

  v1::DetectRequest negative = RawFrame(3);
  negative.set_score_threshold(-0.5f);
  std::tie(code, message) = DetectError(negative);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("score_threshold must be in (0, 1]"), std::string::npos) << message;

  v1::DetectRequest unknown_format = RawFrame(3);
  unknown_format.mutable_frame()->mutable_raw()->set_format(static_cast<v1::PixelFormat>(7));
  std::tie(code, message) = DetectError(unknown_format);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("BGR8 or RGB8 (got 7)"), std::string::npos) << message;

  // A camera id at the limit is served.
  v1::DetectRequest longest = RawFrame(5);
  longest.set_camera_id(std::string(256, 'c'));
  v1::DetectResponse response;
  ASSERT_TRUE(Detect(longest, &response).ok());
  EXPECT_EQ(response.camera_id().size(), 256u);
  EXPECT_EQ(backend_->batches().size(), 1u);  // only that frame reached the engine
}

// Every frame failing at warning level (here: the engine fails) must not
// write a line each: a flood of them filled 138 MB of log in 8 s.
TEST_F(FrontendTest, WarningsAboutFailedFramesAreRateLimited) {
  StartServer();
  backend_->FailRuns(Status(StatusCode::kInternal, "the engine failed"));
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  for (int id = 0; id < 100; ++id) {
    v1::DetectResponse response;
    EXPECT_EQ(Detect(RawFrame(1 + id % 8), &response).error_code(), grpc::StatusCode::INTERNAL);
  }
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  int lines = 0;
  for (size_t at = text.find("frame not answered"); at != std::string::npos;
       at = text.find("frame not answered", at + 1)) {
    ++lines;
  }
  EXPECT_GE(lines, 1);
  EXPECT_LE(lines, 10) << text;
}

TEST_F(FrontendTest, ACorruptJpegIsRefusedFromItsHeaderAndNeverReachesAWorker) {
  StartServer();
  std::string jpeg = ReadFile("data/images/dog.jpg");
  ASSERT_GT(jpeg.size(), 1000u);
  jpeg.resize(jpeg.size() / 2);  // the scan data ends before the end-of-image marker
  v1::DetectRequest request;
  request.mutable_frame()->set_encoded(jpeg);
  auto [code, message] = DetectError(request);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("truncated JPEG"), std::string::npos) << message;
  EXPECT_TRUE(backend_->batches().empty());
  // Nothing was queued, decoded or run.
  EXPECT_EQ(MetricValue(metrics(), "lowbit_stage_duration_seconds",
                        {{"model", "fake"}, {"stage", "decode"}}),
            0);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_batch_size", {{"model", "fake"}}), 0);
}

// 32 concurrent 623-byte JPEGs whose headers claim 5792x5792 pixels (about
// 100 MB each when decoded; today's issue took the server to 5.8 GB).
void SendJpegBombs(v1::Detector::Stub* stub, std::atomic<int>* refused,
                   const std::string& expected_message) {
  const std::string bomb = JpegClaiming5792x5792();
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back([&] {
      v1::DetectRequest request;
      request.mutable_frame()->set_encoded(bomb);
      v1::DetectResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      grpc::Status status = stub->Detect(&context, request, &response);
      if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
          status.error_message().find(expected_message) != std::string::npos) {
        ++*refused;
      }
    });
  }
  for (std::thread& client : clients) client.join();
}

TEST_F(FrontendTest, HeadersClaimingHugeImagesAreRefusedFromTheHeaderUnderAPixelLimit) {
  ServerOptions options;
  options.max_pixels = 4096 * 4096;
  StartServer(options);
  std::atomic<int> refused{0};
  SendJpegBombs(stub_.get(), &refused, "--max-pixels");
  EXPECT_EQ(refused, 32);
  EXPECT_TRUE(backend_->batches().empty());
  EXPECT_EQ(MetricValue(metrics(), "lowbit_batch_size", {{"model", "fake"}}), 0);
}

TEST_F(FrontendTest, HeadersClaimingHugeImagesWithinThePixelLimitDecodeWithinTheBudget) {
  // 5792 * 5792 is just under the default --max-pixels: admitted, then
  // decoded on workers a few at a time (the default 512 MiB decode budget
  // holds 5 of them), where their scan data is found corrupt.
  StartServer();
  std::atomic<int> refused{0};
  SendJpegBombs(stub_.get(), &refused, "JPEG");
  EXPECT_EQ(refused, 32);
  EXPECT_TRUE(backend_->batches().empty());  // none reached the engine
}

TEST_F(FrontendTest, AnImageLargerThanTheDecodeBudgetIsRefusedBeforeDecoding) {
  ServerOptions options;
  options.max_pixels = 64LL * 1024 * 1024;  // the header passes the pixel limit...
  options.decode_memory_mb = 64;            // ...but its 100 MB of pixels never fit
  StartServer(options);
  v1::DetectRequest request;
  request.mutable_frame()->set_encoded(JpegClaiming5792x5792());
  auto [code, message] = DetectError(request);
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("budget"), std::string::npos) << message;
  EXPECT_TRUE(backend_->batches().empty());
}

TEST_F(FrontendTest, StreamAnswersEveryFrameTaggedAndEndsCleanlyAfterHalfClose) {
  StartServer();
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  constexpr int kFrames = 12;
  for (int id = 1; id <= kFrames; ++id) {
    v1::DetectRequest request = RawFrame(id, "cam-" + std::to_string(id));
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
    EXPECT_EQ(result.camera_id(), "cam-" + std::to_string(id));
    EXPECT_EQ(result.model(), "fake");
    if (id == 6) {
      EXPECT_EQ(result.error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(result.error().message().find("no image"), std::string::npos);
      EXPECT_EQ(result.dropped(), v1::DROP_REASON_UNSPECIFIED);
      EXPECT_EQ(result.detections_size(), 0);
    } else {
      EXPECT_FALSE(result.has_error()) << result.error().message();
      ASSERT_EQ(result.detections_size(), 1);
      EXPECT_EQ(result.detections(0).class_id(), id);
    }
  }
}

TEST_F(FrontendTest, ACamerasResultsAreWrittenInOrderEvenWhenALaterFrameFinishesFirst) {
  ServerOptions options;
  options.workers = 2;
  options.max_batch = 1;
  StartServer(options);
  backend_->HoldFrame(1);
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  ASSERT_TRUE(stream->Write(RawFrame(1, "door")));
  backend_->AwaitBlockedRuns(1);  // frame 1 runs on one worker, held
  ASSERT_TRUE(stream->Write(RawFrame(2, "door")));
  backend_->AwaitFinishedRuns(1);  // frame 2 ran on the other worker and finished first
  ASSERT_EQ(backend_->batches(), (std::vector<std::vector<int>>{{1}, {2}}));
  backend_->ReleaseFrame(1);
  ASSERT_TRUE(stream->WritesDone());
  std::vector<uint64_t> order;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    EXPECT_FALSE(response.has_error()) << response.error().message();
    order.push_back(response.frame_id());
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 2}));
}

TEST_F(FrontendTest, LatestFrameWinsAndEverySupersededFrameIsAnsweredInTheStream) {
  StartOneWorkerServer();
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  ASSERT_TRUE(stream->Write(RawFrame(1, "porch")));
  backend_->AwaitBlockedRuns(1);  // frame 1 holds the only worker
  for (int id = 2; id <= 4; ++id) ASSERT_TRUE(stream->Write(RawFrame(id, "porch")));
  ASSERT_TRUE(stream->Write(RawFrame(5, "yard")));
  // Frames 2 and 3 waited in the porch slot and were replaced.
  ASSERT_TRUE(Eventually([&] { return Dropped(metrics(), "superseded") == 2; }));
  backend_->OpenGate();
  ASSERT_TRUE(stream->WritesDone());

  std::vector<v1::DetectResponse> porch;
  v1::DetectResponse response;
  int yard = 0;
  while (stream->Read(&response)) {
    if (response.camera_id() == "yard") {
      ++yard;
      EXPECT_FALSE(response.has_error());
    } else {
      porch.push_back(response);
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(yard, 1);
  ASSERT_EQ(porch.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(porch[i].frame_id(), static_cast<uint64_t>(i + 1));
  EXPECT_FALSE(porch[0].has_error());
  for (int i : {1, 2}) {
    EXPECT_EQ(porch[i].dropped(), v1::SUPERSEDED);
    EXPECT_EQ(porch[i].error().code(), static_cast<int>(grpc::StatusCode::ABORTED));
    EXPECT_EQ(porch[i].detections_size(), 0);
  }
  EXPECT_FALSE(porch[3].has_error());
  ASSERT_EQ(porch[3].detections_size(), 1);
  EXPECT_EQ(porch[3].detections(0).class_id(), 4);
  for (const std::vector<int>& batch : backend_->batches()) {
    for (int id : batch) EXPECT_TRUE(id != 2 && id != 3) << "superseded frame " << id << " ran";
  }
  EXPECT_EQ(
      MetricValue(metrics(), "lowbit_requests_total", {{"model", "fake"}, {"code", "ABORTED"}}), 2);
}

TEST_F(FrontendTest, StaleFramesAreAnsweredStaleAndNeverComputed) {
  StartOneWorkerServer();
  backend_->OpenGate();
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);

  // Captured a second ago with a 500 ms limit: stale on arrival.
  v1::DetectRequest old_frame = RawFrame(1, "a");
  old_frame.set_capture_time_us(WallClockMicros() - 1'000'000);
  old_frame.set_max_frame_age_ms(500);
  ASSERT_TRUE(stream->Write(old_frame));
  v1::DetectResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.frame_id(), 1u);
  EXPECT_EQ(response.dropped(), v1::STALE);
  EXPECT_EQ(response.error().code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_NE(response.error().message().find("max_frame_age_ms"), std::string::npos);

  // Fresh, but it goes stale while the only worker is busy.
  backend_->CloseGate();
  ASSERT_TRUE(stream->Write(RawFrame(2, "b")));
  backend_->AwaitBlockedRuns(1);
  v1::DetectRequest aging = RawFrame(3, "c");
  aging.set_capture_time_us(WallClockMicros());
  aging.set_max_frame_age_ms(50);
  ASSERT_TRUE(stream->Write(aging));
  std::this_thread::sleep_for(Ms(150));
  backend_->OpenGate();

  // A frame with a generous limit is computed and reports its age.
  v1::DetectRequest fresh = RawFrame(4, "d");
  fresh.set_capture_time_us(WallClockMicros());
  fresh.set_max_frame_age_ms(60'000);
  ASSERT_TRUE(stream->Write(fresh));
  ASSERT_TRUE(stream->WritesDone());
  std::map<uint64_t, v1::DetectResponse> results;
  while (stream->Read(&response)) results[response.frame_id()] = response;
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[2].has_error());
  EXPECT_EQ(results[3].dropped(), v1::STALE);
  EXPECT_EQ(results[3].error().code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_FALSE(results[4].has_error()) << results[4].error().message();
  EXPECT_GT(results[4].timings().frame_age_us(), 0);
  EXPECT_EQ(backend_->batches(), (std::vector<std::vector<int>>{{2}, {4}}));
  EXPECT_EQ(Dropped(metrics(), "stale"), 2);
}

TEST_F(FrontendTest, AFrameWhoseRunOutlastsItsMaxAgeIsAnsweredStale) {
  StartOneWorkerServer();
  backend_->CloseGate();
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  // Fresh when its batch starts; the run then takes longer than the limit.
  v1::DetectRequest frame = RawFrame(1, "a");
  frame.set_capture_time_us(WallClockMicros());
  frame.set_max_frame_age_ms(100);
  ASSERT_TRUE(stream->Write(frame));
  backend_->AwaitBlockedRuns(1);
  std::this_thread::sleep_for(Ms(200));
  backend_->OpenGate();
  ASSERT_TRUE(stream->WritesDone());
  v1::DetectResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.dropped(), v1::STALE);
  EXPECT_EQ(response.error().code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_NE(response.error().message().find("had its result"), std::string::npos);
  EXPECT_EQ(response.detections_size(), 0);
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(backend_->batches(), (std::vector<std::vector<int>>{{1}}));
  EXPECT_EQ(Dropped(metrics(), "stale"), 1);
  // Computed, so counted as an inference although withheld.
  EXPECT_EQ(
      MetricValue(metrics(), "lowbit_inferences_total", {{"model", "fake"}, {"version", "1"}}), 1);
}

TEST_F(FrontendTest, AStreamAtItsLimitIsNotReadSoTheSenderBlocksAndNothingIsDropped) {
  ServerOptions options;
  options.max_pending_per_stream = 4;
  StartOneWorkerServer(options);

  // 256 KiB frames: a few fill gRPC's flow-control windows.
  constexpr int kFrames = 200;
  constexpr int kHeight = 256;
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int id = 1; id <= kFrames; ++id) {
      if (!stream->Write(RawFrame(340 + id, "", kHeight))) break;
      ++written;
    }
    stream->WritesDone();
  });
  backend_->AwaitBlockedRuns(1);
  // The server holds 4 frames (1 running, 3 waiting) and reads no more; the
  // writer stalls once the windows are full.
  int stalled_at = -1;
  for (int i = 0; i < 100; ++i) {
    const int before = written;
    std::this_thread::sleep_for(Ms(50));
    if (written == before && written < kFrames) {
      stalled_at = written;
      break;
    }
  }
  ASSERT_GE(stalled_at, 0) << "the writer never blocked";
  EXPECT_LT(stalled_at, kFrames);
  EXPECT_LE(MetricValue(metrics(), "lowbit_queue_depth", {{"model", "fake"}}), 3);
  EXPECT_EQ(backend_->batches().size(), 1u);

  backend_->OpenGate();
  int answered = 0;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    EXPECT_FALSE(response.has_error()) << response.error().message();
    // One camera (""): read order.
    EXPECT_EQ(response.frame_id(), static_cast<uint64_t>(340 + ++answered));
  }
  writer.join();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answered, kFrames);
  for (const char* reason : {"queue_full", "superseded", "stale", "deadline", "cancelled"}) {
    EXPECT_EQ(Dropped(metrics(), reason), 0) << reason;
  }
}

TEST_F(FrontendTest, AStreamsUnwrittenResultsStopItsReadsAtItsByteLimit) {
  ServerOptions frame_limited;
  frame_limited.max_pending_per_stream = 64;
  const int by_frames = FramesReadBehindAHeldFrame(frame_limited);
  // 64 pending: frame 1 (held) and 63 answered behind it.
  EXPECT_EQ(by_frames, 64);
  server_.reset();
  // 1 KiB of results: a few dozen bytes each, so about 20 answered behind
  // frame 1 before reading stops; nothing is dropped for it.
  ServerOptions byte_limited = frame_limited;
  byte_limited.max_pending_kb_per_stream = 1;
  const int by_bytes = FramesReadBehindAHeldFrame(byte_limited);
  EXPECT_LT(by_bytes, 40) << "the byte limit did not stop the reads";
  EXPECT_GT(by_bytes, 2);
}

TEST_F(FrontendTest, StreamsOverMaxStreamsAreRefusedUntilOneEnds) {
  ServerOptions options;
  options.max_streams = 2;
  StartServer(options);
  // Two streams, each answered once: both hold their slots.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Stream>> open;
  for (int id = 1; id <= 2; ++id) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    open.push_back(stub_->DetectStream(contexts.back().get()));
    ASSERT_TRUE(open.back()->Write(RawFrame(id)));
    v1::DetectResponse response;
    ASSERT_TRUE(open.back()->Read(&response));
    EXPECT_FALSE(response.has_error());
  }
  {
    grpc::ClientContext context;
    auto third = stub_->DetectStream(&context);
    third->Write(RawFrame(3));  // may fail: the call is already over
    const grpc::Status status = EndStream(*third);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(status.error_message().find("--max-streams"), std::string::npos)
        << status.error_message();
  }
  // Unary calls are not streams: still served.
  v1::DetectResponse unary;
  EXPECT_TRUE(Detect(RawFrame(4), &unary).ok());
  // One stream ends: its slot is free again (released when gRPC is done
  // with the call, shortly after the client's Finish).
  EXPECT_TRUE(EndStream(*open.front()).ok());
  EXPECT_TRUE(Eventually([&] {
    grpc::ClientContext context;
    auto again = stub_->DetectStream(&context);
    if (!again->Write(RawFrame(5))) return EndStream(*again).ok() && false;
    v1::DetectResponse response;
    const bool answered = again->Read(&response) && !response.has_error();
    return EndStream(*again).ok() && answered;
  }));
  EXPECT_TRUE(EndStream(*open.back()).ok());
}

TEST_F(FrontendTest, AFiveMillisecondDeadlineOnABusyServerFailsFastAndIsNeverComputed) {
  StartOneWorkerServer();
  grpc::ClientContext stream_context;
  auto stream = OccupyTheWorker(&stream_context);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + Ms(5));
  v1::DetectResponse response;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub_->Detect(&context, RawFrame(2), &response);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(took, Ms(500));
  // The server ended the call too (its deadline passed); the frame waits.
  ASSERT_TRUE(Eventually([&] { return server_->detector().calls_in_progress() == 1; }));

  backend_->OpenGate();
  EXPECT_TRUE(EndStream(*stream).ok());
  ASSERT_TRUE(Eventually([&] { return Dropped(metrics(), "deadline") == 1; }));
  EXPECT_EQ(backend_->batches(), (std::vector<std::vector<int>>{{1}}));
  EXPECT_EQ(MetricValue(metrics(), "lowbit_requests_total",
                        {{"model", "fake"}, {"code", "DEADLINE_EXCEEDED"}}),
            1);
}

TEST_F(FrontendTest, CancelledCallsFramesAreDroppedUnrun) {
  StartOneWorkerServer();
  grpc::ClientContext busy_context;
  auto busy = OccupyTheWorker(&busy_context);

  // A unary call and a stream whose frames wait, then both are cancelled.
  grpc::ClientContext unary_context;
  v1::DetectResponse unary_response;
  grpc::Status unary_status;
  std::atomic<bool> unary_done{false};
  // The callback API borrows the request: it must outlive the call.
  const v1::DetectRequest unary_request = RawFrame(2);
  stub_->async()->Detect(&unary_context, &unary_request, &unary_response,
                         [&](grpc::Status status) {
                           unary_status = status;
                           unary_done = true;
                         });
  grpc::ClientContext stream_context;
  auto stream = stub_->DetectStream(&stream_context);
  ASSERT_TRUE(stream->Write(RawFrame(3, "x")));
  ASSERT_TRUE(stream->Write(RawFrame(4, "y")));
  ASSERT_TRUE(Eventually([&] {
    return MetricValue(metrics(), "lowbit_queue_depth", {{"model", "fake"}}) == 3;
  }));
  unary_context.TryCancel();
  stream_context.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(Eventually([&] { return unary_done.load(); }));
  EXPECT_EQ(unary_status.error_code(), grpc::StatusCode::CANCELLED);
  // The server has seen both cancellations once their calls are done.
  ASSERT_TRUE(Eventually([&] { return server_->detector().calls_in_progress() == 1; }));

  backend_->OpenGate();
  EXPECT_TRUE(EndStream(*busy).ok());
  ASSERT_TRUE(Eventually([&] { return Dropped(metrics(), "cancelled") == 3; }))
      << Dropped(metrics(), "cancelled") << " " << backend_->frames_run();
  EXPECT_EQ(backend_->batches(), (std::vector<std::vector<int>>{{1}}));
}

TEST_F(FrontendTest, FullQueueIsAnsweredInTheStreamAsQueueFull) {
  ServerOptions options;
  options.queue_capacity = 1;
  StartOneWorkerServer(options);

  grpc::ClientContext context_a;
  auto stream_a = OccupyTheWorker(&context_a);
  // Another stream fills the one slot (this stream's own limit is 1).
  grpc::ClientContext context_b;
  auto stream_b = stub_->DetectStream(&context_b);
  ASSERT_TRUE(stream_b->Write(RawFrame(2)));
  ASSERT_TRUE(Eventually([&] {
    return MetricValue(metrics(), "lowbit_queue_depth", {{"model", "fake"}}) == 1;
  }));
  grpc::ClientContext context_c;
  auto stream_c = stub_->DetectStream(&context_c);
  ASSERT_TRUE(stream_c->Write(RawFrame(3)));  // over capacity
  v1::DetectResponse response;
  ASSERT_TRUE(stream_c->Read(&response));
  EXPECT_EQ(response.frame_id(), 3u);
  EXPECT_EQ(response.dropped(), v1::QUEUE_FULL);
  EXPECT_EQ(response.error().code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(response.error().message().find("--queue-capacity"), std::string::npos)
      << response.error().message();

  backend_->OpenGate();
  for (auto* stream : {stream_a.get(), stream_b.get(), stream_c.get()}) {
    ASSERT_TRUE(stream->WritesDone());
    while (stream->Read(&response)) EXPECT_FALSE(response.has_error());
    EXPECT_TRUE(stream->Finish().ok());
  }
  EXPECT_EQ(Dropped(metrics(), "queue_full"), 1);
  EXPECT_EQ(MetricValue(metrics(), "lowbit_requests_total",
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
  EXPECT_EQ(list.models(0).version(), 1);  // the first load of this name
  EXPECT_EQ(list.models(0).state(), v1::READY);
  EXPECT_EQ(list.models(0).state_message(), "");
  EXPECT_EQ(list.models(0).input_width(), 64);
  EXPECT_EQ(list.models(0).input_height(), 48);
  EXPECT_EQ(list.models(0).num_classes(), 7);

  grpc::ClientContext get_context;
  v1::GetModelRequest get_request;
  get_request.set_model("fake");
  v1::GetModelResponse model;
  ASSERT_TRUE(stub_->GetModel(&get_context, get_request, &model).ok());
  EXPECT_EQ(model.config().input().width(), 64);
  EXPECT_EQ(model.config().version(), 3);
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

TEST_F(FrontendTest, DrainAnswersEveryAcceptedFrameThenEndsStreamsUnavailable) {
  StartOneWorkerServer();

  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(stream->Write(RawFrame(id)));
  backend_->AwaitBlockedRuns(1);
  ASSERT_TRUE(Eventually([&] {
    return MetricValue(metrics(), "lowbit_queue_depth", {{"model", "fake"}}) == 2;
  }));

  std::thread shutdown([&] { server_->Shutdown(std::chrono::seconds(30)); });
  ASSERT_TRUE(Eventually([&] { return server_->drain().draining(); }));
  // Frames sent after the drain began are not read (or answered SHUTTING_DOWN).
  for (int id = 4; id <= 6; ++id) stream->Write(RawFrame(id));
  // New calls are refused while the stream drains.
  v1::DetectResponse refused;
  grpc::Status new_call = Detect(RawFrame(9), &refused);
  EXPECT_EQ(new_call.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(new_call.error_message().find("shutting down"), std::string::npos);

  backend_->OpenGate();
  std::vector<uint64_t> answered;
  v1::DetectResponse response;
  while (stream->Read(&response)) {
    if (response.frame_id() <= 3) {
      EXPECT_FALSE(response.has_error()) << response.error().message();
    } else {
      EXPECT_EQ(response.dropped(), v1::SHUTTING_DOWN);
    }
    answered.push_back(response.frame_id());
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  shutdown.join();
  ASSERT_GE(answered.size(), 3u);
  EXPECT_EQ(std::vector<uint64_t>(answered.begin(), answered.begin() + 3),
            (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(backend_->batches(), (std::vector<std::vector<int>>{{1}, {2}, {3}}));
}

TEST_F(FrontendTest, ShutdownOfAHalfClosedStreamEndsItOk) {
  StartOneWorkerServer();
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(stream->Write(RawFrame(id)));
  ASSERT_TRUE(stream->WritesDone());
  backend_->AwaitBlockedRuns(1);
  ASSERT_TRUE(Eventually([&] {
    return MetricValue(metrics(), "lowbit_queue_depth", {{"model", "fake"}}) == 2;
  }));

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

TEST_F(FrontendTest, HealthReportsServingForTheServerAndEachService) {
  StartServer();
  std::string reply;
  const std::string check = "/grpc.health.v1.Health/Check";
  for (const std::string service :
       {"", "lowbit.v1.Detector", "lowbit.v1.Admin", "inference.GRPCInferenceService"}) {
    grpc::Status status =
        testing::GenericUnary(channel_.get(), check, testing::HealthCheckRequest(service), &reply);
    ASSERT_TRUE(status.ok()) << "'" << service << "': " << status.error_message();
    EXPECT_EQ(reply, testing::HealthCheckResponse(1)) << "'" << service << "' not SERVING";
  }
  grpc::Status unknown = testing::GenericUnary(
      channel_.get(), check, testing::HealthCheckRequest("no.such.Service"), &reply);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(FrontendTest, ReflectionListsTheServices) {
  StartServer();
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited.
  const std::string list_services("\x3a\x00", 2);
  std::string reply;
  grpc::Status status = testing::GenericExchange(
      channel_.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      list_services, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  for (const char* service : {"lowbit.v1.Detector", "lowbit.v1.Admin",
                              "inference.GRPCInferenceService", "grpc.health.v1.Health"}) {
    EXPECT_NE(reply.find(service), std::string::npos) << service;
  }
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
  EXPECT_NE(server.status().message().find("--default-model missing"), std::string::npos)
      << server.status().message();
}

}  // namespace
}  // namespace lowbit::server
