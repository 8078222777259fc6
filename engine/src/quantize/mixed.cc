#include "quantize/mixed.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lowbit::engine::quantize {
namespace {

void Total(const std::vector<LayerChoices>& layers, MixedSolution* solution, double budget) {
  solution->cost = solution->loss = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    solution->cost += layers[l].cost[solution->choice[l]];
    solution->loss += layers[l].loss[solution->choice[l]];
  }
  solution->feasible = solution->cost <= budget;
}

MixedSolution Cheapest(const std::vector<LayerChoices>& layers, double budget) {
  MixedSolution solution;
  for (const auto& layer : layers)
    solution.choice.push_back(static_cast<int>(
        std::min_element(layer.cost.begin(), layer.cost.end()) - layer.cost.begin()));
  Total(layers, &solution, budget);
  return solution;
}

}  // namespace

MixedSolution SolveBySensitivity(const std::vector<LayerChoices>& layers, double budget,
                                 int resolution) {
  if (layers.empty()) return MixedSolution{{}, 0, 0, budget >= 0};
  if (budget <= 0) return Cheapest(layers, budget);
  const double unit = budget / resolution;
  const int capacity = resolution;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[c]: least loss of the layers so far with rounded cost exactly c;
  // pick[l][c]: the candidate of layer l on that path.
  std::vector<double> best(capacity + 1, kInf), next(capacity + 1);
  best[0] = 0;
  std::vector<std::vector<int>> pick(layers.size(), std::vector<int>(capacity + 1, -1));
  for (size_t l = 0; l < layers.size(); ++l) {
    std::fill(next.begin(), next.end(), kInf);
    for (size_t k = 0; k < layers[l].cost.size(); ++k) {
      const double units = std::ceil(layers[l].cost[k] / unit - 1e-9);
      if (units > capacity) continue;
      const int w = static_cast<int>(units);
      for (int c = capacity; c >= w; --c) {
        const double value = best[c - w] + layers[l].loss[k];
        if (value < next[c]) {
          next[c] = value;
          pick[l][c] = static_cast<int>(k);
        }
      }
    }
    best.swap(next);
  }
  const int end = static_cast<int>(std::min_element(best.begin(), best.end()) - best.begin());
  if (!std::isfinite(best[end])) return Cheapest(layers, budget);
  MixedSolution solution;
  solution.choice.assign(layers.size(), 0);
  for (int l = static_cast<int>(layers.size()) - 1, c = end; l >= 0; --l) {
    const int k = pick[l][c];
    solution.choice[l] = k;
    c -= static_cast<int>(std::ceil(layers[l].cost[k] / unit - 1e-9));
  }
  Total(layers, &solution, budget);
  return solution;
}

MixedSolution SolveByLargestLayer(const std::vector<LayerChoices>& layers, double budget) {
  MixedSolution solution;
  solution.choice.assign(layers.size(), 0);
  Total(layers, &solution, budget);
  while (!solution.feasible) {
    int largest = -1, to = -1;
    for (size_t l = 0; l < layers.size(); ++l) {
      const int at = solution.choice[l];
      const double cost = layers[l].cost[at];
      int cheaper = -1;
      for (size_t k = at + 1; k < layers[l].cost.size(); ++k)
        if (layers[l].cost[k] < cost) {
          cheaper = static_cast<int>(k);
          break;
        }
      if (cheaper < 0) continue;
      if (largest < 0 || cost > layers[largest].cost[solution.choice[largest]]) {
        largest = static_cast<int>(l);
        to = cheaper;
      }
    }
    if (largest < 0) break;  // nothing left to cut
    solution.choice[largest] = to;
    Total(layers, &solution, budget);
  }
  return solution;
}

}  // namespace lowbit::engine::quantize
