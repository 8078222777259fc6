// The compiler's pass pipeline, in order. A fake-quantized graph keeps its
// integer weights behind Dequantize nodes until the lowering has matched
// them; whatever stays in float folds afterwards.
#include "ops/qconv.h"
#include "passes/passes.h"

namespace lowbit::engine::passes {

using ir::Graph;

Status CompileGraph(Graph* graph, bool lower_quantized) {
  LOWBIT_RETURN_IF_ERROR(FoldConstants(graph));
  LOWBIT_RETURN_IF_ERROR(EliminateDeadNodes(graph));
  LOWBIT_RETURN_IF_ERROR(FoldBatchNormalization(graph));
  LOWBIT_RETURN_IF_ERROR(FusePadIntoConsumer(graph));
  LOWBIT_RETURN_IF_ERROR(FuseSiLU(graph));
  LOWBIT_RETURN_IF_ERROR(FuseActivations(graph));
  if (lower_quantized) LOWBIT_RETURN_IF_ERROR(LowerQuantizedOps(graph));
  // Weights still behind a Dequantize (layers that stay in float) become
  // float constants before layouts permute constants.
  LOWBIT_RETURN_IF_ERROR(FoldConstants(graph, /*fold_dequantize=*/true));
  LOWBIT_RETURN_IF_ERROR(ops::ChooseQConvKernels(graph));
  LOWBIT_RETURN_IF_ERROR(AssignLayouts(graph));
  return EliminateDeadNodes(graph);
}

}  // namespace lowbit::engine::passes
