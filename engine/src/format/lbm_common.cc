// Parts of the .lbm format shared by the reader and the writer: names, the
// build's architecture, host facts for the metadata, CRC-32.
#include <cstring>
#include <fstream>

#include <zlib.h>

#include "format/lbm.h"
#include "lowbit/kernels/dispatch.h"

#ifndef LOWBIT_TARGET_ARCH
#error "LOWBIT_TARGET_ARCH must be set by engine/CMakeLists.txt"
#endif
#ifndef LOWBIT_VERSION
#error "LOWBIT_VERSION must be set by engine/CMakeLists.txt"
#endif

namespace lowbit::engine::format {

const char* ArchitectureName(LbmArchitecture architecture) {
  switch (architecture) {
    case LbmArchitecture::kX86_64:
      return "x86_64";
    case LbmArchitecture::kAArch64:
      return "aarch64";
    case LbmArchitecture::kUnknown:
      break;
  }
  return "unknown";
}

const char* SectionName(LbmSectionId id) {
  switch (id) {
    case LbmSectionId::kMetadata:
      return "metadata";
    case LbmSectionId::kGraph:
      return "graph";
    case LbmSectionId::kConstants:
      return "constants";
  }
  return "unknown";
}

LbmArchitecture BuildArchitecture() {
  // LOWBIT_TARGET_ARCH is CMake's normalised CMAKE_SYSTEM_PROCESSOR.
  static const LbmArchitecture architecture = [] {
    const char* name = LOWBIT_TARGET_ARCH;
    if (std::strcmp(name, "x86_64") == 0) return LbmArchitecture::kX86_64;
    if (std::strcmp(name, "aarch64") == 0) return LbmArchitecture::kAArch64;
    return LbmArchitecture::kUnknown;
  }();
  return architecture;
}

const char* ProducerVersion() { return LOWBIT_VERSION; }

std::string HostKernelIsa() { return kernels::isa_name(kernels::kernel_table().isa); }

std::string HostCpuModel() {
  // x86: "model name : Intel(R) Xeon(R) ..."; ARM boards: "Model : Raspberry
  // Pi 4 ..." or only "CPU implementer" / "CPU part" per core.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, implementer, part, board;
  while (std::getline(cpuinfo, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (key == "model name" && !value.empty()) return value;
    if (key == "CPU implementer" && implementer.empty()) implementer = value;
    if (key == "CPU part" && part.empty()) part = value;
    if (key == "Model" && board.empty()) board = value;
  }
  if (!board.empty()) return board;
  if (!implementer.empty()) return "implementer " + implementer + " part " + part;
  return "";
}

bool HasLbmMagic(const uint8_t* data, size_t size) {
  return size >= sizeof kLbmMagic && std::memcmp(data, kLbmMagic, sizeof kLbmMagic) == 0;
}

uint32_t Crc32(const void* data, size_t size, uint32_t previous) {
  // zlib's braided CRC-32 (several GB/s; the section checksums are on the
  // load path of every model).
  if (size == 0) return previous;  // zlib returns 0 for a null buffer
  return static_cast<uint32_t>(crc32_z(previous, static_cast<const Bytef*>(data), size));
}

}  // namespace lowbit::engine::format
