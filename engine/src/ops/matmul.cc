// MatMul and Gemm on float32 activations in logical (row-major) order.
//
// MatMul: A [1, ..., M, K] (an activation, batch first) times
//   - a constant B [K, N]: every row of A (batch * prod(A[:-1]) rows) times B;
//   - an activation B [1, ..., K, N] with A's leading dimensions: one product
//     per matrix.
// Gemm: Y = alpha * A' B' + beta * C with A [1, K] an activation (transA = 0;
// the rows scale with the batch), B a constant [K, N] or [N, K] (transB), C a
// constant broadcast to [M, N] (shape [], [1], [N], [1, N]).
// Constant B is repacked at creation as [N][K] so that every output element is
// a contiguous dot product, accumulated in float in index order.
#include <algorithm>

#include "ops/kernel.h"

namespace lowbit::engine::ops {
namespace {

// Rows of A ([rows][K]) times constant B (packed [N][K]) plus bias[N] (scaled).
class ConstantMatMulKernel final : public FloatKernel {
 public:
  ConstantMatMulKernel(int64_t rows, int64_t k, int64_t n, std::vector<float> b_nk,
                       std::vector<float> bias, float alpha)
      : rows_(rows), k_(k), n_(n), b_nk_(std::move(b_nk)), bias_(std::move(bias)), alpha_(alpha) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    const int64_t rows = rows_ * context.batch;
    ParallelForRanges(context, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n_, 1)),
                      [&](int64_t begin, int64_t end) {
                        for (int64_t r = begin; r < end; ++r) {
                          const float* a = inputs[0] + r * k_;
                          float* y = outputs[0] + r * n_;
                          for (int64_t j = 0; j < n_; ++j) {
                            const float* b = b_nk_.data() + j * k_;
                            float sum = 0.0f;
                            for (int64_t i = 0; i < k_; ++i) sum += a[i] * b[i];
                            y[j] = alpha_ * sum + (bias_.empty() ? 0.0f : bias_[j]);
                          }
                        }
                      });
    return Status::Ok();
  }

 private:
  int64_t rows_, k_, n_;
  std::vector<float> b_nk_;
  std::vector<float> bias_;  // empty, or N values already multiplied by beta
  float alpha_;
};

// `matrices` products of A [M][K] and B [K][N], both activations.
class BatchedMatMulKernel final : public FloatKernel {
 public:
  BatchedMatMulKernel(int64_t matrices, int64_t m, int64_t k, int64_t n)
      : matrices_(matrices), m_(m), k_(k), n_(n) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    const int64_t count = matrices_ * context.batch;
    ParallelFor(context, static_cast<size_t>(count * m_), [&](size_t task) {
      const int64_t matrix = static_cast<int64_t>(task) / m_, row = static_cast<int64_t>(task) % m_;
      const float* a = inputs[0] + (matrix * m_ + row) * k_;
      const float* b = inputs[1] + matrix * k_ * n_;
      float* y = outputs[0] + (matrix * m_ + row) * n_;
      std::fill(y, y + n_, 0.0f);
      for (int64_t i = 0; i < k_; ++i)
        for (int64_t j = 0; j < n_; ++j) y[j] += a[i] * b[i * n_ + j];
    });
    return Status::Ok();
  }

 private:
  int64_t matrices_, m_, k_, n_;
};

// B [K][N] (or [N][K] when `transposed`) as [N][K].
std::vector<float> PackNk(const std::vector<float>& b, int64_t k, int64_t n, bool transposed) {
  if (transposed) return b;
  std::vector<float> packed(k * n);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) packed[j * k + i] = b[i * n + j];
  return packed;
}

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateMatMulKernel(const ir::Graph& graph, const ir::Node& node) {
  for (int in : node.inputs)
    if (in != ir::kNoValue && graph.values[in].dtype != ir::DataType::kFloat32)
      return Unimplemented(node.Describe() + ": only float32 operands are supported");
  for (int in : node.inputs)
    if (in != ir::kNoValue && !graph.values[in].is_constant() &&
        !graph.values[in].storage_perm.empty())
      return Internal(node.Describe() + ": expects its activations in logical order");
  const ir::Value& a = graph.values[node.inputs.at(0)];
  const ir::Value& b = graph.values[node.inputs.at(1)];
  if (a.is_constant())
    return Unimplemented(node.Describe() +
                         ": the first operand is a constant; lowbit needs the activation first");
  if (a.shape.size() < 2)
    return Unimplemented(node.Describe() + ": the first operand must have rank >= 2 (batch first)");
  const int64_t k = a.shape.back();
  const int64_t rows = NumElements(a.shape) / std::max<int64_t>(k, 1);

  if (node.op_type == "Gemm") {
    if (node.GetInt("transA", 0) != 0)
      return Unimplemented(node.Describe() + ": transA = 1 (the rows of A are the batch)");
    if (a.shape.size() != 2 || !b.is_constant() || b.shape.size() != 2)
      return Unimplemented(node.Describe() + ": Gemm needs A [M,K] and a constant B");
    const bool trans_b = node.GetInt("transB", 0) != 0;
    const int64_t n = trans_b ? b.shape[0] : b.shape[1];
    if ((trans_b ? b.shape[1] : b.shape[0]) != k)
      return InvalidArgument(node.Describe() + ": A and B do not agree on K");
    const float alpha = node.GetFloat("alpha", 1.0f), beta = node.GetFloat("beta", 1.0f);
    std::vector<float> bias;
    if (ir::HasInput(node, 2)) {
      const ir::Value& c = graph.values[node.inputs[2]];
      if (!c.is_constant()) return Unimplemented(node.Describe() + ": C must be a constant");
      const int64_t count = NumElements(c.shape);
      const bool per_column = count == n && (c.shape.size() <= 1 || c.shape[0] == 1);
      if (count != 1 && !per_column)
        return Unimplemented(node.Describe() + ": C " + ShapeToString(c.shape) +
                             " must broadcast along the rows ([N], [1,N] or a scalar)");
      bias.resize(n);
      for (int64_t j = 0; j < n; ++j) bias[j] = beta * c.constant->floats[count == 1 ? 0 : j];
    }
    return std::unique_ptr<Kernel>(new ConstantMatMulKernel(
        rows, k, n, PackNk(b.constant->floats, k, n, trans_b), std::move(bias), alpha));
  }

  if (b.is_constant()) {
    if (b.shape.size() != 2)
      return Unimplemented(node.Describe() + ": a constant second operand must be [K,N]");
    if (b.shape[0] != k) return InvalidArgument(node.Describe() + ": operands disagree on K");
    const int64_t n = b.shape[1];
    return std::unique_ptr<Kernel>(
        new ConstantMatMulKernel(rows, k, n, PackNk(b.constant->floats, k, n, false), {}, 1.0f));
  }
  if (b.shape.size() != a.shape.size() ||
      !std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin()) ||
      b.shape[b.shape.size() - 2] != k)
    return Unimplemented(node.Describe() + ": two activation operands " + ShapeToString(a.shape) +
                         " x " + ShapeToString(b.shape) +
                         " need the same leading dimensions (no broadcasting)");
  const int64_t m = a.shape[a.shape.size() - 2], n = b.shape.back();
  return std::unique_ptr<Kernel>(new BatchedMatMulKernel(rows / m, m, k, n));
}

}  // namespace lowbit::engine::ops
