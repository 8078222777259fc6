// Packing into the kernel formats (scalar; run once per weight tensor at model
// load, and for activations at the network input; inside the network the
// previous layer's output stage writes these formats directly).
// Outputs go into caller-allocated buffers of the layout's size; buffers with
// padding must be zero-initialised by the caller first.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

// Float -> unsigned codes: q = clamp(round_half_even(x / scale) + zero_point,
// 0, 2^bits - 1), bits in 1..8.
void quantize_to_codes(const float* x, size_t count, float scale, int zero_point, int bits,
                       uint8_t* codes);

// Float weights [Cout][...per-channel count] -> int8 values in `domain`:
// v = clamp(round_half_even(w / scale[c]), min, max); kBinary uses sign (w >= 0 -> +1).
void quantize_weights(const float* w, int out_channels, size_t per_channel, const float* scale,
                      WeightDomain domain, int bits, int8_t* values);

// NHWC uint8 codes [N][H][W][C] (each <= 3) -> channel-pair index planes.
void pack_pair_planes(const uint8_t* codes, int batch, const PairPlanesLayout& layout,
                      uint8_t* planes);

// NHWC uint8 codes (each < 2^layout.bits) -> activation bit-planes.
void pack_bit_planes(const uint8_t* codes, int batch, const BitPlanesLayout& layout,
                     uint64_t* planes);

// OHWI int8 weight values in [-2, 1] -> weight-pair tables.
void pack_lut_weights(const int8_t* values, const LutWeightsLayout& layout, uint8_t* tables);

// OHWI int8 weight values in the layout's domain -> bit-serial weight planes.
void pack_bit_serial_weights(const int8_t* values, const BitSerialWeightsLayout& layout,
                             uint64_t* planes);

// NHWC uint8 codes -> INT8 activations (uint16, padded NHWC).
void pack_int8_activations(const uint8_t* codes, int batch, const Int8ActivationsLayout& layout,
                           uint16_t* activations);

// OHWI int8 weight values -> INT8 conv weights (int16 k-pairs).
void pack_int8_weights(const int8_t* values, const Int8WeightsLayout& layout, int16_t* weights);

// NHWC uint8 codes -> INT8 dot-product activations (bytes, padded NHWC).
void pack_int8_dot_activations(const uint8_t* codes, int batch,
                               const Int8DotActivationsLayout& layout, uint8_t* activations);

// OHWI int8 weight values -> INT8 dot-product conv weights (k-quads).
void pack_int8_dot_weights(const int8_t* values, const Int8DotWeightsLayout& layout,
                           int8_t* weights);

// Depthwise weights [C][KH][KW] int8 (OHWI with Cin/groups = 1) -> DwWeightsLayout.
void pack_dw_weights(const int8_t* values, const DwWeightsLayout& layout, int16_t* weights);

}  // namespace lowbit::kernels
