// InferenceBackend on top of lowbit's engine (DetectorModel + Session).
#pragma once

#include <memory>

#include "backend.h"
#include "lowbit/engine/detector.h"

namespace lowbit::server {

class EngineBackend final : public InferenceBackend {
 public:
  explicit EngineBackend(std::shared_ptr<const engine::DetectorModel> model)
      : model_(std::move(model)) {}

  // Each session keeps one [N, ...] input tensor per batch size N it has
  // run, so batches whose size alternates never re-allocate their input.
  StatusOr<std::unique_ptr<InferenceSession>> CreateSession(int threads) const override;

  int64_t input_floats_per_frame() const override { return model_->InputSizePerFrame(); }

 private:
  std::shared_ptr<const engine::DetectorModel> model_;
};

}  // namespace lowbit::server
