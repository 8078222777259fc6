// Session: kernels (created once), a thread pool, and one activation arena.
//
// The arena is planned once for one frame: every buffer of a batch of N is N
// times its one-frame size, and scaling a plan of 64-byte-aligned,
// non-overlapping intervals by N keeps them aligned and non-overlapping, so
// batch N uses offsets N * frame_offset in an arena of N * frame_arena bytes.
// The arena only grows (to the largest batch seen), so a server batching
// 1..max frames does not reallocate it from call to call.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "ops/kernel.h"
#include "runtime/arena_poison.h"
#include "runtime/compiled_model.h"
#include "runtime/memory_plan.h"

namespace lowbit::engine::runtime {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// The public Tensor is float32; integer graph inputs and outputs hold exact
// integers in it (the range checks belong to whoever made the values).
template <typename T>
void CastCopy(const float* from, int64_t count, T* to) {
  for (int64_t i = 0; i < count; ++i) to[i] = static_cast<T>(from[i]);
}
void FromFloat(const float* from, int64_t count, ir::DataType type, void* to) {
  switch (type) {
    case ir::DataType::kInt32: return CastCopy(from, count, static_cast<int32_t*>(to));
    case ir::DataType::kInt8: return CastCopy(from, count, static_cast<int8_t*>(to));
    case ir::DataType::kUInt8: return CastCopy(from, count, static_cast<uint8_t*>(to));
    default: std::memcpy(to, from, count * sizeof(float));
  }
}
template <typename T>
void WidenCopy(const T* from, int64_t count, float* to) {
  for (int64_t i = 0; i < count; ++i) to[i] = static_cast<float>(from[i]);
}
void ToFloat(const void* from, int64_t count, ir::DataType type, float* to) {
  switch (type) {
    case ir::DataType::kInt32: return WidenCopy(static_cast<const int32_t*>(from), count, to);
    case ir::DataType::kInt8: return WidenCopy(static_cast<const int8_t*>(from), count, to);
    case ir::DataType::kUInt8: return WidenCopy(static_cast<const uint8_t*>(from), count, to);
    default: std::memcpy(to, from, count * sizeof(float));
  }
}

class SessionImpl final : public Session {
 public:
  SessionImpl(std::shared_ptr<const CompiledModel> model, pthreadpool_t threadpool)
      : model_(std::move(model)), threadpool_(threadpool) {}
  ~SessionImpl() override {
    // LOWBIT_PROFILE=1: total milliseconds per op type over the session's runs
    // (LOWBIT_PROFILE=2: per node).
    for (const auto& [op, ms] : profile_ms_)
      std::fprintf(stderr, "profile %-20s %10.3f ms\n", op.c_str(), ms);
    kernels_.clear();
    if (threadpool_ != nullptr) pthreadpool_destroy(threadpool_);
  }

  Status Init() {
    const ir::Graph& graph = model_->graph();
    const ExecutionPlan& plan = model_->plan();
    for (int step : plan.steps) {
      LOWBIT_ASSIGN_OR_RETURN(auto kernel, ops::CreateKernel(graph, graph.nodes[step]));
      kernels_.push_back(std::move(kernel));
    }
    std::vector<BufferRequest> requests(plan.buffer_frame_bytes.size());
    for (size_t b = 0; b < requests.size(); ++b)
      requests[b] = {plan.buffer_frame_bytes[b], plan.buffer_first_step[b],
                     plan.buffer_last_step[b]};
    // Kernel scratch lives in the arena for its own step only. Workspaces
    // are planned per frame like every buffer; a kernel's need at batch N
    // is at most N times its need at batch 1 (checked in Run).
    workspace_buffer_.assign(kernels_.size(), -1);
    for (size_t k = 0; k < kernels_.size(); ++k) {
      const int64_t bytes = kernels_[k]->workspace_bytes(1);
      if (bytes <= 0) continue;
      workspace_buffer_[k] = static_cast<int>(requests.size());
      workspace_frame_bytes_.resize(kernels_.size());
      workspace_frame_bytes_[k] = bytes;
      requests.push_back({bytes, static_cast<int>(k), static_cast<int>(k)});
    }
    frame_plan_ = PlanMemory(requests);
    return Status::Ok();
  }

  Status Run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs) override {
    const ir::Graph& graph = model_->graph();
    const ExecutionPlan& plan = model_->plan();
    const auto& declared = model_->inputs();
    if (inputs.size() != declared.size())
      return InvalidArgument("expected " + std::to_string(declared.size()) +
                             " input tensor(s), got " + std::to_string(inputs.size()));
    std::vector<const Tensor*> ordered(declared.size(), nullptr);
    int64_t batch = -1;
    for (const NamedTensor& in : inputs) {
      size_t i = 0;
      while (i < declared.size() && declared[i].name != in.name) ++i;
      if (i == declared.size()) {
        std::string names;
        for (const ValueInfo& info : declared)
          names += (names.empty() ? "'" : ", '") + info.name + "'";
        return InvalidArgument("the model has no input named '" + in.name + "' (inputs: " + names +
                               ")");
      }
      if (ordered[i] != nullptr) return InvalidArgument("input '" + in.name + "' is given twice");
      const Shape& shape = in.tensor.shape();
      const Shape& expected = declared[i].shape;
      bool matches = shape.size() == expected.size() && !shape.empty() && shape[0] >= 1;
      for (size_t d = 1; matches && d < shape.size(); ++d) matches = shape[d] == expected[d];
      if (!matches || in.tensor.size() != NumElements(shape)) {
        Shape wanted = expected;
        return InvalidArgument("input '" + in.name + "' has shape " + ShapeToString(shape) +
                               "; expected [N" + ShapeToString(wanted).substr(2));
      }
      if (batch >= 0 && shape[0] != batch)
        return InvalidArgument("inputs disagree on the batch size (" + std::to_string(batch) +
                               " vs " + std::to_string(shape[0]) + ")");
      batch = shape[0];
      ordered[i] = &in.tensor;
    }
    LOWBIT_RETURN_IF_ERROR(ReserveArena(batch));

    char* arena = static_cast<char*>(arena_.get());
    auto buffer_of = [&](int value) -> void* {
      return arena + frame_plan_.offsets[plan.buffer_of_value[value]] * batch;
    };
    for (size_t i = 0; i < ordered.size(); ++i)
      FromFloat(ordered[i]->data(), ordered[i]->size(), graph.values[graph.inputs[i]].dtype,
                buffer_of(graph.inputs[i]));

    ops::KernelContext context;
    context.batch = batch;
    context.threadpool = threadpool_;
    std::vector<const void*> in_ptrs;
    std::vector<void*> out_ptrs;
    for (size_t k = 0; k < kernels_.size(); ++k) {
      const ir::Node& node = graph.nodes[plan.steps[k]];
      in_ptrs.clear();
      out_ptrs.clear();
      for (int in : node.inputs) {
        if (in == ir::kNoValue) {
          in_ptrs.push_back(nullptr);
          continue;
        }
        const ir::Value& v = graph.values[in];
        if (!v.is_constant())
          in_ptrs.push_back(buffer_of(in));
        else if (v.constant->is_float())
          in_ptrs.push_back(v.constant->floats.data());
        else if (v.constant->dtype == ir::DataType::kPacked)
          in_ptrs.push_back(v.constant->bytes.data());
        else
          in_ptrs.push_back(nullptr);
      }
      for (int out : node.outputs) out_ptrs.push_back(buffer_of(out));
      context.workspace = nullptr;
      if (workspace_buffer_[k] >= 0) {
        const int64_t planned = workspace_frame_bytes_[k] * batch;
        if (kernels_[k]->workspace_bytes(batch) > planned)
          return Internal(node.Describe() + " needs more scratch at batch " +
                          std::to_string(batch) + " than planned");
        context.workspace = arena + frame_plan_.offsets[workspace_buffer_[k]] * batch;
      }
      if (kArenaPoisoning) ExposeOnly(node, k, batch, context.workspace);
      const auto start =
          profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      Status status = kernels_[k]->Run(context, in_ptrs.data(), out_ptrs.data());
      if (kArenaPoisoning) UnpoisonArenaBytes(arena, static_cast<size_t>(arena_bytes_));
      if (profile_)
        profile_ms_[std::getenv("LOWBIT_PROFILE")[0] == '2' ? node.name : node.op_type] +=
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
      if (!status.ok()) return status.WithContext(node.Describe());
    }

    // Tensors a caller passes back from a Run of the same batch size are
    // refilled in place: a server calling Run per batch does not map and
    // fault in fresh output buffers every time.
    const auto& declared_outputs = model_->outputs();
    bool reuse = outputs->size() == declared_outputs.size();
    for (size_t i = 0; reuse && i < declared_outputs.size(); ++i) {
      const NamedTensor& held = (*outputs)[i];
      const Shape& shape = held.tensor.shape();
      const Shape& declared = declared_outputs[i].shape;
      reuse = held.name == declared_outputs[i].name && shape.size() == declared.size() &&
              !shape.empty() && shape[0] == batch &&
              held.tensor.size() == NumElements(shape) &&
              std::equal(shape.begin() + 1, shape.end(), declared.begin() + 1);
    }
    if (!reuse) {
      outputs->clear();
      for (const ValueInfo& info : declared_outputs) {
        Shape shape = info.shape;
        shape[0] = batch;
        outputs->push_back({info.name, Tensor(shape)});
      }
    }
    for (size_t i = 0; i < declared_outputs.size(); ++i) {
      Tensor& tensor = (*outputs)[i].tensor;
      ToFloat(buffer_of(graph.outputs[i]), tensor.size(), graph.values[graph.outputs[i]].dtype,
              tensor.data());
    }
    return Status::Ok();
  }

 private:
  // ASan builds (runtime/arena_poison.h): poisons the arena but the step's
  // non-constant operands and its workspace, each at its declared size.
  void ExposeOnly(const ir::Node& node, size_t k, int64_t batch, const void* workspace) {
    const ir::Graph& graph = model_->graph();
    const ExecutionPlan& plan = model_->plan();
    char* arena = static_cast<char*>(arena_.get());
    PoisonArenaBytes(arena, static_cast<size_t>(arena_bytes_));
    for (const std::vector<int>* values : {&node.inputs, &node.outputs})
      for (int value : *values) {
        if (value == ir::kNoValue || graph.values[value].is_constant()) continue;
        const int buffer = plan.buffer_of_value[value];
        UnpoisonArenaBytes(arena + frame_plan_.offsets[buffer] * batch,
                           static_cast<size_t>(plan.buffer_frame_bytes[buffer] * batch));
      }
    if (workspace != nullptr)
      UnpoisonArenaBytes(workspace, static_cast<size_t>(kernels_[k]->workspace_bytes(batch)));
  }

  // Makes the arena hold `batch` frames; grows it only past the largest batch so far.
  Status ReserveArena(int64_t batch) {
    const int64_t bytes = std::max<int64_t>(1, frame_plan_.arena_bytes * batch);
    if (bytes <= arena_bytes_) return Status::Ok();
    // aligned_alloc wants a size that is a multiple of the alignment.
    const int64_t rounded = (bytes + 63) / 64 * 64;
    void* arena = std::aligned_alloc(64, static_cast<size_t>(rounded));
    if (arena == nullptr)
      return ResourceExhausted("cannot allocate a " + std::to_string(rounded) +
                               "-byte activation arena for batch " + std::to_string(batch));
    arena_.reset(arena);
    arena_bytes_ = rounded;
    return Status::Ok();
  }

  std::shared_ptr<const CompiledModel> model_;
  pthreadpool_t threadpool_;
  std::vector<std::unique_ptr<ops::Kernel>> kernels_;
  std::vector<int> workspace_buffer_;  // per kernel: its scratch request, or -1
  std::vector<int64_t> workspace_frame_bytes_;
  MemoryPlan frame_plan_;  // offsets and size for one frame; scaled by the batch
  std::unique_ptr<void, FreeDeleter> arena_;
  int64_t arena_bytes_ = 0;
  const bool profile_ = std::getenv("LOWBIT_PROFILE") != nullptr;
  std::map<std::string, double> profile_ms_;
};

}  // namespace

StatusOr<std::unique_ptr<Session>> CompiledModel::CreateSession(
    const SessionOptions& options) const {
  if (options.threads < 1)
    return InvalidArgument("SessionOptions.threads must be >= 1, got " +
                           std::to_string(options.threads));
  pthreadpool_t threadpool = nullptr;
  if (options.threads > 1) {
    threadpool = pthreadpool_create(options.threads);
    if (threadpool == nullptr)
      return ResourceExhausted("cannot create a pool of " + std::to_string(options.threads) +
                               " threads");
  }
  auto self = std::static_pointer_cast<const CompiledModel>(shared_from_this());
  auto session = std::make_unique<SessionImpl>(self, threadpool);
  LOWBIT_RETURN_IF_ERROR(session->Init());
  return std::unique_ptr<Session>(std::move(session));
}

}  // namespace lowbit::engine::runtime
