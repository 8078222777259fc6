"""SSD-MobileNetV2 (TFLite original) against LiteRT, the runtime it was made for.

deploy/models/fetch-byo-models.sh keeps the original model.tflite (cut from the
objectron packed assets, sha256-checked) beside its tflite2onnx conversion
model.onnx in models/_import/ssd-mobilenetv2-oid/. LiteRT (PyPI ai-edge-litert)
runs the .tflite on the NHWC tensor; lowbit runs the converted ONNX on the same
pixels transposed to NCHW. Both outputs are [1,1917,4] box encodings
(ty,tx,th,tw) and [1,1917,24] class logits in both models, so they compare
element for element within 1e-4 + 2e-6 * |v| (test_onnxruntime_parity.py's
bound) on three real photos. This checks the conversion and lowbit together
against the original, not lowbit against ONNX Runtime on the conversion
(test_byo_models.py does that).

Environment: LOWBIT_BIN, LOWBIT_MODEL_REPO, LOWBIT_IMAGES as in test_byo_models.py.
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import pytest
from PIL import Image

import test_byo_models as byo

TFLITE_SHA256 = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
PHOTOS = ["dog.jpg", "giraffe.jpg", "motorcycle_left.png"]


@pytest.fixture(scope="module")
def litert():
    try:
        from ai_edge_litert import interpreter as interpreter_module
    except ImportError:
        pytest.fail("ai_edge_litert is missing: pip install -r requirements-dev.txt", pytrace=False)
    entry = byo.MODEL_REPO / "_import" / "ssd-mobilenetv2-oid"
    tflite = byo.require(entry / "model.tflite", "run deploy/models/fetch-byo-models.sh")
    assert hashlib.sha256(tflite.read_bytes()).hexdigest() == TFLITE_SHA256
    interpreter = interpreter_module.Interpreter(model_path=str(tflite), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


@pytest.mark.parametrize("photo", PHOTOS)
def test_converted_model_in_lowbit_matches_litert_on_the_original(litert, photo: str,
                                                                   tmp_path: pathlib.Path) -> None:
    nchw = byo.ssd_tensor(Image.open(byo.require(byo.IMAGES / photo, "run deploy/fetch-images.sh")))
    (model_input,) = litert.get_input_details()
    assert list(model_input["shape"]) == [1, 300, 300, 3]
    litert.set_tensor(model_input["index"], np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)))
    litert.invoke()
    expected = {o["name"]: litert.get_tensor(o["index"]) for o in litert.get_output_details()}
    assert sorted(expected) == ["raw_outputs/box_encodings", "raw_outputs/class_predictions"]
    got = byo.run_lowbit(byo.model_path("ssd-mobilenetv2-oid"), model_input["name"], nchw, tmp_path)
    for output, reference in expected.items():
        actual = got[byo.sanitize(output)]
        assert actual.shape == reference.shape, output
        error = np.abs(actual.astype(np.float64) - reference)
        bound = byo.ABSOLUTE_TOLERANCE + byo.RELATIVE_TOLERANCE * np.abs(reference)
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        print(f"{photo} {output}: max abs error {error.max():.3g} (max |v| {np.abs(reference).max():.3g})")
        assert np.all(error <= bound), (
            f"{photo} {output}: max abs error {error.max():.3g}; at {worst} lowbit "
            f"{actual[worst]:.7g} vs LiteRT {reference[worst]:.7g}")
