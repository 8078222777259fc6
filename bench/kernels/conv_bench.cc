// Convolution kernels on real layer shapes. For every shape and kernel family
// prints one CSV line: median wall time of --runs runs (after 3 warm-up runs)
// and GOPS = 2 * multiply-adds / s, with --threads threads (a spinning pool
// that calls the kernels' work ranges; the engine's pool does the same), and
// XNNPACK qc8 (signed int8 activations, per-channel int8 weights) on the same
// shape with a pthreadpool of the same size, in the same process.
// Usage: lowbit_kernels_bench [--threads N] [--runs R] [--filter SUBSTRING]
//        [--families int8,lut,bitserial,xnnpack | choose | measure] [--help]
// Every lowbit family is timed twice: int32 output, then u8 output through the
// fused requantizing epilogue ("->u8" rows: per-channel scale and bias, ReLU,
// 8-bit codes).
// (--families choose prints choose_conv_kernel's pick per shape and bit-width
// with its estimated time at the measured clock instead of running kernels;
// --families measure runs measure_conv_kernels per shape and bit-width and
// prints, for every candidate, its fastest single-thread time ("measured",
// or "not_exact") and the cost model's estimate at the measured clock
// ("estimated"), then the measured pick ("measured_best").)
// (LOWBIT_KERNELS_ISA selects the variant; default: best supported).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/kernels/choose.h"
#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/measure.h"
#include "lowbit/kernels/pack.h"

#if LOWBIT_BENCH_XNNPACK
#include <pthreadpool.h>
#include <xnnpack.h>
#endif

namespace lowbit::kernels {
namespace {

struct Shape {
  std::string name;
  int cin, cout, size, kernel, stride;
  bool depthwise;
};

// NanoDet-g at 416 (every 3x3 conv, from `lowbit inspect models/nanodet-g`:
// Cin, Cout, input size, stride), ResNet-18 3x3, MobileNetV2 1x1 and 3x3 depthwise.
std::vector<Shape> all_shapes() {
  std::vector<Shape> s;
  const int nanodet[][4] = {{3, 32, 416, 2},    {32, 32, 104, 1},  {32, 16, 104, 1},
                            {16, 16, 104, 1},   {64, 64, 104, 2},  {64, 32, 52, 1},
                            {32, 32, 52, 1},    {64, 64, 52, 1},   {128, 128, 52, 2},
                            {128, 128, 52, 1},  {128, 64, 26, 1},  {64, 64, 26, 1},
                            {128, 128, 26, 1},  {128, 128, 26, 2}, {256, 256, 26, 2},
                            {256, 128, 13, 1},  {128, 128, 13, 1}, {256, 256, 13, 1}};
  for (const auto& n : nanodet)
    s.push_back({"nanodet_3x3_" + std::to_string(n[0]) + "to" + std::to_string(n[1]) + "@" +
                     std::to_string(n[2]) + (n[3] == 2 ? "s2" : ""),
                 n[0], n[1], n[2], 3, n[3], false});
  // NanoDet-g's FPN lateral 1x1 on the deepest backbone stage.
  s.push_back({"nanodet_1x1_512to128@13", 512, 128, 13, 1, 1, false});
  for (int c : {64, 128, 256, 512}) {
    const int size = 56 * 64 / c;
    s.push_back({"resnet18_3x3_" + std::to_string(c) + "@" + std::to_string(size), c, c, size, 3, 1,
                 false});
  }
  s.push_back({"mbv2_1x1_32to192@56", 32, 192, 56, 1, 1, false});
  s.push_back({"mbv2_1x1_192to32@28", 192, 32, 28, 1, 1, false});
  s.push_back({"mbv2_1x1_96to576@14", 96, 576, 14, 1, 1, false});
  s.push_back({"mbv2_1x1_576to96@14", 576, 96, 14, 1, 1, false});
  s.push_back({"mbv2_dw3x3_144@56", 144, 144, 56, 3, 1, true});
  s.push_back({"mbv2_dw3x3_192@28", 192, 192, 28, 3, 1, true});
  s.push_back({"mbv2_dw3x3_576@14", 576, 576, 14, 3, 1, true});
  s.push_back({"mbv2_dw3x3_144@56s2", 144, 144, 56, 3, 2, true});
  return s;
}

ConvGeometry geometry_of(const Shape& s) {
  ConvGeometry g;
  g.height = g.width = s.size;
  g.in_channels = s.cin;
  g.out_channels = s.cout;
  g.kernel_h = g.kernel_w = s.kernel;
  g.stride = s.stride;
  g.pad = s.kernel / 2;
  g.groups = s.depthwise ? s.cin : 1;
  return g;
}

// Persistent pool: part 0 runs on the calling thread, parts 1..N-1 on
// spinning workers (back-to-back runs, so spinning costs nothing measured).
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this, i] {
        uint64_t seen = 0;
        for (;;) {
          uint64_t g;
          while ((g = generation_.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
          seen = g;
          if (stop_.load()) return;
          job_(i);
          done_.fetch_add(1, std::memory_order_acq_rel);
        }
      });
  }
  ~Pool() {
    stop_ = true;
    generation_.fetch_add(1);
    for (auto& w : workers_) w.join();
  }
  int threads() const { return threads_; }
  void run(const std::function<void(int)>& job) {
    job_ = job;
    done_.store(0);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    job(0);
    while (done_.load(std::memory_order_acquire) != threads_ - 1) std::this_thread::yield();
  }

 private:
  int threads_;
  std::vector<std::thread> workers_;
  std::function<void(int)> job_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
};

double median_seconds(int runs, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + runs / 2, t.end());
  return t[size_t(runs / 2)];
}

// Core clock estimate in GHz (no hardware counters in a VM): a chain of
// dependent 1-cycle register-register adds (an immediate add can be folded at
// rename on recent Intel cores), timed; 0 where not implemented. The median
// of a few runs, so a preemption does not count.
double clock_ghz() {
#if defined(__x86_64__)
  auto once = [] {
    constexpr long kIters = 2000000;  // x 100 dependent adds
    long x = 0, n = kIters, one = 1;
    const auto t0 = std::chrono::steady_clock::now();
    __asm__ volatile(
        "1:\n"
        ".rept 100\n"
        "add %2, %0\n"
        ".endr\n"
        "dec %1\n"
        "jnz 1b\n"
        : "+r"(x), "+r"(n)
        : "r"(one));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return 100.0 * kIters / s / 1e9;
  };
  std::vector<double> g;
  for (int i = 0; i < 7; ++i) g.push_back(once());
  std::nth_element(g.begin(), g.begin() + 3, g.end());
  return g[3];
#else
  return 0.0;
#endif
}

void print(const Shape& s, const ConvGeometry& g, int threads, const char* family, int bits,
           const char* kernel, double seconds) {
  std::printf("%s,%d,%d,%d,%d,%d,%d,%d,%s,%d,%s,%.2f,%.1f\n", s.name.c_str(), s.cin, s.cout,
              s.size, s.kernel, s.stride, g.groups, threads, family, bits, kernel, seconds * 1e6,
              2 * g.macs() / seconds / 1e9);
  std::fflush(stdout);
}

template <typename Args>
void run_split(Pool& pool, void (*fn)(const Args&), const Args& args, size_t items) {
  if (pool.threads() == 1) {
    fn(args);
    return;
  }
  pool.run([&](int part) {
    Args a = args;
    a.work = work_range(items, pool.threads(), part);
    fn(a);
  });
}

void bench_int8(const Shape& s, Pool& pool, int runs, std::mt19937& rng) {
  const ConvGeometry g = geometry_of(s);
  const KernelTable& t = kernel_table();
  std::vector<uint8_t> codes(size_t(g.height) * g.width * g.in_channels);
  for (auto& c : codes) c = uint8_t(rng());
  std::vector<int8_t> w(size_t(g.out_channels) * g.taps() * (g.in_channels / g.groups));
  for (auto& v : w) v = int8_t(rng());
  std::vector<int32_t> out(size_t(g.out_height()) * g.out_width() * g.out_channels);
  const Int8ActivationsLayout al =
      make_int8_activations_layout(g.in_channels, g.height, g.width, g.pad);
  std::vector<uint16_t> acts(al.image_elems, 0);
  pack_int8_activations(codes.data(), 1, al, acts.data());
  OutputStage stage;
  stage.destination = Destination::kInt32;
  stage.data = out.data();
  // u8 output like ONNX Runtime's QLinearConv: per-channel scale and bias,
  // ReLU, requantized to 8-bit codes by the fused output stage ("->u8" rows).
  std::vector<float> scale(g.out_channels), bias(g.out_channels);
  for (int c = 0; c < g.out_channels; ++c) {
    scale[c] = 1e-4f * float(1 + c % 7);
    bias[c] = 0.01f * float(c % 5);
  }
  std::vector<uint8_t> out_codes(out.size());
  OutputStage codes_stage;
  codes_stage.destination = Destination::kCodes;
  codes_stage.data = out_codes.data();
  codes_stage.epilogue.scale = scale.data();
  codes_stage.epilogue.bias = bias.data();
  codes_stage.epilogue.activation = Activation::kRelu;
  codes_stage.epilogue.out_inv_scale = 40.0f;
  codes_stage.epilogue.out_zero_point = 0;
  codes_stage.epilogue.out_bits = 8;
  const std::string u8_suffix = " ->u8";
  if (s.depthwise) {
    DwConvArgs a;
    a.geometry = g;
    a.activations = acts.data();
    a.activation_layout = al;
    a.weight_layout = make_dw_weights_layout(g.in_channels, g.taps());
    std::vector<int16_t> pw(a.weight_layout.elems);
    pack_dw_weights(w.data(), a.weight_layout, pw.data());
    a.weights = pw.data();
    a.output = stage;
    const size_t items = dw_conv_work_items(a);
    print(s, g, pool.threads(), "int8", 8, t.dwconv_u8s8.name,
          median_seconds(runs, [&] { run_split(pool, t.dwconv_u8s8.fn, a, items); }));
    a.output = codes_stage;
    print(s, g, pool.threads(), "int8_u8", 8, (t.dwconv_u8s8.name + u8_suffix).c_str(),
          median_seconds(runs, [&] { run_split(pool, t.dwconv_u8s8.fn, a, items); }));
  } else {
    Int8ConvArgs a;
    a.geometry = g;
    a.activations = acts.data();
    a.activation_layout = al;
    a.weight_layout = make_int8_weights_layout(g.out_channels, g.in_channels, g.taps());
    std::vector<int16_t> pw(a.weight_layout.elems);
    pack_int8_weights(w.data(), a.weight_layout, pw.data());
    a.weights = pw.data();
    a.output = stage;
    const size_t items = int8_conv_work_items(a);
    print(s, g, pool.threads(), "int8", 8, t.conv_u8s8.name,
          median_seconds(runs, [&] { run_split(pool, t.conv_u8s8.fn, a, items); }));
    // Byte formats (vpdpbusd); only where the ISA has a native variant.
    if (t.conv_u8s8dot.native) {
      Int8DotConvArgs d;
      d.geometry = g;
      d.activation_layout = make_int8_dot_activations_layout(g.in_channels, g.height, g.width, g.pad);
      std::vector<uint8_t> bytes(d.activation_layout.image_bytes, 0);
      pack_int8_dot_activations(codes.data(), 1, d.activation_layout, bytes.data());
      d.activations = bytes.data();
      d.weight_layout = make_int8_dot_weights_layout(g.out_channels, g.in_channels, g.taps());
      std::vector<int8_t> dw(d.weight_layout.bytes);
      pack_int8_dot_weights(w.data(), d.weight_layout, dw.data());
      d.weights = dw.data();
      d.output = stage;
      const size_t dot_items = int8_dot_conv_work_items(d);
      print(s, g, pool.threads(), "int8dot", 8, t.conv_u8s8dot.name,
            median_seconds(runs, [&] { run_split(pool, t.conv_u8s8dot.fn, d, dot_items); }));
      d.output = codes_stage;
      print(s, g, pool.threads(), "int8dot_u8", 8, (t.conv_u8s8dot.name + u8_suffix).c_str(),
            median_seconds(runs, [&] { run_split(pool, t.conv_u8s8dot.fn, d, dot_items); }));
    }
  }
}

// u8 output of a low-bit layer ("->u8" rows): per-channel scale and bias
// spreading y over about [-1, 1] around zero for sums of the random codes and
// weights (the bias removes their mean, so about half the values are
// clipped by the ReLU, as in a trained layer), ReLU, 8-bit codes. The
// buffers are owned by the caller.
template <typename Weight>
OutputStage lowbit_codes_stage(const ConvGeometry& g, int abits, const std::vector<uint8_t>& codes,
                               const std::vector<Weight>& weights, std::vector<float>* scale,
                               std::vector<float>* bias, std::vector<uint8_t>* out) {
  double mean_code = 0, mean_weight = 0;
  for (uint8_t c : codes) mean_code += c;
  for (Weight w : weights) mean_weight += w;
  mean_code /= double(codes.size());
  mean_weight /= double(weights.size());
  const double taps_cin = double(g.taps()) * g.in_channels;
  const float spread = float(std::sqrt(taps_cin) * ((1 << abits) - 1));
  scale->resize(size_t(g.out_channels));
  bias->resize(size_t(g.out_channels));
  for (int c = 0; c < g.out_channels; ++c) {
    const float sc = float(1 + c % 7) / 4.0f / spread;
    (*scale)[size_t(c)] = sc;
    (*bias)[size_t(c)] = 0.05f * float(c % 5 - 2) - sc * float(taps_cin * mean_code * mean_weight);
  }
  out->assign(size_t(g.out_height()) * g.out_width() * g.out_channels, 0);
  OutputStage stage;
  stage.destination = Destination::kCodes;
  stage.data = out->data();
  stage.epilogue.scale = scale->data();
  stage.epilogue.bias = bias->data();
  stage.epilogue.activation = Activation::kRelu;
  stage.epilogue.out_inv_scale = 255.0f;
  stage.epilogue.out_zero_point = 0;
  stage.epilogue.out_bits = 8;
  return stage;
}

void bench_lut(const Shape& s, Pool& pool, int runs, std::mt19937& rng) {
  const ConvGeometry g = geometry_of(s);
  const KernelTable& t = kernel_table();
  std::vector<uint8_t> codes(size_t(g.height) * g.width * g.in_channels);
  for (auto& c : codes) c = uint8_t(rng() % 4);
  std::vector<int8_t> w(size_t(g.out_channels) * g.taps() * g.in_channels);
  for (auto& v : w) v = int8_t(int(rng() % 4) - 2);
  LutConvArgs a;
  a.geometry = g;
  a.activation_layout = make_pair_planes_layout(g.in_channels, g.height, g.width, g.pad, g.stride);
  std::vector<uint8_t> planes(a.activation_layout.image_bytes, 0);
  pack_pair_planes(codes.data(), 1, a.activation_layout, planes.data());
  a.activations = planes.data();
  a.table_layout = make_lut_weights_layout(g.out_channels, g.in_channels, g.taps());
  std::vector<uint8_t> tables(a.table_layout.bytes);
  pack_lut_weights(w.data(), a.table_layout, tables.data());
  a.tables = tables.data();
  std::vector<int32_t> out(size_t(g.out_height()) * g.out_width() * g.out_channels);
  a.output.destination = Destination::kInt32;
  a.output.data = out.data();
  const size_t items = lut_conv_work_items(a);
  print(s, g, pool.threads(), "lut", 2, t.conv_w2a2_lut.name,
        median_seconds(runs, [&] { run_split(pool, t.conv_w2a2_lut.fn, a, items); }));
  std::vector<float> scale, bias;
  std::vector<uint8_t> out_codes;
  a.output = lowbit_codes_stage(g, 2, codes, w, &scale, &bias, &out_codes);
  print(s, g, pool.threads(), "lut_u8", 2, (std::string(t.conv_w2a2_lut.name) + " ->u8").c_str(),
        median_seconds(runs, [&] { run_split(pool, t.conv_w2a2_lut.fn, a, items); }));
}

void bench_bitserial(const Shape& s, Pool& pool, int bits, int runs, std::mt19937& rng) {
  const ConvGeometry g = geometry_of(s);
  const KernelTable& t = kernel_table();
  const WeightDomain domain = bits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned;
  const WeightCoding coding = weight_coding(domain, bits);
  std::vector<uint8_t> codes(size_t(g.height) * g.width * g.in_channels);
  for (auto& c : codes) c = uint8_t(rng() % (1u << bits));
  std::vector<int8_t> w(size_t(g.out_channels) * g.taps() * g.in_channels);
  for (auto& v : w) v = int8_t(coding.step * int(rng() % (1u << bits)) + coding.offset);
  BitSerialConvArgs a;
  a.geometry = g;
  a.activation_layout = make_bit_planes_layout(g.in_channels, bits, g.height, g.width, g.pad);
  std::vector<uint64_t> planes(a.activation_layout.image_words, 0);
  pack_bit_planes(codes.data(), 1, a.activation_layout, planes.data());
  a.activations = planes.data();
  a.weight_layout = make_bit_serial_weights_layout(g.out_channels, g.in_channels, g.taps(), bits, domain);
  std::vector<uint64_t> wp(a.weight_layout.total_words);
  pack_bit_serial_weights(w.data(), a.weight_layout, wp.data());
  a.weights = wp.data();
  std::vector<int32_t> out(size_t(g.out_height()) * g.out_width() * g.out_channels);
  a.output.destination = Destination::kInt32;
  a.output.data = out.data();
  const size_t items = bitserial_conv_work_items(a);
  print(s, g, pool.threads(), "bitserial", bits, t.conv_anybits_bitserial.name,
        median_seconds(runs, [&] { run_split(pool, t.conv_anybits_bitserial.fn, a, items); }));
  std::vector<float> scale, bias;
  std::vector<uint8_t> out_codes;
  a.output = lowbit_codes_stage(g, bits, codes, w, &scale, &bias, &out_codes);
  print(s, g, pool.threads(), "bitserial_u8", bits,
        (std::string(t.conv_anybits_bitserial.name) + " ->u8").c_str(),
        median_seconds(runs, [&] { run_split(pool, t.conv_anybits_bitserial.fn, a, items); }));
}

#if LOWBIT_BENCH_XNNPACK
void bench_xnnpack(const Shape& s, int threads, int runs, std::mt19937& rng) {
  const ConvGeometry g = geometry_of(s);
  const size_t cin_g = size_t(g.in_channels / g.groups), cout_g = size_t(g.out_channels / g.groups);
  std::vector<int8_t> input(size_t(g.height) * g.width * g.in_channels + 64);
  for (auto& v : input) v = int8_t(rng());
  std::vector<int8_t> kernel(size_t(g.out_channels) * g.taps() * cin_g);
  for (auto& v : kernel) v = int8_t(rng());
  std::vector<int32_t> bias(size_t(g.out_channels), 0);
  std::vector<float> kscale(size_t(g.out_channels), 0.01f);
  std::vector<int8_t> output(size_t(g.out_height()) * g.out_width() * g.out_channels + 64);
  xnn_operator_t op = nullptr;
  const uint32_t p = uint32_t(g.pad);
  if (xnn_create_convolution2d_nhwc_qc8(p, p, p, p, g.kernel_h, g.kernel_w, g.stride, g.stride, 1, 1,
                                        g.groups, cin_g, cout_g, g.in_channels, g.out_channels, 0,
                                        0.5f, kscale.data(), kernel.data(), bias.data(), 0, 1.0f,
                                        -128, 127, 0, &op) != xnn_status_success) {
    std::fprintf(stderr, "xnnpack: create failed for %s\n", s.name.c_str());
    return;
  }
  pthreadpool_t pool = threads > 1 ? pthreadpool_create(size_t(threads)) : nullptr;
  xnn_setup_convolution2d_nhwc_qc8(op, 1, g.height, g.width, input.data(), output.data(), pool);
  print(s, g, threads, "xnnpack", 8, "xnnpack_qc8",
        median_seconds(runs, [&] { xnn_run_operator(op, pool); }));
  xnn_delete_operator(op);
  if (pool) pthreadpool_destroy(pool);
}
#endif

}  // namespace
}  // namespace lowbit::kernels

int main(int argc, char** argv) {
  using namespace lowbit::kernels;
  int threads = 1, runs = 30;
  std::string filter, families = "int8,lut,bitserial,xnnpack";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "usage: %s [--threads N] [--runs R] [--filter SUBSTRING]\n"
          "          [--families int8,lut,bitserial,xnnpack | choose | measure]\n"
          "  int8/lut/bitserial rows: int32 output, then \"->u8\" rows (ReLU, 8-bit codes)\n"
          "  choose: the cost model's pick per shape and bit-width (no run)\n"
          "  measure: measure_conv_kernels per shape and bit-width (u8 output, 1 thread)\n"
          "  LOWBIT_KERNELS_ISA=scalar|avx2|avxvnni|avx512|neon selects the variant\n",
          argv[0]);
      return 0;
    }
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--filter")) filter = argv[i + 1];
    else if (!std::strcmp(argv[i], "--families")) families = argv[i + 1];
  }
  auto want = [&](const char* f) { return families.find(f) != std::string::npos; };
#if LOWBIT_BENCH_XNNPACK
  if (xnn_initialize(nullptr) != xnn_status_success) return 1;
#endif
  const double clock_ghz_estimate = clock_ghz();
  std::printf("# isa=%s threads=%d runs=%d clock_ghz=%.2f\n", isa_name(kernel_table().isa), threads,
              runs, clock_ghz_estimate);
  std::printf("shape,cin,cout,size,kernel,stride,groups,threads,family,bits,kernel_name,median_us,gops\n");
  std::mt19937 rng(1);
  for (const Shape& s : all_shapes()) {
    if (!filter.empty() && s.name.find(filter) == std::string::npos) continue;
    if (want("choose")) {  // the per-layer choice and its estimate, no run
      const ConvGeometry g = geometry_of(s);
      for (int bits : {1, 2, 3, 4, 8}) {
        const ConvKernelChoice c = choose_conv_kernel(
            g, bits, bits, bits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned);
        const double seconds = c.estimated_cycles / (clock_ghz_estimate * 1e9);
        print(s, g, 1, "choose", bits, c.kernel_name, seconds);
      }
      continue;
    }
    if (want("measure")) {  // every candidate timed on one thread, and the pick
      const ConvGeometry g = geometry_of(s);
      for (int bits : {1, 2, 3, 4, 8}) {
        const MeasuredConvChoice m = measure_conv_kernels(
            g, bits, bits, bits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned,
            kernel_table());
        for (int i = 0; i < m.count; ++i) {
          const ConvKernelTiming& timing = m.timings[i];
          if (!timing.runs) continue;
          print(s, g, 1, timing.exact ? "measured" : "not_exact", bits, timing.kernel_name,
                timing.ns * 1e-9);
          print(s, g, 1, "estimated", bits, timing.kernel_name,
                timing.estimated_cycles / (clock_ghz_estimate * 1e9));
        }
        print(s, g, 1, "measured_best", bits, m.best.kernel_name, m.best_ns * 1e-9);
      }
      continue;
    }
    {
      // Our pool's workers spin while idle: it exists only while our kernels
      // run, so XNNPACK's pthreadpool below has the cores to itself.
      Pool pool(threads);
      if (want("int8")) bench_int8(s, pool, runs, rng);
      if (!s.depthwise && want("lut")) bench_lut(s, pool, runs, rng);
      if (!s.depthwise && want("bitserial"))
        for (int bits = 1; bits <= 4; ++bits) bench_bitserial(s, pool, bits, runs, rng);
    }
#if LOWBIT_BENCH_XNNPACK
    if (want("xnnpack")) bench_xnnpack(s, threads, runs, rng);
#endif
  }
  return 0;
}
