#include "engine_backend.h"

#include <utility>
#include <vector>

namespace lowbit::server {
namespace {

class EngineSession final : public InferenceSession {
 public:
  EngineSession(std::shared_ptr<const engine::DetectorModel> model,
                std::unique_ptr<engine::Session> session)
      : model_(std::move(model)), session_(std::move(session)) {
    const std::string& configured = model_->config().input().tensor_name();
    input_name_ = configured.empty() ? model_->model().inputs().at(0).name : configured;
  }

  Status Run(std::span<const engine::Image* const> frames) override {
    const int batch = static_cast<int>(frames.size());
    if (batch < 1) return InvalidArgument("a batch needs at least one frame");
    // The input tensor is reused while consecutive batches have the same size.
    if (inputs_.empty() || inputs_[0].tensor.shape().at(0) != batch) {
      inputs_.clear();
      inputs_.push_back({input_name_, engine::Tensor(model_->InputShape(batch))});
    }
    const int64_t frame_floats = model_->InputSizePerFrame();
    float* input = inputs_[0].tensor.data();
    for (int i = 0; i < batch; ++i) {
      model_->Preprocess(frames[i]->view(), input + i * frame_floats);
    }
    outputs_.clear();
    return session_->Run(inputs_, &outputs_);
  }

  std::vector<engine::Detection> Postprocess(int index, int width, int height,
                                             const engine::DetectOptions& options) override {
    return model_->Postprocess(outputs_, index, width, height, options);
  }

 private:
  std::shared_ptr<const engine::DetectorModel> model_;
  std::unique_ptr<engine::Session> session_;
  std::string input_name_;
  std::vector<engine::NamedTensor> inputs_;   // one [N, ...] tensor
  std::vector<engine::NamedTensor> outputs_;  // of the last Run, Model::outputs() order
};

}  // namespace

StatusOr<std::unique_ptr<InferenceSession>> EngineBackend::CreateSession(int threads) const {
  engine::SessionOptions options;
  options.threads = threads;
  LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> session,
                          model_->model().CreateSession(options));
  return std::unique_ptr<InferenceSession>(new EngineSession(model_, std::move(session)));
}

}  // namespace lowbit::server
