// Memory planning, .npy files and Session argument checking.
#include <cstdio>
#include <fstream>

#include "engine_test_util.h"
#include "lowbit/engine/npy.h"
#include "runtime/memory_plan.h"

namespace lowbit::engine {
namespace {

using runtime::BufferRequest;
using runtime::PlanMemory;

bool Overlap(int64_t a, int64_t a_size, int64_t b, int64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

TEST(MemoryPlanTest, LiveBuffersNeverShareBytesAndDeadOnesAreReused) {
  // A chain a -> b -> c -> d: each buffer lives from its step to the next.
  const std::vector<BufferRequest> requests = {
      {1000, -1, 0}, {2000, 0, 1}, {1000, 1, 2}, {2000, 2, 3}, {64, 0, 3}};
  const auto plan = PlanMemory(requests);
  for (size_t i = 0; i < requests.size(); ++i)
    for (size_t j = i + 1; j < requests.size(); ++j) {
      const bool alive_together = !(requests[i].last_step < requests[j].first_step ||
                                    requests[j].last_step < requests[i].first_step);
      if (alive_together) {
        EXPECT_FALSE(
            Overlap(plan.offsets[i], requests[i].bytes, plan.offsets[j], requests[j].bytes))
            << i << " and " << j;
      }
    }
  for (int64_t offset : plan.offsets) EXPECT_EQ(offset % 64, 0);
  // Without reuse the arena would need 6064 bytes; two 2000-byte buffers with
  // disjoint lifetimes share memory.
  EXPECT_EQ(plan.offsets[1], plan.offsets[3]);
  EXPECT_LT(plan.arena_bytes, 6064);
}

TEST(NpyTest, RoundTripsShapesAndValues) {
  const std::string path = ::testing::TempDir() + "/lowbit_npy_test.npy";
  for (const Shape& shape : {Shape{2, 3, 4}, Shape{5}, Shape{}}) {
    Tensor tensor(shape);
    for (int64_t i = 0; i < tensor.size(); ++i) tensor.data()[i] = 0.5f * i - 3;
    ASSERT_TRUE(WriteNpy(path, tensor).ok());
    auto read = ReadNpy(path);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    EXPECT_EQ(read->shape(), shape);
    EXPECT_EQ(read->values(), tensor.values());
  }
  std::remove(path.c_str());
}

TEST(NpyTest, RejectsOtherDtypesAndTruncation) {
  const std::string path = ::testing::TempDir() + "/lowbit_npy_bad.npy";
  auto write = [&](const std::string& header, size_t data_bytes) {
    std::string padded = header;
    padded.append(64 - (10 + padded.size() + 1) % 64, ' ');
    padded += '\n';
    std::ofstream file(path, std::ios::binary);
    file.write("\x93NUMPY\x01\x00", 8);
    const char length[2] = {static_cast<char>(padded.size() & 0xff),
                            static_cast<char>(padded.size() >> 8)};
    file.write(length, 2);
    file << padded << std::string(data_bytes, '\0');
  };
  write("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
  auto f64 = ReadNpy(path);
  ASSERT_FALSE(f64.ok());
  EXPECT_NE(f64.status().message().find("float32"), std::string::npos);
  write("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 12);
  auto truncated = ReadNpy(path);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("needs 16"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_EQ(ReadNpy(path).status().code(), StatusCode::kNotFound);
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::OnnxBuilder builder;
    builder.Input("x", {-1, 2, 3});
    builder.Node("Relu", {"x"}, {"y"});
    builder.Output("y");
    auto model = builder.Compile();
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = *model;
  }
  std::shared_ptr<const runtime::CompiledModel> model_;
};

TEST_F(SessionTest, ReportsBadInputsAsErrors) {
  auto session = model_->CreateSession({});
  ASSERT_TRUE(session.ok());
  std::vector<NamedTensor> outputs;
  Status wrong_name = (*session)->Run({{"z", Tensor({1, 2, 3})}}, &outputs);
  EXPECT_EQ(wrong_name.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_name.message().find("'z'"), std::string::npos);
  Status wrong_shape = (*session)->Run({{"x", Tensor({1, 3, 2})}}, &outputs);
  EXPECT_EQ(wrong_shape.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_shape.message().find("[N,2,3]"), std::string::npos);
  Status none = (*session)->Run({}, &outputs);
  EXPECT_EQ(none.code(), StatusCode::kInvalidArgument);
}

TEST_F(SessionTest, RejectsZeroThreadsAndRunsAnyBatchSize) {
  SessionOptions options;
  options.threads = 0;
  EXPECT_EQ(model_->CreateSession(options).status().code(), StatusCode::kInvalidArgument);
  options.threads = 2;
  auto session = model_->CreateSession(options);
  ASSERT_TRUE(session.ok());
  for (int64_t batch : {1, 4, 2}) {
    Tensor input({batch, 2, 3});
    for (int64_t i = 0; i < input.size(); ++i) input.data()[i] = (i % 2 ? 1.0f : -1.0f) * i;
    std::vector<NamedTensor> outputs;
    ASSERT_TRUE((*session)->Run({{"x", input}}, &outputs).ok());
    ASSERT_EQ(outputs.size(), 1u);
    EXPECT_EQ(outputs[0].name, "y");
    EXPECT_EQ(outputs[0].tensor.shape(), (Shape{batch, 2, 3}));
    for (int64_t i = 0; i < input.size(); ++i)
      EXPECT_EQ(outputs[0].tensor.data()[i], std::max(0.0f, input.data()[i]));
  }
}

}  // namespace
}  // namespace lowbit::engine
