#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace lowbit::engine::runtime {

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests) {
  constexpr int64_t kAlignment = 64;
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> placed;
  for (size_t id : order) {
    const BufferRequest& r = requests[id];
    const int64_t size = (r.bytes + kAlignment - 1) / kAlignment * kAlignment;
    // Busy intervals [offset, end) of placed buffers alive at the same time.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t other : placed) {
      const BufferRequest& o = requests[other];
      if (o.last_step < r.first_step || r.last_step < o.first_step) continue;
      const int64_t other_size = (o.bytes + kAlignment - 1) / kAlignment * kAlignment;
      busy.emplace_back(plan.offsets[other], plan.offsets[other] + other_size);
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + size <= begin) break;
      offset = std::max(offset, end);
    }
    plan.offsets[id] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(id);
  }
  return plan;
}

}  // namespace lowbit::engine::runtime
