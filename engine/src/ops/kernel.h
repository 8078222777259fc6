// Executable kernels for compiled graph nodes.
//
// A kernel reads and writes typed buffers in each value's storage order
// (see ir/graph.h): float32, int32, or int8/uint8 codes, one element of
// DataTypeSize(value.dtype) bytes each. Activations hold `batch` frames back
// to back (the batch is the outermost physical dimension); constant operands
// hold one frame and are broadcast over the batch. Kernels are created once
// per session and run for any batch size; what they read from constants
// (packed weights) stays owned by the model's graph and is shared read-only
// by every session.
#pragma once

#include <pthreadpool.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::ops {

struct KernelContext {
  int64_t batch = 1;
  pthreadpool_t threadpool = nullptr;  // nullptr: run on the caller's thread
  // Scratch of workspace_bytes(batch) bytes, 64-byte aligned, valid during
  // this Run only. Its contents are undefined on entry: the arena reuses the
  // memory for other buffers between steps.
  void* workspace = nullptr;
};

// One operand as a kernel sees it.
struct Operand {
  Shape physical;                 // dimensions in storage order, batch 1
  bool batched = false;           // true for activations (dim 0 scales with the batch)
  std::vector<int> storage_perm;  // physical axis j holds logical axis storage_perm[j]

  // Physical dimensions at `batch` frames.
  Shape AtBatch(int64_t batch) const {
    Shape s = physical;
    if (batched && !s.empty()) s[0] = batch;
    return s;
  }
  // Physical axis that holds logical axis `logical`.
  int PhysicalAxis(int logical) const;
  // Elements between neighbours along logical axis `logical` in memory.
  int64_t ElementStride(int logical) const;
};

Operand DescribeOperand(const ir::Value& value);

class Kernel {
 public:
  virtual ~Kernel() = default;
  // `inputs[i]` / `outputs[i]`: buffers of the node's inputs and outputs in
  // their value's dtype (nullptr for omitted inputs and for integer
  // constants, which kernels read at creation; float constants and kPacked
  // constants point at the graph's data).
  virtual Status Run(const KernelContext& context, const void* const* inputs,
                     void* const* outputs) = 0;
  // Scratch bytes the kernel needs for a batch of `batch` frames.
  virtual int64_t workspace_bytes(int64_t batch) const { return 0; }
};

// A kernel whose operands are all float32.
class FloatKernel : public Kernel {
 public:
  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) final {
    return RunFloat(context, reinterpret_cast<const float* const*>(inputs),
                    reinterpret_cast<float* const*>(outputs));
  }
  virtual Status RunFloat(const KernelContext& context, const float* const* inputs,
                          float* const* outputs) = 0;
};

// True for ops whose output is its input's memory reinterpreted (Reshape,
// Flatten, Squeeze, Unsqueeze, Identity, Transpose after layout assignment):
// the executor aliases the buffers instead of running a kernel.
bool IsViewOp(const ir::Node& node);

// Creates the kernel for `node` of a compiled graph. Unimplemented, naming
// the op and node, when no kernel supports it.
StatusOr<std::unique_ptr<Kernel>> CreateKernel(const ir::Graph& graph, const ir::Node& node);

// Per-family factories (one per source file).
StatusOr<std::unique_ptr<Kernel>> CreateConvKernel(const ir::Graph& graph, const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateElementwiseKernel(const ir::Graph& graph,
                                                          const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateDataMovementKernel(const ir::Graph& graph,
                                                           const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateSpatialKernel(const ir::Graph& graph, const ir::Node& node);
// lowbit.Quantize and lowbit.Dequantize (quantize.cc).
StatusOr<std::unique_ptr<Kernel>> CreateQuantizeKernel(const ir::Graph& graph, const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateQConvKernel(const ir::Graph& graph, const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateCodeTableKernel(const ir::Graph& graph,
                                                        const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateQAddKernel(const ir::Graph& graph, const ir::Node& node);
// HardSigmoid, HardSwish, PRelu, Pow, lowbit.SiLU (activation.cc).
StatusOr<std::unique_ptr<Kernel>> CreateActivationKernel(const ir::Graph& graph,
                                                         const ir::Node& node);
// MatMul, Gemm (matmul.cc).
StatusOr<std::unique_ptr<Kernel>> CreateMatMulKernel(const ir::Graph& graph, const ir::Node& node);
// Softmax, ReduceMean, ReduceSum, ReduceMax (reduce.cc).
StatusOr<std::unique_ptr<Kernel>> CreateReduceKernel(const ir::Graph& graph, const ir::Node& node);
StatusOr<std::unique_ptr<Kernel>> CreateConvTransposeKernel(const ir::Graph& graph,
                                                            const ir::Node& node);

// Output bounds of a Relu or Clip that FuseActivations moved into `node`
// (attribute `lowbit_activation`); [-inf, +inf] when none was fused. A fused
// LeakyRelu is not a clamp: its producer handles it separately.
struct ClampRange {
  float min;
  float max;
};
ClampRange FusedClampRange(const ir::Node& node);

// Runs fn(i) for i in [0, range) on the context's thread pool.
template <typename Fn>
void ParallelFor(const KernelContext& context, size_t range, const Fn& fn) {
  if (context.threadpool == nullptr || range <= 1) {
    for (size_t i = 0; i < range; ++i) fn(i);
    return;
  }
  pthreadpool_parallelize_1d(context.threadpool, fn, range, 0);
}

// Runs fn(begin, end) over [0, total) in consecutive ranges of `chunk`
// elements (the last one shorter) on the context's thread pool.
template <typename Fn>
void ParallelForRanges(const KernelContext& context, int64_t total, int64_t chunk, const Fn& fn) {
  ParallelFor(context, static_cast<size_t>((total + chunk - 1) / chunk), [&](size_t task) {
    const int64_t begin = static_cast<int64_t>(task) * chunk;
    fn(begin, std::min(total, begin + chunk));
  });
}

}  // namespace lowbit::engine::ops
