// Helpers for the engine-core tests: build small ONNX models in memory,
// import/compile them and run them.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "import/onnx_importer.h"
#include "lowbit/engine/model.h"
#include "lowbit_onnx/onnx.pb.h"
#include "runtime/compiled_model.h"

namespace lowbit::engine::testing {

class OnnxBuilder {
 public:
  explicit OnnxBuilder(int opset = 13) {
    model_.set_ir_version(7);
    model_.add_opset_import()->set_version(opset);
  }

  // A float32 graph input; a dimension of -1 becomes the symbolic "N".
  OnnxBuilder& Input(const std::string& name, const std::vector<int64_t>& dims) {
    auto* input = model_.mutable_graph()->add_input();
    input->set_name(name);
    auto* type = input->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) {
      auto* dim = type->mutable_shape()->add_dim();
      if (d < 0)
        dim->set_dim_param("N");
      else
        dim->set_dim_value(d);
    }
    return *this;
  }
  OnnxBuilder& Output(const std::string& name) {
    auto* output = model_.mutable_graph()->add_output();
    output->set_name(name);
    output->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    return *this;
  }
  // Float initializer stored as raw little-endian bytes (raw = true) or float_data.
  OnnxBuilder& Floats(const std::string& name, const std::vector<int64_t>& dims,
                      const std::vector<float>& values, bool raw = true) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    if (raw)
      t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
    else
      for (float v : values) t->add_float_data(v);
    return *this;
  }
  OnnxBuilder& Ints(const std::string& name, const std::vector<int64_t>& dims,
                    const std::vector<int64_t>& values, bool raw = false) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    if (raw)
      t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 8));
    else
      for (int64_t v : values) t->add_int64_data(v);
    return *this;
  }
  // Integer initializer of ONNX type `type` (INT8, UINT8, INT32: codes,
  // zero points, int32 biases), values in int32_data.
  OnnxBuilder& IntCodes(const std::string& name, int type, const std::vector<int64_t>& dims,
                        const std::vector<int32_t>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    for (int32_t v : values) t->add_int32_data(v);
    return *this;
  }
  onnx::NodeProto& Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* node = model_.mutable_graph()->add_node();
    node->set_op_type(op);
    node->set_name(name.empty() ? op + "_" + outputs[0] : name);
    for (const auto& in : inputs) node->add_input(in);
    for (const auto& out : outputs) node->add_output(out);
    return *node;
  }

  onnx::ModelProto& proto() { return model_; }
  std::string Bytes() const { return model_.SerializeAsString(); }
  StatusOr<ir::Graph> Import() const {
    const std::string bytes = Bytes();
    return ImportOnnxBytes(bytes.data(), bytes.size(), "test.onnx");
  }
  StatusOr<std::shared_ptr<const runtime::CompiledModel>> Compile() const {
    LOWBIT_ASSIGN_OR_RETURN(ir::Graph graph, Import());
    return runtime::CompiledModel::Compile(std::move(graph));
  }

 private:
  onnx::ModelProto model_;
};

inline void SetInts(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline void SetInt(onnx::NodeProto& node, const std::string& name, int64_t v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void SetFloat(onnx::NodeProto& node, const std::string& name, float v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void SetString(onnx::NodeProto& node, const std::string& name, const std::string& v) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float low = -1, float high = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Compiles `builder`, runs it on one input and returns the outputs.
inline std::vector<NamedTensor> RunModel(const OnnxBuilder& builder, const std::string& input,
                                         Tensor tensor, int threads = 1) {
  auto model = builder.Compile();
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  SessionOptions options;
  options.threads = threads;
  auto session = (*model)->CreateSession(options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  std::vector<NamedTensor> outputs;
  Status status = (*session)->Run({{input, std::move(tensor)}}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return outputs;
}

inline void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected,
                       float tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], tolerance) << "element " << i;
}

}  // namespace lowbit::engine::testing
