// Concat, Split, Slice, Pad and lowbit.Relayout on physical buffers. Logical
// axes from the node's attributes are mapped through each operand's storage
// order; constant operands (one frame) are reused for every frame. Concat,
// Split, Slice and Relayout move elements of any dtype (float32 or integer
// codes); Pad is float32.
#include <algorithm>
#include <cstring>

#include "ops/kernel.h"
#include "ops/xnnpack_util.h"
#include "ir/node_semantics.h"

namespace lowbit::engine::ops {
namespace {

// Copies a strided box: out[i0..][i1..]... = in[start + i * step] per
// physical axis, with a batch-scaled outer dimension. Rows along the last
// axis with step 1 use memcpy.
struct StridedCopy {
  Shape out_shape;                  // physical, at batch 1
  std::vector<int64_t> in_strides;  // elements, per physical axis (already x step)
  int64_t in_start = 0;             // element offset of the first element
  int64_t in_frame = 0;             // elements per input frame (0: not batched)
  int64_t out_frame = 0;
  int64_t element_bytes = 4;

  void Run(const KernelContext& context, const void* in_data, void* out_data) const {
    const char* in = static_cast<const char*>(in_data);
    char* out = static_cast<char*>(out_data);
    const int64_t e = element_bytes;
    const size_t rank = out_shape.size();
    const int64_t inner = out_shape[rank - 1];
    const int64_t rows = out_frame / std::max<int64_t>(inner, 1);
    const bool contiguous = in_strides[rank - 1] == 1;
    ParallelFor(context, static_cast<size_t>(context.batch * rows), [&](size_t task) {
      const int64_t frame = task / rows, row = task % rows;
      int64_t offset = in_start + frame * in_frame, rest = row;
      for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
        offset += (rest % out_shape[d]) * in_strides[d];
        rest /= out_shape[d];
      }
      char* dst = out + (frame * out_frame + row * inner) * e;
      const char* src = in + offset * e;
      if (contiguous) {
        std::memcpy(dst, src, inner * e);
      } else if (e == 4) {
        for (int64_t i = 0; i < inner; ++i)
          std::memcpy(dst + i * 4, src + i * in_strides[rank - 1] * 4, 4);
      } else {
        for (int64_t i = 0; i < inner; ++i)
          std::memcpy(dst + i * e, src + i * in_strides[rank - 1] * e, e);
      }
    });
  }
};

std::vector<int64_t> Strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

// Concat: output rows of `outer` blocks; input k contributes a contiguous
// chunk of chunk[k] elements per block.
class ConcatKernel final : public Kernel {
 public:
  ConcatKernel(std::vector<Operand> inputs, const Operand& output, int logical_axis,
               int64_t element_bytes)
      : element_bytes_(element_bytes) {
    const int axis = output.PhysicalAxis(logical_axis);
    outer_per_frame_ = 1;
    for (int d = 1; d < axis; ++d) outer_per_frame_ *= output.physical[d];
    if (axis == 0) outer_per_frame_ = 1;
    for (const Operand& in : inputs) {
      int64_t chunk = 1;
      for (size_t d = std::max(axis, 1); d < in.physical.size(); ++d) chunk *= in.physical[d];
      if (axis == 0) chunk = NumElements(in.physical);
      chunks_.push_back(chunk);
      batched_.push_back(in.batched);
    }
    out_block_ = 0;
    for (int64_t c : chunks_) out_block_ += c;
  }

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const int64_t blocks = outer_per_frame_ * context.batch, e = element_bytes_;
    char* out = static_cast<char*>(outputs[0]);
    ParallelFor(context, static_cast<size_t>(blocks), [&](size_t block) {
      char* dst = out + block * out_block_ * e;
      for (size_t k = 0; k < chunks_.size(); ++k) {
        const int64_t source_block = batched_[k] ? block : block % outer_per_frame_;
        std::memcpy(dst, static_cast<const char*>(inputs[k]) + source_block * chunks_[k] * e,
                    chunks_[k] * e);
        dst += chunks_[k] * e;
      }
    });
    return Status::Ok();
  }

 private:
  int64_t element_bytes_;
  int64_t outer_per_frame_ = 1, out_block_ = 0;
  std::vector<int64_t> chunks_;
  std::vector<char> batched_;
};

class SplitKernel final : public Kernel {
 public:
  SplitKernel(const Operand& input, const std::vector<Operand>& outputs, int logical_axis,
              int64_t element_bytes) {
    const int axis = input.PhysicalAxis(logical_axis);
    const Shape in_strides = Strides(input.physical);
    int64_t start = 0;
    for (const Operand& out : outputs) {
      StridedCopy copy;
      copy.out_shape = out.physical;
      copy.in_strides = in_strides;
      copy.in_start = start * in_strides[axis];
      copy.in_frame = NumElements(input.physical);
      copy.out_frame = NumElements(out.physical);
      copy.element_bytes = element_bytes;
      copies_.push_back(copy);
      start += out.physical[axis];
    }
  }

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    for (size_t k = 0; k < copies_.size(); ++k) copies_[k].Run(context, inputs[0], outputs[k]);
    return Status::Ok();
  }

 private:
  std::vector<StridedCopy> copies_;
};

class StridedCopyKernel final : public Kernel {
 public:
  explicit StridedCopyKernel(StridedCopy copy) : copy_(std::move(copy)) {}
  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    copy_.Run(context, inputs[0], outputs[0]);
    return Status::Ok();
  }

 private:
  StridedCopy copy_;
};

// Constant Pad through XNNPACK (per physical axis pre/post padding).
class XnnpackPadKernel final : public FloatKernel {
 public:
  XnnpackPadKernel(Operand input, std::vector<size_t> begin, std::vector<size_t> end)
      : input_(std::move(input)), begin_(std::move(begin)), end_(std::move(end)) {}
  Status Create(float value) {
    LOWBIT_RETURN_IF_ERROR(InitializeXnnpack());
    if (input_.physical.size() > XNN_MAX_TENSOR_DIMS) return Unimplemented("Pad of rank > 6");
    if (xnn_create_constant_pad_nd_x32(&value, 0, op_.Receive()) != xnn_status_success)
      return Internal("XNNPACK rejected the pad");
    return Status::Ok();
  }
  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    return op_.Run(
        {context, inputs[0], outputs[0]},
        [&](xnn_operator_t op) {
          const Shape shape = input_.AtBatch(context.batch);
          const std::vector<size_t> dims(shape.begin(), shape.end());
          return xnn_setup_constant_pad_nd_x32(op, dims.size(), dims.data(), begin_.data(),
                                               end_.data(), inputs[0], outputs[0],
                                               context.threadpool);
        },
        "pad");
  }

 private:
  Operand input_;
  std::vector<size_t> begin_, end_;  // per physical axis
  XnnpackOperator op_;
};

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateDataMovementKernel(const ir::Graph& graph,
                                                           const ir::Node& node) {
  const std::string& op = node.op_type;
  const ir::Value& first = graph.values[node.inputs[0]];
  const bool moves_any_type = op != "Pad";
  if (first.dtype != ir::DataType::kFloat32 &&
      !(moves_any_type && (first.dtype == ir::DataType::kUInt8 ||
                           first.dtype == ir::DataType::kInt8 ||
                           first.dtype == ir::DataType::kInt32)))
    return Unimplemented(node.Describe() + ": " + ir::DataTypeName(first.dtype) +
                         " data is not supported at run time");
  for (int in : node.inputs)
    if (op == "Concat" && graph.values[in].dtype != first.dtype)
      return Internal(node.Describe() + " concatenates tensors of different types");
  const int64_t element_bytes = ir::DataTypeSize(first.dtype);
  const Operand input = DescribeOperand(first);
  const Operand output = DescribeOperand(graph.values[node.outputs[0]]);
  if (op == "Concat") {
    std::vector<Operand> inputs;
    for (int in : node.inputs) inputs.push_back(DescribeOperand(graph.values[in]));
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node.GetInt("axis", 0), first.shape.size(), node));
    if (axis == 0) return Unimplemented(node.Describe() + " concatenates along the batch axis");
    return std::unique_ptr<Kernel>(new ConcatKernel(std::move(inputs), output, axis, element_bytes));
  }
  if (op == "Split") {
    std::vector<Operand> outputs;
    for (int out : node.outputs) outputs.push_back(DescribeOperand(graph.values[out]));
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node.GetInt("axis", 0), first.shape.size(), node));
    if (axis == 0) return Unimplemented(node.Describe() + " splits along the batch axis");
    return std::unique_ptr<Kernel>(new SplitKernel(input, outputs, axis, element_bytes));
  }
  if (op == "Slice") {
    LOWBIT_ASSIGN_OR_RETURN(auto ranges, ir::ResolveSlice(graph, node, first.shape));
    if (ranges[0][0] != 0 || ranges[0][1] != 1 || ranges[0][2] != first.shape[0])
      return Unimplemented(node.Describe() + " slices the batch axis");
    StridedCopy copy;
    copy.out_shape = output.physical;
    const auto strides = Strides(input.physical);
    copy.in_strides.resize(strides.size());
    for (size_t j = 0; j < strides.size(); ++j) {
      const int logical = input.storage_perm.empty() ? static_cast<int>(j) : input.storage_perm[j];
      copy.in_strides[j] = strides[j] * ranges[logical][1];
      copy.in_start += strides[j] * ranges[logical][0];
    }
    copy.in_frame = NumElements(input.physical);
    copy.out_frame = NumElements(output.physical);
    copy.element_bytes = element_bytes;
    return std::unique_ptr<Kernel>(new StridedCopyKernel(copy));
  }
  if (op == "lowbit.Relayout") {
    // Output physical axis j holds logical axis out.perm[j], which sits at
    // input physical axis input.PhysicalAxis(out.perm[j]).
    StridedCopy copy;
    copy.out_shape = output.physical;
    const auto strides = Strides(input.physical);
    for (size_t j = 0; j < output.physical.size(); ++j) {
      const int logical =
          output.storage_perm.empty() ? static_cast<int>(j) : output.storage_perm[j];
      copy.in_strides.push_back(strides[input.PhysicalAxis(logical)]);
    }
    copy.in_frame = NumElements(input.physical);
    copy.out_frame = NumElements(output.physical);
    copy.element_bytes = element_bytes;
    return std::unique_ptr<Kernel>(new StridedCopyKernel(copy));
  }
  if (op == "DepthToSpace" || op == "SpaceToDepth") {
    // Logical-order operands (the layout pass gives unknown ops logical
    // order). DepthToSpace output [N, C', H*b, W*b] walks as [N, C', H, b, W, b]
    // with input channel (i*b + j)*C' + c (DCR) or c*b*b + i*b + j (CRD);
    // SpaceToDepth (DCR) output [N, C*b*b, H/b, W/b] walks as [N, b, b, C, H', W']
    // reading input (n, c, y*b + i, x*b + j).
    if (!input.storage_perm.empty() || !output.storage_perm.empty())
      return Internal(node.Describe() + " expects logical-order operands");
    const int64_t b = node.GetInt("blocksize", 1);
    const Shape& x = first.shape;
    StridedCopy copy;
    if (op == "DepthToSpace") {
      const int64_t c_out = x[1] / (b * b), hw = x[2] * x[3];
      const bool crd = node.GetString("mode", "DCR") == "CRD";
      copy.out_shape = {1, c_out, x[2], b, x[3], b};
      copy.in_strides = {x[1] * hw, crd ? b * b * hw : hw, x[3], crd ? b * hw : b * c_out * hw, 1,
                         crd ? hw : c_out * hw};
    } else {
      const int64_t h = x[2] / b, w = x[3] / b;
      copy.out_shape = {1, b, b, x[1], h, w};
      copy.in_strides = {x[1] * x[2] * x[3], x[3], 1, x[2] * x[3], b * x[3], b};
    }
    copy.in_frame = NumElements(x);
    copy.out_frame = NumElements(output.physical);
    copy.element_bytes = element_bytes;
    return std::unique_ptr<Kernel>(new StridedCopyKernel(copy));
  }
  if (op == "Pad") {
    const std::string mode = node.GetString("mode", "constant");
    if (mode != "constant")
      return Unimplemented(node.Describe() + ": Pad mode '" + mode + "' (only constant)");
    std::vector<int64_t> pads = node.GetInts("pads");
    if (!node.has("pads")) {
      LOWBIT_ASSIGN_OR_RETURN(pads, ir::ConstantInts(graph, node, 1));
    }
    float value = node.GetFloat("value", 0.0f);
    if (ir::HasInput(node, 2)) {
      LOWBIT_ASSIGN_OR_RETURN(auto v, ir::ConstantFloats(graph, node, 2));
      value = v.at(0);
    }
    const size_t rank = first.shape.size();
    if (pads[0] != 0 || pads[rank] != 0)
      return Unimplemented(node.Describe() + " pads the batch axis");
    for (size_t d = 0; d < 2 * rank; ++d)
      if (pads[d] < 0) return Unimplemented(node.Describe() + ": negative pads (cropping)");
    std::vector<size_t> pre(rank), post(rank);
    for (size_t j = 0; j < rank; ++j) {
      const int logical = input.storage_perm.empty() ? static_cast<int>(j) : input.storage_perm[j];
      pre[j] = static_cast<size_t>(pads[logical]);
      post[j] = static_cast<size_t>(pads[logical + rank]);
    }
    auto xnnpack = std::make_unique<XnnpackPadKernel>(input, pre, post);
    LOWBIT_RETURN_IF_ERROR(xnnpack->Create(value).WithContext(node.Describe()));
    return std::unique_ptr<Kernel>(std::move(xnnpack));
  }
  return Unimplemented("unsupported op '" + op + "' (node '" + node.name + "')");
}

}  // namespace lowbit::engine::ops
