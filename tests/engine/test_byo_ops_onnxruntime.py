"""Each op imported models need, in a tiny graph made by onnx.helper, against ONNX Runtime.

Every graph takes x [N, ...] (run at batch 2), goes through `lowbit tensors`
and ONNX Runtime on the same random tensor, and every output element must
agree within 1e-5 + 2e-6 * |v| (one op: tighter than the models' 1e-4).
Covered: Mul/Sub/Div with broadcasting, Clip, Softmax, Gemm, MatMul, Flatten,
GlobalAveragePool, AveragePool and Conv with asymmetric pads,
ReduceMean, BatchNormalization (folded into a Conv, and alone), HardSwish,
HardSigmoid, PRelu, Exp, Sqrt, Pow, Identity, Squeeze/Unsqueeze,
DepthToSpace, ConvTranspose, Resize nearest with every coordinate mode and
rounding, Sigmoid x Mul (fused as SiLU), and a dynamic-shape graph whose
Shape/Gather/Cast/Range/Expand/ConstantOfShape plumbing folds once the size
is known.

Environment: LOWBIT_BIN (default <repo>/build/engine/lowbit).
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
ABSOLUTE_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 2e-6
RNG = np.random.default_rng(11)


def const(name: str, array) -> onnx.TensorProto:
    array = np.asarray(array)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return numpy_helper.from_array(array, name)


def rand(*shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(np.float32)


def model(nodes, x_shape, initializers=(), outputs=("y",), opset=17) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape])
    ys = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "g", [x], ys, initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def conv_weights(m: int, c: int, k: int) -> list:
    return [const("w", rand(m, c, k, k)), const("b", rand(m))]


CASES = {
    "broadcast_mul_sub_div": (model(
        [helper.make_node("Mul", ["x", "s"], ["a"]), helper.make_node("Sub", ["c", "a"], ["b"]),
         helper.make_node("Div", ["b", "d"], ["y"])], [3, 4, 5],
        [const("s", rand(3, 1, 5)), const("c", rand(5)), const("d", rand(4, 1, low=0.5))]),
        [3, 4, 5]),
    "clip_exp_sqrt_identity": (model(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["a"]), helper.make_node("Exp", ["a"], ["b"]),
         helper.make_node("Sqrt", ["b"], ["c"]), helper.make_node("Identity", ["c"], ["y"])],
        [6], [const("lo", np.float32(-0.5)), const("hi", np.float32(0.6))]), [6]),
    "softmax_axis1": (model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [16, 4, 30]),
                      [16, 4, 30]),
    "gemm_transb": (model([helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1, alpha=0.7,
                                            beta=1.3)], [12],
                          [const("w", rand(5, 12)), const("c", rand(5))]), [12]),
    "flatten_matmul": (model([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                              helper.make_node("MatMul", ["f", "w"], ["y"])], [4, 2, 2],
                             [const("w", rand(16, 3))]), [4, 2, 2]),
    "global_average_pool": (model([helper.make_node("GlobalAveragePool", ["x"], ["y"])],
                                  [5, 7, 6]), [5, 7, 6]),
    "average_pool_asymmetric": (model(
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1],
                          pads=[0, 1, 2, 0], count_include_pad=0)], [3, 7, 6]), [3, 7, 6]),
    "conv_asymmetric_pads": (model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[0, 1, 2, 0], strides=[2, 2])],
        [3, 9, 8], conv_weights(4, 3, 3)), [3, 9, 8]),
    "reduce_mean": (model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)],
                          [4, 5, 6], opset=13), [4, 5, 6]),
    "batch_norm_folded": (model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["y"],
                          epsilon=1e-3)], [3, 6, 6],
        conv_weights(4, 3, 3) + [const("g", rand(4)), const("be", rand(4)), const("mu", rand(4)),
                                 const("var", rand(4, low=0.2, high=2))]), [3, 6, 6]),
    "batch_norm_alone": (model(
        [helper.make_node("BatchNormalization", ["x", "g", "be", "mu", "var"], ["y"])], [4, 3, 3],
        [const("g", rand(4)), const("be", rand(4)), const("mu", rand(4)),
         const("var", rand(4, low=0.2, high=2))]), [4, 3, 3]),
    "hardswish_hardsigmoid_prelu": (model(
        [helper.make_node("HardSwish", ["x"], ["a"]),
         helper.make_node("HardSigmoid", ["x"], ["b"], alpha=0.1666667, beta=0.5),
         helper.make_node("PRelu", ["x", "slope"], ["c"])], [3, 4, 4],
        [const("slope", rand(3, 1, 1))], outputs=("a", "b", "c")), [3, 4, 4]),
    "pow": (model([helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Pow", ["a", "e"], ["y"])],
                  [3, 4], [const("e", rand(3, 1, low=0.5, high=3))]), [3, 4]),
    "squeeze_unsqueeze": (model(
        [helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
         helper.make_node("Relu", ["u"], ["r"]),
         helper.make_node("Squeeze", ["r", "axes"], ["y"])], [3, 5],
        [const("axes", np.array([2], dtype=np.int64))]), [3, 5]),
    "depth_to_space": (model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2,
                                               mode="CRD")], [8, 3, 4]), [8, 3, 4]),
    "conv_transpose": (model(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2],
                          pads=[1, 0, 0, 1], output_padding=[1, 1], group=2)], [4, 5, 4],
        [const("w", rand(4, 3, 3, 3)), const("b", rand(6))]), [4, 5, 4]),
    "sigmoid_mul_silu": (model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Sigmoid", ["c"], ["s"]),
         helper.make_node("Mul", ["c", "s"], ["y"])], [3, 5, 5], conv_weights(4, 3, 1)),
        [3, 5, 5]),
}

# Resize nearest, 5x7 -> 8x11 (and 2x downscale), every coordinate mode x rounding.
for coordinate in ["half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners",
                   "tf_half_pixel_for_nn"]:
    for rounding in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]:
        CASES[f"resize_{coordinate}_{rounding}"] = (model(
            [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                              coordinate_transformation_mode=coordinate, nearest_mode=rounding)],
            [3, 5, 7], [const("sizes", np.array([2, 3, 8, 11], dtype=np.int64))], opset=13),
            [3, 5, 7])
CASES["resize_scales_half_pixel_floor"] = (model(
    [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                      coordinate_transformation_mode="half_pixel", nearest_mode="floor")],
    [3, 6, 8], [const("scales", np.array([1, 1, 0.5, 2], dtype=np.float32))], opset=13),
    [3, 6, 8])


def dynamic_plumbing_model() -> onnx.ModelProto:
    """x [N, 2, H, W] (H, W symbolic) + a column grid made from Shape(x) at run time."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "i3"], ["w"], axis=0),
        helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
        helper.make_node("Range", ["zero", "wf", "one"], ["cols"]),
        helper.make_node("Unsqueeze", ["w", "ax0"], ["w1"]),
        helper.make_node("ConstantOfShape", ["one_dim"], ["lead"],
                         value=numpy_helper.from_array(np.array([1], dtype=np.int64))),
        helper.make_node("Concat", ["lead", "w1"], ["target"], axis=0),
        helper.make_node("Expand", ["cols", "target"], ["grid"]),
        helper.make_node("Add", ["x", "grid"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[
        const("i3", np.array(3, dtype=np.int64)), const("zero", np.float32(0)),
        const("one", np.float32(1)), const("ax0", np.array([0], dtype=np.int64)),
        const("one_dim", np.array([1], dtype=np.int64))])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


CASES["dynamic_shape_plumbing"] = (dynamic_plumbing_model(), [2, 5, 6])


def lowbit_bin() -> pathlib.Path:
    if not LOWBIT_BIN.exists():
        pytest.fail(f"{LOWBIT_BIN} is missing: build the CLI or set LOWBIT_BIN", pytrace=False)
    return LOWBIT_BIN


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case: str, tmp_path: pathlib.Path) -> None:
    m, frame = CASES[case]
    path = tmp_path / "model.onnx"
    onnx.save(m, path)
    x = rand(2, *frame, low=-3, high=3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([str(lowbit_bin()), "tensors", str(path), "--input",
                             f"x={tmp_path / 'x.npy'}", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name, reference in expected.items():
        actual = np.load(tmp_path / "out" / f"{name}.npy")
        assert actual.shape == reference.shape, name
        error = np.abs(actual.astype(np.float64) - reference)
        bound = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(reference)
        assert np.all(error <= bound), f"{case} {name}: max abs error {error.max():.3g}"


def test_inspect_lists_every_unsupported_node(tmp_path: pathlib.Path) -> None:
    """`lowbit inspect` on a model with several unsupported nodes names them all at once."""
    nodes = [
        helper.make_node("Hardmax", ["x"], ["a"], name="hardmax_1"),
        helper.make_node("Relu", ["a"], ["b"], name="relu_ok"),
        helper.make_node("Resize", ["b", "", "scales"], ["c"], name="bicubic", mode="cubic"),
        helper.make_node("GridSample", ["c", "grid"], ["d"], name="sampler"),
        helper.make_node("LpNormalization", ["d"], ["y"], name="lp_norm"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[
        const("scales", np.array([1, 1, 2, 2], dtype=np.float32)),
        const("grid", rand(1, 16, 16, 2))])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "unsupported.onnx"
    onnx.save(m, path)
    result = subprocess.run([str(lowbit_bin()), "inspect", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    for expected in ["4 nodes", "hardmax_1", "'Hardmax'", "bicubic", "mode 'cubic'", "sampler",
                     "'GridSample'", "lp_norm", "'LpNormalization'"]:
        assert expected in result.stderr, (expected, result.stderr)
    assert "relu_ok" not in result.stderr
