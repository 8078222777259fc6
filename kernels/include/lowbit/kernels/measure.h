// Per-layer kernel choice by measurement on the CPU that runs it: every
// family the kernel table carries natively (the candidates of
// choose_conv_kernel) is timed on the layer's exact shape, on the calling
// thread, and the fastest exact one is kept. Meant for model compilation, or
// for load time when a compiled model was measured on another CPU; the cost
// model (choose.h) stays the fallback when nothing is measured.
//
// Unlike the kernels, this utility allocates: it builds real inputs in each
// family's formats (make_*_layout buffers, random codes and weights packed
// with pack.h) and output buffers, all freed before it returns. It does not
// log or throw. Cost: per family one exactness run, one warm-up run and then
// timed runs until MeasureOptions::min_seconds have passed (at least
// min_runs, at most max_runs), i.e. a few milliseconds per family on typical
// layers, plus the packing.
//
// Exactness: every family computes exact int32 sums, so each candidate's
// kInt32 output on the random data is compared with direct int64 sums at
// sampled outputs (corners, first and last channel, the centre and random
// ones, about 2^20 multiply-adds of direct sums; every output of a smaller
// layer) and, in full, with the other candidates' outputs; where candidates
// differ, the direct sum at that output decides which are wrong. (A layer
// with a single candidate is thus checked on the samples only.) A family that is
// not exact is reported (ConvKernelTiming::exact == false) and never chosen.
#pragma once

#include <cstdint>

#include "lowbit/kernels/choose.h"
#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/epilogue.h"
#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

struct MeasureOptions {
  double min_seconds = 0.003;  // timed time per family (after the warm-up run)
  int min_runs = 2;            // timed runs per family, at least
  int max_runs = 20;           // and at most
  // Output of the timed runs: kCodes (u8 codes of 8 bits through a
  // per-channel scale, bias and ReLU: the requantizing epilogue of an inner
  // layer), kFloat or kInt32. Any other value is timed as kCodes.
  Destination destination = Destination::kCodes;
  // kCodes as a fake-quantized layer's: Epilogue::sum_offset (activation zero
  // point 2^(abits - 1)) and exact division by Epilogue::out_scale; false:
  // no sum_offset and out_inv_scale (the multiplier requantization).
  bool exact_codes = true;
  uint32_t seed = 1;  // of the random codes and weights
};

struct ConvKernelTiming {
  ConvFamily family = ConvFamily::kNone;
  const char* kernel_name = "";
  bool runs = false;   // the family's formats hold the layer (conv_family_supports)
  bool exact = false;  // runs, and its int32 sums equal the direct sums
  double ns = -1.0;    // fastest timed call in nanoseconds (when runs)
  int timed_runs = 0;
  double estimated_cycles = -1.0;  // estimate_conv_cycles, same variant and destination
};

struct MeasuredConvChoice {
  // Fastest exact family (estimated_cycles: the cost model's estimate for
  // it); family kNone when no candidate runs the layer exactly.
  ConvKernelChoice best;
  double best_ns = -1.0;
  ConvKernelChoice modeled;  // choose_conv_kernel, same table and destination (the fallback)
  // One entry per family the table carries natively, in kConvFamilies order,
  // including those that cannot run this layer (runs == false).
  ConvKernelTiming timings[kConvFamilyCount];
  int count = 0;
};

// Times `table`'s native families on one image (geometry.batch is taken as
// 1) of a layer with weights of `wbits` in `domain` and activation codes of
// `abits`, single thread.
MeasuredConvChoice measure_conv_kernels(const ConvGeometry& geometry, int wbits, int abits,
                                        WeightDomain domain, const KernelTable& table,
                                        const MeasureOptions& options = {});

}  // namespace lowbit::kernels
