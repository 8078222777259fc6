"""The mixed-precision NanoDet-g recipe (make_quantized.py --mixed, entry nanodet-g-mixed).

    .venv/bin/python -m pytest tests/models/test_mixed_recipe.py
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

import quant_util
from quant_util import make_quantized

EDGE = {"convolution", "convolution_29", "convolution_31", "convolution_33"}  # first conv and the heads


def _conv_bits(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """Per Conv: (weight bits from its weight Clip bounds, input bits from the Clip of the
    activation quantizer directly in front of it)."""
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    bits = {}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        w_clip = producer[producer[conv.input[1]].input[0]]
        a_clip = producer[producer[conv.input[0]].input[0]]
        assert w_clip.op_type == "Clip" and a_clip.op_type == "Clip", conv.name
        qmin, qmax = int(init[w_clip.input[1]]), int(init[w_clip.input[2]])
        wbits = {(-1, 1): 2, (-7, 7): 4, (-127, 127): 8}[(qmin, qmax)]
        abits = int(np.log2(int(init[a_clip.input[2]]) + 1))
        bits[conv.name] = (wbits, abits)
    return bits


def test_recipe_follows_the_graph_structure():
    model = onnx.load(str(quant_util.NANODET))
    recipe = make_quantized.mixed_layer_bits(model)
    assert set(recipe).isdisjoint(EDGE)
    g = make_quantized.Graph(model)
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and n.name not in EDGE):
        w = g.array(conv.input[1])
        expected = (4, 4) if w.shape[2:] == (1, 1) or w.shape[1] < 64 else (2, 2)
        if conv.name in ("convolution_28", "convolution_30", "convolution_32"):  # head branches (FPN sums)
            expected = (4, 4)
        assert recipe[conv.name] == expected, conv.name
    assert sorted(recipe.values()).count((2, 2)) == 18 and sorted(recipe.values()).count((4, 4)) == 12


def test_mixed_model_gives_each_conv_at_least_the_bits_it_asked_for():
    model = onnx.load(str(quant_util.quantized_nanodet("qcdq-mixed")))
    recipe = make_quantized.mixed_layer_bits(onnx.load(str(quant_util.NANODET)))
    bits = _conv_bits(model)
    for name, (wbits, abits) in bits.items():
        if name in EDGE:
            assert (wbits, abits) == (8, 8), name
            continue
        assert wbits == recipe[name][0], name
        assert abits >= recipe[name][1], name  # a group read at several bits takes the largest
    # The 2-bit convs reading a group that a 4-bit conv also reads run at W2A4; the rest at W2A2.
    assert {bits[n] for n in recipe if recipe[n] == (2, 2)} == {(2, 2), (2, 4)}
    assert bits["convolution_24"] == (2, 2) and bits["convolution_11"] == (2, 4)
    outputs = quant_util.ort_outputs(quant_util.quantized_nanodet("qcdq-mixed"), quant_util.nanodet_frame("dog.jpg"))
    assert all(np.isfinite(v).all() for v in outputs.values())
