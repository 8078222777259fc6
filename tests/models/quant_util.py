"""Test-side helpers for the quantized NanoDet oracles (deploy/models/make_quantized.py).

    from quant_util import quantized_nanodet, nanodet_frame, ort_outputs, output_step
    path = quantized_nanodet("qcdq", wbits=4, abits=4)      # cached, made on first use
    x = nanodet_frame("dog.jpg")                             # [1, 3, 416, 416] float32
    expected = ort_outputs(path, x)                          # {output name: array}
    step = output_step(onnx.load(path), "box_stride8")       # scale of the last DequantizeLinear

Models are written to $LOWBIT_CACHE/quantized (default ~/.cache/lowbit/quantized)
under a name that hashes the FP32 model, the script, the calibration images and
the options, so a change in any of them makes a new file. Needs the model
repository and the images (deploy/models/fetch-models.sh, deploy/fetch-images.sh);
a missing one fails the calling test with the command to run.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL_REPO = pathlib.Path(os.environ.get("LOWBIT_MODEL_REPO", REPO_ROOT / "models"))
IMAGES = pathlib.Path(os.environ.get("LOWBIT_IMAGES", REPO_ROOT / "data" / "images"))
CACHE = pathlib.Path(os.environ.get("LOWBIT_CACHE", pathlib.Path.home() / ".cache" / "lowbit"))
SCRIPT = REPO_ROOT / "deploy" / "models" / "make_quantized.py"
NANODET = MODEL_REPO / "nanodet-g" / "model.onnx"

sys.path.insert(0, str(SCRIPT.parent))
import make_quantized  # noqa: E402


def _require(path: pathlib.Path, how: str) -> pathlib.Path:
    if not path.exists():
        import pytest

        pytest.fail(f"{path} is missing: run {how} first", pytrace=False)
    return path


def quantized_nanodet(fmt: str, wbits: int = 8, abits: int = 8, first_last_bits: int = 8,
                      weight_range: str = "narrow", act_site: str = "producer",
                      act_calib: str = "auto", images: int | None = None) -> pathlib.Path:
    """Path of NanoDet-g quantized by make_quantized.py ("ort-qdq", "qcdq", or "qcdq-mixed":
    QCDQ with make_quantized.mixed_layer_bits() per inner conv, wbits/abits unused), made
    once. act_site: "producer" (every activation quantized where it is made, plus an
    identity requantization in front of each Conv), "conv-input" or "pre-pad"; see the script."""
    model_path = _require(NANODET, "deploy/models/fetch-models.sh")
    calib = make_quantized.calibration_images(_require(IMAGES, "deploy/fetch-images.sh"), images)
    options = (fmt, wbits, abits, first_last_bits, weight_range, act_site, act_calib)
    digest = hashlib.sha256()
    for blob in [model_path.read_bytes(), SCRIPT.read_bytes(), repr(options).encode()]:
        digest.update(hashlib.sha256(blob).digest())
    for image in calib:
        digest.update(image.name.encode() + hashlib.sha256(image.read_bytes()).digest())
    if fmt == "ort-qdq":
        import onnxruntime

        digest.update(onnxruntime.__version__.encode())  # ORT's quantizer is part of the recipe
        name = "nanodet-g-ort-qdq"
    elif fmt == "qcdq-mixed":
        name = f"nanodet-g-qcdq-mixed-fl{first_last_bits}-{weight_range}-{act_site}-{act_calib}"
    else:
        name = f"nanodet-g-qcdq-w{wbits}a{abits}-fl{first_last_bits}-{weight_range}-{act_site}-{act_calib}"
    out = CACHE / "quantized" / f"{name}-{digest.hexdigest()[:12]}.onnx"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        if fmt == "ort-qdq":
            make_quantized.make_ort_qdq(model_path, partial, calib, all_ops=False)
        else:
            source = onnx.load(str(model_path))
            layer_bits = make_quantized.mixed_layer_bits(source) if fmt == "qcdq-mixed" else None
            model, _ = make_quantized.make_qcdq(source, calib, wbits, abits, first_last_bits, weight_range,
                                                act_site, act_calib, layer_bits=layer_bits)
            onnx.save(model, str(partial))
        partial.replace(out)  # atomic: concurrent test runs never read half a file
    return out


def nanodet_frame(image_name: str) -> np.ndarray:
    """[1, 3, 416, 416] float32 as lowbit feeds NanoDet, from $LOWBIT_IMAGES/image_name."""
    path = _require(IMAGES / image_name, "deploy/fetch-images.sh")
    return make_quantized.nanodet_input(make_quantized.load_image(path))


def ort_outputs(model_path: pathlib.Path | str, x: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """ONNX Runtime (CPU) outputs by name."""
    return make_quantized.run(make_quantized.ort_session(str(model_path), threads), x)


def detections(outputs: dict[str, np.ndarray], width: int, height: int, score_threshold: float = 0.35):
    """[(class index, score, box)] by falling score; see make_quantized.decode_nanodet."""
    return make_quantized.decode_nanodet(outputs, width, height, score_threshold)


# Ops a quantization step passes through unchanged (or shrunk, for Sigmoid: slope <= 1/4).
_PASS_THROUGH = {"Reshape", "Transpose", "Split", "Sigmoid", "Identity", "Flatten", "Squeeze", "Unsqueeze"}


def output_step(model: onnx.ModelProto, output: str) -> float | None:
    """Scale of the DequantizeLinear an output comes from through shape ops, Split and
    Sigmoid (per-tensor scale; the largest for per-axis), or None when a float op such as a
    Conv without output quantizer computes it (the QCDQ models' outputs)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    init = {i.name: i for i in model.graph.initializer}
    tensor = output
    while tensor in producer:
        node = producer[tensor]
        if node.op_type == "DequantizeLinear":
            return float(np.max(numpy_helper.to_array(init[node.input[1]])))
        if node.op_type not in _PASS_THROUGH:
            return None
        tensor = node.input[0]
    return None


# --- the Brevitas ESPCN QAT exports in the qonnx 1.0.0 wheel (requirements-dev.txt) ---------
ESPCN_VARIANTS = ("nn_resize", "subpixel")


def espcn_dir() -> pathlib.Path:
    import qonnx

    return pathlib.Path(qonnx.__file__).parent / "data" / "onnx" / "bsd300x3-espcn"


def espcn_model(variant: str) -> pathlib.Path:
    """quant_model.onnx of "nn_resize" or "subpixel": QONNX Quant (domain onnx.brevitas, opset 11),
    W4A4 inner layers, 8-bit first/last, output quantized unsigned 8-bit at scale 1/255."""
    return espcn_dir() / variant / "quant_model.onnx"


def espcn_input() -> np.ndarray:
    """test_data/input_0.pb: float32 [1, 3, 128, 128], values k/255."""
    tensor = onnx.TensorProto()
    tensor.ParseFromString((espcn_dir() / "test_data" / "input_0.pb").read_bytes())
    return numpy_helper.to_array(tensor)


def qonnx_execute(model_path: pathlib.Path, x: np.ndarray) -> np.ndarray:
    """qonnx's own executor (after its InferShapes) on the model's single input and output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(model_path)).transform(InferShapes())
    return execute_onnx(model, {model.graph.input[0].name: x})[model.graph.output[0].name]


# --- an integer-exact twin of a QCDQ model -----------------------------------------------------
def integer_exact_qcdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The QCDQ model with each Conv computed from its integer codes, so ONNX Runtime
    evaluates it in exact integer arithmetic (as lowbit's kernels do) instead of float:

        codes_x(uint8) -> ConvInteger(codes_w int8, x_zero_point) -> int32 + bias codes
        -> Cast(float) -> Mul(s_in * s_w[c])   (one float32 rounding per output)

    ONNX Runtime's float Conv on the dequantized values rounds its fp32 sums, so a
    few codes per million land on the other side of a tie in the next quantizer and
    the difference travels downstream; this twin has no such error. Any Conv whose data,
    weight and bias inputs come straight from DequantizeLinear is rewritten: the QCDQ
    models make_quantized.py writes at the producer and conv-input sites (every Conv
    has its input Q -> Clip -> DQ directly in front of it; at the producer site the
    ConvInteger reads the codes of that identity requantization, which equal the
    producer's codes, and the producer-side Q/Clip/DQ chains stay as they are) and
    ORT's QDQ models alike; the weight codes are read from the DequantizeLinear's input
    (a Clip on an int8 initializer in QCDQ). Other Convs (pre-pad site: DQ -> Pad ->
    Conv) are left as they are.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    init = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    nodes, extra = [], []
    for node in g.node:
        if node.op_type != "Conv":
            nodes.append(node)
            continue
        x_dq, w_dq = producer.get(node.input[0]), producer.get(node.input[1])
        b_dq = producer.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if not (x_dq is not None and x_dq.op_type == "DequantizeLinear" and w_dq is not None
                and w_dq.op_type == "DequantizeLinear" and (b_dq is None or b_dq.op_type == "DequantizeLinear")):
            nodes.append(node)
            continue
        name = node.name
        w_scale = numpy_helper.to_array(init[w_dq.input[1]]).astype(np.float32)
        x_scale = numpy_helper.to_array(init[x_dq.input[1]]).astype(np.float32)
        w_zero = numpy_helper.to_array(init[w_dq.input[2]]) if len(w_dq.input) > 2 and w_dq.input[2] else np.zeros(1)
        scale = (x_scale * w_scale).astype(np.float32).reshape(1, -1, 1, 1)
        if x_scale.size != 1 or np.any(w_zero != 0):
            raise ValueError(f"{name}: per-tensor input and symmetric weights expected")
        if b_dq is not None:
            b_scale = numpy_helper.to_array(init[b_dq.input[1]]).astype(np.float32).reshape(1, -1, 1, 1)
            if not np.array_equal(np.broadcast_to(b_scale, scale.shape), scale):
                raise ValueError(f"{name}: bias scale is not input scale x weight scale")
        extra.append(numpy_helper.from_array(scale, f"{name}_exact_scale"))
        attrs = [a for a in node.attribute if a.name in ("dilations", "group", "kernel_shape", "pads", "strides")]
        conv_int = helper.make_node("ConvInteger", [x_dq.input[0], w_dq.input[0], x_dq.input[2]], [f"{name}_acc"],
                                    name=f"{name}_ConvInteger")
        conv_int.attribute.extend(attrs)
        nodes.append(conv_int)
        acc = f"{name}_acc"
        if b_dq is not None:
            bias = numpy_helper.to_array(init[b_dq.input[0]]).astype(np.int32).reshape(1, -1, 1, 1)
            extra.append(numpy_helper.from_array(bias, f"{name}_exact_bias"))
            nodes.append(helper.make_node("Add", [acc, f"{name}_exact_bias"], [f"{name}_acc_bias"]))
            acc = f"{name}_acc_bias"
        nodes.append(helper.make_node("Cast", [acc], [f"{name}_acc_float"], to=onnx.TensorProto.FLOAT))
        nodes.append(helper.make_node("Mul", [f"{name}_acc_float", f"{name}_exact_scale"], [node.output[0]]))
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(extra)
    # Drop the nodes nothing reads any more (the replaced DequantizeLinear chains).
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        alive = [n for n in g.node if any(o in used for o in n.output)]
        if len(alive) == len(g.node):
            break
        del g.node[:]
        g.node.extend(alive)
    used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    x0, y0 = np.maximum(a[:2], b[:2])
    x1, y1 = np.minimum(a[2:], b[2:])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)
