// static_for<N>(f): f(std::integral_constant<int, 0>{}) ... f(<N - 1>), for
// loops over register tiles. The index is a constant from the front end on,
// so gcc keeps arrays of vectors indexed by it in registers; with plain loops
// (even under #pragma GCC unroll) gcc 12 left such accumulator arrays on the
// stack in the NEON kernels (a load and a store per accumulator per step).
#pragma once

#include <utility>

namespace lowbit::kernels::detail {

template <class F, int... I>
inline void static_for_impl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
inline void static_for(F&& f) {
  static_for_impl(f, std::make_integer_sequence<int, N>{});
}

}  // namespace lowbit::kernels::detail
