// Fluent tester for the convolution kernel families: generates codes and
// weight values from a fixed seed, runs kernels/ref (int64) and the kernel
// under test, and asserts exact equality of the destination (int32 sums,
// float epilogue values, requantized codes, or the next layer's packed
// planes, compared byte for byte against packing the reference codes).
// With out_scale set (exact requantization) it also counts, from the
// reference values, how many codes sit at or near rounding ties
// (tie_stats()), so a test can assert that its data reaches them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "conv_ref.h"
#include "lowbit/kernels/conv.h"
#include "lowbit/kernels/pack.h"

namespace lowbit::kernels::testing {

// A square layer with "same" padding (kernel / 2), batch 1.
inline ConvGeometry Conv(int cin, int cout, int size, int kernel, int stride, int groups = 1) {
  ConvGeometry g;
  g.height = g.width = size;
  g.in_channels = cin;
  g.out_channels = cout;
  g.kernel_h = g.kernel_w = kernel;
  g.stride = stride;
  g.pad = kernel / 2;
  g.groups = groups;
  return g;
}

enum class Fill {
  kRandom,
  kMaxCodesMinWeights,  // every activation at 2^abits - 1, every weight at its minimum
  kMaxCodesMaxWeights,  // every activation at 2^abits - 1, every weight at its maximum
};

class ConvTester {
 public:
  ConvTester& batch(int v) { g_.batch = v; return *this; }
  ConvTester& cin(int v) { g_.in_channels = v; return *this; }
  ConvTester& cout(int v) { g_.out_channels = v; return *this; }
  ConvTester& h(int v) { g_.height = v; return *this; }
  ConvTester& w(int v) { g_.width = v; return *this; }
  ConvTester& kernel(int v) { g_.kernel_h = g_.kernel_w = v; return *this; }
  ConvTester& kernel(int kh, int kw) { g_.kernel_h = kh; g_.kernel_w = kw; return *this; }
  ConvTester& stride(int v) { g_.stride = v; return *this; }
  ConvTester& pad(int v) { g_.pad = v; return *this; }
  ConvTester& wbits(int v) { wbits_ = v; return *this; }
  ConvTester& abits(int v) { abits_ = v; return *this; }
  ConvTester& domain(WeightDomain v) { domain_ = v; return *this; }
  ConvTester& seed(uint32_t v) { seed_ = v; return *this; }
  ConvTester& fill(Fill v) { fill_ = v; return *this; }
  ConvTester& destination(Destination v) { destination_ = v; return *this; }
  ConvTester& activation(Activation v) { activation_ = v; return *this; }
  ConvTester& out_bits(int v) { out_bits_ = v; return *this; }
  // Requantization of kCodes / plane destinations: zero point (default 0 with
  // ReLU, else 1), multiplier (default (2^out_bits - 1) / 2); bias(false)
  // passes no bias array.
  ConvTester& zero_point(int v) { zero_point_ = v; has_zero_point_ = true; return *this; }
  ConvTester& out_inv_scale(float v) {
    out_inv_scale_ = v;
    has_out_inv_scale_ = true;
    return *this;
  }
  ConvTester& bias(bool v) { bias_ = v; return *this; }
  // Exact requantization: codes round_half_even(y / v) (Epilogue::out_scale).
  ConvTester& out_scale(float v) { out_scale_ = v; return *this; }
  // Epilogue::sum_offset[c] = v * sum(weights of c): the sums of codes with
  // activation zero point v, centred as a fake-quantized layer's.
  ConvTester& activation_zero_point(int v) {
    activation_zero_point_ = v;
    has_activation_zero_point_ = true;
    return *this;
  }
  // Random codes in [lo, hi] (clamped to the code range) and, INT8 only,
  // random weights in [lo, hi] instead of the full ranges.
  ConvTester& code_range(int lo, int hi) { code_lo_ = lo, code_hi_ = hi; return *this; }
  ConvTester& weight_range(int lo, int hi) { weight_lo_ = lo, weight_hi_ = hi; return *this; }
  // Scales that put y / out_scale on or next to half-integers:
  // scale[c] = fl(out_scale * m / denominator) (m = 1 or 3) moved by -1, 0
  // or +1 ulp, bias[c] = fl(out_scale * (c % 5 - 2)) (a whole number of
  // codes). With a power-of-two out_scale and denominator, the unmoved
  // channels hit exact ties y / out_scale = k + 1/2 wherever d * m / denominator
  // has a half; the moved ones land within a few ulps of them.
  ConvTester& tie_scales(int denominator) { tie_denominator_ = denominator; return *this; }
  // Bounds of Activation::kClip (default [-0.5, 1]).
  ConvTester& clip(float lo, float hi) { clip_min_ = lo, clip_max_ = hi; return *this; }

  // Codes of the last Test whose reference values lie at or near rounding
  // ties (exact requantization only; values inside the code range).
  struct TieStats {
    size_t ties = 0;              // fl(y / out_scale) is exactly k + 1/2
    size_t product_differs = 0;   // rne(y * fl(1 / out_scale)) != rne(fl(y / out_scale))
    size_t real_differs = 0;      // rne(real y / out_scale) != rne(fl(y / out_scale))
  };
  const TieStats& tie_stats() const { return tie_stats_; }
  // Stride of the consumer of a kPairPlanes destination (its phase split).
  ConvTester& next_stride(int v) { next_stride_ = v; return *this; }
  // INT8 mode: u8 codes 0..255 and s8 weights -128..127.
  ConvTester& int8() { wbits_ = abits_ = 8; return *this; }
  // Depthwise: groups = out channels = in channels.
  ConvTester& depthwise() { g_.groups = g_.in_channels; g_.out_channels = g_.in_channels; return *this; }
  // Run the kernel as `parts` work ranges (see WorkRange), last range first;
  // with threads(true) the ranges run concurrently on std::threads.
  ConvTester& splits(int parts) { splits_ = parts; return *this; }
  ConvTester& threads(bool v) { threads_ = v; return *this; }

  std::string Describe() const {
    std::ostringstream s;
    s << "N" << g_.batch << " Cin" << g_.in_channels << " Cout" << g_.out_channels << " " << g_.height
      << "x" << g_.width << " k" << g_.kernel_h << "x" << g_.kernel_w << " s" << g_.stride << " p"
      << g_.pad << " W" << wbits_ << "A" << abits_ << " domain" << int(domain_) << " fill"
      << int(fill_) << " dest" << int(destination_) << " act" << int(activation_) << " bits"
      << out_bits_ << " zp" << MakeEpilogue(Inputs{}).out_zero_point << " inv"
      << MakeEpilogue(Inputs{}).out_inv_scale << " out_scale" << out_scale_ << " zp_a"
      << (has_activation_zero_point_ ? std::to_string(activation_zero_point_) : "-") << " codes"
      << code_lo_ << ".." << code_hi_ << " weights" << weight_lo_ << ".." << weight_hi_
      << " tie" << tie_denominator_ << " clip" << clip_min_ << ".." << clip_max_ << (bias_ ? "" : " nobias") << " groups"
      << g_.groups << " splits" << splits_ << (threads_ ? " threads" : "") << " seed" << seed_;
    return s.str();
  }

  void Test(LutConvFn fn) const {
    SCOPED_TRACE(Describe());
    Inputs in = Generate();
    LutConvArgs args;
    args.geometry = g_;
    args.activation_layout =
        make_pair_planes_layout(g_.in_channels, g_.height, g_.width, g_.pad, g_.stride);
    std::vector<uint8_t> planes(args.activation_layout.image_bytes * g_.batch, 0);
    pack_pair_planes(in.codes.data(), g_.batch, args.activation_layout, planes.data());
    args.activations = planes.data();
    args.table_layout = make_lut_weights_layout(g_.out_channels, g_.in_channels, g_.taps());
    std::vector<uint8_t> tables(args.table_layout.bytes);
    pack_lut_weights(in.weights.data(), args.table_layout, tables.data());
    args.tables = tables.data();
    Outputs out = MakeOutputs();
    out.stage.epilogue = MakeEpilogue(in);
    args.output = out.stage;
    RunSplit(fn, args, lut_conv_work_items(args), size_t(args.table_layout.cout_blocks));
    Verify(in, out);
  }

  void Test(Int8ConvFn fn) const {
    SCOPED_TRACE(Describe());
    EXPECT_EQ(wbits_, 8) << "Int8 kernels need .int8()";
    Inputs in = Generate();
    Int8ConvArgs args;
    args.geometry = g_;
    args.activation_layout = make_int8_activations_layout(g_.in_channels, g_.height, g_.width, g_.pad);
    std::vector<uint16_t> acts(args.activation_layout.image_elems * g_.batch, 0);
    pack_int8_activations(in.codes.data(), g_.batch, args.activation_layout, acts.data());
    args.activations = acts.data();
    args.weight_layout = make_int8_weights_layout(g_.out_channels, g_.in_channels, g_.taps());
    std::vector<int16_t> w(args.weight_layout.elems);
    pack_int8_weights(in.weights.data(), args.weight_layout, w.data());
    args.weights = w.data();
    Outputs out = MakeOutputs();
    out.stage.epilogue = MakeEpilogue(in);
    args.output = out.stage;
    RunSplit(fn, args, int8_conv_work_items(args), size_t(args.weight_layout.cout_blocks));
    Verify(in, out);
  }

  void Test(Int8DotConvFn fn) const {
    SCOPED_TRACE(Describe());
    EXPECT_EQ(wbits_, 8) << "Int8 kernels need .int8()";
    Inputs in = Generate();
    Int8DotConvArgs args;
    args.geometry = g_;
    args.activation_layout =
        make_int8_dot_activations_layout(g_.in_channels, g_.height, g_.width, g_.pad);
    std::vector<uint8_t> acts(args.activation_layout.image_bytes * g_.batch, 0);
    pack_int8_dot_activations(in.codes.data(), g_.batch, args.activation_layout, acts.data());
    args.activations = acts.data();
    args.weight_layout = make_int8_dot_weights_layout(g_.out_channels, g_.in_channels, g_.taps());
    std::vector<int8_t> w(args.weight_layout.bytes);
    pack_int8_dot_weights(in.weights.data(), args.weight_layout, w.data());
    args.weights = w.data();
    Outputs out = MakeOutputs();
    out.stage.epilogue = MakeEpilogue(in);
    args.output = out.stage;
    RunSplit(fn, args, int8_dot_conv_work_items(args), size_t(args.weight_layout.cout_blocks));
    Verify(in, out);
  }

  // Both INT8 conv families (16-bit and byte formats) on the same case.
  void Test(Int8ConvFn fn, Int8DotConvFn dot_fn) const {
    Test(fn);
    Test(dot_fn);
  }

  void Test(DwConvFn fn) const {
    SCOPED_TRACE(Describe());
    EXPECT_EQ(wbits_, 8) << "depthwise kernels need .int8()";
    EXPECT_EQ(g_.groups, g_.in_channels) << "depthwise kernels need .depthwise()";
    Inputs in = Generate();
    DwConvArgs args;
    args.geometry = g_;
    args.activation_layout = make_int8_activations_layout(g_.in_channels, g_.height, g_.width, g_.pad);
    std::vector<uint16_t> acts(args.activation_layout.image_elems * g_.batch, 0);
    pack_int8_activations(in.codes.data(), g_.batch, args.activation_layout, acts.data());
    args.activations = acts.data();
    args.weight_layout = make_dw_weights_layout(g_.in_channels, g_.taps());
    std::vector<int16_t> w(args.weight_layout.elems);
    pack_dw_weights(in.weights.data(), args.weight_layout, w.data());
    args.weights = w.data();
    Outputs out = MakeOutputs();
    out.stage.epilogue = MakeEpilogue(in);
    args.output = out.stage;
    RunSplit(fn, args, dw_conv_work_items(args), size_t(args.weight_layout.channel_blocks));
    Verify(in, out);
  }

  void Test(BitSerialConvFn fn) const {
    SCOPED_TRACE(Describe());
    Inputs in = Generate();
    BitSerialConvArgs args;
    args.geometry = g_;
    args.activation_layout =
        make_bit_planes_layout(g_.in_channels, abits_, g_.height, g_.width, g_.pad);
    std::vector<uint64_t> planes(args.activation_layout.image_words * g_.batch, 0);
    pack_bit_planes(in.codes.data(), g_.batch, args.activation_layout, planes.data());
    args.activations = planes.data();
    args.weight_layout = make_bit_serial_weights_layout(g_.out_channels, g_.in_channels,
                                                        g_.taps(), wbits_, domain_);
    std::vector<uint64_t> wplanes(args.weight_layout.total_words);
    pack_bit_serial_weights(in.weights.data(), args.weight_layout, wplanes.data());
    args.weights = wplanes.data();
    Outputs out = MakeOutputs();
    out.stage.epilogue = MakeEpilogue(in);
    args.output = out.stage;
    RunSplit(fn, args, bitserial_conv_work_items(args), size_t(args.weight_layout.cout_blocks));
    Verify(in, out);
  }

 private:
  struct Inputs {
    std::vector<uint8_t> codes;
    std::vector<int8_t> weights;
    std::vector<float> scale, bias;
    std::vector<int32_t> sum_offset;  // empty: none
  };
  struct Outputs {
    OutputStage stage;
    std::vector<int32_t> i32;
    std::vector<float> f32;
    std::vector<uint8_t> bytes;
    std::vector<uint64_t> words;
  };

  // Runs fn over splits_ ranges (bounds multiples of `granule` for kBitPlanes),
  // the last range first, or concurrently with threads_.
  template <typename Args>
  void RunSplit(void (*fn)(const Args&), Args args, size_t items, size_t bit_plane_granule) const {
    if (splits_ <= 1) {
      fn(args);
      return;
    }
    const size_t granule = destination_ == Destination::kBitPlanes ? bit_plane_granule : 1;
    std::vector<Args> parts;
    for (int p = 0; p < splits_; ++p) {
      parts.push_back(args);
      parts.back().work = work_range(items, splits_, p, granule);
    }
    if (threads_) {
      std::vector<std::thread> pool;
      for (const Args& a : parts) pool.emplace_back([fn, &a] { fn(a); });
      for (std::thread& t : pool) t.join();
    } else {
      for (int p = splits_ - 1; p >= 0; --p) fn(parts[size_t(p)]);
    }
  }

  size_t OutputCount() const {
    return size_t(g_.batch) * g_.out_height() * g_.out_width() * g_.out_channels;
  }

  Inputs Generate() const {
    Inputs in;
    std::mt19937 rng(seed_);
    const WeightCoding coding =
        wbits_ == 8 ? WeightCoding{1, -128, -128, 127} : weight_coding(domain_, wbits_);
    const int max_code = (1 << abits_) - 1;
    in.codes.resize(size_t(g_.batch) * g_.height * g_.width * g_.in_channels);
    in.weights.resize(size_t(g_.out_channels) * g_.taps() * (g_.in_channels / g_.groups));
    std::uniform_int_distribution<int> code(std::clamp(code_lo_, 0, max_code),
                                            std::clamp(code_hi_, 0, max_code));
    std::uniform_int_distribution<int> q(0, (coding.max_value - coding.offset) / coding.step);
    EXPECT_TRUE(wbits_ == 8 || (weight_lo_ == -128 && weight_hi_ == 127))
        << "weight_range needs .int8()";
    std::uniform_int_distribution<int> weight(weight_lo_, weight_hi_);
    for (auto& c : in.codes) c = uint8_t(fill_ == Fill::kRandom ? code(rng) : max_code);
    for (auto& w : in.weights) {
      switch (fill_) {
        case Fill::kRandom:
          w = int8_t(wbits_ == 8 ? weight(rng) : coding.step * q(rng) + coding.offset);
          break;
        case Fill::kMaxCodesMinWeights: w = int8_t(coding.min_value); break;
        case Fill::kMaxCodesMaxWeights: w = int8_t(coding.max_value); break;
      }
    }
    // Scales spread the outputs over the code range; biases shift them.
    std::uniform_real_distribution<float> unit(0.5f, 1.5f), shift(-1.0f, 1.0f);
    const float spread = std::sqrt(float(g_.taps() * g_.in_channels / g_.groups)) * max_code *
                         (wbits_ == 8 ? 64.0f : 1.0f);
    for (int c = 0; c < g_.out_channels; ++c) {
      in.scale.push_back(unit(rng) / spread);
      in.bias.push_back(shift(rng));
    }
    if (tie_denominator_ > 0) {
      const float unit_scale = out_scale_ > 0.0f ? out_scale_ : 1.0f;
      for (int c = 0; c < g_.out_channels; ++c) {
        const float m = c % 2 ? 3.0f : 1.0f;
        float v = unit_scale * m / float(tie_denominator_);
        if (c % 3 != 1) v = std::nextafter(v, c % 3 == 0 ? 0.0f : 1.0f);
        in.scale[size_t(c)] = v;
        in.bias[size_t(c)] = unit_scale * float(c % 5 - 2);
      }
    }
    if (has_activation_zero_point_) {
      const size_t per_channel = in.weights.size() / size_t(g_.out_channels);
      for (int c = 0; c < g_.out_channels; ++c) {
        int64_t sum = 0;
        for (size_t k = 0; k < per_channel; ++k) sum += in.weights[size_t(c) * per_channel + k];
        in.sum_offset.push_back(int32_t(sum * activation_zero_point_));
      }
    }
    return in;
  }

  Epilogue MakeEpilogue(const Inputs& in) const {
    Epilogue e;
    e.scale = in.scale.data();
    e.bias = bias_ ? in.bias.data() : nullptr;
    e.sum_offset = in.sum_offset.empty() ? nullptr : in.sum_offset.data();
    e.out_scale = out_scale_;
    e.activation = activation_;
    e.alpha = 0.125f;
    e.clip_min = clip_min_;
    e.clip_max = clip_max_;
    e.out_bits = out_bits_;
    e.out_inv_scale = has_out_inv_scale_ ? out_inv_scale_ : float((1 << out_bits_) - 1) / 2.0f;
    e.out_zero_point = has_zero_point_ ? zero_point_ : activation_ == Activation::kRelu ? 0 : 1;
    return e;
  }

  Outputs MakeOutputs() const {
    Outputs out;
    out.stage.destination = destination_;
    const int oh = g_.out_height(), ow = g_.out_width();
    switch (destination_) {
      case Destination::kInt32:
        out.i32.assign(OutputCount(), -1);
        out.stage.data = out.i32.data();
        break;
      case Destination::kFloat:
        out.f32.assign(OutputCount(), -1.0f);
        out.stage.data = out.f32.data();
        break;
      case Destination::kCodes:
        out.bytes.assign(OutputCount(), 0xee);
        out.stage.data = out.bytes.data();
        break;
      case Destination::kPairPlanes:
        out.stage.pair_planes = make_pair_planes_layout(g_.out_channels, oh, ow, 1, next_stride_);
        out.bytes.assign(out.stage.pair_planes.image_bytes * g_.batch, 0);
        out.stage.data = out.bytes.data();
        break;
      case Destination::kBitPlanes:
        out.stage.bit_planes = make_bit_planes_layout(g_.out_channels, out_bits_, oh, ow, 1);
        out.words.assign(out.stage.bit_planes.image_words * g_.batch, 0);
        out.stage.data = out.words.data();
        break;
    }
    return out;
  }

  void Verify(const Inputs& in, Outputs& out) const {
    std::vector<int64_t> expected(OutputCount());
    ref::conv(g_, in.codes.data(), in.weights.data(), expected.data());
    const Epilogue e = MakeEpilogue(in);
    const int cout = g_.out_channels;
    int failures = 0;
    auto fail = [&](size_t i, const std::string& what) {
      if (++failures <= 5) ADD_FAILURE() << "output " << i << " (channel " << i % cout << "): " << what;
    };
    std::vector<uint8_t> codes(OutputCount());
    for (size_t i = 0; i < OutputCount(); ++i) codes[i] = ref::epilogue_code(e, int(i % cout), expected[i]);
    CountTies(e, expected);
    switch (destination_) {
      case Destination::kInt32:
        for (size_t i = 0; i < expected.size(); ++i)
          if (out.i32[i] != expected[i])
            fail(i, "got " + std::to_string(out.i32[i]) + " want " + std::to_string(expected[i]));
        break;
      case Destination::kFloat:
        for (size_t i = 0; i < expected.size(); ++i) {
          const float want = ref::epilogue_value(e, int(i % cout), expected[i]);
          if (out.f32[i] != want) fail(i, "got " + std::to_string(out.f32[i]) + " want " + std::to_string(want));
        }
        break;
      case Destination::kCodes:
        for (size_t i = 0; i < expected.size(); ++i)
          if (out.bytes[i] != codes[i])
            fail(i, "got code " + std::to_string(out.bytes[i]) + " want " + std::to_string(codes[i]));
        break;
      case Destination::kPairPlanes: {
        std::vector<uint8_t> want(out.bytes.size(), 0);
        pack_pair_planes(codes.data(), g_.batch, out.stage.pair_planes, want.data());
        for (size_t i = 0; i < want.size(); ++i)
          if (out.bytes[i] != want[i]) fail(i, "pair-plane byte differs");
        break;
      }
      case Destination::kBitPlanes: {
        std::vector<uint64_t> want(out.words.size(), 0);
        pack_bit_planes(codes.data(), g_.batch, out.stage.bit_planes, want.data());
        for (size_t i = 0; i < want.size(); ++i)
          if (out.words[i] != want[i]) fail(i, "bit-plane word differs");
        break;
      }
    }
    EXPECT_EQ(failures, 0) << "mismatches";
  }

  // tie_stats_ of the reference values (code destinations, exact mode).
  void CountTies(const Epilogue& e, const std::vector<int64_t>& sums) const {
    tie_stats_ = TieStats{};
    if (e.out_scale <= 0.0f || destination_ == Destination::kInt32 ||
        destination_ == Destination::kFloat)
      return;
    const float s = e.out_scale, inv = 1.0f / s;
    const double lo = -e.out_zero_point, hi = ((1 << e.out_bits) - 1) - e.out_zero_point;
    for (size_t i = 0; i < sums.size(); ++i) {
      const float y = ref::epilogue_value(e, int(i % g_.out_channels), sums[i]);
      const float quotient = y / s;
      if (!(quotient > lo - 1 && quotient < hi + 1)) continue;
      const double code = std::nearbyint(double(quotient));
      if (quotient - std::floor(quotient) == 0.5f) ++tie_stats_.ties;
      if (std::nearbyint(double(y * inv)) != code) ++tie_stats_.product_differs;
      // The real quotient: a double quotient of floats never rounds onto a
      // half-integer it is not on.
      if (std::nearbyint(double(y) / double(s)) != code) ++tie_stats_.real_differs;
    }
  }

  ConvGeometry g_;
  int wbits_ = 2;
  int abits_ = 2;
  WeightDomain domain_ = WeightDomain::kSigned;
  uint32_t seed_ = 1;
  Fill fill_ = Fill::kRandom;
  Destination destination_ = Destination::kInt32;
  Activation activation_ = Activation::kNone;
  int out_bits_ = 2;
  int next_stride_ = 1;
  int zero_point_ = 0;
  bool has_zero_point_ = false;
  float out_inv_scale_ = 1.0f;
  bool has_out_inv_scale_ = false;
  bool bias_ = true;
  float out_scale_ = 0.0f;
  int activation_zero_point_ = 0;
  bool has_activation_zero_point_ = false;
  int code_lo_ = 0, code_hi_ = 255;
  int weight_lo_ = -128, weight_hi_ = 127;
  int tie_denominator_ = 0;
  float clip_min_ = -0.5f, clip_max_ = 1.0f;
  mutable TieStats tie_stats_;
  int splits_ = 1;
  bool threads_ = false;
};

}  // namespace lowbit::kernels::testing
