// Loops the compiler vectorises, compiled for more than the baseline ISA.
//
// The engine is built for the baseline (x86-64: SSE2; AArch64: NEON). A
// function marked LOWBIT_X86_CLONES is also compiled for AVX2+FMA and
// AVX-512 on x86-64, the CPU's best chosen once at load (an ifunc); inline
// functions it calls are compiled into each clone. Mark only non-template
// functions (clang does not clone templates) whose loops vectorise.
#pragma once

#if defined(__x86_64__)
#define LOWBIT_X86_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define LOWBIT_X86_CLONES
#endif
