// lowbit.CodeTable: integer codes -> integer codes through a 256-entry table
// (attribute `table`, indexed by the input code's byte: code & 0xff), made by
// the lowering pass for requantization and for element-wise float ops
// between a Dequantize and a Quantize. u8 or i8 in and out. The bytes go
// through the kernel table's map_bytes (vpermb on AVX-512 VBMI, vpshufb on
// AVX2, tbl on NEON), in chunks spread over the thread pool.
//
// lowbit.QAdd: Quantize(Add(Dequantize(a), Dequantize(b))) on codes of the
// same shape and storage: each element dequantized, added and quantized in
// the float operations of the kernels it replaces (QuantParams), the Add's
// fused Relu / Clip applied to the sum. Inputs: a, b codes (u8 or i8), then
// the output quantizer's scale and zero point; attributes: a_scale,
// a_zero (a's dequantization, code domain: real = (code - a_zero) * a_scale),
// b_scale, b_zero, and the output Quantize's qmin, qmax, code_offset,
// rounding, zero_point_first.
#include <array>
#include <cmath>

#include "ir/quant_ops.h"
#include "lowbit/kernels/dispatch.h"
#include "ops/kernel.h"

namespace lowbit::engine::ops {
namespace {

class CodeTableKernel final : public Kernel {
 public:
  CodeTableKernel(std::array<uint8_t, 256> table, int64_t frame)
      : table_(table), frame_(frame), map_bytes_(kernels::kernel_table().map_bytes.fn) {}

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const uint8_t* in = static_cast<const uint8_t*>(inputs[0]);
    uint8_t* out = static_cast<uint8_t*>(outputs[0]);
    // 64 KB per work item: ~1.4 us at the AVX-512 VBMI rate (~12 bytes per
    // cycle at 4 GHz), well above the pool's per-item cost; activations of
    // 128 KB and more still spread over two threads.
    constexpr int64_t kChunk = 65536;
    const int64_t total = frame_ * context.batch;
    ParallelForRanges(context, total, kChunk, [&](int64_t begin, int64_t end) {
      map_bytes_(table_.data(), in + begin, out + begin, static_cast<size_t>(end - begin));
    });
    return Status::Ok();
  }

 private:
  std::array<uint8_t, 256> table_;
  int64_t frame_;
  kernels::MapBytesFn map_bytes_;  // the process's table, fixed at load
};

template <typename In, typename Out>
class QAddKernel final : public Kernel {
 public:
  QAddKernel(float a_scale, int64_t a_zero, float b_scale, int64_t b_zero, ClampRange clamp,
             ir::QuantParams out, int64_t frame)
      : a_scale_(a_scale),
        b_scale_(b_scale),
        a_zero_(a_zero),
        b_zero_(b_zero),
        clamp_(clamp),
        out_(std::move(out)),
        frame_(frame) {}

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const In* a = static_cast<const In*>(inputs[0]);
    const In* b = static_cast<const In*>(inputs[1]);
    Out* y = static_cast<Out*>(outputs[0]);
    constexpr int64_t kChunk = 16384;
    const int64_t total = frame_ * context.batch;
    ParallelForRanges(context, total, kChunk, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float va = static_cast<float>(int64_t(a[i]) - a_zero_) * a_scale_;
        const float vb = static_cast<float>(int64_t(b[i]) - b_zero_) * b_scale_;
        float v = va + vb;
        v = v < clamp_.min ? clamp_.min : (v > clamp_.max ? clamp_.max : v);
        y[i] = static_cast<Out>(out_.QuantizeValue(v, 0));
      }
    });
    return Status::Ok();
  }

 private:
  float a_scale_, b_scale_;
  int64_t a_zero_, b_zero_;
  ClampRange clamp_;
  ir::QuantParams out_;
  int64_t frame_;
};

template <typename In>
std::unique_ptr<Kernel> MakeQAdd(ir::DataType out, float as, int64_t az, float bs, int64_t bz,
                                 ClampRange clamp, ir::QuantParams params, int64_t frame) {
  if (out == ir::DataType::kInt8)
    return std::make_unique<QAddKernel<In, int8_t>>(as, az, bs, bz, clamp, std::move(params), frame);
  return std::make_unique<QAddKernel<In, uint8_t>>(as, az, bs, bz, clamp, std::move(params), frame);
}

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateQAddKernel(const ir::Graph& graph, const ir::Node& node) {
  const ir::Value& a = graph.values[node.inputs[0]];
  const ir::Value& b = graph.values[node.inputs[1]];
  const ir::Value& y = graph.values[node.outputs[0]];
  auto is8 = [](ir::DataType t) { return t == ir::DataType::kUInt8 || t == ir::DataType::kInt8; };
  if (!is8(a.dtype) || a.dtype != b.dtype || !is8(y.dtype) || a.shape != b.shape ||
      a.storage_perm != b.storage_perm || a.storage_perm != y.storage_perm)
    return InvalidArgument(node.Describe() + ": adds 8-bit codes of one shape and storage");
  // The output quantizer's parameters: inputs 2 and 3, the Quantize's attributes.
  ir::Node quantize = node;
  quantize.op_type = ir::kQuantizeOp;
  quantize.inputs = {node.inputs[0], node.inputs[2], node.inputs[3]};
  LOWBIT_ASSIGN_OR_RETURN(ir::QuantParams params, ir::ReadQuantParams(graph, quantize));
  if (!params.per_tensor()) return InvalidArgument(node.Describe() + ": per-tensor output only");
  const ClampRange clamp = FusedClampRange(node);
  const float as = node.GetFloat("a_scale", 1.0f), bs = node.GetFloat("b_scale", 1.0f);
  const int64_t az = node.GetInt("a_zero", 0), bz = node.GetInt("b_zero", 0);
  const int64_t frame = NumElements(y.shape);
  if (a.dtype == ir::DataType::kInt8)
    return MakeQAdd<int8_t>(y.dtype, as, az, bs, bz, clamp, std::move(params), frame);
  return MakeQAdd<uint8_t>(y.dtype, as, az, bs, bz, clamp, std::move(params), frame);
}

StatusOr<std::unique_ptr<Kernel>> CreateCodeTableKernel(const ir::Graph& graph,
                                                        const ir::Node& node) {
  const std::vector<int64_t> entries = node.GetInts("table");
  if (entries.size() != 256) return InvalidArgument(node.Describe() + ": table needs 256 entries");
  for (int id : {node.inputs[0], node.outputs[0]}) {
    const ir::DataType t = graph.values[id].dtype;
    if (t != ir::DataType::kUInt8 && t != ir::DataType::kInt8)
      return InvalidArgument(node.Describe() + ": code tables map 8-bit codes");
  }
  std::array<uint8_t, 256> table{};
  for (size_t i = 0; i < 256; ++i) table[i] = static_cast<uint8_t>(entries[i]);
  return std::unique_ptr<Kernel>(
      new CodeTableKernel(table, NumElements(graph.values[node.outputs[0]].shape)));
}

}  // namespace lowbit::engine::ops
