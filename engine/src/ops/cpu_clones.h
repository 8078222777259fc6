// Loops the compiler vectorises, compiled for more than the baseline ISA.
//
// The engine is built for the baseline (x86-64: SSE2; AArch64: NEON). A
// function marked LOWBIT_X86_CLONES is also compiled for AVX2+FMA and
// AVX-512 on x86-64, the CPU's best chosen once at load (an ifunc); inline
// functions it calls are compiled into each clone. Mark only non-template
// functions (clang does not clone templates) whose loops vectorise.
#pragma once

// Not under ThreadSanitizer: an ifunc resolver runs while the dynamic loader
// relocates, before TSan's runtime is up, and TSan instruments it (the
// binaries crash at start). TSan builds keep the baseline loop.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOWBIT_NO_CLONES 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define LOWBIT_NO_CLONES 1
#endif

#if defined(__x86_64__) && !defined(LOWBIT_NO_CLONES)
#define LOWBIT_X86_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define LOWBIT_X86_CLONES
#endif
