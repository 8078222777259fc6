// What the scheduler needs from an inference engine, behind a small interface
// so that tests substitute a fake. engine_backend.h adapts lowbit's engine.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "lowbit/engine/detector.h"
#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"

namespace lowbit::server {

// One frame of a batch: decoded pixels (pre-processed by the session) or an
// already pre-processed input (InferenceBackend::input_floats_per_frame()
// floats in the model's input layout). Exactly one is set.
struct FrameInput {
  const engine::Image* image = nullptr;
  const std::vector<float>* tensor = nullptr;
};

// One worker's engine state (an engine Session plus its input and output
// tensors). Used by one thread at a time.
class InferenceSession {
 public:
  virtual ~InferenceSession() = default;

  // Builds one [N, ...] input tensor from `frames`, N = frames.size() >= 1,
  // and runs the model once. The outputs stay in the session until the next
  // Run.
  virtual Status Run(std::span<const FrameInput> frames) = 0;

  // Detections of frame `index` of the last successful Run, in the pixels of
  // that frame's original `width` x `height` image.
  virtual std::vector<engine::Detection> Postprocess(int index, int width, int height,
                                                     const engine::DetectOptions& options) = 0;

  // Frame `index`'s slice of every output of the last successful Run, in
  // the model's output order, each with batch dimension 1.
  virtual std::vector<engine::NamedTensor> RawOutputs(int index) = 0;
};

// A loaded model; shared by all of its sessions, immutable.
class InferenceBackend {
 public:
  virtual ~InferenceBackend() = default;

  // `threads`: threads inside one Run call (intra-op), >= 1.
  virtual StatusOr<std::unique_ptr<InferenceSession>> CreateSession(int threads) const = 0;

  // Floats of one pre-processed frame (FrameInput::tensor's size).
  virtual int64_t input_floats_per_frame() const = 0;
};

}  // namespace lowbit::server
