"""Quantized models run on lowbit's integer kernels and compute what their fake-quantized graphs compute.

Oracles (tests/models/quant_util.py, deploy/models/make_quantized.py):
- The Brevitas W4A4 ESPCN QAT exports shipped in the qonnx wheel against qonnx's own executor:
  every output element within one output quantization step (1/255).
- NanoDet-g quantized by ONNX Runtime's own quantizer (QDQ, per-channel weights, Conv only)
  against ONNX Runtime on that model (default optimisation: QLinearConv, integer arithmetic):
  every element of every output within one quantization step of its last quantizer, on three
  photos, and the same detections.
- NanoDet-g as QCDQ at W8A8, W4A4, W2A2 and W1A1 inner layers (first and last layers at 8 bits)
  against the integer-exact twin of the same QCDQ graph run by ONNX Runtime (each Conv as
  ConvInteger from the codes, everything else as in the QCDQ graph). ONNX Runtime's float
  evaluation of the QCDQ graph is not an oracle to one step: its float convolutions flip codes
  at near-ties and the flips propagate (quant_util.integer_exact_qcdq). The head convolutions
  have no output quantizer, so their outputs are compared within one quantization step of the
  head's input codes times the largest weight sum (a bound a one-code difference in every input
  could cause), and 99.9% of the elements must be bit-identical (lowbit computes exactly the
  twin's arithmetic: exact int32 sums with the zero point and an integer bias, one float
  multiply, QuantizeLinear's division).

Each check also asserts that the model was really lowered: `lowbit inspect` lists lowbit.QConv
layers and no float Conv among the quantized layers.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile

import numpy as np
import onnx
import pytest

import quant_util

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
IMAGES = ["dog.jpg", "giraffe.jpg", "eagle.jpg"]


def lowbit(*args: str) -> str:
    if not LOWBIT_BIN.exists():
        pytest.fail(f"{LOWBIT_BIN} is missing: build it or set LOWBIT_BIN", pytrace=False)
    result = subprocess.run([str(LOWBIT_BIN), *args], capture_output=True, text=True)
    assert result.returncode == 0, f"lowbit {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def lowbit_outputs(model: pathlib.Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`lowbit tensors` on float32 inputs; outputs by name."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["tensors", str(model), "--out", tmp]
        for name, value in inputs.items():
            path = pathlib.Path(tmp) / f"in_{len(args)}.npy"
            np.save(path, value)
            args += ["--input", f"{name}={path}"]
        lowbit(*args)
        names = [o.name for o in onnx.load(str(model), load_external_data=False).graph.output]
        return {n: np.load(pathlib.Path(tmp) / (n.replace("/", "_").replace(":", "_") + ".npy"))
                for n in names}


def layer_ops(model: pathlib.Path) -> list[str]:
    """The op column of `lowbit inspect`, one entry per layer."""
    ops = []
    for line in lowbit("inspect", str(model)).splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[0].isdigit():
            ops.append(fields[2])
    return ops


def input_name(model: pathlib.Path) -> str:
    return onnx.load(str(model), load_external_data=False).graph.input[0].name


# --- ESPCN (QONNX Quant, Brevitas QAT) ------------------------------------------------------

@pytest.mark.parametrize("variant", quant_util.ESPCN_VARIANTS)
def test_espcn_qat_export_matches_qonnx_executor(variant):
    model = quant_util.espcn_model(variant)
    x = quant_util.espcn_input()
    expected = quant_util.qonnx_execute(model, x)
    got = next(iter(lowbit_outputs(model, {input_name(model): x}).values()))
    assert got.shape == expected.shape
    step = 1.0 / 255.0
    difference = np.abs(got - expected)
    assert difference.max() <= step * 1.0001, f"max difference {difference.max()} > one step {step}"
    assert np.mean(difference > step / 2) < 1e-3, "more than 0.1% of the pixels differ by a step"
    ops = layer_ops(model)
    assert ops.count("lowbit.QConv") + ops.count("lowbit.QConv+Relu") >= 3, ops


# --- NanoDet quantized by ONNX Runtime ------------------------------------------------------

@pytest.fixture(scope="module")
def ort_int8_model() -> pathlib.Path:
    return quant_util.quantized_nanodet("ort-qdq")


@pytest.mark.parametrize("image", IMAGES)
def test_ort_quantized_nanodet_matches_onnxruntime(ort_int8_model, image):
    x = quant_util.nanodet_frame(image)
    expected = quant_util.ort_outputs(ort_int8_model, x)
    got = lowbit_outputs(ort_int8_model, {input_name(ort_int8_model): x})
    proto = onnx.load(str(ort_int8_model))
    for name, want in expected.items():
        step = quant_util.output_step(proto, name)
        assert step is not None, f"{name} has no output quantizer"
        difference = np.abs(got[name] - want)
        assert difference.max() <= step * 1.001, (
            f"{image} {name}: max difference {difference.max():.4f} is "
            f"{difference.max() / step:.2f} quantization steps ({step:.4f})")
        # lowbit's integer arithmetic is ONNX Runtime's QLinearConv's: nearly
        # every element is the same code.
        assert np.mean(difference > step * 1e-3) <= 1e-3, f"{image} {name}: codes differ"
    width, height = 768, 576  # the photos' size does not matter for agreement; scale fixed
    assert [(c, round(s, 1)) for c, s, _ in quant_util.detections(got, width, height)] == \
           [(c, round(s, 1)) for c, s, _ in quant_util.detections(expected, width, height)]


def test_ort_quantized_nanodet_runs_on_integer_kernels(ort_int8_model):
    ops = layer_ops(ort_int8_model)
    assert ops.count("lowbit.QConv") == 34, ops
    assert "Conv" not in ops and "LeakyRelu" not in ops, ops


# --- NanoDet as QCDQ at 8, 4, 2 and 1 bits --------------------------------------------------

def head_tolerance(proto: onnx.ModelProto, output: str) -> float:
    """Output of a head conv without output quantizer: how far one code of difference in each of
    its input codes could move it (input step x largest per-channel |weight| sum)."""
    from onnx import numpy_helper

    producer = {o: n for n in proto.graph.node for o in n.output}
    init = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    tensor = output
    while producer[tensor].op_type != "Conv":
        tensor = producer[tensor].input[0]
    conv = producer[tensor]
    x_dq, w_dq = producer[conv.input[0]], producer[conv.input[1]]
    input_step = float(init[x_dq.input[1]])
    w_codes = init[producer[w_dq.input[0]].input[0]] if w_dq.input[0] in producer else init[w_dq.input[0]]
    w = w_codes.astype(np.float64) * init[w_dq.input[1]].reshape(-1, 1, 1, 1)
    return input_step * float(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max())


@pytest.mark.parametrize("bits", [8, 4, 2, 1])
def test_qcdq_nanodet_matches_integer_exact_twin(bits):
    path = quant_util.quantized_nanodet("qcdq", wbits=bits, abits=bits)
    proto = onnx.load(str(path))
    twin = pathlib.Path(tempfile.mkdtemp()) / "twin.onnx"
    onnx.save(quant_util.integer_exact_qcdq(proto), str(twin))
    for image in IMAGES:
        x = quant_util.nanodet_frame(image)
        expected = quant_util.ort_outputs(twin, x)
        got = lowbit_outputs(path, {input_name(path): x})
        for name, want in expected.items():
            difference = np.abs(got[name] - want)
            tolerance = head_tolerance(proto, name)
            assert difference.max() <= tolerance, (
                f"W{bits}A{bits} {image} {name}: max difference {difference.max():.4f} > {tolerance:.4f}")
            # Integer sums, the same float epilogue and QuantizeLinear's
            # division: nearly every element is bit-identical to the twin.
            assert np.mean(difference > 1e-5) <= 1e-3, (
                f"W{bits}A{bits} {image} {name}: {np.mean(difference > 1e-5):.2%} of elements differ")
    ops = layer_ops(path)
    assert sum(op.startswith("lowbit.QConv") for op in ops) == 34, ops
    assert not any(op.startswith("Conv") for op in ops), ops
