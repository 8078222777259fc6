// Quantized convolution (lowbit.QConv) and integer-code ops: what the runtime
// needs beyond CreateKernel.
#pragma once

#include "ir/graph.h"
#include "lowbit/engine/status.h"
#include "lowbit/kernels/choose.h"

namespace lowbit::engine::ops {

// The kernel family for a lowbit.QConv on this CPU:
// - LOWBIT_CONV_FAMILY (int8, int8dot, dwint8, lut, bitserial) when set and
//   able to run the layer ("forced");
// - else each candidate family timed on the layer's shape on this CPU, the
//   fastest exact one ("measured"; kernels/measure.h; once per shape and
//   process);
// - else, or with LOWBIT_KERNEL_CHOICE=model, the kernels' cost model.
// `residual` chooses for a residual pair's second tensor (its own bits and
// domain; the same activations).
struct QConvChoice {
  kernels::ConvFamily family = kernels::ConvFamily::kNone;
  const char* how = "";
  double measured_ns = -1;  // one frame, one thread, when measured
};
StatusOr<QConvChoice> ChooseQConvFamily(const ir::Graph& graph, const ir::Node& node,
                                        bool residual = false);

// Compile time: records every lowbit.QConv's choice in its attributes
// (lowbit_kernel, lowbit_kernel_choice, lowbit_kernel_ns; for a residual
// pair's second tensor lowbit_residual_kernel, _choice, _ns).
Status ChooseQConvKernels(ir::Graph* graph);

// Once per model, at load: every lowbit.QConv gets its weights packed for
// its kernel family (attribute lowbit_kernel, chosen here when absent) as a
// kPacked constant appended after its stored inputs (4, or 6 for a residual
// pair), then the int32 [M] input_zero_point * (k[m] * sum(q1[m]) +
// sum(q2[m])) - bias_codes[m] (k = 1 and no q2 for one tensor; the integer
// bias when the node has one), then for a pair the residual weights packed
// for lowbit_residual_kernel. Sessions read them, never copy them.
Status PrepareQuantizedConvs(ir::Graph* graph);

// Attribute of a float Conv that the lowering recognised as quantized but
// left in float: why (LayerInfo::lowering_note, `lowbit inspect`).
inline constexpr const char* kNotLoweredAttribute = "lowbit_not_lowered";

}  // namespace lowbit::engine::ops
