// What the scheduler needs from an inference engine, behind a small interface
// so that tests substitute a fake. engine_backend.h adapts lowbit's engine.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "lowbit/engine/detector.h"
#include "lowbit/engine/status.h"

namespace lowbit::server {

// One worker's engine state (an engine Session plus its input and output
// tensors). Used by one thread at a time.
class InferenceSession {
 public:
  virtual ~InferenceSession() = default;

  // Pre-processes `frames` into one [N, ...] input tensor, N = frames.size()
  // >= 1, and runs the model once. The outputs stay in the session until the
  // next Run.
  virtual Status Run(std::span<const engine::Image* const> frames) = 0;

  // Detections of frame `index` of the last successful Run, in the pixels of
  // that frame's original `width` x `height` image.
  virtual std::vector<engine::Detection> Postprocess(int index, int width, int height,
                                                     const engine::DetectOptions& options) = 0;
};

// A loaded model; shared by all of its sessions, immutable.
class InferenceBackend {
 public:
  virtual ~InferenceBackend() = default;

  // `threads`: threads inside one Run call (intra-op), >= 1.
  virtual StatusOr<std::unique_ptr<InferenceSession>> CreateSession(int threads) const = 0;
};

}  // namespace lowbit::server
