// NumPy .npy files of float32 tensors (format versions 1.0-3.0, C order,
// little-endian '<f4'), for the CLI and tests.
#pragma once

#include <string>

#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"

namespace lowbit::engine {

// Reads a C-ordered little-endian float32 array. Other dtypes, Fortran order
// or a truncated file are INVALID_ARGUMENT naming the file and the problem.
StatusOr<Tensor> ReadNpy(const std::string& path);
// Writes `tensor` as a version 1.0 '<f4' array (shape () for rank 0).
Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace lowbit::engine
