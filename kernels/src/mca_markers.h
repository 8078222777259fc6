// llvm-mca region markers for bench/arm-sim.
//
// A kernel marks one iteration of its inner loop with
//   LOWBIT_MCA_BEGIN("kernel_name"); ...loop body...; LOWBIT_MCA_END();
// In normal builds both expand to nothing, so the production code is
// unchanged. bench/arm-sim compiles the kernel sources to assembly with
// -DLOWBIT_MCA_MARKERS, where they become the `# LLVM-MCA-BEGIN name` /
// `# LLVM-MCA-END` comments llvm-mca reads (the `//` form is not recognised).
// The markers are volatile asm, so they can move gcc's register allocation a
// little; bench/arm-sim's figures are static estimates in any case.
#pragma once

#if defined(LOWBIT_MCA_MARKERS)
#define LOWBIT_MCA_BEGIN(name) asm volatile("# LLVM-MCA-BEGIN " name)
#define LOWBIT_MCA_END() asm volatile("# LLVM-MCA-END")
#else
#define LOWBIT_MCA_BEGIN(name) ((void)0)
#define LOWBIT_MCA_END() ((void)0)
#endif
