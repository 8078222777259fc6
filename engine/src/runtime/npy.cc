#include "lowbit/engine/npy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

namespace lowbit::engine {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

// Value of `key` in the header dict, as the raw text after the colon up to
// the next top-level comma or closing brace.
std::string HeaderField(const std::string& header, const std::string& key) {
  const size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) return "";
  size_t pos = header.find(':', at);
  if (pos == std::string::npos) return "";
  ++pos;
  int depth = 0;
  std::string value;
  for (; pos < header.size(); ++pos) {
    const char c = header[pos];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    value += c;
  }
  const size_t begin = value.find_first_not_of(" ");
  const size_t end = value.find_last_not_of(" ");
  return begin == std::string::npos ? "" : value.substr(begin, end - begin + 1);
}

// An array element type: descr '<f4', '|u1', '>i2', ... (byte order,
// kind, size in bytes).
struct ElementFormat {
  char kind = 'f';  // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
  size_t size = 4;
  bool big_endian = false;
};

std::optional<ElementFormat> ParseDescr(const std::string& quoted) {
  if (quoted.size() < 4 || quoted.front() != '\'' || quoted.back() != '\'') return std::nullopt;
  std::string descr = quoted.substr(1, quoted.size() - 2);
  static const std::pair<const char*, const char*> kNames[] = {
      {"float16", "<f2"}, {"float32", "<f4"}, {"float64", "<f8"}, {"int8", "|i1"},
      {"uint8", "|u1"},   {"int16", "<i2"},   {"uint16", "<u2"},  {"int32", "<i4"},
      {"uint32", "<u4"},  {"int64", "<i8"},   {"uint64", "<u8"},  {"bool", "|b1"}};
  for (const auto& [name, code] : kNames)
    if (descr == name) descr = code;
  if (descr.size() != 3) return std::nullopt;
  ElementFormat format;
  const char order = descr[0];
  if (order != '<' && order != '>' && order != '|' && order != '=') return std::nullopt;
  format.big_endian = order == '>';
  format.kind = descr[1];
  format.size = static_cast<size_t>(descr[2] - '0');
  const bool valid =
      (format.kind == 'f' && (format.size == 2 || format.size == 4 || format.size == 8)) ||
      ((format.kind == 'i' || format.kind == 'u') &&
       (format.size == 1 || format.size == 2 || format.size == 4 || format.size == 8)) ||
      (format.kind == 'b' && format.size == 1);
  if (!valid) return std::nullopt;
  return format;
}

float HalfToFloat(uint16_t half) {
  const int exponent = (half >> 10) & 0x1f, mantissa = half & 0x3ff;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    magnitude =
        mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  return (half & 0x8000) ? -magnitude : magnitude;
}

// One little-endian element as a double; false for an integer that float32
// cannot hold exactly (|v| > 2^24).
bool DecodeElement(const ElementFormat& format, const unsigned char* bytes, double* value) {
  auto load = [&](auto sample) {
    decltype(sample) v;
    std::memcpy(&v, bytes, sizeof v);
    return v;
  };
  if (format.kind == 'f') {
    if (format.size == 2) *value = HalfToFloat(load(uint16_t{}));
    if (format.size == 4) *value = load(float{});
    if (format.size == 8) *value = load(double{});
    return true;
  }
  if (format.kind == 'b') {
    *value = bytes[0] != 0;
    return true;
  }
  if (format.kind == 'i') {
    int64_t v = format.size == 1   ? load(int8_t{})
                : format.size == 2 ? load(int16_t{})
                : format.size == 4 ? load(int32_t{})
                                   : load(int64_t{});
    *value = static_cast<double>(v);
    return v >= -(int64_t(1) << 24) && v <= (int64_t(1) << 24);
  }
  uint64_t v = format.size == 1   ? load(uint8_t{})
               : format.size == 2 ? load(uint16_t{})
               : format.size == 4 ? load(uint32_t{})
                                  : load(uint64_t{});
  *value = static_cast<double>(v);
  return v <= (uint64_t(1) << 24);
}

}  // namespace

StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot open .npy file '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  auto invalid = [&](const std::string& what) { return InvalidArgument(path + ": " + what); };
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    return invalid("not a .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_length, header_start;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9])
                                                               << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return invalid("truncated header");
    uint32_t length;
    std::memcpy(&length, bytes.data() + 8, 4);
    header_length = length;
    header_start = 12;
  } else {
    return invalid("unsupported .npy format version " + std::to_string(major));
  }
  if (bytes.size() < header_start + header_length) return invalid("truncated header");
  const std::string header = bytes.substr(header_start, header_length);
  const std::string descr = HeaderField(header, "descr");
  const std::optional<ElementFormat> format = ParseDescr(descr);
  if (format && format->kind == 'f' && format->size == 8)
    return invalid("dtype " + descr +
                   " is float64, which float32 tensors would round; save with "
                   "array.astype(numpy.float32)");
  if (!format)
    return invalid("dtype " + descr +
                   " is not supported; lowbit reads float32, float16, int8/16/32/64, "
                   "uint8/16/32/64 and bool arrays (save floats with "
                   "array.astype(numpy.float32))");
  if (HeaderField(header, "fortran_order") != "False")
    return invalid("Fortran-ordered arrays are not supported; save a C-contiguous array");
  std::string shape_text = HeaderField(header, "shape");
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')')
    return invalid("malformed shape in the header");
  Shape shape;
  std::stringstream dims(shape_text.substr(1, shape_text.size() - 2));
  std::string dim;
  while (std::getline(dims, dim, ',')) {
    if (dim.find_first_not_of(" ") == std::string::npos) continue;
    char* end = nullptr;
    const long long value = std::strtoll(dim.c_str(), &end, 10);
    if (value < 0) return invalid("negative dimension in the header");
    shape.push_back(value);
  }
  const size_t data_start = header_start + header_length;
  const int64_t count = NumElements(shape);
  const size_t expected = static_cast<size_t>(count) * format->size;
  if (bytes.size() - data_start != expected)
    return invalid("holds " + std::to_string(bytes.size() - data_start) + " data bytes; shape " +
                   ShapeToString(shape) + " needs " + std::to_string(expected));
  Tensor tensor(shape);
  const unsigned char* data = reinterpret_cast<const unsigned char*>(bytes.data()) + data_start;
  for (int64_t i = 0; i < count; ++i) {
    unsigned char element[8];
    std::memcpy(element, data + i * format->size, format->size);
    if (format->big_endian) std::reverse(element, element + format->size);
    double value = 0;
    if (!DecodeElement(*format, element, &value))
      return invalid("element " + std::to_string(i) +
                     " is an integer beyond +-2^24, which float32 cannot hold exactly");
    tensor.data()[i] = static_cast<float>(value);
  }
  return tensor;
}

Status WriteNpy(const std::string& path, const Tensor& tensor) {
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape().size(); ++i)
    shape += std::to_string(tensor.shape()[i]) + (tensor.shape().size() == 1      ? ","
                                                  : i + 1 < tensor.shape().size() ? ", "
                                                                                  : "");
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot create .npy file '" + path + "'");
  file.write(kMagic, 6);
  const char version[2] = {1, 0};
  file.write(version, 2);
  const uint16_t length = static_cast<uint16_t>(header.size());
  const char length_bytes[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
  file.write(length_bytes, 2);
  file.write(header.data(), header.size());
  file.write(reinterpret_cast<const char*>(tensor.data()), tensor.size() * sizeof(float));
  if (!file) return Internal("failed writing '" + path + "'");
  return Status::Ok();
}

}  // namespace lowbit::engine
