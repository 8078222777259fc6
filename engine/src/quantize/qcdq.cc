#include "quantize/qcdq.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>

#include "import/onnx_importer.h"

namespace lowbit::engine::quantize {
namespace {

// Ops whose single output follows a Conv and still counts as the conv's
// output for its producer-side quantizer (Conv -> LeakyRelu -> Q).
bool IsActivation(const std::string& op) {
  static const std::set<std::string> kActivations = {
      "Relu", "LeakyRelu", "PRelu", "Clip", "Elu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh"};
  return kActivations.count(op) > 0;
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& attribute : node.attribute())
    if (attribute.name() == name) return &attribute;
  return nullptr;
}

std::string PadMode(const onnx::NodeProto& pad) {
  const auto* mode = FindAttribute(pad, "mode");
  return mode ? mode->s() : "constant";
}

// Round half to even, as ONNX QuantizeLinear rounds.
double RoundHalfEven(double x) { return std::nearbyint(x); }

}  // namespace

StatusOr<std::vector<float>> FloatValues(const onnx::TensorProto& tensor) {
  if (tensor.data_type() != onnx::TensorProto::FLOAT)
    return InvalidArgument("initializer " + tensor.name() + " is not float32");
  LOWBIT_ASSIGN_OR_RETURN(ir::HostTensor values,
                          ImportOnnxTensor(tensor, "initializer '" + tensor.name() + "'"));
  return std::move(values.floats);
}

// --- GraphIndex ----------------------------------------------------------------

GraphIndex::GraphIndex(const onnx::GraphProto& graph) : graph_(&graph) {
  for (const auto& init : graph.initializer()) initializers_[init.name()] = &init;
  for (const auto& input : graph.input())
    if (!initializers_.count(input.name())) graph_inputs_.insert(input.name());
  for (const auto& output : graph.output()) graph_outputs_.insert(output.name());
  for (const auto& node : graph.node()) {
    for (const auto& output : node.output())
      if (!output.empty()) producer_[output] = &node;
    for (const auto& input : node.input())
      if (!input.empty()) consumers_[input].push_back(&node);
  }
}

const onnx::NodeProto* GraphIndex::producer(const std::string& tensor) const {
  auto it = producer_.find(tensor);
  return it == producer_.end() ? nullptr : it->second;
}

const std::vector<const onnx::NodeProto*>& GraphIndex::consumers(const std::string& tensor) const {
  static const std::vector<const onnx::NodeProto*> kNone;
  auto it = consumers_.find(tensor);
  return it == consumers_.end() ? kNone : it->second;
}

const onnx::TensorProto* GraphIndex::initializer(const std::string& name) const {
  auto it = initializers_.find(name);
  return it == initializers_.end() ? nullptr : it->second;
}

namespace {

// The constant value of a constant-mode Pad, when it is known.
std::optional<float> PadValue(const GraphIndex& index, const onnx::NodeProto& pad) {
  if (pad.input_size() > 2 && !pad.input(2).empty()) {
    const onnx::TensorProto* value = index.initializer(pad.input(2));
    if (value == nullptr) return std::nullopt;
    auto values = FloatValues(*value);
    if (!values.ok() || values->empty()) return std::nullopt;
    return (*values)[0];
  }
  if (const auto* value = FindAttribute(pad, "value")) return value->f();  // opset < 11
  return 0.0f;
}

}  // namespace

std::string GraphIndex::ZeroPadInput(const std::string& tensor) const {
  const onnx::NodeProto* node = producer(tensor);
  if (node == nullptr || node->op_type() != "Pad" || PadMode(*node) != "constant") return {};
  const auto value = PadValue(*this, *node);
  return value && *value == 0.0f ? node->input(0) : std::string();
}

std::vector<std::string> GraphIndex::CodePreservingInputs(const onnx::NodeProto& node) const {
  const std::string& op = node.op_type();
  if (op == "Concat") {
    std::vector<std::string> inputs;
    for (const auto& input : node.input())
      if (!input.empty()) inputs.push_back(input);
    return inputs;
  }
  if (op == "Split" || op == "Slice" || op == "MaxPool") return {node.input(0)};
  if (op != "Pad") return {};
  const std::string mode = PadMode(node);
  if (mode == "edge" || mode == "reflect") return {node.input(0)};
  if (mode != "constant") return {};
  const auto value = PadValue(*this, node);
  if (!value) return {};
  if (*value == 0.0f) return {node.input(0)};
  if (std::isinf(*value) && *value < 0) {
    for (const auto* reader : consumers(node.output(0)))
      if (reader->op_type() != "MaxPool") return {};
    return {node.input(0)};
  }
  return {};
}

// --- QuantizationSites -----------------------------------------------------------

QuantizationSites::QuantizationSites(onnx::ModelProto* model)
    : model_(model), index_(model->graph()) {}

std::string QuantizationSites::Find(const std::string& tensor) const {
  auto it = parent_.find(tensor);
  if (it == parent_.end()) return tensor;
  std::string root = tensor;
  while (parent_.at(root) != root) root = parent_.at(root);
  return root;
}

std::string QuantizationSites::GroupOf(const std::string& tensor) const { return Find(tensor); }

const std::vector<std::string>& QuantizationSites::GroupSources(const std::string& root) const {
  static const std::vector<std::string> kNone;
  auto it = sources_.find(root);
  return it == sources_.end() ? kNone : it->second;
}

std::string QuantizationSites::ProducerOutput(const onnx::NodeProto& conv) const {
  const std::string& out = conv.output(0);
  const auto& readers = index_.consumers(out);
  if (readers.size() == 1 && IsActivation(readers[0]->op_type()) && !index_.is_graph_output(out))
    return readers[0]->output(0);
  return out;
}

StatusOr<QuantizationSites> QuantizationSites::Analyze(onnx::ModelProto* model) {
  auto* graph = model->mutable_graph();
  for (int i = 0; i < graph->node_size(); ++i) {
    auto* node = graph->mutable_node(i);
    if (node->name().empty()) node->set_name(node->op_type() + "_" + std::to_string(i));
  }
  QuantizationSites sites(model);
  const GraphIndex& index = sites.index_;

  // Groups: union-find over the tensors code-preserving ops join.
  auto find = [&](const std::string& t) {
    sites.parent_.emplace(t, t);
    std::string root = t;
    while (sites.parent_[root] != root) root = sites.parent_[root];
    for (std::string at = t; sites.parent_[at] != root;) {
      std::string next = sites.parent_[at];
      sites.parent_[at] = root;
      at = next;
    }
    return root;
  };
  std::set<std::string> derived;
  for (const auto& node : graph->node()) {
    const auto inputs = index.CodePreservingInputs(node);
    if (inputs.empty()) continue;
    const int outputs = node.op_type() == "MaxPool" ? 1 : node.output_size();
    for (int o = 0; o < outputs; ++o) {
      const std::string& out = node.output(o);
      if (out.empty()) continue;
      derived.insert(out);
      for (const auto& in : inputs) {
        const std::string a = find(in), b = find(out);
        if (a != b) sites.parent_[b] = a;
      }
    }
  }
  std::vector<std::string> tensors;
  for (const auto& input : graph->input()) tensors.push_back(input.name());
  for (const auto& node : graph->node())
    for (const auto& out : node.output()) tensors.push_back(out);
  for (const auto& node : graph->node())
    for (const auto& in : node.input()) tensors.push_back(in);
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    if (t.empty() || !seen.insert(t).second) continue;
    const std::string root = find(t);
    sites.members_[root].push_back(t);
    if (!derived.count(t)) sites.sources_[root].push_back(t);
    if (index.initializer(t)) sites.constant_groups_.insert(root);
  }

  // Quantizable convs: constant float 4-D weights.
  for (const auto& node : graph->node()) {
    if (node.op_type() != "Conv" || node.input_size() < 2) continue;
    const onnx::TensorProto* w = index.initializer(node.input(1));
    if (w == nullptr || w->dims_size() != 4 || w->data_type() != onnx::TensorProto::FLOAT) continue;
    ConvLayer conv;
    conv.node = &node;
    conv.name = node.name();
    conv.cout = w->dims(0);
    conv.k = w->dims(1) * w->dims(2) * w->dims(3);
    LOWBIT_ASSIGN_OR_RETURN(conv.weights, FloatValues(*w));
    if (node.input_size() > 2 && !node.input(2).empty()) {
      const onnx::TensorProto* b = index.initializer(node.input(2));
      if (b == nullptr) continue;  // a computed bias stays float
      LOWBIT_ASSIGN_OR_RETURN(conv.bias, FloatValues(*b));
      if (static_cast<int64_t>(conv.bias.size()) != conv.cout)
        return InvalidArgument("Conv " + conv.name + ": bias has " +
                               std::to_string(conv.bias.size()) + " values for " +
                               std::to_string(conv.cout) + " output channels");
    }
    conv.input = node.input(0);
    conv.input_group = find(conv.input);
    const std::string pad_input = index.ZeroPadInput(conv.input);
    conv.calibration_input = pad_input.empty() ? conv.input : pad_input;
    sites.convs_.push_back(std::move(conv));
  }
  if (sites.convs_.empty())
    return InvalidArgument("the model has no Conv with constant float weights to quantize");

  // Edges: first convs read the graph input (through a zero Pad); last convs
  // reach a graph output without another Conv.
  std::set<std::string> last;
  std::vector<std::string> stack;
  for (const auto& output : graph->output()) stack.push_back(output.name());
  std::set<std::string> visited;
  while (!stack.empty()) {
    const std::string t = stack.back();
    stack.pop_back();
    const onnx::NodeProto* node = index.producer(t);
    if (!visited.insert(t).second || node == nullptr) continue;
    if (node->op_type() == "Conv") {
      last.insert(node->name());
      continue;
    }
    for (const auto& in : node->input())
      if (!in.empty() && !index.initializer(in)) stack.push_back(in);
  }
  for (auto& conv : sites.convs_) {
    const bool first = index.is_graph_input(conv.calibration_input);
    conv.edge = first || last.count(conv.name);
    if (!last.count(conv.name)) {
      const std::string made = sites.ProducerOutput(*conv.node);
      sites.sites_[made] = first;
      sites.made_by_[made] = conv.name;
    }
  }
  for (const auto& input : graph->input())
    if (index.is_graph_input(input.name())) sites.sites_[input.name()] = true;
  return sites;
}

std::map<std::string, std::vector<std::string>> QuantizationSites::CalibrationGroups() const {
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& [root, sources] : sources_) {
    bool hit = false;
    for (const auto& t : sources) hit |= sites_.count(t) > 0;
    if (hit && !constant_groups_.count(root)) groups[root] = sources;
  }
  for (const auto& conv : convs_) groups[conv.input_group] = GroupSources(conv.input_group);
  return groups;
}

std::vector<std::string> QuantizationSites::CalibrationTensors() const {
  std::vector<std::string> tensors;
  for (const auto& [root, sources] : CalibrationGroups())
    tensors.insert(tensors.end(), sources.begin(), sources.end());
  for (const auto& conv : convs_) tensors.push_back(conv.calibration_input);
  std::sort(tensors.begin(), tensors.end());
  tensors.erase(std::unique(tensors.begin(), tensors.end()), tensors.end());
  return tensors;
}

std::map<std::string, int> QuantizationSites::ProducerGroups(
    const std::map<std::string, LayerBits>& bits, int first_last_bits) const {
  std::map<std::string, int> groups;
  for (const auto& [root, sources] : sources_) {
    if (constant_groups_.count(root)) continue;
    bool hit = false, edge = false;
    std::vector<std::string> askers;
    for (const auto& t : sources) {
      auto site = sites_.find(t);
      if (site == sites_.end()) continue;
      hit = true;
      edge |= site->second;
    }
    if (!hit) continue;
    std::vector<std::string> readers;
    for (const auto& conv : convs_)
      if (conv.input_group == root) {
        readers.push_back(conv.name);
        edge |= conv.edge;
      }
    if (edge) {
      groups[root] = first_last_bits;
      continue;
    }
    askers = readers;
    if (askers.empty())
      for (const auto& t : sources)
        if (made_by_.count(t)) askers.push_back(made_by_.at(t));
    int group_bits = 0;
    for (const auto& conv : askers) {
      auto it = bits.find(conv);
      group_bits = std::max(group_bits, it == bits.end() ? 8 : it->second.activation_bits);
    }
    groups[root] = group_bits > 0 ? group_bits : first_last_bits;
  }
  return groups;
}

ActivationNeeds NeededGrids(const QuantizationSites& sites,
                            const std::map<std::string, LayerBits>& bits, int first_last_bits) {
  ActivationNeeds needs;
  needs.producer_groups = sites.ProducerGroups(bits, first_last_bits);
  for (const auto& [root, group_bits] : needs.producer_groups)
    needs.grids.insert({root, group_bits});
  for (const auto& conv : sites.convs()) {
    auto producer = needs.producer_groups.find(conv.input_group);
    int input_bits;
    if (producer != needs.producer_groups.end()) {
      input_bits = producer->second;
    } else {
      auto it = bits.find(conv.name);
      input_bits =
          conv.edge ? first_last_bits : (it == bits.end() ? 8 : it->second.activation_bits);
    }
    needs.input_bits[conv.name] = input_bits;
    needs.grid[conv.name] = {conv.input_group, input_bits};
    needs.grids.insert({conv.input_group, input_bits});
  }
  return needs;
}

// --- the writer ------------------------------------------------------------------------

namespace {

class QcdqWriter {
 public:
  QcdqWriter(const QuantizationSites& sites, const QcdqPlan& plan) : sites_(sites), plan_(plan) {}

  StatusOr<onnx::ModelProto> Write(const std::string& description);

 private:
  template <typename T>
  void AddInitializer(const std::string& name, onnx::TensorProto::DataType type,
                      const std::vector<int64_t>& dims, const std::vector<T>& values) {
    onnx::TensorProto* tensor = &new_initializers_.emplace_back();
    tensor->set_name(name);
    tensor->set_data_type(type);
    for (int64_t d : dims) tensor->add_dims(d);
    tensor->set_raw_data(
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
  }
  onnx::NodeProto* AddNode(const std::string& op, const std::vector<std::string>& inputs,
                           const std::string& output, const std::string& name) {
    onnx::NodeProto* node = &new_nodes_.emplace_back();
    node->set_op_type(op);
    node->set_name(name);
    for (const auto& in : inputs) node->add_input(in);
    node->add_output(output);
    return node;
  }
  // Initializers <base>_scale, _zero_point, _clip_min, _clip_max of a grid, once.
  Status ActivationParams(const std::pair<std::string, int>& key, std::string* base);
  // QuantizeLinear -> Clip -> DequantizeLinear of `tensor` with the grid of `key`.
  StatusOr<std::string> Chain(const std::string& name, const std::string& tensor,
                              const std::pair<std::string, int>& key);
  // int8 codes -> Clip -> DequantizeLinear(axis 0); returns the output.
  std::string WeightChain(const std::string& base, const std::vector<int64_t>& dims,
                          const std::vector<int8_t>& codes, const std::vector<float>& scale,
                          int bits);

  const QuantizationSites& sites_;
  const QcdqPlan& plan_;
  std::vector<onnx::TensorProto> new_initializers_;
  std::vector<onnx::NodeProto> new_nodes_;
  std::map<std::pair<std::string, std::string>, std::string>
      renames_;  // (node, input) -> new input
  std::map<std::pair<std::string, int>, std::string> param_base_;
  std::set<std::string> dropped_;
};

std::string SafeName(std::string name) {
  for (char& c : name)
    if (c == ':' || c == '/') c = '_';
  return name;
}

Status QcdqWriter::ActivationParams(const std::pair<std::string, int>& key, std::string* base) {
  auto it = param_base_.find(key);
  if (it != param_base_.end()) {
    *base = it->second;
    return Status::Ok();
  }
  auto grid = plan_.grids.find(key);
  if (grid == plan_.grids.end())
    return Internal("no activation grid for group " + key.first + " at " +
                    std::to_string(key.second) + " bits");
  *base = "lowbit_q/" + SafeName(key.first) + "_a" + std::to_string(key.second);
  AddInitializer<float>(*base + "_scale", onnx::TensorProto::FLOAT, {}, {grid->second.scale});
  AddInitializer<uint8_t>(*base + "_zero_point", onnx::TensorProto::UINT8, {},
                          {static_cast<uint8_t>(grid->second.zero_point)});
  AddInitializer<uint8_t>(*base + "_clip_min", onnx::TensorProto::UINT8, {}, {0});
  AddInitializer<uint8_t>(*base + "_clip_max", onnx::TensorProto::UINT8, {},
                          {static_cast<uint8_t>((1 << key.second) - 1)});
  param_base_[key] = *base;
  return Status::Ok();
}

StatusOr<std::string> QcdqWriter::Chain(const std::string& name, const std::string& tensor,
                                        const std::pair<std::string, int>& key) {
  std::string p;
  LOWBIT_RETURN_IF_ERROR(ActivationParams(key, &p));
  const std::string base = "lowbit_q/" + SafeName(name);
  AddNode("QuantizeLinear", {tensor, p + "_scale", p + "_zero_point"}, base + "_q",
          base + "_QuantizeLinear");
  AddNode("Clip", {base + "_q", p + "_clip_min", p + "_clip_max"}, base + "_clip", base + "_Clip");
  AddNode("DequantizeLinear", {base + "_clip", p + "_scale", p + "_zero_point"}, base + "_dq",
          base + "_DequantizeLinear");
  return base + "_dq";
}

std::string QcdqWriter::WeightChain(const std::string& base, const std::vector<int64_t>& dims,
                                    const std::vector<int8_t>& codes,
                                    const std::vector<float>& scale, int bits) {
  AddInitializer<int8_t>(base + "_codes", onnx::TensorProto::INT8, dims, codes);
  AddInitializer<float>(base + "_scale", onnx::TensorProto::FLOAT, {dims[0]}, scale);
  AddInitializer<int8_t>(base + "_zero_point", onnx::TensorProto::INT8, {dims[0]},
                         std::vector<int8_t>(static_cast<size_t>(dims[0]), 0));
  AddInitializer<int8_t>(base + "_clip_min", onnx::TensorProto::INT8, {},
                         {static_cast<int8_t>(WeightCodeMin(bits))});
  AddInitializer<int8_t>(base + "_clip_max", onnx::TensorProto::INT8, {},
                         {static_cast<int8_t>(WeightCodeMax(bits))});
  AddNode("Clip", {base + "_codes", base + "_clip_min", base + "_clip_max"}, base + "_clip",
          base + "_Clip");
  auto* dq = AddNode("DequantizeLinear", {base + "_clip", base + "_scale", base + "_zero_point"},
                     base + "_dq", base + "_DequantizeLinear");
  auto* axis = dq->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(0);
  return base + "_dq";
}

std::vector<const onnx::NodeProto*> TopologicalOrder(std::vector<const onnx::NodeProto*> pending,
                                                     std::set<std::string> available,
                                                     std::string* stuck) {
  std::vector<const onnx::NodeProto*> ordered;
  while (!pending.empty()) {
    std::vector<const onnx::NodeProto*> rest;
    for (const auto* node : pending) {
      bool ready = true;
      for (const auto& in : node->input()) ready &= in.empty() || available.count(in) > 0;
      if (ready) {
        ordered.push_back(node);
        for (const auto& out : node->output()) available.insert(out);
      } else {
        rest.push_back(node);
      }
    }
    if (rest.size() == pending.size()) {
      *stuck = rest.front()->name();
      return {};
    }
    pending.swap(rest);
  }
  return ordered;
}

StatusOr<onnx::ModelProto> QcdqWriter::Write(const std::string& description) {
  const GraphIndex& index = sites_.index();
  const ActivationNeeds needs = NeededGrids(sites_, plan_.bits, plan_.first_last_bits);

  // Producer groups: one chain per source, read by every consumer of the source.
  std::map<std::string, std::string> produced;
  for (const auto& [root, bits] : needs.producer_groups) {
    for (const auto& t : sites_.GroupSources(root)) {
      const std::pair<std::string, int> key(root, bits);
      LOWBIT_ASSIGN_OR_RETURN(produced[t], Chain(t + "_a" + std::to_string(bits), t, key));
      for (const auto* reader : index.consumers(t)) renames_[{reader->name(), t}] = produced[t];
    }
  }

  std::map<std::pair<std::string, int>, std::string> own_chains;  // (tensor, bits) -> dq output
  for (const auto& conv : sites_.convs()) {
    auto bits_it = plan_.bits.find(conv.name);
    auto weights_it = plan_.weights.find(conv.name);
    if (bits_it == plan_.bits.end() || weights_it == plan_.weights.end())
      return Internal("no bits or weights planned for Conv " + conv.name);
    const std::pair<std::string, int> key = needs.grid.at(conv.name);
    const std::string& x = conv.input;
    const std::string bits_suffix = "_a" + std::to_string(key.second);
    if (needs.producer_groups.count(key.first)) {
      auto source = produced.find(x);
      const std::string& from = source == produced.end() ? x : source->second;
      LOWBIT_ASSIGN_OR_RETURN(renames_[std::make_pair(conv.name, x)],
                              Chain(conv.name + "_input" + bits_suffix, from, key));
    } else {
      std::string& chain = own_chains[std::make_pair(x, key.second)];
      if (chain.empty()) {
        LOWBIT_ASSIGN_OR_RETURN(chain, Chain(x + bits_suffix, x, key));
      }
      renames_[std::make_pair(conv.name, x)] = chain;
    }

    const QuantizedWeights& w = weights_it->second;
    const onnx::TensorProto* w_init = index.initializer(conv.node->input(1));
    const std::vector<int64_t> dims(w_init->dims().begin(), w_init->dims().end());
    const std::string base = "lowbit_q/" + SafeName(conv.name);
    std::string weight = WeightChain(base + "_w" + std::to_string(w.first.bits), dims,
                                     w.first.codes, w.first.scale, w.first.bits);
    if (!w.second_codes.empty()) {
      const std::string second = WeightChain(base + "_r" + std::to_string(w.second_bits), dims,
                                             w.second_codes, w.second_scale, w.second_bits);
      AddNode("Add", {weight, second}, base + "_w_pair", base + "_w_pair_Add");
      weight = base + "_w_pair";
    }
    renames_[{conv.name, conv.node->input(1)}] = weight;
    dropped_.insert(conv.node->input(1));

    if (!conv.bias.empty()) {
      const auto& grid = plan_.grids.at(needs.grid.at(conv.name));
      const std::vector<float>& bias = w.bias.empty() ? conv.bias : w.bias;
      std::vector<float> bias_scale(conv.cout);
      std::vector<int32_t> codes(conv.cout);
      for (int64_t c = 0; c < conv.cout; ++c) {
        bias_scale[c] = grid.scale * w.first.scale[c];  // float32 product, as importers compute it
        const double q = RoundHalfEven(static_cast<double>(bias[c]) / bias_scale[c]);
        if (!(std::fabs(q) < 2147483647.0))
          return InvalidArgument("Conv " + conv.name + ": bias " + std::to_string(bias[c]) +
                                 " does not fit int32 codes at scale " +
                                 std::to_string(bias_scale[c]));
        codes[c] = static_cast<int32_t>(q);
      }
      const std::string b = base + "_bias";
      AddInitializer<int32_t>(b + "_codes", onnx::TensorProto::INT32, {conv.cout}, codes);
      AddInitializer<float>(b + "_scale", onnx::TensorProto::FLOAT, {conv.cout}, bias_scale);
      AddInitializer<int32_t>(b + "_zero_point", onnx::TensorProto::INT32, {conv.cout},
                              std::vector<int32_t>(conv.cout, 0));
      auto* dq = AddNode("DequantizeLinear", {b + "_codes", b + "_scale", b + "_zero_point"},
                         b + "_dq", b + "_DequantizeLinear");
      auto* axis = dq->add_attribute();
      axis->set_name("axis");
      axis->set_type(onnx::AttributeProto::INT);
      axis->set_i(0);
      renames_[{conv.name, conv.node->input(2)}] = b + "_dq";
      dropped_.insert(conv.node->input(2));
    }
  }

  onnx::ModelProto out = sites_.model();
  onnx::GraphProto* graph = out.mutable_graph();
  std::set<std::string> still_used;
  for (auto& node : *graph->mutable_node()) {
    for (int i = 0; i < node.input_size(); ++i) {
      auto it = renames_.find({node.name(), node.input(i)});
      if (it != renames_.end()) node.set_input(i, it->second);
    }
    for (const auto& in : node.input()) still_used.insert(in);
  }
  std::vector<onnx::TensorProto> kept;
  for (auto& init : *graph->mutable_initializer())
    if (!dropped_.count(init.name()) || still_used.count(init.name()))
      kept.push_back(std::move(init));
  std::set<std::string> available;
  for (const auto& input : graph->input()) available.insert(input.name());
  for (const auto& init : kept) available.insert(init.name());
  for (const auto& init : new_initializers_) available.insert(init.name());
  std::vector<const onnx::NodeProto*> pending;
  for (const auto& node : new_nodes_) pending.push_back(&node);
  for (const auto& node : graph->node()) pending.push_back(&node);
  std::string stuck;
  const auto ordered = TopologicalOrder(pending, available, &stuck);
  if (ordered.empty())
    return Internal("the quantized graph has a cycle or a missing input at " + stuck);
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (const auto* node : ordered) *nodes.Add() = *node;
  graph->mutable_node()->Swap(&nodes);
  graph->clear_initializer();
  for (auto& init : kept) *graph->add_initializer() = std::move(init);
  for (auto& init : new_initializers_) *graph->add_initializer() = std::move(init);
  // Old-style models list initializers as inputs: drop the replaced ones.
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
  for (const auto& input : graph->input())
    if (!dropped_.count(input.name()) || still_used.count(input.name())) *inputs.Add() = input;
  graph->mutable_input()->Swap(&inputs);
  graph->clear_value_info();
  int64_t opset = 13;
  for (const auto& o : out.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset = std::max<int64_t>(opset, o.version());
  google::protobuf::RepeatedPtrField<onnx::OperatorSetIdProto> opsets;
  for (const auto& o : out.opset_import())
    if (!o.domain().empty() && o.domain() != "ai.onnx") *opsets.Add() = o;
  auto* main = opsets.Add();
  main->set_domain("");
  main->set_version(opset);
  out.mutable_opset_import()->Swap(&opsets);
  out.set_producer_name("lowbit quantize");
  out.set_doc_string(description);
  return out;
}

}  // namespace

StatusOr<onnx::ModelProto> WriteQcdq(const QuantizationSites& sites, const QcdqPlan& plan,
                                     const std::string& description) {
  return QcdqWriter(sites, plan).Write(description);
}

}  // namespace lowbit::engine::quantize
