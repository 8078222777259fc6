"""Quantization operator semantics through `lowbit tensors`.

1. The ONNX backend node tests for QuantizeLinear / DequantizeLinear from the
   onnx 1.22.0 wheel (deploy/models/fetch-onnx-node-tests.sh extracts them).
   Every test lowbit supports must reproduce the expected output exactly;
   every test it refuses (float8, float4, blocked quantization) must fail
   with UNIMPLEMENTED and the reason. Both lists are explicit, and the test
   directory must hold exactly these tests, so none is skipped silently.

   lowbit needs quantization parameters as constants and runs activations
   with the batch as their first dimension; the node tests feed scale and
   zero point as graph inputs and use unbatched shapes. So each test model
   is rewritten before it runs, with nothing else changed: the scale and
   zero point become initializers holding the test's own input tensors, x
   and y get a leading batch dimension of 1, and a per-axis `axis` moves by
   one to keep naming the same dimension.

2. Brevitas QCDQ (QuantizeLinear -> Clip -> DequantizeLinear, integer
   weights -> Clip -> DequantizeLinear, int32 bias) and QONNX (Quant,
   BipolarQuant) graphs built here with onnx.helper at W1-W4 x A1-A4, with
   per-tensor and per-channel weight scales, odd activation zero points and
   inputs on exact ties, against an independent numpy implementation. Scales
   are powers of two and codes small, so every float32 product and sum in
   the graph is exact and the comparison can be exact too: a wrong tie
   rounding, zero-point order or clip shows up as a wrong value.

Environment:
  LOWBIT_BIN             the lowbit CLI (default <repo>/build/engine/lowbit)
  LOWBIT_ONNX_NODE_TESTS node test directories (default <repo>/data/onnx-node-tests;
                         deploy/models/fetch-onnx-node-tests.sh)
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
NODE_TESTS = pathlib.Path(os.environ.get("LOWBIT_ONNX_NODE_TESTS", REPO / "data" / "onnx-node-tests"))

# Node tests that must pass exactly.
SUPPORTED = [
    "test_dequantizelinear", "test_dequantizelinear_axis",
    "test_dequantizelinear_int16", "test_dequantizelinear_uint16",
    "test_dequantizelinear_int4", "test_dequantizelinear_uint4",
    "test_dequantizelinear_int2", "test_dequantizelinear_uint2",
    "test_quantizelinear", "test_quantizelinear_axis",
    "test_quantizelinear_int16", "test_quantizelinear_uint16",
    "test_quantizelinear_int4", "test_quantizelinear_uint4",
    "test_quantizelinear_int2", "test_quantizelinear_uint2",
]
# Node tests lowbit refuses, with the phrase its UNIMPLEMENTED message must hold.
REFUSED = {
    "test_dequantizelinear_blocked": "block_size = 2",
    "test_quantizelinear_blocked_asymmetric": "block_size = 2",
    "test_quantizelinear_blocked_symmetric": "block_size = 2",
    "test_dequantizelinear_e4m3fn": "float8 e4m3fn",
    "test_dequantizelinear_e4m3fn_float16": "float8 e4m3fn",
    "test_dequantizelinear_e4m3fn_zero_point": "float8 e4m3fn",
    "test_dequantizelinear_e5m2": "float8 e5m2",
    "test_quantizelinear_e4m3fn": "float8 e4m3fn",
    "test_quantizelinear_e5m2": "float8 e5m2",
    "test_dequantizelinear_float4e2m1": "float4 e2m1",
    "test_quantizelinear_float4e2m1": "float4 e2m1",
}


def lowbit_bin() -> pathlib.Path:
    if not LOWBIT_BIN.is_file():
        pytest.fail(f"{LOWBIT_BIN} not found: build it (cmake --build build --target lowbit) "
                    "or set LOWBIT_BIN", pytrace=False)
    return LOWBIT_BIN


def node_tests() -> pathlib.Path:
    if not NODE_TESTS.is_dir():
        pytest.fail(f"{NODE_TESTS} is missing: run deploy/models/fetch-onnx-node-tests.sh "
                    "(or set LOWBIT_ONNX_NODE_TESTS)", pytrace=False)
    return NODE_TESTS


def run_tensors(model: onnx.ModelProto, inputs: dict[str, np.ndarray], tmp: pathlib.Path,
                threads: int = 1) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    model_path = tmp / "model.onnx"
    onnx.save(model, str(model_path))
    args = [str(lowbit_bin()), "tensors", str(model_path), "--out", str(tmp / "out"),
            "--threads", str(threads)]
    for name, array in inputs.items():
        np.save(tmp / f"{name}.npy", array)
        args += ["--input", f"{name}={tmp / f'{name}.npy'}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def run_ok(model: onnx.ModelProto, inputs: dict[str, np.ndarray], tmp: pathlib.Path,
           threads: int = 1) -> dict[str, np.ndarray]:
    result = run_tensors(model, inputs, tmp, threads)
    assert result.returncode == 0, f"lowbit tensors failed:\n{result.stdout}\n{result.stderr}"
    return {o.name: np.load(tmp / "out" / f"{o.name}.npy") for o in model.graph.output}


# ---- 1. ONNX backend node tests ---------------------------------------------

def load_pb(path: pathlib.Path) -> onnx.TensorProto:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return tensor


def batched_node_test(name: str) -> tuple[onnx.ModelProto, onnx.TensorProto | None, np.ndarray | None]:
    """The rewritten model, the x TensorProto and the expected output (see the module doc)."""
    directory = node_tests() / name
    model = onnx.load(str(directory / "model.onnx"))
    graph = model.graph
    assert len(graph.node) == 1, f"{name}: expected one node"
    node = graph.node[0]
    data = directory / "test_data_set_0"
    inputs = [load_pb(data / f"input_{i}.pb") for i in range(len(graph.input))]
    by_name = {info.name: tensor for info, tensor in zip(graph.input, inputs)}
    x_name = node.input[0]
    for info in list(graph.input):
        if info.name != x_name:
            tensor = by_name[info.name]
            tensor.name = info.name
            graph.initializer.append(tensor)
            graph.input.remove(info)
    for info in list(graph.input) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        dims.insert(0, onnx.TensorShapeProto.Dimension(dim_value=1))
    scale = by_name[node.input[1]]
    if int(np.prod(scale.dims)) > 1:  # per-axis: the same dimension after the new batch axis
        rank = len(by_name[x_name].dims)
        axes = [a for a in node.attribute if a.name == "axis"]
        axis = axes[0].i if axes else 1
        if axis >= 0:
            for a in axes:
                node.attribute.remove(a)
            node.attribute.append(helper.make_attribute("axis", axis + 1))
        assert -rank <= axis < rank
    expected_path = data / "output_0.pb"
    expected = numpy_helper.to_array(load_pb(expected_path)) if expected_path.exists() else None
    return model, by_name[x_name], expected


def x_as_npy(tensor: onnx.TensorProto) -> np.ndarray:
    """The x input as a .npy array lowbit reads (sub-byte codes widened to int8/uint8)."""
    array = numpy_helper.to_array(tensor)
    if array.dtype.kind not in "fiub":  # ml_dtypes int4 / uint4 / int2 / uint2
        array = array.astype(np.int8 if "uint" not in str(array.dtype) else np.uint8)
    return array[None]


def test_node_test_directory_holds_exactly_the_listed_tests():
    found = sorted(p.name for p in node_tests().iterdir()
                   if p.is_dir() and p.name.startswith(("test_quantizelinear", "test_dequantizelinear")))
    assert found == sorted(SUPPORTED + list(REFUSED)), (
        "classify every QuantizeLinear / DequantizeLinear node test as SUPPORTED or REFUSED: "
        f"unlisted {sorted(set(found) - set(SUPPORTED) - set(REFUSED))}, "
        f"missing {sorted(set(SUPPORTED) | set(REFUSED) - set(found))}")


@pytest.mark.parametrize("name", SUPPORTED)
def test_node_test_matches_exactly(name, tmp_path):
    model, x, expected = batched_node_test(name)
    outputs = run_ok(model, {model.graph.node[0].input[0]: x_as_npy(x)}, tmp_path)
    actual = outputs[model.graph.output[0].name]
    assert actual.shape == (1,) + expected.shape
    expected = expected.astype(np.float64)  # integer codes or floats, all exact in float32
    np.testing.assert_array_equal(actual[0].astype(np.float64), expected, err_msg=name)
    # Two threads split the work differently: the same values.
    outputs = run_ok(model, {model.graph.node[0].input[0]: x_as_npy(x)}, tmp_path / "t2", 2)
    np.testing.assert_array_equal(outputs[model.graph.output[0].name][0], actual[0])


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_node_test_is_refused_clearly(name, tmp_path):
    model, x, _ = batched_node_test(name)
    # lowbit refuses while loading the model, before it reads any input.
    x_shape = [1] + list(x.dims)
    result = run_tensors(model, {model.graph.node[0].input[0]: np.zeros(x_shape, np.float32)},
                         tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr
    assert "UNIMPLEMENTED" in message, message
    assert f"{model.graph.node[0].op_type} node" in message, message
    assert REFUSED[name] in message, message


# ---- 2. QCDQ and QONNX graphs against numpy -----------------------------------

C_IN, C_OUT, H, W = 3, 4, 5, 5


def round_half_even(v):
    return np.round(v)  # numpy rounds half to even


def qonnx_round(v, mode):
    """qonnx's rounding modes (qonnx.custom_op.general.intquant.resolve_rounding_mode)."""
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(v)
    if mode == "HALF_UP":
        return np.sign(v) * np.floor(np.abs(v) + 0.5)
    if mode == "HALF_DOWN":
        return np.sign(v) * np.ceil(np.abs(v) - 0.5)
    return {"FLOOR": np.floor, "CEIL": np.ceil, "DOWN": np.trunc,
            "UP": lambda a: np.sign(a) * np.ceil(np.abs(a))}[mode](v)


def conv3x3(x, w, b):
    """Exact float64 3x3 convolution, pads 1: x [1,C,H,W], w [M,C,3,3], b [M]."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((1, w.shape[0], x.shape[2], x.shape[3]))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,mc->nmhw", padded[:, :, i:i + x.shape[2], j:j + x.shape[3]],
                             w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def signed_range(bits):
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def make_case(wbits, abits, per_channel, seed):
    """Codes, scales and input of one W/A case: powers of two, odd zero points, ties."""
    rng = np.random.default_rng(seed)
    a_lo, a_hi = 0, 2 ** abits - 1                      # unsigned activation codes
    a_zero = 1 if abits > 1 else 0                      # odd where the range allows
    a_scale = 2.0 ** -2
    w_lo, w_hi = signed_range(wbits)
    # Codes a little beyond the W-bit range: the QCDQ weight Clip must act.
    w_codes = rng.integers(w_lo - 2, w_hi + 3, size=(C_OUT, C_IN, 3, 3))
    w_scale = (2.0 ** -rng.integers(1, 4, size=C_OUT)) if per_channel else np.full(C_OUT, 2.0 ** -2)
    bias_codes = rng.integers(-40, 41, size=C_OUT)
    # Inputs on ties (k + 0.5) * s and beyond the code range on both sides.
    k = rng.integers(a_lo - a_zero - 1, a_hi - a_zero + 2, size=(1, C_IN, H, W))
    x = ((k + np.where(rng.random(k.shape) < 0.7, 0.5, 0.25)) * a_scale).astype(np.float32)
    return dict(a_lo=a_lo, a_hi=a_hi, a_zero=a_zero, a_scale=a_scale, w_codes=w_codes,
                w_lo=w_lo, w_hi=w_hi, w_scale=w_scale, bias_codes=bias_codes, x=x)


def choose_output_quantizer(case, conv, abits):
    """A power-of-two output scale that spreads the conv's range over the
    A-bit codes (saturating the tails), the median on the middle code, and
    an odd zero point where the range allows."""
    codes = 2 ** abits
    span = float(np.percentile(conv, 90) - np.percentile(conv, 10))
    if span <= 0:
        span = max(float(conv.max() - conv.min()), 1e-3)
    scale = 2.0 ** np.floor(np.log2(span / codes))
    while not 0 <= np.round(codes / 2 - np.median(conv) / scale) <= codes - 1:
        scale *= 2  # a range that does not hold zero needs a coarser step
    case["out_scale"] = scale
    zero = int(np.round(codes / 2 - np.median(conv) / scale))
    if zero % 2 == 0 and codes > 2:
        zero = zero + 1 if zero < codes - 1 else zero - 1
    case["out_zero"] = zero


def check_not_degenerate(case, expected, abits):
    """Several output codes, and inputs on ties inside the activation range."""
    assert len(np.unique(expected)) >= min(3, 2 ** abits), np.unique(expected)
    t = case["x"].astype(np.float64) / case["a_scale"]
    inside = (t > case["a_lo"] - case["a_zero"]) & (t < case["a_hi"] - case["a_zero"])
    assert np.count_nonzero(inside & (t % 1 == 0.5)) >= 5


def qcdq_model(case, wbits, abits, per_channel):
    """x -> Q(u8) -> Clip -> DQ -> Conv(DQ(Clip(int8 w)), DQ(int32 b)) -> Q(u8) -> Clip -> DQ."""
    f32 = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)
    init = [
        f32("a_scale", case["a_scale"]),
        numpy_helper.from_array(np.asarray(case["a_zero"], np.uint8), "a_zero"),
        numpy_helper.from_array(np.asarray(case["a_lo"], np.uint8), "a_lo"),
        numpy_helper.from_array(np.asarray(case["a_hi"], np.uint8), "a_hi"),
        numpy_helper.from_array(case["w_codes"].astype(np.int8), "w_codes"),
        numpy_helper.from_array(np.asarray(case["w_lo"], np.int8), "w_lo"),
        numpy_helper.from_array(np.asarray(case["w_hi"], np.int8), "w_hi"),
        f32("w_scale", case["w_scale"] if per_channel else case["w_scale"][0]),
        numpy_helper.from_array(np.zeros(C_OUT if per_channel else (), np.int8), "w_zero"),
        numpy_helper.from_array(case["bias_codes"].astype(np.int32), "b_codes"),
        f32("b_scale", case["a_scale"] * case["w_scale"]),
        f32("o_scale", case["out_scale"]),
        numpy_helper.from_array(np.asarray(case["out_zero"], np.uint8), "o_zero"),
        numpy_helper.from_array(np.asarray(0, np.uint8), "o_lo"),
        numpy_helper.from_array(np.asarray(2 ** abits - 1, np.uint8), "o_hi"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_scale", "a_zero"], ["xq"]),
        helper.make_node("Clip", ["xq", "a_lo", "a_hi"], ["xc"]),
        helper.make_node("DequantizeLinear", ["xc", "a_scale", "a_zero"], ["xd"]),
        helper.make_node("Clip", ["w_codes", "w_lo", "w_hi"], ["wc"]),
        helper.make_node("DequantizeLinear", ["wc", "w_scale", "w_zero"], ["w"], axis=0),
        helper.make_node("DequantizeLinear", ["b_codes", "b_scale"], ["b"], axis=0),
        helper.make_node("Conv", ["xd", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["conv", "o_scale", "o_zero"], ["yq"]),
        helper.make_node("Clip", ["yq", "o_lo", "o_hi"], ["yc"]),
        helper.make_node("DequantizeLinear", ["yc", "o_scale", "o_zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, f"qcdq_w{wbits}a{abits}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C_IN, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def qcdq_quantize(v, scale, zero, lo, hi):
    """ONNX + Clip: q = clip(round_half_even(v / s) + z, lo, hi); y = (q - z) * s."""
    return (np.clip(round_half_even(v / scale) + zero, lo, hi) - zero) * scale


def qcdq_conv(case):
    x = case["x"].astype(np.float64)
    xd = qcdq_quantize(x, case["a_scale"], case["a_zero"], case["a_lo"], case["a_hi"])
    w = np.clip(case["w_codes"], case["w_lo"], case["w_hi"]) * case["w_scale"].reshape(-1, 1, 1, 1)
    b = case["bias_codes"] * case["a_scale"] * case["w_scale"]
    return conv3x3(xd, w, b)


def qcdq_reference(case, abits):
    return qcdq_quantize(qcdq_conv(case), case["out_scale"], case["out_zero"], 0, 2 ** abits - 1)


def qonnx_model(case, wbits, abits, per_channel, rounding):
    """x -> Quant(unsigned, A bits) -> Conv(Quant(float w, signed narrow) or BipolarQuant) -> Quant."""
    f32 = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)
    w_scale = case["w_scale"].reshape(-1, 1, 1, 1) if per_channel else case["w_scale"][0]
    # Float weights a quarter or half step off the codes: Quant rounds them
    # with the rounding mode (the folded weight codes depend on it).
    offset = np.where(np.arange(case["w_codes"].size).reshape(case["w_codes"].shape) % 3 == 0,
                      0.5, -0.25)
    w_float = (case["w_codes"] + offset) * case["w_scale"].reshape(-1, 1, 1, 1)
    init = [
        f32("a_scale", case["a_scale"]), f32("a_zero", case["a_zero"]), f32("a_bits", abits),
        f32("w_float", w_float), f32("w_scale", w_scale), f32("w_zero", 0), f32("w_bits", wbits),
        f32("bias", case["bias_codes"] * case["a_scale"] * case["w_scale"]),
        f32("o_scale", case["out_scale"]), f32("o_zero", case["out_zero"]), f32("o_bits", abits),
    ]
    domain = "qonnx.custom_op.general"
    quant = lambda inputs, out, signed, narrow: helper.make_node(
        "Quant", inputs, [out], domain=domain, signed=signed, narrow=narrow, rounding_mode=rounding)
    if wbits == 1:
        w_node = helper.make_node("BipolarQuant", ["w_float", "w_scale"], ["w"], domain=domain)
    else:
        w_node = quant(["w_float", "w_scale", "w_zero", "w_bits"], "w", 1, 1)
    nodes = [
        quant(["x", "a_scale", "a_zero", "a_bits"], "xd", 0, 0),
        w_node,
        helper.make_node("Conv", ["xd", "w", "bias"], ["conv"], pads=[1, 1, 1, 1]),
        quant(["conv", "o_scale", "o_zero", "o_bits"], "y", 0, 0),
    ]
    graph = helper.make_graph(
        nodes, f"qonnx_w{wbits}a{abits}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C_IN, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11),
                                                     helper.make_opsetid(domain, 1)])
    return model, w_float.astype(np.float32)


def qonnx_conv(case, w_float, wbits, abits, rounding):
    """QONNX Quant: q = R(clip(x / s + z, min_int, max_int)); y = (q - z) * s.
    BipolarQuant: y = (x >= 0 ? 1 : -1) * s."""
    def quant(v, scale, zero, lo, hi):
        return (qonnx_round(np.clip(v / scale + zero, lo, hi), rounding) - zero) * scale
    x = case["x"].astype(np.float64)
    xd = quant(x, case["a_scale"], case["a_zero"], 0, 2 ** abits - 1)
    w_scale = case["w_scale"].reshape(-1, 1, 1, 1)
    if wbits == 1:
        w = np.where(w_float >= 0, 1.0, -1.0) * w_scale
    else:
        w = quant(w_float.astype(np.float64), w_scale, 0, -(2 ** (wbits - 1)) + 1, 2 ** (wbits - 1) - 1)
    b = case["bias_codes"] * case["a_scale"] * case["w_scale"]
    return conv3x3(xd, w, b)


def qonnx_output(case, conv, abits, rounding):
    v = np.clip(conv / case["out_scale"] + case["out_zero"], 0, 2 ** abits - 1)
    return (qonnx_round(v, rounding) - case["out_zero"]) * case["out_scale"]


BITS = [(w, a) for w in (1, 2, 3, 4) for a in (1, 2, 3, 4)]


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("wbits,abits", BITS, ids=[f"W{w}A{a}" for w, a in BITS])
def test_qcdq_matches_numpy(wbits, abits, per_channel, tmp_path):
    case = make_case(wbits, abits, per_channel, seed=10 * wbits + abits)
    conv = qcdq_conv(case)
    choose_output_quantizer(case, conv, abits)
    expected = qcdq_reference(case, abits)
    actual = run_ok(qcdq_model(case, wbits, abits, per_channel), {"x": case["x"]}, tmp_path)["y"]
    np.testing.assert_array_equal(actual.astype(np.float64), expected)
    check_not_degenerate(case, expected, abits)


ROUNDINGS = ["ROUND", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "UP", "DOWN"]


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("wbits,abits", BITS, ids=[f"W{w}A{a}" for w, a in BITS])
def test_qonnx_matches_numpy(wbits, abits, per_channel, tmp_path):
    case = make_case(wbits, abits, per_channel, seed=100 + 10 * wbits + abits)
    # Every mode across the cases; at A1 only those with a threshold inside
    # [0, 1) (UP / CEIL / FLOOR / DOWN would send every activation to one code).
    modes = ROUNDINGS if abits > 1 else ROUNDINGS[:3]
    rounding = modes[(wbits * 4 + abits + per_channel) % len(modes)]
    case["out_scale"], case["out_zero"] = 1.0, 0  # chosen from the conv below
    _, w_float = qonnx_model(case, wbits, abits, per_channel, rounding)
    conv = qonnx_conv(case, w_float, wbits, abits, rounding)
    choose_output_quantizer(case, conv, abits)
    model, _ = qonnx_model(case, wbits, abits, per_channel, rounding)
    expected = qonnx_output(case, conv, abits, rounding)
    actual = run_ok(model, {"x": case["x"]}, tmp_path)["y"]
    np.testing.assert_array_equal(actual.astype(np.float64), expected, err_msg=rounding)
    check_not_degenerate(case, expected, abits)


def test_qcdq_batch_of_two_and_two_threads(tmp_path):
    """A batch runs frame by frame with the same codes, on one thread or two."""
    case_a = make_case(2, 3, True, seed=1)
    case_b = make_case(2, 3, True, seed=2)
    choose_output_quantizer(case_a, qcdq_conv(case_a), 3)
    model = qcdq_model(case_a, 2, 3, True)
    batch = np.concatenate([case_a["x"], case_b["x"]])
    actual = run_ok(model, {"x": batch}, tmp_path, threads=2)["y"]
    case_b.update({k: case_a[k] for k in ("w_codes", "w_scale", "bias_codes", "out_scale", "out_zero")})
    np.testing.assert_array_equal(actual[0:1].astype(np.float64), qcdq_reference(case_a, 3))
    np.testing.assert_array_equal(actual[1:2].astype(np.float64), qcdq_reference(case_b, 3))
