// lowbit.CodeTable: integer codes -> integer codes through a 256-entry table
// (attribute `table`, indexed by the input code's byte: code & 0xff), made by
// the lowering pass for requantization and for element-wise float ops
// between a Dequantize and a Quantize. u8 or i8 in and out. The bytes go
// through the kernel table's map_bytes (vpermb on AVX-512 VBMI, vpshufb on
// AVX2, tbl on NEON), in chunks spread over the thread pool.
#include <array>

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
    ParallelFor(context, static_cast<size_t>((total + kChunk - 1) / kChunk), [&](size_t chunk) {
      const int64_t begin = static_cast<int64_t>(chunk) * kChunk;
      const int64_t end = std::min(total, begin + kChunk);
      map_bytes_(table_.data(), in + begin, out + begin, static_cast<size_t>(end - begin));
    });
    return Status::Ok();
  }

 private:
  std::array<uint8_t, 256> table_;
  int64_t frame_;
  kernels::MapBytesFn map_bytes_;  // the process's table, fixed at load
};

}  // namespace

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
