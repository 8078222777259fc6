// Plain reference implementations, used only by tests: unpacked NHWC tensors,
// int64 accumulators, no packing, no tricks.
#pragma once

#include <cstdint>

#include "lowbit/kernels/epilogue.h"
#include "lowbit/kernels/formats.h"

namespace lowbit::kernels::ref {

// activations: uint8 codes [N][H][W][Cin]; weights: int8 values
// [Cout][KH][KW][Cin / groups]; out: int64 [N][OH][OW][Cout] = sum(w * a),
// padding 0, any groups.
void conv(const ConvGeometry& geometry, const uint8_t* activations, const int8_t* weights,
          int64_t* out);

// Epilogue for one accumulator, written independently of the kernels' output
// stage but with the same float expressions in the same order (sum_offset
// subtracted in int64, codes by an actual division when out_scale > 0).
float epilogue_value(const Epilogue& epilogue, int channel, int64_t sum);
uint8_t epilogue_code(const Epilogue& epilogue, int channel, int64_t sum);

}  // namespace lowbit::kernels::ref
