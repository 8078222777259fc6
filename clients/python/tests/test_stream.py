"""DetectStream against the real server: tagging, content, per-frame errors."""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from helpers import DOG, EAGLE, GIRAFFE, SCORE_THRESHOLD, assert_detections, assert_timings
from lowbit import Client, DetectResult, Frame, now_us

STREAM_TIMEOUT_S = 120.0
RESULT_WAIT_S = 60.0


class OneInFlightPerCamera:
    """Feeds frames to detect_stream, holding each camera's next frame until
    its previous result is back.

    The server may keep only a camera's latest frame when that camera outruns
    it; these tests check tagging and content of every frame, so each camera
    has at most one frame in flight (two cameras: two in flight at once).
    """

    def __init__(self, frames: Sequence[Frame]) -> None:
        self.frames = list(frames)
        self._returned = {(f.camera_id, f.frame_id): threading.Event() for f in self.frames}

    def __iter__(self) -> Iterator[Frame]:
        previous: dict[str, tuple[str, int]] = {}
        for frame in self.frames:
            key = (frame.camera_id, frame.frame_id)
            waiting_for = previous.get(frame.camera_id)
            if waiting_for is not None and not self._returned[waiting_for].wait(RESULT_WAIT_S):
                raise TimeoutError(f"no result for {waiting_for} within {RESULT_WAIT_S} s")
            previous[frame.camera_id] = key
            yield frame

    def returned(self, result: DetectResult) -> None:
        key = (result.camera_id, result.frame_id)
        assert key in self._returned, f"result for a frame never sent: {key}"
        assert not self._returned[key].is_set(), f"second result for {key}"
        self._returned[key].set()


def run_stream(client: Client, frames: Sequence[Frame], **options: object) -> dict[tuple[str, int], DetectResult]:
    feeder = OneInFlightPerCamera(frames)
    results: dict[tuple[str, int], DetectResult] = {}
    for result in client.detect_stream(feeder, timeout=STREAM_TIMEOUT_S, **options):
        feeder.returned(result)
        results[(result.camera_id, result.frame_id)] = result
    missing = [(f.camera_id, f.frame_id) for f in frames if (f.camera_id, f.frame_id) not in results]
    assert not missing, f"no result for frames {missing}"
    return results


def test_two_cameras_tagged_and_detected(client: Client, images: Path) -> None:
    dog, giraffe, eagle = images / "dog.jpg", images / "giraffe.jpg", images / "eagle.jpg"
    plan = [
        ("cam-north", 10, giraffe, GIRAFFE),
        ("cam-south", 500, eagle, EAGLE),
        ("cam-north", 11, eagle, EAGLE),
        ("cam-south", 501, dog, DOG),
        ("cam-north", 12, dog, DOG),
        ("cam-south", 502, giraffe, GIRAFFE),
    ]
    frames = [Frame(image=path, camera_id=camera, frame_id=frame_id) for camera, frame_id, path, _ in plan]
    results = run_stream(client, frames, score_threshold=SCORE_THRESHOLD)
    assert len(results) == len(plan)
    for camera, frame_id, path, expected in plan:
        result = results[(camera, frame_id)]
        assert (result.camera_id, result.frame_id) == (camera, frame_id)
        assert_detections(result, expected)
        assert_timings(result)


def test_unpaced_burst_from_two_cameras(client: Client, images: Path) -> None:
    """Frames sent as fast as the stream takes them: every one answered, tagged
    right, in order per camera; a camera's waiting frame is replaced by its
    newer one (dropped SUPERSEDED), and each camera's last frame is computed."""
    dog, eagle = (images / "dog.jpg").read_bytes(), (images / "eagle.jpg").read_bytes()
    frames = [Frame(image=dog if i % 2 else eagle, camera_id=f"cam-{i % 2}", frame_id=i) for i in range(24)]
    results = list(client.detect_stream(frames, score_threshold=SCORE_THRESHOLD, timeout=STREAM_TIMEOUT_S))
    assert sorted((r.camera_id, r.frame_id) for r in results) == sorted((f.camera_id, f.frame_id) for f in frames)
    for camera in ("cam-0", "cam-1"):
        ids = [r.frame_id for r in results if r.camera_id == camera]
        assert ids == sorted(ids), f"{camera} answered out of order: {ids}"
    superseded = 0
    for result in results:
        if result.dropped is not None:
            assert result.dropped == "SUPERSEDED", result
            assert result.error is not None and result.error.code == grpc.StatusCode.ABORTED, result.error
            assert result.detections == []
            superseded += 1
        elif result.frame_id % 2:
            assert_detections(result, DOG)
        else:
            assert_detections(result, EAGLE)
    assert superseded > 0, "24 unpaced frames of two cameras: none waited long enough to be replaced?"
    last = {r.camera_id: r for r in results}
    for camera, result in last.items():
        assert result.ok, f"{camera}'s newest frame was not computed: {result}"


def test_stale_frames_are_dropped_and_fresh_ones_report_their_age(client: Client, images: Path) -> None:
    eagle = (images / "eagle.jpg").read_bytes()
    captured = now_us()
    frames = [
        # Captured 2 s ago with a 500 ms limit: stale on arrival, never queued.
        Frame(image=eagle, camera_id="old", frame_id=1, capture_time_us=captured - 2_000_000, max_frame_age_ms=500),
        Frame(image=eagle, camera_id="new", frame_id=2, capture_time_us=captured, max_frame_age_ms=30_000),
    ]
    results = {r.frame_id: r for r in client.detect_stream(frames, timeout=STREAM_TIMEOUT_S)}
    stale, fresh = results[1], results[2]
    assert stale.dropped == "STALE", stale
    assert stale.error is not None and stale.error.code == grpc.StatusCode.DEADLINE_EXCEEDED, stale.error
    assert fresh.ok, fresh.error
    assert_detections(fresh, EAGLE)
    assert 0 < fresh.timings.frame_age_ms < 30_000, fresh.timings


def test_plain_images_and_tuples(client: Client, images: Path) -> None:
    """Bare images get frame ids 0, 1, ...; tuples carry (camera_id, frame_id, image)."""
    eagle_bytes = (images / "eagle.jpg").read_bytes()
    bare = list(client.detect_stream([images / "eagle.jpg", eagle_bytes], timeout=STREAM_TIMEOUT_S))
    assert sorted(r.frame_id for r in bare) == [0, 1]
    for result in bare:
        assert result.camera_id == ""
        assert_detections(result, EAGLE)

    tuples = list(client.detect_stream([("porch", 42, eagle_bytes)], timeout=STREAM_TIMEOUT_S))
    assert [(r.camera_id, r.frame_id) for r in tuples] == [("porch", 42)]
    assert_detections(tuples[0], EAGLE)


def test_bad_frames_yield_errors_and_stream_goes_on(client: Client, images: Path) -> None:
    dog = (images / "dog.jpg").read_bytes()
    frames = [
        Frame(image=dog[: len(dog) // 3], camera_id="cam-a", frame_id=1),  # truncated JPEG
        Frame(image=images / "eagle.jpg", camera_id="cam-a", frame_id=2),
        Frame(image=images / "eagle.jpg", camera_id="cam-a", frame_id=3, model="no-such-model"),
        Frame(image=images / "giraffe.jpg", camera_id="cam-a", frame_id=4),
    ]
    results = run_stream(client, frames)
    corrupt, unknown = results[("cam-a", 1)], results[("cam-a", 3)]
    assert corrupt.error is not None and corrupt.error.code == grpc.StatusCode.INVALID_ARGUMENT, corrupt.error
    assert unknown.error is not None and unknown.error.code == grpc.StatusCode.NOT_FOUND, unknown.error
    assert corrupt.detections == [] and unknown.detections == []
    assert_detections(results[("cam-a", 2)], EAGLE)
    assert_detections(results[("cam-a", 4)], GIRAFFE)


def test_unreadable_item_raises_after_earlier_results(client: Client, images: Path) -> None:
    """A stream item the SDK cannot send ends the stream with that exception."""
    def frames() -> Iterator[object]:
        yield Frame(image=images / "eagle.jpg", camera_id="c", frame_id=1)
        yield Frame(image=images / "missing.jpg", camera_id="c", frame_id=2)

    received = []
    with pytest.raises(FileNotFoundError):
        for result in client.detect_stream(frames(), timeout=STREAM_TIMEOUT_S):
            received.append(result)
    assert [(r.camera_id, r.frame_id) for r in received] == [("c", 1)]
    assert_detections(received[0], EAGLE)
