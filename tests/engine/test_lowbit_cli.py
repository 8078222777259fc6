"""The `lowbit` CLI on the real models: inspect's per-layer figures add up to
its totals, run prints the detections, and bad input gives a clear error and
the documented exit code.

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

# "   2  convolution_1   Conv+LeakyRelu  [1,32,104,104]   99,680,256   9,248"
LAYER_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\[[\d,]+\])\s+([\d,]+)\s+([\d,]+)\s*$")
TOTAL_ROW = re.compile(r"^total\s+(\d+) layers, .*MACs \(([\d,]+)\), .*params \(([\d,]+)\)")


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


def test_inspect_nanodet_layers_sum_to_the_printed_totals():
    result = lowbit("inspect", model_dir("nanodet-g"))
    assert result.returncode == 0, result.stderr
    layers = [m.groups() for m in map(LAYER_ROW.match, result.stdout.splitlines()) if m]
    totals = [m.groups() for m in map(TOTAL_ROW.match, result.stdout.splitlines()) if m]
    assert len(totals) == 1, result.stdout
    layer_count, total_macs, total_params = (number(v) for v in totals[0])

    assert len(layers) == layer_count
    assert sum(number(row[4]) for row in layers) == total_macs
    assert sum(number(row[5]) for row in layers) == total_params
    # NanoDet-g: 34 convolutions, 2.09 G multiply-adds.
    assert sum(1 for row in layers if row[2].startswith("Conv")) == 34
    assert 2.08e9 < total_macs < 2.10e9
    # Only convolutions do multiply-adds or hold parameters.
    for row in layers:
        if not row[2].startswith("Conv"):
            assert number(row[4]) == 0 and number(row[5]) == 0, row
    first = layers[0]
    assert first[2].startswith("Conv") and first[3] == "[1,32,208,208]"
    # 3x3 conv, 3 -> 32 channels at 208x208: 32*208*208 outputs x 27 MACs each.
    assert number(first[4]) == 32 * 208 * 208 * 27


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
    for command in ("run", "inspect", "bench", "tensors"):
        assert command in help_text.stdout
