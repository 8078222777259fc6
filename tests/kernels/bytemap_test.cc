// map_bytes__* (bytemap.h) against map_bytes__scalar, and map_bytes__scalar
// against a plain table loop: random tables, every count 0..300 and large
// ones, misaligned table, input and output, in place; bytes outside the
// output range and the input must stay untouched. Every variant this binary
// carries is a case; one the CPU does not run is reported as skipped. The
// dispatch case checks that the tables carry exactly the variants the CPU
// runs (the AVX-512 level: the VBMI variant iff the CPU has AVX512_VBMI).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "lowbit/kernels/bytemap.h"
#include "lowbit/kernels/dispatch.h"

namespace lowbit::kernels {
namespace {

struct Variant {
  const char* name;  // the symbol's spelling
  MapBytesFn fn;
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

std::vector<Variant> AllVariants() {
  std::vector<Variant> v = {{"map_bytes__scalar", map_bytes__scalar}};
#if defined(__x86_64__)
  v.push_back({"map_bytes__avx2", map_bytes__avx2});
  v.push_back({"map_bytes__avx512vbmi", map_bytes__avx512vbmi});
#elif defined(__aarch64__)
  v.push_back({"map_bytes__neon", map_bytes__neon});
#endif
  return v;
}

constexpr Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kNeon};

// Whether the CPU runs `v`, from the compiler's own CPU detection
// (independent of dispatch.cc); the VBMI variant also needs the AVX-512
// level it is dispatched from.
bool CpuRuns(const Variant& v) {
  const std::string name = v.name;
  if (name == "map_bytes__scalar") return true;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (name == "map_bytes__avx2") return __builtin_cpu_supports("avx2");
  if (name == "map_bytes__avx512vbmi")
    return __builtin_cpu_supports("avx512vbmi") && kernel_table_for(Isa::kAvx512) != nullptr;
#elif defined(__aarch64__)
  if (name == "map_bytes__neon") return true;
#endif
  return false;
}

// Whether some table of this CPU carries `v`.
bool Carried(const Variant& v) {
  for (Isa isa : kAllIsas) {
    const KernelTable* t = kernel_table_for(isa);
    if (t && t->map_bytes.fn == v.fn) return true;
  }
  return false;
}

std::vector<uint8_t> RandomBytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> b(n);
  for (uint8_t& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

constexpr size_t kGuard = 64;  // sentinel bytes before and after each output
constexpr uint8_t kSentinel = 0xa5;

class Bytemap : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (!CpuRuns(GetParam())) GTEST_SKIP() << "this CPU does not run " << GetParam().name;
  }

  // Maps `count` random codes from in + in_off to out + out_off (or in place
  // at in + in_off) with `table` at table + table_off, and compares with the
  // scalar variant and a plain loop.
  void Check(std::mt19937& rng, size_t count, size_t in_off, size_t out_off, size_t table_off,
             bool in_place) {
    std::vector<uint8_t> table_buf = RandomBytes(rng, 256 + table_off);
    const uint8_t* table = table_buf.data() + table_off;
    std::vector<uint8_t> in_buf = RandomBytes(rng, kGuard + in_off + count + kGuard);
    const std::vector<uint8_t> in_copy = in_buf;
    std::vector<uint8_t> out_buf(kGuard + out_off + count + kGuard, kSentinel);
    uint8_t* in = in_buf.data() + kGuard + in_off;

    std::vector<uint8_t> expected(count), scalar(count);
    for (size_t i = 0; i < count; ++i) expected[i] = table[in[i]];
    map_bytes__scalar(table, in, scalar.data(), count);
    ASSERT_EQ(scalar, expected) << "map_bytes__scalar, count " << count;

    const std::string where = std::string(GetParam().name) + ", count " + std::to_string(count) +
                              ", in +" + std::to_string(in_off) + ", out +" +
                              std::to_string(out_off) + ", table +" + std::to_string(table_off) +
                              (in_place ? ", in place" : "");
    if (in_place) {
      GetParam().fn(table, in, in, count);
      // std::equal, not memcmp: scalar.data() is null at count 0 (UBSan: nonnull).
      ASSERT_TRUE(std::equal(in, in + count, scalar.begin())) << where;
      ASSERT_EQ(0, std::memcmp(in_buf.data(), in_copy.data(), kGuard + in_off)) << where;
      ASSERT_EQ(0, std::memcmp(in + count, in_copy.data() + kGuard + in_off + count, kGuard))
          << where;
      return;
    }
    uint8_t* out = out_buf.data() + kGuard + out_off;
    GetParam().fn(table, in, out, count);
    ASSERT_TRUE(std::equal(out, out + count, scalar.begin())) << where;
    ASSERT_EQ(in_buf, in_copy) << where << ": input changed";
    for (size_t i = 0; i < kGuard + out_off; ++i)
      ASSERT_EQ(out_buf[i], kSentinel) << where << ": wrote before out";
    for (size_t i = 0; i < kGuard; ++i)
      ASSERT_EQ(out[count + i], kSentinel) << where << ": wrote past out + count";
  }
};

TEST_P(Bytemap, EveryCountTo300Misaligned) {
  std::mt19937 rng(1);
  const size_t offsets[] = {0, 1, 3, 7, 13, 31, 33, 63};
  for (size_t count = 0; count <= 300; ++count)
    for (size_t in_off : offsets)
      for (size_t out_off : offsets) Check(rng, count, in_off, out_off, count % 5, false);
}

TEST_P(Bytemap, EveryCountTo300InPlace) {
  std::mt19937 rng(2);
  for (size_t count = 0; count <= 300; ++count)
    for (size_t off : {0, 1, 17, 63}) Check(rng, count, off, 0, off % 3, true);
}

TEST_P(Bytemap, Large) {
  std::mt19937 rng(3);
  for (size_t count :
       {size_t{1} << 16, (size_t{1} << 16) + 1, size_t{1} << 20, (size_t{1} << 20) + 77}) {
    Check(rng, count, 0, 0, 0, false);
    Check(rng, count, 5, 1, 3, false);
    Check(rng, count, 9, 0, 1, true);
  }
}

// Every code through structured tables: identity, reversal, constants, and
// tables whose 16-entry rows differ only in one row (each sub-table and each
// half selected alone).
TEST_P(Bytemap, EveryCodeStructuredTables) {
  std::vector<uint8_t> in(256 * 3 + 11);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7 + i / 256);
  std::vector<std::vector<uint8_t>> tables;
  std::vector<uint8_t> t(256);
  for (int i = 0; i < 256; ++i) t[i] = static_cast<uint8_t>(i);
  tables.push_back(t);
  for (int i = 0; i < 256; ++i) t[i] = static_cast<uint8_t>(255 - i);
  tables.push_back(t);
  for (int c : {0, 0x7f, 0x80, 0xff}) tables.push_back(std::vector<uint8_t>(256, uint8_t(c)));
  for (int row = 0; row < 16; ++row) {
    for (int i = 0; i < 256; ++i) t[i] = i / 16 == row ? static_cast<uint8_t>(0xf0 | (i & 15)) : 0;
    tables.push_back(t);
  }
  for (const std::vector<uint8_t>& table : tables) {
    std::vector<uint8_t> expected(in.size()), out(in.size());
    for (size_t i = 0; i < in.size(); ++i) expected[i] = table[in[i]];
    GetParam().fn(table.data(), in.data(), out.data(), in.size());
    ASSERT_EQ(out, expected) << GetParam().name;
  }
}

// Not skipped where the CPU does not run the variant: then no table may
// carry it.
class BytemapDispatch : public ::testing::TestWithParam<Variant> {};

// The tables carry the variant exactly when the CPU runs it; the AVX-512
// level carries the VBMI variant where the CPU has VBMI, else the AVX2 one.
TEST_P(BytemapDispatch, CarriedIffCpuRunsIt) {
  EXPECT_EQ(Carried(GetParam()), CpuRuns(GetParam())) << GetParam().name;
  for (Isa isa : kAllIsas) {
    const KernelTable* t = kernel_table_for(isa);
    if (!t) continue;
    ASSERT_NE(t->map_bytes.fn, nullptr) << isa_name(isa);
    if (t->map_bytes.fn == GetParam().fn) {
      EXPECT_STREQ(t->map_bytes.name, GetParam().name);
    }
  }
  if (const KernelTable* t = kernel_table_for(Isa::kAvx512);
      t && std::string(GetParam().name) == "map_bytes__avx512vbmi") {
    EXPECT_STREQ(t->map_bytes.name,
                 CpuRuns(GetParam()) ? "map_bytes__avx512vbmi" : "map_bytes__avx2");
  }
}

std::string VariantName(const ::testing::TestParamInfo<Variant>& info) {
  return std::string(info.param.name).substr(std::strlen("map_bytes__"));
}

// The prefix puts "bytemap" in every test name (ctest -R bytemap).
INSTANTIATE_TEST_SUITE_P(bytemap, Bytemap, ::testing::ValuesIn(AllVariants()), VariantName);
INSTANTIATE_TEST_SUITE_P(bytemap, BytemapDispatch, ::testing::ValuesIn(AllVariants()), VariantName);

}  // namespace
}  // namespace lowbit::kernels
