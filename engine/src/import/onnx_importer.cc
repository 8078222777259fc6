#include "import/onnx_importer.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "import/fake_quant.h"
#include "import/op_support.h"
#include "lowbit_onnx/onnx.pb.h"

namespace lowbit::engine {
namespace {

using ir::Attribute;
using ir::DataType;
using ir::HostTensor;

float HalfToFloat(uint16_t half) {
  uint32_t sign = (half >> 15) & 1, exponent = (half >> 10) & 0x1f, mantissa = half & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign << 31;
    } else {  // subnormal: normalise
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        --exponent;
      }
      bits = (sign << 31) | (exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
  } else if (exponent == 31) {
    bits = (sign << 31) | 0x7f800000u | (mantissa << 13);
  } else {
    bits = (sign << 31) | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

StatusOr<DataType> ConvertDataType(int onnx_type, const std::string& what) {
  switch (onnx_type) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::DOUBLE:
      return DataType::kFloat32;
    case onnx::TensorProto::INT64:
      return DataType::kInt64;
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::INT16:  // 16-bit codes are held widened
    case onnx::TensorProto::UINT16:
      return DataType::kInt32;
    case onnx::TensorProto::INT8:
    case import::onnx_type::kInt4:  // sub-byte codes are held one per byte
    case import::onnx_type::kInt2:
      return DataType::kInt8;
    case onnx::TensorProto::UINT8:
    case import::onnx_type::kUInt4:
    case import::onnx_type::kUInt2:
      return DataType::kUInt8;
    case onnx::TensorProto::BOOL:
      return DataType::kBool;
    default:
      return Status(Unimplemented(
          what + " has ONNX element type " + import::OnnxTypeName(onnx_type) +
          ", which lowbit does not support (float32/16/64, int64, int32, int16/uint16, "
          "int8/uint8, int4/uint4, int2/uint2, bool are supported)"));
  }
}

// Sub-byte integers (int4/uint4: 2 per byte, int2/uint2: 4 per byte, low
// bits first), from raw_data or from int32_data holding one packed byte per
// element; signed types are sign-extended.
Status UnpackSubByte(const onnx::TensorProto& proto, int64_t count, const std::string& what,
                     std::vector<int64_t>* out) {
  const int bits = import::PackedIntBits(proto.data_type());
  const bool is_signed = proto.data_type() == import::onnx_type::kInt4 ||
                         proto.data_type() == import::onnx_type::kInt2;
  const int per_byte = 8 / bits;
  const int64_t bytes = (count + per_byte - 1) / per_byte;
  std::vector<uint8_t> packed;
  if (proto.has_raw_data()) {
    if (static_cast<int64_t>(proto.raw_data().size()) != bytes)
      return InvalidArgument(what + ": raw_data holds " + std::to_string(proto.raw_data().size()) +
                             " bytes but " + std::to_string(count) + " " +
                             import::OnnxTypeName(proto.data_type()) + " values need " +
                             std::to_string(bytes));
    packed.assign(proto.raw_data().begin(), proto.raw_data().end());
  } else {
    if (proto.int32_data_size() != bytes)
      return InvalidArgument(what + ": holds " + std::to_string(proto.int32_data_size()) +
                             " packed bytes but its shape needs " + std::to_string(bytes));
    for (int32_t v : proto.int32_data()) packed.push_back(static_cast<uint8_t>(v));
  }
  out->resize(count);
  const int mask = (1 << bits) - 1;
  for (int64_t i = 0; i < count; ++i) {
    int v = (packed[i / per_byte] >> (bits * (i % per_byte))) & mask;
    if (is_signed && v >= (1 << (bits - 1))) v -= 1 << bits;
    (*out)[i] = v;
  }
  return Status::Ok();
}

// Reads raw little-endian elements of `T` from raw_data, checking the size.
template <typename T>
Status ReadRaw(const std::string& raw, int64_t count, const std::string& what,
               std::vector<T>* out) {
  if (static_cast<int64_t>(raw.size()) != count * static_cast<int64_t>(sizeof(T)))
    return InvalidArgument(what + ": raw_data holds " + std::to_string(raw.size()) +
                           " bytes but the shape needs " + std::to_string(count) + " elements of " +
                           std::to_string(sizeof(T)) + " bytes");
  out->resize(count);
  if (count) std::memcpy(out->data(), raw.data(), raw.size());
  return Status::Ok();
}

template <typename Field>
Status CheckCount(const Field& field, int64_t count, const std::string& what) {
  if (field.size() != count)
    return InvalidArgument(what + ": holds " + std::to_string(field.size()) +
                           " values but its shape needs " + std::to_string(count));
  return Status::Ok();
}

StatusOr<HostTensor> ConvertTensor(const onnx::TensorProto& proto, const std::string& what) {
  if (proto.data_location() == onnx::TensorProto::EXTERNAL || proto.external_data_size() > 0)
    return Unimplemented(what +
                         " stores its data in an external file; re-export the model "
                         "with the weights embedded (onnx.save(..., save_as_external_data=False))");
  HostTensor tensor;
  LOWBIT_ASSIGN_OR_RETURN(tensor.dtype, ConvertDataType(proto.data_type(), what));
  for (int64_t d : proto.dims()) {
    if (d < 0) return InvalidArgument(what + " has a negative dimension " + std::to_string(d));
    tensor.shape.push_back(d);
  }
  int64_t count = 0;
  if (!BoundedNumElements(tensor.shape, &count))
    return InvalidArgument(what + " has shape " + ShapeToString(tensor.shape) + ", more than " +
                           std::to_string(kMaxFileShapeElements) + " elements");
  const bool raw = proto.has_raw_data();
  const std::string& bytes = proto.raw_data();
  switch (proto.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<float>(bytes, count, what, &tensor.floats));
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.float_data(), count, what));
        tensor.floats.assign(proto.float_data().begin(), proto.float_data().end());
      }
      break;
    case onnx::TensorProto::FLOAT16: {
      std::vector<uint16_t> halves;
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<uint16_t>(bytes, count, what, &halves));
      } else {  // float16 bit patterns stored in int32_data
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.int32_data(), count, what));
        for (int32_t v : proto.int32_data()) halves.push_back(static_cast<uint16_t>(v));
      }
      for (uint16_t h : halves) tensor.floats.push_back(HalfToFloat(h));
      break;
    }
    case onnx::TensorProto::DOUBLE: {
      std::vector<double> doubles;
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<double>(bytes, count, what, &doubles));
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.double_data(), count, what));
        doubles.assign(proto.double_data().begin(), proto.double_data().end());
      }
      for (double d : doubles) tensor.floats.push_back(static_cast<float>(d));
      break;
    }
    case onnx::TensorProto::INT64:
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<int64_t>(bytes, count, what, &tensor.ints));
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.int64_data(), count, what));
        tensor.ints.assign(proto.int64_data().begin(), proto.int64_data().end());
      }
      break;
    case onnx::TensorProto::INT32: {
      std::vector<int32_t> values;
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<int32_t>(bytes, count, what, &values));
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.int32_data(), count, what));
        values.assign(proto.int32_data().begin(), proto.int32_data().end());
      }
      tensor.ints.assign(values.begin(), values.end());
      break;
    }
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16: {
      if (raw && proto.data_type() == onnx::TensorProto::INT16) {
        std::vector<int16_t> values;
        LOWBIT_RETURN_IF_ERROR(ReadRaw<int16_t>(bytes, count, what, &values));
        tensor.ints.assign(values.begin(), values.end());
      } else if (raw) {
        std::vector<uint16_t> values;
        LOWBIT_RETURN_IF_ERROR(ReadRaw<uint16_t>(bytes, count, what, &values));
        tensor.ints.assign(values.begin(), values.end());
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.int32_data(), count, what));
        tensor.ints.assign(proto.int32_data().begin(), proto.int32_data().end());
      }
      break;
    }
    case import::onnx_type::kInt4:
    case import::onnx_type::kUInt4:
    case import::onnx_type::kInt2:
    case import::onnx_type::kUInt2:
      LOWBIT_RETURN_IF_ERROR(UnpackSubByte(proto, count, what, &tensor.ints));
      break;
    case onnx::TensorProto::INT8: {
      std::vector<int8_t> values;
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<int8_t>(bytes, count, what, &values));
        tensor.ints.assign(values.begin(), values.end());
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.int32_data(), count, what));
        tensor.ints.assign(proto.int32_data().begin(), proto.int32_data().end());
      }
      break;
    }
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL: {
      std::vector<uint8_t> values;
      if (raw) {
        LOWBIT_RETURN_IF_ERROR(ReadRaw<uint8_t>(bytes, count, what, &values));
        tensor.ints.assign(values.begin(), values.end());
      } else {
        LOWBIT_RETURN_IF_ERROR(CheckCount(proto.int32_data(), count, what));
        tensor.ints.assign(proto.int32_data().begin(), proto.int32_data().end());
      }
      break;
    }
    default:
      break;  // rejected by ConvertDataType
  }
  return tensor;
}

StatusOr<Attribute> ConvertAttribute(const onnx::AttributeProto& proto, const std::string& what) {
  Attribute attr;
  switch (proto.type()) {
    case onnx::AttributeProto::INT:
      attr = Attribute::Int(proto.i());
      break;
    case onnx::AttributeProto::FLOAT:
      attr = Attribute::Float(proto.f());
      break;
    case onnx::AttributeProto::STRING:
      attr = Attribute::String(proto.s());
      break;
    case onnx::AttributeProto::INTS:
      attr = Attribute::Ints({proto.ints().begin(), proto.ints().end()});
      break;
    case onnx::AttributeProto::FLOATS:
      attr = Attribute::Floats({proto.floats().begin(), proto.floats().end()});
      break;
    case onnx::AttributeProto::STRINGS:
      attr.type = Attribute::Type::kStrings;
      attr.strings.assign(proto.strings().begin(), proto.strings().end());
      break;
    case onnx::AttributeProto::TENSOR: {
      attr.type = Attribute::Type::kTensor;
      LOWBIT_ASSIGN_OR_RETURN(attr.tensor, ConvertTensor(proto.t(), what));
      break;
    }
    default:
      return Unimplemented(what + " has attribute type " + std::to_string(proto.type()) +
                           " (graphs, sparse tensors and type protos are not supported)");
  }
  return attr;
}

// Declared element type and shape of a graph input or output. Symbolic or
// missing dimensions become -1.
Status ConvertValueInfo(const onnx::ValueInfoProto& info, ir::Value* value) {
  const std::string what = "graph input/output '" + info.name() + "'";
  if (!info.type().has_tensor_type())
    return Unimplemented(what + " is not a tensor (sequences and maps are not supported)");
  const auto& tensor_type = info.type().tensor_type();
  LOWBIT_ASSIGN_OR_RETURN(value->dtype, ConvertDataType(tensor_type.elem_type(), what));
  if (tensor_type.has_shape()) {
    value->shape.clear();
    for (const auto& dim : tensor_type.shape().dim())
      value->shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    value->shape_known = true;
  }
  return Status::Ok();
}

Status ConvertGraph(const onnx::ModelProto& model, const std::string& source, ir::Graph* graph) {
  if (!model.has_graph() || model.graph().node_size() == 0)
    return InvalidArgument(source +
                           " holds no graph nodes; it is not an ONNX model, or it is empty");
  for (const auto& opset : model.opset_import())
    if (opset.domain().empty() || opset.domain() == "ai.onnx") graph->opset = opset.version();
  if (graph->opset == 0)
    return InvalidArgument(source + " declares no opset for the default ONNX domain");
  const onnx::GraphProto& g = model.graph();
  const import::ElementTypes element_types = import::CollectElementTypes(g);
  LOWBIT_RETURN_IF_ERROR(import::CheckFakeQuantNodes(g, element_types).WithContext(source));

  for (const auto& init : g.initializer()) {
    if (init.name().empty()) return InvalidArgument(source + ": an initializer has no name");
    LOWBIT_ASSIGN_OR_RETURN(HostTensor tensor,
                            ConvertTensor(init, "initializer '" + init.name() + "'"));
    graph->AddConstant(init.name(), std::move(tensor));
  }
  for (const auto& input : g.input()) {
    if (graph->FindValue(input.name()) != ir::kNoValue) continue;  // initializer with a default
    ir::Value value;
    value.name = input.name();
    LOWBIT_RETURN_IF_ERROR(ConvertValueInfo(input, &value));
    graph->inputs.push_back(graph->AddValue(std::move(value)));
  }

  // Values with a producer so far (initializers, graph inputs, node outputs).
  std::vector<int> produced;
  for (size_t v = 0; v < graph->values.size(); ++v) produced.push_back(static_cast<int>(v));
  auto IsProduced = [&](int id) {
    return std::find(produced.begin(), produced.end(), id) != produced.end();
  };
  for (int n = 0; n < g.node_size(); ++n) {
    const onnx::NodeProto& proto = g.node(n);
    ir::Node node;
    node.op_type = proto.op_type();
    node.name = proto.name().empty() ? proto.op_type() + "_" + std::to_string(n) : proto.name();
    if (import::IsQonnxDomain(proto.domain()) && import::IsQonnxQuantizer(proto.op_type())) {
      // Replaced by RewriteFakeQuantization below.
      node.op_type = import::kQonnxOpPrefix + proto.op_type();
      node.attributes[import::kQonnxDomainAttribute] = Attribute::String(proto.domain());
    } else if (!proto.domain().empty() && proto.domain() != "ai.onnx") {
      // Listed with every other unsupported node after the loop.
      node.attributes[import::kUnsupportedDomainAttribute] = Attribute::String(proto.domain());
    }
    for (const auto& attr : proto.attribute()) {
      LOWBIT_ASSIGN_OR_RETURN(
          node.attributes[attr.name()],
          ConvertAttribute(attr, node.Describe() + " attribute '" + attr.name() + "'"));
    }
    if (node.op_type == "Constant") {
      if (proto.output_size() != 1)
        return InvalidArgument(source + ": " + node.Describe() + " must have one output");
      HostTensor tensor;
      if (node.has("value")) {
        tensor = node.attributes["value"].tensor;
      } else if (node.has("value_float")) {
        tensor = HostTensor::Floats({}, {node.GetFloat("value_float", 0)});
      } else if (node.has("value_floats")) {
        const auto& f = node.attributes["value_floats"].floats;
        tensor = HostTensor::Floats({static_cast<int64_t>(f.size())}, f);
      } else if (node.has("value_int")) {
        tensor = HostTensor::Ints({}, {node.GetInt("value_int", 0)});
      } else if (node.has("value_ints")) {
        const auto& v = node.attributes["value_ints"].ints;
        tensor = HostTensor::Ints({static_cast<int64_t>(v.size())}, v);
      } else {
        return Unimplemented(source + ": " + node.Describe() +
                             " uses a value kind other than value/value_float(s)/value_int(s)");
      }
      const int existing = graph->FindValue(proto.output(0));
      if (existing == ir::kNoValue) {
        produced.push_back(graph->AddConstant(proto.output(0), std::move(tensor)));
      } else if (!IsProduced(existing)) {  // read by an earlier node (unsorted graph)
        ir::Value& value = graph->values[existing];
        value.dtype = tensor.dtype;
        value.shape = tensor.shape;
        value.shape_known = true;
        value.constant = std::move(tensor);
        produced.push_back(existing);
      } else {
        return InvalidArgument(source + ": value '" + proto.output(0) + "' is produced twice");
      }
      continue;
    }
    for (const std::string& name : proto.input()) {
      if (name.empty()) {
        node.inputs.push_back(ir::kNoValue);
        continue;
      }
      int id = graph->FindValue(name);
      if (id == ir::kNoValue) {
        // Possibly produced by a later node (unsorted graph): create it now;
        // TopologicalSort reports it if nothing ever produces it.
        ir::Value value;
        value.name = name;
        id = graph->AddValue(std::move(value));
      }
      node.inputs.push_back(id);
    }
    for (const std::string& name : proto.output()) {
      if (name.empty()) {  // an unused optional output
        ir::Value value;
        value.name = graph->UniqueName(node.name + "_unused");
        node.outputs.push_back(graph->AddValue(std::move(value)));
        continue;
      }
      int id = graph->FindValue(name);
      if (id != ir::kNoValue) {
        if (IsProduced(id))
          return InvalidArgument(source + ": " + node.Describe() + " writes '" + name +
                                 "', which an initializer, graph input or other node also "
                                 "produces");
      } else {
        ir::Value value;
        value.name = name;
        id = graph->AddValue(std::move(value));
      }
      node.outputs.push_back(id);
      produced.push_back(id);
    }
    graph->nodes.push_back(std::move(node));
  }

  // Every unsupported op, domain and attribute value, in one message.
  LOWBIT_RETURN_IF_ERROR(
      import::UnsupportedNodesStatus(source, import::FindUnsupportedNodes(*graph)));

  for (const auto& output : g.output()) {
    int id = graph->FindValue(output.name());
    if (id == ir::kNoValue)
      return InvalidArgument(source + ": graph output '" + output.name() +
                             "' is not produced by any node");
    ir::Value declared;
    declared.name = output.name();
    LOWBIT_RETURN_IF_ERROR(ConvertValueInfo(output, &declared));
    ir::Value& value = graph->values[id];
    if (!value.is_constant()) value.dtype = declared.dtype;
    graph->outputs.push_back(id);
  }
  if (graph->outputs.empty()) return InvalidArgument(source + " declares no graph outputs");
  LOWBIT_RETURN_IF_ERROR(graph->TopologicalSort().WithContext(source));
  return import::RewriteFakeQuantization(graph, element_types).WithContext(source);
}

}  // namespace

StatusOr<ir::Graph> ImportOnnxBytes(const void* data, size_t size, const std::string& source) {
  if (size == 0) return InvalidArgument(source + " is empty; expected an ONNX model file");
  if (size > static_cast<size_t>(INT_MAX))
    return InvalidArgument(source + " is over 2 GB; protobuf cannot parse it");
  onnx::ModelProto model;
  if (!model.ParseFromArray(data, static_cast<int>(size)))
    return InvalidArgument(source +
                           " is not an ONNX model (protobuf parsing failed); "
                           "check that the file is a complete .onnx export");
  ir::Graph graph;
  LOWBIT_RETURN_IF_ERROR(ConvertGraph(model, source, &graph));
  return graph;
}

StatusOr<ir::Graph> ImportOnnxFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot open model file '" + path + "'");
  std::ostringstream bytes;
  bytes << file.rdbuf();
  const std::string content = bytes.str();
  return ImportOnnxBytes(content.data(), content.size(), path);
}

StatusOr<ir::HostTensor> ImportOnnxTensor(const onnx::TensorProto& tensor,
                                          const std::string& what) {
  return ConvertTensor(tensor, what);
}

}  // namespace lowbit::engine
