// measure_conv_kernels (measure.h): real inputs in every candidate's formats,
// an exactness check against direct sums, then wall-clock timing.
#include "lowbit/kernels/measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "lowbit/kernels/conv.h"
#include "lowbit/kernels/pack.h"

namespace lowbit::kernels {
namespace {

// The layer's unpacked data: codes NHWC [H][W][Cin] (one image), weight
// values OHWI [Cout][KH][KW][Cin / groups], per-channel epilogue parameters.
struct Layer {
  ConvGeometry geometry;
  int wbits = 8, abits = 8;
  WeightDomain domain = WeightDomain::kSigned;
  std::vector<uint8_t> codes;
  std::vector<int8_t> weights;
  std::vector<float> scale, bias;
  std::vector<int32_t> sum_offset;  // 2^(abits - 1) * sum(weights of c)

  size_t outputs() const {
    return size_t(geometry.out_height()) * geometry.out_width() * geometry.out_channels;
  }
};

Layer make_layer(const ConvGeometry& geometry, int wbits, int abits, WeightDomain domain, int wmin,
                 int wmax, uint32_t seed) {
  Layer l;
  l.geometry = geometry;
  l.geometry.batch = 1;
  l.wbits = wbits, l.abits = abits, l.domain = domain;
  const ConvGeometry& g = l.geometry;
  std::mt19937 rng(seed);
  const int max_code = (1 << abits) - 1;
  std::uniform_int_distribution<int> code(0, max_code), value(wmin, wmax), sign(0, 1);
  l.codes.resize(size_t(g.height) * g.width * g.in_channels);
  for (uint8_t& c : l.codes) c = uint8_t(code(rng));
  l.weights.resize(size_t(g.out_channels) * g.taps() * (g.in_channels / g.groups));
  for (int8_t& w : l.weights)
    w = int8_t(domain == WeightDomain::kBinary ? 2 * sign(rng) - 1 : value(rng));
  // Scales spread the epilogue's values over the 8-bit code range (so the
  // timed runs requantize, clamp and apply ReLU as in a real layer).
  const double spread = std::sqrt(double(g.taps()) * (g.in_channels / g.groups)) * max_code *
                        std::max(1, std::max(-wmin, wmax));
  std::uniform_real_distribution<float> unit(0.5f, 1.5f), shift(-0.5f, 0.5f);
  for (int c = 0; c < g.out_channels; ++c) {
    l.scale.push_back(float(unit(rng) / spread));
    l.bias.push_back(shift(rng));
  }
  const size_t per_channel = l.weights.size() / size_t(g.out_channels);
  for (int c = 0; c < g.out_channels; ++c) {
    int64_t sum = 0;
    for (size_t k = 0; k < per_channel; ++k) sum += l.weights[size_t(c) * per_channel + k];
    l.sum_offset.push_back(int32_t(sum << (abits - 1)));
  }
  return l;
}

// Exact sum of weight value x code of output (y, x, channel), zero padding.
int64_t direct_sum(const Layer& l, int y, int x, int channel) {
  const ConvGeometry& g = l.geometry;
  const int group_in = g.in_channels / g.groups;
  const int first_in = channel / (g.out_channels / g.groups) * group_in;
  int64_t sum = 0;
  for (int ky = 0; ky < g.kernel_h; ++ky) {
    const int iy = y * g.stride - g.pad + ky;
    if (iy < 0 || iy >= g.height) continue;
    for (int kx = 0; kx < g.kernel_w; ++kx) {
      const int ix = x * g.stride - g.pad + kx;
      if (ix < 0 || ix >= g.width) continue;
      const uint8_t* a = &l.codes[(size_t(iy) * g.width + ix) * g.in_channels + first_in];
      const int8_t* w =
          &l.weights[((size_t(channel) * g.kernel_h + ky) * g.kernel_w + kx) * group_in];
      for (int c = 0; c < group_in; ++c) sum += int64_t(w[c]) * a[c];
    }
  }
  return sum;
}

int64_t direct_sum_at(const Layer& l, size_t index) {
  const ConvGeometry& g = l.geometry;
  const int channel = int(index % g.out_channels);
  const size_t pixel = index / g.out_channels;
  return direct_sum(l, int(pixel / g.out_width()), int(pixel % g.out_width()), channel);
}

// One family's packed inputs (owned here) and a call on them with a given
// output stage; the vectors are never resized after the args point into them.
struct Prepared {
  std::vector<uint8_t> activation_bytes;
  std::vector<uint16_t> activation_elems;
  std::vector<uint64_t> activation_words;
  std::vector<uint8_t> weight_bytes;
  std::vector<int8_t> weight_values;
  std::vector<int16_t> weight_elems;
  std::vector<uint64_t> weight_words;
  std::function<void(const OutputStage&)> run;
};

void prepare(ConvFamily family, const Layer& l, const KernelTable& table, Prepared* p) {
  const ConvGeometry& g = l.geometry;
  switch (family) {
    case ConvFamily::kInt8: {
      Int8ConvArgs a;
      a.geometry = g;
      a.activation_layout = make_int8_activations_layout(g.in_channels, g.height, g.width, g.pad);
      p->activation_elems.assign(a.activation_layout.image_elems, 0);
      pack_int8_activations(l.codes.data(), 1, a.activation_layout, p->activation_elems.data());
      a.activations = p->activation_elems.data();
      a.weight_layout = make_int8_weights_layout(g.out_channels, g.in_channels, g.taps());
      p->weight_elems.assign(a.weight_layout.elems, 0);
      pack_int8_weights(l.weights.data(), a.weight_layout, p->weight_elems.data());
      a.weights = p->weight_elems.data();
      const Int8ConvFn fn = table.conv_u8s8.fn;
      p->run = [a, fn](const OutputStage& out) mutable {
        a.output = out;
        fn(a);
      };
      return;
    }
    case ConvFamily::kInt8Dot: {
      Int8DotConvArgs a;
      a.geometry = g;
      a.activation_layout =
          make_int8_dot_activations_layout(g.in_channels, g.height, g.width, g.pad);
      p->activation_bytes.assign(a.activation_layout.image_bytes, 0);
      pack_int8_dot_activations(l.codes.data(), 1, a.activation_layout, p->activation_bytes.data());
      a.activations = p->activation_bytes.data();
      a.weight_layout = make_int8_dot_weights_layout(g.out_channels, g.in_channels, g.taps());
      p->weight_values.assign(a.weight_layout.bytes, 0);
      pack_int8_dot_weights(l.weights.data(), a.weight_layout, p->weight_values.data());
      a.weights = p->weight_values.data();
      const Int8DotConvFn fn = table.conv_u8s8dot.fn;
      p->run = [a, fn](const OutputStage& out) mutable {
        a.output = out;
        fn(a);
      };
      return;
    }
    case ConvFamily::kDepthwiseInt8: {
      DwConvArgs a;
      a.geometry = g;
      a.activation_layout = make_int8_activations_layout(g.in_channels, g.height, g.width, g.pad);
      p->activation_elems.assign(a.activation_layout.image_elems, 0);
      pack_int8_activations(l.codes.data(), 1, a.activation_layout, p->activation_elems.data());
      a.activations = p->activation_elems.data();
      a.weight_layout = make_dw_weights_layout(g.in_channels, g.taps());
      p->weight_elems.assign(a.weight_layout.elems, 0);
      pack_dw_weights(l.weights.data(), a.weight_layout, p->weight_elems.data());
      a.weights = p->weight_elems.data();
      const DwConvFn fn = table.dwconv_u8s8.fn;
      p->run = [a, fn](const OutputStage& out) mutable {
        a.output = out;
        fn(a);
      };
      return;
    }
    case ConvFamily::kLut: {
      LutConvArgs a;
      a.geometry = g;
      a.activation_layout =
          make_pair_planes_layout(g.in_channels, g.height, g.width, g.pad, g.stride);
      p->activation_bytes.assign(a.activation_layout.image_bytes, 0);
      pack_pair_planes(l.codes.data(), 1, a.activation_layout, p->activation_bytes.data());
      a.activations = p->activation_bytes.data();
      a.table_layout = make_lut_weights_layout(g.out_channels, g.in_channels, g.taps());
      p->weight_bytes.assign(a.table_layout.bytes, 0);
      pack_lut_weights(l.weights.data(), a.table_layout, p->weight_bytes.data());
      a.tables = p->weight_bytes.data();
      const LutConvFn fn = table.conv_w2a2_lut.fn;
      p->run = [a, fn](const OutputStage& out) mutable {
        a.output = out;
        fn(a);
      };
      return;
    }
    case ConvFamily::kBitSerial: {
      BitSerialConvArgs a;
      a.geometry = g;
      a.activation_layout =
          make_bit_planes_layout(g.in_channels, l.abits, g.height, g.width, g.pad);
      p->activation_words.assign(a.activation_layout.image_words, 0);
      pack_bit_planes(l.codes.data(), 1, a.activation_layout, p->activation_words.data());
      a.activations = p->activation_words.data();
      a.weight_layout = make_bit_serial_weights_layout(g.out_channels, g.in_channels, g.taps(),
                                                       l.wbits, l.domain);
      p->weight_words.assign(a.weight_layout.total_words, 0);
      pack_bit_serial_weights(l.weights.data(), a.weight_layout, p->weight_words.data());
      a.weights = p->weight_words.data();
      const BitSerialConvFn fn = table.conv_anybits_bitserial.fn;
      p->run = [a, fn](const OutputStage& out) mutable {
        a.output = out;
        fn(a);
      };
      return;
    }
    case ConvFamily::kNone:
      return;
  }
}

// Fastest of the timed calls, in ns, after one warm-up call.
double time_calls(const Prepared& p, const OutputStage& out, const MeasureOptions& o, int* runs) {
  using Clock = std::chrono::steady_clock;
  p.run(out);
  double best = -1.0, total = 0.0;
  const int max_runs = std::max(1, o.max_runs), min_runs = std::clamp(o.min_runs, 1, max_runs);
  int n = 0;
  while (n < max_runs && (n < min_runs || total < o.min_seconds)) {
    const Clock::time_point t0 = Clock::now();
    p.run(out);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = best < 0 || s < best ? s : best;
    total += s;
    ++n;
  }
  *runs = n;
  return best * 1e9;
}

// Direct multiply-adds spent on the sampled check (about a millisecond).
constexpr double kDirectCheckMacs = 1 << 20;

// Marks `exact[i] = false` for every candidate whose int32 output is wrong:
// sampled outputs (all of them in small layers) against direct sums, then
// every output where candidates disagree against the direct sum there.
void check_exact(const Layer& l, const std::vector<std::vector<int32_t>>& sums,
                 std::vector<bool>* exact, uint32_t seed) {
  const ConvGeometry& g = l.geometry;
  const size_t count = l.outputs();
  const int oh = g.out_height(), ow = g.out_width(), cout = g.out_channels;
  auto index = [&](int y, int x, int c) { return (size_t(y) * ow + x) * cout + c; };
  const double macs_per_output = double(g.taps()) * (g.in_channels / g.groups);
  std::vector<size_t> samples;
  if (double(count) * macs_per_output <= kDirectCheckMacs) {
    for (size_t i = 0; i < count; ++i) samples.push_back(i);
  } else {
    for (int y : {0, oh - 1})
      for (int x : {0, ow - 1})
        for (int c : {0, cout - 1}) samples.push_back(index(y, x, c));
    samples.push_back(index(oh / 2, ow / 2, cout / 2));
    std::mt19937 rng(seed ^ 0x9e3779b9u);
    std::uniform_int_distribution<size_t> any(0, count - 1);
    const int random = std::max(48, int(kDirectCheckMacs / macs_per_output));
    for (int i = 0; i < random; ++i) samples.push_back(any(rng));
  }
  for (size_t s : samples) {
    const int64_t want = direct_sum_at(l, s);
    for (size_t f = 0; f < sums.size(); ++f)
      if ((*exact)[f] && sums[f][s] != want) (*exact)[f] = false;
  }
  // Full comparison of the survivors with the first survivor; each disputed
  // output rules out at least one candidate, so this ends quickly.
  for (;;) {
    size_t first = sums.size();
    for (size_t f = 0; f < sums.size() && first == sums.size(); ++f)
      if ((*exact)[f]) first = f;
    if (first == sums.size()) return;
    bool disputed = false;
    for (size_t f = first + 1; f < sums.size() && !disputed; ++f) {
      if (!(*exact)[f]) continue;
      if (std::memcmp(sums[f].data(), sums[first].data(), count * sizeof(int32_t)) == 0) continue;
      size_t i = 0;
      while (sums[f][i] == sums[first][i]) ++i;
      const int64_t want = direct_sum_at(l, i);
      for (size_t k = 0; k < sums.size(); ++k)
        if ((*exact)[k] && sums[k][i] != want) (*exact)[k] = false;
      disputed = true;
    }
    if (!disputed) return;
  }
}

}  // namespace

MeasuredConvChoice measure_conv_kernels(const ConvGeometry& geometry, int wbits, int abits,
                                        WeightDomain domain, const KernelTable& table,
                                        const MeasureOptions& options) {
  MeasuredConvChoice result;
  ConvGeometry g = geometry;
  g.batch = 1;
  // The timed output class (MeasureOptions::destination).
  const Destination timed =
      options.destination == Destination::kInt32 || options.destination == Destination::kFloat
          ? options.destination
          : Destination::kCodes;
  result.modeled = choose_conv_kernel(g, wbits, abits, domain, table, timed);

  std::vector<ConvFamily> runnable;
  for (ConvFamily family : kConvFamilies) {
    ConvKernelInfo k;
    if (!conv_kernel_info(table, family, &k) || !k.native) continue;
    ConvKernelTiming& t = result.timings[result.count++];
    t.family = family;
    t.kernel_name = k.name;
    t.runs = conv_family_supports(family, g, wbits, abits, domain);
    t.estimated_cycles = estimate_conv_cycles(family, g, wbits, abits, domain, table, timed);
    if (t.runs) runnable.push_back(family);
  }
  int wmin = 0, wmax = 0;
  if (runnable.empty() || !weight_value_range(domain, wbits, &wmin, &wmax)) return result;

  const Layer layer = make_layer(g, wbits, abits, domain, wmin, wmax, options.seed);
  const size_t count = layer.outputs();
  std::vector<Prepared> prepared(runnable.size());
  std::vector<std::vector<int32_t>> sums(runnable.size());
  for (size_t f = 0; f < runnable.size(); ++f) {
    prepare(runnable[f], layer, table, &prepared[f]);
    sums[f].assign(count, INT32_MIN);
    OutputStage stage;
    stage.destination = Destination::kInt32;
    stage.data = sums[f].data();
    prepared[f].run(stage);
  }
  std::vector<bool> exact(runnable.size(), true);
  check_exact(layer, sums, &exact, options.seed);
  sums.clear();

  // Timed output: see MeasureOptions::destination.
  OutputStage stage;
  std::vector<uint8_t> out_codes;
  std::vector<float> out_floats;
  std::vector<int32_t> out_sums;
  stage.epilogue.scale = layer.scale.data();
  stage.epilogue.bias = layer.bias.data();
  if (timed == Destination::kInt32) {
    stage.destination = Destination::kInt32;
    out_sums.assign(count, 0);
    stage.data = out_sums.data();
  } else if (timed == Destination::kFloat) {
    stage.destination = Destination::kFloat;
    out_floats.assign(count, 0.0f);
    stage.data = out_floats.data();
  } else {
    stage.destination = Destination::kCodes;
    stage.epilogue.activation = Activation::kRelu;
    stage.epilogue.out_bits = 8;
    stage.epilogue.out_inv_scale = 255.0f;  // y spans about [-1, 1]
    stage.epilogue.out_zero_point = 0;
    if (options.exact_codes) {
      stage.epilogue.sum_offset = layer.sum_offset.data();
      stage.epilogue.out_scale = 1.0f / 255.0f;
    }
    out_codes.assign(count, 0);
    stage.data = out_codes.data();
  }

  size_t next = 0;
  for (int i = 0; i < result.count; ++i) {
    ConvKernelTiming& t = result.timings[i];
    if (!t.runs) continue;
    const size_t f = next++;
    t.exact = exact[f];
    t.ns = time_calls(prepared[f], stage, options, &t.timed_runs);
    if (t.exact && (result.best.family == ConvFamily::kNone || t.ns < result.best_ns)) {
      result.best.family = t.family;
      result.best.kernel_name = t.kernel_name;
      result.best.estimated_cycles = t.estimated_cycles;
      result.best_ns = t.ns;
    }
  }
  return result;
}

}  // namespace lowbit::kernels
