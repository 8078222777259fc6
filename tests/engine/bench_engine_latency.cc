// engine_latency MODEL.onnx [--threads N] [--runs R] [--batch B]
// Median Session::Run latency on a deterministic random input (after 3 warm-up
// runs). A measuring tool for the engine core, not a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/engine/model.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: engine_latency MODEL.onnx [--threads N] [--runs R] [--batch B]\n");
    return 2;
  }
  int threads = 1, runs = 30, batch = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs"))
      runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch"))
      batch = std::atoi(argv[i + 1]);
  }
  auto model = lowbit::engine::Model::LoadOnnx(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  lowbit::engine::SessionOptions options;
  options.threads = threads;
  auto session = (*model)->CreateSession(options);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<lowbit::engine::NamedTensor> inputs;
  for (const auto& info : (*model)->inputs()) {
    lowbit::engine::Shape shape = info.shape;
    shape[0] = batch;
    lowbit::engine::Tensor tensor(shape);
    for (float& v : tensor.values()) v = uniform(rng);
    inputs.push_back({info.name, std::move(tensor)});
  }
  std::vector<lowbit::engine::NamedTensor> outputs;
  std::vector<double> times;
  for (int r = 0; r < runs + 3; ++r) {
    auto start = std::chrono::steady_clock::now();
    lowbit::Status status = (*session)->Run(inputs, &outputs);
    auto end = std::chrono::steady_clock::now();
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    if (r >= 3) times.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  std::sort(times.begin(), times.end());
  std::printf("median_ms=%.3f min_ms=%.3f runs=%d threads=%d batch=%d\n", times[times.size() / 2],
              times.front(), runs, threads, batch);
  return 0;
}
