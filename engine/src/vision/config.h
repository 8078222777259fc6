// Model repository entry configuration: parsing and validation of
// config.pbtxt and labels, independent of the compiled model so that the
// checks can run (and be tested) without loading an ONNX file.
#pragma once

#include <string>
#include <vector>

#include "lowbit/engine/model.h"
#include "lowbit/engine/status.h"
#include "lowbit/v1/model_config.pb.h"
#include "vision/head.h"

namespace lowbit::engine::vision {

// Parses protobuf text format; errors carry `source_name:line:column`.
StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text, const std::string& source_name);

// Reads and parses a config.pbtxt file.
StatusOr<v1::ModelConfig> ReadModelConfig(const std::string& path);

// Checks everything that does not need the model: sizes, normalisation,
// head parameters, thresholds, label sources. Messages name the field.
Status ValidateModelConfig(const v1::ModelConfig& config);

// Labels: inline `labels`, else `labels_file`, else `model_dir/labels.txt` if
// it exists, else none. A labels file has one label per line; trailing blank
// lines are ignored, a blank line between labels is an error.
StatusOr<std::vector<std::string>> LoadLabels(const v1::ModelConfig& config,
                                              const std::string& model_dir);

// Checks the config against the compiled model's inputs and outputs (batch 1)
// and the labels: input name and shape, every head output present with the
// shape the head implies, label count equal to the class count. Fills in
// `config->input().tensor_name` when it is empty and the model has a single
// input. The head checks its outputs and labels (BlazeFace with no labels
// gets the single label "face").
Status CheckConfigAgainstModel(v1::ModelConfig* config, std::vector<std::string>* labels,
                               const std::vector<ValueInfo>& model_inputs,
                               const std::vector<ValueInfo>& model_outputs, const Head& head);
// The same with the config's head made without a model directory (a head
// reading a file, e.g. SSD anchors_file, cannot check its count then).
Status CheckConfigAgainstModel(v1::ModelConfig* config, std::vector<std::string>* labels,
                               const std::vector<ValueInfo>& model_inputs,
                               const std::vector<ValueInfo>& model_outputs);

// Input tensor shape for a batch: [N,3,H,W] (NCHW) or [N,H,W,3] (NHWC).
Shape InputShapeFor(const v1::InputConfig& input, int batch);

// Cells of a stride's grid: ceil(height / stride) * ceil(width / stride).
int64_t GridCells(const v1::InputConfig& input, int stride);

}  // namespace lowbit::engine::vision
