#include "ir/graph.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

namespace lowbit::engine::ir {

const char* DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return "f32";
    case DataType::kInt64:
      return "i64";
    case DataType::kInt32:
      return "i32";
    case DataType::kInt8:
      return "i8";
    case DataType::kUInt8:
      return "u8";
    case DataType::kBool:
      return "bool";
    case DataType::kPacked:
      return "packed";
  }
  return "?";
}

int64_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kFloat32:
    case DataType::kInt32:
      return 4;
    case DataType::kInt64:
      return 8;
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool:
    case DataType::kPacked:
      return 1;
  }
  return 1;
}

AlignedBytes& AlignedBytes::operator=(const AlignedBytes& other) {
  if (this == &other) return *this;
  resize(other.size_);
  if (size_ != 0) std::memcpy(data_, other.data_, size_);
  return *this;
}

AlignedBytes::~AlignedBytes() { std::free(data_); }

void AlignedBytes::resize(size_t size) {
  std::free(data_);
  data_ = nullptr;
  size_ = size;
  if (size == 0) return;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(64, (size + 63) / 64 * 64));
  if (data_ == nullptr) std::abort();  // out of memory while compiling
  std::memset(data_, 0, size);
}

std::string Precision::ToString() const {
  if (kind == Kind::kFloat) return "f32";
  char buffer[96];
  if (per_axis()) {
    std::snprintf(buffer, sizeof buffer, "%s%d(axis=%d,%zu scales)", is_signed ? "i" : "u", bits,
                  axis, scales.size());
    return buffer;
  }
  std::snprintf(buffer, sizeof buffer, "%s%d(s=%g,z=%d)", is_signed ? "i" : "u", bits, scale,
                zero_point);
  return buffer;
}

HostTensor HostTensor::Floats(Shape shape, std::vector<float> values) {
  HostTensor t;
  t.dtype = DataType::kFloat32;
  t.shape = std::move(shape);
  t.floats = std::move(values);
  return t;
}

HostTensor HostTensor::Packed(AlignedBytes bytes) {
  HostTensor t;
  t.dtype = DataType::kPacked;
  t.shape = {static_cast<int64_t>(bytes.size())};
  t.bytes = std::move(bytes);
  return t;
}

HostTensor HostTensor::Ints(Shape shape, std::vector<int64_t> values, DataType dtype) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.ints = std::move(values);
  return t;
}

namespace {

template <typename T>
std::string JoinList(const std::vector<T>& items) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < items.size(); ++i) out << (i ? "," : "") << items[i];
  out << "]";
  return out.str();
}

}  // namespace

std::string Attribute::ToString() const {
  std::ostringstream out;
  switch (type) {
    case Type::kInt:
      out << i;
      break;
    case Type::kFloat:
      out << f;
      break;
    case Type::kString:
      out << '"' << s << '"';
      break;
    case Type::kInts:
      out << JoinList(ints);
      break;
    case Type::kFloats:
      out << JoinList(floats);
      break;
    case Type::kStrings:
      out << JoinList(strings);
      break;
    case Type::kTensor:
      out << "tensor<" << DataTypeName(tensor.dtype) << ShapeToString(tensor.shape) << ">";
      break;
  }
  return out.str();
}

int64_t Node::GetInt(const std::string& attr, int64_t fallback) const {
  auto it = attributes.find(attr);
  return it == attributes.end() ? fallback : it->second.i;
}

float Node::GetFloat(const std::string& attr, float fallback) const {
  auto it = attributes.find(attr);
  return it == attributes.end() ? fallback : it->second.f;
}

std::string Node::GetString(const std::string& attr, const std::string& fallback) const {
  auto it = attributes.find(attr);
  return it == attributes.end() ? fallback : it->second.s;
}

std::vector<int64_t> Node::GetInts(const std::string& attr, std::vector<int64_t> fallback) const {
  auto it = attributes.find(attr);
  return it == attributes.end() ? fallback : it->second.ints;
}

std::string Node::Describe() const { return op_type + " node '" + name + "'"; }

int Graph::AddValue(Value value) {
  int id = static_cast<int>(values.size());
  index_[value.name] = id;
  values.push_back(std::move(value));
  return id;
}

int Graph::AddConstant(const std::string& name, HostTensor tensor) {
  Value value;
  value.name = name;
  value.dtype = tensor.dtype;
  value.shape = tensor.shape;
  value.shape_known = true;
  value.constant = std::move(tensor);
  return AddValue(std::move(value));
}

int Graph::FindValue(const std::string& name) const {
  if (index_.size() != values.size()) {
    index_.clear();
    for (size_t i = 0; i < values.size(); ++i) index_[values[i].name] = static_cast<int>(i);
  }
  auto it = index_.find(name);
  return it == index_.end() ? kNoValue : it->second;
}

std::string Graph::UniqueName(const std::string& base) const {
  if (FindValue(base) == kNoValue) return base;
  for (int suffix = 1;; ++suffix) {
    std::string candidate = base + "_" + std::to_string(suffix);
    if (FindValue(candidate) == kNoValue) return candidate;
  }
}

std::vector<int> Graph::Producers() const {
  std::vector<int> producer(values.size(), -1);
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int out : nodes[n].outputs)
      if (out != kNoValue) producer[out] = static_cast<int>(n);
  return producer;
}

std::vector<int> Graph::UseCounts() const {
  std::vector<int> uses(values.size(), 0);
  for (const Node& node : nodes)
    for (int in : node.inputs)
      if (in != kNoValue) ++uses[in];
  for (int out : outputs) ++uses[out];
  return uses;
}

Status Graph::TopologicalSort() {
  std::vector<char> available(values.size(), 0);
  for (int in : inputs) available[in] = 1;
  for (size_t v = 0; v < values.size(); ++v)
    if (values[v].is_constant()) available[v] = 1;
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::vector<char> placed(nodes.size(), 0);
  // Repeated sweeps keep the original order among independent nodes; graphs
  // from exporters are nearly sorted, so this is close to linear in practice.
  bool progress = true;
  while (sorted.size() < nodes.size() && progress) {
    progress = false;
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (placed[n]) continue;
      bool ready = true;
      for (int in : nodes[n].inputs)
        if (in != kNoValue && !available[in]) {
          ready = false;
          break;
        }
      if (!ready) continue;
      for (int out : nodes[n].outputs)
        if (out != kNoValue) available[out] = 1;
      placed[n] = 1;
      sorted.push_back(nodes[n]);
      progress = true;
    }
  }
  if (sorted.size() < nodes.size()) {
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (placed[n]) continue;
      for (int in : nodes[n].inputs)
        if (in != kNoValue && !available[in])
          return InvalidArgument(nodes[n].Describe() + " reads '" + values[in].name +
                                 "', which no node, initializer or graph input produces "
                                 "(or the graph has a cycle)");
    }
  }
  nodes = std::move(sorted);
  return Status::Ok();
}

std::string Graph::Dump() const {
  std::ostringstream out;
  auto describe_value = [&](int id) {
    const Value& v = values[id];
    std::string s = std::string(DataTypeName(v.dtype)) +
                    (v.shape_known ? ShapeToString(v.shape) : std::string("[?]"));
    if (v.precision.kind != Precision::Kind::kFloat) s.append(" ").append(v.precision.ToString());
    if (!v.storage_perm.empty()) s.append(" storage=").append(JoinList(v.storage_perm));
    return s;
  };
  out << "graph opset=" << opset << "\n";
  for (int in : inputs) out << "input %" << values[in].name << ": " << describe_value(in) << "\n";
  std::set<int> listed;
  for (const Node& node : nodes)
    for (int in : node.inputs)
      if (in != kNoValue && values[in].is_constant() && listed.insert(in).second)
        out << "const %" << values[in].name << ": " << describe_value(in) << "\n";
  for (const Node& node : nodes) {
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (i) out << ", ";
      out << "%" << values[node.outputs[i]].name << ": " << describe_value(node.outputs[i]);
    }
    out << " = " << node.op_type << "(";
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (i) out << ", ";
      if (node.inputs[i] == kNoValue)
        out << "_";
      else
        out << "%" << values[node.inputs[i]].name;
    }
    out << ")";
    if (!node.attributes.empty()) {
      out << " {";
      bool first = true;
      for (const auto& [key, attr] : node.attributes) {
        out << (first ? "" : ", ") << key << "=" << attr.ToString();
        first = false;
      }
      out << "}";
    }
    out << "\n";
  }
  for (int o : outputs) {
    out << "output %" << values[o].name << ": " << describe_value(o);
    if (values[o].is_constant()) out << " (constant)";
    out << "\n";
  }
  return out.str();
}

namespace {
StatusOr<const HostTensor*> ConstantInput(const Graph& graph, const Node& node, size_t index) {
  if (!HasInput(node, index))
    return InvalidArgument(node.Describe() + " is missing input " + std::to_string(index));
  const Value& value = graph.values[node.inputs[index]];
  if (!value.is_constant())
    return Unimplemented(node.Describe() + ": input " + std::to_string(index) + " ('" + value.name +
                         "') must be a constant, but it is computed at run time");
  return &*value.constant;
}
}  // namespace

StatusOr<std::vector<int64_t>> ConstantInts(const Graph& graph, const Node& node, size_t index) {
  LOWBIT_ASSIGN_OR_RETURN(const HostTensor* tensor, ConstantInput(graph, node, index));
  if (!tensor->is_float()) return tensor->ints;
  std::vector<int64_t> result;
  for (float f : tensor->floats) {
    // Converted toward zero; a NaN, an infinity or a value past int64 has
    // no conversion (UB), so it is refused.
    if (!(f > -9.2e18f && f < 9.2e18f))
      return InvalidArgument(node.Describe() + ": input " + std::to_string(index) + " holds " +
                             std::to_string(f) + " where an integer is expected");
    result.push_back(static_cast<int64_t>(f));
  }
  return result;
}

StatusOr<std::vector<float>> ConstantFloats(const Graph& graph, const Node& node, size_t index) {
  LOWBIT_ASSIGN_OR_RETURN(const HostTensor* tensor, ConstantInput(graph, node, index));
  if (tensor->is_float()) return tensor->floats;
  return std::vector<float>(tensor->ints.begin(), tensor->ints.end());
}

StatusOr<int> NormalizeAxis(int64_t axis, size_t rank, const Node& node) {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r)
    return InvalidArgument(node.Describe() + ": axis " + std::to_string(axis) +
                           " is out of range for rank " + std::to_string(rank));
  return static_cast<int>(axis < 0 ? axis + r : axis);
}

}  // namespace lowbit::engine::ir
