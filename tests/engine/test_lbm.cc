// The compiled model file (.lbm): exact round trips of small graphs with
// every dtype, precision and attribute type; compiled models through a file
// give the same layers and the same outputs bit for bit; and each kind of
// damaged or foreign file is refused with the message that names it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine_test_util.h"
#include "format/lbm.h"
#include "lbm_test_util.h"
#include "runtime/compiled_model.h"

namespace lowbit::engine {
namespace {

using format::LbmMetadata;
using testing::ExpectSameGraph;
using ::testing::HasSubstr;

// A graph using every dtype, precision form and attribute type. It is not
// runnable (the reader checks structure, not semantics), so it also holds
// values a compiled graph would not (i64 activations, unknown shapes).
ir::Graph EveryKindGraph() {
  ir::Graph g;
  g.opset = 21;
  ir::Value x;
  x.name = "x";
  x.shape = {1, 4, 5, 6};
  x.shape_known = true;
  x.storage_perm = {0, 2, 3, 1};
  x.precision = ir::Precision::IntegerCodes(4, false, 0.0625f, 7);
  x.dtype = ir::DataType::kUInt8;
  const int x_id = g.AddValue(x);
  g.inputs = {x_id};

  // Floats that a lossy encoding would change: NaN payload, -0, denormals,
  // infinities, the extremes.
  std::vector<float> floats = {0.0f,
                               -0.0f,
                               1.0f / 3.0f,
                               std::numeric_limits<float>::denorm_min(),
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::lowest()};
  uint32_t nan_bits = 0x7fc01234u;
  float nan;
  std::memcpy(&nan, &nan_bits, 4);
  floats.push_back(nan);
  const int f32 = g.AddConstant("w_f32", ir::HostTensor::Floats({3, 3}, floats));
  const int i64 =
      g.AddConstant("c_i64", ir::HostTensor::Ints({4}, {std::numeric_limits<int64_t>::min(), -1, 0,
                                                        std::numeric_limits<int64_t>::max()}));
  const int i32 = g.AddConstant(
      "c_i32", ir::HostTensor::Ints({2, 2}, {INT32_MIN, -7, 0, INT32_MAX}, ir::DataType::kInt32));
  const int i8 =
      g.AddConstant("c_i8", ir::HostTensor::Ints({3}, {-128, -1, 127}, ir::DataType::kInt8));
  const int u8 =
      g.AddConstant("c_u8", ir::HostTensor::Ints({3}, {0, 128, 255}, ir::DataType::kUInt8));
  const int boolean =
      g.AddConstant("c_bool", ir::HostTensor::Ints({2}, {1, 0}, ir::DataType::kBool));
  ir::AlignedBytes packed(100);  // not a multiple of 64: the next constant re-aligns
  for (size_t i = 0; i < packed.size(); ++i) packed.data()[i] = static_cast<uint8_t>(i * 37 + 11);
  const int bytes = g.AddConstant("w_packed", ir::HostTensor::Packed(std::move(packed)));
  const int scalar = g.AddConstant("c_scalar", ir::HostTensor::Floats({}, {2.5f}));
  const int empty = g.AddConstant("c_empty", ir::HostTensor::Ints({0}, {}));
  // Per-axis precision on a constant.
  g.values[i8].precision.kind = ir::Precision::Kind::kIntegerCodes;
  g.values[i8].precision.bits = 8;
  g.values[i8].precision.axis = 0;
  g.values[i8].precision.scales = {0.5f, 0.25f, 0.125f};
  g.values[i8].precision.zero_points = {0, -3, 5};

  ir::Value y;
  y.name = "y";
  y.shape = {1, 4, 5, 6};
  y.shape_known = true;
  y.dtype = ir::DataType::kFloat32;
  const int y_id = g.AddValue(y);
  ir::Value unknown;
  unknown.name = "second output, unknown shape";
  unknown.dtype = ir::DataType::kInt64;
  const int unknown_id = g.AddValue(unknown);

  ir::Node node;
  node.op_type = "lowbit.Everything";
  node.name = "every/attribute";
  node.inputs = {x_id, f32, ir::kNoValue, i64, i32, i8, u8, boolean, bytes, scalar, empty};
  node.outputs = {y_id, unknown_id};
  node.attributes["an_int"] = ir::Attribute::Int(-(int64_t{1} << 40));
  node.attributes["a_float"] = ir::Attribute::Float(nan);
  node.attributes["a_string"] = ir::Attribute::String(std::string("with\0nul and \xff", 14));
  node.attributes["empty_string"] = ir::Attribute::String("");
  node.attributes["ints"] = ir::Attribute::Ints({3, -2, 1});
  node.attributes["no_ints"] = ir::Attribute::Ints({});
  node.attributes["floats"] = ir::Attribute::Floats({1.5f, -0.0f});
  ir::Attribute strings;
  strings.type = ir::Attribute::Type::kStrings;
  strings.strings = {"a", "", "long string value"};
  node.attributes["strings"] = strings;
  ir::Attribute tensor;
  tensor.type = ir::Attribute::Type::kTensor;
  tensor.tensor = ir::HostTensor::Floats({2}, {4.0f, -8.0f});
  node.attributes["tensor_f32"] = tensor;
  tensor.tensor = ir::HostTensor::Ints({1, 3}, {-5, 6, 7}, ir::DataType::kInt8);
  node.attributes["tensor_i8"] = tensor;
  g.nodes.push_back(node);

  ir::Value z;
  z.name = "z";
  z.shape = {1, 4, 5, 6};
  z.shape_known = true;
  const int z_id = g.AddValue(z);
  ir::Node relu;
  relu.op_type = "Relu";
  relu.name = "relu";
  relu.inputs = {y_id};
  relu.outputs = {z_id};
  g.nodes.push_back(relu);
  g.outputs = {z_id, unknown_id};
  return g;
}

LbmMetadata SomeMetadata() {
  LbmMetadata metadata;
  metadata.producer = "lowbit test";
  metadata.source_model = "/models/some model.onnx";
  metadata.kernel_isa = "avx2";
  metadata.cpu_model = "Test CPU @ 1.00GHz";
  metadata.extra["future_key"] = "kept as it is";
  metadata.output_names = {"z public", "unknown public"};
  return metadata;
}

std::vector<uint8_t> Encode(const ir::Graph& graph, const LbmMetadata& metadata = SomeMetadata()) {
  auto bytes = format::EncodeLbm(graph, metadata);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::vector<uint8_t>();
}

std::string ReadError(const std::vector<uint8_t>& bytes) {
  auto file = format::ReadLbmBytes(bytes.data(), bytes.size());
  EXPECT_FALSE(file.ok()) << "a damaged file was accepted";
  return file.ok() ? "" : file.status().message();
}

template <typename T>
T Field(const std::vector<uint8_t>& bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}
template <typename T>
void SetField(std::vector<uint8_t>* bytes, size_t offset, T v) {
  std::memcpy(bytes->data() + offset, &v, sizeof v);
}
// Recomputes the header checksum after an edit of the header or table, so a
// test reaches the check after it.
void Reseal(std::vector<uint8_t>* bytes) {
  const uint32_t count = Field<uint32_t>(*bytes, 20);
  const uint32_t crc =
      format::Crc32(bytes->data() + 64, count * 32, format::Crc32(bytes->data(), 60));
  SetField(bytes, 60, crc);
}

struct SectionEntry {
  std::string name;
  uint64_t offset, size;
};
std::vector<SectionEntry> Sections(const std::vector<uint8_t>& bytes) {
  std::vector<SectionEntry> sections;
  for (uint32_t s = 0; s < Field<uint32_t>(bytes, 20); ++s) {
    const size_t e = 64 + 32 * s;
    sections.push_back(
        {format::SectionName(static_cast<format::LbmSectionId>(Field<uint32_t>(bytes, e))),
         Field<uint64_t>(bytes, e + 8), Field<uint64_t>(bytes, e + 16)});
  }
  return sections;
}

TEST(LbmFormatTest, Crc32MatchesTheStandardCheckValue) {
  // The CRC-32 check value of "123456789" (zlib, PNG, Ethernet).
  EXPECT_EQ(format::Crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(format::Crc32("", 0), 0u);
  // Continuing a running checksum equals one pass, at every split point.
  const std::string text = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t split = 0; split <= text.size(); ++split)
    EXPECT_EQ(
        format::Crc32(text.data() + split, text.size() - split, format::Crc32(text.data(), split)),
        format::Crc32(text.data(), text.size()))
        << split;
}

TEST(LbmFormatTest, RoundTripKeepsEveryFieldAndConstantBitForBit) {
  const ir::Graph graph = EveryKindGraph();
  const std::vector<uint8_t> bytes = Encode(graph);
  auto file = format::ReadLbmBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectSameGraph(graph, file->graph);
  EXPECT_EQ(file->format_version, format::kLbmFormatVersion);
  EXPECT_EQ(file->architecture, format::BuildArchitecture());
  EXPECT_EQ(file->producer_version, format::ProducerVersion());
  const LbmMetadata expected = SomeMetadata();
  EXPECT_EQ(file->metadata.producer, expected.producer);
  EXPECT_EQ(file->metadata.source_model, expected.source_model);
  EXPECT_EQ(file->metadata.kernel_isa, expected.kernel_isa);
  EXPECT_EQ(file->metadata.cpu_model, expected.cpu_model);
  EXPECT_EQ(file->metadata.extra, expected.extra);
  EXPECT_EQ(file->metadata.output_names, expected.output_names);
  // Writing what was read gives the same bytes.
  EXPECT_EQ(Encode(file->graph, file->metadata), bytes);
}

TEST(LbmFormatTest, SectionsAndConstantsAre64ByteAligned) {
  const std::vector<uint8_t> bytes = Encode(EveryKindGraph());
  const auto sections = Sections(bytes);
  ASSERT_EQ(sections.size(), 3u);
  for (const SectionEntry& s : sections) EXPECT_EQ(s.offset % 64, 0u) << s.name;
  EXPECT_EQ(sections.back().offset + sections.back().size, bytes.size());
  EXPECT_EQ(Field<uint64_t>(bytes, 24), bytes.size());
  // Compact by dtype, each constant starting at a multiple of 64: 9 f32 (36
  // bytes at 0), 4 i64 (32 at 64), 4 i32 (16 at 128), 3 i8 (at 192), 3 u8
  // (at 256), 2 bool (at 320), 100 packed (at 384), 1 f32 (at 512), 0 i64
  // (at 576), then the tensor attributes: 2 f32 (8 at 576), 3 i8 (at 640).
  EXPECT_EQ(sections[2].size, 643u);
}

TEST(LbmFormatTest, WritesAndReadsAFile) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("lbm_test_" + std::to_string(::getpid()) + ".lbm"))
          .string();
  const ir::Graph graph = EveryKindGraph();
  ASSERT_TRUE(format::WriteLbm(graph, SomeMetadata(), path).ok());
  auto file = format::ReadLbm(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectSameGraph(graph, file->graph);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove(path);
  auto missing = format::ReadLbm(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(LbmFormatTest, WriterRefusesConstantsThatDoNotFitTheirDtype) {
  ir::Graph graph = EveryKindGraph();
  graph.values[graph.FindValue("c_i8")].constant->ints[1] = 300;
  auto bytes = format::EncodeLbm(graph, {});
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(bytes.status().message(),
              HasSubstr("constant 'c_i8' element 1 is 300, outside its dtype's range"));

  graph = EveryKindGraph();
  graph.values[graph.FindValue("w_f32")].constant->floats.pop_back();
  bytes = format::EncodeLbm(graph, {});
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(bytes.status().message(),
              HasSubstr("constant 'w_f32' (f32[3,3]) holds 8 elements, not the shape's 9"));
}

TEST(LbmRefusalTest, NotALowbitModel) {
  testing::OnnxBuilder onnx;
  onnx.Input("x", {1, 2}).Output("y");
  onnx.Node("Relu", {"x"}, {"y"});
  const std::string onnx_bytes = onnx.Bytes();
  EXPECT_THAT(ReadError(std::vector<uint8_t>(onnx_bytes.begin(), onnx_bytes.end())),
              HasSubstr("not a lowbit model: bad magic"));
  const std::string text = "name: \"nanodet-g\"\nversion: 1\n";
  EXPECT_THAT(ReadError(std::vector<uint8_t>(text.begin(), text.end())),
              HasSubstr("not a lowbit model: bad magic"));
  EXPECT_THAT(ReadError({'x', 'y'}), HasSubstr("not a lowbit model: the file has 2 bytes"));
}

TEST(LbmRefusalTest, EveryDataSectionWithAFlippedByteIsCorrupt) {
  const std::vector<uint8_t> good = Encode(EveryKindGraph());
  for (const SectionEntry& section : Sections(good)) {
    for (uint64_t at :
         {section.offset, section.offset + section.size / 2, section.offset + section.size - 1}) {
      std::vector<uint8_t> bad = good;
      bad[at] ^= 0x10;
      EXPECT_EQ(ReadError(bad), "checksum mismatch in section " + section.name + " (corrupt file)")
          << "byte " << at;
    }
  }
}

TEST(LbmRefusalTest, AFlippedByteInTheHeaderOrSectionTableIsCorrupt) {
  const std::vector<uint8_t> good = Encode(EveryKindGraph());
  // Producer version, reserved word, the checksum itself, and each table entry.
  for (size_t at : {33, 57, 61, 64 + 8, 64 + 32 + 16, 64 + 64 + 24}) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x01;
    EXPECT_EQ(ReadError(bad), "checksum mismatch in the header and section table (corrupt file)")
        << "byte " << at;
  }
}

TEST(LbmRefusalTest, TruncatedFilesSayWhereTheyEnd) {
  const std::vector<uint8_t> good = Encode(EveryKindGraph());
  const auto sections = Sections(good);
  auto cut = [&](size_t length) {
    return ReadError(std::vector<uint8_t>(good.begin(), good.begin() + length));
  };
  EXPECT_EQ(cut(0), "not a lowbit model: the file has 0 bytes and no .lbm magic");
  EXPECT_EQ(cut(5), "truncated: the file has 5 bytes, less than the 64-byte header");
  EXPECT_EQ(cut(40), "truncated: the file has 40 bytes, less than the 64-byte header");
  EXPECT_EQ(cut(100), "truncated: the section table ends at byte 160 but the file has 100 bytes");
  EXPECT_EQ(cut(160), "truncated: section metadata ends at byte " +
                          std::to_string(sections[0].offset + sections[0].size) +
                          " but the file has 160 bytes");
  for (size_t s = 0; s < sections.size(); ++s) {
    const size_t length = sections[s].offset + sections[s].size / 2;
    EXPECT_EQ(cut(length), "truncated: section " + sections[s].name + " ends at byte " +
                               std::to_string(sections[s].offset + sections[s].size) +
                               " but the file has " + std::to_string(length) + " bytes");
  }
  EXPECT_EQ(cut(good.size() - 1), "truncated: section constants ends at byte " +
                                      std::to_string(good.size()) + " but the file has " +
                                      std::to_string(good.size() - 1) + " bytes");
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_EQ(ReadError(longer), "the header says the file has " + std::to_string(good.size()) +
                                   " bytes but it has " + std::to_string(good.size() + 1) +
                                   " (trailing bytes)");
}

TEST(LbmRefusalTest, AnotherFormatVersion) {
  std::vector<uint8_t> bytes = Encode(EveryKindGraph());
  SetField<uint32_t>(&bytes, 8, 2);
  Reseal(&bytes);
  auto file = format::ReadLbmBytes(bytes.data(), bytes.size());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(file.status().message(),
            "unsupported .lbm format version 2 (this build reads version 1); compile the model "
            "again with this build");
}

TEST(LbmRefusalTest, AnotherArchitecture) {
  std::vector<uint8_t> bytes = Encode(EveryKindGraph());
  const bool here_x86 = format::BuildArchitecture() == format::LbmArchitecture::kX86_64;
  const auto other =
      here_x86 ? format::LbmArchitecture::kAArch64 : format::LbmArchitecture::kX86_64;
  SetField<uint32_t>(&bytes, 16, static_cast<uint32_t>(other));
  Reseal(&bytes);
  auto file = format::ReadLbmBytes(bytes.data(), bytes.size());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(file.status().message(), std::string("built for ") + format::ArchitectureName(other) +
                                         " but this is " +
                                         format::ArchitectureName(format::BuildArchitecture()) +
                                         "; compile the model on (or for) this architecture");
  SetField<uint32_t>(&bytes, 16, 77);
  Reseal(&bytes);
  EXPECT_THAT(ReadError(bytes), HasSubstr("built for architecture code 77 but this is"));
}

TEST(LbmRefusalTest, BigEndianMarker) {
  std::vector<uint8_t> bytes = Encode(EveryKindGraph());
  SetField<uint32_t>(&bytes, 12, 0x04030201);
  Reseal(&bytes);
  EXPECT_EQ(ReadError(bytes),
            "bad endianness marker 0x04030201 (expected 0x01020304: .lbm files are little-endian)");
}

TEST(LbmRefusalTest, MalformedGraphsNameTheProblem) {
  // Valid checksums around a graph that a buggy writer could produce.
  ir::Graph graph = EveryKindGraph();
  graph.nodes[1].inputs[0] = 999;
  EXPECT_EQ(ReadError(Encode(graph)),
            "malformed graph: Relu node 'relu' input 0 is value id 999 but there are " +
                std::to_string(graph.values.size()) + " values");

  graph = EveryKindGraph();
  std::swap(graph.nodes[0], graph.nodes[1]);  // relu before its producer
  EXPECT_EQ(ReadError(Encode(graph)), "malformed graph: Relu node 'relu' reads value " +
                                          std::to_string(graph.FindValue("y")) +
                                          " ('y') before anything produces it");

  graph = EveryKindGraph();
  graph.outputs.push_back(-5);
  LbmMetadata metadata = SomeMetadata();
  metadata.output_names.push_back("third");
  EXPECT_EQ(ReadError(Encode(graph, metadata)),
            "malformed graph: graph output is value id -5 but there are " +
                std::to_string(graph.values.size()) + " values");

  graph = EveryKindGraph();
  graph.values[0].storage_perm = {0, 2, 2, 1};
  EXPECT_EQ(ReadError(Encode(graph)),
            "malformed graph: value 0 ('x') has a storage_perm that is not a permutation");

  graph = EveryKindGraph();
  graph.nodes[1].outputs = {graph.FindValue("y")};
  EXPECT_EQ(ReadError(Encode(graph)), "malformed graph: Relu node 'relu' writes value " +
                                          std::to_string(graph.FindValue("y")) +
                                          " ('y'), which already has a producer");
}

// A small runnable model: Conv (+Relu fused) -> MaxPool -> Conv -> Add.
testing::OnnxBuilder SmallModel() {
  testing::OnnxBuilder b;
  b.Input("x", {-1, 3, 8, 8}).Output("y");
  b.Floats("w1", {4, 3, 3, 3}, testing::RandomFloats(108, 1));
  b.Floats("b1", {4}, testing::RandomFloats(4, 2));
  b.Floats("w2", {4, 4, 1, 1}, testing::RandomFloats(16, 3));
  testing::SetInts(b.Node("Conv", {"x", "w1", "b1"}, {"c1"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c1"}, {"r1"});
  auto& pool = b.Node("MaxPool", {"r1"}, {"p1"});
  testing::SetInts(pool, "kernel_shape", {2, 2});
  testing::SetInts(pool, "strides", {2, 2});
  b.Node("Conv", {"p1", "w2"}, {"c2"});
  b.Node("Add", {"c2", "p1"}, {"y"});
  return b;
}

class LbmModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ =
        std::filesystem::temp_directory_path() / ("lbm_model_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }
  std::string PathOf(const std::string& name) const { return (directory_ / name).string(); }

  std::filesystem::path directory_;
};

std::vector<NamedTensor> RunModelOn(const Model& model, const Tensor& input, int threads = 1) {
  auto session = model.CreateSession({.threads = threads});
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  std::vector<NamedTensor> outputs;
  if (!session.ok()) return outputs;
  const Status status = (*session)->Run({{"x", input}}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return outputs;
}

TEST_F(LbmModelTest, ACompiledModelThroughAFileRunsBitForBitTheSame) {
  const testing::OnnxBuilder builder = SmallModel();
  const std::string onnx_path = PathOf("small.onnx");
  {
    std::ofstream out(onnx_path, std::ios::binary);
    out << builder.Bytes();
  }
  auto compiled = Model::LoadOnnx(onnx_path);
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const std::string lbm_path = PathOf("small.lbm");
  ASSERT_TRUE(WriteCompiledModel(**compiled, lbm_path).ok());

  auto loaded = Model::LoadCompiled(lbm_path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const auto& a = dynamic_cast<const runtime::CompiledModel&>(**compiled);
  const auto& b = dynamic_cast<const runtime::CompiledModel&>(**loaded);
  ExpectSameGraph(a.graph(), b.graph());
  EXPECT_EQ(a.output_names(), b.output_names());
  ASSERT_EQ((*loaded)->outputs().size(), 1u);
  EXPECT_EQ((*loaded)->outputs()[0].name, "y");
  ASSERT_EQ((*compiled)->layers().size(), (*loaded)->layers().size());
  for (size_t i = 0; i < (*compiled)->layers().size(); ++i) {
    const LayerInfo &x = (*compiled)->layers()[i], &y = (*loaded)->layers()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.macs, y.macs);
    EXPECT_EQ(x.params, y.params);
    EXPECT_EQ(x.kernel, y.kernel);
    EXPECT_EQ(x.weight_bytes, y.weight_bytes);
  }

  // Where each came from.
  EXPECT_FALSE((*compiled)->origin().precompiled);
  EXPECT_TRUE((*loaded)->origin().precompiled);
  EXPECT_EQ((*loaded)->origin().path, lbm_path);
  EXPECT_EQ((*loaded)->origin().source_model, onnx_path);
  EXPECT_EQ((*loaded)->origin().kernel_isa, format::HostKernelIsa());
  EXPECT_EQ((*loaded)->origin().cpu_model, format::HostCpuModel());

  for (int batch : {1, 3}) {
    Tensor input({batch, 3, 8, 8});
    const std::vector<float> values = testing::RandomFloats(input.size(), 40 + batch);
    std::copy(values.begin(), values.end(), input.data());
    const auto expected = RunModelOn(**compiled, input);
    const auto actual = RunModelOn(**loaded, input);
    ASSERT_EQ(expected.size(), 1u);
    ASSERT_EQ(actual.size(), 1u);
    ASSERT_EQ(expected[0].tensor.shape(), actual[0].tensor.shape());
    EXPECT_EQ(std::memcmp(expected[0].tensor.data(), actual[0].tensor.data(),
                          expected[0].tensor.size() * sizeof(float)),
              0)
        << "batch " << batch;
  }

  // Model::Load picks the reader by the file's first bytes, not its name.
  const std::string renamed = PathOf("compiled.onnx");
  std::filesystem::copy_file(lbm_path, renamed);
  auto by_magic = Model::Load(renamed);
  ASSERT_TRUE(by_magic.ok()) << by_magic.status().ToString();
  EXPECT_TRUE((*by_magic)->origin().precompiled);
  auto onnx = Model::Load(onnx_path);
  ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
  EXPECT_FALSE((*onnx)->origin().precompiled);
}

TEST_F(LbmModelTest, ValuesNothingReadsAreNeitherKeptNorStored) {
  testing::OnnxBuilder builder = SmallModel();
  builder.Floats("unused_weights", {64, 64}, std::vector<float>(64 * 64, 1.0f));
  auto compiled = builder.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const ir::Graph& graph = (*compiled)->graph();
  EXPECT_EQ(graph.FindValue("unused_weights"), ir::kNoValue);
  EXPECT_NE(graph.FindValue("w1"), ir::kNoValue);
  // Every value left is read or written by a node, or is a graph input.
  std::vector<char> used(graph.values.size(), 0);
  for (int id : graph.inputs) used[id] = 1;
  for (const ir::Node& node : graph.nodes) {
    for (int id : node.inputs)
      if (id != ir::kNoValue) used[id] = 1;
    for (int id : node.outputs) used[id] = 1;
  }
  for (size_t v = 0; v < used.size(); ++v) EXPECT_TRUE(used[v]) << graph.values[v].name;
  const std::string path = PathOf("small.lbm");
  ASSERT_TRUE(WriteCompiledModel(**compiled, path).ok());
  auto file = format::ReadLbm(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->graph.FindValue("unused_weights"), ir::kNoValue);
  EXPECT_LT(std::filesystem::file_size(path), 64u * 64 * 4);
}

TEST_F(LbmModelTest, LoadCompiledNamesTheFileAndSuggestsCompilingAnOnnx) {
  const std::string onnx_path = PathOf("small.onnx");
  {
    std::ofstream out(onnx_path, std::ios::binary);
    out << SmallModel().Bytes();
  }
  auto refused = Model::LoadCompiled(onnx_path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            onnx_path +
                ": not a lowbit model: bad magic (a .lbm file starts with the bytes 89 'LBM' 0D "
                "0A 1A 0A); an ONNX model must be compiled first (`lowbit compile MODEL.onnx -o "
                "MODEL.lbm`)");

  // A truncated compiled model is refused by Model::Load as well.
  auto compiled = Model::LoadOnnx(onnx_path);
  ASSERT_TRUE(compiled.ok());
  const std::string lbm_path = PathOf("small.lbm");
  ASSERT_TRUE(WriteCompiledModel(**compiled, lbm_path).ok());
  std::filesystem::resize_file(lbm_path, std::filesystem::file_size(lbm_path) - 10);
  auto truncated = Model::Load(lbm_path);
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(truncated.status().message(), HasSubstr(lbm_path + ": truncated: section constants"));
}

// QDQ Conv (ONNX QuantizeLinear/DequantizeLinear, per-channel int8
// weights), which the compiler lowers to lowbit.QConv.
testing::OnnxBuilder QuantizedConvModel() {
  testing::OnnxBuilder b(13);
  constexpr int kIn = 8, kOut = 16;
  b.Input("x", {-1, kIn, 9, 9}).Output("y");
  b.Floats("sa", {}, {2.0f / 255}).Floats("so", {}, {4.0f / 255});
  b.IntCodes("za", onnx::TensorProto::UINT8, {}, {3});
  b.IntCodes("zo", onnx::TensorProto::UINT8, {}, {5});
  std::vector<float> scales;
  for (int o = 0; o < kOut; ++o) scales.push_back(0.01f + 0.002f * o);
  b.Floats("sw", {kOut}, scales);
  b.IntCodes("zw", onnx::TensorProto::INT8, {kOut}, std::vector<int32_t>(kOut, 0));
  std::vector<int32_t> weights(kOut * kIn * 9);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<int32_t>(i * 37 % 255) - 127;
  b.IntCodes("w", onnx::TensorProto::INT8, {kOut, kIn, 3, 3}, weights);
  b.Floats("bias", {kOut}, testing::RandomFloats(kOut, 5, -0.5f, 0.5f));
  b.Node("QuantizeLinear", {"x", "sa", "za"}, {"xq"});
  b.Node("DequantizeLinear", {"xq", "sa", "za"}, {"xd"});
  testing::SetInt(b.Node("DequantizeLinear", {"w", "sw", "zw"}, {"wd"}), "axis", 0);
  auto& conv = b.Node("Conv", {"xd", "wd", "bias"}, {"conv"});
  testing::SetInts(conv, "kernel_shape", {3, 3});
  testing::SetInts(conv, "pads", {1, 1, 1, 1});
  b.Node("Relu", {"conv"}, {"act"});
  b.Node("QuantizeLinear", {"act", "so", "zo"}, {"yq"});
  b.Node("DequantizeLinear", {"yq", "so", "zo"}, {"y"});
  return b;
}

TEST_F(LbmModelTest, AQuantizedModelStoresCompactWeightsAndRunsBitForBitTheSame) {
  const std::string onnx_path = PathOf("qconv.onnx");
  {
    std::ofstream out(onnx_path, std::ios::binary);
    out << QuantizedConvModel().Bytes();
  }
  auto compiled = Model::LoadOnnx(onnx_path);
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const auto& model = dynamic_cast<const runtime::CompiledModel&>(**compiled);
  const ir::Node* qconv = nullptr;
  for (const ir::Node& node : model.graph().nodes)
    if (node.op_type == "lowbit.QConv") qconv = &node;
  ASSERT_NE(qconv, nullptr) << model.graph().Dump();
  const size_t loaded_inputs = qconv->inputs.size();

  const std::string lbm_path = PathOf("qconv.lbm");
  ASSERT_TRUE(WriteCompiledModel(**compiled, lbm_path).ok());
  // The file holds the compiled graph: the kernel-format weights that the
  // model derived at load are not stored.
  auto file = format::ReadLbm(lbm_path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectSameGraph(model.StoredGraph(), file->graph);
  EXPECT_LT(file->graph.values.size(), model.graph().values.size());
  for (const ir::Node& node : file->graph.nodes)
    if (node.op_type == "lowbit.QConv") {
      EXPECT_LT(node.inputs.size(), loaded_inputs);
    }

  auto loaded = Model::LoadCompiled(lbm_path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ExpectSameGraph(model.graph(), dynamic_cast<const runtime::CompiledModel&>(**loaded).graph());
  const LayerInfo* layer = nullptr;
  for (const LayerInfo& l : (*loaded)->layers())
    if (l.op.rfind("lowbit.QConv", 0) == 0) layer = &l;
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->weight_bits, 8);
  EXPECT_EQ(layer->activation_bits, 8);
  EXPECT_FALSE(layer->kernel.empty());
  EXPECT_EQ(layer->params, 16 * 8 * 9 + 16);
  EXPECT_EQ(layer->macs, 16 * 9 * 9 * 8 * 9);
  int64_t stored = 0;
  for (size_t i = 1; i < qconv->inputs.size(); ++i)
    if (qconv->inputs[i] != ir::kNoValue &&
        qconv->inputs[i] < static_cast<int>(file->graph.values.size()) &&
        file->graph.values[qconv->inputs[i]].is_constant())
      stored += runtime::StoredBytes(*file->graph.values[qconv->inputs[i]].constant);
  EXPECT_EQ(layer->weight_bytes, stored);
  EXPECT_LT(layer->weight_bytes, layer->params * 4);

  Tensor input({2, 8, 9, 9});
  const std::vector<float> values = testing::RandomFloats(input.size(), 9);
  std::copy(values.begin(), values.end(), input.data());
  const auto expected = RunModelOn(**compiled, input);
  const auto actual = RunModelOn(**loaded, input);
  ASSERT_EQ(expected.size(), 1u);
  ASSERT_EQ(actual.size(), 1u);
  EXPECT_EQ(std::memcmp(expected[0].tensor.data(), actual[0].tensor.data(),
                        expected[0].tensor.size() * sizeof(float)),
            0);
}

TEST(LbmLayerInfoTest, FloatConvReportsXnnpackAndFourBytesPerParameter) {
  auto model = SmallModel().Compile();
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  int convs = 0;
  for (const LayerInfo& layer : (*model)->layers()) {
    if (layer.op.rfind("Conv", 0) != 0) {
      EXPECT_EQ(layer.weight_bytes, 0) << layer.name;
      EXPECT_EQ(layer.kernel, "") << layer.name;
      continue;
    }
    ++convs;
    EXPECT_EQ(layer.kernel, "xnnpack_f32");
    EXPECT_EQ(layer.weight_bits, 32);
    EXPECT_EQ(layer.activation_bits, 32);
    EXPECT_EQ(layer.weight_bytes, layer.params * 4);
  }
  EXPECT_EQ(convs, 2);
  EXPECT_EQ((*model)->layers()[0].params, 108 + 4);
}

TEST(LbmLayerInfoTest, QuantizedConvReportsItsBitsKernelAndStoredBytes) {
  // The shape of a lowered quantized conv: packed weights, int32 bias and
  // per-channel float multipliers as constants after the data input.
  ir::Graph g;
  ir::Value x;
  x.name = "x";
  x.dtype = ir::DataType::kUInt8;
  x.shape = {1, 4, 10, 10};
  x.shape_known = true;
  const int x_id = g.AddValue(x);
  ir::AlignedBytes packed(72);  // 8 x 36 weights at 2 bits
  const int w = g.AddConstant("w", ir::HostTensor::Packed(std::move(packed)));
  const int bias = g.AddConstant(
      "b", ir::HostTensor::Ints({8}, std::vector<int64_t>(8, 1), ir::DataType::kInt32));
  const int scales = g.AddConstant("m", ir::HostTensor::Floats({8}, std::vector<float>(8, 0.5f)));
  ir::Value y = x;
  y.name = "y";
  y.shape = {1, 8, 10, 10};
  const int y_id = g.AddValue(y);
  ir::Node node;
  node.op_type = "lowbit.QConv";
  node.name = "qconv";
  node.inputs = {x_id, w, bias, scales};
  node.outputs = {y_id};
  node.attributes["wbits"] = ir::Attribute::Int(2);
  node.attributes["abits"] = ir::Attribute::Int(3);
  node.attributes["lowbit_kernel"] = ir::Attribute::String("conv_u8s8dot_8x32__avx512");
  node.attributes["kernel_shape"] = ir::Attribute::Ints({3, 3});

  LayerInfo layer;
  layer.output_shape = y.shape;
  runtime::DescribeLayerWeights(g, node, &layer);
  EXPECT_EQ(layer.weight_bits, 2);
  EXPECT_EQ(layer.activation_bits, 3);
  EXPECT_EQ(layer.kernel, "conv_u8s8dot_8x32__avx512");
  EXPECT_EQ(layer.weight_bytes, 72 + 8 * 4 + 8 * 4);
  EXPECT_EQ(layer.params, 8 * 4 * 9 + 8);
  EXPECT_EQ(layer.macs, 8 * 10 * 10 * (4 * 9));

  // An explicit logical weight shape wins over kernel_shape (grouped here).
  node.attributes["weight_shape"] = ir::Attribute::Ints({8, 2, 3, 3});
  layer = LayerInfo();
  layer.output_shape = y.shape;
  runtime::DescribeLayerWeights(g, node, &layer);
  EXPECT_EQ(layer.params, 8 * 2 * 9 + 8);
  EXPECT_EQ(layer.macs, 8 * 10 * 10 * (2 * 9));
}

}  // namespace
}  // namespace lowbit::engine
