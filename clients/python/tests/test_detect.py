"""Unary Detect against the real server: the three input kinds, options, errors."""
from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from helpers import DOG, SCORE_THRESHOLD, assert_detections, assert_timings, describe
from lowbit import Client, LowbitError
from lowbit.protos import detector_pb2


def _dog_rgb(dog_jpg: Path) -> np.ndarray:
    with Image.open(dog_jpg) as image:
        return np.asarray(image.convert("RGB"))


def test_detect_path(client: Client, dog_jpg: Path) -> None:
    result = client.detect(dog_jpg, score_threshold=SCORE_THRESHOLD)
    assert_detections(result, DOG)
    assert_timings(result)
    assert result.image_size == (768, 576)
    assert result.model, "the response names the model that ran"


def test_detect_path_as_str_and_bytes(client: Client, dog_jpg: Path) -> None:
    by_str = client.detect(str(dog_jpg), score_threshold=SCORE_THRESHOLD)
    by_bytes = client.detect(dog_jpg.read_bytes(), score_threshold=SCORE_THRESHOLD)
    for result in (by_str, by_bytes):
        assert_detections(result, DOG)
        assert_timings(result)
    # Same bytes in, same answer out.
    assert [(d.label, d.box) for d in by_str.detections] == [(d.label, d.box) for d in by_bytes.detections]


def test_detect_numpy_bgr_default(client: Client, dog_jpg: Path) -> None:
    bgr = _dog_rgb(dog_jpg)[:, :, ::-1]  # a non-contiguous view, as OpenCV users would hand over a copy
    result = client.detect(bgr, score_threshold=SCORE_THRESHOLD)
    assert_detections(result, DOG)
    assert_timings(result)
    assert result.image_size == (768, 576)


def test_detect_numpy_rgb(client: Client, dog_jpg: Path) -> None:
    result = client.detect(_dog_rgb(dog_jpg), pixel_format="rgb", score_threshold=SCORE_THRESHOLD)
    assert_detections(result, DOG)


def test_rgb_array_sent_as_bgr_differs(client: Client, dog_jpg: Path) -> None:
    """The pixel format really reaches the server: swapped channels change the scores."""
    right = client.detect(_dog_rgb(dog_jpg), pixel_format="rgb", score_threshold=SCORE_THRESHOLD)
    swapped = client.detect(_dog_rgb(dog_jpg), pixel_format="bgr", score_threshold=SCORE_THRESHOLD)
    assert [round(d.score, 4) for d in right.detections] != [round(d.score, 4) for d in swapped.detections], (
        f"same result with channels swapped: {describe(swapped.detections)}"
    )


def test_score_threshold_override(client: Client, dog_jpg: Path) -> None:
    result = client.detect(dog_jpg, score_threshold=0.5)
    assert [d.label for d in result.detections] == ["bicycle"], describe(result.detections)
    assert all(d.score >= 0.5 for d in result.detections)


def test_ids_echoed(client: Client, dog_jpg: Path) -> None:
    result = client.detect(dog_jpg, camera_id="gate-3", frame_id=123456789012)
    assert (result.camera_id, result.frame_id) == ("gate-3", 123456789012)


def test_detections_have_labels_and_class_ids(client: Client, dog_jpg: Path) -> None:
    result = client.detect(dog_jpg, score_threshold=SCORE_THRESHOLD)
    by_label = {d.label: d.class_id for d in result.detections}
    # COCO-80 order: person 0, bicycle 1, car 2, ..., truck 7, ..., dog 16.
    assert by_label["bicycle"] == 1 and by_label["truck"] == 7 and by_label["dog"] == 16, by_label


@pytest.mark.parametrize("keep", ["header only", "half"])
def test_corrupt_jpeg_is_invalid_argument_and_server_goes_on(client: Client, dog_jpg: Path, keep: str) -> None:
    data = dog_jpg.read_bytes()
    truncated = data[:300] if keep == "header only" else data[: len(data) // 2]
    with pytest.raises(LowbitError) as caught:
        client.detect(truncated)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert caught.value.message, "the server explains the refusal"
    assert_detections(client.detect(data, score_threshold=SCORE_THRESHOLD), DOG)


def test_not_an_image_is_invalid_argument(client: Client) -> None:
    with pytest.raises(LowbitError) as caught:
        client.detect(b"this is not an image")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, caught.value


@pytest.mark.parametrize(
    "raw",
    [
        # 100 bytes cannot hold 64x48 pixels.
        detector_pb2.RawImage(pixels=bytes(100), width=64, height=48, stride=192, format=detector_pb2.BGR8),
        # Stride below 3 * width.
        detector_pb2.RawImage(pixels=bytes(64 * 48 * 3), width=64, height=48, stride=100, format=detector_pb2.BGR8),
        # Zero size.
        detector_pb2.RawImage(pixels=b"", width=0, height=0, stride=0, format=detector_pb2.RGB8),
    ],
    ids=["short-buffer", "small-stride", "empty"],
)
def test_raw_pixels_wrong_size_is_invalid_argument(client: Client, raw: detector_pb2.RawImage) -> None:
    request = detector_pb2.DetectRequest(frame=detector_pb2.Frame(raw=raw))
    with pytest.raises(grpc.RpcError) as caught:
        client.stub.Detect(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()


def test_raw_pixels_with_row_padding(client: Client, dog_jpg: Path) -> None:
    """stride > 3 * width: rows padded (as camera drivers do) still decode right."""
    bgr = np.ascontiguousarray(_dog_rgb(dog_jpg)[:, :, ::-1])
    height, width, _ = bgr.shape
    padded = np.zeros((height, width * 3 + 64), np.uint8)
    padded[:, : width * 3] = bgr.reshape(height, width * 3)
    raw = detector_pb2.RawImage(pixels=padded.tobytes(), width=width, height=height, stride=width * 3 + 64,
                                format=detector_pb2.BGR8)
    request = detector_pb2.DetectRequest(frame=detector_pb2.Frame(raw=raw), score_threshold=SCORE_THRESHOLD)
    response = client.stub.Detect(request, timeout=30)
    labels = sorted(d.label for d in response.detections)
    assert {"bicycle", "dog", "truck"} <= set(labels), labels


def test_unknown_model_is_not_found(client: Client, dog_jpg: Path) -> None:
    with pytest.raises(LowbitError) as caught:
        client.detect(dog_jpg, model="no-such-model")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND, caught.value
    assert "no-such-model" in caught.value.message


def test_client_side_input_errors() -> None:
    """Bad inputs are refused before anything is sent (no server needed for these)."""
    with Client("127.0.0.1:9", timeout=1) as offline:
        with pytest.raises(TypeError):
            offline.detect(np.zeros((4, 4, 3), np.float32))
        with pytest.raises(ValueError):
            offline.detect(np.zeros((4, 4), np.uint8))
        with pytest.raises(FileNotFoundError):
            offline.detect("/nonexistent/image.jpg")
        with pytest.raises(ValueError):
            offline.detect(b"x", score_threshold=1.5)
        with pytest.raises(LowbitError) as caught:
            offline.detect(b"x")
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
