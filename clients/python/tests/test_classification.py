"""A classification model through lowbitd: DetectResponse.classifications, the
SDK's DetectResult.classifications and lowbit-client's output.

The model is made here: a convolution whose 8x8 kernel covers the whole input,
so class k's logit is the mean of colour channel k (0 red, 1 green, 2 blue;
class 3 is always 0). A pure red image then has logits (1, 0, 0, 0), softmax
e / (e + 3) for "red" and 1 / (e + 3) for each other class.
"""
from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from conftest import ServerProcess
from lowbit import Client

LABELS = ["red", "green", "blue", "none"]

CONFIG = """
name: "colours"
version: 1
input {
  width: 8
  height: 8
  layout: NCHW
  color_order: RGB
  scale: 0.003921569
  mean: [0, 0, 0]
  std: [1, 1, 1]
  resize: SHORT_SIDE_CROP
}
classification { output: "logits" logits: true top_k: 2 }
labels: ["red", "green", "blue", "none"]
score_threshold: 0.05
iou_threshold: 0.5
"""


def write_model(path: Path) -> None:
    weights = np.zeros((4, 3, 8, 8), np.float32)
    for k in range(3):
        weights[k, k] = 1.0 / 64
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["logits"], kernel_shape=[8, 8])],
        "colours",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4, 1, 1])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def classifier_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repo = tmp_path_factory.mktemp("classifier-repo")
    (repo / "colours").mkdir()
    write_model(repo / "colours" / "model.onnx")
    (repo / "colours" / "config.pbtxt").write_text(CONFIG)
    mp = pytest.MonkeyPatch()
    mp.setenv("LOWBIT_MODEL_REPO", str(repo))
    process = ServerProcess(log_path=repo.parent / "lowbitd-classifier.log")
    try:
        process.start()
    finally:
        mp.undo()
    yield process
    process.terminate()


def red_image(path: Path) -> Path:
    # 24x12: the short side is resized to 8 and the centred 8x8 cut, all red.
    Image.new("RGB", (24, 12), (255, 0, 0)).save(path)
    return path


def test_classifications_in_the_response(classifier_server: ServerProcess, tmp_path: Path) -> None:
    with Client(classifier_server.address, timeout=30.0) as client:
        result = client.detect(red_image(tmp_path / "red.png"), model="colours")
    assert result.detections == []
    assert [c.label for c in result.classifications] == ["red", "green"]
    assert [c.class_id for c in result.classifications] == [0, 1]
    e = math.e
    assert result.classifications[0].score == pytest.approx(e / (e + 3), abs=1e-4)
    assert result.classifications[1].score == pytest.approx(1 / (e + 3), abs=1e-4)


def test_lowbit_client_prints_classes(classifier_server: ServerProcess, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("lowbit-client")
    if not cli.is_file():
        pytest.fail(f"{cli} missing: `pip install --no-build-isolation -e clients/python`", pytrace=False)
    image = red_image(tmp_path / "red.png")
    done = subprocess.run(
        [str(cli), "detect", str(image), "--address", classifier_server.address, "--model", "colours"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "2 classes" in done.stdout
    lines = [line.split() for line in done.stdout.splitlines() if "(whole image)" in line]
    assert [line[0] for line in lines] == ["red", "green"]
    assert float(lines[0][1]) == pytest.approx(math.e / (math.e + 3), abs=0.01)


def red_tensor() -> np.ndarray:
    """The pre-processed input of an all-red image: [1,3,8,8], channel 0 ones."""
    x = np.zeros((1, 3, 8, 8), np.float32)
    x[0, 0] = 1.0
    return x


def test_kserve_image_form_answers_the_top_classes(classifier_server: ServerProcess, tmp_path: Path) -> None:
    """An IMAGE request to a classifier: COUNT classes, their ids, scores and labels, each
    box the whole image (24 x 12)."""
    import tritonclient.grpc as triton

    image = red_image(tmp_path / "red.png")
    tensor = triton.InferInput("IMAGE", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([image.read_bytes()], dtype=np.object_))
    with triton.InferenceServerClient(classifier_server.address) as client:
        result = client.infer("colours", [tensor])
    assert result.as_numpy("COUNT").tolist() == [2]
    assert result.as_numpy("CLASSES").tolist() == [[0, 1]]
    assert [b.decode() for b in result.as_numpy("LABELS")[0]] == ["red", "green"]
    e = math.e
    np.testing.assert_allclose(result.as_numpy("SCORES")[0], [e / (e + 3), 1 / (e + 3)], atol=1e-4)
    np.testing.assert_allclose(result.as_numpy("BOXES")[0], [[0, 0, 24, 12]] * 2, atol=1e-3)


def test_kserve_classification_extension(classifier_server: ServerProcess) -> None:
    """Triton's classification extension from tritonclient (class_count = k): the output
    comes back as BYTES [N, k] of "value:index:label", highest first, ties by index; the
    server metadata lists the extension; a count outside [1, elements] is refused."""
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    x = np.concatenate([red_tensor(), np.zeros((1, 3, 8, 8), np.float32)])
    x[1, 2] = 0.5  # the second frame: half blue
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    with triton.InferenceServerClient(classifier_server.address) as client:
        assert "classification" in client.get_server_metadata().extensions
        result = client.infer("colours", [tensor], outputs=[triton.InferRequestedOutput("logits", class_count=3)])
        top = result.as_numpy("logits")
        assert top.shape == (2, 3)
        assert [[b.decode() for b in row] for row in top] == [
            ["1.000000:0:red", "0.000000:1:green", "0.000000:2:blue"],
            ["0.500000:2:blue", "0.000000:0:red", "0.000000:1:green"],
        ]
        plain = client.infer("colours", [tensor], outputs=[triton.InferRequestedOutput("logits")])
        np.testing.assert_allclose(plain.as_numpy("logits").reshape(2, 4), [[1, 0, 0, 0], [0, 0, 0.5, 0]], atol=1e-6)
        for count in (5, -1):
            with pytest.raises(InferenceServerException, match=r"classification.*\[1, 4\]"):
                client.infer("colours", [tensor], outputs=[triton.InferRequestedOutput("logits", class_count=count)])
