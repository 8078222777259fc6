// Bits per layer under a budget: the two optimisers `lowbit quantize` offers.
//
// Each inner layer has candidate precisions (index 0 the most precise), each
// with a cost (weight bytes, or kernel nanoseconds) and a loss (its
// sensitivity: the model outputs' relative squared error, against FP32, when
// only that layer takes the candidate, minus the error of the all-8-bit
// model). Losses are taken as additive across layers.
#pragma once

#include <string>
#include <vector>

namespace lowbit::engine::quantize {

struct LayerChoices {
  std::string name;
  std::vector<double> cost;  // per candidate, >= 0
  std::vector<double> loss;  // per candidate, >= 0
};

struct MixedSolution {
  std::vector<int> choice;  // candidate index per layer
  double cost = 0, loss = 0;
  bool feasible = false;  // total cost <= budget
};

// Least total loss with total cost <= budget: the multiple-choice knapsack,
// solved exactly by dynamic programming over costs rounded up to multiples of
// budget / resolution (so a solution found always holds the real budget; it
// is optimal for the rounded costs). Infeasible (every layer at its cheapest
// candidate still over budget) returns the cheapest choice, feasible = false.
MixedSolution SolveBySensitivity(const std::vector<LayerChoices>& layers, double budget,
                                 int resolution = 20000);

// The memory-driven rule: start with every layer at candidate 0; while the
// total cost is over budget, move the layer with the largest current cost
// that has a cheaper candidate to its next cheaper one (the next index whose
// cost is lower). Losses are not looked at.
MixedSolution SolveByLargestLayer(const std::vector<LayerChoices>& layers, double budget);

}  // namespace lowbit::engine::quantize
