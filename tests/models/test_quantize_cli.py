"""`lowbit quantize` end to end on the real NanoDet-g, calibrated on vtest.avi frames.

- The entry it writes is complete (model.onnx, config.pbtxt, labels.txt, reports), its
  calibration frames are the ones the contract names, first/last layers stay at 8 bits.
- Cross-check: ONNX Runtime on the written QCDQ model.onnx and lowbit on the same entry
  (compiled onto its integer kernels) find the same objects on the evaluation photos: same
  labels, boxes within a pixel, for every detection clear of the score threshold (ONNX
  Runtime evaluates the fake quantization in float, so a score at the threshold may fall on
  either side).
- A weight budget holds: the mixed model's weights, as `lowbit inspect` counts them, fit it.
- Clear errors: an empty folder, an unreadable video, an already quantized model.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "models"))
import make_quantized  # noqa: E402
import quant_util  # noqa: E402  (tests/models)

LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
MODELS = pathlib.Path(os.environ.get("LOWBIT_MODEL_REPO", REPO / "models"))
IMAGES = pathlib.Path(os.environ.get("LOWBIT_IMAGES", REPO / "data" / "images"))
VIDEO = IMAGES / "vtest.avi"
PHOTOS = sorted(p for p in IMAGES.iterdir() if p.suffix in (".jpg", ".png")) if IMAGES.is_dir() else []


def lowbit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not LOWBIT_BIN.exists():
        pytest.fail(f"{LOWBIT_BIN} is missing: build it or set LOWBIT_BIN", pytrace=False)
    result = subprocess.run([str(LOWBIT_BIN), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"lowbit {' '.join(args)} failed:\n{result.stderr}"
    return result


def video_frame_count() -> int:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


@pytest.fixture(scope="module")
def w4a8(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("quantize") / "nanodet-g-w4a8"
    lowbit("quantize", str(MODELS / "nanodet-g"), "--calib", str(VIDEO), "--frames", "16",
           "--wbits", "4", "--abits", "8", "-o", str(out))
    return out


def test_entry_is_complete_and_calibrated_on_the_named_frames(w4a8):
    for name in ("model.onnx", "config.pbtxt", "labels.txt", "quantize-report.txt", "quantize-report.json"):
        assert (w4a8 / name).is_file(), name
    report = json.loads((w4a8 / "quantize-report.json").read_text())
    total = video_frame_count()
    assert report["calibration_frame_indices"] == [i * total // 16 for i in range(16)]
    assert 'name: "nanodet-g-w4a8"' in (w4a8 / "config.pbtxt").read_text()
    bits = {layer["name"]: (layer["weight_bits"], layer["activation_bits"]) for layer in report["layers"]}
    assert len(bits) == 34
    # NanoDet's first conv and its three heads stay at 8 bits, every other conv has 4-bit weights.
    assert sorted(bits.values()).count((8, 8)) >= 4
    assert sum(1 for w, _ in bits.values() if w == 4) == 30
    onnx.checker.check_model(onnx.load(str(w4a8 / "model.onnx")), full_check=True)
    assert 0 < report["weight_bytes"] < report["w8_weight_bytes"] < report["fp32_weight_bytes"]


def ort_detections(model: onnx.ModelProto, x: np.ndarray, width: int, height: int):
    session = make_quantized.ort_session(model, threads=2)
    outputs = make_quantized.run(session, x)
    return make_quantized.decode_nanodet(outputs, width, height)


def assert_same_detections(photo, mine, theirs, who, close):
    """Every detection clear of the threshold on either side has a same-label partner `close` to it."""
    threshold, margin = 0.35, 0.03
    for first, second, direction in ((theirs, mine, f"{who}'s"), (mine, theirs, "lowbit's")):
        for label, score, box in first:
            if score >= threshold + margin:
                assert any(c == label and close(b, box) for c, _, b in second), (
                    f"{photo}: {direction} class {label} {score:.2f} at {box.round(1)} has no partner in "
                    f"{[(c, round(s, 2), b.round(1)) for c, s, b in second]}")


@pytest.mark.parametrize("photo", [p.name for p in PHOTOS])
def test_onnxruntime_and_lowbit_agree_on_the_quantized_model(w4a8, photo, tmp_path):
    """ONNX Runtime on the written model, two ways. Its integer evaluation (each Conv as
    ConvInteger on the codes: quant_util.integer_exact_qcdq) computes what lowbit's kernels
    compute: boxes within a pixel. Its float evaluation of the same QCDQ graph rounds fp32 sums
    and flips a few codes at near-ties, which travel downstream: same objects, boxes overlapping
    by IoU >= 0.9."""
    result = lowbit("run", str(w4a8), str(IMAGES / photo), "--json", "--dump", str(tmp_path))
    got = json.loads(result.stdout.splitlines()[0])
    x = np.load(tmp_path / "input.npy")
    mine = [(d["class_id"], d["score"], np.array(d["box"])) for d in got["detections"]]
    model = onnx.load(str(w4a8 / "model.onnx"))
    exact = ort_detections(quant_util.integer_exact_qcdq(model), x, got["width"], got["height"])
    assert_same_detections(photo, mine, exact, "ONNX Runtime (integer)", lambda a, b: np.abs(a - b).max() <= 1.0)
    floating = ort_detections(model, x, got["width"], got["height"])
    assert_same_detections(photo, mine, floating, "ONNX Runtime (float)",
                           lambda a, b: quant_util.iou(a, b) >= 0.9)


def inspect_weight_bytes(entry: pathlib.Path) -> int:
    for line in lowbit("inspect", str(entry)).stdout.splitlines():
        if line.startswith("weights "):
            return int(line.split()[1].replace(",", ""))
    raise AssertionError("lowbit inspect printed no weights line")


def test_weight_budget_holds(w4a8, tmp_path):
    w8_bytes = json.loads((w4a8 / "quantize-report.json").read_text())["w8_weight_bytes"]
    budget = w8_bytes * 40 // 100
    out = tmp_path / "nanodet-g-mixed"
    lowbit("quantize", str(MODELS / "nanodet-g"), "--calib", str(VIDEO), "--frames", "4",
           "--weight-budget", str(budget), "--candidates", "8/8,4/8,2/8", "-o", str(out))
    report = json.loads((out / "quantize-report.json").read_text())
    assert report["weight_bytes"] <= budget
    assert inspect_weight_bytes(out) == report["weight_bytes"]
    bits = {layer["weight_bits"] for layer in report["layers"]}
    assert bits & {2, 4}, "nothing was lowered below 8 bits"
    sensitivities = [layer["candidate_sensitivity"] for layer in report["layers"] if layer["candidate_sensitivity"]]
    assert len(sensitivities) == 30 and all(set(s) == {"W8A8", "W4A8", "W2A8"} for s in sensitivities)


def test_residual_pairs_for_poorly_approximated_layers(tmp_path):
    """Layers whose 2-bit weights are above the error threshold get a second, residual 2-bit tensor:
    the report lists it with a lower error than 2 bits alone, lowbit runs it as two convolutions."""
    single, paired = tmp_path / "single", tmp_path / "paired"
    common = ["--calib", str(VIDEO), "--frames", "4", "--wbits", "2", "--abits", "4", "--rounding", "nearest"]
    lowbit("quantize", str(MODELS / "nanodet-g"), *common, "-o", str(single))
    lowbit("quantize", str(MODELS / "nanodet-g"), *common, "--residual-threshold", "0.15", "-o", str(paired))
    one = {l["name"]: l for l in json.loads((single / "quantize-report.json").read_text())["layers"]}
    two = {l["name"]: l for l in json.loads((paired / "quantize-report.json").read_text())["layers"]}
    residual = [name for name, layer in two.items() if layer["residual_bits"] == 2]
    expected = [name for name, layer in one.items() if layer["weight_bits"] == 2 and layer["weight_relative_error"] > 0.15]
    assert residual and sorted(residual) == sorted(expected)
    for name in residual:
        assert two[name]["weight_relative_error"] < one[name]["weight_relative_error"]
    rows = [line for line in lowbit("inspect", str(paired)).stdout.splitlines() if " 2+2/" in line]
    assert len(rows) >= len(residual), rows


def test_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = lowbit("quantize", str(MODELS / "nanodet-g"), "--calib", str(empty), "-o", str(tmp_path / "a"),
                    check=False)
    assert result.returncode == 1 and "holds no images" in result.stderr, result.stderr
    bad_video = tmp_path / "broken.avi"
    bad_video.write_bytes(b"not a video at all" * 100)
    result = lowbit("quantize", str(MODELS / "nanodet-g"), "--calib", str(bad_video), "-o", str(tmp_path / "b"),
                    check=False)
    assert result.returncode == 1 and "broken.avi" in result.stderr, result.stderr
    result = lowbit("quantize", str(MODELS / "nanodet-g-w8a8"), "--calib", str(IMAGES), "-o", str(tmp_path / "c"),
                    check=False)
    assert result.returncode == 1 and "already quantized" in result.stderr, result.stderr
    result = lowbit("quantize", str(MODELS / "nanodet-g"), "--calib", str(IMAGES), check=False)
    assert result.returncode == 2 and "-o" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
