#!/usr/bin/env bash
# The C++ tests under gcc's sanitizers, with assertions on (docs/testing.md):
#   asan  build-asan/ (-DLOWBIT_SANITIZE=address,undefined): the unit, kernel
#         and end-to-end ctest tests under ASan + UBSan (UBSan and ASan stop at
#         the first finding; LeakSanitizer checks every test process at exit)
#   tsan  build-tsan/ (-DLOWBIT_SANITIZE=thread): the scheduler, batch policy,
#         log limiter and engine-backend tests under TSan
#   soak  bench/soak.py against build-asan's lowbitd at 2x overload for
#         SOAK_MINUTES (default 2): memory, descriptors and threads flat,
#         no frame left unanswered, a clean ASan/LSan exit
#
#   tests/sanitize.sh                 all three, in that order
#   tests/sanitize.sh tsan            one section (or several: asan soak)
#
# Needs what deploy/build.sh makes (packages, .venv, models/, data/images/).
# Bounded for CI (2 cores, no compiler cache): about 12 minutes from nothing.
# LOWBIT_SANITIZE_CMAKE_ARGS adds configure flags (e.g. a compiler launcher).
# Exit status 1 if any section failed; every section runs regardless.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${LOWBIT_SANITIZE_JOBS:-$(nproc)}"
supp="$repo/tests/sanitizers"
read -r -a extra_cmake <<<"${LOWBIT_SANITIZE_CMAKE_ARGS:-}"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(asan tsan soak)

export LOWBIT_MODEL_REPO="${LOWBIT_MODEL_REPO:-$repo/models}"
export LOWBIT_IMAGES="${LOWBIT_IMAGES:-$repo/data/images}"
# Sanitizer settings shared by the sections. halt_on_error: the first report
# fails the test; UBSan's -fno-sanitize-recover (cmake/LowbitSanitize.cmake)
# makes every UBSan check fatal too. Third-party findings (uninstrumented gRPC,
# protobuf, XNNPACK) are suppressed by name in tests/sanitizers/*.supp, each
# with its reason.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=0:suppressions=$supp/asan.supp"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$supp/tsan.supp"

status=0
start_all=$SECONDS

configure_and_build() {  # dir sanitizers targets...
  local dir="$1" sanitizers="$2"
  shift 2
  local start=$SECONDS
  cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_SANITIZE="$sanitizers" \
    -DLOWBIT_BUILD_BENCHMARKS=OFF -DLOWBIT_WITH_QUANTIZER=OFF "${extra_cmake[@]}" >/dev/null &&
    cmake --build "$dir" -j "$jobs" --target "$@" &&
    echo "sanitize: $dir built in $((SECONDS - start)) s"
}

# ASan + UBSan: every ctest test of the labels unit, kernels and e2e (the
# quantizer is configured off: an offline tool whose tests would add minutes
# of build and run time to CI).
asan_section() {
  echo "== ASan + UBSan: unit, kernel and end-to-end tests (build-asan)"
  local dir="$repo/build-asan"
  # Every directory that holds ctest executables (fuzz/: the fuzz targets'
  # replays of their seed corpora).
  if ! configure_and_build "$dir" address,undefined kernels/all engine/all server/all tests/all fuzz/all; then
    echo "sanitize: ASan build failed" >&2
    return 1
  fi
  local start=$SECONDS
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 300 -L 'unit|kernels|e2e') || return 1
  echo "sanitize: ASan + UBSan tests done in $((SECONDS - start)) s"
}

# TSan: the tests whose subject is threads: the scheduler and batcher (fake
# backend, fake clock), the batch policy, the log limiter and the engine
# backend on the real model. Not the tests that link gRPC (front end,
# metrics, registry, end to end): gRPC, abseil and protobuf are Debian's
# uninstrumented builds, so TSan cannot see their synchronisation and would
# report their hand-offs as races; and lowbit_server would double the build.
tsan_section() {
  echo "== TSan: scheduler, batch policy, log limit and engine backend tests (build-tsan)"
  local dir="$repo/build-tsan"
  local targets=(server_scheduler_test server_scheduler_frames_test server_batch_policy_test
                 server_log_limit_test server_engine_backend_test)
  if ! configure_and_build "$dir" thread "${targets[@]}"; then
    echo "sanitize: TSan build failed" >&2
    return 1
  fi
  local start=$SECONDS
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 300 -R \
     '^(SchedulerTest|SchedulerFramesTest|BatchPolicySimulationTest|ChooseBatchTest|ServiceTimeEstimatorTest|LogLimiterTest|EngineBackendTest)[.]') || return 1
  echo "sanitize: TSan tests done in $((SECONDS - start)) s"
}

soak_section() {
  echo "== Soak: build-asan's lowbitd at 2x overload for ${SOAK_MINUTES:-2} min"
  local server="$repo/build-asan/server/lowbitd"
  if [ ! -x "$server" ]; then
    configure_and_build "$repo/build-asan" address,undefined lowbitd || return 1
  fi
  "$repo/.venv/bin/python" "$repo/bench/soak.py" --server "$server" --minutes "${SOAK_MINUTES:-2}" \
    --log-dir "$repo/build-asan/soak"
}

for section in "${sections[@]}"; do
  case "$section" in
    asan) asan_section || status=1 ;;
    tsan) tsan_section || status=1 ;;
    soak) soak_section || status=1 ;;
    *) echo "sanitize: unknown section '$section' (asan, tsan, soak)" >&2; status=1 ;;
  esac
done
echo "sanitize: done in $((SECONDS - start_all)) s, status $status"
exit $status
