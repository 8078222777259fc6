#!/usr/bin/env python3
"""Makes fake-quantized NanoDet models: the oracles for lowbit's quantized import.

    make_quantized.py MODEL.onnx -o OUT.onnx --format ort-qdq --calib data/images
    make_quantized.py MODEL.onnx -o OUT.onnx --format qcdq --wbits 4 --abits 4 \
        [--first-last-bits 8] [--weight-range narrow|full] \
        [--act-site producer|conv-input|pre-pad] --calib data/images [--images N]
    make_quantized.py MODEL.onnx -o OUT.onnx --format qcdq --mixed --calib data/images
    make_quantized.py ... --check data/images/dog.jpg   # ONNX Runtime's detections
    make_quantized.py ... --bench 30                    # ORT FP32 vs OUT, 1 and 2 threads
    make_quantized.py MODEL.onnx --repo models --entry nanodet-g-w4a4 [--entry ...] \
        --calib data/images      # model repository entries (deploy/models/fetch-models.sh):
                                 # NAME-wXaY, NAME-mixed, NAME-ort-int8

Both formats are calibrated post-training on real photos: the first N images
(default all) of DIR's *.jpg/*.png in sorted name order, pre-processed as
lowbit feeds NanoDet (models/nanodet-g/config.pbtxt: stretch to 416x416 with
a bilinear resize, BGR, (pixel - mean) / std). Everything is deterministic:
fixed image order, fixed-stride subsamples, no random numbers.

--format ort-qdq: onnxruntime.quantization.quantize_static, QDQ, per-channel
  int8 weights (axis 0), uint8 activations, MinMax calibration, restricted to
  op_types_to_quantize=["Conv"] (Q/DQ on every Conv input and output). With
  every op type (--ort-all-ops) ORT also quantizes the Pad in front of the
  MaxPool, whose constant value is -inf: its calibrated range is infinite, the
  scale comes out inf (zero point NaN), shared by the MaxPool and the next
  Pad, and the model detects nothing. Excluding only that node
  (nodes_to_exclude=["PadV2"]) also gives a sound model.

--format qcdq: a small fake quantizer writing Brevitas-style QCDQ (opset 13):
  weights  int8 initializer -> Clip(qmin, qmax) -> DequantizeLinear(s_w[Cout], zp 0, axis 0)
  bias     int32 initializer -> DequantizeLinear(s_in * s_w[Cout], zp 0, axis 0)
  act.     QuantizeLinear(s, zp, uint8) -> Clip(0, 2^abits - 1) -> DequantizeLinear(s, zp)
  Weights are signed and symmetric per output channel:
    narrow (default, Brevitas' narrow_range): codes [-(2^(b-1)-1), 2^(b-1)-1],
      s_w = max|w| / (2^(b-1)-1); so W2 is ternary, Clip[-1, 1];
    full: codes [-2^(b-1), 2^(b-1)-1], s_w = max|w| / 2^(b-1) (the largest
      positive weight clips to 2^(b-1)-1); W2 is Clip[-2, 1];
    wbits 1: binary values {-1, +1} (sign, 0 -> +1), s_w = mean|w| (the
      L2-optimal scale for a sign code). The codes are plain int8 -1/+1 behind
      Clip[-1, 1]: the same Clip as ternary, the value 0 just never occurs, so
      an importer can only tell W1 from narrow W2 by the initializer's values.
  Activations are asymmetric unsigned per tensor: NanoDet's conv inputs are
  signed (normalised image, LeakyRelu with slope 0.1, FPN sums), so a range
  [lo <= 0, hi >= 0] maps onto codes 0..2^abits-1 with s = (hi - lo) /
  (2^abits - 1) and zp = clamp(round_half_even(-lo / s)), so real 0 (the Pads'
  value) is exactly code zp. The zero point is whatever the data gives (odd
  and even values both occur). The range (--act-calib, default auto) is the
  calibration min/max at 8 bits; below 8 bits it is min/max shrunk by the
  factor (k/100, k = 100..10) that minimises the squared fake-quantization
  error on a fixed subsample of the calibration tensors (min/max alone leaves
  W4A4 with no detections at all).
  The first conv (reading the graph input) and the last convs (those a graph
  output is reached from without another Conv: NanoDet's three heads) use
  --first-last-bits for their weights (default 8). Where the activation
  quantizers sit (--act-site):
  producer (default), as QAT exports quantize (Brevitas QuantReLU /
    QuantIdentity): every activation tensor is quantized once where it is
    made, so consecutive quantized convs can hand each other integer codes:
      the graph input:  input -> Q -> Clip -> DQ -> Pad -> ...
      each Conv but the heads, after its activation when the Conv's only
      reader is one (Relu, LeakyRelu, Clip, ...), else on the Conv output
      (NanoDet's FPN laterals convolution_25/26/27, read by Add and Resize):
        Conv -> LeakyRelu -> Q -> Clip -> DQ -> (Pad, Concat, MaxPool, ...)
    Tensors joined by code-preserving ops (Concat, Split, Slice, MaxPool, Pad
    with 0 = code zp, the -inf Pad in front of a MaxPool, edge/reflect Pads)
    form one group (union-find) with one scale and zero point, calibrated over
    the values of all its members (in NanoDet every Concat joins two LeakyRelu
    outputs; LeakyRelu_1 -> PadV2(-inf) -> MaxPool -> Pad_1 is one group).
    Every Conv reading a group then gets its own Q -> Clip -> DQ with exactly
    the group's scale and zero point (the same initializers), directly in
    front of the Conv (after its Pad): an identity requantization of values
    that are already on the grid, which changes nothing in float and marks the
    conv input as quantized for importers:
        ... DQ -> Pad(0) -> Q -> Clip -> DQ -> Conv
    A Conv whose input is reached through ops that change values gets a
    calibrated quantizer of its own on its input, as with conv-input (NanoDet's
    convolution_28/30/32, the three head branches, read FPN sums: Add of a
    conv output and a bilinear Resize). Bits:
    a group holding the graph input or the first conv's output, or read by a
    first/last conv, uses --first-last-bits (so the heads still read 8-bit
    codes, from 8-bit output quantizers of the inner convs in front of them),
    every other group --abits. The heads' outputs are not quantized. A group
    with a constant member (Concat with an initializer) is left to conv-input
    quantizers; if a group has a source that is not a conv output (an Add
    joined by a Concat, say), that source is quantized where it is made too.
  conv-input: one Q/Clip/DQ between each Pad and its Conv (on the Conv's
    input itself), calibrated on the tensor in front of the Pad; nothing else
    is quantized. The first/last convs' inputs use --first-last-bits.
  pre-pad: as conv-input, but the quantizer sits on the tensor in front of
    the Pad, so DequantizeLinear -> Pad(0) -> Conv.
  Every other op (Pad, LeakyRelu, Concat, Resize, Add, Split, Sigmoid, ...)
  stays float and computes on dequantized values.
  --mixed (entry NAME-mixed): bits per inner conv from mixed_layer_bits(): 3x3
  backbone convs with >= 64 input channels at W2A2, the 1x1 FPN laterals, the
  head branches and the < 64-channel backbone convs at W4A4, first/last at 8;
  an activation group read at several bits is quantized at the largest.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import pathlib
import re
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# NanoDet-g input and head (models/nanodet-g/config.pbtxt).
INPUT_SIZE = 416
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
REG_MAX = 10  # 11 bins per box side
QCDQ_OPSET = 13


# --- images ------------------------------------------------------------------
def calibration_images(directory: pathlib.Path, count: int | None) -> list[pathlib.Path]:
    """DIR's *.jpg and *.png in sorted name order, the first `count` (all when None)."""
    images = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        raise SystemExit(f"make_quantized: no .jpg/.png images in {directory}")
    return images[:count] if count else images


def resize_bilinear(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of uint8 [H, W, 3] with centres aligned and no anti-aliasing
    (OpenCV INTER_LINEAR's geometry, what lowbit's pre-processing calls), back to uint8."""

    def taps(size_in: int, size_out: int):
        source = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
        lower = np.floor(source).astype(np.int64)
        return lower, np.minimum(lower + 1, size_in - 1), (source - lower).astype(np.float32)

    y0, y1, wy = taps(rgb.shape[0], height)
    x0, x1, wx = taps(rgb.shape[1], width)
    image = rgb.astype(np.float32)
    wx = wx[None, :, None]
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    result = top * (1 - wy[:, None, None]) + bottom * wy[:, None, None]
    return np.clip(np.rint(result), 0, 255).astype(np.uint8)


def load_image(path: pathlib.Path) -> np.ndarray:
    """uint8 RGB [H, W, 3]."""
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def nanodet_input(rgb: np.ndarray) -> np.ndarray:
    """float32 [1, 3, 416, 416]: stretched, BGR, (pixel - mean) / std."""
    resized = resize_bilinear(rgb, INPUT_SIZE, INPUT_SIZE).astype(np.float32)
    bgr = resized[:, :, ::-1]
    return np.ascontiguousarray(((bgr - MEAN_BGR) / STD_BGR).transpose(2, 0, 1)[None])


# --- NanoDet decode ------------------------------------------------------------
def decode_nanodet(outputs: dict[str, np.ndarray], width: int, height: int,
                   score_threshold: float = 0.35, iou_threshold: float = 0.5):
    """[(class index, score, [x0, y0, x1, y1] in original pixels)] by falling score,
    from outputs cls_stride{8,16,32} [1, cells, 80] and box_stride{8,16,32} [1, cells, 44]."""
    boxes_all, scores_all, classes_all = [], [], []
    for stride in STRIDES:
        scores = outputs[f"cls_stride{stride}"][0]
        regression = outputs[f"box_stride{stride}"][0].reshape(-1, 4, REG_MAX + 1)
        grid = INPUT_SIZE // stride
        rows, cols = np.divmod(np.arange(grid * grid), grid)
        cx, cy = (cols + 0.5) * stride, (rows + 0.5) * stride
        p = np.exp(regression - regression.max(axis=2, keepdims=True))
        p /= p.sum(axis=2, keepdims=True)
        d = (p * np.arange(REG_MAX + 1)).sum(axis=2) * stride
        boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
        best = scores.max(axis=1)
        keep = best >= score_threshold
        boxes_all.append(boxes[keep])
        scores_all.append(best[keep])
        classes_all.append(scores.argmax(axis=1)[keep])
    boxes = np.concatenate(boxes_all) * np.array([width, height] * 2) / INPUT_SIZE
    scores, classes = np.concatenate(scores_all), np.concatenate(classes_all)

    def iou(box, others):
        x0, y0 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
        x1, y1 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        return inter / (area(box) + area(others) - inter)

    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        same = [k for k in kept if classes[k] == classes[i]]
        if not same or np.all(iou(boxes[i], boxes[same]) <= iou_threshold):
            kept.append(int(i))
    return [(int(classes[k]), float(scores[k]), boxes[k]) for k in kept]


# --- ONNX Runtime helpers ------------------------------------------------------
def ort_session(model: onnx.ModelProto | str, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(session, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))


# --- ort-qdq -------------------------------------------------------------------
def make_ort_qdq(model_path: pathlib.Path, out: pathlib.Path, images: list[pathlib.Path], all_ops: bool) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str):
            self.frames = iter([{input_name: nanodet_input(load_image(p))} for p in images])

        def get_next(self):
            return next(self.frames, None)

    input_name = onnx.load(str(model_path)).graph.input[0].name
    quantize_static(
        str(model_path), str(out), Reader(input_name),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=None if all_ops else ["Conv"],
    )


# --- qcdq ----------------------------------------------------------------------
def rne(x: np.ndarray) -> np.ndarray:
    return np.rint(x)  # numpy rounds half to even, as ONNX QuantizeLinear does


def quantize_weights(w: np.ndarray, bits: int, weight_range: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """int8 codes [Cout, ...], float32 scales [Cout], Clip bounds (qmin, qmax): see the
    module docstring (max-abs scales; mean-abs for binary 1-bit)."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    if bits == 1:
        codes = np.where(flat >= 0, 1, -1)
        scale = np.abs(flat).mean(axis=1)
        qmin, qmax = -1, 1
    else:
        maxabs = np.abs(flat).max(axis=1)
        if weight_range == "narrow":
            qmin, qmax = -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
            scale = maxabs / qmax
        else:
            qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            scale = maxabs / 2 ** (bits - 1)
    # An all-zero channel keeps codes 0 with a harmless positive scale.
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    if bits > 1:
        codes = np.clip(rne(flat / scale[:, None].astype(np.float64)), qmin, qmax)
    return codes.astype(np.int8).reshape(w.shape), scale, qmin, qmax


def activation_params(lo: float, hi: float, bits: int) -> tuple[np.float32, int]:
    """Asymmetric unsigned: scale and zero point for codes 0..2^bits-1 over [min(lo,0), max(hi,0)]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmax = 2 ** bits - 1
    scale = np.float32((hi - lo) / qmax) if hi > lo else np.float32(1.0)
    zero_point = int(np.clip(rne(-lo / float(scale)), 0, qmax))
    return scale, zero_point


def fake_quantize(x: np.ndarray, scale: np.float32, zero_point: int, bits: int) -> np.ndarray:
    """What QuantizeLinear -> Clip -> DequantizeLinear computes on float32 x."""
    q = np.clip(rne(x / scale) + zero_point, 0, 2 ** bits - 1)
    return ((q - zero_point) * scale).astype(np.float32)


def mse_range(samples: np.ndarray, lo: float, hi: float, bits: int) -> tuple[float, float]:
    """[lo, hi] shrunk by the factor k / 100 (k = 100 down to 10) whose fake quantization of
    the samples has the least squared error (the widest range on ties)."""
    best, best_error = (lo, hi), np.inf
    for k in range(100, 9, -1):
        candidate = (lo * k / 100.0, hi * k / 100.0)
        error = float(((fake_quantize(samples, *activation_params(*candidate, bits), bits) - samples) ** 2).sum())
        if error < best_error:
            best, best_error = candidate, error
    return best


class Graph:
    """Index of a graph: producers, consumers, initializers."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.init = {i.name: i for i in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers = collections.defaultdict(list)
        for n in model.graph.node:
            for i in n.input:
                self.consumers[i].append(n)

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.init[name])

    def zero_pad_input(self, tensor: str) -> str | None:
        """The data input of a constant-mode Pad with value 0 producing `tensor`, else None."""
        node = self.producer.get(tensor)
        if node is None or node.op_type != "Pad":
            return None
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if mode != b"constant":
            return None
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in self.init or float(self.array(node.input[2]).reshape(-1)[0]) != 0.0:
                return None
        return node.input[0]


def first_convs(g: Graph) -> set[str]:
    """Convs reading a graph input (through a zero Pad)."""
    graph_inputs = {i.name for i in g.model.graph.input}
    return {n.name for n in g.model.graph.node
            if n.op_type == "Conv" and (g.zero_pad_input(n.input[0]) or n.input[0]) in graph_inputs}


def last_convs(g: Graph) -> set[str]:
    """Convs a graph output is reached from without passing another Conv (NanoDet's heads)."""
    picked = set()
    stack = [o.name for o in g.model.graph.output]
    seen = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor not in g.producer:
            continue
        seen.add(tensor)
        node = g.producer[tensor]
        if node.op_type == "Conv":
            picked.add(node.name)
        else:
            stack.extend(i for i in node.input if i and i not in g.init)
    return picked


def first_and_last_convs(g: Graph) -> set[str]:
    return first_convs(g) | last_convs(g)


# --- producer site: activation groups ------------------------------------------
# Ops whose single output follows a Conv and is still "the conv's output" for the
# producer-side quantizer (Conv -> LeakyRelu -> Q).
ACTIVATIONS = {"Relu", "LeakyRelu", "PRelu", "Clip", "Elu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh"}


def code_preserving_inputs(g: Graph, node: onnx.NodeProto) -> list[str]:
    """The data inputs whose quantization codes `node` hands to its outputs unchanged: every
    output value is a copy of an input value, or the real 0 of a zero Pad (exactly code zp),
    or the -inf of a Pad whose only readers are MaxPools (it never wins a window). [] for
    every other op (Add, Resize, Sigmoid, ... change the values)."""
    op = node.op_type
    if op == "Concat":
        return [i for i in node.input if i]
    if op in ("Split", "Slice", "MaxPool"):
        return [node.input[0]]
    if op == "Pad":
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if mode in (b"edge", b"reflect"):
            return [node.input[0]]
        if mode != b"constant":
            return []
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in g.init:
                return []
            value = float(g.array(node.input[2]).reshape(-1)[0])
        if value == 0.0:
            return [node.input[0]]
        if value == -np.inf and all(c.op_type == "MaxPool" for c in g.consumers[node.output[0]]):
            return [node.input[0]]
    return []


class ActivationGroups:
    """Union-find over the tensors joined by code-preserving ops: the members of a group
    share one (scale, zero point). `sources` are the members no code-preserving op makes
    (conv outputs, the graph input, Add outputs, ...): every other member's values are a
    subset of theirs plus the pads' 0, which every activation range includes anyway."""

    def __init__(self, g: Graph):
        self.parent: dict[str, str] = {}
        derived = set()
        for node in g.model.graph.node:
            inputs = code_preserving_inputs(g, node)
            if not inputs:
                continue
            outputs = node.output[:1] if node.op_type == "MaxPool" else [o for o in node.output if o]
            for o in outputs:
                derived.add(o)
                for i in inputs:
                    self.union(i, o)
        tensors = [i.name for i in g.model.graph.input] + [o for n in g.model.graph.node for o in n.output if o]
        tensors += [i for n in g.model.graph.node for i in n.input if i]
        self.members: dict[str, list[str]] = collections.defaultdict(list)
        for t in dict.fromkeys(tensors):  # graph order, no repeats
            self.members[self.find(t)].append(t)
        self.sources = {r: [t for t in m if t not in derived] for r, m in self.members.items()}
        # A group with a constant member (Concat with an initializer) is not quantized at its producers.
        self.constant = {r for r, m in self.members.items() if any(t in g.init for t in m)}

    def find(self, t: str) -> str:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def producer_output(g: Graph, conv: onnx.NodeProto) -> str:
    """The tensor a Conv's producer-side quantizer reads: its activation's output when the
    Conv's only reader is an activation op, else the Conv output itself."""
    out = conv.output[0]
    readers = g.consumers[out]
    graph_outputs = {o.name for o in g.model.graph.output}
    if len(readers) == 1 and readers[0].op_type in ACTIVATIONS and out not in graph_outputs:
        return readers[0].output[0]
    return out


def producer_plan(g: Graph, abits: int, first_last_bits: int,
                  layer_abits: dict[str, int] | None = None):
    """The producer-side quantization of a model: {group root: bits} for the groups quantized
    where they are produced, with the ActivationGroups. A group is producer-quantized when
    one of its sources is the graph input or a non-head Conv's (activated) output and it has
    no constant member; all its sources are then quantized. Its bits are first_last_bits when
    it holds the graph input or the first conv's output or feeds a first/last conv, else abits.
    With layer_abits (conv name -> input bits, the mixed recipe) an inner group takes the
    largest input bits of the convs reading it (a group read by no conv: of the convs
    making it), so no conv reads coarser codes than it asked for; abits is the default."""
    layer_abits = layer_abits or {}
    groups = ActivationGroups(g)
    first, last = first_convs(g), last_convs(g)
    convs = [n for n in g.model.graph.node if n.op_type == "Conv"]
    sites = {i.name: True for i in g.model.graph.input if i.name not in g.init}
    made_by: dict[str, str] = {}  # producer-side tensor -> the conv making it
    for conv in convs:
        if conv.name not in last:
            sites[producer_output(g, conv)] = conv.name in first
            made_by[producer_output(g, conv)] = conv.name
    plan: dict[str, int] = {}
    for root, sources in groups.sources.items():
        hits = [t for t in sources if t in sites]
        if not hits or root in groups.constant:
            continue
        readers = [c.name for t in groups.members[root] for c in g.consumers[t]
                   if c.op_type == "Conv" and c.input[0] == t]
        edge = any(sites[t] for t in hits) or any(c in first | last for c in readers)
        if edge:
            plan[root] = first_last_bits
        else:
            askers = readers or [made_by[t] for t in hits if t in made_by]
            plan[root] = max((layer_abits.get(c, abits) for c in askers), default=abits)
    return plan, groups


def calibration_tensors(model: onnx.ModelProto, act_site: str) -> list[str]:
    """The float tensors make_qcdq calibrates for an activation site (independent of the bits)."""
    g = Graph(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if act_site != "producer":
        return sorted({g.zero_pad_input(n.input[0]) or n.input[0] for n in convs})
    plan, groups = producer_plan(g, 8, 8)
    roots = set(plan) | {groups.find(n.input[0]) for n in convs}
    return sorted({t for r in roots for t in groups.sources[r]})


SAMPLES_PER_IMAGE = 32768


def calibrate(model: onnx.ModelProto, tensors: list[str], images: list[pathlib.Path], model_input=None):
    """Per tensor: (min, max) over the images by ONNX Runtime on the float model, and a
    deterministic subsample (every k-th element, about SAMPLES_PER_IMAGE per image).
    `model_input` (image path -> input tensor) defaults to nanodet_input(load_image(path))."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for t in tensors:
        if t not in existing:
            probe.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    session = ort_session(probe)
    ranges: dict[str, tuple[float, float]] = {}
    samples: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for path in images:
        values = run(session, model_input(path) if model_input else nanodet_input(load_image(path)))
        for t in tensors:
            v = values[t].reshape(-1)
            lo, hi = float(v.min()), float(v.max())
            old = ranges.get(t, (lo, hi))
            ranges[t] = (min(old[0], lo), max(old[1], hi))
            samples[t].append(v[:: max(1, v.size // SAMPLES_PER_IMAGE)].copy())
    return ranges, {t: np.concatenate(v) for t, v in samples.items()}


def topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Stable Kahn sort: each node after the producers of its inputs, otherwise in the given order."""
    done = set(available)
    pending, ordered = list(nodes), []
    while pending:
        rest = []
        for n in pending:
            if all((not i) or i in done for i in n.input):
                ordered.append(n)
                done.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise SystemExit(f"make_quantized: graph has a cycle or a missing input at {rest[0].name}")
        pending = rest
    return ordered


def make_qcdq(model: onnx.ModelProto, images: list[pathlib.Path], wbits: int, abits: int,
              first_last_bits: int = 8, weight_range: str = "narrow", act_site: str = "producer",
              act_calib: str = "auto", calibration=None,
              layer_bits: dict[str, tuple[int, int]] | None = None) -> tuple[onnx.ModelProto, list[dict]]:
    """The QCDQ model and one dict per Conv (bits, clip bounds, scales). act_calib "auto"
    is minmax at 8 bits and mse below. `calibration` may pass calibrate()'s result for
    calibration_tensors(model, act_site) to share it between models. `layer_bits` (conv
    name -> (wbits, abits), e.g. mixed_layer_bits()) overrides wbits/abits per inner conv;
    first/last convs keep first_last_bits."""
    layer_bits = layer_bits or {}
    g = Graph(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    edge = first_and_last_convs(g)
    # The tensor each Conv's input quantizer is calibrated on: in front of a zero Pad.
    source = {n.name: (g.zero_pad_input(n.input[0]) or n.input[0]) for n in convs}
    ranges, samples = calibration or calibrate(model, calibration_tensors(model, act_site), images)
    chosen: dict[tuple[tuple[str, ...], int], tuple[float, float]] = {}

    def observed(tensors: tuple[str, ...]) -> tuple[float, float]:
        return min(ranges[t][0] for t in tensors), max(ranges[t][1] for t in tensors)

    def act_range(tensors: tuple[str, ...], bits: int) -> tuple[float, float]:
        """Range of the values of `tensors` together: min/max, or min/max MSE-shrunk."""
        method = act_calib if act_calib != "auto" else ("minmax" if bits == 8 else "mse")
        if (tensors, bits) not in chosen:
            lo, hi = observed(tensors)
            chosen[(tensors, bits)] = (lo, hi) if method == "minmax" else mse_range(
                np.concatenate([samples[t] for t in tensors]), lo, hi, bits)
        return chosen[(tensors, bits)]

    new_inits: list[TensorProto] = []
    new_nodes: list[onnx.NodeProto] = []
    renames: dict[tuple[str, str], str] = {}  # (node name, old input) -> new input
    act_params: dict[str, tuple[str, np.float32, int, int]] = {}  # base -> (base, s, zp, bits)
    act_chains: dict[tuple[str, int], tuple[str, np.float32, int]] = {}  # (tensor, bits) -> (dq output, s, zp)
    layers = []

    def scalar(name, value, dtype):
        new_inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def params(base: str, calib: tuple[str, ...], bits: int):
        """Initializers {base}_scale, _zero_point, _clip_min, _clip_max, made once per base."""
        if base not in act_params:
            s, zp = activation_params(*act_range(calib, bits), bits)
            scalar(f"{base}_scale", s, np.float32)
            scalar(f"{base}_zero_point", zp, np.uint8)
            scalar(f"{base}_clip_min", 0, np.uint8)
            scalar(f"{base}_clip_max", 2 ** bits - 1, np.uint8)
            act_params[base] = (base, s, zp, bits)
        return act_params[base]

    def chain(base: str, tensor: str, quantizer) -> str:
        """QuantizeLinear -> Clip -> DequantizeLinear on `tensor` with `quantizer`'s initializers."""
        p = quantizer[0]
        new_nodes.extend([
            helper.make_node("QuantizeLinear", [tensor, f"{p}_scale", f"{p}_zero_point"], [f"{base}_q"],
                             name=f"{base}_QuantizeLinear"),
            helper.make_node("Clip", [f"{base}_q", f"{p}_clip_min", f"{p}_clip_max"], [f"{base}_clip"],
                             name=f"{base}_Clip"),
            helper.make_node("DequantizeLinear", [f"{base}_clip", f"{p}_scale", f"{p}_zero_point"],
                             [f"{base}_dq"], name=f"{base}_DequantizeLinear"),
        ])
        return f"{base}_dq"

    def act_chain(tensor: str, calib: tuple[str, ...], bits: int):
        """A quantizer of its own on `tensor` (shared by the convs reading it at these bits)."""
        key = (tensor, bits)
        if key not in act_chains:
            quantizer = params(f"{tensor}_a{bits}", calib, bits)
            act_chains[key] = (chain(f"{tensor}_a{bits}", tensor, quantizer), quantizer[1], quantizer[2])
        return act_chains[key]

    # Producer site: one quantizer per group, on each of its sources where it is made.
    plan, groups = (producer_plan(g, abits, first_last_bits, {c: b[1] for c, b in layer_bits.items()})
                    if act_site == "producer" else ({}, None))
    group_quantizer, produced = {}, {}  # group root -> params; source tensor -> its dq output
    for root, bits in plan.items():
        sources = tuple(groups.sources[root])
        group_quantizer[root] = params(f"{sources[0]}_a{bits}", sources, bits)
        for t in sources:
            produced[t] = chain(f"{t}_a{bits}", t, group_quantizer[root])
            for reader in g.consumers[t]:
                renames[(reader.name, t)] = produced[t]

    dropped = set()
    for conv in convs:
        bits_w, bits_a = (first_last_bits,) * 2 if conv.name in edge else layer_bits.get(conv.name, (wbits, abits))
        x = conv.input[0]
        pad_input = g.zero_pad_input(x)
        calib = (source[conv.name],)
        site = act_site
        if act_site == "producer" and groups.find(x) in plan:
            # The identity requantization: the group's own scale and zero point, on the
            # (dequantized) tensor the conv reads, directly in front of the conv.
            root = groups.find(x)
            bits_a, calib = plan[root], tuple(groups.sources[root])
            _, s_in, zp, _ = group_quantizer[root]
            dq = chain(f"{conv.name}_input_a{bits_a}", produced.get(x, x), group_quantizer[root])
            renames[(conv.name, x)] = dq
        elif act_site == "pre-pad" and pad_input is not None:
            pad = g.producer[x]
            if any(c.op_type != "Conv" for c in g.consumers[x]):
                raise SystemExit(f"make_quantized: {pad.name} feeds more than convs; use --act-site conv-input")
            dq, s_in, zp = act_chain(pad_input, calib, bits_a)
            renames[(pad.name, pad_input)] = dq
        else:
            if act_site == "producer":  # reached through ops that change values: its own quantizer
                calib, site = tuple(groups.sources[groups.find(x)]), "conv-input"
            dq, s_in, zp = act_chain(x, calib, bits_a)
            renames[(conv.name, x)] = dq

        w_name = conv.input[1]
        w = g.array(w_name)
        codes, s_w, qmin, qmax = quantize_weights(w, bits_w, weight_range)
        base = f"{conv.name}_w{bits_w}"
        new_inits.append(numpy_helper.from_array(codes, f"{base}_codes"))
        new_inits.append(numpy_helper.from_array(s_w, f"{base}_scale"))
        new_inits.append(numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{base}_zero_point"))
        scalar(f"{base}_clip_min", qmin, np.int8)
        scalar(f"{base}_clip_max", qmax, np.int8)
        new_nodes.extend([
            helper.make_node("Clip", [f"{base}_codes", f"{base}_clip_min", f"{base}_clip_max"], [f"{base}_clip"],
                             name=f"{base}_Clip"),
            helper.make_node("DequantizeLinear", [f"{base}_clip", f"{base}_scale", f"{base}_zero_point"],
                             [f"{base}_dq"], name=f"{base}_DequantizeLinear", axis=0),
        ])
        renames[(conv.name, w_name)] = f"{base}_dq"
        dropped.add(w_name)

        if len(conv.input) > 2 and conv.input[2]:
            b_name = conv.input[2]
            s_b = (np.float32(s_in) * s_w).astype(np.float32)  # float32 product, as an importer computes it
            b_codes = rne(g.array(b_name).astype(np.float64) / s_b.astype(np.float64))
            assert np.all(np.abs(b_codes) < 2 ** 31), conv.name
            new_inits.append(numpy_helper.from_array(b_codes.astype(np.int32), f"{conv.name}_bias_codes"))
            new_inits.append(numpy_helper.from_array(s_b, f"{conv.name}_bias_scale"))
            new_inits.append(numpy_helper.from_array(np.zeros(w.shape[0], np.int32), f"{conv.name}_bias_zero_point"))
            new_nodes.append(helper.make_node(
                "DequantizeLinear", [f"{conv.name}_bias_codes", f"{conv.name}_bias_scale", f"{conv.name}_bias_zero_point"],
                [f"{conv.name}_bias_dq"], name=f"{conv.name}_bias_DequantizeLinear", axis=0))
            renames[(conv.name, b_name)] = f"{conv.name}_bias_dq"
            dropped.add(b_name)
        layers.append(dict(conv=conv.name, wbits=bits_w, abits=bits_a, weight_clip=(qmin, qmax),
                           act_scale=float(s_in), act_zero_point=zp, act_range=observed(calib),
                           act_clip_range=act_range(calib, bits_a), act_site=site, act_sources=calib,
                           output_quantized=producer_output(g, conv) in produced))

    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for n in out.graph.node:
        for k, i in enumerate(n.input):
            if (n.name, i) in renames:
                n.input[k] = renames[(n.name, i)]
        nodes.append(n)
    still_used = {i for n in nodes for i in n.input}
    kept_inits = [i for i in out.graph.initializer if not (i.name in dropped and i.name not in still_used)]
    available = {i.name for i in out.graph.input} | {i.name for i in kept_inits} | {i.name for i in new_inits}
    ordered = topological(new_nodes + nodes, available)
    del out.graph.node[:]
    out.graph.node.extend(ordered)
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept_inits + new_inits)
    del out.graph.value_info[:]
    del out.opset_import[:]
    out.opset_import.append(helper.make_opsetid("", max(QCDQ_OPSET, onnx_opset(model))))
    out.producer_name = "lowbit make_quantized.py"
    inner = (f"W{wbits}A{abits} inner convs" if not layer_bits else "mixed inner convs (" + ", ".join(
        f"{c} W{w}A{a}" for c, (w, a) in layer_bits.items()) + ")")
    out.doc_string = (f"QCDQ fake quantization: {inner}, first/last convs at "
                      f"{first_last_bits} bits, weights {weight_range}, activation site {act_site}")
    onnx.checker.check_model(out, full_check=True)
    return out, layers


def onnx_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


# --- checks --------------------------------------------------------------------
def check(model_path: pathlib.Path, image: pathlib.Path, labels: list[str] | None) -> None:
    rgb = load_image(image)
    detections = decode_nanodet(run(ort_session(str(model_path)), nanodet_input(rgb)), rgb.shape[1], rgb.shape[0])
    print(f"{image.name}: {len(detections)} detections at score >= 0.35")
    for cls, score, box in detections[:10]:
        name = labels[cls] if labels else str(cls)
        print(f"  {name:12s} {score:.3f}  [{', '.join(f'{v:.0f}' for v in box)}]")


def bench(models: dict[str, pathlib.Path], image: pathlib.Path, runs: int) -> None:
    """Median ONNX Runtime latency per model, 1 and 2 intra-op threads, pre-processing excluded."""
    x = nanodet_input(load_image(image))
    for threads in (1, 2):
        for name, path in models.items():
            session = ort_session(str(path), threads)
            for _ in range(3):
                run(session, x)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                run(session, x)
                times.append(time.perf_counter() - t0)
            print(f"  threads={threads} {name:10s} median {1e3 * statistics.median(times):7.2f} ms  "
                  f"min {1e3 * min(times):7.2f} ms  ({runs} runs)")


# --- the mixed-precision recipe -------------------------------------------------
def mixed_layer_bits(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """Per inner Conv (not first/last): (wbits, abits) of the "mixed" recipe, read from the
    graph's structure, not from layer names:
      W2A2  3x3 backbone convs with >= 64 input channels: they hold 84% of the inner
            convs' weights (NanoDet-g: convolution_5/6/8/10..24), where 2-bit storage
            pays most;
      W4A4  3x3 backbone convs with < 64 input channels (the 104x104 stage: few weights,
            large activations, the most sensitive layers after the first);
      W4A4  1x1 convs (the FPN laterals convolution_25/26/27) and the convs reading a
            value-changing op's output (Add/Resize through a Pad: the head branches
            convolution_28/30/32, which feed the 8-bit heads).
    First and last convs stay at --first-last-bits (8). A group of activations read by
    convs asking for different bits is quantized at the largest (producer_plan), so a
    W2 conv reading a tensor that a W4A4 conv also reads runs at W2A4 (NanoDet-g:
    convolution_5/6/8/10/11/12/17/18, beside the FPN laterals' inputs and the 104x104
    stage's groups). Post-training, like W2A2, it detects little (dog.jpg: a false
    person 0.37; giraffe/eagle: none at 0.35, max scores 0.30/0.33): it is a speed and
    size model; accuracy at these bits needs quantization-aware training."""
    g = Graph(model)
    edge = first_and_last_convs(g)
    groups = ActivationGroups(g)
    bits = {}
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and n.name not in edge):
        w = g.array(conv.input[1])
        kernel, cin = w.shape[2] * w.shape[3], w.shape[1]
        # Through code-preserving ops (Pad, Concat, MaxPool, ...) back to the values' makers.
        makers = {g.producer[t].op_type for t in groups.sources[groups.find(conv.input[0])] if t in g.producer}
        neck = bool(makers & {"Add", "Sum", "Resize", "Upsample"})
        bits[conv.name] = (4, 4) if kernel == 1 or neck or cin < 64 else (2, 2)
    return bits


# --- model repository entries (deploy/models/fetch-models.sh) -----------------
def entry_recipe(name: str) -> tuple[str, int, int]:
    """(format, wbits, abits) from an entry name: "...-wXaY" is QCDQ at WxAy inner
    layers (producer site), "...-mixed" QCDQ with mixed_layer_bits() per inner layer
    ("qcdq-mixed", bits 0: per layer), "...-ort-int8" is ORT's quantize_static QDQ
    (bits unused)."""
    match = re.search(r"-w([1-8])a([1-8])$", name)
    if match:
        return "qcdq", int(match.group(1)), int(match.group(2))
    if name.endswith("-mixed"):
        return "qcdq-mixed", 0, 0
    if name.endswith("-ort-int8"):
        return "ort-qdq", 8, 8
    raise SystemExit(f"make_quantized: entry name {name!r} ends in none of -wXaY, -mixed, -ort-int8")


def make_entries(model_path: pathlib.Path, repo: pathlib.Path, names: list[str],
                 images: list[pathlib.Path], first_last_bits: int) -> None:
    """Writes REPO/NAME/model.onnx for each name (see entry_recipe), each through a temporary
    file and a rename. The QCDQ entries share one calibration run. One line per model."""
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's "consider pre-processing" advice
    recipes = {name: entry_recipe(name) for name in names}
    model = onnx.load(str(model_path))
    calibration = None
    if any(fmt.startswith("qcdq") for fmt, _, _ in recipes.values()):
        t0 = time.perf_counter()
        tensors = calibration_tensors(model, "producer")
        calibration = calibrate(model, tensors, images)
        print(f"make_quantized: calibrated {len(tensors)} tensors on {len(images)} images "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
    for name, (fmt, wbits, abits) in recipes.items():
        t0 = time.perf_counter()
        target = repo / name / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"model.onnx.tmp.{os.getpid()}")
        if fmt == "ort-qdq":
            make_ort_qdq(model_path, partial, images, all_ops=False)
            what = "ORT quantize_static QDQ, Conv only, per-channel int8 weights, uint8 activations"
        elif fmt == "qcdq-mixed":
            quantized, layers = make_qcdq(model, images, 8, 8, first_last_bits, calibration=calibration,
                                          layer_bits=mixed_layer_bits(model))
            onnx.save(quantized, str(partial))
            counts = collections.Counter(f"W{l['wbits']}A{l['abits']}" for l in layers)
            what = (f"QCDQ mixed: {', '.join(f'{k} x{n}' for k, n in sorted(counts.items()))}, "
                    f"first/last {first_last_bits} bit, producer site")
        else:
            quantized, _ = make_qcdq(model, images, wbits, abits, first_last_bits, calibration=calibration)
            onnx.save(quantized, str(partial))
            what = f"QCDQ W{wbits}A{abits} inner, first/last {first_last_bits} bit, producer site"
        partial.replace(target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"make_quantized: {name}/model.onnx ({what}; {target.stat().st_size / 1e6:.1f} MB, "
              f"sha256 {digest[:16]}) in {time.perf_counter() - t0:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=pathlib.Path, help="FP32 NanoDet ONNX (models/nanodet-g/model.onnx)")
    p.add_argument("-o", "--output", type=pathlib.Path)
    p.add_argument("--format", choices=["ort-qdq", "qcdq"])
    p.add_argument("--repo", type=pathlib.Path, help="write model repository entries REPO/ENTRY/model.onnx")
    p.add_argument("--entry", action="append", default=[],
                   help="with --repo: entry name ending in -wXaY (QCDQ), -mixed (QCDQ, "
                        "mixed_layer_bits) or -ort-int8 (ORT QDQ)")
    p.add_argument("--wbits", type=int, default=8, choices=range(1, 9), metavar="1..8")
    p.add_argument("--abits", type=int, default=8, choices=range(1, 9), metavar="1..8")
    p.add_argument("--first-last-bits", type=int, default=8, choices=range(1, 9), metavar="1..8")
    p.add_argument("--mixed", action="store_true",
                   help="qcdq: per-layer bits of the mixed recipe (mixed_layer_bits; --wbits/--abits unused)")
    p.add_argument("--weight-range", choices=["narrow", "full"], default="narrow")
    p.add_argument("--act-site", choices=["producer", "conv-input", "pre-pad"], default="producer")
    p.add_argument("--act-calib", choices=["auto", "minmax", "mse"], default="auto",
                   help="activation range (auto: minmax at 8 bits, mse below)")
    p.add_argument("--ort-all-ops", action="store_true", help="ort-qdq: quantize every op type ORT knows")
    p.add_argument("--calib", type=pathlib.Path, required=True, help="directory of calibration photos")
    p.add_argument("--images", type=int, default=None, help="use the first N images (sorted by name)")
    p.add_argument("--check", type=pathlib.Path, action="append", default=[], help="print ORT detections on IMAGE")
    p.add_argument("--labels", type=pathlib.Path, help="labels.txt (default: beside MODEL)")
    p.add_argument("--bench", type=int, default=0, metavar="RUNS", help="time ORT on MODEL and OUT")
    args = p.parse_args(argv)
    if args.repo:
        if not args.entry or args.output or args.format:
            p.error("--repo takes --entry NAME (one or more) and neither -o nor --format")
        t0 = time.perf_counter()
        make_entries(args.model, args.repo, args.entry, calibration_images(args.calib, args.images),
                     args.first_last_bits)
        print(f"make_quantized: {len(args.entry)} entries in {time.perf_counter() - t0:.1f} s")
        return 0
    if not (args.output and args.format):
        p.error("-o OUT and --format are required (or --repo with --entry)")

    images = calibration_images(args.calib, args.images)
    print(f"make_quantized: calibrating on {', '.join(i.name for i in images)}")
    t0 = time.perf_counter()
    if args.format == "ort-qdq":
        make_ort_qdq(args.model, args.output, images, args.ort_all_ops)
    else:
        source = onnx.load(str(args.model))
        model, layers = make_qcdq(source, images, args.wbits, args.abits,
                                  args.first_last_bits, args.weight_range, args.act_site, args.act_calib,
                                  layer_bits=mixed_layer_bits(source) if args.mixed else None)
        onnx.save(model, str(args.output))
        for layer in layers:
            (lo, hi), (clo, chi) = layer["act_range"], layer["act_clip_range"]
            print(f"  {layer['conv']:16s} W{layer['wbits']} clip{layer['weight_clip']}  A{layer['abits']} "
                  f"scale {layer['act_scale']:.6g} zp {layer['act_zero_point']}  range [{lo:.4g}, {hi:.4g}]"
                  f" -> [{clo:.4g}, {chi:.4g}]  {layer['act_site']} ({', '.join(layer['act_sources'])})"
                  f"{'  output quantized' if layer['output_quantized'] else ''}")
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"make_quantized: wrote {args.output} ({args.output.stat().st_size} bytes, sha256 {digest[:16]}) "
          f"in {time.perf_counter() - t0:.1f} s")

    labels_path = args.labels or args.model.parent / "labels.txt"
    labels = labels_path.read_text().splitlines() if labels_path.exists() else None
    for image in args.check:
        for name, path in (("fp32", args.model), (args.output.name, args.output)):
            print(f"[{name}] ", end="")
            check(path, image, labels)
    if args.bench:
        bench({"fp32": args.model, args.output.stem: args.output}, args.check[0] if args.check else images[0], args.bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
