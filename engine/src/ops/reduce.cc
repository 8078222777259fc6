// Softmax and ReduceMean / ReduceSum / ReduceMax on float32 activations in
// logical (row-major) order; the batch axis is never reduced.
//
// Both view the input as [outer][axis][inner]: Softmax normalises along
// `axis` (opset >= 13: one axis; before: the flattened dimensions from `axis`
// on, inner = 1); a reduction over a set of axes is done one axis at a time
// from the last, each pass reading the previous pass's output.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <set>

#include "ops/kernel.h"

namespace lowbit::engine::ops {
namespace {

class SoftmaxKernel final : public FloatKernel {
 public:
  SoftmaxKernel(int64_t outer, int64_t axis, int64_t inner)
      : outer_(outer), axis_(axis), inner_(inner) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    constexpr int64_t kChunk = 256;  // inner positions per task (stack scratch)
    const int64_t chunks = (inner_ + kChunk - 1) / kChunk;
    ParallelFor(context, static_cast<size_t>(outer_ * context.batch * chunks), [&](size_t task) {
      const int64_t o = static_cast<int64_t>(task) / chunks;
      const int64_t begin = (static_cast<int64_t>(task) % chunks) * kChunk;
      const int64_t width = std::min(kChunk, inner_ - begin);
      const float* x = inputs[0] + o * axis_ * inner_ + begin;
      float* y = outputs[0] + o * axis_ * inner_ + begin;
      std::array<float, kChunk> max, sum;
      std::fill(max.begin(), max.begin() + width, -std::numeric_limits<float>::infinity());
      std::fill(sum.begin(), sum.begin() + width, 0.0f);
      for (int64_t c = 0; c < axis_; ++c)
        for (int64_t i = 0; i < width; ++i) max[i] = std::max(max[i], x[c * inner_ + i]);
      for (int64_t c = 0; c < axis_; ++c)
        for (int64_t i = 0; i < width; ++i) {
          const float e = std::exp(x[c * inner_ + i] - max[i]);
          y[c * inner_ + i] = e;
          sum[i] += e;
        }
      for (int64_t c = 0; c < axis_; ++c)
        for (int64_t i = 0; i < width; ++i) y[c * inner_ + i] /= sum[i];
    });
    return Status::Ok();
  }

 private:
  int64_t outer_, axis_, inner_;
};

enum class Reduction { kMean, kSum, kMax };

// One pass: [outer][axis][inner] -> [outer][inner].
struct ReducePass {
  int64_t outer, axis, inner;
};

class ReduceKernel final : public FloatKernel {
 public:
  ReduceKernel(Reduction op, std::vector<ReducePass> passes, int64_t in_frame, int64_t count)
      : op_(op), passes_(std::move(passes)), in_frame_(in_frame), count_(count) {}

  // Two ping-pong buffers of the first pass's output size, per batch.
  int64_t workspace_bytes(int64_t batch) const override {
    if (passes_.size() <= 1) return 0;
    return 2 * batch * passes_[0].outer * passes_[0].inner * static_cast<int64_t>(sizeof(float));
  }

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    float* scratch = static_cast<float*>(context.workspace);
    const float* source = inputs[0];
    for (size_t p = 0; p < passes_.size(); ++p) {
      const ReducePass& pass = passes_[p];
      const bool last = p + 1 == passes_.size();
      const int64_t half = passes_[0].outer * passes_[0].inner * context.batch;
      float* target = last ? outputs[0] : scratch + (p % 2) * half;
      const int64_t outer = pass.outer * context.batch;
      ParallelFor(context, static_cast<size_t>(outer), [&](size_t o) {
        const float* x = source + o * pass.axis * pass.inner;
        float* y = target + o * pass.inner;
        std::copy(x, x + pass.inner, y);
        for (int64_t c = 1; c < pass.axis; ++c)
          for (int64_t i = 0; i < pass.inner; ++i)
            y[i] = op_ == Reduction::kMax ? std::max(y[i], x[c * pass.inner + i])
                                          : y[i] + x[c * pass.inner + i];
        if (last && op_ == Reduction::kMean)
          for (int64_t i = 0; i < pass.inner; ++i) y[i] /= static_cast<float>(count_);
      });
      source = target;
    }
    if (passes_.empty()) std::copy(inputs[0], inputs[0] + in_frame_ * context.batch, outputs[0]);
    return Status::Ok();
  }

 private:
  Reduction op_;
  std::vector<ReducePass> passes_;
  int64_t in_frame_, count_;
};

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateReduceKernel(const ir::Graph& graph, const ir::Node& node) {
  const ir::Value& input = graph.values[node.inputs.at(0)];
  if (input.dtype != ir::DataType::kFloat32)
    return Unimplemented(node.Describe() + ": only float32 input is supported");
  if (!input.storage_perm.empty())
    return Internal(node.Describe() + ": expects its input in logical order");
  const Shape& x = input.shape;
  if (node.op_type == "Softmax") {
    const bool legacy = graph.opset < 13;
    LOWBIT_ASSIGN_OR_RETURN(
        int axis, ir::NormalizeAxis(node.GetInt("axis", legacy ? 1 : -1), x.size(), node));
    if (axis == 0) return Unimplemented(node.Describe() + ": Softmax along the batch axis");
    int64_t outer = 1, along = x[axis], inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x[d];
    for (size_t d = axis + 1; d < x.size(); ++d) (legacy ? along : inner) *= x[d];
    return std::unique_ptr<Kernel>(new SoftmaxKernel(outer, along, inner));
  }
  const Reduction op = node.op_type == "ReduceMean"  ? Reduction::kMean
                       : node.op_type == "ReduceSum" ? Reduction::kSum
                                                     : Reduction::kMax;
  // Shape inference left the normalised axes in the attribute `axes`.
  std::set<int64_t> axes;
  for (int64_t a : node.GetInts("axes")) axes.insert(a);
  if (axes.count(0)) return Unimplemented(node.Describe() + ": reduces the batch axis");
  std::vector<ReducePass> passes;
  Shape shape = x;
  int64_t count = 1;
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) {
    const int64_t a = *it;
    ReducePass pass{1, shape[a], 1};
    for (int64_t d = 0; d < a; ++d) pass.outer *= shape[d];
    for (size_t d = a + 1; d < shape.size(); ++d) pass.inner *= shape[d];
    count *= shape[a];
    shape[a] = 1;
    passes.push_back(pass);
  }
  return std::unique_ptr<Kernel>(new ReduceKernel(op, std::move(passes), NumElements(x), count));
}

}  // namespace lowbit::engine::ops
