// What each committed fuzz regression (fuzz/regressions/<target>/) must now
// produce. The replay tests only show that an input does not crash, and in a
// plain gcc build undefined behaviour (an integer overflow) often does not
// crash; these assert the outcome of the fix, so each fails on the code
// before it.
#include <gtest/gtest.h>

#include <climits>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "format/lbm.h"
#include "kserve_tensors.h"
#include "lbm_checksums.h"
#include "lowbit/engine/detector.h"
#include "vision/config.h"

namespace {

std::vector<uint8_t> ReadRegression(const std::string& name) {
  const std::string path = "fuzz/regressions/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

TEST(FuzzRegressions, PngSidesWhoseProductPassesInt64AreOverTheLimit) {
  const std::vector<uint8_t> png = ReadRegression("image_decode/png-ihdr-sides-overflow-int64");
  auto header = lowbit::engine::ReadImageHeader(png.data(), png.size());
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("over the limit"), std::string::npos)
      << header.status().message();
}

TEST(FuzzRegressions, LbmValueShapeMustMatchItsConstant) {
  std::vector<uint8_t> lbm = ReadRegression("lbm_load/conv-weights-value-shape-not-constant-shape");
  ASSERT_TRUE(RecomputeLbmChecksums(lbm));
  auto file = lowbit::engine::format::ReadLbmBytes(lbm.data(), lbm.size());
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("malformed graph"), std::string::npos)
      << file.status().message();
  EXPECT_NE(file.status().message().find("shape"), std::string::npos) << file.status().message();
}

TEST(FuzzRegressions, GridCellsOfAStrideNearIntMax) {
  lowbit::v1::InputConfig input;
  input.set_width(416);
  input.set_height(416);
  EXPECT_EQ(lowbit::engine::vision::GridCells(input, INT_MAX), 1);
  EXPECT_EQ(lowbit::engine::vision::GridCells(input, 8), 52 * 52);
}

lowbit::server::ModelSpec TensorSpec() {
  lowbit::server::ModelSpec spec;
  spec.name = "tiny";
  lowbit::v1::InputConfig& input = *spec.config.mutable_input();
  input.set_tensor_name("input");
  input.set_width(32);
  input.set_height(32);
  input.set_layout(lowbit::v1::NCHW);
  spec.inputs = {{"input", {1, 3, 32, 32}}};
  return spec;
}

// The committed request carries zeros as a [1,3,32,32] FP32 input of model
// "nanodet-g" and the given timeout.
lowbit::StatusOr<lowbit::server::ParsedInferRequest> ParseRegression(const std::string& name) {
  const std::vector<uint8_t> bytes = ReadRegression(name);
  inference::ModelInferRequest request;
  EXPECT_TRUE(request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  return lowbit::server::ParseInferRequest(request, TensorSpec(), {});
}

TEST(FuzzRegressions, KServeTimeoutOutOfRangeIsRefused) {
  for (const char* name :
       {"kserve_infer/timeout-1e300-microseconds.pb", "kserve_infer/timeout-nan.pb"}) {
    auto parsed = ParseRegression(name);
    ASSERT_FALSE(parsed.ok()) << name;
    EXPECT_EQ(parsed.status().code(), lowbit::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("parameter 'timeout'"), std::string::npos)
        << parsed.status().message();
  }
}

TEST(FuzzRegressions, KServeTimeoutInRangeIsKept) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  for (int64_t d : {1, 3, 32, 32}) input->add_shape(d);
  request.add_raw_input_contents(std::string(3 * 32 * 32 * 4, '\0'));
  (*request.mutable_parameters())["timeout"].set_int64_param(250000);
  auto parsed = lowbit::server::ParseInferRequest(request, TensorSpec(), {});
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->timeout_us, 250000);
}

TEST(FuzzRegressions, KServeImageElementsStopAtTheShapesCount) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("IMAGE");
  input->set_datatype("BYTES");
  input->add_shape(1);
  // 100000 empty elements (4-byte zero lengths) for a shape of one.
  request.add_raw_input_contents(std::string(4 * 100000, '\0'));
  auto parsed = lowbit::server::ParseInferRequest(request, TensorSpec(), {});
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("more than the 1 element(s)"), std::string::npos)
      << parsed.status().message();
}

}  // namespace
