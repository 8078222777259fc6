"""A small numpy interpreter of tfjs graph models, with TensorFlow semantics.

It exists to check tfjs_to_onnx.py: it evaluates the original graph op by op
exactly as TensorFlow defines each op (NHWC Conv2D with HWIO filters,
ResizeBilinear's align_corners / half_pixel_centers rules, SplitV's size list,
...), sharing no layout logic with the converter. Float math is done in
float64, so the result is a reference for float32 runtimes.

Only the ops found in the models lowbit converts are implemented; any other op
raises NotImplementedError.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

import tfjs_graph


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME": output ceil(size / stride), extra padding at the end."""
    effective = (kernel - 1) * dilation + 1
    output = -(-size // stride)
    total = max((output - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _spatial_padding(node: tfjs_graph.Node, x: np.ndarray, kernel_hw, strides, dilations):
    """[(top, bottom), (left, right)] for an NHWC op's padding attribute."""
    padding = node.attrs["padding"]
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        return [same_padding(x.shape[1 + i], kernel_hw[i], strides[i], dilations[i]) for i in range(2)]
    if padding == "EXPLICIT":
        flat = node.attrs["explicit_paddings"]  # 4 (before, after) pairs, NHWC
        return [(flat[2], flat[3]), (flat[4], flat[5])]
    raise NotImplementedError(f"{node.name}: padding {padding}")


def _check_nhwc(node: tfjs_graph.Node) -> None:
    if node.attrs.get("data_format", "NHWC") != "NHWC":
        raise NotImplementedError(f"{node.name}: data_format {node.attrs['data_format']}")


def _windows(x: np.ndarray, kernel_hw, strides, dilations) -> tuple[list[np.ndarray], int, int]:
    """Strided views x[:, i*dh + s*oy, j*dw + s*ox, :] for each kernel tap (i, j)."""
    out_h = (x.shape[1] - (kernel_hw[0] - 1) * dilations[0] - 1) // strides[0] + 1
    out_w = (x.shape[2] - (kernel_hw[1] - 1) * dilations[1] - 1) // strides[1] + 1
    taps = []
    for i in range(kernel_hw[0]):
        for j in range(kernel_hw[1]):
            y0, x0 = i * dilations[0], j * dilations[1]
            taps.append(
                x[:, y0 : y0 + (out_h - 1) * strides[0] + 1 : strides[0], x0 : x0 + (out_w - 1) * strides[1] + 1 : strides[1], :]
            )
    return taps, out_h, out_w


def conv2d(node, x, filters):
    """NHWC input, HWIO filters."""
    _check_nhwc(node)
    kernel_hw = filters.shape[:2]
    strides = node.attrs["strides"][1:3]
    dilations = node.attrs.get("dilations", [1, 1, 1, 1])[1:3]
    pads = _spatial_padding(node, x, kernel_hw, strides, dilations)
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    taps, out_h, out_w = _windows(x, kernel_hw, strides, dilations)
    if filters.shape[2] != x.shape[3]:
        raise NotImplementedError(f"{node.name}: grouped convolution")
    columns = np.concatenate(taps, axis=3)  # [N, OH, OW, KH*KW*Cin], tap-major like HWIO
    return columns @ filters.reshape(-1, filters.shape[3])


def max_pool(node, x):
    _check_nhwc(node)
    kernel_hw = node.attrs["ksize"][1:3]
    strides = node.attrs["strides"][1:3]
    pads = _spatial_padding(node, x, kernel_hw, strides, (1, 1))
    x = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-np.inf)
    taps, _, _ = _windows(x, kernel_hw, strides, (1, 1))
    return np.max(np.stack(taps), axis=0)


def _resize_axis(size_in: int, size_out: int, align_corners: bool, half_pixel_centers: bool):
    """Source indices (lower, upper) and weight of upper, TensorFlow's rules."""
    if align_corners and size_out > 1:
        scale = (size_in - 1) / (size_out - 1)
    else:
        scale = size_in / size_out
    out = np.arange(size_out, dtype=np.float64)
    source = (out + 0.5) * scale - 0.5 if half_pixel_centers else out * scale
    floor = np.floor(source)
    lower = np.maximum(floor, 0).astype(np.int64)
    if half_pixel_centers:
        upper = np.minimum(np.ceil(source), size_in - 1).astype(np.int64)
    else:
        upper = np.minimum(floor + 1, size_in - 1).astype(np.int64)
    return lower, upper, source - floor


def resize_bilinear(node, x, size):
    align_corners = node.attrs.get("align_corners", False)
    half_pixel = node.attrs.get("half_pixel_centers", False)
    y0, y1, wy = _resize_axis(x.shape[1], int(size[0]), align_corners, half_pixel)
    x0, x1, wx = _resize_axis(x.shape[2], int(size[1]), align_corners, half_pixel)
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bottom = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def split_v(node, x, size_splits, axis):
    sizes = [int(s) for s in size_splits]
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[int(axis)] - (sum(sizes) + 1)
    return np.split(x, np.cumsum(sizes)[:-1], axis=int(axis))


def sparse_to_dense(node, indices, output_shape, values, default):
    """indices: scalar, [K] (1-D output) or [K, rank]; values: scalar or [K]."""
    dense = np.full(np.atleast_1d(output_shape).astype(np.int64), default, dtype=np.asarray(values).dtype)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim < 2:
        indices = indices.reshape(-1, 1)
    dense[tuple(indices.T)] = np.broadcast_to(values, (len(indices),))
    return dense


def leaky_relu(node, x):
    return np.where(x > 0, x, x * node.attrs.get("alpha", 0.2))


def concat_v2(node, *inputs):
    *tensors, axis = inputs
    return np.concatenate(tensors, axis=int(axis))


def reshape(node, x, shape):
    return np.reshape(x, [int(d) for d in shape])


def transpose(node, x, perm):
    return np.transpose(x, [int(p) for p in perm])


def pad(node, x, paddings, constant=0):
    return np.pad(x, np.asarray(paddings, dtype=np.int64), constant_values=constant)


# op -> function(node, *input values) returning one array or a list of arrays.
OPS: dict[str, Callable] = {
    "Identity": lambda node, x: x,
    "Add": lambda node, a, b: a + b,
    "AddV2": lambda node, a, b: a + b,
    "BiasAdd": lambda node, a, b: a + b,
    "Sigmoid": lambda node, x: 1 / (1 + np.exp(-x)),
    "Relu": lambda node, x: np.maximum(x, 0),
    "LeakyRelu": leaky_relu,
    "Conv2D": conv2d,
    "MaxPool": max_pool,
    "Pad": pad,
    "PadV2": pad,
    "ConcatV2": concat_v2,
    "SplitV": split_v,
    "Reshape": reshape,
    "Transpose": transpose,
    "ResizeBilinear": resize_bilinear,
    "SparseToDense": sparse_to_dense,
}


def evaluate_node(node: tfjs_graph.Node, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Runs one node; returns its outputs as a list (index = output number)."""
    if node.op not in OPS:
        raise NotImplementedError(f"{node.name}: op {node.op}")
    result = OPS[node.op](node, *inputs)
    return list(result) if isinstance(result, list) else [result]


def run(graph: tfjs_graph.Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluates the graph in float64. feeds: tensor name ("input_1:0") -> array.

    Returns the signature outputs by tensor name, as float32.
    """
    values: dict[str, np.ndarray] = {}
    for node in graph.topological_order():
        if node.op == "Const":
            outputs = [graph.constants[node.name]]
        elif node.op == "Placeholder":
            outputs = [feeds[node.name + ":0"]]
        else:
            args = [values[t] for t in node.inputs]
            args = [a.astype(np.float64) if a.dtype == np.float32 else a for a in args]
            outputs = evaluate_node(node, args)
        for index, value in enumerate(outputs):
            values[f"{node.name}:{index}"] = np.asarray(value)
    return {spec.name: values[spec.name].astype(np.float32) for spec in graph.outputs}
