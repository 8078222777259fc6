// A compiled model (immutable, shared by all sessions) and a session that
// runs it (owns activations; one per worker thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"

namespace lowbit::engine {

struct ValueInfo {
  std::string name;
  // Batch dimension is 1 here; a session runs any batch size N.
  Shape shape;
};

// One executable layer as compiled, for `lowbit inspect` and GetModel.
struct LayerInfo {
  std::string name;
  std::string op;
  Shape output_shape;  // at batch 1
  int64_t macs = 0;    // multiply-accumulates at batch 1
  int64_t params = 0;  // weight and bias elements
};

struct CompileOptions {
  // Reserved for the low-bit compiler; FP32 models compile as they are.
};

struct SessionOptions {
  // Threads used inside one Run call (intra-op). 1 runs on the caller's thread.
  int threads = 1;
};

class Session;

class Model : public std::enable_shared_from_this<Model> {
 public:
  virtual ~Model() = default;

  // Imports an ONNX file, folds constants and compiles it.
  static StatusOr<std::shared_ptr<const Model>> LoadOnnx(const std::string& path,
                                                          const CompileOptions& options = {});

  virtual const std::vector<ValueInfo>& inputs() const = 0;
  virtual const std::vector<ValueInfo>& outputs() const = 0;
  virtual const std::vector<LayerInfo>& layers() const = 0;

  virtual StatusOr<std::unique_ptr<Session>> CreateSession(const SessionOptions& options = {}) const = 0;
};

class Session {
 public:
  virtual ~Session() = default;

  // Runs a batch: every input's first dimension is the batch size N >= 1 and
  // the remaining dimensions match Model::inputs(). Outputs come back in
  // Model::outputs() order with first dimension N. Not thread-safe: one
  // caller at a time.
  virtual Status Run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs) = 0;
};

}  // namespace lowbit::engine
