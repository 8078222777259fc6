// NumPy .npy files (format versions 1.0-3.0, C order) for the CLI and tests.
// Reading accepts float32, float16, int8/16/32/64, uint8/16/32/64 and bool
// in either byte order and converts to the float32 Tensor exactly (integer
// models take their integer inputs as exact floats); writing is float32.
#pragma once

#include <string>

#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"

namespace lowbit::engine {

// Reads a C-ordered array as float32; integers must lie within +-2^24
// (exact in float32). float64 (which would round), other dtypes, an integer
// beyond that, Fortran order or a truncated file are INVALID_ARGUMENT naming
// the file and the problem.
StatusOr<Tensor> ReadNpy(const std::string& path);
// Writes `tensor` as a version 1.0 '<f4' array (shape () for rank 0).
Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace lowbit::engine
