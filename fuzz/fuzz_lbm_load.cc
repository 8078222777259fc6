// Fuzz target: the .lbm loader (engine/src/format/lbm_reader.cc,
// format::ReadLbmBytes: header, section table, checksums, graph decoding),
// checking on every accepted file what the reader promises its callers:
// value ids in range, constants whose data matches their shape. Input: the
// bytes of a .lbm file.
//
// LOWBIT_FUZZ_LBM_FROM_GRAPH=1 in the environment also runs what
// Model::LoadCompiled does next, runtime::CompiledModel::FromGraph
// (kernel-format weights, every op's kernel Init, the buffer plan). Off by
// default: the ops' Init functions trust a graph's node semantics (a Conv's
// weights are [M, C/group, kH, kW], ...) as the compiler writes them, and a
// crafted file breaks that trust (docs/fuzzing.md, "known limits").
//
// Random bytes almost never carry valid CRC-32s, which would stop the fuzzer
// at the checksum checks. So an input refused for a checksum is read a
// second time with its checksums recomputed (the header's and those of the
// sections that lie inside the input): the graph decoder and FromGraph see
// the mutated content as if a writer had produced it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "format/lbm.h"
#include "fuzz_check.h"
#include "lbm_checksums.h"
#include "runtime/compiled_model.h"

namespace {

namespace format = lowbit::engine::format;

bool from_graph = false;

void LoadModel(lowbit::StatusOr<format::LbmFile> file) {
  if (!file.ok()) return;
  const lowbit::engine::ir::Graph& graph = file->graph;
  const int values = static_cast<int>(graph.values.size());
  auto valid = [&](int id) { return id >= 0 && id < values; };
  for (const lowbit::engine::ir::Node& node : graph.nodes) {
    for (int id : node.inputs) FUZZ_CHECK(id == lowbit::engine::ir::kNoValue || valid(id));
    for (int id : node.outputs) FUZZ_CHECK(valid(id));
  }
  for (int id : graph.inputs) FUZZ_CHECK(valid(id));
  for (int id : graph.outputs) FUZZ_CHECK(valid(id));
  for (const lowbit::engine::ir::Value& value : graph.values) {
    for (int64_t dim : value.shape) FUZZ_CHECK(dim >= 0);
    if (value.is_constant()) FUZZ_CHECK(value.constant->shape == value.shape);
  }
  if (!from_graph) return;
  auto model = lowbit::engine::runtime::CompiledModel::FromGraph(
      std::move(file->graph), std::move(file->metadata.output_names));
  if (!model.ok()) return;
  // A loaded model describes itself consistently.
  FUZZ_CHECK(!(*model)->inputs().empty() || (*model)->graph().inputs.empty());
  FUZZ_CHECK((*model)->outputs().size() == (*model)->graph().outputs.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // A QConv without a recorded kernel gets one from the cost model, not
  // from timing every candidate kernel (milliseconds per shape); the
  // loading and validation code is the same.
  setenv("LOWBIT_KERNEL_CHOICE", "model", 0);
  const char* deep = std::getenv("LOWBIT_FUZZ_LBM_FROM_GRAPH");
  from_graph = deep != nullptr && deep[0] == '1';
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lowbit::StatusOr<format::LbmFile> file = format::ReadLbmBytes(data, size);
  if (file.ok() || file.status().message().find("checksum") == std::string::npos) {
    LoadModel(std::move(file));
    return 0;
  }
  std::vector<uint8_t> fixed(data, data + size);
  if (RecomputeLbmChecksums(fixed)) LoadModel(format::ReadLbmBytes(fixed.data(), fixed.size()));
  return 0;
}
