#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; fuzz/CMakeLists.txt),
# makes their seed corpora (fuzz/make-corpus.py) and runs them.
#
#   fuzz/run.sh --ci [TARGET...]        ~30 s per target, 2 at a time (CI)
#   fuzz/run.sh --hours H [TARGET...]   H hours per target (long runs)
#   fuzz/run.sh --seconds S [TARGET...] S seconds per target
#   options: -j N (targets run at once; default 2 for --ci, 1 otherwise),
#            --no-build (use the fuzz binaries as built), --build-dir DIR
#
# Targets: onnx_import lbm_load image_decode model_config raw_frame
# kserve_infer (default: all). Per target it prints executions, exec/s,
# coverage (libFuzzer's cov = edges, ft = features) and crashes; logs and
# artifacts (crash-*, oom-*, timeout-*, leak-*) go to BUILD_DIR/fuzz-out/.
# The inputs a run discovers accumulate in BUILD_DIR/fuzz-work/<target>, so
# a later run continues from them. Exit status 1 if any target crashed.
# A crash input is committed under fuzz/regressions/<target>/ with its fix;
# ctest replays that directory in the normal build (docs/fuzzing.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
all_targets=(onnx_import lbm_load image_decode model_config raw_frame kserve_infer)
build_dir="$repo/build-fuzz"
seconds=""
jobs=""
build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) seconds=30; jobs="${jobs:-2}" ;;
    --hours) seconds=$(awk -v h="$2" 'BEGIN { printf "%d", h * 3600 }'); shift ;;
    --seconds) seconds="$2"; shift ;;
    -j) jobs="$2"; shift ;;
    --no-build) build=0 ;;
    --build-dir) build_dir="$(realpath -m "$2")"; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
if [ -z "$seconds" ]; then echo "run.sh: give --ci, --hours H or --seconds S" >&2; exit 2; fi
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t" >&2; exit 2; }
done
jobs="${jobs:-1}"

find_tool() {
  for candidate in "$@"; do
    if command -v "$candidate" >/dev/null 2>&1; then command -v "$candidate"; return; fi
  done
  return 1
}

start=$(date +%s)
if [ "$build" = 1 ]; then
  cxx=$(find_tool clang++ clang++-19) || {
    echo "run.sh: no clang++ (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 2; }
  cc=$(find_tool clang clang-19)
  if [ ! -f "$build_dir/build.ninja" ]; then
    mkdir -p "$build_dir"
    cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DLOWBIT_FUZZ=ON \
      -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF -DLOWBIT_WITH_QUANTIZER=OFF \
      ${LOWBIT_CMAKE_CCACHE:-} >"$build_dir/configure.log" 2>&1 ||
      { cat "$build_dir/configure.log" >&2; exit 1; }
  fi
  ninja -C "$build_dir" -j "${LOWBIT_BUILD_JOBS:-$(nproc)}" lowbit_fuzz_targets
  # The lowbit CLI compiles the .lbm seeds (an ASan build too, so a fuzz
  # build needs nothing else); without it make-corpus.py looks for another.
  ninja -C "$build_dir" -j "${LOWBIT_BUILD_JOBS:-$(nproc)}" lowbit >"$build_dir/lowbit-cli.log" 2>&1 ||
    echo "run.sh: the lowbit CLI did not build ($build_dir/lowbit-cli.log); .lbm seeds from another build" >&2
  echo "run.sh: built in $(( $(date +%s) - start )) s"
fi

corpus="$build_dir/corpus"
lowbit_cli=()
[ -x "$build_dir/engine/lowbit" ] && lowbit_cli=(--lowbit "$build_dir/engine/lowbit")
ASAN_OPTIONS=detect_leaks=0 "$repo/.venv/bin/python" "$repo/fuzz/make-corpus.py" \
  --out "$corpus" "${lowbit_cli[@]}" 2>&1 | grep -v '^make-corpus: lowbit compile' || true

out="$build_dir/fuzz-out"
mkdir -p "$out"

# Per-target libFuzzer options: the largest input mutated (seeds above it
# are cut) and the time one input may take.
max_len_of() {
  case "$1" in
    onnx_import|lbm_load) echo 131072 ;;
    image_decode) echo 65536 ;;
    kserve_infer) echo 32768 ;;
    *) echo 8192 ;;
  esac
}

run_target() {
  local t="$1" work="$build_dir/fuzz-work/$1" artifacts="$out/$1"
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/crash-* "$artifacts"/oom-* "$artifacts"/timeout-* "$artifacts"/leak-*
  local dict=()
  [ -f "$repo/fuzz/dict/$t.dict" ] && dict=("-dict=$repo/fuzz/dict/$t.dict")
  # Regressions join the seeds: a fixed crash stays a starting point.
  local seeds=("$corpus/$t")
  [ -d "$repo/fuzz/regressions/$t" ] && seeds+=("$repo/fuzz/regressions/$t")
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    nice -n "${LOWBIT_FUZZ_NICE:-0}" "$build_dir/fuzz/fuzz_$t" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len_of "$t")" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${dict[@]}" "$work" "${seeds[@]}" >"$out/$t.log" 2>&1 || true
}

summary() {
  local t="$1" log="$out/$1.log"
  local execs rate cov ft crashes
  execs=$(awk -F: '/stat::number_of_executed_units/ { gsub(/ /, "", $4); print $4 }' "$log" | tail -1)
  rate=$(awk -F: '/stat::average_exec_per_sec/ { gsub(/ /, "", $4); print $4 }' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{ print $2 }')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{ print $2 }')
  crashes=$(find "$out/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \
    -o -name 'leak-*' \) | wc -l)
  printf '%-14s %12s %9s %7s %7s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
  if [ "$crashes" -gt 0 ]; then
    find "$out/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \
      -o -name 'leak-*' \) -printf '    %p\n'
    grep -m3 -E 'ERROR: |runtime error:|FUZZ_CHECK' "$log" | sed 's/^/    /'
    return 1
  fi
}

echo "run.sh: ${#targets[@]} target(s), ${seconds} s each, $jobs at a time; logs in $out"
running=0
for t in "${targets[@]}"; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

status=0
printf '%-14s %12s %9s %7s %7s %8s\n' target executions exec/s cov ft crashes
for t in "${targets[@]}"; do summary "$t" || status=1; done
echo "run.sh: done in $(( $(date +%s) - start )) s ($(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores)"
exit $status
