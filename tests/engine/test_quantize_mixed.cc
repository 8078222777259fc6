// The mixed-precision optimisers (quantize/mixed.h): the knapsack against an
// exhaustive search, budgets held, the largest-layer rule's order.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "quantize/mixed.h"

namespace lowbit::engine::quantize {
namespace {

// Layers with candidates 8/4/2 bits: cost halves, loss grows, both noisy.
std::vector<LayerChoices> RandomLayers(int count, std::mt19937* rng) {
  std::uniform_real_distribution<double> size(1000, 100000), noise(0.5, 2.0);
  std::vector<LayerChoices> layers(count);
  for (int l = 0; l < count; ++l) {
    const double bytes = size(*rng);
    layers[l].name = "conv" + std::to_string(l);
    layers[l].cost = {bytes, bytes / 2, bytes / 4};
    layers[l].loss = {0, 1e-4 * noise(*rng), 1e-3 * noise(*rng) * noise(*rng)};
  }
  return layers;
}

MixedSolution Exhaustive(const std::vector<LayerChoices>& layers, double budget) {
  MixedSolution best;
  best.loss = 1e300;
  std::vector<int> choice(layers.size(), 0);
  std::function<void(size_t, double, double)> visit = [&](size_t l, double cost, double loss) {
    if (cost > budget) return;
    if (l == layers.size()) {
      if (loss < best.loss) best = {choice, cost, loss, true};
      return;
    }
    for (size_t k = 0; k < layers[l].cost.size(); ++k) {
      choice[l] = static_cast<int>(k);
      visit(l + 1, cost + layers[l].cost[k], loss + layers[l].loss[k]);
    }
  };
  visit(0, 0, 0);
  return best;
}

TEST(MixedPrecision, KnapsackMatchesExhaustiveSearchAndHoldsTheBudget) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const auto layers = RandomLayers(7, &rng);
    double full = 0;
    for (const auto& l : layers) full += l.cost[0];
    const double budget = full * (0.3 + 0.6 * (trial % 10) / 10.0);
    const MixedSolution exact = Exhaustive(layers, budget);
    const MixedSolution dp = SolveBySensitivity(layers, budget, 20000);
    ASSERT_TRUE(dp.feasible) << "trial " << trial;
    EXPECT_LE(dp.cost, budget);
    // Optimal for costs rounded up to budget / 20000: at most a hair above
    // the exact optimum (a solution within 7 rounding units of the budget).
    EXPECT_LE(dp.loss, exact.loss + 1e-12 + 1e-3 * exact.loss) << "trial " << trial;
    double cost = 0, loss = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      cost += layers[l].cost[dp.choice[l]];
      loss += layers[l].loss[dp.choice[l]];
    }
    EXPECT_DOUBLE_EQ(cost, dp.cost);
    EXPECT_DOUBLE_EQ(loss, dp.loss);
  }
}

TEST(MixedPrecision, SensitivityBeatsOrEqualsTheLargestLayerRule) {
  std::mt19937 rng(11);
  int strictly_better = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const auto layers = RandomLayers(12, &rng);
    double full = 0;
    for (const auto& l : layers) full += l.cost[0];
    const double budget = 0.45 * full;
    const MixedSolution dp = SolveBySensitivity(layers, budget);
    const MixedSolution rule = SolveByLargestLayer(layers, budget);
    ASSERT_TRUE(rule.feasible);
    EXPECT_LE(rule.cost, budget);
    EXPECT_LE(dp.loss, rule.loss + 1e-15);
    strictly_better += dp.loss < rule.loss * 0.999;
  }
  EXPECT_GT(strictly_better, 0);
}

TEST(MixedPrecision, LargestLayerRuleCutsTheLargestFirst) {
  std::vector<LayerChoices> layers = {{"small", {100, 50, 25}, {0, 1, 2}},
                                      {"large", {1000, 500, 250}, {0, 100, 200}},
                                      {"medium", {400, 200, 100}, {0, 1, 2}}};
  // 1500 -> cut "large" to 500: 1000 fits.
  MixedSolution s = SolveByLargestLayer(layers, 1000);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 1, 0}));
  // 900 -> large 500 (1000), then large is still largest: 250 (750).
  s = SolveByLargestLayer(layers, 900);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 2, 0}));
  // The sensitivity rule keeps "large" (costly to lower) and cuts "medium":
  // 100 + 1000 + 100 = 1200 bytes, loss 2.
  s = SolveBySensitivity(layers, 1210);
  EXPECT_TRUE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 0, 2}));
}

TEST(MixedPrecision, AnImpossibleBudgetGivesTheCheapestChoice) {
  std::vector<LayerChoices> layers = {{"a", {100, 50}, {0, 1}}, {"b", {100, 50}, {0, 1}}};
  const MixedSolution s = SolveBySensitivity(layers, 60);
  EXPECT_FALSE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{1, 1}));
  const MixedSolution r = SolveByLargestLayer(layers, 60);
  EXPECT_FALSE(r.feasible);
  EXPECT_EQ(r.choice, (std::vector<int>{1, 1}));
}

}  // namespace
}  // namespace lowbit::engine::quantize
