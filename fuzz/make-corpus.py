#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/CMakeLists.txt), made from the
project's real files: the models in models/, .lbm files compiled from them
with `lowbit compile`, the images in data/images/, the config.pbtxt files,
raw frames cut from the images, and KServe v2 ModelInferRequests carrying
those frames (serialized with `protoc --encode`).

    fuzz/make-corpus.py [--out DIR] [--lowbit PATH] [--force]

DIR/<target>/ gets one file per seed (default DIR: build-fuzz/corpus). A
target's directory that already holds seeds is left alone unless --force,
so the ctest fixture that calls this is cheap after its first run. Inputs
that are missing (models not fetched, no lowbit binary) are skipped with a
note; every target still gets the seeds it can be given.

Real models are large (NanoDet-g is 15 MB): the ONNX seeds are the whole
BlazeFace model and the first layers of every model,
and the .lbm seeds are compiled from those, so the fuzzer mutates inputs of
kilobytes, not megabytes.
"""

import argparse
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
TARGETS = ["onnx_import", "lbm_load", "image_decode", "model_config", "raw_frame", "kserve_infer"]


def note(message):
    print(f"make-corpus: {message}", file=sys.stderr)


class Corpus:
    def __init__(self, root, target):
        self.dir = root / target
        self.dir.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def add(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        (self.dir / name).write_bytes(data)
        self.count += 1


# --- ONNX -------------------------------------------------------------------

def onnx_seeds(corpus, workdir):
    """Writes ONNX seeds; returns the paths of those worth compiling to .lbm."""
    try:
        import onnx
    except ImportError:
        note("python onnx missing: no ONNX seeds (pip install onnx)")
        return []
    compilable = []
    for model_path in sorted(REPO.glob("models/*/model.onnx")):
        name = model_path.parent.name
        if model_path.stat().st_size < 1 << 20:
            corpus.add(f"{name}.onnx", model_path.read_bytes())
            compilable.append(model_path)
        model = onnx.load(str(model_path))
        graph = model.graph
        # Cuts after the k-th node computed from the graph's input: the nodes
        # before it that it needs (weight-quantization chains included) and
        # their initializers; its outputs become the graph's outputs (type
        # given, shape left open).
        live = {i.name for i in graph.input}
        dependent = []
        for index, node in enumerate(graph.node):
            if any(name in live for name in node.input):
                live.update(o for o in node.output if o)
                dependent.append(index)
        for k in (2, 6, 16, 40):
            if k > len(dependent):
                continue
            last = graph.node[dependent[k - 1]]
            needed = set(last.input)
            nodes = [last]
            for node in reversed(graph.node[: dependent[k - 1]]):
                if any(o in needed for o in node.output):
                    nodes.append(node)
                    needed.update(node.input)
            nodes.reverse()
            initializers = [t for t in graph.initializer if t.name in needed]
            if sum(len(t.raw_data) for t in initializers) > 256 * 1024:
                continue
            cut = onnx.helper.make_graph(
                nodes, f"{graph.name}-first{k}",
                [i for i in graph.input if i.name in needed],
                [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                 for o in last.output if o],
                initializers)
            extracted = onnx.helper.make_model(cut, opset_imports=model.opset_import,
                                               ir_version=model.ir_version)
            path = workdir / f"{name}-first{k}.onnx"
            onnx.save(extracted, str(path))
            corpus.add(path.name, path.read_bytes())
            compilable.append(path)
    # Initializer encodings and attribute kinds the real models do not use.
    from onnx import TensorProto, helper
    import numpy as np

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weights = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3) / 10
    nodes = [
        helper.make_node("Constant", [], ["scale"], value=helper.make_tensor(
            "scale", TensorProto.FLOAT16, [], [0.5])),
        helper.make_node("Cast", ["scale"], ["scale32"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("Mul", ["c", "scale32"], ["m"]),
        helper.make_node("Clip", ["m", "lo", "hi"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
    ]
    init = [
        helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.flatten()),
        helper.make_tensor("b", TensorProto.DOUBLE, [2], [0.25, -0.25]),
        helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0]),
        helper.make_tensor("shape", TensorProto.INT64, [2], [0, -1]),
        helper.make_tensor("codes4", TensorProto.INT4, [5], [-8, -1, 0, 3, 7]),
        helper.make_tensor("codes8", TensorProto.UINT8, [3], [0, 128, 255]),
        helper.make_tensor("flags", TensorProto.BOOL, [2], [True, False]),
        helper.make_tensor("ints", TensorProto.INT32, [2], [-5, 5]),
        helper.make_tensor("halves", TensorProto.INT16, [2], [-300, 300]),
    ]
    graph = helper.make_graph(nodes, "typed", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    corpus.add("typed-initializers.onnx", model.SerializeToString())
    typed = workdir / "typed-initializers.onnx"
    typed.write_bytes(model.SerializeToString())

    # QDQ: QuantizeLinear / DequantizeLinear around a convolution, per-axis.
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    init = [
        helper.make_tensor("xs", TensorProto.FLOAT, [], [0.05]),
        helper.make_tensor("xz", TensorProto.UINT8, [], [128]),
        helper.make_tensor("wq", TensorProto.INT8, [2, 2, 3, 3], list(range(-18, 18))),
        helper.make_tensor("ws", TensorProto.FLOAT, [2], [0.01, 0.02]),
        helper.make_tensor("wz", TensorProto.INT8, [2], [0, 0]),
    ]
    graph = helper.make_graph(nodes, "qdq", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    corpus.add("qdq-conv.onnx", model.SerializeToString())

    # QONNX Quant nodes (2-bit weights and activations), as Brevitas exports.
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "abits"], ["xq"], domain="qonnx.custom_op.general",
                         signed=0, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Quant", ["w", "s", "z", "wbits"], ["wq"], domain="qonnx.custom_op.general",
                         signed=1, narrow=1, rounding_mode="ROUND"),
        helper.make_node("Conv", ["xq", "wq"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    init = [
        helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.flatten()),
        helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
        helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("abits", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("wbits", TensorProto.FLOAT, [], [2.0]),
    ]
    graph = helper.make_graph(nodes, "qonnx", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)])
    corpus.add("qonnx-quant.onnx", model.SerializeToString())
    return compilable + [typed]


# --- .lbm -------------------------------------------------------------------

def lbm_seeds(corpus, workdir, lowbit, onnx_paths):
    if not lowbit or not os.access(lowbit, os.X_OK):
        note(f"no lowbit binary ({lowbit}): no .lbm seeds")
        return
    for path in onnx_paths:
        out = workdir / (path.stem + ".lbm")
        # The cost model picks kernels (no measuring: seconds per model).
        result = subprocess.run([lowbit, "compile", str(path), "-o", str(out)],
                                capture_output=True, text=True,
                                env=dict(os.environ, LOWBIT_KERNEL_CHOICE="model"))
        if result.returncode != 0 or not out.exists():
            note(f"lowbit compile {path.name}: {result.stderr.strip()[:200]}")
            continue
        corpus.add(out.name, out.read_bytes())


# --- images -----------------------------------------------------------------

def load_images():
    try:
        import cv2
    except ImportError:
        note("python cv2 missing: images are used as they are, no re-encodings")
        return None, []
    images = []
    for path in sorted(REPO.glob("data/images/*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                images.append((path.stem, image))
    return cv2, images


def image_seeds(corpus, cv2, images):
    for path in sorted(REPO.glob("data/images/*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png") and path.stat().st_size <= 200_000:
            corpus.add(path.name, path.read_bytes())
    if cv2 is None:
        return
    for name, image in images:
        small = cv2.resize(image, (37, 23), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        encodings = {
            "baseline.jpg": cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1],
            "progressive.jpg": cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1],
            "restart.jpg": cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])[1],
            "gray.jpg": cv2.imencode(".jpg", gray)[1],
            "rgb.png": cv2.imencode(".png", small)[1],
            "gray.png": cv2.imencode(".png", gray)[1],
            "alpha.png": cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_BGR2BGRA))[1],
            "16bit.png": cv2.imencode(".png", small.astype("uint16") * 257)[1],
        }
        for suffix, data in encodings.items():
            corpus.add(f"{name}-{suffix}", data.tobytes())
    # Truncated files: the cases strict decoding refuses.
    if images:
        name, image = images[0]
        jpeg = cv2.imencode(".jpg", cv2.resize(image, (64, 48)))[1].tobytes()
        corpus.add(f"{name}-truncated-eoi.jpg", jpeg[: len(jpeg) // 2] + b"\xff\xd9")
        png = cv2.imencode(".png", cv2.resize(image, (64, 48)))[1].tobytes()
        corpus.add(f"{name}-truncated.png", png[: len(png) // 2])


# --- config.pbtxt -----------------------------------------------------------

def config_seeds(corpus):
    for path in sorted(REPO.glob("models/*/config.pbtxt")):
        corpus.add(f"{path.parent.name}.pbtxt", path.read_text())
    corpus.add("inline-labels.pbtxt", """
name: "tiny" model_file: "model.lbm"
input { width: 64 height: 48 layout: NHWC color_order: RGB mean: [0, 0, 0] std: [1, 1, 1] }
nanodet { strides: [8, 16] reg_max: 7 score_outputs: ["s8", "s16"] box_outputs: ["b8", "b16"] }
labels: ["cat", "dog"] score_threshold: 0.25 iou_threshold: 0.45 max_detections: 0
latency_objective_ms: 40
""")


# --- raw frames -------------------------------------------------------------

BGR8, RGB8 = 1, 2  # lowbit.v1.PixelFormat


def raw_frame(image, fmt, stride_pad=0, short_last_row=False):
    """fuzz_raw_frame.cc's input: i32 width, height, stride, format, pixels."""
    height, width = image.shape[:2]
    pixels = image if fmt == BGR8 else image[:, :, ::-1]
    row = width * 3
    stride = row + stride_pad
    rows = [pixels[y].tobytes() + b"\0" * stride_pad for y in range(height)]
    data = b"".join(rows)
    if short_last_row:
        data = data[: len(data) - stride_pad]
    return struct.pack("<iiii", width, height, stride if stride_pad else 0, fmt) + data


def raw_frame_seeds(corpus, cv2, images):
    if cv2 is None or not images:
        note("no images: raw frames are synthetic")
        import numpy as np
        images = [("synthetic", (np.arange(12 * 9 * 3) % 251).astype("uint8").reshape(9, 12, 3))]
    for name, image in images[:6]:
        small = cv2.resize(image, (13, 7)) if cv2 is not None else image
        corpus.add(f"{name}-bgr-packed.raw", raw_frame(small, BGR8))
        corpus.add(f"{name}-rgb-padded.raw", raw_frame(small, RGB8, stride_pad=5))
        corpus.add(f"{name}-bgr-short-last-row.raw",
                   raw_frame(small, BGR8, stride_pad=3, short_last_row=True))
    corpus.add("one-pixel.raw", struct.pack("<iiii", 1, 1, 0, BGR8) + b"\x10\x20\x30")


# --- KServe v2 ModelInferRequest ----------------------------------------------

def text_bytes(data):
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


def encode_request(text):
    proto_dir = REPO / "proto"
    result = subprocess.run(
        ["protoc", "--encode=inference.ModelInferRequest", f"-I{proto_dir}",
         str(proto_dir / "inference/grpc_service.proto")],
        input=text.encode(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode())
    return result.stdout


def kserve_seeds(corpus, cv2, images):
    if shutil.which("protoc") is None:
        note("protoc missing: no KServe seeds")
        return
    import numpy as np
    if cv2 is not None and images:
        frame = cv2.resize(images[0][1], (32, 32)).astype("float32")
        jpeg = cv2.imencode(".jpg", cv2.resize(images[0][1], (32, 32)))[1].tobytes()
        png = cv2.imencode(".png", cv2.resize(images[-1][1], (20, 16)))[1].tobytes()
    else:
        frame = (np.arange(32 * 32 * 3) % 255).astype("float32").reshape(32, 32, 3)
        jpeg, png = b"\xff\xd8\xff\xd9", b"\x89PNG\r\n\x1a\n"
    nchw = ((frame - 110.0) / 58.0).transpose(2, 0, 1).astype("<f4")
    nhwc = ((frame[:, :, ::-1] - 127.5) / 127.5).astype("<f4")

    def element(data):
        return struct.pack("<I", len(data)) + data

    seeds = {
        "nanodet-tensor-raw": f"""
model_name: "nanodet-g" id: "r1"
inputs {{ name: "input" datatype: "FP32" shape: [1, 3, 32, 32] }}
outputs {{ name: "cls_stride8" }} outputs {{ name: "box_stride8" }}
raw_input_contents: {text_bytes(nchw.tobytes())}
""",
        "nanodet-tensor-classification": f"""
model_name: "nanodet-g" id: "c1"
inputs {{ name: "input" datatype: "FP32" shape: [1, 3, 32, 32] }}
outputs {{ name: "cls_stride8" parameters {{ key: "classification" value {{ int64_param: 3 }} }} }}
raw_input_contents: {text_bytes(nchw.tobytes())}
""",
        "nanodet-tensor-typed": f"""
model_name: "nanodet-g"
inputs {{ name: "input" datatype: "FP32" shape: [1, 3, 32, 32]
  contents {{ fp32_contents: [{", ".join(f"{v:.4f}" for v in nchw.flatten())}] }} }}
parameters {{ key: "score_threshold" value {{ double_param: 0.3 }} }}
""",
        "blazeface-tensor-batch2": f"""
model_name: "blazeface" id: "b2"
inputs {{ name: "input:0" datatype: "FP32" shape: [2, 32, 32, 3] }}
raw_input_contents: {text_bytes(nhwc.tobytes() * 2)}
parameters {{ key: "iou_threshold" value {{ double_param: 0.4 }} }}
""",
        "nanodet-image-raw": f"""
model_name: "nanodet-g" id: "i1"
inputs {{ name: "IMAGE" datatype: "BYTES" shape: [2] }}
outputs {{ name: "COUNT" }} outputs {{ name: "BOXES" }} outputs {{ name: "LABELS" }}
raw_input_contents: {text_bytes(element(jpeg) + element(png))}
parameters {{ key: "timeout" value {{ int64_param: 250000 }} }}
""",
        "blazeface-image-contents": f"""
model_name: "blazeface"
inputs {{ name: "IMAGE" datatype: "BYTES" shape: [1]
  contents {{ bytes_contents: {text_bytes(png)} }} }}
parameters {{ key: "camera_id" value {{ string_param: "gate-3" }} }}
parameters {{ key: "score_threshold" value {{ double_param: 0.6 }} }}
outputs {{ name: "SCORES" }} outputs {{ name: "IMAGE_SIZE" }} outputs {{ name: "CLASSES" }}
""",
    }
    for name, text in seeds.items():
        corpus.add(f"{name}.pb", encode_request(text))


# --- main -------------------------------------------------------------------

def default_lowbit():
    for build in ("build-fuzz-tools", "build", "build-lead"):
        path = REPO / build / "engine" / "lowbit"
        if path.exists():
            return str(path)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "build-fuzz" / "corpus")
    parser.add_argument("--lowbit", default=None, help="lowbit CLI for the .lbm seeds")
    parser.add_argument("--force", action="store_true", help="remake existing corpora")
    args = parser.parse_args()
    lowbit = args.lowbit or default_lowbit()

    todo = [t for t in TARGETS
            if args.force or not (args.out / t).is_dir() or not any((args.out / t).iterdir())]
    if not todo:
        note(f"{args.out}: every target has seeds (--force to remake)")
        return 0
    for target in todo:
        shutil.rmtree(args.out / target, ignore_errors=True)
    corpora = {t: Corpus(args.out, t) for t in todo}
    cv2, images = load_images()
    with tempfile.TemporaryDirectory(prefix="lowbit-corpus-") as tmp:
        workdir = pathlib.Path(tmp)
        if "onnx_import" in corpora or "lbm_load" in corpora:
            scratch = corpora.get("onnx_import") or Corpus(workdir, "onnx_scratch")
            onnx_paths = onnx_seeds(scratch, workdir)
            if "lbm_load" in corpora:
                lbm_seeds(corpora["lbm_load"], workdir, lowbit, onnx_paths)
        if "image_decode" in corpora:
            image_seeds(corpora["image_decode"], cv2, images)
        if "model_config" in corpora:
            config_seeds(corpora["model_config"])
        if "raw_frame" in corpora:
            raw_frame_seeds(corpora["raw_frame"], cv2, images)
        if "kserve_infer" in corpora:
            kserve_seeds(corpora["kserve_infer"], cv2, images)
    for target, corpus in corpora.items():
        note(f"{target}: {corpus.count} seeds in {corpus.dir}")
        if corpus.count == 0:
            note(f"{target}: no seeds could be made")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
