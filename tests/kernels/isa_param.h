// Parameterises kernel tests over every ISA this binary carries and this CPU
// runs (scalar always; AVX2, AVX-VNNI and AVX-512 on x86-64, NEON, dotprod
// and i8mm on AArch64), so one run covers
// every variant the host supports and none is reported as skipped.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <vector>

#include "lowbit/kernels/dispatch.h"

namespace lowbit::kernels {
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace lowbit::kernels

namespace lowbit::kernels::testing {

inline std::vector<Isa> RunnableIsas() {
  std::vector<Isa> isas;
  for (Isa isa : kEveryIsa) {
    if (kernel_table_for(isa) != nullptr) isas.push_back(isa);
  }
  return isas;
}

class IsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    table_ = kernel_table_for(GetParam());
    ASSERT_NE(table_, nullptr) << isa_name(GetParam());
  }
  const KernelTable& table() const { return *table_; }

 private:
  const KernelTable* table_ = nullptr;
};

inline std::string IsaParamName(const ::testing::TestParamInfo<Isa>& info) {
  return isa_name(info.param);
}

#define LOWBIT_INSTANTIATE_ISA_TESTS(suite)                                                  \
  INSTANTIATE_TEST_SUITE_P(AllIsas, suite,                                                  \
                           ::testing::ValuesIn(::lowbit::kernels::testing::RunnableIsas()), \
                           ::lowbit::kernels::testing::IsaParamName)

}  // namespace lowbit::kernels::testing
