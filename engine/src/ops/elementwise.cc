// Element-wise unary and broadcasting binary ops, in physical (storage) order.
// The layout pass gives every operand of a binary op the same storage order
// and rank, so broadcasting is per physical axis. Relu/Clip/LeakyRelu/Sigmoid
// and the binary ops run on XNNPACK's vectorised operators; the rarer unary
// ops use plain loops.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/kernel.h"
#include "ops/xnnpack_util.h"

namespace lowbit::engine::ops {
namespace {

enum class UnaryOp { kRelu, kLeakyRelu, kSigmoid, kClip, kTanh, kExp, kNeg, kSqrt, kAbs };
enum class BinaryOp { kAdd, kSub, kMul, kDiv, kMax, kMin };

constexpr int64_t kBlock = 16384;  // elements per parallel task

// Tanh / Exp / Neg / Sqrt / Abs as plain loops over N * frame elements.
class UnaryKernel final : public FloatKernel {
 public:
  UnaryKernel(UnaryOp op, int64_t frame) : op_(op), frame_(frame) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    const float* x = inputs[0];
    float* y = outputs[0];
    const int64_t total = frame_ * context.batch;
    ParallelForRanges(context, total, kBlock,
                      [&](int64_t begin, int64_t end) { Apply(x + begin, y + begin, end - begin); });
    return Status::Ok();
  }

 private:
  void Apply(const float* x, float* y, int64_t n) const {
    switch (op_) {
      default:  // Relu, LeakyRelu, Sigmoid, Clip: XnnpackUnaryKernel
        break;
      case UnaryOp::kTanh:
        for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
        break;
      case UnaryOp::kExp:
        for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
        break;
      case UnaryOp::kNeg:
        for (int64_t i = 0; i < n; ++i) y[i] = -x[i];
        break;
      case UnaryOp::kSqrt:
        for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(x[i]);
        break;
      case UnaryOp::kAbs:
        for (int64_t i = 0; i < n; ++i) y[i] = std::fabs(x[i]);
        break;
    }
  }

  UnaryOp op_;
  int64_t frame_;
};

// Relu / Clip / LeakyRelu / Sigmoid through XNNPACK's vectorised NC
// operators: the frame is one row of `frame` channels, the batch the rows.
class XnnpackUnaryKernel final : public FloatKernel {
 public:
  explicit XnnpackUnaryKernel(int64_t frame) : frame_(frame) {}
  Status Create(UnaryOp op, float a, float b) {
    LOWBIT_RETURN_IF_ERROR(InitializeXnnpack());
    xnn_status status = xnn_status_unsupported_parameter;
    if (op == UnaryOp::kRelu)
      status = xnn_create_clamp_nc_f32(frame_, frame_, frame_, 0.0f,
                                       std::numeric_limits<float>::infinity(), 0, op_.Receive());
    else if (op == UnaryOp::kClip)
      status = xnn_create_clamp_nc_f32(frame_, frame_, frame_, a, b, 0, op_.Receive());
    else if (op == UnaryOp::kLeakyRelu)
      status = xnn_create_leaky_relu_nc_f32(frame_, frame_, frame_, a, 0, op_.Receive());
    else if (op == UnaryOp::kSigmoid)
      status = xnn_create_sigmoid_nc_f32(frame_, frame_, frame_, 0, op_.Receive());
    op_kind_ = op;
    if (status != xnn_status_success)
      return Internal("XNNPACK rejected an element-wise operator (status " +
                      std::to_string(status) + ")");
    return Status::Ok();
  }

  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    auto setup = op_kind_ == UnaryOp::kLeakyRelu ? xnn_setup_leaky_relu_nc_f32
                 : op_kind_ == UnaryOp::kSigmoid ? xnn_setup_sigmoid_nc_f32
                                                 : xnn_setup_clamp_nc_f32;
    return op_.Run(
        {context, inputs[0], outputs[0]},
        [&](xnn_operator_t op) {
          return setup(op, context.batch, inputs[0], outputs[0], context.threadpool);
        },
        "element-wise operator");
  }

 private:
  int64_t frame_;
  UnaryOp op_kind_ = UnaryOp::kRelu;
  XnnpackOperator op_;
};

// Broadcasting binary ops through XNNPACK's ND operators (rank <= 6), with an
// optional fused output clamp (Relu/Clip after an Add, see FuseActivations).
class XnnpackBinaryKernel final : public FloatKernel {
 public:
  XnnpackBinaryKernel(BinaryOp op, Operand a, Operand b)
      : op_kind_(op), a_(std::move(a)), b_(std::move(b)) {}
  Status Create(float out_min, float out_max) {
    LOWBIT_RETURN_IF_ERROR(InitializeXnnpack());
    if (a_.physical.size() > XNN_MAX_TENSOR_DIMS || b_.physical.size() > XNN_MAX_TENSOR_DIMS)
      return Unimplemented("binary operands of rank > 6");
    xnn_status status = xnn_status_unsupported_parameter;
    switch (op_kind_) {
      case BinaryOp::kAdd:
        status = xnn_create_add_nd_f32(out_min, out_max, 0, op_.Receive());
        break;
      case BinaryOp::kSub:
        status = xnn_create_subtract_nd_f32(out_min, out_max, 0, op_.Receive());
        break;
      case BinaryOp::kMul:
        status = xnn_create_multiply_nd_f32(out_min, out_max, 0, op_.Receive());
        break;
      case BinaryOp::kDiv:
        status = xnn_create_divide_nd_f32(out_min, out_max, 0, op_.Receive());
        break;
      case BinaryOp::kMax:
        status = xnn_create_maximum_nd_f32(0, op_.Receive());
        break;
      case BinaryOp::kMin:
        status = xnn_create_minimum_nd_f32(0, op_.Receive());
        break;
    }
    if (status != xnn_status_success) return Internal("XNNPACK rejected a binary operator");
    return Status::Ok();
  }

  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    return op_.Run(
        {context, inputs[0], outputs[0], inputs[1]},
        [&](xnn_operator_t op) {
          const Shape sa = a_.AtBatch(context.batch), sb = b_.AtBatch(context.batch);
          const std::vector<size_t> da(sa.begin(), sa.end()), db(sb.begin(), sb.end());
          auto setup = op_kind_ == BinaryOp::kAdd   ? xnn_setup_add_nd_f32
                       : op_kind_ == BinaryOp::kSub ? xnn_setup_subtract_nd_f32
                       : op_kind_ == BinaryOp::kMul ? xnn_setup_multiply_nd_f32
                       : op_kind_ == BinaryOp::kDiv ? xnn_setup_divide_nd_f32
                       : op_kind_ == BinaryOp::kMax ? xnn_setup_maximum_nd_f32
                                                    : xnn_setup_minimum_nd_f32;
          return setup(op, da.size(), da.data(), db.size(), db.data(), inputs[0], inputs[1],
                       outputs[0], context.threadpool);
        },
        "binary operator");
  }

 private:
  BinaryOp op_kind_;
  Operand a_, b_;
  XnnpackOperator op_;
};

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateElementwiseKernel(const ir::Graph& graph,
                                                          const ir::Node& node) {
  const std::string& op = node.op_type;
  for (int in : node.inputs)
    if (in != ir::kNoValue && graph.values[in].dtype != ir::DataType::kFloat32 &&
        !(op == "Clip" && graph.values[in].is_constant()))
      return Unimplemented(node.Describe() + ": only float32 operands are supported");
  const int64_t frame = NumElements(graph.values[node.outputs[0]].shape);
  auto xnnpack_unary = [&](UnaryOp op, float a, float b) -> StatusOr<std::unique_ptr<Kernel>> {
    auto kernel = std::make_unique<XnnpackUnaryKernel>(frame);
    LOWBIT_RETURN_IF_ERROR(kernel->Create(op, a, b));
    return std::unique_ptr<Kernel>(std::move(kernel));
  };
  if (op == "Relu") return xnnpack_unary(UnaryOp::kRelu, 0, 0);
  if (op == "LeakyRelu")
    return xnnpack_unary(UnaryOp::kLeakyRelu, node.GetFloat("alpha", 0.01f), 0);
  if (op == "Sigmoid") return xnnpack_unary(UnaryOp::kSigmoid, 0, 0);
  if (op == "Tanh") return std::unique_ptr<Kernel>(new UnaryKernel(UnaryOp::kTanh, frame));
  if (op == "Exp") return std::unique_ptr<Kernel>(new UnaryKernel(UnaryOp::kExp, frame));
  if (op == "Neg") return std::unique_ptr<Kernel>(new UnaryKernel(UnaryOp::kNeg, frame));
  if (op == "Sqrt") return std::unique_ptr<Kernel>(new UnaryKernel(UnaryOp::kSqrt, frame));
  if (op == "Abs") return std::unique_ptr<Kernel>(new UnaryKernel(UnaryOp::kAbs, frame));
  if (op == "Clip") {
    float min = node.GetFloat("min", -std::numeric_limits<float>::infinity());
    float max = node.GetFloat("max", std::numeric_limits<float>::infinity());
    if (ir::HasInput(node, 1)) {
      LOWBIT_ASSIGN_OR_RETURN(auto v, ir::ConstantFloats(graph, node, 1));
      min = v.at(0);
    }
    if (ir::HasInput(node, 2)) {
      LOWBIT_ASSIGN_OR_RETURN(auto v, ir::ConstantFloats(graph, node, 2));
      max = v.at(0);
    }
    return xnnpack_unary(UnaryOp::kClip, min, max);
  }
  BinaryOp binary;
  if (op == "Add")
    binary = BinaryOp::kAdd;
  else if (op == "Sub")
    binary = BinaryOp::kSub;
  else if (op == "Mul")
    binary = BinaryOp::kMul;
  else if (op == "Div")
    binary = BinaryOp::kDiv;
  else if (op == "Max")
    binary = BinaryOp::kMax;
  else if (op == "Min")
    binary = BinaryOp::kMin;
  else
    return Unimplemented("unsupported element-wise op '" + op + "' (node '" + node.name + "')");
  if (node.inputs.size() != 2)
    return Unimplemented(node.Describe() + ": only two-input " + op + " is supported");
  Operand a = DescribeOperand(graph.values[node.inputs[0]]);
  Operand b = DescribeOperand(graph.values[node.inputs[1]]);
  const ClampRange clamp = FusedClampRange(node);
  auto xnnpack = std::make_unique<XnnpackBinaryKernel>(binary, a, b);
  LOWBIT_RETURN_IF_ERROR(xnnpack->Create(clamp.min, clamp.max).WithContext(node.Describe()));
  return std::unique_ptr<Kernel>(std::move(xnnpack));
}

}  // namespace lowbit::engine::ops
