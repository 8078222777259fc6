#!/usr/bin/env python3
"""Accuracy of post-training quantization against the FP32 model: the table of issue 7.

    .venv/bin/python bench/quantize_accuracy.py [--quick] [--quantizer lowbit|make_quantized]
        [--models nanodet,blazeface] [--lowbit PATH] [--threads 2] [--work DIR]
        [--out TABLE.json] [--markdown TABLE.md] [--no-ort]

For NanoDet (models/nanodet-g) and BlazeFace (models/blazeface) it builds every quantized
model, runs it and the FP32 model on the same evaluation images with `lowbit run --json`,
and prints one markdown table (also written as JSON) with a row per recipe x scale method.

Evaluation set: every photo in data/images (*.jpg, *.png) plus frames of
data/images/vtest.avi that no model was calibrated on. Frames are decoded once with
OpenCV and written as PNG (lossless) so every model sees the same pixels.
Calibration: the quantizer's contract, `lowbit quantize ... --calib vtest.avi --frames N`
takes frames floor(i * total / N), i = 0..N-1 (N = 32). The evaluation frames are every
EVAL_STRIDE-th (7th) index of the frames NOT in that set (>= 100 of vtest.avi's 795).
`lowbit quantize` also lists the frames it used (quantize-report.json,
"calibration_frames"); when it does, they are checked to be disjoint from the evaluation
frames. Both index lists are printed and written to the JSON.

Metrics, with FP32's detections at the config's score threshold (NanoDet 0.35,
BlazeFace 0.5) as the ground truth:
  mAP@0.5   the quantized model's detections at --low-score (0.05), after the config's
            NMS and max_detections (100), ranked by score; per class, VOC-style: over all
            images, by falling score each detection is a true positive when its best-IoU
            same-class ground-truth box in its image has IoU >= 0.5 and is not matched yet;
            AP = area under the all-point interpolated precision/recall curve; the mean
            over the classes present in the ground truth. FP32 itself scores 1.0 by
            construction (a sanity row).
  recall    per image, the fraction of FP32's detections matched (one to one, greedy by
            the quantized model's falling score, best IoU first) by a same-label quantized
            detection with IoU >= 0.5 at the config's threshold; the mean over the images
            where FP32 finds something (the others are excluded; the count is printed).
  weight bytes  `lowbit inspect ENTRY`'s total as stored (packed weights, bias,
            requantization scales); x W8 is the ratio to the W8A8 model's.
The quantized model's detections at the config's threshold are its --low-score ones
filtered at that threshold: class-wise NMS only suppresses by higher scores, so this is
exactly its run at the config's threshold (tests/engine/test_lowbit_cli.py checks it).

Quantizers (--quantizer):
  lowbit          `lowbit quantize MODEL_DIR --calib vtest.avi --frames N -o OUT --wbits W
                  --abits A --method minmax|mse [--weight-budget BYTES]` (the default)
  make_quantized  the Python QCDQ oracle deploy/models/make_quantized.py as a stand-in,
                  calibrated on the same N frames (PNG); --act-calib minmax|mse sets the
                  activation ranges only (weights are always max-abs per channel), and the
                  mixed row is its fixed --mixed recipe, not a budget search
Recipes: NanoDet W8A8, W4A8, W4A4, W2A4, W2A2 x {minmax, mse} and a mixed model (mse)
with --weight-budget = 25% of the W8A8 model's weight bytes; BlazeFace W8A8 and W4A8 x
{minmax, mse}. First and last convolutions stay at 8 bits (the quantizers' default).
Baselines: ONNX Runtime's quantize_static (QDQ, per_channel=True, activations QUInt8,
weights QInt8, CalibrationMethod.MinMax and .Percentile with ORT's default options),
calibrated on the same N frames, pre-processed as lowbit does (checked against
`lowbit run --dump` on a calibration frame), op_types_to_quantize=["Conv"]: with every
op type ORT also quantizes NanoDet's -inf Pad in front of its MaxPool and the model
detects nothing (make_quantized.py's docstring). Every model, ORT's too, is evaluated by
`lowbit run --json`.
Cross-check (--cross-check photos|one|none): on every photo, each model's raw outputs and
detections are compared with ONNX Runtime's on the same input tensor (lowbit's --dump),
with ORT's default graph optimisation (Q/DQ fused into integer kernels) and with none (Q/DQ
executed as written); ORT's outputs are decoded by decode_nanodet / decode_blazeface below,
which mirror engine/src/vision/heads.cc and are themselves checked on lowbit's outputs.
A one-code rounding difference in an early layer (a value on a rounding boundary, float vs
integer accumulation) can grow through the network, so "same detections" is counted per
photo; ORT's two modes differ from each other in the same way.

--quick: 8 calibration frames, 20 evaluation frames, NanoDet W8A8/W4A8 (mse) and W4A8
(minmax), BlazeFace W8A8 (mse), ORT MinMax only, cross-check on one photo: about a minute
with the stand-in, for CI.
Everything is rebuilt on each run in --work (default .cache/quantize-accuracy, not in git).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy" / "models"))
import make_quantized as mq  # noqa: E402

IOU_MATCH = 0.5
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f} s] {message}", file=sys.stderr, flush=True)


# --- models: decoders mirroring engine/src/vision/heads.cc and nms.cc -----------------------
def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float, limit: int):
    """Indices kept by class-wise greedy NMS (falling score, ties in order; suppressed
    by IoU > iou_threshold with a kept box of its class), at most `limit`."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(kept) >= limit:
            break
        if all(classes[k] != classes[i] or iou(boxes[i], boxes[k]) <= iou_threshold for k in kept):
            kept.append(int(i))
    return kept


def decode_nanodet(outputs: dict[str, np.ndarray], width: int, height: int, score_threshold: float):
    """[(class, score, [x0, y0, x1, y1])]: per cell the best class; each side the
    expectation of softmax over 11 bins times the stride; box (cx - l, cy - t, cx + r,
    cy + b) scaled to the image and clipped to it; NMS IoU 0.5, at most 100."""
    boxes, scores, classes = [], [], []
    for stride in (8, 16, 32):
        cls = outputs[f"cls_stride{stride}"][0].astype(np.float32)
        reg = outputs[f"box_stride{stride}"][0].reshape(-1, 4, 11).astype(np.float32)
        grid = -(-416 // stride)
        rows, cols = np.divmod(np.arange(grid * grid), grid)
        p = np.exp(reg - reg.max(axis=2, keepdims=True))
        d = (p * np.arange(11, dtype=np.float32)).sum(axis=2) / p.sum(axis=2) * stride
        cx, cy = (cols + 0.5) * stride, (rows + 0.5) * stride
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1))
        scores.append(cls.max(axis=1))
        classes.append(cls.argmax(axis=1))
    boxes, scores, classes = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    keep = scores >= score_threshold
    boxes = np.clip(boxes[keep] * np.array([width, height] * 2) / 416, 0, [width, height] * 2)
    scores, classes = scores[keep], classes[keep]
    return [(int(classes[k]), float(scores[k]), boxes[k]) for k in nms(boxes, scores, classes, 0.5, 100)]


def decode_blazeface(outputs: dict[str, np.ndarray], width: int, height: int, score_threshold: float):
    """[(0, score, [x0, y0, x1, y1])]: 896 anchors (16x16 x 2, then 8x8 x 6, centres
    ((col + 0.5) / g, (row + 0.5) / g)); box centre anchor + r[0:2] / 128, size r[2:4] /
    128, in image pixels clipped to the image; score sigmoid(logit); NMS IoU 0.3, at most 100."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        rows, cols = np.divmod(np.arange(grid * grid), grid)
        centres.append(np.repeat(np.stack([(cols + 0.5) / grid, (rows + 0.5) / grid], 1), per_cell, 0))
    anchors = np.concatenate(centres).astype(np.float32)
    logits = np.concatenate([outputs["Identity:0"][0, :, 0], outputs["Identity_1:0"][0, :, 0]])
    r = np.concatenate([outputs["Identity_2:0"][0], outputs["Identity_3:0"][0]]).astype(np.float32) / 128
    scores = 1 / (1 + np.exp(-logits.astype(np.float64)))
    cx, cy = anchors[:, 0] + r[:, 0], anchors[:, 1] + r[:, 1]
    boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
    keep = scores >= score_threshold
    boxes = np.clip(boxes[keep] * np.array([width, height] * 2), 0, [width, height] * 2)
    scores = scores[keep]
    return [(0, float(scores[k]), boxes[k]) for k in nms(boxes, scores, np.zeros(len(scores)), 0.3, 100)]


# Recipes: (wbits, abits, scales, variant). Variants of lowbit quantize:
#   "default"  its defaults: error-compensating (gptq) rounding, bias correction;
#   "plain"    --rounding nearest --no-bias-correction: the scales alone;
#   mixed recipes are ("mixed", share of the W8A8 weight bytes, "mse", rule).
PLAIN = ("--rounding", "nearest", "--no-bias-correction")
MIXED_CANDIDATES = "8/8,4/8,4/4,2/4,2/2,1/4"
MODELS = {
    "nanodet": dict(
        entry="nanodet-g", title="NanoDet-g", decode=decode_nanodet, check_photo="dog.jpg",
        recipes=[r for w, a in ((8, 8), (4, 8), (4, 4), (2, 4), (2, 2))
                 for r in ((w, a, "minmax", "default"), (w, a, "mse", "plain"), (w, a, "mse", "default"))]
        + [("mixed", share, "mse", rule) for share in (0.25, 0.51) for rule in ("sensitivity", "largest-layer")],
        quick=[(8, 8, "mse", "default"), (4, 8, "minmax", "default"), (4, 8, "mse", "default")]),
    "blazeface": dict(
        entry="blazeface", title="BlazeFace", decode=decode_blazeface, check_photo="astronaut.png",
        recipes=[r for w, a in ((8, 8), (4, 8))
                 for r in ((w, a, "minmax", "default"), (w, a, "mse", "plain"), (w, a, "mse", "default"))],
        quick=[(8, 8, "mse", "default")]),
}


# --- helpers ----------------------------------------------------------------------
def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run_checked(command: list, what: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}): {' '.join(map(str, command))}\n"
                 f"{result.stderr[-4000:]}{result.stdout[-2000:]}")
    return result


def config_threshold(entry: pathlib.Path) -> float:
    match = re.search(r"^score_threshold:\s*([\d.]+)", (entry / "config.pbtxt").read_text(), re.M)
    if not match:
        sys.exit(f"{entry}/config.pbtxt has no score_threshold")
    return float(match.group(1))


def make_entry(source: pathlib.Path, target: pathlib.Path, onnx_model=None) -> pathlib.Path:
    """A model repository entry at `target`: the source entry's config and labels, and
    `onnx_model` (a ModelProto or a path) as model.onnx."""
    import onnx

    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copyfile(source / name, target / name)
    if isinstance(onnx_model, (str, pathlib.Path)):
        shutil.copyfile(onnx_model, target / "model.onnx")
    elif onnx_model is not None:
        onnx.save(onnx_model, str(target / "model.onnx"))
    return target


def cpu_description() -> str:
    name, flags = "unknown CPU", set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == "unknown CPU":
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name}, {os.cpu_count()} CPUs, {' '.join(isa) or 'no AVX2'}"


# --- images and frames --------------------------------------------------------------
def photos(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def frame_plan(total: int, calib_count: int, eval_stride: int, eval_limit: int | None):
    """(calibration indices floor(i * total / N), evaluation indices: every eval_stride-th
    index of the others, the first eval_limit of them when given)."""
    calib = sorted({i * total // calib_count for i in range(calib_count)})
    others = [k for k in range(total) if k not in set(calib)]
    evaluation = others[::eval_stride]
    return calib, evaluation[:eval_limit] if eval_limit else evaluation


def count_frames(video: pathlib.Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        sys.exit(f"cannot open {video} with OpenCV")
    total = 0
    while capture.grab():
        total += 1
    return total


def extract_frames(video: pathlib.Path, indices: list[int], directory: pathlib.Path) -> dict[int, pathlib.Path]:
    """Frames `indices` (decode order from 0) as DIR/frame_NNNN.png."""
    import cv2

    directory.mkdir(parents=True, exist_ok=True)
    wanted, paths = set(indices), {}
    capture = cv2.VideoCapture(str(video))
    index = 0
    while capture.grab() and len(paths) < len(wanted):
        if index in wanted:
            ok, frame = capture.retrieve()
            if not ok:
                sys.exit(f"{video}: cannot decode frame {index}")
            paths[index] = directory / f"frame_{index:04d}.png"
            cv2.imwrite(str(paths[index]), frame)
        index += 1
    missing = wanted - set(paths)
    if missing:
        sys.exit(f"{video}: frames {sorted(missing)[:5]}... not found")
    return paths


# --- lowbit ---------------------------------------------------------------------------
def lowbit_detections(lowbit: pathlib.Path, entry: pathlib.Path, images: list[pathlib.Path],
                      score: float, threads: int) -> dict[str, list[dict]]:
    """path -> detections of `lowbit run ENTRY IMAGES --json --score SCORE`."""
    result = run_checked([lowbit, "run", entry, *images, "--json", "--score", score, "--threads", threads],
                         f"lowbit run {entry.name}")
    by_path = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        if "error" in record:
            sys.exit(f"lowbit run {entry.name}: {record['path']}: {record['error']}")
        by_path[record["path"]] = record["detections"]
    if set(by_path) != {str(p) for p in images}:
        sys.exit(f"lowbit run {entry.name}: expected {len(images)} images, got {len(by_path)}")
    return by_path


def weight_bytes(lowbit: pathlib.Path, entry: pathlib.Path) -> int:
    """The 'weights N bytes ... as stored' total of `lowbit inspect ENTRY`."""
    text = run_checked([lowbit, "inspect", entry], f"lowbit inspect {entry.name}").stdout
    match = re.search(r"^weights ([\d,]+) bytes", text, re.M)
    if not match:
        sys.exit(f"lowbit inspect {entry}: no 'weights N bytes' line")
    return int(match.group(1).replace(",", ""))


def lowbit_inputs(lowbit: pathlib.Path, entry: pathlib.Path, images: list[pathlib.Path],
                  directory: pathlib.Path) -> dict[pathlib.Path, np.ndarray]:
    """path -> the input tensor lowbit's own pre-processing makes of it (`run --dump`)."""
    tensors = {}
    for k, image in enumerate(images):
        target = directory / f"{k:03d}"
        run_checked([lowbit, "run", entry, image, "--dump", target, "--json"], f"lowbit run --dump {image.name}")
        tensors[image] = np.load(target / "input.npy")
        shutil.rmtree(target)
    return tensors


# --- metrics ----------------------------------------------------------------------------
def average_precision(predictions: list[tuple[float, str, list]], truth: dict[str, list[list]]) -> float:
    """VOC all-point AP of one class: predictions (score, image, box) over all images,
    truth image -> boxes of the class."""
    positives = sum(len(b) for b in truth.values())
    matched = {image: [False] * len(b) for image, b in truth.items()}
    hits = []
    for _, image, box in sorted(predictions, key=lambda p: -p[0]):
        boxes = truth.get(image, [])
        overlaps = [iou(box, b) for b in boxes]
        best = int(np.argmax(overlaps)) if overlaps else -1
        hit = best >= 0 and overlaps[best] >= IOU_MATCH and not matched[image][best]
        if hit:
            matched[image][best] = True
        hits.append(hit)
    tp = np.cumsum(hits, dtype=np.float64)
    fp = np.cumsum(np.logical_not(hits), dtype=np.float64)
    recall = np.concatenate([[0.0], tp / positives, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1e-12), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope from the right
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_average_precision(truth: dict[str, list[dict]], predictions: dict[str, list[dict]]):
    """(mAP over the labels present in the truth, {label: AP})."""
    labels = sorted({d["label"] for dets in truth.values() for d in dets})
    per_label = {}
    for label in labels:
        gt = {image: [d["box"] for d in dets if d["label"] == label] for image, dets in truth.items()}
        preds = [(d["score"], image, d["box"]) for image, dets in predictions.items()
                 for d in dets if d["label"] == label]
        per_label[label] = average_precision(preds, gt)
    return (float(np.mean(list(per_label.values()))) if per_label else float("nan")), per_label


def image_recall(truth: list[dict], found: list[dict]) -> float:
    """Fraction of `truth` matched one to one by same-label `found` boxes with IoU >= 0.5
    (greedy by falling score of `found`, each taking its best-IoU unmatched truth box)."""
    taken = [False] * len(truth)
    for d in sorted(found, key=lambda d: -d["score"]):
        candidates = [(iou(d["box"], t["box"]), k) for k, t in enumerate(truth)
                      if not taken[k] and t["label"] == d["label"]]
        best = max(candidates, default=(0.0, -1))
        if best[0] >= IOU_MATCH:
            taken[best[1]] = True
    return sum(taken) / len(truth)


def agreement(truth: dict[str, list[dict]], low: dict[str, list[dict]], threshold: float,
              images: list[str]) -> dict:
    subset_truth = {i: truth[i] for i in images}
    subset_low = {i: low[i] for i in images}
    m_ap, per_label = mean_average_precision(subset_truth, subset_low)
    recalls = [image_recall(truth[i], [d for d in low[i] if d["score"] >= threshold])
               for i in images if truth[i]]
    return dict(map=m_ap, recall=float(np.mean(recalls)) if recalls else float("nan"),
                recall_images=len(recalls), excluded=len(images) - len(recalls),
                ap_per_label=per_label)


# --- quantizers ---------------------------------------------------------------------------
def quantize_lowbit(lowbit: pathlib.Path, source: pathlib.Path, out: pathlib.Path, video: pathlib.Path,
                    frames: int, wbits, abits, method: str, variant: str, budget: int | None,
                    threads: int) -> list[int] | None:
    """`lowbit quantize`; returns the report's calibration_frames when it lists them."""
    command = [lowbit, "quantize", source, "--calib", video, "--frames", frames, "-o", out, "--method", method,
               "--threads", threads]
    if budget is not None:
        command += ["--weight-budget", budget, "--mixed-rule", variant, "--candidates", MIXED_CANDIDATES]
    else:
        command += ["--wbits", wbits, "--abits", abits] + (list(PLAIN) if variant == "plain" else [])
    run_checked(command, f"lowbit quantize {out.name}")
    report = out / "quantize-report.json"
    if not report.is_file():
        return None
    data = json.loads(report.read_text())
    for note in data.get("notes") or []:
        log(f"  {out.name}: {note}")
    if data.get("calibration_frame_indices") is not None:
        return [int(f) for f in data["calibration_frame_indices"]]
    if data.get("calibration_frames") is None:
        return None
    # Integers, or "vtest.avi#N" names.
    return [int(str(f).rsplit("#", 1)[-1]) for f in data["calibration_frames"]]


class MakeQuantized:
    """The stand-in: make_quantized.make_qcdq on one shared calibration per model."""

    def __init__(self, source: pathlib.Path, inputs: dict, calib_images: list[pathlib.Path]):
        import onnx

        self.model = onnx.load(str(source / "model.onnx"))
        self.images = calib_images
        tensors = mq.calibration_tensors(self.model, "producer")
        self.calibration = mq.calibrate(self.model, tensors, calib_images, model_input=inputs.__getitem__)

    def quantize(self, wbits, abits, method: str):
        if wbits == "mixed":
            model, _ = mq.make_qcdq(self.model, self.images, 8, 8, act_calib=method, calibration=self.calibration,
                                    layer_bits=mq.mixed_layer_bits(self.model))
        else:
            model, _ = mq.make_qcdq(self.model, self.images, wbits, abits, act_calib=method,
                                    calibration=self.calibration)
        return model


def quantize_ort(source: pathlib.Path, out: pathlib.Path, inputs: dict, calib_images, method: str) -> None:
    """onnxruntime.quantization.quantize_static: QDQ, per-channel QInt8 weights, QUInt8
    activations, Conv only, MinMax or Percentile with ORT's default options. A model below
    opset 13 (BlazeFace: 12) is converted to 13 first: per-channel DequantizeLinear needs
    its axis attribute, and ORT writes it without raising the opset."""
    import logging

    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    logging.getLogger().setLevel(logging.ERROR)
    model = onnx.load(str(source / "model.onnx"))
    input_name = model.graph.input[0].name
    float_path = source / "model.onnx"
    if mq.onnx_opset(model) < 13:
        float_path = out.with_name("float-opset13.onnx")
        onnx.save(onnx.version_converter.convert_version(model, 13), str(float_path))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.frames = iter(calib_images)

        def get_next(self):
            path = next(self.frames, None)
            return None if path is None else {input_name: inputs[path]}

    quantize_static(str(float_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method={"minmax": CalibrationMethod.MinMax,
                                      "percentile": CalibrationMethod.Percentile}[method],
                    op_types_to_quantize=["Conv"])
    if float_path != source / "model.onnx":
        float_path.unlink()


# --- cross-checks with ONNX Runtime -------------------------------------------------------
def dump(lowbit: pathlib.Path, entry: pathlib.Path, image: pathlib.Path, directory: pathlib.Path, score: float):
    """lowbit's input tensor, raw outputs (by file stem) and JSON record for `image`."""
    if directory.exists():
        shutil.rmtree(directory)
    result = run_checked([lowbit, "run", entry, image, "--dump", directory, "--json", "--score", score],
                         f"lowbit run --dump {entry.name}")
    outputs = {p.name[:-4]: np.load(p) for p in directory.glob("*.npy") if p.name != "input.npy"}
    return np.load(directory / "input.npy"), outputs, json.loads(result.stdout.splitlines()[0])


def same_detections(python: list, lowbit: list[dict], labels: list[str], box_tolerance: float) -> bool:
    """Python-decoded (class, score, box) against lowbit's records: same count, and each
    lowbit detection has an unused Python one of its label with every side within tolerance."""
    unused = list(python)
    for d in lowbit:
        match = next((q for q in unused if labels[q[0]] == d["label"]
                      and np.max(np.abs(np.asarray(q[2]) - d["box"])) <= box_tolerance), None)
        if match is None:
            return False
        unused.remove(match)
    return not unused


ORT_MODES = {"optimized": "ORT_ENABLE_ALL", "unoptimized": "ORT_DISABLE_ALL"}


def ort_session(model_path: pathlib.Path, level: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def cross_check(lowbit, spec, entry: pathlib.Path, images: list[pathlib.Path], work: pathlib.Path,
                threshold: float) -> dict:
    """Per photo, ONNX Runtime (CPU provider) on lowbit's input tensor against lowbit, in two
    modes: "optimized" (ORT_ENABLE_ALL, ORT's default: Q/DQ pairs fused into integer ops
    such as QLinearConv) and "unoptimized" (ORT_DISABLE_ALL: every DequantizeLinear,
    float Conv and QuantizeLinear as written, the ONNX semantics). Per mode: the largest
    |difference| of the raw outputs, and on how many photos ORT's detections (decoded in
    Python) are lowbit's at the config's threshold (same labels, boxes within a pixel).
    Also whether the Python decoder on lowbit's own outputs gives lowbit's detections
    (boxes within 0.01 pixel): the decoder's own check."""
    sessions = {mode: ort_session(entry / "model.onnx", level, 2) for mode, level in ORT_MODES.items()}
    labels = (entry / "labels.txt").read_text().splitlines()
    result = {mode: dict(max_output_diff=0.0, photos_same_detections=0, disagreeing=[]) for mode in sessions}
    decoder_ok = 0
    for image in images:
        x, ours_raw, record = dump(lowbit, entry, image, work / "dump", threshold)
        w, h = record["width"], record["height"]
        names = [o.name for o in sessions["optimized"].get_outputs()]
        ours = {name: ours_raw[name.replace("/", "_").replace("\\", "_")] for name in names}
        for mode, session in sessions.items():
            theirs = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))
            check = result[mode]
            check["max_output_diff"] = max(check["max_output_diff"],
                                           max(float(np.max(np.abs(theirs[n] - ours[n]))) for n in names))
            if same_detections(spec["decode"](theirs, w, h, threshold), record["detections"], labels, 1.0):
                check["photos_same_detections"] += 1
            else:
                check["disagreeing"].append(image.name)
        decoder_ok += same_detections(spec["decode"](ours, w, h, threshold), record["detections"], labels, 0.01)
    return dict(photos=len(images), python_decoder_matches_lowbit=decoder_ok, **result)


# --- the table -----------------------------------------------------------------------------
def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(results: dict, meta: dict) -> str:
    lines = [f"Agreement with the FP32 model's detections, {meta['cpu']}; quantizer: {meta['quantizer']}; "
             f"`{meta['command']}`", ""]
    for key, model in results.items():
        ev = model["evaluation"]
        lines += [f"**{model['title']}**: {ev['photos']} photos + {ev['frames']} vtest.avi frames "
                  f"(calibration: {meta['calibration_count']} other frames); FP32 at score >= "
                  f"{model['threshold']} finds {model['gt_detections']} detections, nothing on "
                  f"{model['excluded']} images (excluded from the recall mean); quantized detections "
                  f"ranked from score >= {meta['low_score']}.", "",
                  "| recipe | scales | mAP@0.5 vs FP32 | recall vs FP32 | weight bytes | x W8 "
                  "| = ORT (opt. / unopt.) |",
                  "|---|---|---|---|---|---|---|"]
        for row in model["rows"]:
            check = row["ort_cross_check"]
            same = "-" if check is None else (f"{check['optimized']['photos_same_detections']} / "
                                              f"{check['unoptimized']['photos_same_detections']} of {check['photos']}")
            lines.append(f"| {row['recipe']} | {row['scales']} | {fmt(row['map'])} | {fmt(row['recall'])} | "
                         f"{row['weight_bytes']:,} | {fmt(row['x_w8'], 2)} | {same} |")
        lines.append("")
    lines.append("= ORT: on how many photos lowbit's detections at the config's threshold are ONNX Runtime's "
                 "on the same input tensor (same labels, boxes within a pixel), with ORT's default graph "
                 "optimisation (Q/DQ fused into integer ops) / with none (Q/DQ as written).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quantizer", choices=["lowbit", "make_quantized"], default="lowbit")
    p.add_argument("--models", default="nanodet,blazeface", help="comma-separated: nanodet, blazeface")
    p.add_argument("--lowbit", type=pathlib.Path,
                   default=pathlib.Path(os.environ.get("LOWBIT_BIN") or REPO / "build" / "engine" / "lowbit"))
    p.add_argument("--repo", type=pathlib.Path, default=REPO / "models", help="model repository")
    p.add_argument("--images", type=pathlib.Path, default=REPO / "data" / "images")
    p.add_argument("--video", type=pathlib.Path, default=None, help="default IMAGES/vtest.avi")
    p.add_argument("--frames", type=int, default=None, help="calibration frames (32; --quick 8)")
    p.add_argument("--eval-stride", type=int, default=7)
    p.add_argument("--eval-frames", type=int, default=None, help="at most this many (--quick 20)")
    p.add_argument("--low-score", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime's quantizer rows")
    p.add_argument("--cross-check", choices=["photos", "one", "none"], default=None,
                   help="compare each model's outputs and detections with ONNX Runtime's on every "
                        "photo (default), on one (the default with --quick), or not at all")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--work", type=pathlib.Path, default=REPO / ".cache" / "quantize-accuracy")
    p.add_argument("--out", type=pathlib.Path, help="JSON table (default WORK/quantize-accuracy.json)")
    p.add_argument("--markdown", type=pathlib.Path, help="also write the markdown table here")
    args = p.parse_args(argv)
    if not args.lowbit.is_file():
        sys.exit(f"{args.lowbit} not found: build lowbit or pass --lowbit PATH (or set LOWBIT_BIN)")
    if args.quantizer == "lowbit":
        help_text = subprocess.run([str(args.lowbit), "quantize", "--help"], capture_output=True, text=True)
        if help_text.returncode != 0:
            sys.exit(f"{args.lowbit} has no `quantize` command: pass a newer --lowbit or --quantizer make_quantized")
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    if not keys or any(k not in MODELS for k in keys):
        sys.exit(f"--models takes a comma-separated list of {', '.join(MODELS)}")
    frames = args.frames or (8 if args.quick else 32)
    eval_limit = args.eval_frames or (20 if args.quick else None)
    video = args.video or args.images / "vtest.avi"
    command = "bench/quantize_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])

    work = args.work
    marker = work / ".quantize-accuracy-work"
    if work.exists() and any(work.iterdir()) and not marker.exists():
        sys.exit(f"--work {work} exists and is not this script's work directory: give a new or empty one")
    if work.exists():
        shutil.rmtree(work)  # every run rebuilds everything: nothing stale
    work.mkdir(parents=True)
    marker.touch()
    log(f"CPU: {cpu_description()}; lowbit {args.lowbit}; quantizer {args.quantizer}; work {work}")

    total = count_frames(video)
    calib_idx, eval_idx = frame_plan(total, frames, args.eval_stride, eval_limit)
    assert not set(calib_idx) & set(eval_idx)
    paths = extract_frames(video, calib_idx + eval_idx, work / "frames")
    calib_images = [paths[i] for i in calib_idx]
    photo_list = photos(args.images)
    eval_images = photo_list + [paths[i] for i in eval_idx]
    log(f"{video.name}: {total} frames; calibration frames ({len(calib_idx)}): {calib_idx}")
    log(f"evaluation frames ({len(eval_idx)}, every {args.eval_stride}th non-calibration frame): {eval_idx}")
    log(f"evaluation photos ({len(photo_list)}): {', '.join(p.name for p in photo_list)}")

    results = {}
    for key in keys:
        spec = MODELS[key]
        source = args.repo / spec["entry"]
        threshold = config_threshold(source)
        entries = work / "entries"
        recipes = spec["quick"] if args.quick else spec["recipes"]
        log(f"{spec['title']}: {len(recipes)} recipes, threshold {threshold}")

        # ORT's calibration and the stand-in's read exactly the tensors lowbit's pre-processing makes.
        t = time.perf_counter()
        inputs = lowbit_inputs(args.lowbit, source, calib_images, work / "inputs")
        log(f"  input tensors of the {len(inputs)} calibration frames from `lowbit run --dump` "
            f"in {time.perf_counter() - t:.1f} s")

        # Models: (recipe, scales, entry dir, quantize seconds).
        built = [("FP32", "-", source, 0.0, None)]
        stand_in = None
        budget = None
        for wbits, abits, method, variant in recipes:
            t = time.perf_counter()
            if wbits == "mixed":
                name = f"{spec['entry']}-mixed{round(100 * abits)}-{variant}"
                w8 = next(b for b in built if b[0] == "W8A8")
                budget = int(abits * weight_bytes(args.lowbit, w8[2]))
            else:
                name = f"{spec['entry']}-w{wbits}a{abits}-{method}{'-plain' if variant == 'plain' else ''}"
                budget = None
            out = entries / name
            if args.quantizer == "lowbit":
                used = quantize_lowbit(args.lowbit, source, out, video, frames, wbits, abits, method, variant,
                                       budget, args.threads)
                if used is not None:
                    if set(used) & set(eval_idx):
                        sys.exit(f"{name}: calibration frames {sorted(set(used) & set(eval_idx))} are evaluation frames")
                    if sorted(used) != calib_idx:
                        log(f"  note: {name} calibrated on frames {used}, not floor(i * {total} / {frames})")
            else:
                if variant != "default" and wbits != "mixed":
                    continue  # the stand-in has one variant
                if stand_in is None:
                    stand_in = MakeQuantized(source, inputs, calib_images)
                    log(f"  make_quantized: calibrated on {len(calib_images)} frames")
                make_entry(source, out, stand_in.quantize(wbits, abits, method))
            if wbits == "mixed":
                recipe = (f"mixed <= {abits:.0%} of W8 ({variant})" if args.quantizer == "lowbit"
                          else "mixed (make_quantized --mixed)")
                scales = method
            else:
                recipe = f"W{wbits}A{abits}"
                scales = f"{method}, nearest, no bias corr." if variant == "plain" else (
                    f"{method}, gptq, bias corr." if args.quantizer == "lowbit" else method)
            built.append((recipe, scales, out, time.perf_counter() - t, budget))
            log(f"  quantized {name} in {built[-1][3]:.1f} s")
        if not args.no_ort:
            for method in (("minmax",) if args.quick else ("minmax", "percentile")):
                t = time.perf_counter()
                out = make_entry(source, entries / f"{spec['entry']}-ort-{method}")
                quantize_ort(source, out / "model.onnx", inputs, calib_images, method)
                built.append(("ORT quantize_static W8A8", method, out, time.perf_counter() - t, None))
                log(f"  quantized {out.name} (ONNX Runtime) in {built[-1][3]:.1f} s")

        # Evaluation.
        image_keys = [str(p) for p in eval_images]
        cross = args.cross_check or ("one" if args.quick else "photos")
        check_photos = ([args.images / spec["check_photo"]] if cross == "one"
                        else photo_list if cross == "photos" else [])
        photo_keys, frame_keys = image_keys[:len(photo_list)], image_keys[len(photo_list):]
        detections = {}
        for recipe, method, entry, _, _ in built:
            t = time.perf_counter()
            detections[entry.name] = lowbit_detections(args.lowbit, entry, eval_images, args.low_score, args.threads)
            log(f"  ran {entry.name} on {len(eval_images)} images in {time.perf_counter() - t:.1f} s")
        truth = {i: [d for d in dets if d["score"] >= threshold] for i, dets in detections[source.name].items()}
        w8_bytes = None
        rows = []
        for recipe, method, entry, seconds, budget in built:
            low = detections[entry.name]
            overall = agreement(truth, low, threshold, image_keys)
            wb = weight_bytes(args.lowbit, entry)
            if recipe == "W8A8" and w8_bytes is None:  # the first W8A8 row
                w8_bytes = wb
            check = cross_check(args.lowbit, spec, entry, check_photos, work, threshold) if check_photos else None
            rows.append(dict(
                recipe=recipe + (f" ({wb / budget:.0%} of budget)" if recipe.startswith("mixed") and budget else ""),
                scales=method, entry=entry.name, map=overall["map"], recall=overall["recall"],
                photos=agreement(truth, low, threshold, photo_keys),
                frames=agreement(truth, low, threshold, frame_keys),
                ap_per_label=overall["ap_per_label"], weight_bytes=wb, quantize_seconds=round(seconds, 1),
                weight_budget=budget if recipe.startswith("mixed") else None, ort_cross_check=check))
            log(f"  {entry.name:32s} mAP {fmt(overall['map'])} recall {fmt(overall['recall'])} weights {wb:,} B"
                + ("" if check is None else
                   f"; same detections as ORT on {check['photos']} photo(s): " + ", ".join(
                       f"{mode} {check[mode]['photos_same_detections']} (max |output diff| "
                       f"{check[mode]['max_output_diff']:.2g})" for mode in ORT_MODES)
                   + f"; Python decoder = lowbit on {check['python_decoder_matches_lowbit']}"))
        if w8_bytes is None:
            w8_bytes = rows[0]["weight_bytes"]  # no W8A8 recipe: ratios to FP32
        for row in rows:
            row["x_w8"] = row["weight_bytes"] / w8_bytes
        fp32 = rows[0]
        if not (fp32["map"] == 1.0 and (math.isnan(fp32["recall"]) or fp32["recall"] == 1.0)):
            sys.exit(f"sanity: FP32 against itself gives mAP {fp32['map']}, recall {fp32['recall']} (expected 1.0)")
        overall = agreement(truth, detections[source.name], threshold, image_keys)
        results[key] = dict(
            title=spec["title"], entry=spec["entry"], threshold=threshold, rows=rows,
            gt_detections=sum(len(v) for v in truth.values()), excluded=overall["excluded"],
            evaluation=dict(photos=len(photo_keys), frames=len(frame_keys)),
            w8_weight_bytes=w8_bytes)

    meta = dict(cpu=cpu_description(), quantizer=args.quantizer, command=command, low_score=args.low_score,
                calibration_count=len(calib_idx), video=str(video), video_frames=total,
                calibration_frames=calib_idx, evaluation_frames=eval_idx,
                evaluation_photos=[p.name for p in photo_list], seconds=round(time.perf_counter() - T0, 1))
    table = markdown(results, meta)
    print(table)
    out = args.out or work / "quantize-accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(meta=meta, models=results), indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    log(f"wrote {out}{' and ' + str(args.markdown) if args.markdown else ''}; total {meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
