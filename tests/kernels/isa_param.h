// Parameterises kernel tests over every ISA; variants the CPU (or this build)
// cannot run are skipped, so one run covers everything the host supports.
#pragma once

#include <gtest/gtest.h>

#include <ostream>

#include "lowbit/kernels/dispatch.h"

namespace lowbit::kernels {
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace lowbit::kernels

namespace lowbit::kernels::testing {

class IsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    table_ = kernel_table_for(GetParam());
    if (!table_) GTEST_SKIP() << isa_name(GetParam()) << " not supported here";
  }
  const KernelTable& table() const { return *table_; }

 private:
  const KernelTable* table_ = nullptr;
};

inline std::string IsaParamName(const ::testing::TestParamInfo<Isa>& info) {
  return isa_name(info.param);
}

#define LOWBIT_INSTANTIATE_ISA_TESTS(suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(AllIsas, suite,                                                   \
                           ::testing::Values(::lowbit::kernels::Isa::kScalar,                \
                                             ::lowbit::kernels::Isa::kAvx2,                  \
                                             ::lowbit::kernels::Isa::kNeon),                 \
                           ::lowbit::kernels::testing::IsaParamName)

}  // namespace lowbit::kernels::testing
