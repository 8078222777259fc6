// lowbit.QConv: quantized convolution on the kernels/ families (node
// definition in passes/lower_quantized.cc).
//
// Per run: the input's dense NHWC u8 codes [N][H][W][C] are packed into the
// chosen family's activation format in the step's scratch (the arena reuses
// that memory between steps, so every run writes the whole buffer: the border
// and slack with the zero point's code, then the interior). Asymmetric pads
// are a virtual input of (H + top + bottom) x (W + left + right) with kernel
// pad 0 and the image placed at (top, left). The kernel's output stage
// writes dense NHWC u8 codes (requantized) or float32.
//
// Weights: the compact codes of input 1 are unpacked and packed into the
// family's weight format once per model (PrepareQuantizedConvs), as a kPacked
// constant appended as input 4 (and the int32 zero-point sums as input 5),
// shared read-only by every session.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include "lowbit/kernels/choose.h"
#include "lowbit/kernels/conv.h"
#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/measure.h"
#include "lowbit/kernels/pack.h"
#include "ops/kernel.h"
#include "ops/qconv.h"
#include "ops/qconv_weights.h"

namespace lowbit::engine::ops {
namespace {

using kernels::ConvFamily;

// Geometry of a QConv node at batch 1 (virtual padded input, kernel pad 0).
struct QConvShape {
  kernels::ConvGeometry geometry;
  int64_t height = 0, width = 0;  // real input
  int64_t top = 0, left = 0;
  int wbits = 8, abits = 8;
  kernels::WeightDomain domain = kernels::WeightDomain::kSigned;
  WeightCodeFormat format;
  int zero_code = 0;
  // Element strides of the input codes' logical C, H and W axes within a
  // frame (any storage order: NHWC normally; the graph input's NCHW codes
  // are read in place instead of being relaid out first).
  int64_t channel_stride = 1, row_stride = 0, column_stride = 0, frame = 0;

  bool nhwc() const { return channel_stride == 1 && column_stride == geometry.in_channels; }
  const uint8_t* pixel(const uint8_t* codes, int64_t n, int64_t y, int64_t x) const {
    return codes + n * frame + y * row_stride + x * column_stride;
  }
};

StatusOr<QConvShape> ReadShape(const ir::Graph& graph, const ir::Node& node) {
  QConvShape s;
  const ir::Value& input = graph.values[node.inputs[0]];
  const ir::Value& output = graph.values[node.outputs[0]];
  const std::vector<int64_t> pads = node.GetInts("pads", {0, 0, 0, 0});
  const std::vector<int64_t> kernel = node.GetInts("kernel_shape");
  const std::vector<int64_t> strides = node.GetInts("strides", {1, 1});
  if (kernel.size() != 2 || pads.size() != 4 || strides.size() != 2 || strides[0] != strides[1])
    return InvalidArgument(node.Describe() + ": malformed quantized convolution attributes");
  s.height = input.shape[2];
  s.width = input.shape[3];
  s.top = pads[0];
  s.left = pads[1];
  kernels::ConvGeometry& g = s.geometry;
  g.height = static_cast<int>(s.height + pads[0] + pads[2]);
  g.width = static_cast<int>(s.width + pads[1] + pads[3]);
  g.in_channels = static_cast<int>(input.shape[1]);
  g.out_channels = static_cast<int>(output.shape[1]);
  g.kernel_h = static_cast<int>(kernel[0]);
  g.kernel_w = static_cast<int>(kernel[1]);
  g.stride = static_cast<int>(strides[0]);
  g.pad = 0;
  g.groups = static_cast<int>(node.GetInt("group", 1));
  if (g.out_height() != output.shape[2] || g.out_width() != output.shape[3])
    return Internal(node.Describe() + ": output shape disagrees with the geometry");
  s.wbits = static_cast<int>(node.GetInt("wbits", 8));
  s.abits = static_cast<int>(node.GetInt("abits", 8));
  const bool binary = node.GetString("weight_domain", "signed") == "binary";
  s.domain = binary ? kernels::WeightDomain::kBinary : kernels::WeightDomain::kSigned;
  s.format = {s.wbits, static_cast<int32_t>(node.GetInt("weight_min", -(1 << (s.wbits - 1)))),
              binary ? 2 : 1};
  s.zero_code = static_cast<int>(node.GetInt("input_zero_point", 0));
  const Operand in = DescribeOperand(input);
  s.channel_stride = in.ElementStride(1);
  s.row_stride = in.ElementStride(2);
  s.column_stride = in.ElementStride(3);
  s.frame = NumElements(input.shape);
  return s;
}

ConvFamily FamilyFromName(const std::string& name) {
  for (ConvFamily f : {ConvFamily::kInt8, ConvFamily::kInt8Dot, ConvFamily::kDepthwiseInt8,
                       ConvFamily::kLut, ConvFamily::kBitSerial})
    if (name == kernels::conv_family_name(f)) return f;
  return ConvFamily::kNone;
}

// ---- activation packing ------------------------------------------------------

// Dense NHWC codes -> padded NHWC of element type T with `channel_stride`
// elements per pixel, border = zero code, channel tail = 0.
template <typename T>
void PackPaddedNhwc(const KernelContext& context, const uint8_t* codes, const QConvShape& s,
                    int padded_height, int padded_width, int channel_stride, size_t image_elems,
                    T* out) {
  const int64_t channels = s.geometry.in_channels;
  const T zero = static_cast<T>(s.zero_code);
  ParallelFor(context, static_cast<size_t>(context.batch * padded_height), [&](size_t task) {
    const int64_t n = task / padded_height, y = task % padded_height;
    T* row = out + n * image_elems + y * int64_t(padded_width) * channel_stride;
    const int64_t iy = y - s.top;
    const bool interior_row = iy >= 0 && iy < s.height;
    for (int64_t x = 0; x < padded_width; ++x) {
      T* px = row + x * channel_stride;
      const int64_t ix = x - s.left;
      if (interior_row && ix >= 0 && ix < s.width) {
        const uint8_t* src = s.pixel(codes, n, iy, ix);
        if (sizeof(T) == 1 && s.channel_stride == 1) {
          std::memcpy(px, src, channels);
        } else {
          for (int64_t c = 0; c < channels; ++c) px[c] = src[c * s.channel_stride];
        }
      } else {
        for (int64_t c = 0; c < channels; ++c) px[c] = zero;
      }
      for (int64_t c = channels; c < channel_stride; ++c) px[c] = 0;
    }
    if (y == padded_height - 1) {  // slack after the last pixel of the image
      T* end = out + n * image_elems + int64_t(padded_height) * padded_width * channel_stride;
      std::fill(end, out + (n + 1) * image_elems, T(0));
    }
  });
}

// Bit j of 8 channel codes at once: x holds 8 codes (channel c in byte c);
// t keeps bit j of each byte at the byte's bit 0, and the multiply gathers
// byte i's bit into bit 56 + i (the partial products land on distinct bits,
// so nothing carries into the top byte).
inline uint64_t PlaneByte(uint64_t x, int j) {
  const uint64_t t = (x >> j) & 0x0101010101010101ull;
  return (t * 0x0102040810204080ull) >> 56;
}

// One pixel's words: [bits][words] uint64, channel c at bit c % 64 of word
// c / 64; channels past `channels` are 0. `src` has channel stride 1.
inline void PackPixelPlanes(const uint8_t* src, int channels, const kernels::BitPlanesLayout& l,
                            uint64_t* px) {
  for (int w = 0; w < l.words; ++w) {
    uint64_t groups[8] = {};
    const int begin = w * 64, count = std::min(64, channels - begin);
    for (int g = 0; g * 8 < count; ++g) {
      const int n = std::min(8, count - g * 8);
      uint64_t x = 0;
      std::memcpy(&x, src + begin + g * 8, n);  // little-endian: channel order = byte order
      groups[g] = x;
    }
    for (int j = 0; j < l.bits; ++j) {
      uint64_t word = 0;
      for (int g = 0; g < 8; ++g) word |= PlaneByte(groups[g], j) << (8 * g);
      px[size_t(j) * l.words + w] = word;
    }
  }
}

void PackBitPlanes(const KernelContext& context, const uint8_t* codes, const QConvShape& s,
                   const kernels::BitPlanesLayout& l, uint64_t* out) {
  const int channels = l.channels;
  // The border pixel: every channel holds the zero point's code.
  std::vector<uint8_t> zero_codes(channels, static_cast<uint8_t>(s.zero_code));
  std::vector<uint64_t> border(l.pixel_words);
  PackPixelPlanes(zero_codes.data(), channels, l, border.data());
  ParallelFor(context, static_cast<size_t>(context.batch * l.padded_height), [&](size_t task) {
    const int64_t n = task / l.padded_height, y = task % l.padded_height;
    uint64_t* image = out + n * l.image_words;
    const int64_t iy = y - s.top;
    std::vector<uint8_t> gathered(s.channel_stride == 1 ? 0 : channels);
    for (int x = 0; x < l.padded_width; ++x) {
      uint64_t* px = image + l.offset_words(static_cast<int>(y), x);
      const int64_t ix = x - s.left;
      if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) {
        std::copy(border.begin(), border.end(), px);
        continue;
      }
      const uint8_t* src = s.pixel(codes, n, iy, ix);
      if (s.channel_stride != 1) {
        for (int c = 0; c < channels; ++c) gathered[c] = src[c * s.channel_stride];
        src = gathered.data();
      }
      PackPixelPlanes(src, channels, l, px);
    }
    if (y == l.padded_height - 1) {
      uint64_t* end = image + size_t(l.padded_height) * l.padded_width * l.pixel_words;
      std::fill(end, image + l.image_words, uint64_t(0));
    }
  });
}

void PackPairPlanes(const KernelContext& context, const uint8_t* codes, const QConvShape& s,
                    const kernels::PairPlanesLayout& l, uint8_t* out) {
  const int channels = l.channels;
  const int padded_height = s.geometry.height, padded_width = s.geometry.width;
  const uint8_t zero = static_cast<uint8_t>(s.zero_code);
  ParallelFor(context, static_cast<size_t>(context.batch * l.channel_pairs), [&](size_t task) {
    const int64_t n = task / l.channel_pairs;
    const int pair = static_cast<int>(task % l.channel_pairs);
    uint8_t* image = out + n * l.image_bytes;
    const size_t planes = size_t(l.phase_split) * l.phase_split;
    std::memset(image + size_t(pair) * planes * l.plane_bytes, 0, planes * l.plane_bytes);
    const int c0 = 2 * pair, c1 = 2 * pair + 1;
    for (int y = 0; y < padded_height; ++y) {
      const int64_t iy = y - s.top;
      for (int x = 0; x < padded_width; ++x) {
        const int64_t ix = x - s.left;
        uint8_t a0 = zero, a1 = c1 < channels ? zero : 0;
        if (iy >= 0 && iy < s.height && ix >= 0 && ix < s.width) {
          const uint8_t* src = s.pixel(codes, n, iy, ix);
          a0 = src[c0 * s.channel_stride];
          a1 = c1 < channels ? src[c1 * s.channel_stride] : 0;
        }
        image[l.offset(pair, y, x)] = static_cast<uint8_t>(a0 | (a1 << 2));
      }
    }
  });
}

// ---- the kernel ----------------------------------------------------------------

class QConvKernel final : public Kernel {
 public:
  Status Init(const ir::Graph& graph, const ir::Node& node) {
    LOWBIT_ASSIGN_OR_RETURN(shape_, ReadShape(graph, node));
    family_ = FamilyFromName(node.GetString("lowbit_kernel", ""));
    if (family_ == ConvFamily::kNone || node.inputs.size() < 6)
      return Internal(node.Describe() + ": weights were not prepared for a kernel family");
    const ir::Value& scale = graph.values[node.inputs[2]];
    const ir::Value& bias = graph.values[node.inputs[3]];
    if (!scale.is_constant() || !bias.is_constant())
      return Internal(node.Describe() + ": epilogue scale and bias must be constants");
    const kernels::KernelTable& table = kernels::kernel_table();
    kernels::Epilogue& e = epilogue_;
    e.scale = scale.constant->floats.data();
    e.bias = bias.constant->floats.data();
    const std::string activation = node.GetString("lowbit_activation", "");
    if (activation == "relu") e.activation = kernels::Activation::kRelu;
    if (activation == "leaky_relu") {
      e.activation = kernels::Activation::kLeakyRelu;
      e.alpha = node.GetFloat("lowbit_alpha", 0.01f);
    }
    if (activation == "clip") {
      e.activation = kernels::Activation::kClip;
      e.clip_min = node.GetFloat("lowbit_min", -std::numeric_limits<float>::infinity());
      e.clip_max = node.GetFloat("lowbit_max", std::numeric_limits<float>::infinity());
    }
    e.sum_offset = graph.values[node.inputs[5]].constant->bytes.as<int32_t>();
    out_codes_ = node.GetInt("out_codes", 0) != 0;
    if (out_codes_) {
      // Rounds y / out_scale exactly as QuantizeLinear does (epilogue.h).
      e.out_scale = node.GetFloat("out_scale", 1.0f);
      e.out_inv_scale = 1.0f / e.out_scale;
      e.out_zero_point = static_cast<int>(node.GetInt("out_zero_point", 0));
      e.out_bits = static_cast<int>(node.GetInt("out_bits", 8));
    }
    weights_ = graph.values[node.inputs[4]].constant->bytes.data();
    const kernels::ConvGeometry& g = shape_.geometry;
    switch (family_) {
      case ConvFamily::kInt8Dot:
        dot_layout_ = kernels::make_int8_dot_activations_layout(g.in_channels, g.height, g.width, 0);
        dot_weights_ = kernels::make_int8_dot_weights_layout(g.out_channels, g.in_channels, g.taps());
        image_bytes_ = dot_layout_.image_bytes;
        int8_dot_fn_ = table.conv_u8s8dot.fn;
        break;
      case ConvFamily::kInt8:
      case ConvFamily::kDepthwiseInt8:
        int8_layout_ = kernels::make_int8_activations_layout(g.in_channels, g.height, g.width, 0);
        image_bytes_ = int8_layout_.image_elems * sizeof(uint16_t);
        if (family_ == ConvFamily::kInt8) {
          int8_weights_ = kernels::make_int8_weights_layout(g.out_channels, g.in_channels, g.taps());
          int8_fn_ = table.conv_u8s8.fn;
        } else {
          dw_weights_ = kernels::make_dw_weights_layout(g.in_channels, g.taps());
          dw_fn_ = table.dwconv_u8s8.fn;
        }
        break;
      case ConvFamily::kBitSerial:
        bit_layout_ = kernels::make_bit_planes_layout(g.in_channels, shape_.abits, g.height, g.width, 0);
        bit_weights_ = kernels::make_bit_serial_weights_layout(g.out_channels, g.in_channels,
                                                               g.taps(), shape_.wbits, shape_.domain);
        image_bytes_ = bit_layout_.image_words * sizeof(uint64_t);
        bitserial_fn_ = table.conv_anybits_bitserial.fn;
        break;
      case ConvFamily::kLut:
        pair_layout_ = kernels::make_pair_planes_layout(g.in_channels, g.height, g.width, 0, g.stride);
        lut_weights_ = kernels::make_lut_weights_layout(g.out_channels, g.in_channels, g.taps());
        image_bytes_ = pair_layout_.image_bytes;
        lut_fn_ = table.conv_w2a2_lut.fn;
        break;
      case ConvFamily::kNone:
        break;
    }
    return Status::Ok();
  }

  // Packed input, then (float output) the int32 sums.
  int64_t workspace_bytes(int64_t batch) const override {
    return (SumsOffset() + (out_codes_ ? 0 : OutputElements() * 4)) * batch;
  }

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const uint8_t* codes = static_cast<const uint8_t*>(inputs[0]);
    kernels::ConvGeometry g = shape_.geometry;
    g.batch = static_cast<int>(context.batch);
    kernels::OutputStage out;
    // Float outputs: the kernels write exact int32 sums (their fastest
    // path), and FloatEpilogue below turns them into floats in bulk.
    out.destination = out_codes_ ? kernels::Destination::kCodes : kernels::Destination::kInt32;
    out.data = out_codes_ ? outputs[0]
                          : static_cast<char*>(context.workspace) + SumsOffset() * context.batch;
    out.epilogue = epilogue_;
    switch (family_) {
      case ConvFamily::kInt8Dot: {
        auto* a = static_cast<uint8_t*>(context.workspace);
        PackPaddedNhwc(context, codes, shape_, dot_layout_.padded_height, dot_layout_.padded_width,
                       dot_layout_.channel_stride, dot_layout_.image_bytes, a);
        kernels::Int8DotConvArgs args{g, a, dot_layout_, reinterpret_cast<const int8_t*>(weights_),
                                      dot_weights_, out, {}};
        Split(context, kernels::int8_dot_conv_work_items(args), args, int8_dot_fn_);
        break;
      }
      case ConvFamily::kInt8:
      case ConvFamily::kDepthwiseInt8: {
        auto* a = static_cast<uint16_t*>(context.workspace);
        PackPaddedNhwc(context, codes, shape_, int8_layout_.padded_height,
                       int8_layout_.padded_width, int8_layout_.channel_stride,
                       int8_layout_.image_elems, a);
        const auto* w = reinterpret_cast<const int16_t*>(weights_);
        if (family_ == ConvFamily::kInt8) {
          kernels::Int8ConvArgs args{g, a, int8_layout_, w, int8_weights_, out, {}};
          Split(context, kernels::int8_conv_work_items(args), args, int8_fn_);
        } else {
          kernels::DwConvArgs args{g, a, int8_layout_, w, dw_weights_, out, {}};
          Split(context, kernels::dw_conv_work_items(args), args, dw_fn_);
        }
        break;
      }
      case ConvFamily::kBitSerial: {
        auto* a = static_cast<uint64_t*>(context.workspace);
        PackBitPlanes(context, codes, shape_, bit_layout_, a);
        kernels::BitSerialConvArgs args{g, a, bit_layout_, reinterpret_cast<const uint64_t*>(weights_),
                                        bit_weights_, out, {}};
        Split(context, kernels::bitserial_conv_work_items(args), args, bitserial_fn_);
        break;
      }
      case ConvFamily::kLut: {
        auto* a = static_cast<uint8_t*>(context.workspace);
        PackPairPlanes(context, codes, shape_, pair_layout_, a);
        kernels::LutConvArgs args{g, a, pair_layout_, weights_, lut_weights_, out, {}};
        Split(context, kernels::lut_conv_work_items(args), args, lut_fn_);
        break;
      }
      case ConvFamily::kNone:
        return Internal("quantized convolution without a kernel");
    }
    if (!out_codes_)
      FloatEpilogue(context, static_cast<const int32_t*>(out.data), static_cast<float*>(outputs[0]));
    return Status::Ok();
  }

 private:
  // Runs fn over `items` work items in ranges spread over the thread pool.
  template <typename Args, typename Fn>
  static void Split(const KernelContext& context, size_t items, const Args& args, Fn fn) {
    const size_t threads =
        context.threadpool == nullptr ? 1 : pthreadpool_get_threads_count(context.threadpool);
    const int parts = static_cast<int>(std::min<size_t>(items, threads * 4));
    if (parts <= 1) {
      fn(args);
      return;
    }
    ParallelFor(context, static_cast<size_t>(parts), [&](size_t part) {
      Args range = args;
      range.work = kernels::work_range(items, parts, static_cast<int>(part));
      fn(range);
    });
  }

  int64_t OutputElements() const {
    const kernels::ConvGeometry& g = shape_.geometry;
    return int64_t(g.out_height()) * g.out_width() * g.out_channels;
  }
  int64_t SumsOffset() const { return (static_cast<int64_t>(image_bytes_) + 63) / 64 * 64; }

  // The kernels' epilogue for a float destination, y = float(s -
  // sum_offset[c]) * scale[c] + bias[c] then the activation, in the same
  // float operations and order (epilogue.h), over [N * OH * OW][Cout] in
  // rows the compiler vectorises.
  // The lowering fuses only Relu, LeakyRelu and Clip.
  void FloatEpilogue(const KernelContext& context, const int32_t* sums, float* out) const {
    const kernels::Epilogue& e = epilogue_;
    const int64_t channels = shape_.geometry.out_channels;
    const int64_t pixels = OutputElements() / channels * context.batch;
    constexpr int64_t kPixelsPerTask = 64;
    ParallelForRanges(context, pixels, kPixelsPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int32_t* s = sums + p * channels;
        float* y = out + p * channels;
        for (int64_t c = 0; c < channels; ++c)
          y[c] = float(s[c] - e.sum_offset[c]) * e.scale[c] + e.bias[c];
        ApplyActivation(e, y, channels);
      }
    });
  }

  static void ApplyActivation(const kernels::Epilogue& e, float* y, int64_t n) {
    switch (e.activation) {
      case kernels::Activation::kNone:
        break;
      case kernels::Activation::kRelu:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] < 0.0f ? 0.0f : y[i];
        break;
      case kernels::Activation::kLeakyRelu:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] < 0.0f ? y[i] * e.alpha : y[i];
        break;
      case kernels::Activation::kClip:
        for (int64_t i = 0; i < n; ++i)
          y[i] = y[i] < e.clip_min ? e.clip_min : (y[i] > e.clip_max ? e.clip_max : y[i]);
        break;
      default:  // the lowering fuses only the activations above
        break;
    }
  }

  QConvShape shape_;
  ConvFamily family_ = ConvFamily::kNone;
  kernels::Epilogue epilogue_;
  bool out_codes_ = false;
  const uint8_t* weights_ = nullptr;
  size_t image_bytes_ = 0;
  kernels::Int8DotActivationsLayout dot_layout_;
  kernels::Int8DotWeightsLayout dot_weights_;
  kernels::Int8ActivationsLayout int8_layout_;
  kernels::Int8WeightsLayout int8_weights_;
  kernels::DwWeightsLayout dw_weights_;
  kernels::BitPlanesLayout bit_layout_;
  kernels::BitSerialWeightsLayout bit_weights_;
  kernels::PairPlanesLayout pair_layout_;
  kernels::LutWeightsLayout lut_weights_;
  kernels::Int8DotConvFn int8_dot_fn_ = nullptr;
  kernels::Int8ConvFn int8_fn_ = nullptr;
  kernels::DwConvFn dw_fn_ = nullptr;
  kernels::BitSerialConvFn bitserial_fn_ = nullptr;
  kernels::LutConvFn lut_fn_ = nullptr;
};

// Packs the node's weights for `family`; empty bytes when the family cannot.
ir::AlignedBytes PackForFamily(ConvFamily family, const QConvShape& s,
                               const std::vector<int8_t>& ohwi) {
  const kernels::ConvGeometry& g = s.geometry;
  ir::AlignedBytes bytes;
  switch (family) {
    case ConvFamily::kInt8Dot: {
      const auto l = kernels::make_int8_dot_weights_layout(g.out_channels, g.in_channels, g.taps());
      bytes.resize(l.bytes);
      kernels::pack_int8_dot_weights(ohwi.data(), l, bytes.as<int8_t>());
      break;
    }
    case ConvFamily::kInt8: {
      const auto l = kernels::make_int8_weights_layout(g.out_channels, g.in_channels, g.taps());
      bytes.resize(l.elems * sizeof(int16_t));
      kernels::pack_int8_weights(ohwi.data(), l, bytes.as<int16_t>());
      break;
    }
    case ConvFamily::kDepthwiseInt8: {
      const auto l = kernels::make_dw_weights_layout(g.in_channels, g.taps());
      bytes.resize(l.elems * sizeof(int16_t));
      kernels::pack_dw_weights(ohwi.data(), l, bytes.as<int16_t>());
      break;
    }
    case ConvFamily::kBitSerial: {
      const auto l = kernels::make_bit_serial_weights_layout(g.out_channels, g.in_channels,
                                                             g.taps(), s.wbits, s.domain);
      bytes.resize(l.total_words * sizeof(uint64_t));
      kernels::pack_bit_serial_weights(ohwi.data(), l, bytes.as<uint64_t>());
      break;
    }
    case ConvFamily::kLut: {
      const auto l = kernels::make_lut_weights_layout(g.out_channels, g.in_channels, g.taps());
      bytes.resize(l.bytes);
      kernels::pack_lut_weights(ohwi.data(), l, bytes.data());
      break;
    }
    case ConvFamily::kNone:
      break;
  }
  return bytes;
}

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateQConvKernel(const ir::Graph& graph, const ir::Node& node) {
  auto kernel = std::make_unique<QConvKernel>();
  LOWBIT_RETURN_IF_ERROR(kernel->Init(graph, node));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

StatusOr<QConvChoice> ChooseQConvFamily(const ir::Graph& graph, const ir::Node& node) {
  LOWBIT_ASSIGN_OR_RETURN(QConvShape s, ReadShape(graph, node));
  const kernels::KernelTable& table = kernels::kernel_table();
  QConvChoice choice;
  if (const char* forced = std::getenv("LOWBIT_CONV_FAMILY")) {
    const ConvFamily family = FamilyFromName(forced);
    if (family == ConvFamily::kNone)
      return InvalidArgument(std::string("LOWBIT_CONV_FAMILY='") + forced +
                             "' is not one of int8, int8dot, dwint8, lut, bitserial");
    if (kernels::estimate_conv_cycles(family, s.geometry, s.wbits, s.abits, s.domain, table) >= 0) {
      choice.family = family;
      choice.how = "forced";
      return choice;
    }
  }
  const char* mode = std::getenv("LOWBIT_KERNEL_CHOICE");
  if (mode != nullptr && std::string(mode) != "measure" && std::string(mode) != "model")
    return InvalidArgument(std::string("LOWBIT_KERNEL_CHOICE='") + mode +
                           "' is not 'measure' or 'model'");
  if (mode == nullptr || std::string(mode) == "measure") {
    // Layers of one shape are measured once per process.
    using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int>;
    static std::mutex mutex;
    static std::map<Key, std::pair<ConvFamily, double>> measured;
    const kernels::ConvGeometry& g = s.geometry;
    const Key key{g.height,   g.width,  g.in_channels, g.out_channels,          g.kernel_h,
                  g.kernel_w, g.stride, g.groups,      s.wbits * 16 + s.abits, int(s.domain),
                  int(table.isa)};
    std::lock_guard<std::mutex> lock(mutex);
    auto it = measured.find(key);
    if (it == measured.end()) {
      const kernels::MeasuredConvChoice m =
          kernels::measure_conv_kernels(g, s.wbits, s.abits, s.domain, table);
      it = measured.emplace(key, std::make_pair(m.best.family, m.best_ns)).first;
    }
    if (it->second.first != ConvFamily::kNone) {
      choice.family = it->second.first;
      choice.measured_ns = it->second.second;
      choice.how = "measured";
      return choice;
    }
  }
  const kernels::ConvKernelChoice modeled =
      kernels::choose_conv_kernel(s.geometry, s.wbits, s.abits, s.domain, table);
  if (modeled.family == ConvFamily::kNone)
    return Unimplemented(node.Describe() + ": no kernel family runs this convolution");
  choice.family = modeled.family;
  choice.how = "cost model";
  return choice;
}

Status ChooseQConvKernels(ir::Graph* graph) {
  for (ir::Node& node : graph->nodes) {
    if (node.op_type != "lowbit.QConv") continue;
    LOWBIT_ASSIGN_OR_RETURN(QConvChoice choice, ChooseQConvFamily(*graph, node));
    node.attributes["lowbit_kernel"] =
        ir::Attribute::String(kernels::conv_family_name(choice.family));
    node.attributes["lowbit_kernel_choice"] = ir::Attribute::String(choice.how);
    if (choice.measured_ns > 0)
      node.attributes["lowbit_kernel_ns"] = ir::Attribute::Float(static_cast<float>(choice.measured_ns));
  }
  return Status::Ok();
}

Status PrepareQuantizedConvs(ir::Graph* graph) {
  for (ir::Node& node : graph->nodes) {
    if (node.op_type != "lowbit.QConv") continue;
    LOWBIT_ASSIGN_OR_RETURN(QConvShape s, ReadShape(*graph, node));
    if (node.inputs.size() > 4) continue;  // already prepared (inputs 4 and 5)
    ConvFamily family = FamilyFromName(node.GetString("lowbit_kernel", ""));
    if (family == ConvFamily::kNone) {
      LOWBIT_ASSIGN_OR_RETURN(QConvChoice choice, ChooseQConvFamily(*graph, node));
      family = choice.family;
    }
    const ir::Value& compact = graph->values[node.inputs[1]];
    if (!compact.is_constant() || compact.constant->dtype != ir::DataType::kPacked)
      return InvalidArgument(node.Describe() + ": weights are not a packed constant");
    const kernels::ConvGeometry& g = s.geometry;
    const int64_t count = int64_t(g.out_channels) * g.taps() * (g.in_channels / g.groups);
    if (static_cast<int64_t>(compact.constant->bytes.size()) < PackedWeightBytes(count, s.wbits))
      return InvalidArgument(node.Describe() + ": packed weights are truncated");
    const std::vector<int8_t> ohwi =
        UnpackWeightValues(compact.constant->bytes.data(), count, s.format);
    ir::AlignedBytes packed = PackForFamily(family, s, ohwi);
    if (packed.size() == 0)
      return Unimplemented(node.Describe() + ": kernel family " +
                           kernels::conv_family_name(family) + " cannot run it");
    const std::string name = graph->UniqueName(node.name + "/" + kernels::conv_family_name(family));
    const int id = graph->AddConstant(name, ir::HostTensor::Packed(std::move(packed)));
    // input_zero_point * sum(w[m]) over every tap and input channel: the
    // padding holds the zero point's code, so every tap contributes.
    const int64_t per_channel = count / g.out_channels;
    // An integer bias (attribute bias_codes) is added here too: the float
    // epilogue then starts from float(s - zp * sum(w) + b).
    const std::vector<int64_t> bias_codes = node.GetInts("bias_codes");
    if (!bias_codes.empty() && static_cast<int64_t>(bias_codes.size()) != g.out_channels)
      return InvalidArgument(node.Describe() + ": bias_codes has the wrong length");
    ir::AlignedBytes offsets(sizeof(int32_t) * g.out_channels);
    for (int64_t m = 0; m < g.out_channels; ++m) {
      int64_t sum = 0;
      for (int64_t i = 0; i < per_channel; ++i) sum += ohwi[m * per_channel + i];
      offsets.as<int32_t>()[m] =
          static_cast<int32_t>(sum * s.zero_code - (bias_codes.empty() ? 0 : bias_codes[m]));
    }
    const int offsets_id = graph->AddConstant(graph->UniqueName(node.name + "/zero_point_sums"),
                                              ir::HostTensor::Packed(std::move(offsets)));
    node.inputs.resize(4);
    node.inputs.push_back(id);
    node.inputs.push_back(offsets_id);
    node.attributes["lowbit_kernel"] = ir::Attribute::String(kernels::conv_family_name(family));
  }
  return Status::Ok();
}

}  // namespace lowbit::engine::ops
