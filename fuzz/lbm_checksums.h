// RecomputeLbmChecksums: rewrites a .lbm buffer's CRC-32s so that a mutated
// file reaches the graph decoder (fuzz_lbm_load) and a regression input
// reads as its writer would have produced it (regressions_test).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "format/lbm.h"

// Every section CRC (for the sections that lie inside the buffer), then the
// header CRC, following the layout in format/lbm.h. False when the buffer is
// too short for its own section table.
inline bool RecomputeLbmChecksums(std::vector<uint8_t>& file) {
  namespace format = lowbit::engine::format;
  auto load32 = [](const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  };
  auto load64 = [](const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  auto store32 = [](uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); };
  if (file.size() < format::kLbmHeaderBytes) return false;
  const uint64_t count = load32(file.data() + 20);
  const uint64_t table_bytes = count * format::kLbmSectionEntryBytes;
  if (table_bytes > file.size() - format::kLbmHeaderBytes) return false;
  uint8_t* table = file.data() + format::kLbmHeaderBytes;
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t* entry = table + i * format::kLbmSectionEntryBytes;
    const uint64_t offset = load64(entry + 8), size = load64(entry + 16);
    if (offset > file.size() || size > file.size() - offset) continue;
    store32(entry + 24, format::Crc32(file.data() + offset, size));
  }
  uint32_t crc = format::Crc32(file.data(), 60);
  crc = format::Crc32(table, table_bytes, crc);
  store32(file.data() + 60, crc);
  return true;
}
