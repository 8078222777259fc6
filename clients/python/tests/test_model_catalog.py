"""ListModels / GetModel against the real model repository."""
from __future__ import annotations

import grpc
import pytest

from lowbit import Client, LowbitError

# NanoDet-g 416: about 2.09 G multiply-adds per frame.
NANODET_MACS = 2.09e9


def test_list_models(client: Client) -> None:
    models = client.list_models()
    assert models, "the server serves at least one model"
    defaults = [m for m in models if m.is_default]
    assert len(defaults) == 1, f"exactly one default model: {models}"
    names = [m.name for m in models]
    assert len(set(names)) == len(names), names
    for m in models:
        assert m.input_width > 0 and m.input_height > 0 and m.num_classes > 0, m
    nanodet = [m for m in models if m.name.startswith("nanodet")]
    assert nanodet, f"the NanoDet model is served: {names}"
    assert (nanodet[0].input_width, nanodet[0].input_height, nanodet[0].num_classes) == (416, 416, 80)


def test_get_model_layers_sum_to_total(client: Client) -> None:
    for summary in client.list_models():
        details = client.get_model(summary.name)
        assert details.name == summary.name
        assert details.layers, f"{summary.name}: no layers"
        assert sum(layer.macs for layer in details.layers) == details.total_macs, summary.name
        assert details.total_macs > 0 and details.total_params > 0
        assert all(layer.macs >= 0 and layer.params >= 0 and layer.op for layer in details.layers)


def test_get_model_nanodet(client: Client) -> None:
    name = next(m.name for m in client.list_models() if m.name.startswith("nanodet"))
    details = client.get_model(name)
    config = details.config
    assert (config.input.width, config.input.height) == (416, 416)
    assert config.HasField("nanodet"), "NanoDet head configured"
    # A client cannot read labels_file on the server's disk: GetModel returns the loaded labels.
    assert len(details.labels) == 80 and details.labels[:3] == ["person", "bicycle", "car"], (
        f"GetModel config.labels = {details.labels[:5]} (labels_file {config.labels_file!r})")
    assert abs(details.total_macs - NANODET_MACS) / NANODET_MACS < 0.1, f"{details.total_macs:,} MACs"
    convs = [layer for layer in details.layers if "conv" in layer.op.lower()]
    assert len(convs) >= 30, f"NanoDet-g has ~34 convolutions, got {len(convs)}"


def test_get_unknown_model_is_not_found(client: Client) -> None:
    with pytest.raises(LowbitError) as caught:
        client.get_model("no-such-model")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND, caught.value


def test_get_model_reports_bits_and_kernels_of_a_quantized_model(client: Client) -> None:
    names = [m.name for m in client.list_models()]
    if "nanodet-g-w2a2" not in names:
        pytest.fail(f"nanodet-g-w2a2 is not served ({names}): run deploy/models/fetch-models.sh",
                    pytrace=False)
    details = client.get_model("nanodet-g-w2a2")
    convs = [layer for layer in details.layers if layer.op.startswith("lowbit.QConv")]
    assert len(convs) == 34, [layer.op for layer in details.layers]
    # Inner layers at 2 bits, first and last at 8; every conv names its kernel family.
    assert sum(layer.weight_bits == 2 for layer in convs) >= 25, [l.weight_bits for l in convs]
    assert convs[0].weight_bits == 8 and convs[0].activation_bits == 8
    assert all(layer.kernel for layer in convs), [l.kernel for l in convs]
    # Weights stored at their bit width: well under a byte per weight.
    assert sum(l.weight_bytes for l in convs) < 0.4 * sum(l.params for l in convs)
    fp32 = client.get_model("nanodet-g")
    assert all(l.weight_bits == 32 for l in fp32.layers if l.kernel)
