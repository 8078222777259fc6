// lowbit.Quantize (float32 -> u8 / i8 / i32 codes) and lowbit.Dequantize
// (u8 / i8 / i32 codes -> float32): the formulas of ir/quant_ops.h, element
// by element, in the operands' storage order (input and output share it;
// passes/layout.cc keeps the input's order for both ops).
//
// Per-axis parameters index a logical axis, stored as physical axis j. A
// frame is then [outer][channels][inner], outer / inner the products of the
// physical dimensions before / after j. When inner is long (NCHW storage of
// axis 1) the work goes in spans of `inner` elements that share one
// channel's parameters; when it is short (NHWC storage of axis 1: inner = 1)
// in rows of channels * inner elements read against parameter tables of one
// row. Both loops run at unit stride and vectorise.
//
// Quantize fast path, float32 throughout and identical to
// QuantParams::QuantizeValue when |qmin|, |qmax|, |zero point|, |code_offset|
// <= 2^20:
//   zero_point_first: v = x / s + z, bounds [qmin, qmax],         post = 0
//   otherwise:        v = x / s + 0, bounds [qmin - z, qmax - z], post = z
//   NaN v -> -post;  code = R(clamp(v, bounds)) + post - code_offset
// Clamping before rounding gives the same codes because R is monotone and
// maps integers to themselves (for |v| <= 2^22, where every R below is
// exact), and the bounds are integers. R is built on the round-to-nearest-
// even of (v + 1.5 * 2^23) - 1.5 * 2^23, exact for |v| <= 2^22. Wider
// ranges (Trunc's i32 codes) call QuantizeValue per element.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ir/quant_ops.h"
#include "ops/cpu_clones.h"
#include "ops/kernel.h"

namespace lowbit::engine::ops {
namespace {

using ir::Rounding;

constexpr int64_t kBlock = 16384;       // elements per parallel task
constexpr int64_t kShortInner = 64;     // shorter spans use row tables
constexpr double kFastLimit = 1 << 20;  // |qmin|, |qmax|, |zero point| of the fast path

// Where the parameters of each element come from (see the file comment).
struct Plan {
  bool table = false;
  int64_t outer = 1, channels = 1, inner = 1;  // one frame
};

Plan MakePlan(const ir::Value& value, const ir::QuantParams& params, bool allow_table) {
  Plan plan;
  const Operand operand = DescribeOperand(value);
  if (params.per_tensor()) {
    plan.inner = NumElements(operand.physical);
    return plan;
  }
  const int j = operand.PhysicalAxis(params.axis);
  for (int d = 0; d < j; ++d) plan.outer *= operand.physical[d];
  plan.channels = operand.physical[j];
  for (size_t d = j + 1; d < operand.physical.size(); ++d) plan.inner *= operand.physical[d];
  plan.table = allow_table && plan.inner < kShortInner;
  return plan;
}

// Parameter index of the p-th entry of the parameter arrays: its channel.
// Span mode has one entry per channel, table mode one per element of a row.
int64_t ChannelOfEntry(const Plan& plan, int64_t entry) {
  return plan.table ? entry / plan.inner : entry;
}
int64_t EntryCount(const Plan& plan) {
  return plan.table ? plan.channels * plan.inner : plan.channels;
}

// Calls fn(begin, count, entry, table) over the whole batch: elements
// [begin, begin + count) use parameter entry `entry` (span mode) or entries
// entry + i (table mode, one row).
template <typename Fn>
void ForEachRun(const KernelContext& context, const Plan& plan, const Fn& fn) {
  const int64_t batch = context.batch;
  if (plan.table) {
    const int64_t row = plan.channels * plan.inner, rows = plan.outer * batch;
    const int64_t per_task = std::max<int64_t>(1, kBlock / std::max<int64_t>(row, 1));
    ParallelFor(context, static_cast<size_t>((rows + per_task - 1) / per_task), [&](size_t task) {
      const int64_t first = static_cast<int64_t>(task) * per_task;
      const int64_t last = std::min(rows, first + per_task);
      for (int64_t r = first; r < last; ++r) fn(r * row, row, int64_t{0}, true);
    });
    return;
  }
  const int64_t units = plan.outer * plan.channels * batch;
  const int64_t chunks = std::max<int64_t>(1, (plan.inner + kBlock - 1) / kBlock);
  ParallelFor(context, static_cast<size_t>(units * chunks), [&](size_t task) {
    const int64_t unit = static_cast<int64_t>(task) / chunks,
                  chunk = static_cast<int64_t>(task) % chunks;
    const int64_t begin = chunk * kBlock;
    const int64_t count = std::min(kBlock, plan.inner - begin);
    if (count > 0) fn(unit * plan.inner + begin, count, unit % plan.channels, false);
  });
}

// ---- rounding on float32 (|v| <= 2^22), to int32 -----------------------------
// Float arithmetic is unconditional and every choice is an integer select or
// add, so the loops vectorise (a float op on one side of a condition could
// trap and would keep the compiler scalar).
inline float RoundEven(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: the sum's ulp is 1
  return (v + kMagic) - kMagic;
}
inline int32_t FloorToInt(float v) {
  const float r = RoundEven(v);
  return static_cast<int32_t>(r) - static_cast<int32_t>(r > v);
}
inline int32_t CeilToInt(float v) {
  const float r = RoundEven(v);
  return static_cast<int32_t>(r) + static_cast<int32_t>(r < v);
}
inline int32_t WithSignOf(int32_t magnitude, float v) { return v < 0.0f ? -magnitude : magnitude; }
template <Rounding R>
inline int32_t Round(float v) {
  if constexpr (R == Rounding::kHalfEven) {
    return static_cast<int32_t>(RoundEven(v));
  } else if constexpr (R == Rounding::kFloor) {
    return FloorToInt(v);
  } else if constexpr (R == Rounding::kCeil) {
    return CeilToInt(v);
  } else if constexpr (R == Rounding::kToZero) {
    return WithSignOf(FloorToInt(std::fabs(v)), v);
  } else if constexpr (R == Rounding::kHalfUp || R == Rounding::kHalfDown) {
    const int32_t fl = FloorToInt(v);
    const float half = static_cast<float>(fl) + 0.5f;  // exact: compare, not subtract
    return fl + static_cast<int32_t>(R == Rounding::kHalfUp ? v >= half : v > half);
  } else if constexpr (R == Rounding::kHalfAway) {  // qonnx's float32 formula
    return WithSignOf(FloorToInt(std::fabs(v) + 0.5f), v);
  } else if constexpr (R == Rounding::kHalfToZero) {
    return WithSignOf(CeilToInt(std::fabs(v) - 0.5f), v);
  } else {
    static_assert(R == Rounding::kAwayFromZero);
    return WithSignOf(CeilToInt(std::fabs(v)), v);
  }
}

// ---- Quantize -------------------------------------------------------------
// Parameter arrays of the fast path, one entry per channel (span mode) or
// per element of a row (table mode).
// `nan` = -post, the v that gives the code of 0; `add` = post - code_offset.
struct QuantizeTables {
  std::vector<float> scale, pre, nan, lo, hi;
  std::vector<int32_t> add;
};

template <Rounding R, typename Code>
[[gnu::always_inline]] inline Code QuantizeOne(float x, float scale, float pre, float nan,
                                               float lo, float hi, int32_t add) {
  float v = x / scale + pre;
  v = v != v ? nan : v;  // NaN: code of 0 (QuantizeValue)
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return static_cast<Code>(Round<R>(v) + add);
}

// Always inlined, so that a caller compiled for another ISA (the clones
// below) compiles this loop for its ISA rather than calling the baseline's.
template <Rounding R, typename Code>
[[gnu::always_inline]] inline void QuantizeFast(const float* __restrict x, Code* __restrict q,
                                                int64_t n, const QuantizeTables& t, int64_t entry,
                                                bool table) {
  if (table) {
    const float* __restrict scale = t.scale.data() + entry;
    const float* __restrict pre = t.pre.data() + entry;
    const float* __restrict nan = t.nan.data() + entry;
    const float* __restrict lo = t.lo.data() + entry;
    const float* __restrict hi = t.hi.data() + entry;
    const int32_t* __restrict add = t.add.data() + entry;
    for (int64_t i = 0; i < n; ++i)
      q[i] = QuantizeOne<R, Code>(x[i], scale[i], pre[i], nan[i], lo[i], hi[i], add[i]);
    return;
  }
  const float scale = t.scale[entry], pre = t.pre[entry], nan = t.nan[entry];
  const float lo = t.lo[entry], hi = t.hi[entry];
  const int32_t add = t.add[entry];
  for (int64_t i = 0; i < n; ++i) q[i] = QuantizeOne<R, Code>(x[i], scale, pre, nan, lo, hi, add);
}

// ONNX QuantizeLinear's rounding to 8-bit codes, what nearly every model
// quantizes with, also compiled for AVX2 and AVX-512 (ops/cpu_clones.h; the
// division dominates, 4 lanes wide in SSE2): it was a quarter of a W8A8
// PP-LCNet's time.
LOWBIT_X86_CLONES void QuantizeHalfEvenU8(const float* x, uint8_t* q, int64_t n,
                                          const QuantizeTables& t, int64_t entry, bool table) {
  QuantizeFast<Rounding::kHalfEven, uint8_t>(x, q, n, t, entry, table);
}
LOWBIT_X86_CLONES void QuantizeHalfEvenS8(const float* x, int8_t* q, int64_t n,
                                          const QuantizeTables& t, int64_t entry, bool table) {
  QuantizeFast<Rounding::kHalfEven, int8_t>(x, q, n, t, entry, table);
}

template <typename Code>
using QuantizeSpanFn = void (*)(const float*, Code*, int64_t, const QuantizeTables&, int64_t, bool);

template <typename Code>
QuantizeSpanFn<Code> FastSpanFor(Rounding rounding) {
  switch (rounding) {
    case Rounding::kHalfEven:
      if constexpr (std::is_same_v<Code, uint8_t>) return QuantizeHalfEvenU8;
      if constexpr (std::is_same_v<Code, int8_t>) return QuantizeHalfEvenS8;
      return QuantizeFast<Rounding::kHalfEven, Code>;
    case Rounding::kHalfUp:
      return QuantizeFast<Rounding::kHalfUp, Code>;
    case Rounding::kHalfDown:
      return QuantizeFast<Rounding::kHalfDown, Code>;
    case Rounding::kHalfAway:
      return QuantizeFast<Rounding::kHalfAway, Code>;
    case Rounding::kFloor:
      return QuantizeFast<Rounding::kFloor, Code>;
    case Rounding::kCeil:
      return QuantizeFast<Rounding::kCeil, Code>;
    case Rounding::kToZero:
      return QuantizeFast<Rounding::kToZero, Code>;
    case Rounding::kHalfToZero:
      return QuantizeFast<Rounding::kHalfToZero, Code>;
    case Rounding::kAwayFromZero:
      return QuantizeFast<Rounding::kAwayFromZero, Code>;
  }
  return nullptr;
}

template <typename Code>
class QuantizeKernel final : public Kernel {
 public:
  QuantizeKernel(ir::QuantParams params, Plan plan) : params_(std::move(params)), plan_(plan) {
    const bool fast = std::fabs(static_cast<double>(params_.qmin)) <= kFastLimit &&
                      std::fabs(static_cast<double>(params_.qmax)) <= kFastLimit &&
                      std::fabs(static_cast<double>(params_.code_offset)) <= kFastLimit &&
                      std::all_of(params_.zero_points.begin(), params_.zero_points.end(),
                                  [](float z) { return std::fabs(z) <= kFastLimit; });
    if (params_.bipolar || !fast) {
      plan_.table = false;
      return;
    }
    span_ = FastSpanFor<Code>(params_.rounding);
    const int64_t entries = EntryCount(plan_);
    for (int64_t e = 0; e < entries; ++e) {
      const int64_t c = ChannelOfEntry(plan_, e);
      const float z = params_.zero_point(c);
      const bool first = params_.zero_point_first;
      const float post = first ? 0.0f : z;
      tables_.scale.push_back(params_.scale(c));
      tables_.pre.push_back(first ? z : 0.0f);
      tables_.nan.push_back(-post);
      tables_.lo.push_back(static_cast<float>(params_.qmin) - post);
      tables_.hi.push_back(static_cast<float>(params_.qmax) - post);
      tables_.add.push_back(static_cast<int32_t>(post) - static_cast<int32_t>(params_.code_offset));
    }
  }

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const float* x = static_cast<const float*>(inputs[0]);
    Code* q = static_cast<Code*>(outputs[0]);
    const int32_t offset = static_cast<int32_t>(params_.code_offset);
    if (params_.bipolar) {  // q = x >= 0 ? +1 : -1, then [qmin, qmax]
      const float lo = static_cast<float>(params_.qmin), hi = static_cast<float>(params_.qmax);
      ForEachRun(context, plan_, [&](int64_t begin, int64_t n, int64_t, bool) {
        const float* __restrict xs = x + begin;
        Code* __restrict qs = q + begin;
        for (int64_t i = 0; i < n; ++i) {
          float v = xs[i] >= 0.0f ? 1.0f : -1.0f;
          v = v < lo ? lo : (v > hi ? hi : v);
          qs[i] = static_cast<Code>(static_cast<int32_t>(v) - offset);
        }
      });
    } else if (span_ != nullptr) {
      ForEachRun(context, plan_, [&](int64_t begin, int64_t n, int64_t entry, bool table) {
        span_(x + begin, q + begin, n, tables_, entry, table);
      });
    } else {  // wide code ranges: the reference formula per element
      ForEachRun(context, plan_, [&](int64_t begin, int64_t n, int64_t channel, bool) {
        for (int64_t i = 0; i < n; ++i)
          q[begin + i] = static_cast<Code>(params_.QuantizeValue(x[begin + i], channel));
      });
    }
    return Status::Ok();
  }

 private:
  ir::QuantParams params_;
  Plan plan_;
  QuantizeSpanFn<Code> span_ = nullptr;
  QuantizeTables tables_;
};

// ---- Dequantize -----------------------------------------------------------
// y = float(code + (code_offset - zero_point)) * scale, the sum in Wide.
template <typename Code, typename Wide>
class DequantizeKernel final : public Kernel {
 public:
  DequantizeKernel(const ir::QuantParams& params, Plan plan) : plan_(plan) {
    const int64_t entries = EntryCount(plan_);
    for (int64_t e = 0; e < entries; ++e) {
      const int64_t c = ChannelOfEntry(plan_, e);
      scale_.push_back(params.scale(c));
      offset_.push_back(
          static_cast<Wide>(params.code_offset - static_cast<int64_t>(params.zero_point(c))));
    }
  }

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const Code* q = static_cast<const Code*>(inputs[0]);
    float* y = static_cast<float*>(outputs[0]);
    ForEachRun(context, plan_, [&](int64_t begin, int64_t n, int64_t entry, bool table) {
      const Code* __restrict qs = q + begin;
      float* __restrict ys = y + begin;
      if (table) {
        const float* __restrict scale = scale_.data() + entry;
        const Wide* __restrict offset = offset_.data() + entry;
        for (int64_t i = 0; i < n; ++i)
          ys[i] = static_cast<float>(static_cast<Wide>(qs[i]) + offset[i]) * scale[i];
        return;
      }
      const float scale = scale_[entry];
      const Wide offset = offset_[entry];
      for (int64_t i = 0; i < n; ++i)
        ys[i] = static_cast<float>(static_cast<Wide>(qs[i]) + offset) * scale;
    });
    return Status::Ok();
  }

 private:
  Plan plan_;
  std::vector<float> scale_;
  std::vector<Wide> offset_;
};

bool RangeFits(ir::DataType type, int64_t lo, int64_t hi) {
  switch (type) {
    case ir::DataType::kUInt8:
      return lo >= 0 && hi <= 255;
    case ir::DataType::kInt8:
      return lo >= -128 && hi <= 127;
    case ir::DataType::kInt32:
      return lo >= INT32_MIN && hi <= INT32_MAX;
    default:
      return false;
  }
}

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateQuantizeKernel(const ir::Graph& graph,
                                                       const ir::Node& node) {
  LOWBIT_ASSIGN_OR_RETURN(ir::QuantParams params, ir::ReadQuantParams(graph, node));
  const ir::Value& in = graph.values[node.inputs[0]];
  const ir::Value& out = graph.values[node.outputs[0]];
  if (in.is_constant())
    return Unimplemented(node.Describe() + " reads a constant; the constant folder evaluates it");
  if (in.storage_perm != out.storage_perm)
    return Internal(node.Describe() + ": input and output storage orders differ");
  if (node.op_type == ir::kQuantizeOp) {
    if (in.dtype != ir::DataType::kFloat32)
      return Unimplemented(node.Describe() + " quantizes " + ir::DataTypeName(in.dtype) +
                           "; the input must be float32");
    if (!RangeFits(out.dtype, params.code_min(), params.code_max()))
      return Internal(node.Describe() + ": codes [" + std::to_string(params.code_min()) + ", " +
                      std::to_string(params.code_max()) + "] do not fit its " +
                      ir::DataTypeName(out.dtype) + " output");
    const Plan plan = MakePlan(in, params, /*allow_table=*/true);
    if (out.dtype == ir::DataType::kUInt8)
      return std::unique_ptr<Kernel>(new QuantizeKernel<uint8_t>(std::move(params), plan));
    if (out.dtype == ir::DataType::kInt8)
      return std::unique_ptr<Kernel>(new QuantizeKernel<int8_t>(std::move(params), plan));
    return std::unique_ptr<Kernel>(new QuantizeKernel<int32_t>(std::move(params), plan));
  }
  if (out.dtype != ir::DataType::kFloat32)
    return Internal(node.Describe() + " must output float32");
  const Plan plan = MakePlan(in, params, /*allow_table=*/true);
  // Narrow sums for byte codes unless an offset could overflow int32.
  bool narrow = true;
  for (float z : params.zero_points)
    narrow = narrow && std::fabs(static_cast<double>(params.code_offset) - z) < (1 << 30);
  switch (in.dtype) {
    case ir::DataType::kUInt8:
      if (narrow)
        return std::unique_ptr<Kernel>(new DequantizeKernel<uint8_t, int32_t>(params, plan));
      return std::unique_ptr<Kernel>(new DequantizeKernel<uint8_t, int64_t>(params, plan));
    case ir::DataType::kInt8:
      if (narrow)
        return std::unique_ptr<Kernel>(new DequantizeKernel<int8_t, int32_t>(params, plan));
      return std::unique_ptr<Kernel>(new DequantizeKernel<int8_t, int64_t>(params, plan));
    case ir::DataType::kInt32:
      return std::unique_ptr<Kernel>(new DequantizeKernel<int32_t, int64_t>(params, plan));
    default:
      return Unimplemented(node.Describe() + " dequantizes " + ir::DataTypeName(in.dtype) +
                           " codes; the runtime reads int8, uint8 or int32");
  }
}

}  // namespace lowbit::engine::ops
