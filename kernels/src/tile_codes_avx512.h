// Vector kCodes / kFloat output stage for pixel-major tiles of up to 16
// output channels (acc[i * 16 + o]) in AVX-512 translation units that are not
// INT8 kernels (the bit-serial AVX-512 kernel). kCodes is int8_codes_avx512.h's
// store_codes512; kFloat applies the float part of the same arithmetic
// (epilogue_value512: y = float(s - sum_offset[c]) * scale[c] (+ bias[c]),
// activation; no FMA) and stores the channels present with one masked store
// per pixel. SiLU and the plane destinations go to the shared
// store_pixel_major. Included only by
// translation units compiled with -mavx512f -mavx512bw -mavx512vl; internal
// linkage.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "int8_codes_avx512.h"
#include "int8_common.h"

namespace lowbit::kernels {
namespace {

// kFloat store of `pixels` consecutive flat pixels from f (one output row or
// more; flat pixels are contiguous in NHWC) for the channels of c.lanes.
inline void store_floats512(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                            int pixels, int cout_begin, const Codes512& c, const int32_t* acc) {
  const int cout = g.out_channels;
  const Activation activation = out.epilogue.activation;
  float* dst = static_cast<float*>(out.data) +
               (size_t(image) * g.out_height() * g.out_width() + f) * cout + cout_begin;
  for (int i = 0; i < pixels; ++i, dst += cout) {
    const __m512i s = _mm512_loadu_si512(acc + i * kInt8CoutBlock);
    _mm512_mask_storeu_ps(dst, c.lanes, epilogue_value512(c, activation, s));
  }
}

// Store of a pixel-major tile: `pixels` (any number) flat pixels from f of `image`,
// channels cout_begin.. (at most max_couts of them, and those < Cout).
inline void store_tile_pm512(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                             int out_width, int pixels, int cout_begin, const int32_t* acc,
                             int max_couts) {
  const Epilogue& e = out.epilogue;
  const int rest = g.out_channels - cout_begin;
  const int couts = rest < max_couts ? rest : max_couts;
  if (detail::codes_vectorizable(out)) {
    store_codes512(out, g, image, f, pixels, cout_begin, make_codes512(e, cout_begin, couts), acc);
  } else if (out.destination == Destination::kFloat && e.activation != Activation::kSilu) {
    store_floats512(out, g, image, f, pixels, cout_begin, make_codes512(e, cout_begin, couts),
                    acc);
  } else {  // store_pixel_major takes at most kInt8PixelGroup pixels per call
    for (int i = 0; i < pixels; i += kInt8PixelGroup)
      detail::store_pixel_major(out, g, image, f + i, out_width,
                                pixels - i < kInt8PixelGroup ? pixels - i : kInt8PixelGroup,
                                cout_begin, acc + i * kInt8CoutBlock, max_couts);
  }
}

}  // namespace
}  // namespace lowbit::kernels
