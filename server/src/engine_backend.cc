#include "engine_backend.h"

#include <algorithm>
#include <map>
#include <string>
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

  Status Run(std::span<const FrameInput> frames) override {
    const int batch = static_cast<int>(frames.size());
    if (batch < 1) return InvalidArgument("a batch needs at least one frame");
    std::vector<engine::NamedTensor>& inputs = inputs_by_size_[batch];
    if (inputs.empty()) inputs.push_back({input_name_, engine::Tensor(model_->InputShape(batch))});
    const int64_t frame_floats = model_->InputSizePerFrame();
    float* input = inputs[0].tensor.data();
    for (int i = 0; i < batch; ++i) {
      float* dst = input + i * frame_floats;
      const FrameInput& frame = frames[i];
      if (frame.image != nullptr) {
        model_->Preprocess(frame.image->view(), dst);
      } else if (frame.tensor != nullptr &&
                 static_cast<int64_t>(frame.tensor->size()) == frame_floats) {
        std::copy(frame.tensor->begin(), frame.tensor->end(), dst);
      } else {
        batch_ = 0;
        return InvalidArgument("frame " + std::to_string(i) + " of the batch has " +
                               (frame.tensor ? std::to_string(frame.tensor->size()) + " floats"
                                             : std::string("no data")) +
                               "; the model takes " + std::to_string(frame_floats) +
                               " floats per frame");
      }
    }
    // Outputs are kept per batch size, so the engine refills them in place.
    outputs_ = &outputs_by_size_[batch];
    Status status = session_->Run(inputs, outputs_);
    batch_ = status.ok() ? batch : 0;
    return status;
  }

  std::vector<engine::Detection> Postprocess(int index, int width, int height,
                                             const engine::DetectOptions& options) override {
    if (outputs_ == nullptr || batch_ == 0) return {};
    return model_->Postprocess(*outputs_, index, width, height, options);
  }

  std::vector<engine::NamedTensor> RawOutputs(int index) override {
    std::vector<engine::NamedTensor> slices;
    if (outputs_ == nullptr || index < 0 || index >= batch_) return slices;
    slices.reserve(outputs_->size());
    for (const engine::NamedTensor& output : *outputs_) {
      engine::Shape shape = output.tensor.shape();
      if (shape.empty() || shape[0] != batch_) continue;
      const int64_t per_frame = output.tensor.size() / batch_;
      shape[0] = 1;
      const float* begin = output.tensor.data() + index * per_frame;
      slices.push_back({output.name, engine::Tensor(std::move(shape),
                                                    std::vector<float>(begin, begin + per_frame))});
    }
    return slices;
  }

 private:
  std::shared_ptr<const engine::DetectorModel> model_;
  std::unique_ptr<engine::Session> session_;
  std::string input_name_;
  std::map<int, std::vector<engine::NamedTensor>> inputs_by_size_;  // N -> one [N, ...] tensor
  // N -> the outputs of the last Run of N frames, Model::outputs() order.
  std::map<int, std::vector<engine::NamedTensor>> outputs_by_size_;
  std::vector<engine::NamedTensor>* outputs_ = nullptr;  // of the last Run
  int batch_ = 0;  // N of the last successful Run; 0: none
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
