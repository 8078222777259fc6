// Arena planning: buffers with disjoint lifetimes share memory.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit::engine::runtime {

struct BufferRequest {
  int64_t bytes = 0;
  int first_step = 0;  // step that writes the buffer (-1: before the first step)
  int last_step = 0;   // last step that reads it (inclusive)
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // byte offset per request, 64-byte aligned
  int64_t arena_bytes = 0;
};

// Greedy by size (largest first), lowest offset that does not overlap any
// placed buffer whose lifetime intersects. Deterministic.
MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests);

}  // namespace lowbit::engine::runtime
