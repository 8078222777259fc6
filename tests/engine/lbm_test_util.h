// Field-by-field comparison of two graphs, constants bit for bit: what a
// .lbm round trip must preserve (Dump() shows no constant data).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "ir/graph.h"

namespace lowbit::engine::testing {

inline bool SameBits(const void* a, const void* b, size_t bytes) {
  return bytes == 0 || std::memcmp(a, b, bytes) == 0;
}

inline void ExpectSameTensor(const ir::HostTensor& a, const ir::HostTensor& b,
                             const std::string& what) {
  EXPECT_EQ(a.dtype, b.dtype) << what;
  EXPECT_EQ(a.shape, b.shape) << what;
  ASSERT_EQ(a.floats.size(), b.floats.size()) << what;
  EXPECT_TRUE(SameBits(a.floats.data(), b.floats.data(), a.floats.size() * 4)) << what;
  EXPECT_EQ(a.ints, b.ints) << what;
  ASSERT_EQ(a.bytes.size(), b.bytes.size()) << what;
  EXPECT_TRUE(SameBits(a.bytes.data(), b.bytes.data(), a.bytes.size())) << what;
}

inline void ExpectSamePrecision(const ir::Precision& a, const ir::Precision& b,
                                const std::string& what) {
  EXPECT_EQ(a.kind, b.kind) << what;
  EXPECT_EQ(a.bits, b.bits) << what;
  EXPECT_EQ(a.is_signed, b.is_signed) << what;
  EXPECT_TRUE(SameBits(&a.scale, &b.scale, 4)) << what;
  EXPECT_EQ(a.zero_point, b.zero_point) << what;
  EXPECT_EQ(a.axis, b.axis) << what;
  ASSERT_EQ(a.scales.size(), b.scales.size()) << what;
  EXPECT_TRUE(SameBits(a.scales.data(), b.scales.data(), a.scales.size() * 4)) << what;
  EXPECT_EQ(a.zero_points, b.zero_points) << what;
}

inline void ExpectSameAttribute(const ir::Attribute& a, const ir::Attribute& b,
                                const std::string& what) {
  EXPECT_EQ(a.type, b.type) << what;
  switch (a.type) {
    case ir::Attribute::Type::kInt:
      EXPECT_EQ(a.i, b.i) << what;
      break;
    case ir::Attribute::Type::kFloat:
      EXPECT_TRUE(SameBits(&a.f, &b.f, 4)) << what;
      break;
    case ir::Attribute::Type::kString:
      EXPECT_EQ(a.s, b.s) << what;
      break;
    case ir::Attribute::Type::kInts:
      EXPECT_EQ(a.ints, b.ints) << what;
      break;
    case ir::Attribute::Type::kFloats:
      ASSERT_EQ(a.floats.size(), b.floats.size()) << what;
      EXPECT_TRUE(SameBits(a.floats.data(), b.floats.data(), a.floats.size() * 4)) << what;
      break;
    case ir::Attribute::Type::kStrings:
      EXPECT_EQ(a.strings, b.strings) << what;
      break;
    case ir::Attribute::Type::kTensor:
      ExpectSameTensor(a.tensor, b.tensor, what);
      break;
  }
}

inline void ExpectSameGraph(const ir::Graph& a, const ir::Graph& b) {
  EXPECT_EQ(a.Dump(), b.Dump());
  EXPECT_EQ(a.opset, b.opset);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t v = 0; v < a.values.size(); ++v) {
    const ir::Value &x = a.values[v], &y = b.values[v];
    const std::string what = "value " + std::to_string(v) + " '" + x.name + "'";
    EXPECT_EQ(x.name, y.name) << what;
    EXPECT_EQ(x.dtype, y.dtype) << what;
    EXPECT_EQ(x.shape, y.shape) << what;
    EXPECT_EQ(x.shape_known, y.shape_known) << what;
    EXPECT_EQ(x.storage_perm, y.storage_perm) << what;
    ExpectSamePrecision(x.precision, y.precision, what);
    ASSERT_EQ(x.is_constant(), y.is_constant()) << what;
    if (x.is_constant()) ExpectSameTensor(*x.constant, *y.constant, what);
  }
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t n = 0; n < a.nodes.size(); ++n) {
    const ir::Node &x = a.nodes[n], &y = b.nodes[n];
    const std::string what = "node " + std::to_string(n) + " " + x.Describe();
    EXPECT_EQ(x.op_type, y.op_type) << what;
    EXPECT_EQ(x.name, y.name) << what;
    EXPECT_EQ(x.inputs, y.inputs) << what;
    EXPECT_EQ(x.outputs, y.outputs) << what;
    ASSERT_EQ(x.attributes.size(), y.attributes.size()) << what;
    for (const auto& [name, attr] : x.attributes) {
      auto it = y.attributes.find(name);
      ASSERT_NE(it, y.attributes.end()) << what << " lost attribute " << name;
      ExpectSameAttribute(attr, it->second, what + " attribute " + name);
    }
  }
}

}  // namespace lowbit::engine::testing
