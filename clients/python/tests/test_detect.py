"""Unary Detect against the real server: the three input kinds, options, errors."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from conftest import ServerProcess, nanodet_only_repo
from helpers import DOG, SCORE_THRESHOLD, assert_detections, assert_timings, describe, sample_sum, scrape
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


def test_five_ms_deadline_on_a_busy_server_fails_fast_and_is_never_computed(tmp_path: Path, dog_jpg: Path) -> None:
    """One worker kept busy by a stream; a Detect with a 5 ms deadline gets
    DEADLINE_EXCEEDED at once and its frame never reaches the engine (the
    metrics count it as dropped for its deadline, not as an inference)."""
    repo = nanodet_only_repo(tmp_path)
    server = ServerProcess(log_path=tmp_path / "lowbitd.log",
                           extra_args=["--model-repo", str(repo), "--workers", "1", "--max-batch", "1"]).start()
    try:
        with Client(server.address, timeout=60.0) as client:
            image = dog_jpg.read_bytes()
            busy_frames = 10
            # Distinct cameras: every frame is kept and computed.
            frames = [(f"cam-{i}", i, image) for i in range(busy_frames)]
            streamed: list = []
            loader = threading.Thread(target=lambda: streamed.extend(client.detect_stream(frames, timeout=120)))
            loader.start()
            time.sleep(0.3)  # the stream's frames are queued, the worker is busy

            # A few tries: a 5 ms deadline may pass before the client has sent
            # the call (then the server never sees it); most reach the server.
            tries = 5
            for _ in range(tries):
                start = time.monotonic()
                with pytest.raises(LowbitError) as caught:
                    client.detect(image, timeout=0.005)
                took = time.monotonic() - start
                assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED, caught.value
                assert took < 0.5, f"DEADLINE_EXCEEDED after {took * 1000:.0f} ms"

            loader.join(timeout=120)
            assert len(streamed) == busy_frames and all(r.ok for r in streamed), streamed
            deadline = time.monotonic() + 10
            while True:  # a frame that waits is dropped when the next batch forms
                text = scrape(server.metrics_address)
                seen = sample_sum(text, "lowbit_requests_total", require=False, code="DEADLINE_EXCEEDED")
                dropped = sample_sum(text, "lowbit_dropped_requests_total", require=False, reason="deadline")
                if seen >= 1 and dropped == seen:
                    break
                assert time.monotonic() < deadline, f"expired frames not all counted as dropped:\n{text}"
                time.sleep(0.05)
            assert seen <= tries
            # Only the streamed frames count as inferences: none of the expired ones ran.
            assert sample_sum(text, "lowbit_inferences_total") == busy_frames
            assert sample_sum(text, "lowbit_requests_total", code="OK") == busy_frames
    finally:
        server.terminate()
