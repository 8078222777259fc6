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
// constant appended after the stored inputs (with the int32 zero-point sums),
// shared read-only by every session.
//
// A residual pair (inputs 4 and 5) is two convolutions of the same codes,
// each on its own tensor's family (the activations are packed once when the
// two families read one format), into int32 sums s1 and s2; the epilogue
// below forms k[m] * s1 + s2 - sum_offset[m] and continues as the kernels'
// epilogue does.
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

// One weight tensor of a QConv node: bits, domain and compact code format.
struct WeightTensor {
  int wbits = 0;  // 0: absent (a node without a residual tensor)
  kernels::WeightDomain domain = kernels::WeightDomain::kSigned;
  WeightCodeFormat format;
};

// Stored inputs of a QConv node (see lower_quantized.cc): 4, or 6 with a
// residual pair. PrepareQuantizedConvs appends the derived ones after them.
size_t StoredInputs(const ir::Node& node) { return node.has("residual_wbits") ? 6 : 4; }

// Geometry of a QConv node at batch 1 (virtual padded input, kernel pad 0).
struct QConvShape {
  kernels::ConvGeometry geometry;
  int64_t height = 0, width = 0;  // real input
  int64_t top = 0, left = 0;
  int abits = 8;
  WeightTensor weights;   // input 1 (q1 of a pair)
  WeightTensor residual;  // input 4 (q2), wbits 0 without one
  int zero_code = 0;
  // Element strides of the input codes' logical C, H and W axes within a
  // frame (any storage order: NHWC normally; the graph input's NCHW codes
  // are read in place instead of being relaid out first).
  int64_t channel_stride = 1, row_stride = 0, column_stride = 0, frame = 0;

  bool has_residual() const { return residual.wbits > 0; }
  const WeightTensor& tensor(bool second) const { return second ? residual : weights; }
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
  s.abits = static_cast<int>(node.GetInt("abits", 8));
  // Attributes `prefix`wbits, `prefix`weight_min, `prefix`weight_domain.
  auto read_tensor = [&](const std::string& prefix, WeightTensor* t) -> Status {
    t->wbits = static_cast<int>(node.GetInt(prefix + "wbits", 8));
    if (t->wbits < 1 || t->wbits > 8)
      return InvalidArgument(node.Describe() + ": " + prefix + "wbits must be 1..8");
    const bool binary = node.GetString(prefix + "weight_domain", "signed") == "binary";
    t->domain = binary ? kernels::WeightDomain::kBinary : kernels::WeightDomain::kSigned;
    t->format = {t->wbits,
                 static_cast<int32_t>(node.GetInt(prefix + "weight_min", -(1 << (t->wbits - 1)))),
                 binary ? 2 : 1};
    return Status::Ok();
  };
  LOWBIT_RETURN_IF_ERROR(read_tensor("", &s.weights));
  if (node.has("residual_wbits")) LOWBIT_RETURN_IF_ERROR(read_tensor("residual_", &s.residual));
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

// Runs fn over `items` work items in ranges spread over the thread pool.
template <typename Args, typename Fn>
void Split(const KernelContext& context, size_t items, const Args& args, Fn fn) {
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

// The activation format a family reads (int8 and dwint8 share theirs).
ConvFamily ActivationFormat(ConvFamily family) {
  return family == ConvFamily::kDepthwiseInt8 ? ConvFamily::kInt8 : family;
}

// One weight tensor on one kernel family: the family's layouts and
// function, the packing of the codes into its activation format, and the
// convolution of packed activations into an output stage.
class FamilyConv {
 public:
  void Init(ConvFamily family, const QConvShape& s, const WeightTensor& w, const uint8_t* weights) {
    family_ = family;
    weights_ = weights;
    const kernels::KernelTable& table = kernels::kernel_table();
    const kernels::ConvGeometry& g = s.geometry;
    switch (family_) {
      case ConvFamily::kInt8Dot:
        dot_layout_ =
            kernels::make_int8_dot_activations_layout(g.in_channels, g.height, g.width, 0);
        dot_weights_ =
            kernels::make_int8_dot_weights_layout(g.out_channels, g.in_channels, g.taps());
        image_bytes_ = dot_layout_.image_bytes;
        int8_dot_fn_ = table.conv_u8s8dot.fn;
        break;
      case ConvFamily::kInt8:
      case ConvFamily::kDepthwiseInt8:
        int8_layout_ = kernels::make_int8_activations_layout(g.in_channels, g.height, g.width, 0);
        image_bytes_ = int8_layout_.image_elems * sizeof(uint16_t);
        if (family_ == ConvFamily::kInt8) {
          int8_weights_ =
              kernels::make_int8_weights_layout(g.out_channels, g.in_channels, g.taps());
          int8_fn_ = table.conv_u8s8.fn;
        } else {
          dw_weights_ = kernels::make_dw_weights_layout(g.in_channels, g.taps());
          dw_fn_ = table.dwconv_u8s8.fn;
        }
        break;
      case ConvFamily::kBitSerial:
        bit_layout_ = kernels::make_bit_planes_layout(g.in_channels, s.abits, g.height, g.width, 0);
        bit_weights_ = kernels::make_bit_serial_weights_layout(g.out_channels, g.in_channels,
                                                               g.taps(), w.wbits, w.domain);
        image_bytes_ = bit_layout_.image_words * sizeof(uint64_t);
        bitserial_fn_ = table.conv_anybits_bitserial.fn;
        break;
      case ConvFamily::kLut:
        pair_layout_ =
            kernels::make_pair_planes_layout(g.in_channels, g.height, g.width, 0, g.stride);
        lut_weights_ = kernels::make_lut_weights_layout(g.out_channels, g.in_channels, g.taps());
        image_bytes_ = pair_layout_.image_bytes;
        lut_fn_ = table.conv_w2a2_lut.fn;
        break;
      case ConvFamily::kNone:
        break;
    }
  }

  // Bytes of one frame's packed activations.
  size_t image_bytes() const { return image_bytes_; }
  // One packing of the activations serves both.
  bool SharesActivations(const FamilyConv& other) const {
    return ActivationFormat(family_) == ActivationFormat(other.family_);
  }

  // Codes of the batch -> this family's activation format at `a` (one
  // image_bytes() per frame).
  void Pack(const KernelContext& context, const uint8_t* codes, const QConvShape& s,
            void* a) const {
    switch (family_) {
      case ConvFamily::kInt8Dot:
        PackPaddedNhwc(context, codes, s, dot_layout_.padded_height, dot_layout_.padded_width,
                       dot_layout_.channel_stride, dot_layout_.image_bytes,
                       static_cast<uint8_t*>(a));
        break;
      case ConvFamily::kInt8:
      case ConvFamily::kDepthwiseInt8:
        PackPaddedNhwc(context, codes, s, int8_layout_.padded_height, int8_layout_.padded_width,
                       int8_layout_.channel_stride, int8_layout_.image_elems,
                       static_cast<uint16_t*>(a));
        break;
      case ConvFamily::kBitSerial:
        PackBitPlanes(context, codes, s, bit_layout_, static_cast<uint64_t*>(a));
        break;
      case ConvFamily::kLut:
        PackPairPlanes(context, codes, s, pair_layout_, static_cast<uint8_t*>(a));
        break;
      case ConvFamily::kNone:
        break;
    }
  }

  // The convolution of packed activations `a` (Pack) into `out`.
  void Convolve(const KernelContext& context, const kernels::ConvGeometry& g, const void* a,
                const kernels::OutputStage& out) const {
    switch (family_) {
      case ConvFamily::kInt8Dot: {
        kernels::Int8DotConvArgs args{g,
                                      static_cast<const uint8_t*>(a),
                                      dot_layout_,
                                      reinterpret_cast<const int8_t*>(weights_),
                                      dot_weights_,
                                      out,
                                      {}};
        Split(context, kernels::int8_dot_conv_work_items(args), args, int8_dot_fn_);
        break;
      }
      case ConvFamily::kInt8: {
        kernels::Int8ConvArgs args{g,
                                   static_cast<const uint16_t*>(a),
                                   int8_layout_,
                                   reinterpret_cast<const int16_t*>(weights_),
                                   int8_weights_,
                                   out,
                                   {}};
        Split(context, kernels::int8_conv_work_items(args), args, int8_fn_);
        break;
      }
      case ConvFamily::kDepthwiseInt8: {
        kernels::DwConvArgs args{g,
                                 static_cast<const uint16_t*>(a),
                                 int8_layout_,
                                 reinterpret_cast<const int16_t*>(weights_),
                                 dw_weights_,
                                 out,
                                 {}};
        Split(context, kernels::dw_conv_work_items(args), args, dw_fn_);
        break;
      }
      case ConvFamily::kBitSerial: {
        kernels::BitSerialConvArgs args{g,
                                        static_cast<const uint64_t*>(a),
                                        bit_layout_,
                                        reinterpret_cast<const uint64_t*>(weights_),
                                        bit_weights_,
                                        out,
                                        {}};
        Split(context, kernels::bitserial_conv_work_items(args), args, bitserial_fn_);
        break;
      }
      case ConvFamily::kLut: {
        kernels::LutConvArgs args{
            g, static_cast<const uint8_t*>(a), pair_layout_, weights_, lut_weights_, out, {}};
        Split(context, kernels::lut_conv_work_items(args), args, lut_fn_);
        break;
      }
      case ConvFamily::kNone:
        break;
    }
  }

 private:
  ConvFamily family_ = ConvFamily::kNone;
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

int64_t RoundUp64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

class QConvKernel final : public Kernel {
 public:
  Status Init(const ir::Graph& graph, const ir::Node& node) {
    LOWBIT_ASSIGN_OR_RETURN(shape_, ReadShape(graph, node));
    const bool pair = shape_.has_residual();
    const size_t stored = StoredInputs(node);
    const ConvFamily family = FamilyFromName(node.GetString("lowbit_kernel", ""));
    const ConvFamily residual_family =
        pair ? FamilyFromName(node.GetString("lowbit_residual_kernel", "")) : ConvFamily::kNone;
    if (family == ConvFamily::kNone || (pair && residual_family == ConvFamily::kNone) ||
        node.inputs.size() < stored + (pair ? 3 : 2))
      return Internal(node.Describe() + ": weights were not prepared for a kernel family");
    const ir::Value& scale = graph.values[node.inputs[2]];
    const ir::Value& bias = graph.values[node.inputs[3]];
    if (!scale.is_constant() || !bias.is_constant())
      return Internal(node.Describe() + ": epilogue scale and bias must be constants");
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
    e.sum_offset = graph.values[node.inputs[stored + 1]].constant->bytes.as<int32_t>();
    out_codes_ = node.GetInt("out_codes", 0) != 0;
    if (out_codes_) {
      // Rounds y / out_scale exactly as QuantizeLinear does (epilogue.h).
      e.out_scale = node.GetFloat("out_scale", 1.0f);
      e.out_inv_scale = 1.0f / e.out_scale;
      e.out_zero_point = static_cast<int>(node.GetInt("out_zero_point", 0));
      e.out_bits = static_cast<int>(node.GetInt("out_bits", 8));
      if (!(e.out_scale > 0.0f) || e.out_bits < 1 || e.out_bits > 8)
        return InvalidArgument(node.Describe() + ": malformed output quantization");
    }
    main_.Init(family, shape_, shape_.weights,
               graph.values[node.inputs[stored]].constant->bytes.data());
    if (pair) {
      residual_.Init(residual_family, shape_, shape_.residual,
                     graph.values[node.inputs[stored + 2]].constant->bytes.data());
      const ir::Value& multiplier = graph.values[node.inputs[5]];
      const int64_t channels = shape_.geometry.out_channels;
      if (!multiplier.is_constant() || multiplier.constant->size() != channels)
        return InvalidArgument(node.Describe() + ": the residual multiplier needs one per channel");
      multiplier_.assign(multiplier.constant->ints.begin(), multiplier.constant->ints.end());
      shared_activations_ = main_.SharesActivations(residual_);
    }
    // Per frame: [main activations][residual activations unless shared]
    // [main sums (float output or pair)][residual sums (pair)], each 64-byte
    // aligned; a batch is N of each region in turn.
    const int64_t sums = RoundUp64(OutputElements() * int64_t(sizeof(int32_t)));
    activations_bytes_ = RoundUp64(static_cast<int64_t>(main_.image_bytes()));
    residual_activations_bytes_ =
        pair && !shared_activations_ ? RoundUp64(static_cast<int64_t>(residual_.image_bytes())) : 0;
    sums_bytes_ = !out_codes_ || pair ? sums : 0;
    residual_sums_bytes_ = pair ? sums : 0;
    return Status::Ok();
  }

  int64_t workspace_bytes(int64_t batch) const override {
    return (activations_bytes_ + residual_activations_bytes_ + sums_bytes_ + residual_sums_bytes_) *
           batch;
  }

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const uint8_t* codes = static_cast<const uint8_t*>(inputs[0]);
    kernels::ConvGeometry g = shape_.geometry;
    g.batch = static_cast<int>(context.batch);
    char* base = static_cast<char*>(context.workspace);
    const int64_t n = context.batch;
    void* activations = base;
    char* residual_activations = base + activations_bytes_ * n;
    auto* sums = reinterpret_cast<int32_t*>(residual_activations + residual_activations_bytes_ * n);
    auto* residual_sums =
        reinterpret_cast<int32_t*>(reinterpret_cast<char*>(sums) + sums_bytes_ * n);
    main_.Pack(context, codes, shape_, activations);
    kernels::OutputStage out;
    out.epilogue = epilogue_;
    if (!shape_.has_residual()) {
      // Float outputs: the kernels write exact int32 sums (their fastest
      // path), and Epilogue below turns them into floats in bulk.
      out.destination = out_codes_ ? kernels::Destination::kCodes : kernels::Destination::kInt32;
      out.data = out_codes_ ? outputs[0] : sums;
      main_.Convolve(context, g, activations, out);
      if (!out_codes_) Epilogue(context, sums, nullptr, outputs[0]);
      return Status::Ok();
    }
    if (!shared_activations_) residual_.Pack(context, codes, shape_, residual_activations);
    out.destination = kernels::Destination::kInt32;
    out.data = sums;
    main_.Convolve(context, g, activations, out);
    out.data = residual_sums;
    residual_.Convolve(context, g, shared_activations_ ? activations : residual_activations, out);
    Epilogue(context, sums, residual_sums, outputs[0]);
    return Status::Ok();
  }

 private:
  int64_t OutputElements() const {
    const kernels::ConvGeometry& g = shape_.geometry;
    return int64_t(g.out_height()) * g.out_width() * g.out_channels;
  }

  // The kernels' epilogue (epilogue.h) over int32 sums [N * OH * OW][Cout],
  // in the same float operations and order, in rows the compiler
  // vectorises. Per channel c of a pixel, in wrapping int32 arithmetic
  // (exact whenever the true result fits; BuildQuantizedConv checks that it
  // does for a pair):
  //   d = s[c] - sum_offset[c]                        one tensor
  //   d = k[c] * s[c] + r[c] - sum_offset[c]          a pair (r: residual sums)
  //   y = float(d) * scale[c] + bias[c], then the activation
  // out: y (float32), or with out_codes the u8 code
  //   clamp(round_half_even(y / out_scale) + out_zero_point, 0, 2^out_bits - 1)
  // (kernels::requantize). The lowering fuses only Relu, LeakyRelu and Clip.
  void Epilogue(const KernelContext& context, const int32_t* sums, const int32_t* residual_sums,
                void* out) const {
    const kernels::Epilogue& e = epilogue_;
    const int64_t pixels = OutputElements() / shape_.geometry.out_channels * context.batch;
    constexpr int64_t kPixelsPerTask = 64;
    ParallelForRanges(context, pixels, kPixelsPerTask, [&](int64_t begin, int64_t end) {
      // The activation is applied where y is stored (an unconditional
      // store: the loops vectorise with a select, not a branch per value).
      const float alpha = e.alpha, clip_min = e.clip_min, clip_max = e.clip_max;
      switch (e.activation) {
        case kernels::Activation::kRelu:
          Rows(begin, end, sums, residual_sums, out, [](float y) { return y < 0.0f ? 0.0f : y; });
          break;
        case kernels::Activation::kLeakyRelu:
          // For 0 < alpha <= 1, max(y, y * alpha) is y < 0 ? y * alpha : y
          // exactly (signed zeros, infinities and NaN included) with the
          // multiply outside the select: gcc keeps a possibly trapping
          // multiply under a branch, unvectorised, in the other form.
          if (alpha > 0.0f && alpha <= 1.0f) {
            Rows(begin, end, sums, residual_sums, out, [alpha](float y) {
              const float scaled = y * alpha;
              return y < scaled ? scaled : y;
            });
          } else {
            Rows(begin, end, sums, residual_sums, out,
                 [alpha](float y) { return y < 0.0f ? y * alpha : y; });
          }
          break;
        case kernels::Activation::kClip:
          Rows(begin, end, sums, residual_sums, out, [clip_min, clip_max](float y) {
            return y < clip_min ? clip_min : (y > clip_max ? clip_max : y);
          });
          break;
        default:  // kNone; the lowering fuses only the activations above
          Rows(begin, end, sums, residual_sums, out, [](float y) { return y; });
          break;
      }
    });
  }

  // Epilogue of output pixels [begin, end).
  template <typename Activate>
  void Rows(int64_t begin, int64_t end, const int32_t* sums, const int32_t* residual_sums,
            void* out, Activate activate) const {
    const kernels::Epilogue& e = epilogue_;
    const int64_t channels = shape_.geometry.out_channels;
    // Locals, so that the stores (u8 codes alias anything) force no reloads.
    const float* const scale = e.scale;
    const float* const bias = e.bias;
    const int32_t* const offset = e.sum_offset;
    const int32_t* const k = multiplier_.data();
    const bool codes = out_codes_;
    // Codes: y / out_scale limited to one step beyond the codes' range
    // [-zp, max - zp] (rounding is monotonic and the clamp decides there),
    // where adding and subtracting 1.5 * 2^23 rounds half to even exactly.
    const float out_scale = e.out_scale;
    const int zero_point = e.out_zero_point, max_code = (1 << e.out_bits) - 1;
    const float lo = float(-zero_point - 1), hi = float(max_code - zero_point + 1);
    const bool magic_rounding = std::abs(lo) < 0x1p22f && std::abs(hi) < 0x1p22f;
    constexpr int64_t kBlock = 64;  // channels per float row of codes output
    float block[kBlock];
    for (int64_t p = begin; p < end; ++p) {
      const int32_t* s = sums + p * channels;
      const int32_t* r = residual_sums ? residual_sums + p * channels : nullptr;
      for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
        const int64_t count = std::min(kBlock, channels - c0);
        float* y = codes ? block : static_cast<float*>(out) + p * channels + c0;
        if (r != nullptr) {
          for (int64_t i = 0; i < count; ++i) {
            const int64_t c = c0 + i;
            const uint32_t d =
                uint32_t(k[c]) * uint32_t(s[c]) + uint32_t(r[c]) - uint32_t(offset[c]);
            y[i] = activate(float(int32_t(d)) * scale[c] + bias[c]);
          }
        } else {
          for (int64_t i = 0; i < count; ++i) {
            const int64_t c = c0 + i;
            const uint32_t d = uint32_t(s[c]) - uint32_t(offset[c]);
            y[i] = activate(float(int32_t(d)) * scale[c] + bias[c]);
          }
        }
        if (!codes) continue;
        uint8_t* q = static_cast<uint8_t*>(out) + p * channels + c0;
        if (!magic_rounding) {
          for (int64_t i = 0; i < count; ++i) q[i] = kernels::requantize(e, y[i]);
          continue;
        }
        for (int64_t i = 0; i < count; ++i) {
          float v = y[i] / out_scale;
          v = v > lo ? (v < hi ? v : hi) : lo;  // NaN -> lo: code 0, as kernels::requantize
          v = (v + 0x1.8p23f) - 0x1.8p23f;
          int code = int(v) + zero_point;
          code = code < 0 ? 0 : (code > max_code ? max_code : code);
          q[i] = static_cast<uint8_t>(code);
        }
      }
    }
  }

  QConvShape shape_;
  kernels::Epilogue epilogue_;
  bool out_codes_ = false;
  FamilyConv main_, residual_;
  std::vector<int32_t> multiplier_;  // [Cout] k[m] of a pair
  bool shared_activations_ = false;
  // Per-frame workspace regions (Init).
  int64_t activations_bytes_ = 0, residual_activations_bytes_ = 0;
  int64_t sums_bytes_ = 0, residual_sums_bytes_ = 0;
};

// Packs one weight tensor `w` of the node for `family`; empty bytes when the
// family cannot.
ir::AlignedBytes PackForFamily(ConvFamily family, const QConvShape& s, const WeightTensor& w,
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
                                                             g.taps(), w.wbits, w.domain);
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

// Attribute names of a tensor's kernel choice.
std::string KernelAttribute(bool residual) {
  return residual ? "lowbit_residual_kernel" : "lowbit_kernel";
}

// The integer values of compact weight input `index` (OHWI), checked.
StatusOr<std::vector<int8_t>> UnpackInput(const ir::Graph& graph, const ir::Node& node,
                                          size_t index, const QConvShape& s,
                                          const WeightTensor& w) {
  const ir::Value& compact = graph.values[node.inputs[index]];
  if (!compact.is_constant() || compact.constant->dtype != ir::DataType::kPacked)
    return InvalidArgument(node.Describe() + ": weights are not a packed constant");
  const kernels::ConvGeometry& g = s.geometry;
  const int64_t count = int64_t(g.out_channels) * g.taps() * (g.in_channels / g.groups);
  if (static_cast<int64_t>(compact.constant->bytes.size()) < PackedWeightBytes(count, w.wbits))
    return InvalidArgument(node.Describe() + ": packed weights are truncated");
  return UnpackWeightValues(compact.constant->bytes.data(), count, w.format);
}

// The node's tensor packed for its recorded (or, when absent, a newly
// chosen) family, as a new kPacked constant; the family is recorded.
StatusOr<int> PrepareTensor(ir::Graph* graph, ir::Node& node, const QConvShape& s, bool residual,
                            const std::vector<int8_t>& ohwi) {
  ConvFamily family = FamilyFromName(node.GetString(KernelAttribute(residual), ""));
  if (family == ConvFamily::kNone) {
    LOWBIT_ASSIGN_OR_RETURN(QConvChoice choice, ChooseQConvFamily(*graph, node, residual));
    family = choice.family;
  }
  ir::AlignedBytes packed = PackForFamily(family, s, s.tensor(residual), ohwi);
  if (packed.size() == 0)
    return Unimplemented(node.Describe() + ": kernel family " + kernels::conv_family_name(family) +
                         " cannot run its " + (residual ? "residual " : "") + "weights");
  node.attributes[KernelAttribute(residual)] =
      ir::Attribute::String(kernels::conv_family_name(family));
  const std::string name = graph->UniqueName(node.name + "/" + (residual ? "residual_" : "") +
                                             kernels::conv_family_name(family));
  return graph->AddConstant(name, ir::HostTensor::Packed(std::move(packed)));
}

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateQConvKernel(const ir::Graph& graph, const ir::Node& node) {
  auto kernel = std::make_unique<QConvKernel>();
  LOWBIT_RETURN_IF_ERROR(kernel->Init(graph, node));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

StatusOr<QConvChoice> ChooseQConvFamily(const ir::Graph& graph, const ir::Node& node,
                                        bool residual) {
  LOWBIT_ASSIGN_OR_RETURN(QConvShape s, ReadShape(graph, node));
  if (residual && !s.has_residual())
    return InvalidArgument(node.Describe() + " has no residual weights");
  const WeightTensor& w = s.tensor(residual);
  const kernels::KernelTable& table = kernels::kernel_table();
  QConvChoice choice;
  if (const char* forced = std::getenv("LOWBIT_CONV_FAMILY")) {
    const ConvFamily family = FamilyFromName(forced);
    if (family == ConvFamily::kNone)
      return InvalidArgument(std::string("LOWBIT_CONV_FAMILY='") + forced +
                             "' is not one of int8, int8dot, dwint8, lut, bitserial");
    if (kernels::estimate_conv_cycles(family, s.geometry, w.wbits, s.abits, w.domain, table) >= 0) {
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
    const Key key{g.height,      g.width,  g.in_channels, g.out_channels,         g.kernel_h,
                  g.kernel_w,    g.stride, g.groups,      w.wbits * 16 + s.abits, int(w.domain),
                  int(table.isa)};
    std::lock_guard<std::mutex> lock(mutex);
    auto it = measured.find(key);
    if (it == measured.end()) {
      const kernels::MeasuredConvChoice m =
          kernels::measure_conv_kernels(g, w.wbits, s.abits, w.domain, table);
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
      kernels::choose_conv_kernel(s.geometry, w.wbits, s.abits, w.domain, table);
  if (modeled.family == ConvFamily::kNone)
    return Unimplemented(node.Describe() + ": no kernel family runs this convolution");
  choice.family = modeled.family;
  choice.how = "cost model";
  return choice;
}

Status ChooseQConvKernels(ir::Graph* graph) {
  for (ir::Node& node : graph->nodes) {
    if (node.op_type != "lowbit.QConv") continue;
    for (bool residual : {false, true}) {
      if (residual && !node.has("residual_wbits")) continue;
      LOWBIT_ASSIGN_OR_RETURN(QConvChoice choice, ChooseQConvFamily(*graph, node, residual));
      const std::string key = KernelAttribute(residual);
      node.attributes[key] = ir::Attribute::String(kernels::conv_family_name(choice.family));
      node.attributes[key + "_choice"] = ir::Attribute::String(choice.how);
      if (choice.measured_ns > 0)
        node.attributes[key + "_ns"] = ir::Attribute::Float(static_cast<float>(choice.measured_ns));
    }
  }
  return Status::Ok();
}

Status PrepareQuantizedConvs(ir::Graph* graph) {
  for (ir::Node& node : graph->nodes) {
    if (node.op_type != "lowbit.QConv") continue;
    LOWBIT_ASSIGN_OR_RETURN(QConvShape s, ReadShape(*graph, node));
    const size_t stored = StoredInputs(node);
    if (node.inputs.size() > stored) continue;  // already prepared
    if (node.inputs.size() != stored)
      return InvalidArgument(node.Describe() + " has " + std::to_string(node.inputs.size()) +
                             " inputs, not " + std::to_string(stored));
    LOWBIT_ASSIGN_OR_RETURN(const std::vector<int8_t> ohwi,
                            UnpackInput(*graph, node, 1, s, s.weights));
    LOWBIT_ASSIGN_OR_RETURN(const int weights, PrepareTensor(graph, node, s, false, ohwi));
    // A pair: q2 (input 4) and the multipliers k (input 5, int32 [M] >= 1).
    std::vector<int8_t> residual_ohwi;
    std::vector<int64_t> multiplier(s.geometry.out_channels, 1);
    int residual_weights = ir::kNoValue;
    if (s.has_residual()) {
      LOWBIT_ASSIGN_OR_RETURN(residual_ohwi, UnpackInput(*graph, node, 4, s, s.residual));
      const ir::Value& k = graph->values[node.inputs[5]];
      if (!k.is_constant() || k.constant->size() != s.geometry.out_channels ||
          *std::min_element(k.constant->ints.begin(), k.constant->ints.end()) < 1)
        return InvalidArgument(node.Describe() +
                               ": the residual multiplier needs one integer >= 1 per channel");
      multiplier = k.constant->ints;
      LOWBIT_ASSIGN_OR_RETURN(residual_weights, PrepareTensor(graph, node, s, true, residual_ohwi));
    }
    // input_zero_point * (k[m] * sum(q1[m]) + sum(q2[m])) over every tap and
    // input channel: the padding holds the zero point's code, so every tap
    // contributes. An integer bias (attribute bias_codes) is added here too:
    // the float epilogue then starts from float(s - zp * sum(w) + b). Formed
    // in int64 and stored modulo 2^32 (the runtime's sums wrap alike).
    const kernels::ConvGeometry& g = s.geometry;
    const int64_t per_channel = static_cast<int64_t>(ohwi.size()) / g.out_channels;
    const std::vector<int64_t> bias_codes = node.GetInts("bias_codes");
    if (!bias_codes.empty() && static_cast<int64_t>(bias_codes.size()) != g.out_channels)
      return InvalidArgument(node.Describe() + ": bias_codes has the wrong length");
    ir::AlignedBytes offsets(sizeof(int32_t) * g.out_channels);
    for (int64_t m = 0; m < g.out_channels; ++m) {
      int64_t sum = 0;
      for (int64_t i = 0; i < per_channel; ++i) sum += ohwi[m * per_channel + i];
      sum *= multiplier[m];
      for (int64_t i = 0; i < per_channel && s.has_residual(); ++i)
        sum += residual_ohwi[m * per_channel + i];
      offsets.as<int32_t>()[m] = static_cast<int32_t>(
          static_cast<uint32_t>(sum * s.zero_code - (bias_codes.empty() ? 0 : bias_codes[m])));
    }
    const int offsets_id = graph->AddConstant(graph->UniqueName(node.name + "/zero_point_sums"),
                                              ir::HostTensor::Packed(std::move(offsets)));
    node.inputs.push_back(weights);
    node.inputs.push_back(offsets_id);
    if (s.has_residual()) node.inputs.push_back(residual_weights);
  }
  return Status::Ok();
}

}  // namespace lowbit::engine::ops
