// The compiled model file (.lbm): a compiled ir::Graph with its constants and
// the facts about how it was compiled. The runtime reads it (lbm_reader.cc,
// runtime library); only the compiler writes it (lbm_writer.cc).
//
// Byte layout, format version 1. Every integer and float is little-endian;
// floats are IEEE-754 binary32 stored bit for bit. Offsets are from the start
// of the file.
//
//   header          64 bytes at offset 0
//   section table   section_count entries of 32 bytes, at offset 64
//   sections        each starts at a multiple of 64 (for mmap and for the
//                   AVX-512 rows of packed weights); the gaps are zero bytes
//
// Header:
//   [0, 8)    magic       89 'L' 'B' 'M' 0D 0A 1A 0A  (the high byte and the
//                         CR LF / ^Z catch text-mode transfers, as PNG does)
//   [8, 12)   u32 format_version   kLbmFormatVersion
//   [12, 16)  u32 endian_marker    0x01020304 (bytes 04 03 02 01)
//   [16, 20)  u32 architecture     LbmArchitecture: the CPU architecture
//                                  whose kernels were chosen (1 x86_64, 2 aarch64)
//   [20, 24)  u32 section_count
//   [24, 32)  u64 file_size        total bytes, for the truncation check
//   [32, 56)  char producer_version[24]  e.g. "0.1.0", NUL-padded
//   [56, 60)  u32 reserved (0)
//   [60, 64)  u32 header_crc32     CRC-32 of bytes [0, 60) followed by the
//                                  whole section table
//
// Section table entry (32 bytes):
//   u32 id (LbmSectionId), u32 reserved (0), u64 offset, u64 size,
//   u32 crc32 (CRC-32 of the section's `size` bytes), u32 reserved (0)
// Each id appears once; sections lie inside the file and do not overlap.
// A reader skips ids it does not know (later minor additions).
//
// Encodings used inside sections:
//   u8/u32/i32/i64/u64/f32  fixed width, little-endian
//   string     u32 byte count, then the bytes (no terminator)
//   list<T>    u32 count, then the elements
//
// Section 1, metadata: list<(string key, string value)>. Keys of version 1
// (LbmMetadata below): "producer", "source_model", "kernel_isa", "cpu_model".
// Unknown keys are kept in LbmMetadata::extra.
//
// Section 2, graph:
//   i64 opset
//   list<value>        value ids are positions in this list
//   list<node>         in execution (topological) order
//   list<i32> inputs   graph input value ids
//   list<i32> outputs  graph output value ids
//   list<string> output_names  the model's public output names, one per
//                      output (the compiler may re-point an output to a
//                      value it renamed, e.g. "x/relayout"); may be empty
//   list<constant>     descriptors of the tensors in the constants section
// value:
//   string name; u8 dtype (ir::DataType order: f32 i64 i32 i8 u8 bool packed);
//   u8 shape_known; list<i64> shape; precision; list<i32> storage_perm;
//   i32 constant (index into the constant list, or -1 when not a constant)
// precision:
//   u8 kind (0 float, 1 integer codes); i32 bits; u8 is_signed; f32 scale;
//   i32 zero_point; i32 axis; list<f32> scales; list<i32> zero_points
// node:
//   string op_type; string name; list<i32> inputs (-1 = omitted optional
//   input); list<i32> outputs; list<attribute> (sorted by name)
// attribute:
//   string name; u8 type (ir::Attribute::Type order: int float string ints
//   floats strings tensor); then by type: i64 | f32 | string | list<i64> |
//   list<f32> | list<string> | i32 constant index
// constant:
//   u8 dtype; list<i64> shape; u64 offset (from the start of the constants
//   section, a multiple of 64); u64 byte_size
//
// Section 3, constants: the data of every constant, each at its descriptor's
// offset, compact by dtype (row-major, in the value's storage order):
//   f32 4 bytes, i64 8, i32 4, i8 / u8 / bool 1 per element; packed: the raw
//   kernel-format bytes (the reading node states their layout).
// byte_size = element count x element size, so a reader checks it against
// the shape. The IR widens integer constants to int64 in memory; the writer
// refuses a value that does not fit its dtype.
//
// Compatibility: a reader refuses any format_version other than its own (a
// graph encoding change bumps it), and a file whose architecture differs from
// the build's (kernel choices, packed layouts and tile sizes are per
// architecture). A change of the CPU within one architecture is allowed: the
// metadata names the ISA level and CPU the kernels were measured on, so a
// loader can see that the choices were made elsewhere.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::format {

inline constexpr uint8_t kLbmMagic[8] = {0x89, 'L', 'B', 'M', 0x0D, 0x0A, 0x1A, 0x0A};
inline constexpr uint32_t kLbmFormatVersion = 1;
inline constexpr uint32_t kLbmEndianMarker = 0x01020304;
inline constexpr size_t kLbmHeaderBytes = 64;
inline constexpr size_t kLbmSectionEntryBytes = 32;
inline constexpr size_t kLbmAlignment = 64;

enum class LbmArchitecture : uint32_t { kUnknown = 0, kX86_64 = 1, kAArch64 = 2 };
enum class LbmSectionId : uint32_t { kMetadata = 1, kGraph = 2, kConstants = 3 };

const char* ArchitectureName(LbmArchitecture architecture);  // "x86_64", "aarch64", "unknown"
const char* SectionName(LbmSectionId id);                    // "metadata", "graph", "constants"
// The architecture this build runs on (set by CMake from CMAKE_SYSTEM_PROCESSOR).
LbmArchitecture BuildArchitecture();
// The producer version this build writes ("0.1.0", the CMake project version).
const char* ProducerVersion();

// How and where a model was compiled.
struct LbmMetadata {
  std::string producer;      // "lowbit 0.1.0"
  std::string source_model;  // the path the model was compiled from
  // The kernels' ISA level (kernels::isa_name) and the CPU ("model name" of
  // /proc/cpuinfo) on which the kernel choices were measured.
  std::string kernel_isa;
  std::string cpu_model;
  std::map<std::string, std::string> extra;  // keys this build does not know
  // Public output names in graph.outputs order, or empty for the output
  // values' names. Stored in the graph section (part of the interface).
  std::vector<std::string> output_names;
};

// Facts about this process's CPU for LbmMetadata: the ISA level the kernel
// table runs at and the CPU model string ("" when /proc/cpuinfo has none).
std::string HostKernelIsa();
std::string HostCpuModel();

// Writes `graph` (compiled: what CompiledModel::FromGraph accepts) and
// `metadata` to `path`, replacing it. Fails naming the value when a constant
// is inconsistent (data size vs shape, an integer outside its dtype).
// Defined in the compiler library.
Status WriteLbm(const ir::Graph& graph, const LbmMetadata& metadata, const std::string& path);
// The bytes WriteLbm writes (compiler library).
StatusOr<std::vector<uint8_t>> EncodeLbm(const ir::Graph& graph, const LbmMetadata& metadata);

struct LbmFile {
  ir::Graph graph;
  LbmMetadata metadata;
  uint32_t format_version = 0;
  LbmArchitecture architecture = LbmArchitecture::kUnknown;
  std::string producer_version;
};

// Reads and checks a .lbm: header, section bounds, every checksum, then the
// graph's structure (value ids, constant references, data sizes). Each
// refusal names its problem: not a lowbit model, unsupported format version,
// another architecture, truncated (which part ends where), checksum mismatch
// in a section, malformed graph (what is wrong where). Messages do not name
// the file; callers add it as context.
StatusOr<LbmFile> ReadLbm(const std::string& path);
StatusOr<LbmFile> ReadLbmBytes(const uint8_t* data, size_t size);

// True when the first bytes of a file are the .lbm magic.
bool HasLbmMagic(const uint8_t* data, size_t size);

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; zlib's crc32):
// crc = Crc32(data, size, previous_crc) continues a running checksum.
uint32_t Crc32(const void* data, size_t size, uint32_t previous = 0);

}  // namespace lowbit::engine::format
