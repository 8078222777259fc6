// .lbm writer (compiler library). Layout in format/lbm.h.
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "format/lbm.h"

namespace lowbit::engine::format {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the .lbm writer stores host words as little-endian");

// Appends little-endian fields to a byte buffer.
class ByteWriter {
 public:
  void U8(uint8_t v) { bytes_.push_back(v); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void I32(int32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void Count(size_t n) { U32(static_cast<uint32_t>(n)); }
  void String(const std::string& s) {
    Count(s.size());
    Raw(s.data(), s.size());
  }
  void Raw(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  void PadTo(size_t alignment) {
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, 0);
  }
  size_t size() const { return bytes_.size(); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

void Ids(ByteWriter& out, const std::vector<int>& ids) {
  out.Count(ids.size());
  for (int id : ids) out.I32(id);
}

// Narrows widened integers into `width`-byte little-endian elements, or
// fails when one does not fit [lo, hi].
template <typename T>
Status AppendNarrowed(const std::vector<int64_t>& values, const std::string& what,
                      std::vector<uint8_t>* out) {
  constexpr int64_t lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
  const size_t start = out->size();
  out->resize(start + values.size() * sizeof(T));
  T* dst = reinterpret_cast<T*>(out->data() + start);
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < lo || values[i] > hi)
      return InvalidArgument(what + " element " + std::to_string(i) + " is " +
                             std::to_string(values[i]) + ", outside its dtype's range");
    dst[i] = static_cast<T>(values[i]);
  }
  return Status::Ok();
}

// Encodes graph and constants; constants are numbered in first-use order
// (values, then tensor attributes).
class GraphEncoder {
 public:
  GraphEncoder(const ir::Graph& graph, const std::vector<std::string>& output_names)
      : graph_(graph), output_names_(output_names) {}

  Status Encode() {
    ByteWriter& out = graph_bytes_;
    out.I64(graph_.opset);
    out.Count(graph_.values.size());
    for (const ir::Value& value : graph_.values) {
      out.String(value.name);
      out.U8(static_cast<uint8_t>(value.dtype));
      out.U8(value.shape_known ? 1 : 0);
      out.Count(value.shape.size());
      for (int64_t d : value.shape) out.I64(d);
      const ir::Precision& p = value.precision;
      out.U8(static_cast<uint8_t>(p.kind));
      out.I32(p.bits);
      out.U8(p.is_signed ? 1 : 0);
      out.F32(p.scale);
      out.I32(p.zero_point);
      out.I32(p.axis);
      out.Count(p.scales.size());
      for (float s : p.scales) out.F32(s);
      out.Count(p.zero_points.size());
      for (int32_t z : p.zero_points) out.I32(z);
      Ids(out, value.storage_perm);
      if (value.is_constant()) {
        LOWBIT_ASSIGN_OR_RETURN(int32_t index,
                                AddConstant(*value.constant, "constant '" + value.name + "'"));
        out.I32(index);
      } else {
        out.I32(-1);
      }
    }
    out.Count(graph_.nodes.size());
    for (const ir::Node& node : graph_.nodes) {
      out.String(node.op_type);
      out.String(node.name);
      Ids(out, node.inputs);
      Ids(out, node.outputs);
      out.Count(node.attributes.size());
      for (const auto& [name, attr] : node.attributes) {
        out.String(name);
        out.U8(static_cast<uint8_t>(attr.type));
        switch (attr.type) {
          case ir::Attribute::Type::kInt:
            out.I64(attr.i);
            break;
          case ir::Attribute::Type::kFloat:
            out.F32(attr.f);
            break;
          case ir::Attribute::Type::kString:
            out.String(attr.s);
            break;
          case ir::Attribute::Type::kInts:
            out.Count(attr.ints.size());
            for (int64_t v : attr.ints) out.I64(v);
            break;
          case ir::Attribute::Type::kFloats:
            out.Count(attr.floats.size());
            for (float v : attr.floats) out.F32(v);
            break;
          case ir::Attribute::Type::kStrings:
            out.Count(attr.strings.size());
            for (const std::string& v : attr.strings) out.String(v);
            break;
          case ir::Attribute::Type::kTensor: {
            LOWBIT_ASSIGN_OR_RETURN(
                int32_t index,
                AddConstant(attr.tensor, node.Describe() + " attribute '" + name + "'"));
            out.I32(index);
            break;
          }
        }
      }
    }
    Ids(out, graph_.inputs);
    Ids(out, graph_.outputs);
    out.Count(output_names_.size());
    for (const std::string& name : output_names_) out.String(name);
    out.Count(descriptors_.size());
    for (const Descriptor& d : descriptors_) {
      out.U8(static_cast<uint8_t>(d.tensor->dtype));
      out.Count(d.tensor->shape.size());
      for (int64_t dim : d.tensor->shape) out.I64(dim);
      out.U64(d.offset);
      out.U64(d.size);
    }
    return Status::Ok();
  }

  std::vector<uint8_t>& graph_bytes() { return graph_bytes_.bytes(); }
  std::vector<uint8_t>& constant_bytes() { return constants_; }

 private:
  struct Descriptor {
    const ir::HostTensor* tensor;
    uint64_t offset, size;
  };

  StatusOr<int32_t> AddConstant(const ir::HostTensor& tensor, const std::string& what) {
    const int64_t elements = NumElements(tensor.shape);
    size_t held = 0;
    switch (tensor.dtype) {
      case ir::DataType::kFloat32:
        held = tensor.floats.size();
        break;
      case ir::DataType::kPacked:
        held = tensor.bytes.size();
        break;
      default:
        held = tensor.ints.size();
        break;
    }
    if (elements < 0 || held != static_cast<size_t>(elements))
      return InvalidArgument(what + " (" + ir::DataTypeName(tensor.dtype) +
                             ShapeToString(tensor.shape) + ") holds " + std::to_string(held) +
                             " elements, not the shape's " + std::to_string(elements));
    constants_.resize((constants_.size() + kLbmAlignment - 1) / kLbmAlignment * kLbmAlignment, 0);
    const size_t start = constants_.size();
    switch (tensor.dtype) {
      case ir::DataType::kFloat32:
        constants_.resize(start + held * 4);
        if (held) std::memcpy(constants_.data() + start, tensor.floats.data(), held * 4);
        break;
      case ir::DataType::kPacked:
        constants_.resize(start + held);
        if (held) std::memcpy(constants_.data() + start, tensor.bytes.data(), held);
        break;
      case ir::DataType::kInt64:
        constants_.resize(start + held * 8);
        if (held) std::memcpy(constants_.data() + start, tensor.ints.data(), held * 8);
        break;
      case ir::DataType::kInt32:
        LOWBIT_RETURN_IF_ERROR(AppendNarrowed<int32_t>(tensor.ints, what, &constants_));
        break;
      case ir::DataType::kInt8:
        LOWBIT_RETURN_IF_ERROR(AppendNarrowed<int8_t>(tensor.ints, what, &constants_));
        break;
      case ir::DataType::kUInt8:
        LOWBIT_RETURN_IF_ERROR(AppendNarrowed<uint8_t>(tensor.ints, what, &constants_));
        break;
      case ir::DataType::kBool:
        for (int64_t v : tensor.ints)
          if (v != 0 && v != 1)
            return InvalidArgument(what + " is bool but holds " + std::to_string(v));
        LOWBIT_RETURN_IF_ERROR(AppendNarrowed<uint8_t>(tensor.ints, what, &constants_));
        break;
    }
    descriptors_.push_back({&tensor, start, constants_.size() - start});
    return static_cast<int32_t>(descriptors_.size() - 1);
  }

  const ir::Graph& graph_;
  const std::vector<std::string>& output_names_;
  ByteWriter graph_bytes_;
  std::vector<uint8_t> constants_;
  std::vector<Descriptor> descriptors_;
};

std::vector<uint8_t> EncodeMetadata(const LbmMetadata& metadata) {
  std::map<std::string, std::string> entries = metadata.extra;
  entries["producer"] = metadata.producer;
  entries["source_model"] = metadata.source_model;
  entries["kernel_isa"] = metadata.kernel_isa;
  entries["cpu_model"] = metadata.cpu_model;
  ByteWriter out;
  out.Count(entries.size());
  for (const auto& [key, value] : entries) {
    out.String(key);
    out.String(value);
  }
  return std::move(out.bytes());
}

}  // namespace

StatusOr<std::vector<uint8_t>> EncodeLbm(const ir::Graph& graph, const LbmMetadata& metadata) {
  if (BuildArchitecture() == LbmArchitecture::kUnknown)
    return Unimplemented(std::string("this build's architecture (") +
                         ArchitectureName(BuildArchitecture()) + ") has no .lbm architecture code");
  if (!metadata.output_names.empty() && metadata.output_names.size() != graph.outputs.size())
    return InvalidArgument(std::to_string(metadata.output_names.size()) + " output names for " +
                           std::to_string(graph.outputs.size()) + " graph outputs");
  GraphEncoder encoder(graph, metadata.output_names);
  LOWBIT_RETURN_IF_ERROR(encoder.Encode());
  struct Section {
    LbmSectionId id;
    std::vector<uint8_t>* bytes;
  };
  std::vector<uint8_t> metadata_bytes = EncodeMetadata(metadata);
  const Section sections[] = {{LbmSectionId::kMetadata, &metadata_bytes},
                              {LbmSectionId::kGraph, &encoder.graph_bytes()},
                              {LbmSectionId::kConstants, &encoder.constant_bytes()}};
  constexpr size_t count = sizeof sections / sizeof sections[0];

  // Offsets first: header, table, then each section at a multiple of 64.
  uint64_t offsets[count];
  uint64_t end = kLbmHeaderBytes + count * kLbmSectionEntryBytes;
  for (size_t s = 0; s < count; ++s) {
    end = (end + kLbmAlignment - 1) / kLbmAlignment * kLbmAlignment;
    offsets[s] = end;
    end += sections[s].bytes->size();
  }

  ByteWriter table;
  for (size_t s = 0; s < count; ++s) {
    table.U32(static_cast<uint32_t>(sections[s].id));
    table.U32(0);
    table.U64(offsets[s]);
    table.U64(sections[s].bytes->size());
    table.U32(Crc32(sections[s].bytes->data(), sections[s].bytes->size()));
    table.U32(0);
  }

  ByteWriter file;
  file.Raw(kLbmMagic, sizeof kLbmMagic);
  file.U32(kLbmFormatVersion);
  file.U32(kLbmEndianMarker);
  file.U32(static_cast<uint32_t>(BuildArchitecture()));
  file.U32(static_cast<uint32_t>(count));
  file.U64(end);
  char version[24] = {};
  std::strncpy(version, ProducerVersion(), sizeof version - 1);
  file.Raw(version, sizeof version);
  file.U32(0);
  const uint32_t header_crc =
      Crc32(table.bytes().data(), table.size(), Crc32(file.bytes().data(), file.size()));
  file.U32(header_crc);
  file.Raw(table.bytes().data(), table.size());
  for (size_t s = 0; s < count; ++s) {
    file.PadTo(kLbmAlignment);
    file.Raw(sections[s].bytes->data(), sections[s].bytes->size());
  }
  if (file.size() != end)
    return Internal(".lbm writer: laid out " + std::to_string(end) + " bytes but wrote " +
                    std::to_string(file.size()));
  return std::move(file.bytes());
}

Status WriteLbm(const ir::Graph& graph, const LbmMetadata& metadata, const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeLbm(graph, metadata));
  // Write beside the target and rename, so a reader never sees half a file.
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) return NotFound("cannot create " + temporary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::remove(temporary.c_str());
      return Internal("error writing " + temporary);
    }
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::remove(temporary.c_str());
    return Internal("cannot rename " + temporary + " to " + path + ": " + error.message());
  }
  return Status::Ok();
}

}  // namespace lowbit::engine::format
