// Dense tensors at the engine's public boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::engine {

using Shape = std::vector<int64_t>;

int64_t NumElements(const Shape& shape);

// Largest element count a shape read from a file (an ONNX initializer, a
// .lbm constant) may have: 2^40 elements, so element and byte counts (x 8)
// stay far from int64 overflow wherever they are multiplied later.
constexpr int64_t kMaxFileShapeElements = int64_t{1} << 40;
// The element count of a shape that came from outside the process, or false
// when a dimension is negative or the count passes kMaxFileShapeElements
// (checked as it is multiplied, so it never overflows).
bool BoundedNumElements(const Shape& shape, int64_t* count);
// "[1,3,416,416]"
std::string ShapeToString(const Shape& shape);

// A row-major float32 tensor that owns its data. The first dimension is the
// batch for every model input and output.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape) : shape_(std::move(shape)), data_(NumElements(shape_)) {}
  Tensor(Shape shape, std::vector<float> data) : shape_(std::move(shape)), data_(std::move(data)) {}

  const Shape& shape() const { return shape_; }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  std::vector<float>& values() { return data_; }
  const std::vector<float>& values() const { return data_; }

 private:
  Shape shape_;
  std::vector<float> data_;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

}  // namespace lowbit::engine
