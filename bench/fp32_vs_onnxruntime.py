#!/usr/bin/env python3
"""FP32 inference latency: lowbit vs ONNX Runtime, same model, same input, same run.

    .venv/bin/python bench/fp32_vs_onnxruntime.py [--model models/nanodet-g]
        [--image data/images/dog.jpg] [--runs 30] [--warmup 5] [--lowbit PATH]

1. `lowbit run MODEL IMAGE --dump DIR` pre-processes the image exactly as the
   engine does and writes DIR/input.npy plus the engine's raw outputs.
2. ONNX Runtime runs MODEL/model.onnx (the file the engine loads) on that same
   input.npy; its outputs are compared with the engine's (max |difference|;
   the exit status is 1 when it exceeds 1e-4 of an output's largest value).
3. Latency: `lowbit bench --json` at 1 and 2 threads (Session::Run only), and
   ONNX Runtime InferenceSession.run with intra_op_num_threads 1 and 2,
   sequential execution, inter_op_num_threads 1, graph optimisations on.
   Every figure is the median/p90/min of RUNS calls after WARMUP calls.

Run from the repository root (paths are repo-relative). Needs the .venv
(numpy, onnxruntime) and a built `lowbit` CLI.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent


def find_lowbit(explicit: str | None) -> Path:
    """--lowbit, else $LOWBIT_BIN, else the build deploy/build.sh makes."""
    path = Path(explicit or os.environ.get("LOWBIT_BIN") or REPO / "build" / "engine" / "lowbit")
    if not path.is_file():
        sys.exit(f"{path} not found: build it (deploy/build.sh) or pass --lowbit PATH")
    return path


def model_file(model_dir: Path) -> Path:
    """MODEL_DIR/<model_file from config.pbtxt, default model.onnx>."""
    name = "model.onnx"
    config = model_dir / "config.pbtxt"
    if not config.exists():
        sys.exit(f"{config} is missing; run deploy/models/fetch-models.sh")
    for line in config.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("model_file:"):
            name = line.split(":", 1)[1].strip().strip('"')
    return model_dir / name


def summarize(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p90_index = max(0, -(-9 * len(ordered) // 10) - 1)  # nearest rank
    return {"median_ms": statistics.median(ordered), "p90_ms": ordered[p90_index],
            "min_ms": ordered[0]}


def bench_lowbit(lowbit: Path, model_dir: Path, image: Path, threads: int, runs: int,
                 warmup: int) -> dict[str, float]:
    result = subprocess.run(
        [str(lowbit), "bench", str(model_dir), "--image", str(image), "--threads", str(threads),
         "--runs", str(runs), "--warmup", str(warmup), "--json"],
        check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def bench_onnxruntime(model_path: Path, feeds: dict[str, np.ndarray], threads: int, runs: int,
                      warmup: int) -> tuple[dict[str, float], list[np.ndarray], list[str]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = session.run(None, feeds)
    for _ in range(warmup):
        session.run(None, feeds)
    samples_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        samples_ms.append((time.perf_counter() - start) * 1e3)
    return summarize(samples_ms), outputs, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/nanodet-g", help="model repository entry")
    parser.add_argument("--image", default="data/images/dog.jpg", help="JPEG/PNG input")
    parser.add_argument("--runs", type=int, default=30, help="timed runs (>= 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--lowbit", help="lowbit CLI (default: $LOWBIT_BIN or build/engine/lowbit)")
    args = parser.parse_args()
    if args.runs < 30:
        parser.error("--runs must be >= 30 for a stable median")
    model_dir, image = Path(args.model), Path(args.image)
    if not image.exists():
        sys.exit(f"{image} is missing; run deploy/fetch-images.sh")
    lowbit = find_lowbit(args.lowbit)
    onnx_path = model_file(model_dir)

    dump = Path(tempfile.mkdtemp(prefix="lowbit_bench_"))
    try:
        subprocess.run([str(lowbit), "run", str(model_dir), str(image), "--dump", str(dump)],
                       check=True, capture_output=True, text=True)
        input_tensor = np.load(dump / "input.npy")
        probe = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        feeds = {probe.get_inputs()[0].name: input_tensor}

        rows = []
        reference_outputs = None
        for threads in (1, 2):
            lowbit_result = bench_lowbit(lowbit, model_dir, image, threads, args.runs, args.warmup)
            ort_result, outputs, names = bench_onnxruntime(onnx_path, feeds, threads, args.runs,
                                                           args.warmup)
            reference_outputs = reference_outputs or dict(zip(names, outputs))
            rows.append((threads, lowbit_result, ort_result))

        load_1min = os.getloadavg()[0]
        print(f"model {model_dir} ({onnx_path.name}), image {image}, input "
              f"{list(input_tensor.shape)}, {args.runs} runs after {args.warmup} warm-up, "
              f"onnxruntime {ort.__version__}, lowbit {lowbit}")
        print(f"load average (1 min) {load_1min:.2f} on {os.cpu_count()} CPUs; other work on the "
              "machine inflates both runtimes' figures")
        worst = 0.0
        for name, expected in reference_outputs.items():
            actual = np.load(dump / (name.replace("/", "_").replace("\\", "_") + ".npy"))
            difference = float(np.abs(actual - expected).max()) if actual.shape == expected.shape \
                else float("inf")
            scale = max(1.0, float(np.abs(expected).max()))
            worst = max(worst, difference / scale)
            print(f"  output {name} {list(expected.shape)}: max |lowbit - onnxruntime| = "
                  f"{difference:.3g} (output max |value| {scale:.3g})")
        print()
        print(f"{'threads':>7}  {'lowbit median':>13}  {'p90':>8}  {'min':>8}  "
              f"{'ORT median':>10}  {'p90':>8}  {'min':>8}  {'lowbit/ORT':>10}")
        for threads, mine, theirs in rows:
            print(f"{threads:>7}  {mine['median_ms']:>10.2f} ms  {mine['p90_ms']:>8.2f}  "
                  f"{mine['min_ms']:>8.2f}  {theirs['median_ms']:>7.2f} ms  "
                  f"{theirs['p90_ms']:>8.2f}  {theirs['min_ms']:>8.2f}  "
                  f"{mine['median_ms'] / theirs['median_ms']:>9.2f}x")
        print("\n(lowbit/ORT > 1 means lowbit is slower; median latency of one Run call.)")
        if worst >= 1e-4:
            print(f"MISMATCH: outputs differ by {worst:.3g} of their scale (limit 1e-4)")
            return 1
        return 0
    finally:
        shutil.rmtree(dump, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
