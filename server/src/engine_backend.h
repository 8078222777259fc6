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

  StatusOr<std::unique_ptr<InferenceSession>> CreateSession(int threads) const override;

 private:
  std::shared_ptr<const engine::DetectorModel> model_;
};

}  // namespace lowbit::server
