// Byte mapping through a 256-entry table: out[i] = table256[in[i]] for i in
// [0, count). The engine's lowbit.CodeTable (requantization and element-wise
// ops between quantizers, over u8 or i8 codes read as bytes) runs on it.
//
// Any count (0 included), any alignment of table256, in and out; in == out
// (in place) is allowed, other overlaps of in and out are not. table256 holds
// 256 bytes. Bytes of out outside [0, count) are never written. Kernels never
// allocate, log or throw. All variants produce identical bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::kernels {

using MapBytesFn = void (*)(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count);

// Plain byte loop (every architecture).
void map_bytes__scalar(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count);
// AVX2: 32 bytes per step through 16 vpshufb lookups of 16-entry tables.
void map_bytes__avx2(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count);
// AVX-512 F+BW+VBMI: 64 bytes per step through four vpermb lookups of
// 64-entry quarters, chosen per byte by its bits 6 and 7.
void map_bytes__avx512vbmi(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count);
// NEON: 16 bytes per step through four tbl/tbx lookups of 64-entry quarters.
void map_bytes__neon(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count);

}  // namespace lowbit::kernels
