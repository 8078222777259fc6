// A compiled model (immutable, shared by all sessions) and a session that
// runs it (owns activations; one per worker thread).
//
// Two libraries implement this header. lowbit_runtime (what a deployed box
// links) loads compiled .lbm files: Model::LoadCompiled. lowbit_compiler adds
// the ONNX importer and the passes: Model::LoadOnnx, Model::Load (either
// kind of file) and WriteCompiledModel. Calling a compiler function from a
// program that links only the runtime is a link error, by design.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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
  // Bits per weight and per input activation element: 32 for float layers
  // (and for layers without weights), 1..8 for quantized ones.
  int weight_bits = 32;
  int activation_bits = 32;
  // The kernel that runs the layer ("xnnpack_f32", a kernels/ name such as
  // "conv_u8s8dot_8x32__avx512"); empty for layers without weights.
  std::string kernel;
  // Bytes of the layer's constant operands as stored (packed weights, bias,
  // requantization scales). The FP32 size of the same weights is params * 4.
  int64_t weight_bytes = 0;
  // A residual weight pair W = s1 * Q1 + s2 * Q2 (two low-bit tensors run as
  // two convolutions summed in one int32 accumulator): weight_bits and
  // kernel are the first tensor's, these the second's; 0 and empty for a
  // single tensor. residual_weight_bytes (the second tensor's codes and
  // per-channel multipliers) is part of weight_bytes; macs and params count
  // the convolution once.
  int residual_weight_bits = 0;
  std::string residual_kernel;
  int64_t residual_weight_bytes = 0;
  // Why a convolution the compiler recognised as quantized stays in float
  // (e.g. a residual pair whose scales are not integer multiples); empty
  // otherwise.
  std::string lowering_note;
};

// Where a loaded model came from and where its kernel choices were made.
struct ModelOrigin {
  std::string path;          // the file loaded (.lbm or ONNX)
  bool precompiled = false;  // true: read from a .lbm, nothing compiled at load
  std::string source_model;  // the ONNX file the compiled form was made from
  std::string producer;      // "lowbit 0.1.0"
  // ISA level (kernels::isa_name) and CPU model on which the kernel choices
  // were measured.
  std::string kernel_isa;
  std::string cpu_model;
};

struct CompileOptions {
  // Fake-quantized models: lower quantized patterns onto the integer kernels
  // (the default). false runs the graph as written, every Quantize /
  // Dequantize on the float path: the reference the integer path is tested
  // against, and a way to tell a lowering problem from a model problem.
  bool lower_quantized = true;
  // Fixed sizes for a graph input's symbolic dimensions, by input name (a
  // dynamic-shape export such as Ultralytics' YOLO: images [batch,3,H,W]).
  // Each list has the input's rank; its first entry (the batch) is ignored,
  // the batch stays variable. A dimension the model fixes must be given its
  // own size. Shape plumbing (Shape/Gather/Range/Expand ...) folds away once
  // every non-batch dimension is known.
  std::map<std::string, std::vector<int64_t>> input_shapes;
};

struct SessionOptions {
  // Threads used inside one Run call (intra-op). 1 runs on the caller's thread.
  int threads = 1;
};

class Session;

class Model : public std::enable_shared_from_this<Model> {
 public:
  virtual ~Model() = default;

  // Runtime library: reads a compiled model (.lbm, written by `lowbit
  // compile` or WriteCompiledModel). A file that is corrupt, truncated, of
  // another format version or architecture, or not a .lbm at all is refused
  // with a message saying which.
  static StatusOr<std::shared_ptr<const Model>> LoadCompiled(const std::string& path);

  // Compiler library: imports an ONNX file, folds constants and compiles it.
  static StatusOr<std::shared_ptr<const Model>> LoadOnnx(const std::string& path,
                                                         const CompileOptions& options = {});
  // Compiler library: a .lbm (by its magic bytes) through LoadCompiled,
  // anything else as ONNX through LoadOnnx.
  static StatusOr<std::shared_ptr<const Model>> Load(const std::string& path,
                                                     const CompileOptions& options = {});

  virtual const std::vector<ValueInfo>& inputs() const = 0;
  virtual const std::vector<ValueInfo>& outputs() const = 0;
  virtual const std::vector<LayerInfo>& layers() const = 0;
  // Empty for models that are not loaded from a file.
  virtual const ModelOrigin& origin() const;

  virtual StatusOr<std::unique_ptr<Session>> CreateSession(
      const SessionOptions& options = {}) const = 0;
};

// Loads a model file: Model::LoadCompiled (runtime only) or Model::Load.
using ModelLoader = std::function<StatusOr<std::shared_ptr<const Model>>(const std::string& path)>;

// Compiler library: writes a model loaded by this process (Model::LoadOnnx,
// Model::Load or Model::LoadCompiled) as a .lbm file at `path`. A model
// compiled here records this host's kernel ISA level and CPU; one read from a
// .lbm keeps the ISA, CPU and source model of its file.
Status WriteCompiledModel(const Model& model, const std::string& path);

class Session {
 public:
  virtual ~Session() = default;

  // Runs a batch: every input's first dimension is the batch size N >= 1 and
  // the remaining dimensions match Model::inputs(). Outputs come back in
  // Model::outputs() order with first dimension N; tensors `outputs` already
  // holds from an earlier Run of the same batch size are refilled in place.
  // Not thread-safe: one caller at a time.
  virtual Status Run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs) = 0;
};

}  // namespace lowbit::engine
