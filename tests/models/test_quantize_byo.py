"""`lowbit quantize` W8A8 on the imported models: SSD-MobileNetV2 (depthwise, ReLU6; the
TFLite export's fp16-subnormal weight channels) and YOLOv8n (SiLU, a dynamic-shape export
calibrated at its config's 320x320), 4 calibration frames of vtest.avi each (bounded: about
a minute on 2 cores).

- Detections of the W8A8 entry agree with the FP32 entry's through `lowbit run` (the compiled
  integer kernels): every detection clear of the threshold on either side has a same-label
  partner with IoU >= 0.8 (clear: 0.1 above it; YOLOv8n's FEET_COVERED 0.32 on person.jpg, at
  0.25 + 0.07, is lost by W8A8); the SSD keeps the dog, bicycle and car of dog.jpg, YOLOv8n the
  astronaut's face.
- The compiled outputs match ONNX Runtime on the written QCDQ model.onnx evaluated in
  integer arithmetic (quant_util.integer_exact_qcdq: what lowbit's kernels compute): within
  one code step of the output convs' input grid at most, and no farther from it than ONNX
  Runtime's own float evaluation of the same graph.

Environment: LOWBIT_BIN, LOWBIT_MODEL_REPO, LOWBIT_IMAGES as in test_quantize_cli.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import quant_util
from quant_util import make_quantized

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
MODELS = pathlib.Path(os.environ.get("LOWBIT_MODEL_REPO", REPO / "models"))
IMAGES = pathlib.Path(os.environ.get("LOWBIT_IMAGES", REPO / "data" / "images"))

# entry -> (photos, detections that must be there: (photo, label))
ENTRIES = {
    "ssd-mobilenetv2-oid": (["dog.jpg", "person.jpg", "giraffe.jpg"],
                            [("dog.jpg", "Dog"), ("dog.jpg", "Bicycle"), ("dog.jpg", "Car")]),
    "yolov8n-nudenet": (["astronaut.png", "messi5.jpg", "person.jpg"],
                        [("astronaut.png", "FACE_FEMALE")]),
}


def lowbit(*args: str) -> subprocess.CompletedProcess:
    if not LOWBIT_BIN.exists():
        pytest.fail(f"{LOWBIT_BIN} is missing: build it or set LOWBIT_BIN", pytrace=False)
    result = subprocess.run([str(LOWBIT_BIN), *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, f"lowbit {' '.join(args)} failed:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
    """name -> (FP32 entry, W8A8 entry): the FP32 entry assembled from deploy/models/<name>
    and models/_import/<name>/model.onnx, the W8A8 one written by `lowbit quantize`."""
    root = tmp_path_factory.mktemp("byo-quantize")
    made = {}
    for name in ENTRIES:
        model = MODELS / "_import" / name / "model.onnx"
        if not model.exists():
            pytest.fail(f"{model} is missing: run deploy/models/fetch-byo-models.sh", pytrace=False)
        fp32 = root / name
        shutil.copytree(REPO / "deploy" / "models" / name, fp32)
        (fp32 / "model.onnx").symlink_to(model)
        w8a8 = root / f"{name}-w8a8"
        lowbit("quantize", str(fp32), "--calib", str(IMAGES / "vtest.avi"), "--frames", "4",
               "-o", str(w8a8))
        made[name] = (fp32, w8a8)
    return made


def detections(entry: pathlib.Path, photo: str, dump: pathlib.Path | None = None):
    args = ["run", str(entry), str(IMAGES / photo), "--json"]
    if dump is not None:
        args += ["--dump", str(dump)]
    result = json.loads(lowbit(*args).stdout.splitlines()[0])
    return [(d.get("label", str(d["class_id"])), d["score"], np.array(d["box"], dtype=np.float64))
            for d in result["detections"]]


def threshold_of(entry: pathlib.Path) -> float:
    for line in (entry / "config.pbtxt").read_text().splitlines():
        if line.startswith("score_threshold:"):
            return float(line.split(":")[1])
    raise AssertionError(f"{entry}/config.pbtxt has no score_threshold")


CASES = [(name, photo) for name, (photos, _) in ENTRIES.items() for photo in photos]


@pytest.mark.parametrize("name,photo", CASES)
def test_w8a8_detections_agree_with_fp32(entries, name: str, photo: str) -> None:
    fp32_entry, w8a8_entry = entries[name]
    fp32, w8a8 = detections(fp32_entry, photo), detections(w8a8_entry, photo)
    # Clear of the threshold: W8A8 moves scores by up to 0.11 (the astronaut's face 0.81 -> 0.70).
    clear = threshold_of(fp32_entry) + 0.1
    pairs = []
    for first, second, who in ((fp32, w8a8, "FP32"), (w8a8, fp32, "W8A8")):
        for label, score, box in first:
            overlaps = [quant_util.iou(box, b) for c, _, b in second if c == label]
            best = max(overlaps, default=0.0)
            if who == "FP32" and overlaps:
                pairs.append((label, round(score, 2), round(best, 3)))
            if score >= clear:
                assert best >= 0.8, (f"{name} {photo}: {who} {label} {score:.2f} at {box.round(1)}: "
                                     f"best same-label IoU {best:.3f} in {second}")
    print(f"{name} {photo}: FP32 {len(fp32)}, W8A8 {len(w8a8)} detections; matched "
          f"(label, FP32 score, IoU): {pairs}")
    for required_photo, label in ENTRIES[name][1]:
        if required_photo == photo:
            assert any(c == label for c, _, _ in w8a8), f"{name} W8A8 lost {label} in {photo}: {w8a8}"


def output_conv_input_step(model: onnx.ModelProto, output: str) -> float:
    """One input code of the conv(s) making `output`, as it moves that output: the largest
    input scale x max |weight| of the Convs reached backwards through non-Conv ops."""
    producer = {o: n for n in model.graph.node for o in n.output}
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    steps, stack, seen = [], [output], set()
    while stack:
        tensor = stack.pop()
        node = producer.get(tensor)
        if node is None or tensor in seen:
            continue
        seen.add(tensor)
        if node.op_type == "Conv":
            x_dq, w_dq = producer[node.input[0]], producer[node.input[1]]
            w_codes = init[producer[w_dq.input[0]].input[0]] if w_dq.input[0] in producer else init[w_dq.input[0]]
            weight = np.abs(w_codes.astype(np.float64).reshape(w_codes.shape[0], -1)).max(axis=1)
            weight *= init[w_dq.input[1]].astype(np.float64).reshape(-1)
            steps.append(float(init[x_dq.input[1]]) * float(weight.max()))
            continue
        stack.extend(i for i in node.input if i)
    assert steps, f"no Conv makes {output}"
    return max(steps)


@pytest.mark.parametrize("name,photo", CASES)
def test_compiled_w8a8_matches_onnxruntime_on_the_quantized_onnx(entries, name: str, photo: str,
                                                                   tmp_path: pathlib.Path) -> None:
    _, w8a8_entry = entries[name]
    detections(w8a8_entry, photo, dump=tmp_path)
    model = onnx.load(str(w8a8_entry / "model.onnx"))
    input_name = model.graph.input[0].name
    lowbit("tensors", str(w8a8_entry / "model.onnx"), "--input", f"{input_name}={tmp_path / 'input.npy'}",
           "--out", str(tmp_path / "out"))
    got = {p.stem: np.load(p) for p in (tmp_path / "out").glob("*.npy")}
    x = np.load(tmp_path / "input.npy")
    exact = make_quantized.run(make_quantized.ort_session(quant_util.integer_exact_qcdq(model), 1), x)
    floating = make_quantized.run(make_quantized.ort_session(model, 1), x)
    for output, reference in exact.items():
        actual = got[output.replace("/", "_").replace(":", "_")]
        assert actual.shape == reference.shape
        error = np.abs(actual.astype(np.float64) - reference)
        ort_float_error = np.abs(floating[output].astype(np.float64) - reference)
        step = output_conv_input_step(model, output)
        print(f"{name} {photo} {output}: |lowbit - ORT integer| max {error.max():.3g}, elements "
              f"beyond 1e-4: {np.sum(error > 1e-4)}/{error.size}; |ORT float - ORT integer| max "
              f"{ort_float_error.max():.3g}; one input code of the output convs: {step:.3g}")
        assert error.max() <= step, f"{name} {photo} {output}: {error.max():.3g} > one step {step:.3g}"
        assert error.max() <= ort_float_error.max(), (
            f"{name} {photo} {output}: lowbit {error.max():.3g} farther from the integer evaluation "
            f"than ONNX Runtime's float evaluation {ort_float_error.max():.3g}")


def test_lowbitd_serves_the_w8a8_entries(entries, tmp_path: pathlib.Path) -> None:
    """Both W8A8 entries in one repository, served by lowbitd (compiled onto the integer
    kernels at load), answer the SDK as `lowbit run` does: the SSD's dog, bicycle and car in
    dog.jpg, YOLOv8n's face in astronaut.png."""
    import socket
    import time

    from lowbit import Client

    server = pathlib.Path(os.environ.get("LOWBIT_SERVER_BIN", REPO / "build" / "server" / "lowbitd"))
    if not server.exists():
        pytest.fail(f"{server} is missing: build lowbitd or set LOWBIT_SERVER_BIN", pytrace=False)
    repository = tmp_path / "repo"
    repository.mkdir()
    for name, (_, w8a8) in entries.items():
        (repository / w8a8.name).symlink_to(w8a8, target_is_directory=True)

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "lowbitd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(server), "--model-repo", str(repository), "--address", address,
                                    "--metrics-address", f"127.0.0.1:{free_port()}"],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        expected = {"ssd-mobilenetv2-oid-w8a8": ("dog.jpg", {"Dog", "Bicycle", "Car"}),
                    "yolov8n-nudenet-w8a8": ("astronaut.png", {"FACE_FEMALE"})}
        deadline = time.monotonic() + 120
        with Client(address, timeout=30.0) as client:
            for model, (photo, labels) in expected.items():
                while True:
                    assert process.poll() is None, log.read_text()
                    try:
                        result = client.detect(str(IMAGES / photo), model=model)
                        break
                    except Exception:  # not serving yet
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                found = {d.label for d in result.detections}
                print(f"lowbitd {model} {photo}: {[(d.label, round(d.score, 2)) for d in result.detections]}")
                assert labels <= found, (model, photo, result.detections)
    finally:
        process.terminate()
        process.wait(timeout=30)
