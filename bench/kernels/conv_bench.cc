// Low-bit convolution kernels on real layer shapes, one thread.
// Counters: GOPS = 2 * MAC / s; MAC/cycle uses the core clock measured once
// per process with a chain of dependent integer adds (1 cycle each).
// Usage: lowbit_kernels_bench [--benchmark_filter=...] (LOWBIT_KERNELS_ISA
// selects the variant; default: best supported).
#include <benchmark/benchmark.h>

#include <ctime>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/pack.h"

namespace lowbit::kernels {
namespace {

// Thread CPU time, so that a loaded machine (time slices lost to other
// processes) does not deflate the figures; a chain of dependent 64-bit integer
// multiplies (3 cycles each on Zen 3 and most AArch64 cores) gives the clock.
double thread_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

double measure_clock_hz() {
  constexpr uint64_t kMultiplies = 100'000'000;
  constexpr double kLatency = 3.0;
  uint64_t x = 3;
  const double t0 = thread_seconds();
  for (uint64_t i = 0; i < kMultiplies / 4; ++i) {
#if defined(__x86_64__)
    __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(x));
#elif defined(__aarch64__)
    __asm__ volatile("mul %0, %0, %0\n\tmul %0, %0, %0\n\tmul %0, %0, %0\n\tmul %0, %0, %0" : "+r"(x));
#endif
  }
  return kLatency * double(kMultiplies) / (thread_seconds() - t0);
}

double clock_hz() {
  static const double hz = measure_clock_hz();
  return hz;
}

struct Shape {
  const char* name;
  int channels_in, channels_out, size, kernel, stride;
};

// ResNet-18 3x3 stages, NanoDet-g 3x3 at 416 (52x52 stage), MobileNetV2 1x1.
const Shape kShapes[] = {
    {"resnet18_3x3_64@56", 64, 64, 56, 3, 1},     {"resnet18_3x3_128@28", 128, 128, 28, 3, 1},
    {"resnet18_3x3_256@14", 256, 256, 14, 3, 1},  {"resnet18_3x3_512@7", 512, 512, 7, 3, 1},
    {"nanodet_3x3_128@52", 128, 128, 52, 3, 1},   {"resnet18_3x3_s2_64@56", 64, 128, 56, 3, 2},
    {"mobilenetv2_1x1_32to192@56", 32, 192, 56, 1, 1},
    {"mobilenetv2_1x1_96to576@14", 96, 576, 14, 1, 1},
};

ConvGeometry geometry_of(const Shape& s) {
  ConvGeometry g;
  g.height = g.width = s.size;
  g.in_channels = s.channels_in;
  g.out_channels = s.channels_out;
  g.kernel_h = g.kernel_w = s.kernel;
  g.stride = s.stride;
  g.pad = s.kernel / 2;
  return g;
}

void report(benchmark::State& state, const ConvGeometry& g, const char* kernel) {
  const double macs = g.macs();
  state.counters["GOPS"] = benchmark::Counter(2 * macs / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["MAC/cycle"] =
      benchmark::Counter(macs / clock_hz(), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kernel);
}

void bench_lut(benchmark::State& state, Shape shape, int abits) {
  const ConvGeometry g = geometry_of(shape);
  std::mt19937 rng(1);
  std::vector<uint8_t> codes(size_t(g.height) * g.width * g.in_channels);
  for (auto& c : codes) c = uint8_t(rng() % (1u << abits));
  std::vector<int8_t> w(size_t(g.out_channels) * g.taps() * g.in_channels);
  for (auto& v : w) v = int8_t(int(rng() % 4) - 2);
  LutConvArgs args;
  args.geometry = g;
  args.activation_layout = make_pair_planes_layout(g.in_channels, g.height, g.width, g.pad, g.stride);
  std::vector<uint8_t> planes(args.activation_layout.image_bytes, 0);
  pack_pair_planes(codes.data(), 1, args.activation_layout, planes.data());
  args.activations = planes.data();
  args.table_layout = make_lut_weights_layout(g.out_channels, g.in_channels, g.taps());
  std::vector<uint8_t> tables(args.table_layout.bytes);
  pack_lut_weights(w.data(), args.table_layout, tables.data());
  args.tables = tables.data();
  std::vector<int32_t> out(size_t(g.out_height()) * g.out_width() * g.out_channels);
  args.output.destination = Destination::kInt32;
  args.output.data = out.data();
  const KernelTable& t = kernel_table();
  for (auto _ : state) {
    t.conv_w2a2_lut(args);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  report(state, g, t.conv_w2a2_lut_name);
}

void bench_bitserial(benchmark::State& state, Shape shape, int wbits, int abits) {
  const ConvGeometry g = geometry_of(shape);
  std::mt19937 rng(2);
  const WeightDomain domain = wbits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned;
  const WeightCoding coding = weight_coding(domain, wbits);
  std::vector<uint8_t> codes(size_t(g.height) * g.width * g.in_channels);
  for (auto& c : codes) c = uint8_t(rng() % (1u << abits));
  std::vector<int8_t> w(size_t(g.out_channels) * g.taps() * g.in_channels);
  for (auto& v : w) v = int8_t(coding.step * int(rng() % (1u << wbits)) + coding.offset);
  BitSerialConvArgs args;
  args.geometry = g;
  args.activation_layout = make_bit_planes_layout(g.in_channels, abits, g.height, g.width, g.pad);
  std::vector<uint64_t> planes(args.activation_layout.image_words, 0);
  pack_bit_planes(codes.data(), 1, args.activation_layout, planes.data());
  args.activations = planes.data();
  args.weight_layout =
      make_bit_serial_weights_layout(g.out_channels, g.in_channels, g.taps(), wbits, domain);
  std::vector<uint64_t> wplanes(args.weight_layout.total_words);
  pack_bit_serial_weights(w.data(), args.weight_layout, wplanes.data());
  args.weights = wplanes.data();
  std::vector<int32_t> out(size_t(g.out_height()) * g.out_width() * g.out_channels);
  args.output.destination = Destination::kInt32;
  args.output.data = out.data();
  const KernelTable& t = kernel_table();
  for (auto _ : state) {
    t.conv_anybits_bitserial(args);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  report(state, g, t.conv_anybits_bitserial_name);
}

int register_all() {
  for (const Shape& s : kShapes) {
    benchmark::RegisterBenchmark((std::string("lut_w2a2/") + s.name).c_str(), bench_lut, s, 2)
        ->Unit(benchmark::kMicrosecond);
    for (int bits : {1, 2, 3, 4})
      benchmark::RegisterBenchmark(
          (std::string("bitserial_w") + std::to_string(bits) + "a" + std::to_string(bits) + "/" + s.name).c_str(),
          bench_bitserial, s, bits, bits)
          ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
const int registered = register_all();

}  // namespace
}  // namespace lowbit::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::printf("isa=%s clock=%.2f GHz (dependent multiply chain, thread CPU time)\n",
              lowbit::kernels::isa_name(lowbit::kernels::kernel_table().isa),
              lowbit::kernels::clock_hz() / 1e9);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
