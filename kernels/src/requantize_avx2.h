// Vector requantization of float epilogue values to codes, 8 lanes (AVX2):
// detail::code_bounds (int8_common.h) states the arithmetic and why the exact
// mode (out_scale > 0) equals round_half_even(fl(y / out_scale)) on every
// lane. Included only by translation units compiled with at least -mavx2;
// internal linkage, so the linker cannot mix copies compiled for different
// ISAs.
#pragma once

#include <immintrin.h>

#include "int8_common.h"

namespace lowbit::kernels {
namespace {

struct Requant256 {
  __m256 lo, hi, multiplier;  // v = clamp(y * multiplier, lo, hi)
  __m256 divisor, window;     // exact mode: near-tie vectors use y / divisor
  bool exact;
};

inline Requant256 make_requant256(const detail::CodeBounds& b) {
  Requant256 r;
  r.lo = _mm256_set1_ps(b.lo);
  r.hi = _mm256_set1_ps(b.hi);
  r.multiplier = _mm256_set1_ps(b.multiplier);
  r.divisor = _mm256_set1_ps(b.exact ? b.divisor : 1.0f);
  r.window = _mm256_set1_ps(b.tie_window);
  r.exact = b.exact;
  return r;
}

// The 8 lanes of y (activation applied unless folded into the bounds) ->
// rne(clamp(v, lo, hi)) as int32: the code minus the zero point.
inline __m256i requant_lanes256(const Requant256& r, __m256 y) {
  const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(y, r.multiplier), r.lo), r.hi);
  const __m256i q = _mm256_cvtps_epi32(v);  // round half to even (default MXCSR)
  if (!r.exact) return q;
  // |v - rne(v)| > window: some lane is near a half-integer, divide.
  const __m256 frac = _mm256_sub_ps(v, _mm256_cvtepi32_ps(q));
  const __m256 near =
      _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), frac), r.window, _CMP_GT_OQ);
  if (__builtin_expect(_mm256_movemask_ps(near) == 0, 1)) return q;
  const __m256 d = _mm256_div_ps(y, r.divisor);
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(d, r.lo), r.hi));
}

}  // namespace
}  // namespace lowbit::kernels
