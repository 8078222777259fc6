// AddressSanitizer view of the activation arena (tests/sanitize.sh).
//
// The arena is one heap block, so ASan alone would only catch an access past
// its end. In an ASan build the session poisons the whole arena around each
// step and unpoisons exactly the step's operands: every non-constant input
// and output (its value's bytes x batch) and the kernel's workspace
// (workspace_bytes(batch)). A kernel that reads or writes past an operand's
// declared size, e.g. a padded format whose slack is not counted in its size,
// is then reported like an overflow of a heap block. Elsewhere these are
// no-ops.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace lowbit::engine::runtime {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kArenaPoisoning = true;
inline void PoisonArenaBytes(const void* p, size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
inline void UnpoisonArenaBytes(const void* p, size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
#else
inline constexpr bool kArenaPoisoning = false;
inline void PoisonArenaBytes(const void*, size_t) {}
inline void UnpoisonArenaBytes(const void*, size_t) {}
#endif

}  // namespace lowbit::engine::runtime
