// Activations beyond the XNNPACK set (ops/elementwise.cc): HardSigmoid,
// HardSwish, lowbit.SiLU (x * sigmoid(x), made by FuseSiLU from Sigmoid and
// Mul), PRelu with a constant slope, and Pow with broadcasting. Plain loops in
// storage order; PRelu runs in logical order (the layout pass gives ops it
// does not know logical order), its slope expanded to one frame at creation.
#include <algorithm>
#include <bit>
#include <cmath>

#include "ops/cpu_clones.h"
#include "ops/kernel.h"

namespace lowbit::engine::ops {
namespace {

constexpr int64_t kBlock = 16384;  // elements per parallel task

// exp(t) for t <= 0, within about 1 ulp of std::exp above its clamp at -87
// (below it, exp(-87) ~ 1.6e-38 stands in for values that small). Written
// without calls so the compiler vectorises the loops that inline it (with
// -fno-trapping-math, engine/CMakeLists.txt): std::exp stays scalar, and SiLU
// over it took a third of YOLOv8n's time.
// Cody-Waite reduction t = n ln2 + r, |r| <= ln2 / 2, then the degree-7
// minimax polynomial of Cephes' expf for e^r, scaled by 2^n in the exponent.
inline float ExpNonPositive(float t) {
  t = t < -87.0f ? -87.0f : t;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (t * 1.44269504089f + kRound) - kRound;
  const float r = (t - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t scale = (static_cast<int32_t>(n) + 127) << 23;  // n in [-126, 0]
  return p * std::bit_cast<float>(scale);
}

// y = x * sigmoid(x), with sigmoid from e = exp(-|x|) so that no exp overflows:
// x / (1 + e) for x >= 0, x e / (1 + e) below (one division, one rounding
// fewer than x * (1 / (1 + e))). y may be x (a run in place):
// element i reads only x[i], so ivdep keeps the loop vectorised then too.
// Cloned per ISA (ops/cpu_clones.h): 1.25 / 0.43 / 0.21 ns per element for
// SSE2 / AVX2 / AVX-512 on a Zen 4.
LOWBIT_X86_CLONES void Silu(const float* x, float* y, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const float a = x[i];
    const float e = ExpNonPositive(-std::fabs(a));
    y[i] = (a >= 0.0f ? a : a * e) / (1.0f + e);
  }
}

// y = clamp(alpha x + beta, 0, 1) and x times it; cloned like Silu (a
// W8A8 PP-LCNet spent 8% of its time in HardSwish at SSE2's width).
LOWBIT_X86_CLONES void HardSigmoid(const float* x, float* y, int64_t n, float alpha, float beta) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) y[i] = std::max(0.0f, std::min(1.0f, alpha * x[i] + beta));
}
LOWBIT_X86_CLONES void HardSwish(const float* x, float* y, int64_t n, float alpha, float beta) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * std::max(0.0f, std::min(1.0f, alpha * x[i] + beta));
}

enum class Activation { kHardSigmoid, kHardSwish, kSiLU };

class ActivationKernel final : public FloatKernel {
 public:
  ActivationKernel(Activation op, int64_t frame, float alpha, float beta)
      : op_(op), frame_(frame), alpha_(alpha), beta_(beta) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    const float* x = inputs[0];
    float* y = outputs[0];
    ParallelForRanges(context, frame_ * context.batch, kBlock, [&](int64_t begin, int64_t end) {
      switch (op_) {
        case Activation::kHardSigmoid:
          HardSigmoid(x + begin, y + begin, end - begin, alpha_, beta_);
          break;
        case Activation::kHardSwish:
          HardSwish(x + begin, y + begin, end - begin, alpha_, beta_);
          break;
        case Activation::kSiLU:
          Silu(x + begin, y + begin, end - begin);
          break;
      }
    });
    return Status::Ok();
  }

 private:
  Activation op_;
  int64_t frame_;
  float alpha_, beta_;
};

// y = x < 0 ? slope * x : x; `slope` holds one frame in logical order.
class PReluKernel final : public FloatKernel {
 public:
  explicit PReluKernel(std::vector<float> slope) : slope_(std::move(slope)) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    const int64_t frame = static_cast<int64_t>(slope_.size());
    ParallelFor(context, static_cast<size_t>(context.batch), [&](size_t n) {
      const float* x = inputs[0] + n * frame;
      float* y = outputs[0] + n * frame;
      for (int64_t i = 0; i < frame; ++i) y[i] = x[i] < 0 ? slope_[i] * x[i] : x[i];
    });
    return Status::Ok();
  }

 private:
  std::vector<float> slope_;
};

// Pow(a, b) over operands of one rank in one storage order (the layout pass
// guarantees it); a dimension of size 1 broadcasts.
class PowKernel final : public FloatKernel {
 public:
  PowKernel(Operand a, Operand b, Operand y)
      : a_(std::move(a)), b_(std::move(b)), y_(std::move(y)) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    const Shape sy = y_.AtBatch(context.batch);
    const Shape sa = a_.AtBatch(context.batch), sb = b_.AtBatch(context.batch);
    const size_t rank = sy.size();
    // Element strides of a and b per output axis, 0 where they broadcast.
    std::vector<int64_t> stride_a(rank, 0), stride_b(rank, 0);
    int64_t step_a = 1, step_b = 1;
    for (size_t d = rank; d-- > 0;) {
      stride_a[d] = sa[d] == 1 ? 0 : step_a;
      stride_b[d] = sb[d] == 1 ? 0 : step_b;
      step_a *= sa[d];
      step_b *= sb[d];
    }
    const int64_t inner = rank ? sy[rank - 1] : 1;
    const int64_t rows = NumElements(sy) / std::max<int64_t>(inner, 1);
    const float* a = inputs[0];
    const float* b = inputs[1];
    float* y = outputs[0];
    ParallelForRanges(context, rows, std::max<int64_t>(1, kBlock / std::max<int64_t>(inner, 1)),
                      [&](int64_t begin, int64_t end) {
                        for (int64_t r = begin; r < end; ++r) {
                          int64_t oa = 0, ob = 0, rest = r;
                          for (size_t d = rank - 1; d-- > 0;) {
                            const int64_t i = rest % sy[d];
                            rest /= sy[d];
                            oa += i * stride_a[d];
                            ob += i * stride_b[d];
                          }
                          const int64_t ia = rank ? stride_a[rank - 1] : 0;
                          const int64_t ib = rank ? stride_b[rank - 1] : 0;
                          float* row = y + r * inner;
                          for (int64_t k = 0; k < inner; ++k)
                            row[k] = std::pow(a[oa + k * ia], b[ob + k * ib]);
                        }
                      });
    return Status::Ok();
  }

 private:
  Operand a_, b_, y_;
};

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateActivationKernel(const ir::Graph& graph,
                                                         const ir::Node& node) {
  const std::string& op = node.op_type;
  for (int in : node.inputs)
    if (in != ir::kNoValue && graph.values[in].dtype != ir::DataType::kFloat32)
      return Unimplemented(node.Describe() + ": only float32 operands are supported");
  const ir::Value& output = graph.values[node.outputs[0]];
  const int64_t frame = NumElements(output.shape);
  if (op == "HardSigmoid")
    return std::unique_ptr<Kernel>(new ActivationKernel(Activation::kHardSigmoid, frame,
                                                        node.GetFloat("alpha", 0.2f),
                                                        node.GetFloat("beta", 0.5f)));
  if (op == "HardSwish")
    return std::unique_ptr<Kernel>(
        new ActivationKernel(Activation::kHardSwish, frame, 1.0f / 6.0f, 0.5f));
  if (op == "lowbit.SiLU")
    return std::unique_ptr<Kernel>(new ActivationKernel(Activation::kSiLU, frame, 0, 0));
  if (op == "PRelu") {
    const ir::Value& input = graph.values[node.inputs[0]];
    const ir::Value& slope = graph.values[node.inputs.at(1)];
    if (!slope.is_constant())
      return Unimplemented(node.Describe() + ": the slope must be a constant");
    if (!input.storage_perm.empty())
      return Internal(node.Describe() + ": PRelu expects its input in logical order");
    // Unidirectional broadcast of the slope (right-aligned) over one frame.
    const Shape& x = input.shape;
    const Shape& s = slope.shape;
    if (s.size() > x.size())
      return Unimplemented(node.Describe() + ": the slope has a higher rank than the input");
    std::vector<float> expanded(frame);
    std::vector<int64_t> index(x.size(), 0);
    for (int64_t i = 0; i < frame; ++i) {
      int64_t offset = 0;
      for (size_t d = 0; d < s.size(); ++d) {
        const int64_t dim = s[d], at = index[x.size() - s.size() + d];
        if (dim != 1 && dim != x[x.size() - s.size() + d])
          return Unimplemented(node.Describe() + ": the slope " + ShapeToString(s) +
                               " does not broadcast to the input " + ShapeToString(x));
        offset = offset * dim + (dim == 1 ? 0 : at);
      }
      expanded[i] = slope.constant->floats.at(offset);
      for (int d = static_cast<int>(x.size()) - 1; d >= 0; --d) {
        if (++index[d] < x[d]) break;
        index[d] = 0;
      }
    }
    return std::unique_ptr<Kernel>(new PReluKernel(std::move(expanded)));
  }
  if (op == "Pow") {
    Operand a = DescribeOperand(graph.values[node.inputs.at(0)]);
    Operand b = DescribeOperand(graph.values[node.inputs.at(1)]);
    Operand y = DescribeOperand(output);
    if (a.physical.size() != y.physical.size() || b.physical.size() != y.physical.size())
      return Unimplemented(node.Describe() + ": Pow operands of different ranks at run time");
    return std::unique_ptr<Kernel>(new PowKernel(std::move(a), std::move(b), std::move(y)));
  }
  return Unimplemented("unsupported activation '" + op + "' (node '" + node.name + "')");
}

}  // namespace lowbit::engine::ops
