"""The accuracy table's short form (bench/quantize_accuracy.py --quick) holds the quantizer's targets.

NanoDet-g quantized by `lowbit quantize` with its defaults from 8 vtest.avi frames, scored on the
12 photos and 20 other frames against FP32's detections (mAP@0.5): W8A8 keeps >= 0.95 of them,
W4A8 with minimum-MSE scales >= 0.85. Every step is deterministic (fixed frames, exact integer
kernels), so a drop means the quantizer changed. docs/quantization.md has the full table.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> dict:
    if not LOWBIT_BIN.exists():
        pytest.fail(f"{LOWBIT_BIN} is missing: build it or set LOWBIT_BIN", pytrace=False)
    work = tmp_path_factory.mktemp("accuracy")
    out = work / "table.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "quantize_accuracy.py"), "--quick", "--models", "nanodet",
         "--no-ort", "--cross-check", "none", "--lowbit", str(LOWBIT_BIN), "--work", str(work / "work"),
         "--out", str(out)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(out.read_text())["models"]["nanodet"]["rows"]
    return {(row["recipe"], row["scales"]): row for row in rows}


def test_fp32_agrees_with_itself(table):
    assert table[("FP32", "-")]["map"] == 1.0


def test_w8a8_keeps_fp32s_detections(table):
    assert table[("W8A8", "mse, gptq, bias corr.")]["map"] >= 0.95


def test_w4a8_with_mse_scales_keeps_most_of_them(table):
    row = table[("W4A8", "mse, gptq, bias corr.")]
    assert row["map"] >= 0.85
    assert row["weight_bytes"] < 0.52 * table[("W8A8", "mse, gptq, bias corr.")]["weight_bytes"]
