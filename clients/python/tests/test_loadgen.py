"""lowbit-loadgen and bench/serving_load.py --quick against the real server (about 40 s in all),
and the SDK's camera-gateway fields the load generator relies on."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, ServerProcess, model_repo, server_binary
from lowbit import Client, Frame, loadgen, now_us

VIDEO = REPO / "data" / "images" / "vtest.avi"


@pytest.fixture(scope="module")
def frames() -> loadgen.Frames:
    if not VIDEO.is_file():
        pytest.fail(f"{VIDEO} missing: deploy/fetch-images.sh fetches it", pytrace=False)
    return loadgen.load_frames(VIDEO, count=12)


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 1001))  # 1..1000
    assert loadgen.percentile(values, 0.5) == 500
    assert loadgen.percentile(values, 0.99) == 990
    assert loadgen.percentile(values, 0.999) == 999
    assert loadgen.percentile([7.0], 0.999) == 7.0
    assert math.isnan(loadgen.percentile([], 0.5))
    summary = loadgen.summarize_ms([float(v) for v in reversed(values)])
    assert (summary["p50_ms"], summary["p90_ms"], summary["p99_ms"], summary["p99.9_ms"]) == (500, 900, 990, 999)
    assert summary["max_ms"] == 1000 and summary["mean_ms"] == pytest.approx(500.5)


def test_cameras_dealt_to_streams() -> None:
    options = loadgen.OpenLoopOptions(cameras=5, streams="camera")
    assert loadgen._camera_streams(options) == [[0], [1], [2], [3], [4]]
    options.streams = "gateway"
    assert loadgen._camera_streams(options) == [[0, 1, 2, 3, 4]]
    options.streams = "2"
    assert loadgen._camera_streams(options) == [[0, 2, 4], [1, 3]]
    options.streams = "6"
    with pytest.raises(ValueError):
        loadgen._camera_streams(options)


def test_video_frames_are_768x576_jpegs(frames: loadgen.Frames, tmp_path: Path) -> None:
    assert (frames.width, frames.height) == (768, 576)
    assert len(frames.jpegs) == 12
    assert all(jpeg[:2] == b"\xff\xd8" for jpeg in frames.jpegs)
    assert loadgen._jpeg_size(frames.jpegs[0]) == (768, 576)
    assert len(set(frames.jpegs)) > 1, "consecutive video frames should differ"
    written = frames.write(tmp_path / "frames")
    again = loadgen.load_frames(written, count=100)
    assert again.jpegs == frames.jpegs and (again.width, again.height) == (768, 576)


def test_closed_loop_counts_every_answer(server: ServerProcess, frames: loadgen.Frames) -> None:
    levels = loadgen.run_closed(server.address, frames, [1, 2], duration_s=1.5, warmup_s=0.3,
                                server_pid=server.process.pid)
    assert [level["concurrency"] for level in levels] == [1, 2]
    for level in levels:
        assert level["answered"] > 0 and not level["errors"], level
        assert level["throughput_fps"] == pytest.approx(level["answered"] / 1.5)
        assert 0 < level["p50_ms"] <= level["p90_ms"] <= level["p99_ms"] <= level["p99.9_ms"] <= level["max_ms"]
        assert sum(level["batch_sizes"].values()) == level["answered"]
        assert level["server_rss"]["peak_mb"] > 10, level["server_rss"]


def test_open_loop_accounts_for_every_frame(server: ServerProcess, frames: loadgen.Frames) -> None:
    options = loadgen.OpenLoopOptions(cameras=3, fps=4.0, duration_s=2.0, warmup_s=0.3, max_frame_age_ms=2000,
                                      objective_ms=2000.0, drain_s=10.0, streams="2")
    result = loadgen.run_open(server.address, frames, options, server_pid=server.process.pid)
    # 3 cameras x 4 fps x 2 s, fixed arrivals: 24 frames offered (+-1 at each window edge per camera).
    assert abs(result["offered"] - 24) <= 3, result["offered"]
    assert result["sent"] + result["gateway_skipped"] == result["offered"]
    assert result["lost"] == 0 and not result["stream_failures"], result
    assert result["answered"] + result["dropped"] + sum(result["errors"].values()) == result["sent"], result
    assert result["answered"] > 0 and result["out_of_order"] == 0
    assert set(result["answered_per_camera"]) == {"cam-00", "cam-01", "cam-02"}
    assert sum(result["answered_per_camera"].values()) == result["answered"]
    assert result["frame_age"]["p50_ms"] > 0
    assert result["goodput_fps"] <= result["answered_fps"] <= result["sent_fps"] + 1e-9


def test_cli_open_json(server: ServerProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lowbit.loadgen", "open", "--address", server.address, "--cameras", "2", "--fps", "4",
         "--duration", "2", "--warmup", "0.2", "--frame-count", "6", "--arrivals", "poisson", "--streams", "gateway",
         "--json", "--progress", "lines"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["frames"]["count"] == 6 and report["frames"]["width"] == 768
    opened = report["open"]
    assert opened["options"]["arrivals"] == "poisson" and opened["options"]["streams"] == "gateway"
    # 2 cameras x 4 fps x 2 s = 16 expected; a Poisson count that far off (p < 1e-3) means the gaps are wrong.
    assert 4 <= opened["offered"] <= 32, opened["offered"]
    assert opened["answered"] > 0 and opened["lost"] == 0 and not opened["stream_failures"]


def test_serving_load_quick(tmp_path: Path) -> None:
    """The report's CI form: every scenario runs against real servers; sanity checks enforced."""
    lowbit = os.environ.get("LOWBIT_BIN", str(REPO / "build" / "engine" / "lowbit"))
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "serving_load.py"), "--quick", "--server", str(server_binary()),
         "--lowbit", lowbit, "--model-repo", str(model_repo()), "--json", str(out), "--progress", "off",
         "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    report = json.loads(out.read_text())
    enforced = [c for c in report["checks"] if c["enforced"]]
    assert enforced and all(c["passed"] for c in enforced), report["checks"]
    assert {c["scenario"] for c in report["checks"]} == {"a", "b", "c", "all"}
    # (c) lowbitd and lowbit_grpc_floor, (b) 2 levels, (a) capacity and cameras: each measured the machine.
    assert report["other_cores"]["runs"] == 6
    overhead = report["overhead"]
    # The bound ran (the floor server is built beside lowbitd) and costs something.
    assert overhead["grpc_floor_ms"] is not None and overhead["grpc_floor_ms"] > 0
    assert overhead["rounds"][0]["floor"]["answered"] > 0 and not overhead["rounds"][0]["floor"]["errors"]
    assert overhead["in_process"]["image_width"] == 768 and overhead["in_process"]["p50_ms"] > 0
    assert overhead["server_overhead_ms"] == pytest.approx(overhead["closed"]["p50_ms"] - overhead["in_process"]["p50_ms"])
    assert report["cameras"]["capacity_fps"] > 0
    for line in ("PASS", "server overhead", "gRPC floor", "per-camera share", report["host"]["cpu_model"]):
        assert line in done.stdout


def test_sdk_gateway_fields(client: Client, dog_jpg: Path) -> None:
    """What a camera gateway and the load generator rely on: capture time -> frame age, drop reasons."""
    result = client.detect(dog_jpg, camera_id="aged", capture_time_us=now_us() - 300_000)
    assert result.dropped is None and result.detections
    assert result.timings.frame_age_ms >= 300, result.timings

    stale = Frame(image=dog_jpg, camera_id="stale", frame_id=0, capture_time_us=now_us() - 10_000_000,
                  max_frame_age_ms=100)
    (dropped,) = list(client.detect_stream([stale], timeout=60))
    assert dropped.dropped == "STALE" and dropped.error is not None and not dropped.detections

    # One camera's frames as fast as the stream takes them: latest frame wins. The newest is
    # answered; older ones waiting behind a running frame come back SUPERSEDED, in frame order.
    jpeg = dog_jpg.read_bytes()
    burst = [Frame(image=jpeg, camera_id="burst", frame_id=i) for i in range(8)]
    results = list(client.detect_stream(burst, timeout=60, stamp_capture_time=True))
    assert [r.frame_id for r in results] == list(range(8))
    assert results[-1].dropped is None and results[-1].detections
    assert results[-1].timings.frame_age_ms > 0
    reasons = {r.dropped for r in results}
    assert "SUPERSEDED" in reasons and reasons <= {None, "SUPERSEDED"}, reasons
    assert all((r.dropped is None) == (r.error is None) for r in results)
