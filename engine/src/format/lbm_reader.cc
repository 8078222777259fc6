// .lbm reader (runtime library). Layout in format/lbm.h. The file is mapped
// read-only, checked (header, bounds, checksums) before anything is decoded,
// and its graph is checked for structure (ids, references, sizes) before it
// is returned; constants are copied into the graph's HostTensors.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

#include "format/lbm.h"

namespace lowbit::engine::format {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the .lbm reader reads little-endian words in place");

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string Hex32(uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

// Bounds-checked little-endian reads over one section. The first read past
// the end sets failed(); later reads return zeros.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool failed() const { return failed_; }
  size_t position() const { return position_; }
  size_t remaining() const { return size_ - position_; }

  uint8_t U8() { return Take<uint8_t>(); }
  uint32_t U32() { return Take<uint32_t>(); }
  int32_t I32() { return Take<int32_t>(); }
  int64_t I64() { return Take<int64_t>(); }
  uint64_t U64() { return Take<uint64_t>(); }
  float F32() { return Take<float>(); }
  // A list count whose elements take at least `min_element_bytes` each:
  // counts that cannot fit in the rest of the section fail here instead of
  // allocating.
  size_t Count(size_t min_element_bytes) {
    const uint32_t n = U32();
    if (!failed_ && min_element_bytes > 0 && n > remaining() / min_element_bytes) failed_ = true;
    return failed_ ? 0 : n;
  }
  std::string String() {
    const size_t n = Count(1);
    if (failed_) return {};
    std::string s(reinterpret_cast<const char*>(data_ + position_), n);
    position_ += n;
    return s;
  }

 private:
  template <typename T>
  T Take() {
    if (failed_ || remaining() < sizeof(T)) {
      failed_ = true;
      return T{};
    }
    T v = Load<T>(data_ + position_);
    position_ += sizeof(T);
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
  bool failed_ = false;
};

struct SectionView {
  const uint8_t* data = nullptr;
  size_t size = 0;
  bool present = false;
};

struct ConstantDescriptor {
  ir::DataType dtype;
  Shape shape;
  uint64_t offset, size;
};

Status Malformed(const std::string& what) { return InvalidArgument("malformed graph: " + what); }

Status DecodeMetadata(const SectionView& section, LbmMetadata* metadata) {
  ByteReader in(section.data, section.size);
  const size_t count = in.Count(8);
  for (size_t i = 0; i < count && !in.failed(); ++i) {
    std::string key = in.String();
    std::string value = in.String();
    if (key == "producer")
      metadata->producer = std::move(value);
    else if (key == "source_model")
      metadata->source_model = std::move(value);
    else if (key == "kernel_isa")
      metadata->kernel_isa = std::move(value);
    else if (key == "cpu_model")
      metadata->cpu_model = std::move(value);
    else
      metadata->extra[std::move(key)] = std::move(value);
  }
  if (in.failed()) return InvalidArgument("malformed metadata section: it ends inside an entry");
  return Status::Ok();
}

// Element size of a constant's dtype in the file, or 0 for an unknown dtype.
int64_t FileElementBytes(ir::DataType dtype) { return ir::DataTypeSize(dtype); }

bool ValidDataType(uint8_t code) { return code <= static_cast<uint8_t>(ir::DataType::kPacked); }

StatusOr<ir::HostTensor> DecodeConstant(const ConstantDescriptor& d, const uint8_t* data) {
  ir::HostTensor t;
  t.dtype = d.dtype;
  t.shape = d.shape;
  const size_t n = static_cast<size_t>(NumElements(d.shape));
  switch (d.dtype) {
    // Constants start at multiples of 64 of a page-aligned mapping: the f32
    // and i64 data are aligned arrays in place, copied once (a buffer from
    // elsewhere may not be aligned: copied bytewise then).
    case ir::DataType::kFloat32:
      if (reinterpret_cast<uintptr_t>(data) % alignof(float) == 0) {
        const float* values = reinterpret_cast<const float*>(data);
        t.floats.assign(values, values + n);
      } else {
        t.floats.resize(n);
        if (n) std::memcpy(t.floats.data(), data, n * 4);
      }
      break;
    case ir::DataType::kInt64:
      if (reinterpret_cast<uintptr_t>(data) % alignof(int64_t) == 0) {
        const int64_t* values = reinterpret_cast<const int64_t*>(data);
        t.ints.assign(values, values + n);
      } else {
        t.ints.resize(n);
        if (n) std::memcpy(t.ints.data(), data, n * 8);
      }
      break;
    case ir::DataType::kInt32:
      if (reinterpret_cast<uintptr_t>(data) % alignof(int32_t) == 0) {
        const int32_t* values = reinterpret_cast<const int32_t*>(data);
        t.ints.assign(values, values + n);
      } else {
        t.ints.resize(n);
        for (size_t i = 0; i < n; ++i) t.ints[i] = Load<int32_t>(data + 4 * i);
      }
      break;
    case ir::DataType::kInt8: {
      const int8_t* values = reinterpret_cast<const int8_t*>(data);
      t.ints.assign(values, values + n);
      break;
    }
    case ir::DataType::kUInt8:
    case ir::DataType::kBool:
      t.ints.assign(data, data + n);
      break;
    case ir::DataType::kPacked:
      t.bytes.resize(n);
      if (n) std::memcpy(t.bytes.data(), data, n);
      break;
  }
  return t;
}

// Decodes the graph section; constants' data comes from `constants`.
StatusOr<ir::Graph> DecodeGraph(const SectionView& section, const SectionView& constants,
                                std::vector<std::string>* output_names) {
  ByteReader in(section.data, section.size);
  ir::Graph graph;
  std::string where = "the header";
  auto truncated = [&]() {
    return Malformed("the graph section ends inside " + where + " (byte " +
                     std::to_string(in.position()) + " of " + std::to_string(section.size) + ")");
  };
  graph.opset = static_cast<int>(in.I64());

  // Values; constant references are resolved once the descriptors are read.
  const size_t value_count = in.Count(16);
  std::vector<int32_t> value_constant(value_count, -1);
  graph.values.resize(value_count);
  for (size_t v = 0; v < value_count; ++v) {
    where = "value " + std::to_string(v);
    ir::Value& value = graph.values[v];
    value.name = in.String();
    const uint8_t dtype = in.U8();
    value.shape_known = in.U8() != 0;
    value.shape.resize(in.Count(8));
    for (int64_t& d : value.shape) d = in.I64();
    const uint8_t kind = in.U8();
    value.precision.bits = in.I32();
    value.precision.is_signed = in.U8() != 0;
    value.precision.scale = in.F32();
    value.precision.zero_point = in.I32();
    value.precision.axis = in.I32();
    value.precision.scales.resize(in.Count(4));
    for (float& s : value.precision.scales) s = in.F32();
    value.precision.zero_points.resize(in.Count(4));
    for (int32_t& z : value.precision.zero_points) z = in.I32();
    value.storage_perm.resize(in.Count(4));
    for (int& axis : value.storage_perm) axis = in.I32();
    value_constant[v] = in.I32();
    if (in.failed()) return truncated();
    if (!ValidDataType(dtype))
      return Malformed("value " + std::to_string(v) + " ('" + value.name + "') has dtype code " +
                       std::to_string(dtype));
    value.dtype = static_cast<ir::DataType>(dtype);
    int64_t elements = 0;
    if (!BoundedNumElements(value.shape, &elements))
      return Malformed("value " + std::to_string(v) + " ('" + value.name + "') has shape " +
                       ShapeToString(value.shape));
    if (kind > 1)
      return Malformed("value " + std::to_string(v) + " ('" + value.name +
                       "') has precision kind " + std::to_string(kind));
    value.precision.kind = static_cast<ir::Precision::Kind>(kind);
    std::vector<char> seen(value.storage_perm.size(), 0);
    for (int axis : value.storage_perm) {
      if (axis < 0 || axis >= static_cast<int>(seen.size()) || seen[axis])
        return Malformed("value " + std::to_string(v) + " ('" + value.name +
                         "') has a storage_perm that is not a permutation");
      seen[axis] = 1;
    }
  }
  const int values = static_cast<int>(value_count);
  auto bad_id = [&](int id, bool optional) {
    return !(id >= 0 && id < values) && !(optional && id == ir::kNoValue);
  };

  const size_t node_count = in.Count(16);
  graph.nodes.resize(node_count);
  std::vector<std::pair<ir::Attribute*, int32_t>> attribute_constants;
  for (size_t n = 0; n < node_count; ++n) {
    where = "node " + std::to_string(n);
    ir::Node& node = graph.nodes[n];
    node.op_type = in.String();
    node.name = in.String();
    node.inputs.resize(in.Count(4));
    for (int& id : node.inputs) id = in.I32();
    node.outputs.resize(in.Count(4));
    for (int& id : node.outputs) id = in.I32();
    const size_t attribute_count = in.Count(5);
    for (size_t a = 0; a < attribute_count && !in.failed(); ++a) {
      std::string name = in.String();
      const uint8_t type = in.U8();
      if (type > static_cast<uint8_t>(ir::Attribute::Type::kTensor))
        return Malformed(node.Describe() + " attribute '" + name + "' has type code " +
                         std::to_string(type));
      ir::Attribute& attr = node.attributes[name];
      attr.type = static_cast<ir::Attribute::Type>(type);
      switch (attr.type) {
        case ir::Attribute::Type::kInt:
          attr.i = in.I64();
          break;
        case ir::Attribute::Type::kFloat:
          attr.f = in.F32();
          break;
        case ir::Attribute::Type::kString:
          attr.s = in.String();
          break;
        case ir::Attribute::Type::kInts:
          attr.ints.resize(in.Count(8));
          for (int64_t& x : attr.ints) x = in.I64();
          break;
        case ir::Attribute::Type::kFloats:
          attr.floats.resize(in.Count(4));
          for (float& x : attr.floats) x = in.F32();
          break;
        case ir::Attribute::Type::kStrings:
          attr.strings.resize(in.Count(4));
          for (std::string& x : attr.strings) x = in.String();
          break;
        case ir::Attribute::Type::kTensor:
          attribute_constants.push_back({&attr, in.I32()});
          break;
      }
    }
    if (in.failed()) return truncated();
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (bad_id(node.inputs[i], true))
        return Malformed(node.Describe() + " input " + std::to_string(i) + " is value id " +
                         std::to_string(node.inputs[i]) + " but there are " +
                         std::to_string(values) + " values");
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (bad_id(node.outputs[i], false))
        return Malformed(node.Describe() + " output " + std::to_string(i) + " is value id " +
                         std::to_string(node.outputs[i]) + " but there are " +
                         std::to_string(values) + " values");
    if (node.outputs.empty()) return Malformed(node.Describe() + " has no outputs");
  }

  where = "the graph inputs and outputs";
  graph.inputs.resize(in.Count(4));
  for (int& id : graph.inputs) id = in.I32();
  graph.outputs.resize(in.Count(4));
  for (int& id : graph.outputs) id = in.I32();
  output_names->resize(in.Count(4));
  for (std::string& name : *output_names) name = in.String();
  if (in.failed()) return truncated();
  if (!output_names->empty() && output_names->size() != graph.outputs.size())
    return Malformed(std::to_string(output_names->size()) + " output names for " +
                     std::to_string(graph.outputs.size()) + " graph outputs");
  for (int id : graph.inputs)
    if (bad_id(id, false))
      return Malformed("graph input is value id " + std::to_string(id) + " but there are " +
                       std::to_string(values) + " values");
  for (int id : graph.outputs)
    if (bad_id(id, false))
      return Malformed("graph output is value id " + std::to_string(id) + " but there are " +
                       std::to_string(values) + " values");

  const size_t constant_count = in.Count(21);
  std::vector<ConstantDescriptor> descriptors(constant_count);
  for (size_t c = 0; c < constant_count; ++c) {
    where = "constant descriptor " + std::to_string(c);
    ConstantDescriptor& d = descriptors[c];
    const uint8_t dtype = in.U8();
    d.shape.resize(in.Count(8));
    for (int64_t& dim : d.shape) dim = in.I64();
    d.offset = in.U64();
    d.size = in.U64();
    if (in.failed()) return truncated();
    if (!ValidDataType(dtype))
      return Malformed("constant " + std::to_string(c) + " has dtype code " +
                       std::to_string(dtype));
    d.dtype = static_cast<ir::DataType>(dtype);
    int64_t elements = 0;
    const bool dims_ok = BoundedNumElements(d.shape, &elements);
    const uint64_t expected =
        dims_ok ? static_cast<uint64_t>(elements * FileElementBytes(d.dtype)) : 0;
    if (!dims_ok || d.size != expected)
      return Malformed("constant " + std::to_string(c) + " (" + ir::DataTypeName(d.dtype) +
                       ShapeToString(d.shape) + ") has " + std::to_string(d.size) +
                       " bytes of data, not " + std::to_string(expected));
    if (d.offset % kLbmAlignment != 0 || d.offset > constants.size ||
        d.size > constants.size - d.offset)
      return Malformed("constant " + std::to_string(c) + " lies at bytes [" +
                       std::to_string(d.offset) + ", " + std::to_string(d.offset + d.size) +
                       ") of a " + std::to_string(constants.size) +
                       "-byte constants section (or is not 64-byte aligned)");
  }
  if (in.remaining() != 0)
    return Malformed(std::to_string(in.remaining()) +
                     " unread bytes at the end of the graph section");

  for (size_t v = 0; v < value_count; ++v) {
    const int32_t c = value_constant[v];
    if (c == -1) continue;
    if (c < 0 || static_cast<size_t>(c) >= constant_count)
      return Malformed("value " + std::to_string(v) + " ('" + graph.values[v].name +
                       "') refers to constant " + std::to_string(c) + " but there are " +
                       std::to_string(constant_count));
    // Kernels size their reads of a constant by its value's shape.
    if (descriptors[c].shape != graph.values[v].shape)
      return Malformed("value " + std::to_string(v) + " ('" + graph.values[v].name +
                       "') has shape " + ShapeToString(graph.values[v].shape) +
                       " but its constant " + std::to_string(c) + " has shape " +
                       ShapeToString(descriptors[c].shape));
    LOWBIT_ASSIGN_OR_RETURN(ir::HostTensor tensor,
                            DecodeConstant(descriptors[c], constants.data + descriptors[c].offset));
    graph.values[v].constant = std::move(tensor);
  }
  for (auto& [attr, c] : attribute_constants) {
    if (c < 0 || static_cast<size_t>(c) >= constant_count)
      return Malformed("a tensor attribute refers to constant " + std::to_string(c) +
                       " but there are " + std::to_string(constant_count));
    LOWBIT_ASSIGN_OR_RETURN(attr->tensor,
                            DecodeConstant(descriptors[c], constants.data + descriptors[c].offset));
  }

  // Execution order: every run-time input is a graph input or an earlier
  // node's output, and each value has at most one producer.
  std::vector<char> available(value_count, 0);
  for (int id : graph.inputs) available[id] = 1;
  for (size_t v = 0; v < value_count; ++v)
    if (graph.values[v].is_constant()) available[v] = 1;
  for (const ir::Node& node : graph.nodes) {
    for (int id : node.inputs)
      if (id != ir::kNoValue && !available[id])
        return Malformed(node.Describe() + " reads value " + std::to_string(id) + " ('" +
                         graph.values[id].name + "') before anything produces it");
    for (int id : node.outputs) {
      if (available[id])
        return Malformed(node.Describe() + " writes value " + std::to_string(id) + " ('" +
                         graph.values[id].name + "'), which already has a producer");
      available[id] = 1;
    }
  }
  for (int id : graph.outputs)
    if (!available[id])
      return Malformed("graph output value " + std::to_string(id) + " ('" + graph.values[id].name +
                       "') is never produced");
  return graph;
}

}  // namespace

StatusOr<LbmFile> ReadLbmBytes(const uint8_t* data, size_t size) {
  const std::string file_bytes = std::to_string(size);
  if (size < sizeof kLbmMagic) {
    if (size > 0 && std::memcmp(data, kLbmMagic, size) == 0)
      return InvalidArgument("truncated: the file has " + file_bytes + " bytes, less than the " +
                             std::to_string(kLbmHeaderBytes) + "-byte header");
    return InvalidArgument("not a lowbit model: the file has " + file_bytes +
                           " bytes and no .lbm magic");
  }
  if (!HasLbmMagic(data, size))
    return InvalidArgument(
        "not a lowbit model: bad magic (a .lbm file starts with the bytes 89 'LBM' 0D 0A 1A 0A)");
  if (size < kLbmHeaderBytes)
    return InvalidArgument("truncated: the file has " + file_bytes + " bytes, less than the " +
                           std::to_string(kLbmHeaderBytes) + "-byte header");
  LbmFile file;
  file.format_version = Load<uint32_t>(data + 8);
  if (file.format_version != kLbmFormatVersion)
    return FailedPrecondition("unsupported .lbm format version " +
                              std::to_string(file.format_version) + " (this build reads version " +
                              std::to_string(kLbmFormatVersion) +
                              "); compile the model again with this build");
  const uint32_t marker = Load<uint32_t>(data + 12);
  if (marker != kLbmEndianMarker)
    return InvalidArgument("bad endianness marker " + Hex32(marker) + " (expected " +
                           Hex32(kLbmEndianMarker) + ": .lbm files are little-endian)");
  file.architecture = static_cast<LbmArchitecture>(Load<uint32_t>(data + 16));
  if (file.architecture != BuildArchitecture()) {
    const bool known = file.architecture == LbmArchitecture::kX86_64 ||
                       file.architecture == LbmArchitecture::kAArch64;
    return FailedPrecondition(
        std::string("built for ") +
        (known ? ArchitectureName(file.architecture)
               : "architecture code " + std::to_string(Load<uint32_t>(data + 16))) +
        " but this is " + ArchitectureName(BuildArchitecture()) +
        "; compile the model on (or for) this architecture");
  }
  const uint32_t section_count = Load<uint32_t>(data + 20);
  const uint64_t declared_size = Load<uint64_t>(data + 24);
  const char* version = reinterpret_cast<const char*>(data + 32);
  file.producer_version.assign(version, strnlen(version, 24));
  const uint64_t table_end = kLbmHeaderBytes + uint64_t{section_count} * kLbmSectionEntryBytes;
  if (table_end > size)
    return InvalidArgument("truncated: the section table ends at byte " +
                           std::to_string(table_end) + " but the file has " + file_bytes +
                           " bytes");
  const uint32_t header_crc =
      Crc32(data + kLbmHeaderBytes, table_end - kLbmHeaderBytes, Crc32(data, 60));
  if (header_crc != Load<uint32_t>(data + 60))
    return InvalidArgument("checksum mismatch in the header and section table (corrupt file)");

  SectionView metadata, graph, constants;
  struct Entry {
    LbmSectionId id;
    uint64_t offset, size;
    uint32_t crc;
  };
  std::vector<Entry> entries;
  for (uint32_t s = 0; s < section_count; ++s) {
    const uint8_t* e = data + kLbmHeaderBytes + s * kLbmSectionEntryBytes;
    const Entry entry{static_cast<LbmSectionId>(Load<uint32_t>(e)), Load<uint64_t>(e + 8),
                      Load<uint64_t>(e + 16), Load<uint32_t>(e + 24)};
    const std::string name = SectionName(entry.id);
    const uint64_t end = entry.offset + entry.size;
    if (end < entry.offset || end > size)
      return InvalidArgument("truncated: section " + name + " ends at byte " + std::to_string(end) +
                             " but the file has " + file_bytes + " bytes");
    if (entry.offset % kLbmAlignment != 0 || entry.offset < table_end)
      return InvalidArgument("malformed section table: section " + name + " starts at byte " +
                             std::to_string(entry.offset));
    entries.push_back(entry);
  }
  if (declared_size != size)
    return InvalidArgument((size < declared_size ? "truncated: the header says the file has "
                                                 : "the header says the file has ") +
                           std::to_string(declared_size) + " bytes but it has " + file_bytes +
                           (size < declared_size ? "" : " (trailing bytes)"));
  for (const Entry& entry : entries) {
    if (Crc32(data + entry.offset, entry.size) != entry.crc)
      return InvalidArgument(std::string("checksum mismatch in section ") + SectionName(entry.id) +
                             " (corrupt file)");
    SectionView* view = entry.id == LbmSectionId::kMetadata    ? &metadata
                        : entry.id == LbmSectionId::kGraph     ? &graph
                        : entry.id == LbmSectionId::kConstants ? &constants
                                                               : nullptr;
    if (view == nullptr) continue;  // a section this version does not know
    if (view->present)
      return InvalidArgument(std::string("malformed section table: two ") + SectionName(entry.id) +
                             " sections");
    *view = {data + entry.offset, static_cast<size_t>(entry.size), true};
  }
  for (const auto& [view, id] :
       {std::pair{&metadata, LbmSectionId::kMetadata}, std::pair{&graph, LbmSectionId::kGraph},
        std::pair{&constants, LbmSectionId::kConstants}})
    if (!view->present)
      return InvalidArgument(std::string("malformed section table: no ") + SectionName(id) +
                             " section");
  LOWBIT_RETURN_IF_ERROR(DecodeMetadata(metadata, &file.metadata));
  LOWBIT_ASSIGN_OR_RETURN(file.graph, DecodeGraph(graph, constants, &file.metadata.output_names));
  return file;
}

StatusOr<LbmFile> ReadLbm(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open " + path + ": " + std::strerror(errno));
  struct stat info{};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return Internal("cannot stat " + path + ": " + std::strerror(error));
  }
  const size_t size = static_cast<size_t>(info.st_size);
  if (size == 0) {
    ::close(fd);
    return ReadLbmBytes(nullptr, 0);
  }
  // Every byte is read (checksums, then the constants' copy): populating the
  // mapping up front costs one pass instead of a page fault per 4 KiB.
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) return Internal("cannot map " + path + ": " + std::strerror(errno));
  StatusOr<LbmFile> file = ReadLbmBytes(static_cast<const uint8_t*>(mapped), size);
  ::munmap(mapped, size);
  return file;
}

}  // namespace lowbit::engine::format
