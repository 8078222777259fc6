#!/usr/bin/env python3
"""Speed of the imported models (SSD-MobileNetV2, YOLOv8n, PP-LCNet), FP32 and W8A8, beside
ONNX Runtime FP32 and INT8, in one run, at 1 and 2 threads.

    .venv/bin/python bench/byo_vs_onnxruntime.py [--lowbit build/engine/lowbit] [--runs 30] [--rounds 3]

Per model: the FP32 entry (deploy/models/<name>/ + models/_import/<name>/model.onnx), its
W8A8 entry from `lowbit quantize`, ONNX Runtime on the FP32 ONNX and on ONNX Runtime's own
quantize_static (QDQ, per-channel QInt8 weights, QUInt8 activations). Both quantizers
calibrate on the same 4 frames of data/images/vtest.avi (frames i * n / 4, written as PNGs;
ONNX Runtime's reader gets them pre-processed by `lowbit run --dump`). Timed: one inference
call on dog.jpg's tensor, median of --runs (lowbit: `lowbit bench`, Session::Run; ONNX
Runtime: session.run, intra_op_num_threads = threads, sequential). The four runtimes take turns
for --rounds rounds and each cell is the lowest of its rounds' medians, so a moment of load
from another tenant does not decide a cell. Prints the CPU model and
ISA flags (lscpu) and `uptime` before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ["ssd-mobilenetv2-oid", "yolov8n-nudenet", "pp-lcnet-orientation"]
CALIBRATION_FRAMES = 4


def run_text(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def calibration_pngs(out: Path) -> list[Path]:
    import cv2

    capture = cv2.VideoCapture(str(REPO / "data" / "images" / "vtest.avi"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    out.mkdir(parents=True)
    paths = []
    for i in range(CALIBRATION_FRAMES):
        path = out / f"frame{i:02d}.png"
        cv2.imwrite(str(path), frames[i * len(frames) // CALIBRATION_FRAMES])
        paths.append(path)
    return paths


def dumped_input(lowbit: Path, entry: Path, image: Path, scratch: Path) -> np.ndarray:
    scratch.mkdir(parents=True, exist_ok=True)
    run_text([str(lowbit), "run", str(entry), str(image), "--dump", str(scratch)])
    return np.load(scratch / "input.npy")


def ort_int8(fp32: Path, out: Path, inputs: list[np.ndarray]) -> None:
    import onnxruntime.quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            import onnx

            self.name = onnx.load(str(fp32)).graph.input[0].name
            self.items = iter(inputs)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {self.name: x}

    q.quantize_static(str(fp32), str(out), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)


def time_ort(model: Path, x: np.ndarray, threads: int, runs: int, warmup: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def time_lowbit(lowbit: Path, entry: Path, image: Path, threads: int, runs: int, warmup: int) -> float:
    out = run_text([str(lowbit), "bench", str(entry), "--image", str(image), "--threads", str(threads),
                    "--runs", str(runs), "--warmup", str(warmup), "--json"])
    return float(json.loads(out)["median_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lowbit", type=Path, default=REPO / "build" / "engine" / "lowbit",
                        help="the lowbit CLI (default build/engine/lowbit)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measurement (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of all four runtimes in turn; a cell is its best median (default 3)")
    args = parser.parse_args()
    lscpu = run_text(["lscpu"])
    for line in lscpu.splitlines():
        if line.startswith("Model name:"):
            print(line.strip())
        if line.startswith("Flags:"):
            flags = set(line.split()[1:])
            print("ISA:", " ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni",
                                               "avx_vnni") if f in flags))
    print("uptime before:", run_text(["uptime"]).strip())
    image = REPO / "data" / "images" / "dog.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        calib = calibration_pngs(root / "calib")
        rows = []
        for name in MODELS:
            fp32 = root / name
            shutil.copytree(REPO / "deploy" / "models" / name, fp32)
            (fp32 / "model.onnx").symlink_to(REPO / "models" / "_import" / name / "model.onnx")
            w8a8 = root / f"{name}-w8a8"
            run_text([str(args.lowbit), "quantize", str(fp32), "--calib", str(root / "calib"),
                      "--frames", str(CALIBRATION_FRAMES), "-o", str(w8a8)])
            inputs = [dumped_input(args.lowbit, fp32, c, root / "dump" / name / c.stem) for c in calib]
            x = dumped_input(args.lowbit, fp32, image, root / "dump" / name / "timed")
            # ONNX Runtime needs the fixed size lowbit gives a dynamic export (YOLOv8n).
            fixed = root / f"{name}-fixed.onnx"
            import onnx

            proto = onnx.load(str(fp32 / "model.onnx"))
            for d, size in list(enumerate(x.shape))[1:]:
                dim = proto.graph.input[0].type.tensor_type.shape.dim[d]
                if not dim.HasField("dim_value"):
                    dim.dim_value = size
            # Per-channel DequantizeLinear (axis) needs opset 13 (tflite2onnx writes 11).
            opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
            if opset < 13:
                from onnx import version_converter

                proto = version_converter.convert_version(proto, 13)
            onnx.save(proto, str(fixed))
            int8 = root / f"{name}-ort-int8.onnx"
            ort_int8(fixed, int8, inputs)
            for threads in (1, 2):
                cells = [float("inf")] * 4
                for _ in range(args.rounds):
                    medians = (time_lowbit(args.lowbit, fp32, image, threads, args.runs, args.warmup),
                               time_lowbit(args.lowbit, w8a8, image, threads, args.runs, args.warmup),
                               time_ort(fixed, x, threads, args.runs, args.warmup),
                               time_ort(int8, x, threads, args.runs, args.warmup))
                    cells = [min(c, m) for c, m in zip(cells, medians)]
                rows.append((name, threads, *cells))
    print(f"{'model':24s} {'thr':>3s} {'lowbit FP32':>12s} {'lowbit W8A8':>12s} {'ORT FP32':>10s} "
          f"{'ORT INT8':>10s}   (ms, best of {args.rounds} medians of {args.runs})")
    for name, threads, lf, lq, of, oq in rows:
        print(f"{name:24s} {threads:3d} {lf:12.2f} {lq:12.2f} {of:10.2f} {oq:10.2f}")
    print("uptime after:", run_text(["uptime"]).strip())


if __name__ == "__main__":
    main()
