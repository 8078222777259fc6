"""The `lowbit` CLI on the real models: inspect's per-layer figures add up to
its totals, compile writes a .lbm that inspect and run read as they read the
ONNX, run prints the detections, and bad input gives a clear error and the
documented exit code.

Environment: LOWBIT_BIN (default <repo>/build/engine/lowbit), LOWBIT_MODEL_REPO
(default <repo>/models), LOWBIT_IMAGES (default <repo>/data/images).
"""

import os
import pathlib
import re
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
MODEL_REPO = pathlib.Path(os.environ.get("LOWBIT_MODEL_REPO", REPO / "models"))
IMAGES = pathlib.Path(os.environ.get("LOWBIT_IMAGES", REPO / "data" / "images"))

# "   2  convolution_1  Conv+LeakyRelu  [1,32,104,104]  32/32  xnnpack_f32  36,992  99,680,256  9,248"
# groups: index, name, op, shape, W/A, kernel, weight bytes, MACs, params
LAYER_ROW = re.compile(
    r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\[[\d,]+\])\s+(\d+/\d+|-)\s+(\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s*$"
)
TOTAL_ROW = re.compile(r"^total\s+(\d+) layers, .*MACs \(([\d,]+)\), .*params \(([\d,]+)\)")
WEIGHTS_ROW = re.compile(r"^weights ([\d,]+) bytes .* as stored; FP32 ([\d,]+) bytes")


def lowbit(*args: str) -> subprocess.CompletedProcess:
    if not LOWBIT_BIN.is_file():
        pytest.fail(f"{LOWBIT_BIN} not found: build it with `cmake --build build --target lowbit`", pytrace=False)
    return subprocess.run([str(LOWBIT_BIN), *map(str, args)], capture_output=True, text=True, timeout=120)


def model_dir(name: str) -> pathlib.Path:
    path = MODEL_REPO / name
    if not (path / "config.pbtxt").is_file():
        pytest.fail(f"{path} missing: run deploy/models/fetch-models.sh", pytrace=False)
    return path


def image(name: str) -> pathlib.Path:
    path = IMAGES / name
    if not path.is_file():
        pytest.fail(f"{path} missing: run deploy/fetch-images.sh", pytrace=False)
    return path


def number(text: str) -> int:
    return int(text.replace(",", ""))


def inspect_rows(*args):
    result = lowbit("inspect", *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    layers = [m.groups() for m in map(LAYER_ROW.match, lines) if m]
    totals = [m.groups() for m in map(TOTAL_ROW.match, lines) if m]
    weights = [m.groups() for m in map(WEIGHTS_ROW.match, lines) if m]
    assert len(totals) == 1 and len(weights) == 1, result.stdout
    return result.stdout, layers, totals[0], weights[0]


def test_inspect_nanodet_layers_sum_to_the_printed_totals():
    _, layers, totals, weights = inspect_rows(model_dir("nanodet-g"))
    layer_count, total_macs, total_params = (number(v) for v in totals)
    weight_bytes, fp32_bytes = (number(v) for v in weights)

    assert len(layers) == layer_count
    assert sum(number(row[7]) for row in layers) == total_macs
    assert sum(number(row[8]) for row in layers) == total_params
    assert sum(number(row[6]) for row in layers) == weight_bytes
    # NanoDet-g: 34 convolutions, 2.09 G multiply-adds.
    assert sum(1 for row in layers if row[2].startswith("Conv")) == 34
    assert 2.08e9 < total_macs < 2.10e9
    # Only convolutions do multiply-adds or hold parameters; FP32 ones run on
    # XNNPACK with 4 bytes per parameter.
    for row in layers:
        if row[2].startswith("Conv"):
            assert row[4] == "32/32" and row[5] == "xnnpack_f32", row
            assert number(row[6]) == 4 * number(row[8]), row
        else:
            assert number(row[7]) == 0 and number(row[8]) == 0 and number(row[6]) == 0, row
            assert row[4] == "-" and row[5] == "-", row
    assert fp32_bytes == 4 * total_params == weight_bytes
    first = layers[0]
    assert first[2].startswith("Conv") and first[3] == "[1,32,208,208]"
    # 3x3 conv, 3 -> 32 channels at 208x208: 32*208*208 outputs x 27 MACs each.
    assert number(first[7]) == 32 * 208 * 208 * 27


def test_compile_writes_a_lbm_that_inspects_and_runs_like_the_onnx(tmp_path):
    onnx = model_dir("nanodet-g") / "model.onnx"
    lbm = tmp_path / "nanodet-g.lbm"
    result = lowbit("compile", onnx, "-o", lbm)
    assert result.returncode == 0, result.stderr
    assert re.match(rf"^compiled {re.escape(str(onnx))} -> {re.escape(str(lbm))}: 73 layers, weights ", result.stdout)
    assert lbm.read_bytes()[:8] == b"\x89LBM\r\n\x1a\n"

    onnx_text, onnx_layers, onnx_totals, onnx_weights = inspect_rows(onnx)
    lbm_text, lbm_layers, lbm_totals, lbm_weights = inspect_rows(lbm)
    assert lbm_layers == onnx_layers and lbm_totals == onnx_totals and lbm_weights == onnx_weights
    assert "compiled model (.lbm) by lowbit" in lbm_text and f"from {onnx}" in lbm_text
    assert "compiled at load" in onnx_text

    # A repository entry naming the .lbm detects what the ONNX entry detects.
    entry = tmp_path / "nanodet-lbm"
    entry.mkdir()
    (entry / "model.lbm").write_bytes(lbm.read_bytes())
    (entry / "labels.txt").write_bytes((model_dir("nanodet-g") / "labels.txt").read_bytes())
    config = (model_dir("nanodet-g") / "config.pbtxt").read_text()
    assert 'model_file: "model.onnx"' in config
    (entry / "config.pbtxt").write_text(config.replace('model_file: "model.onnx"', 'model_file: "model.lbm"'))
    from_lbm = lowbit("run", entry, image("dog.jpg"))
    from_onnx = lowbit("run", model_dir("nanodet-g"), image("dog.jpg"))
    assert from_lbm.returncode == 0, from_lbm.stderr
    assert "(compiled .lbm)" in from_lbm.stdout and "(ONNX compiled at load)" in from_onnx.stdout
    detections = lambda out: re.findall(r"^\s+\w+\s+[\d.]+\s+\[[\d., ]+\]$", out, re.MULTILINE)
    assert detections(from_lbm.stdout) == detections(from_onnx.stdout) != []


def test_compile_measures_load_against_compile(tmp_path):
    result = lowbit("compile", model_dir("nanodet-g") / "model.onnx", "-o", tmp_path / "m.lbm", "--measure-load", "3")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^load vs compile, median of 3 fresh processes each: compile ONNX [\d.]+ ms, load \.lbm [\d.]+ ms: [\d.]+x faster", result.stdout, re.MULTILINE), result.stdout


def test_inspect_refuses_a_damaged_lbm_saying_what_is_wrong(tmp_path):
    lbm = tmp_path / "m.lbm"
    assert lowbit("compile", model_dir("nanodet-g") / "model.onnx", "-o", lbm).returncode == 0
    good = lbm.read_bytes()
    truncated = tmp_path / "truncated.lbm"
    truncated.write_bytes(good[: len(good) // 2])
    result = lowbit("inspect", truncated)
    assert result.returncode == 1
    assert f"{truncated}: truncated: section constants ends at byte {len(good)} but the file has {len(good) // 2} bytes" in result.stderr
    corrupt = tmp_path / "corrupt.lbm"
    corrupt.write_bytes(good[:-100] + bytes([good[-100] ^ 1]) + good[-99:])
    result = lowbit("inspect", corrupt)
    assert result.returncode == 1
    assert "checksum mismatch in section constants (corrupt file)" in result.stderr


def test_compile_usage_errors(tmp_path):
    assert lowbit("compile").returncode == 2
    result = lowbit("compile", model_dir("nanodet-g"))
    assert result.returncode == 2 and "is a directory; give its model file" in result.stderr
    result = lowbit("compile", tmp_path / "missing.onnx", "-o", tmp_path / "x.lbm")
    assert result.returncode == 1 and "NOT_FOUND" in result.stderr
    assert lowbit("compile", "--help").returncode == 0


def test_run_prints_the_objects_in_dog_jpg():
    result = lowbit("run", model_dir("nanodet-g"), image("dog.jpg"))
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\s+(\w+)\s+([\d.]+)\s+\[([\d., ]+)\]", result.stdout, re.MULTILINE)
    labels = [label for label, _, _ in rows]
    assert labels[:3] == ["bicycle", "dog", "truck"], result.stdout
    assert "768x576" in result.stdout


def test_run_reports_a_truncated_jpeg_as_invalid(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(image("dog.jpg").read_bytes()[:5000])
    result = lowbit("run", model_dir("nanodet-g"), truncated)
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "truncated" in result.stderr


def test_run_reports_a_missing_model_directory(tmp_path):
    result = lowbit("run", tmp_path / "no-such-model", image("dog.jpg"))
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr and "fetch-models.sh" in result.stderr


def test_usage_errors_exit_2_and_help_exits_0():
    assert lowbit("inspect").returncode == 2
    assert lowbit("frobnicate").returncode == 2
    help_text = lowbit("--help")
    assert help_text.returncode == 0
    for command in ("compile", "run", "inspect", "bench", "tensors"):
        assert command in help_text.stdout


def run_json(*args):
    """`lowbit run ... --json`: (exit code, one parsed object per stdout line, stderr)."""
    import json

    result = lowbit("run", *args, "--json")
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_run_json_is_one_object_per_image_matching_the_text_output():
    images = [image("dog.jpg"), image("giraffe.jpg")]
    code, objects, stderr = run_json(model_dir("nanodet-g"), *images)
    assert code == 0, stderr
    assert "model " in stderr and "loaded in" in stderr  # the model line moves off stdout
    assert [o["path"] for o in objects] == [str(p) for p in images]
    assert (objects[0]["width"], objects[0]["height"]) == (768, 576)
    text = lowbit("run", model_dir("nanodet-g"), *images)
    assert text.returncode == 0, text.stderr
    rows = re.findall(r"^\s+(\w+)\s+([\d.]+)\s+\[([\d., ]+)\]", text.stdout, re.MULTILINE)
    detections = [d for o in objects for d in o["detections"]]
    assert len(detections) == len(rows) > 0
    labels = (model_dir("nanodet-g") / "labels.txt").read_text().splitlines()
    for d, (label, score, box) in zip(detections, rows):
        assert d["label"] == label and abs(d["score"] - float(score)) <= 5e-4, (d, label, score)
        assert all(abs(a - float(b)) <= 0.05 for a, b in zip(d["box"], box.split(","))), (d, box)
        assert labels[d["class_id"]] == d["label"], d
    assert [d["label"] for d in objects[0]["detections"][:3]] == ["bicycle", "dog", "truck"]
    for o in objects:
        assert set(o["time_ms"]) == {"decode", "preprocess", "inference", "postprocess"}
        assert all(t >= 0 for t in o["time_ms"].values()) and o["time_ms"]["inference"] > 0


def test_run_json_at_a_low_score_ranks_more_candidates_and_keeps_the_default_ones():
    # mAP needs the low-score candidates; filtering them at the config's 0.35
    # must give exactly the default run (NMS only suppresses by higher scores).
    code, low, stderr = run_json(model_dir("nanodet-g"), image("dog.jpg"), "--score", "0.05")
    assert code == 0, stderr
    code, default, stderr = run_json(model_dir("nanodet-g"), image("dog.jpg"))
    assert code == 0, stderr
    low, default = low[0]["detections"], default[0]["detections"]
    scores = [d["score"] for d in low]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.05
    assert len(low) > len(default) >= 3
    assert [d for d in low if d["score"] >= 0.35] == default
    assert len(low) <= 100  # the config's max_detections still caps the list


def test_run_json_reports_a_failing_image_in_its_place(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(image("dog.jpg").read_bytes()[:5000])
    code, objects, stderr = run_json(model_dir("blazeface"), truncated, image("astronaut.png"))
    assert code == 1
    assert objects[0]["path"] == str(truncated) and "INVALID_ARGUMENT" in objects[0]["error"]
    faces = objects[1]["detections"]
    assert len(faces) == 1 and faces[0]["label"] == "face" and faces[0]["score"] > 0.9
    # MODELS.md: one face near [177, 84, 272, 180] in astronaut.png.
    assert all(abs(a - b) < 6 for a, b in zip(faces[0]["box"], [177, 84, 272, 180])), faces


def test_tensors_writes_outputs_whose_names_are_too_long_for_a_file_name(tmp_path):
    """TFLite exports name tensors after every op fused into them (300+ bytes): `lowbit
    tensors` shortens such a file name (first 183 bytes, '~', 16 hex digits of a hash) and
    prints which file holds which output."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    long_name = "FeatureExtractor/MobilenetV2/Conv/Relu6;" * 9  # 360 bytes
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], [long_name]), helper.make_node("Neg", ["x"], ["short"])],
        "long_names", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(long_name, TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("short", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "long.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    result = lowbit("tensors", str(model), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    files = {p.name: p for p in (tmp_path / "out").iterdir()}
    assert "short.npy" in files
    [long_file] = [name for name in files if name != "short.npy"]
    stem = long_file[:-len(".npy")]
    assert len(stem) == 200 and stem.startswith(long_name.replace("/", "_")[:183])
    assert re.fullmatch(r"~[0-9a-f]{16}", stem[183:]), stem
    assert f"{long_name} [1,4] -> {tmp_path / 'out' / long_file}" in result.stdout
    np.testing.assert_array_equal(np.load(files[long_file]), np.maximum(x, 0))
    np.testing.assert_array_equal(np.load(files["short.npy"]), -x)
