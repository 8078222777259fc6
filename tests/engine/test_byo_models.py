"""Models exported by other tool chains run in the engine and match ONNX Runtime.

The three real models of deploy/models/fetch-byo-models.sh (models/_import/):
YOLOv8n as Ultralytics exports it (opset 17, dynamic height/width: the Shape /
Gather / Range / Expand plumbing must fold away once `lowbit tensors` fixes the
size from the .npy), PP-LCNet from Paddle (HardSwish, HardSigmoid,
BatchNormalization, GlobalAveragePool, MatMul, Softmax) and SSD-MobileNetV2
converted from TFLite by tflite2onnx (depthwise, ReLU6 as Clip). Each runs on
three real photos, pre-processed with numpy as its origin documents, through
`lowbit tensors` and ONNX Runtime; every output element must agree within
1e-4 + 2e-6 * |v| (the bound of test_onnxruntime_parity.py, which explains the
relative term).

Environment: LOWBIT_BIN, LOWBIT_MODEL_REPO, LOWBIT_IMAGES as in
test_onnxruntime_parity.py.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
LOWBIT_BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "engine" / "lowbit"))
MODEL_REPO = pathlib.Path(os.environ.get("LOWBIT_MODEL_REPO", REPO / "models"))
IMAGES = pathlib.Path(os.environ.get("LOWBIT_IMAGES", REPO / "data" / "images"))
ABSOLUTE_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 2e-6


def ssd_tensor(image: Image.Image) -> np.ndarray:
    """NHWC 300x300 stretch, x / 127.5 - 1, transposed to the converted model's NCHW."""
    rgb = np.asarray(image.convert("RGB").resize((300, 300), Image.BILINEAR), dtype=np.float32)
    nhwc = (rgb / 127.5 - 1.0)[None]
    return np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)).astype(np.float32)


def yolo_tensor(image: Image.Image) -> np.ndarray:
    """RGB / 255, the longer side resized to 320, padded to a 320x320 square (top-left, 0)."""
    rgb = image.convert("RGB")
    scale = 320 / max(rgb.size)
    width, height = max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))
    resized = np.asarray(rgb.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0
    square = np.zeros((320, 320, 3), dtype=np.float32)
    square[:height, :width] = resized
    return np.ascontiguousarray(square.transpose(2, 0, 1)[None])


def lcnet_tensor(image: Image.Image) -> np.ndarray:
    """Short side resized to 256, centre 224 crop, BGR, ImageNet mean/std, NCHW."""
    rgb = image.convert("RGB")
    scale = 256 / min(rgb.size)
    width, height = max(256, round(rgb.width * scale)), max(256, round(rgb.height * scale))
    resized = np.asarray(rgb.resize((width, height), Image.BILINEAR), dtype=np.float32)
    top, left = (height - 224) // 2, (width - 224) // 2
    crop = resized[top:top + 224, left:left + 224, ::-1] / 255.0  # BGR
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    return np.ascontiguousarray(((crop - mean) / std).transpose(2, 0, 1)[None]).astype(np.float32)


MODELS = {
    "yolov8n-nudenet": (yolo_tensor, ["astronaut.png", "messi5.jpg", "person.jpg"]),
    "pp-lcnet-orientation": (lcnet_tensor, ["fruits.jpg", "coffee.png", "horses.jpg"]),
    "ssd-mobilenetv2-oid": (ssd_tensor, ["dog.jpg", "giraffe.jpg", "motorcycle_left.png"]),
}


def require(path: pathlib.Path, how: str) -> pathlib.Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: {how}", pytrace=False)
    return path


def model_path(name: str) -> pathlib.Path:
    return require(MODEL_REPO / "_import" / name / "model.onnx",
                   "run deploy/models/fetch-byo-models.sh (or set LOWBIT_MODEL_REPO)")


def run_lowbit(model: pathlib.Path, input_name: str, tensor: np.ndarray,
               tmp_path: pathlib.Path) -> dict[str, np.ndarray]:
    binary = require(LOWBIT_BIN, "build the CLI (ninja -C build lowbit) or set LOWBIT_BIN")
    np.save(tmp_path / "input.npy", tensor)
    out_dir = tmp_path / "out"
    result = subprocess.run(
        [str(binary), "tensors", str(model), "--input", f"{input_name}={tmp_path / 'input.npy'}",
         "--out", str(out_dir)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {p.stem: np.load(p) for p in out_dir.glob("*.npy")}


# Why YOLOv8n's box rows are not held to the bound against ONNX Runtime: they
# are pixel coordinates (|v| up to ~320) made by DFL (softmax expectation over
# 16 bins) times the stride (up to 32), so the float32 noise of 60 convolutions
# is multiplied by 32. ONNX Runtime's own float32 output breaks the bound
# against a float64 evaluation of the graph (test_yolo_boxes_as_close_to_float64_
# as_onnxruntime measures it), so two float32 engines cannot be asked to meet it
# between them there. The box rows are checked against float64 instead; against
# ONNX Runtime they keep a guard of 1e-4 + 1e-5 * |v| (measured: at most
# 5.9e-6 * |v| beyond the 1e-4). The class-score rows meet the bound.
YOLO_BOX_GUARD = 1e-5


def sanitize(name: str) -> str:
    return name.replace("/", "_").replace(":", "_").replace("\\", "_")


@pytest.mark.parametrize("name,photo",
                         [(n, p) for n, (_, photos) in MODELS.items() for p in photos])
def test_matches_onnxruntime(name: str, photo: str, tmp_path: pathlib.Path) -> None:
    make_tensor, _ = MODELS[name]
    model = model_path(name)
    image = Image.open(require(IMAGES / photo, "run deploy/fetch-images.sh"))
    tensor = make_tensor(image)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    expected = dict(zip([o.name for o in session.get_outputs()],
                        session.run(None, {input_name: tensor})))
    got = run_lowbit(model, input_name, tensor, tmp_path)
    for output, reference in expected.items():
        actual = got[sanitize(output)]
        assert actual.shape == reference.shape, output
        error = np.abs(actual.astype(np.float64) - reference)
        bound = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(reference)
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        print(f"{name} {photo} {output}: max abs error {error.max():.3g} "
              f"(max |v| {np.abs(reference).max():.3g})")
        message = (f"{name} on {photo}, output {output}: max abs error {error.max():.3g}; at "
                   f"{worst} lowbit {actual[worst]:.7g} vs ONNX Runtime {reference[worst]:.7g}")
        if name == "yolov8n-nudenet":
            # Box rows (0:4): see YOLO_BOX_GUARD; class scores (4:): the bound.
            assert np.all(error[:, 4:] <= bound[:, 4:]), message
            assert np.all(error[:, :4] <= ABSOLUTE_TOLERANCE
                          + YOLO_BOX_GUARD * np.abs(reference[:, :4])), message
        else:
            assert np.all(error <= bound), message


def test_yolo_runs_without_a_fixed_size_only_when_given_one(tmp_path: pathlib.Path) -> None:
    """The dynamic export is refused by `inspect` without a size, naming the way to give
    one, and compiles at 320x320 with --input-shape (the plumbing folded, no Shape left)."""
    binary = require(LOWBIT_BIN, "build the CLI or set LOWBIT_BIN")
    model = model_path("yolov8n-nudenet")
    refused = subprocess.run([str(binary), "inspect", str(model)], capture_output=True, text=True)
    assert refused.returncode != 0
    assert "--input-shape" in refused.stderr
    inspected = subprocess.run(
        [str(binary), "inspect", str(model), "--input-shape", "images=1x3x320x320"],
        capture_output=True, text=True, timeout=300)
    assert inspected.returncode == 0, inspected.stderr
    assert "output0 [1,22,2100]" in inspected.stdout
    ops = {line.split()[2] for line in inspected.stdout.splitlines()
           if line.strip() and line.split()[0].isdigit() and len(line.split()) > 2}
    assert not ops & {"Shape", "Gather", "Range", "Expand", "ConstantOfShape", "Cast"}, ops
    ops_in_order = [line.split()[2] for line in inspected.stdout.splitlines()
                    if line.strip() and line.split()[0].isdigit() and len(line.split()) > 2]
    # Every SiLU (57) fused; the class scores' Sigmoid alone stays.
    assert ops_in_order.count("lowbit.SiLU") == 57, ops_in_order
    assert ops_in_order.count("Sigmoid") == 1, ops_in_order


@pytest.mark.parametrize("name,photos", [("pp-lcnet-orientation", ["fruits.jpg", "coffee.png"]),
                                         ("yolov8n-nudenet", ["astronaut.png", "messi5.jpg"])])
def test_batch_of_two_frames(name: str, photos: list[str], tmp_path: pathlib.Path) -> None:
    """The dynamic-batch exports run two frames in one call (the folded plumbing keeps the
    batch symbolic); class scores / probabilities meet the bound, YOLO boxes the 1e-5 guard."""
    make_tensor, _ = MODELS[name]
    model = model_path(name)
    tensor = np.concatenate([make_tensor(Image.open(require(IMAGES / p, "fetch-images.sh")))
                             for p in photos])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output = session.get_outputs()[0].name
    reference = session.run(None, {input_name: tensor})[0]
    actual = run_lowbit(model, input_name, tensor, tmp_path)[sanitize(output)]
    assert actual.shape == reference.shape
    error = np.abs(actual.astype(np.float64) - reference)
    strict = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(reference)
    if name == "yolov8n-nudenet":
        assert np.all(error[:, 4:] <= strict[:, 4:]), error[:, 4:].max()
        assert np.all(error <= ABSOLUTE_TOLERANCE + YOLO_BOX_GUARD * np.abs(reference)), error.max()
    else:
        assert np.all(error <= strict), error.max()


def float64_graph(model: pathlib.Path):
    """The same graph with every float tensor (initializers, Constant values, Cast targets,
    input and output) in float64, for onnx.reference: the exact answer to float32 noise."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model))
    to_double = lambda t: numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name)  # noqa: E731
    for initializer in graph.graph.initializer:
        if initializer.data_type == onnx.TensorProto.FLOAT:
            initializer.CopyFrom(to_double(initializer))
    for node in graph.graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                attribute.i = onnx.TensorProto.DOUBLE
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == onnx.TensorProto.FLOAT:
                attribute.t.CopyFrom(to_double(attribute.t))
    for value in list(graph.graph.input) + list(graph.graph.output):
        value.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    del graph.graph.value_info[:]
    return graph


@pytest.fixture(scope="module")
def yolo_against_float64(tmp_path_factory) -> dict[str, dict[str, dict[str, float]]]:
    """Per photo, per evaluator (ONNX Runtime with its default graph optimisations, ONNX
    Runtime with them disabled, lowbit): the box rows' max and RMS error against float64 and
    the number of elements beyond 1e-4 + 2e-6 * |v|; and the class rows' max error."""
    from onnx.reference import ReferenceEvaluator

    model = model_path("yolov8n-nudenet")
    exact_session = ReferenceEvaluator(float64_graph(model))
    optimised = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    unoptimised = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    table: dict[str, dict[str, dict[str, float]]] = {}
    for photo in MODELS["yolov8n-nudenet"][1]:
        tensor = yolo_tensor(Image.open(require(IMAGES / photo, "run deploy/fetch-images.sh")))
        exact = exact_session.run(None, {"images": tensor.astype(np.float64)})[0]
        bound = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(exact)
        outputs = {
            "onnxruntime": optimised.run(None, {"images": tensor})[0],
            "onnxruntime-unoptimised": unoptimised.run(None, {"images": tensor})[0],
            "lowbit": run_lowbit(model, "images", tensor, tmp_path_factory.mktemp(photo))["output0"],
        }
        table[photo] = {}
        for who, output in outputs.items():
            error = np.abs(output.astype(np.float64) - exact)
            table[photo][who] = {
                "box_max": float(error[:, :4].max()),
                "box_rms": float(np.sqrt(np.mean(error[:, :4] ** 2))),
                "box_beyond_bound": int(np.sum(error[:, :4] > bound[:, :4])),
                "class_max": float(error[:, 4:].max()),
                "class_beyond_bound": int(np.sum(error[:, 4:] > bound[:, 4:])),
            }
            row = table[photo][who]
            print(f"yolov8n {photo:14s} {who:24s} boxes: max {row['box_max']:.3g} rms "
                  f"{row['box_rms']:.3g} beyond bound {row['box_beyond_bound']:2d}; "
                  f"classes: max {row['class_max']:.3g}")
    return table


def test_yolo_box_bound_is_below_onnxruntimes_own_float32_noise(yolo_against_float64) -> None:
    """The premise of YOLO_BOX_GUARD: ONNX Runtime's own output, with its default graph
    optimisations, is farther than the bound from float64 on some box element (person.jpg:
    5 elements, 5.4e-4). If it ever is not, the box rows should meet the bound again."""
    beyond = {photo: rows["onnxruntime"]["box_beyond_bound"]
              for photo, rows in yolo_against_float64.items()}
    assert any(beyond.values()), (
        f"ONNX Runtime meets 1e-4 + 2e-6|v| against float64 on every box element {beyond}: "
        "hold YOLOv8n's box rows to the bound against ONNX Runtime (drop YOLO_BOX_GUARD)")


def test_yolo_boxes_as_close_to_float64_as_onnxruntime(yolo_against_float64) -> None:
    """lowbit's box rows are no farther from float64 than ONNX Runtime's float32 evaluations
    are, over the photos together: its worst element and its count of elements beyond the
    bound are at most those of ONNX Runtime's optimised or unoptimised graph (the two span
    ONNX Runtime's own float32 noise), and its RMS error is within 1.5x of the optimised
    graph's. The class-score rows meet the bound against float64 on every photo.

    Over the photos, not per photo: one photo's worst element is one of 8,400 box values
    and moves with rounding order alone. Three SiLU evaluations of equal accuracy (0.45-0.47
    ulp mean error: std::exp; a polynomial exp in SSE; the same with FMA contraction) put
    astronaut.png's worst box error at 1.8e-4, 2.6e-4 and 3.1e-4, around ONNX Runtime's
    2.5-2.7e-4 there, while the worst over the photos stayed 4.1-5.2e-4 against ONNX
    Runtime's 5.8e-4."""
    who = ("lowbit", "onnxruntime", "onnxruntime-unoptimised")
    rows = {w: [table[w] for table in yolo_against_float64.values()] for w in who}
    worst = {w: max(r["box_max"] for r in rows[w]) for w in who}
    beyond = {w: sum(r["box_beyond_bound"] for r in rows[w]) for w in who}
    rms = {w: float(np.sqrt(np.mean([r["box_rms"] ** 2 for r in rows[w]]))) for w in who}
    assert worst["lowbit"] <= max(worst["onnxruntime"], worst["onnxruntime-unoptimised"]), worst
    assert beyond["lowbit"] <= max(beyond["onnxruntime"], beyond["onnxruntime-unoptimised"]), beyond
    assert rms["lowbit"] <= 1.5 * rms["onnxruntime"], rms
    for photo, table in yolo_against_float64.items():
        assert table["lowbit"]["class_beyond_bound"] == 0, (photo, table["lowbit"])


def test_yolo_boxes_worst_element_no_worse_than_onnxruntime(yolo_against_float64) -> None:
    """Over the three photos, lowbit's worst box element against float64 is no worse than
    ONNX Runtime's default (optimised) evaluation's worst (measured 4.1e-4 vs 5.4e-4)."""
    worst = {who: max(rows[who]["box_max"] for rows in yolo_against_float64.values())
             for who in ("lowbit", "onnxruntime")}
    assert worst["lowbit"] <= worst["onnxruntime"], worst
