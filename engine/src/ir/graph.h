// The engine's graph IR: values (tensors) and nodes (operations) in
// topological order, shared by the importer, the passes and the runtime.
//
// Conventions:
// - Shapes are logical (ONNX axis order) and stored at batch size 1. Every
//   value that is not a constant carries the batch as its first dimension; a
//   session runs any batch size N by scaling that dimension.
// - A value's `storage_perm` says how its elements are laid out in memory:
//   physical axis j holds logical axis storage_perm[j]. Empty = logical order
//   (row-major in ONNX axis order). NHWC storage of an NCHW value is {0,2,3,1}.
//   storage_perm[0] is always 0, so the batch stays the outermost dimension.
// - Each value has a precision: float32, or integer codes with bit-width,
//   scale and zero point (real = scale * (code - zero_point)), so the low-bit
//   compiler lowers fake-quantized models without reshaping the IR.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"

namespace lowbit::engine::ir {

// kPacked: opaque bytes in a kernel or storage format (packed weights), held
// by constants only; its layout is stated by the node that reads it.
enum class DataType { kFloat32, kInt64, kInt32, kInt8, kUInt8, kBool, kPacked };
const char* DataTypeName(DataType type);  // "f32", "i64", ...
// Bytes per element of a run-time buffer of `type` (1 for kPacked and kBool).
int64_t DataTypeSize(DataType type);

// 64-byte aligned bytes that own their memory (packed weights: AVX-512 rows
// and uint64 bit-planes are read straight from them). Copying copies.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t size) { resize(size); }
  AlignedBytes(const AlignedBytes& other) { *this = other; }
  AlignedBytes& operator=(const AlignedBytes& other);
  AlignedBytes(AlignedBytes&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  AlignedBytes& operator=(AlignedBytes&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~AlignedBytes();
  // Zero-filled; previous contents are discarded.
  void resize(size_t size);
  size_t size() const { return size_; }
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data_);
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Numeric precision of a value: float32, or integer codes with their
// quantization parameters, per tensor or per axis.
struct Precision {
  enum class Kind { kFloat, kIntegerCodes };
  Kind kind = Kind::kFloat;
  int bits = 32;          // 32 for float; 1..8 for integer codes (16/32 for wide ints)
  bool is_signed = true;  // integer codes only
  float scale = 1.0f;     // integer codes only: real = scale * (code - zero_point)
  int32_t zero_point = 0;
  // Per-axis parameters (axis >= 0): scales[i] / zero_points[i] apply to
  // index i of logical axis `axis`; scale / zero_point above are unused.
  int axis = -1;
  std::vector<float> scales;
  std::vector<int32_t> zero_points;

  bool is_codes() const { return kind == Kind::kIntegerCodes; }
  bool per_axis() const { return axis >= 0; }

  static Precision Float32() { return {}; }
  static Precision IntegerCodes(int bits, bool is_signed, float scale, int32_t zero_point) {
    Precision p;
    p.kind = Kind::kIntegerCodes;
    p.bits = bits;
    p.is_signed = is_signed;
    p.scale = scale;
    p.zero_point = zero_point;
    return p;
  }
  std::string ToString() const;  // "f32" or "i2(s=0.05,z=0)"
};

// A constant tensor held by the compiler. Float32 data lives in `floats`;
// every integer or bool type lives widened in `ints`; kPacked bytes live in
// `bytes` (shape = [byte count]). Row-major, logical order.
struct HostTensor {
  DataType dtype = DataType::kFloat32;
  Shape shape;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  AlignedBytes bytes;

  int64_t size() const { return NumElements(shape); }
  bool is_float() const { return dtype == DataType::kFloat32; }
  // Element i as double, whatever the storage.
  double at(int64_t i) const { return is_float() ? floats[i] : static_cast<double>(ints[i]); }
  static HostTensor Floats(Shape shape, std::vector<float> values);
  static HostTensor Ints(Shape shape, std::vector<int64_t> values,
                         DataType dtype = DataType::kInt64);
  static HostTensor Packed(AlignedBytes bytes);
};

struct Attribute {
  enum class Type { kInt, kFloat, kString, kInts, kFloats, kStrings, kTensor };
  Type type = Type::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  HostTensor tensor;

  static Attribute Int(int64_t v) {
    Attribute a;
    a.type = Type::kInt;
    a.i = v;
    return a;
  }
  static Attribute Float(float v) {
    Attribute a;
    a.type = Type::kFloat;
    a.f = v;
    return a;
  }
  static Attribute String(std::string v) {
    Attribute a;
    a.type = Type::kString;
    a.s = std::move(v);
    return a;
  }
  static Attribute Ints(std::vector<int64_t> v) {
    Attribute a;
    a.type = Type::kInts;
    a.ints = std::move(v);
    return a;
  }
  static Attribute Floats(std::vector<float> v) {
    Attribute a;
    a.type = Type::kFloats;
    a.floats = std::move(v);
    return a;
  }
  std::string ToString() const;
};

struct Value {
  std::string name;
  DataType dtype = DataType::kFloat32;
  Shape shape;  // logical, batch 1; empty + !shape_known = unknown
  bool shape_known = false;
  Precision precision;
  // Set for initializers and folded values. Its data is in storage order
  // (the layout pass permutes constants that feed NHWC activations).
  std::optional<HostTensor> constant;
  std::vector<int> storage_perm;  // empty = logical order (see file comment)

  bool is_constant() const { return constant.has_value(); }
};

constexpr int kNoValue = -1;  // an omitted optional input

struct Node {
  std::string op_type;  // ONNX op type, or "lowbit.*" for internal ops
  std::string name;
  std::vector<int> inputs;   // value ids; kNoValue for an omitted optional input
  std::vector<int> outputs;  // value ids
  std::map<std::string, Attribute> attributes;

  bool has(const std::string& attr) const { return attributes.count(attr) != 0; }
  int64_t GetInt(const std::string& attr, int64_t fallback) const;
  float GetFloat(const std::string& attr, float fallback) const;
  std::string GetString(const std::string& attr, const std::string& fallback) const;
  std::vector<int64_t> GetInts(const std::string& attr, std::vector<int64_t> fallback = {}) const;
  // "Conv 'conv1'" for error messages.
  std::string Describe() const;
};

class Graph {
 public:
  int opset = 0;
  std::vector<Value> values;  // ids are indices and stay stable; passes never erase
  std::vector<Node> nodes;    // in topological order after TopologicalSort()
  std::vector<int> inputs;    // graph inputs (non-constant)
  std::vector<int> outputs;

  int AddValue(Value value);
  int AddConstant(const std::string& name, HostTensor tensor);
  // Value id by name, or kNoValue. Caches an index: not for concurrent use
  // (the runtime never looks values up by name).
  int FindValue(const std::string& name) const;
  // A name not used by any value yet, derived from `base`.
  std::string UniqueName(const std::string& base) const;

  // Reorders `nodes` so that every node comes after the producers of its
  // inputs. Fails on cycles or inputs that nothing produces.
  Status TopologicalSort();

  // Producer node index per value id (-1 for graph inputs and constants).
  std::vector<int> Producers() const;
  // Number of node inputs + graph outputs that read each value.
  std::vector<int> UseCounts() const;

  // Text form for tests and debugging, one line per node in node order:
  //   %y: f32[1,4,8,8] = Conv(%x, %w, %b) {group=1, pads=[1,1,1,1]}
  // Constants used by nodes are listed first as `const %w: f32[4,3,3,3]`.
  std::string Dump() const;

 private:
  mutable std::unordered_map<std::string, int> index_;
};

// True when `node` has input `index` and it is not omitted.
inline bool HasInput(const Node& node, size_t index) {
  return index < node.inputs.size() && node.inputs[index] != kNoValue;
}
// Values of constant input `index` of `node` (any numeric type), or an error
// naming the node when the input is missing or computed at run time.
StatusOr<std::vector<int64_t>> ConstantInts(const Graph& graph, const Node& node, size_t index);
StatusOr<std::vector<float>> ConstantFloats(const Graph& graph, const Node& node, size_t index);
// Normalises a possibly negative axis into [0, rank).
StatusOr<int> NormalizeAxis(int64_t axis, size_t rank, const Node& node);

}  // namespace lowbit::engine::ir
