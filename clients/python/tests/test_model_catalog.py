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
