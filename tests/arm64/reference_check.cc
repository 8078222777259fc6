// reference_check CASE_DIR [--threads N]
//
// Runs a model on a saved input and compares every output with a saved
// reference (ONNX Runtime's, written on the build machine by
// tests/arm64/make_references.py, whose docstring defines CASE_DIR/case.txt).
// Built for arm64 and run under qemu-aarch64 by ctest (label arm64-engine), so
// the engine's arm64 build (NEON/dotprod kernels, XNNPACK's arm64 paths) is
// held to the same oracles as the x86 one. Exit status 0 when every check
// holds, 1 when one fails, 2 when the case cannot be read or run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/engine/model.h"
#include "lowbit/engine/npy.h"

namespace {

using lowbit::engine::NamedTensor;
using lowbit::engine::ShapeToString;
using lowbit::engine::Tensor;

struct OutputCheck {
  std::string name;
  std::string file;
  double absolute = 0;  // |actual - expected| <= absolute + relative * |expected|
  double relative = 0;
  double fraction = 0;  // at most this fraction of elements differ by more than `near`
  double near = 0;
};

struct Case {
  std::string model;
  std::string min_ops_prefix;
  int min_ops = 0;
  std::vector<std::pair<std::string, std::string>> inputs;  // name, file
  std::vector<OutputCheck> outputs;
};

bool ReadCase(const std::string& dir, Case* c) {
  std::ifstream in(dir + "/case.txt");
  if (!in) {
    std::fprintf(stderr, "reference_check: cannot read %s/case.txt (run tests/arm64/make_references.py)\n",
                 dir.c_str());
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    fields >> key;
    bool ok = true;
    if (key == "model") {
      ok = static_cast<bool>(fields >> c->model);
    } else if (key == "min_ops") {
      ok = static_cast<bool>(fields >> c->min_ops_prefix >> c->min_ops);
    } else if (key == "input") {
      std::string name, file;
      ok = static_cast<bool>(fields >> name >> file);
      c->inputs.emplace_back(name, dir + "/" + file);
    } else if (key == "output") {
      OutputCheck check;
      ok = static_cast<bool>(fields >> check.name >> check.file >> check.absolute >> check.relative >>
                             check.fraction >> check.near);
      check.file = dir + "/" + check.file;
      c->outputs.push_back(check);
    } else if (!key.empty()) {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "reference_check: %s/case.txt: bad line '%s'\n", dir.c_str(), line.c_str());
      return false;
    }
  }
  if (c->model.empty() || c->inputs.empty() || c->outputs.empty()) {
    std::fprintf(stderr, "reference_check: %s/case.txt names no model, input or output\n", dir.c_str());
    return false;
  }
  return true;
}

// Prints one line per output; returns whether it holds.
bool Compare(const OutputCheck& check, const Tensor& actual, const Tensor& expected) {
  if (actual.shape() != expected.shape()) {
    std::printf("FAIL %s: shape %s, reference %s\n", check.name.c_str(),
                ShapeToString(actual.shape()).c_str(), ShapeToString(expected.shape()).c_str());
    return false;
  }
  double max_difference = 0, worst_excess = -1;
  int64_t worst = 0, beyond_near = 0;
  for (int64_t i = 0; i < expected.size(); ++i) {
    const double want = expected.data()[i], got = actual.data()[i];
    const double difference = std::isfinite(got) ? std::fabs(got - want) : INFINITY;
    const double excess = difference - (check.absolute + check.relative * std::fabs(want));
    if (excess > worst_excess || i == 0) {
      worst_excess = excess;
      worst = i;
    }
    max_difference = std::max(max_difference, difference);
    beyond_near += difference > check.near;
  }
  const double fraction = expected.size() ? double(beyond_near) / double(expected.size()) : 0.0;
  const bool ok = worst_excess <= 0 && fraction <= check.fraction;
  std::printf("%s %s: max |lowbit - reference| %.3g (bound %.3g + %.3g|v|), worst at %lld: lowbit %.6g, "
              "reference %.6g; %.4f%% of %lld elements differ by more than %.3g (at most %.4f%%)\n",
              ok ? "ok" : "FAIL", check.name.c_str(), max_difference, check.absolute, check.relative,
              static_cast<long long>(worst), actual.data()[worst], expected.data()[worst], 100 * fraction,
              static_cast<long long>(expected.size()), check.near, 100 * check.fraction);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: reference_check CASE_DIR [--threads N]\n");
    return 2;
  }
  const std::string dir = argv[1];
  lowbit::engine::SessionOptions session_options;
  for (int i = 2; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--threads") session_options.threads = std::max(1, std::atoi(argv[i + 1]));

  Case c;
  if (!ReadCase(dir, &c)) return 2;
  auto model = lowbit::engine::Model::Load(c.model);
  if (!model.ok()) {
    std::fprintf(stderr, "reference_check: %s\n", model.status().ToString().c_str());
    return 2;
  }
  std::map<std::string, int> kernels;  // kernel name -> layers it runs
  int matching_ops = 0;
  for (const auto& layer : (*model)->layers()) {
    if (!layer.kernel.empty()) ++kernels[layer.kernel];
    if (!c.min_ops_prefix.empty() && layer.op.rfind(c.min_ops_prefix, 0) == 0) ++matching_ops;
  }
  std::printf("%s: %zu layers; kernels:", c.model.c_str(), (*model)->layers().size());
  for (const auto& [name, count] : kernels) std::printf(" %s x%d", name.c_str(), count);
  std::printf("\n");
  bool ok = true;
  if (matching_ops < c.min_ops) {
    std::printf("FAIL %d layers are %s*, at least %d expected (the model was not lowered)\n", matching_ops,
                c.min_ops_prefix.c_str(), c.min_ops);
    ok = false;
  }

  std::vector<NamedTensor> inputs;
  for (const auto& [name, file] : c.inputs) {
    auto tensor = lowbit::engine::ReadNpy(file);
    if (!tensor.ok()) {
      std::fprintf(stderr, "reference_check: %s\n", tensor.status().ToString().c_str());
      return 2;
    }
    inputs.push_back({name, std::move(tensor).value()});
  }
  auto session = (*model)->CreateSession(session_options);
  if (!session.ok()) {
    std::fprintf(stderr, "reference_check: %s\n", session.status().ToString().c_str());
    return 2;
  }
  std::vector<NamedTensor> outputs;
  if (auto status = (*session)->Run(inputs, &outputs); !status.ok()) {
    std::fprintf(stderr, "reference_check: %s\n", status.ToString().c_str());
    return 2;
  }
  for (const OutputCheck& check : c.outputs) {
    auto expected = lowbit::engine::ReadNpy(check.file);
    if (!expected.ok()) {
      std::fprintf(stderr, "reference_check: %s\n", expected.status().ToString().c_str());
      return 2;
    }
    auto it = std::find_if(outputs.begin(), outputs.end(),
                           [&](const NamedTensor& output) { return output.name == check.name; });
    if (it == outputs.end()) {
      std::printf("FAIL the model has no output %s\n", check.name.c_str());
      ok = false;
      continue;
    }
    ok = Compare(check, it->tensor, *expected) && ok;
  }
  std::printf("%s\n", ok ? "PASS" : "FAILED");
  return ok ? 0 : 1;
}
