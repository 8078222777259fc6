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
struct QConvChoice {
  kernels::ConvFamily family = kernels::ConvFamily::kNone;
  const char* how = "";
  double measured_ns = -1;  // one frame, one thread, when measured
};
StatusOr<QConvChoice> ChooseQConvFamily(const ir::Graph& graph, const ir::Node& node);

// Compile time: records every lowbit.QConv's choice in its attributes
// (lowbit_kernel, lowbit_kernel_choice, lowbit_kernel_ns).
Status ChooseQConvKernels(ir::Graph* graph);

// Once per model, at load: every lowbit.QConv gets its weights packed for
// its kernel family (attribute lowbit_kernel, chosen here when absent) as a
// kPacked constant appended as input 4, and input 5 the int32 [M]
// input_zero_point * sum(w[m]) - bias_codes[m] (the integer bias, when the
// node has one). Sessions read them, never copy them.
Status PrepareQuantizedConvs(ir::Graph* graph);

}  // namespace lowbit::engine::ops
