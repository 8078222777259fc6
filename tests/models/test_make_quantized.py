"""The QCDQ oracle's producer activation site (deploy/models/make_quantized.py), on NanoDet-g.

    .venv/bin/python -m pytest tests/models/test_make_quantized.py

Needs models/nanodet-g and data/images (deploy/models/fetch-models.sh, deploy/fetch-images.sh);
the quantized models are cached by quant_util.quantized_nanodet.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import quant_util
from quant_util import make_quantized

LABELS = {1: "bicycle", 16: "dog"}  # COCO indices in models/nanodet-g/labels.txt


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def conv_input_quantizers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Conv name -> the QuantizeLinear of the Q -> Clip -> DQ directly in front of it."""
    made = producers(model)
    found = {}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq = made[conv.input[0]]
        clip = made[dq.input[0]]
        q = made[clip.input[0]]
        assert (dq.op_type, clip.op_type, q.op_type) == ("DequantizeLinear", "Clip", "QuantizeLinear"), conv.name
        assert q.input[1] == dq.input[1] and q.input[2] == dq.input[2], conv.name
        found[conv.name] = q
    return found


@pytest.fixture(scope="module")
def w4a4() -> onnx.ModelProto:
    return onnx.load(str(quant_util.quantized_nanodet("qcdq", wbits=4, abits=4, act_site="producer")))


def test_every_inner_activation_is_quantized_once_where_it_is_made(w4a4):
    readers = collections.defaultdict(list)
    for n in w4a4.graph.node:
        for i in n.input:
            readers[i].append(n)
    heads = {"convolution_29", "convolution_31", "convolution_33"}
    for conv in (n for n in w4a4.graph.node if n.op_type == "Conv"):
        made = conv.output[0]
        if [r.op_type for r in readers[made]] == ["LeakyRelu"]:
            made = readers[made][0].output[0]
        ops = [r.op_type for r in readers[made]]
        if conv.name in heads:
            assert "QuantizeLinear" not in ops, f"{conv.name}: head output quantized"
        else:
            assert ops == ["QuantizeLinear"], f"{conv.name}: {made} is read by {ops}"
    assert [r.op_type for r in readers["input"]] == ["QuantizeLinear"]


def test_concat_members_share_one_quantizer_and_convs_reuse_it(w4a4):
    made = producers(w4a4)
    for concat in (n for n in w4a4.graph.node if n.op_type == "Concat"):
        assert all(made[i].op_type == "DequantizeLinear" for i in concat.input), concat.name
        scales = {made[i].input[1] for i in concat.input}  # each input is a producer DQ
        assert len(scales) == 1, f"{concat.name}: inputs quantized with {scales}"
    quantizers = conv_input_quantizers(w4a4)
    producer_scales = {n.input[1] for n in w4a4.graph.node
                       if n.op_type == "QuantizeLinear" and n not in quantizers.values()}
    own = sorted(c for c, q in quantizers.items() if q.input[1] not in producer_scales)
    # Only the convs reading an FPN sum (Add) have a quantizer of their own.
    assert own == ["convolution_28", "convolution_30", "convolution_32"]
    for conv in own:
        assert made[made[quantizers[conv].input[0]].input[0]].op_type == "Add", conv


def test_conv_input_requantization_is_the_identity(w4a4):
    """On a real photo every conv-input Q -> Clip -> DQ gives back its input bit for bit
    (values already on the grid, pads at code zp, MaxPool of codes), and the head
    convs' inputs are 8-bit while the inner ones are 4-bit."""
    quantizers = conv_input_quantizers(w4a4)
    made = producers(w4a4)
    own = {"convolution_28", "convolution_30", "convolution_32"}
    probe = onnx.ModelProto()
    probe.CopyFrom(w4a4)
    convs = {n.name: n for n in w4a4.graph.node if n.op_type == "Conv"}
    wanted = {conv: (q.input[0], convs[conv].input[0]) for conv, q in quantizers.items() if conv not in own}
    for before, after in wanted.values():
        for t in (before, after):
            probe.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    values = make_quantized.run(make_quantized.ort_session(probe, 1), quant_util.nanodet_frame("dog.jpg"))
    init = {i.name: numpy_helper.to_array(i) for i in w4a4.graph.initializer}
    for conv, (before, after) in wanted.items():
        assert np.array_equal(values[before], values[after]), f"{conv}: requantization changed values"
        clip_max = int(init[made[made[after].input[0]].input[2]])
        assert clip_max == (255 if conv in {"convolution", "convolution_1", "convolution_29",
                                            "convolution_31", "convolution_33"} else 15), conv


def test_w8a8_producer_site_detects_the_dog_and_the_bicycle():
    path = quant_util.quantized_nanodet("qcdq", wbits=8, abits=8, act_site="producer")
    rgb = make_quantized.load_image(quant_util.IMAGES / "dog.jpg")
    for model in (str(path), quant_util.integer_exact_qcdq(onnx.load(str(path)))):
        outputs = make_quantized.run(make_quantized.ort_session(model, 1), quant_util.nanodet_frame("dog.jpg"))
        found = {LABELS.get(c): (s, box)  # the best-scoring box per label wins
                 for c, s, box in reversed(quant_util.detections(outputs, rgb.shape[1], rgb.shape[0]))}
        # FP32: bicycle 0.685 [122, 129, 570, 424], dog 0.416 [131, 222, 360, 542].
        for label, box in (("bicycle", [122, 129, 570, 424]), ("dog", [131, 222, 360, 542])):
            assert label in found, f"{label} not detected: {found}"
            assert np.abs(found[label][1] - np.array(box)).max() < 8, (label, found[label])


def test_integer_twin_rewrites_every_producer_site_conv(w4a4):
    twin = quant_util.integer_exact_qcdq(w4a4)
    ops = collections.Counter(n.op_type for n in twin.graph.node)
    assert ops["Conv"] == 0 and ops["ConvInteger"] == 34, ops
    x = quant_util.nanodet_frame("giraffe.jpg")
    ort = make_quantized.run(make_quantized.ort_session(w4a4, 1), x)
    exact = make_quantized.run(make_quantized.ort_session(twin, 1), x)
    # The float path drifts by tie flips only: the same detections, scores within 0.05.
    rgb = make_quantized.load_image(quant_util.IMAGES / "giraffe.jpg")
    a = quant_util.detections(ort, rgb.shape[1], rgb.shape[0])
    b = quant_util.detections(exact, rgb.shape[1], rgb.shape[0])
    assert [c for c, _, _ in a] == [c for c, _, _ in b] and a, (a, b)
    assert max(abs(s - t) for (_, s, _), (_, t, _) in zip(a, b)) < 0.05


def test_entry_names_give_the_recipe():
    assert make_quantized.entry_recipe("nanodet-g-w2a2") == ("qcdq", 2, 2)
    assert make_quantized.entry_recipe("nanodet-g-ort-int8") == ("ort-qdq", 8, 8)
    with pytest.raises(SystemExit):
        make_quantized.entry_recipe("nanodet-g-int4")
