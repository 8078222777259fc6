// What lowbit can import, checked on the whole graph at once: every node whose
// op, domain or attribute values no later stage supports is reported in one
// message, instead of the first failure of shape inference or kernel creation.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::import {

// Set by the importer on a node of a domain lowbit does not read (its value:
// the domain), so that FindUnsupportedNodes lists it with the others.
inline constexpr const char* kUnsupportedDomainAttribute = "lowbit_unsupported_domain";

// One unsupported node: "Foo node 'name': op Foo is not supported".
struct UnsupportedNode {
  std::string node;    // Node::Describe()
  std::string reason;  // what is missing, with the supported alternatives
};

// Problems of each node of a freshly imported graph (before the fake
// quantization rewrite; QuantizeLinear / DequantizeLinear and the QONNX
// quantizers are accepted). Only what the op type and attribute values show
// is checked; limits that need shapes (ranks, the batch axis) are reported by
// shape inference and kernel creation as before.
std::vector<UnsupportedNode> FindUnsupportedNodes(const ir::Graph& graph);

// Unimplemented listing every entry of `problems` ("source: N nodes use ops or
// attributes lowbit does not support:" and one line each), or Ok when empty.
Status UnsupportedNodesStatus(const std::string& source,
                              const std::vector<UnsupportedNode>& problems);

}  // namespace lowbit::engine::import
