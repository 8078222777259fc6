#include "lowbit/engine/npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

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
  if (descr != "'<f4'" && descr != "'float32'")
    return invalid("dtype " + descr +
                   " is not little-endian float32 ('<f4'); save with "
                   "array.astype(numpy.float32)");
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
  const size_t expected = static_cast<size_t>(NumElements(shape)) * sizeof(float);
  if (bytes.size() - data_start != expected)
    return invalid("holds " + std::to_string(bytes.size() - data_start) + " data bytes; shape " +
                   ShapeToString(shape) + " needs " + std::to_string(expected));
  Tensor tensor(shape);
  if (expected) std::memcpy(tensor.data(), bytes.data() + data_start, expected);
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
