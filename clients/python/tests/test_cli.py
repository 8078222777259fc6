"""The lowbit-client command against the real server."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ServerProcess

CLI_TIMEOUT_S = 60


def cli_path() -> Path:
    path = Path(sys.executable).with_name("lowbit-client")
    if not path.is_file():
        pytest.fail(f"{path} missing: `pip install --no-build-isolation -e clients/python`", pytrace=False)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli_path()), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_help() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("detect", "models", "stream"):
        assert command in done.stdout
    detect_help = run_cli("detect", "--help")
    assert detect_help.returncode == 0 and "--out" in detect_help.stdout and "--score" in detect_help.stdout


def test_detect_prints_objects_and_writes_jpeg(server: ServerProcess, dog_jpg: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated.jpg"
    done = run_cli("detect", str(dog_jpg), "--address", server.address, "--score", "0.35", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for label in ("bicycle", "dog", "truck"):
        assert any(line.split()[0] == label for line in lines if line.strip()), done.stdout
    assert any(line.startswith("timings ms:") for line in lines), done.stdout
    with Image.open(out) as image:
        assert image.format == "JPEG"
        assert image.size == (768, 576)
        image.load()
    with Image.open(dog_jpg) as original:
        assert original.convert("RGB").tobytes() != Image.open(out).convert("RGB").tobytes(), "boxes drawn"


def test_detect_json(server: ServerProcess, dog_jpg: Path) -> None:
    done = run_cli("detect", str(dog_jpg), "--address", server.address, "--score", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [d["label"] for d in result["detections"]] == ["bicycle"]
    assert len(result["detections"][0]["box"]) == 4 and result["timings"]["total_ms"] > 0


def test_models(server: ServerProcess) -> None:
    done = run_cli("models", "--address", server.address)
    assert done.returncode == 0, done.stderr
    assert "nanodet" in done.stdout and "(default)" in done.stdout, done.stdout


def test_stream_images_without_camera_computes_every_frame(server: ServerProcess, images: Path) -> None:
    done = run_cli("stream", str(images / "eagle.jpg"), str(images / "giraffe.jpg"), "--address", server.address,
                   "--camera-id", "")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert any(line.startswith("[#0]") and "bird" in line for line in lines), done.stdout
    assert any(line.startswith("[#1]") and "giraffe" in line for line in lines), done.stdout


def test_stream_images_of_one_camera_keeps_the_newest(server: ServerProcess, images: Path) -> None:
    # Unpaced, a frame may be superseded by the next while it waits; whatever
    # happens, every frame gets one line and the camera's last frame is computed.
    inputs = [str(images / "eagle.jpg")] * 3 + [str(images / "giraffe.jpg")]
    done = run_cli("stream", *inputs, "--address", server.address, "--camera-id", "cli-cam")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split("]")[0] for line in lines) == [f"[cli-cam#{i}" for i in range(4)], done.stdout
    for line in lines:
        assert "dropped SUPERSEDED" in line or "bird" in line or "giraffe" in line, done.stdout
    assert any(line.startswith("[cli-cam#3]") and "giraffe" in line for line in lines), done.stdout


def test_stream_paced_computes_every_frame(server: ServerProcess, images: Path) -> None:
    done = run_cli("stream", str(images / "eagle.jpg"), str(images / "giraffe.jpg"), "--address", server.address,
                   "--camera-id", "cli-cam", "--fps", "2")
    assert done.returncode == 0, done.stderr
    assert "[cli-cam#0]" in done.stdout and "bird" in done.stdout, done.stdout
    assert "[cli-cam#1]" in done.stdout and "giraffe" in done.stdout, done.stdout


def test_server_error_exit_status(server: ServerProcess, dog_jpg: Path) -> None:
    done = run_cli("detect", str(dog_jpg), "--address", server.address, "--model", "no-such-model")
    assert done.returncode == 1
    assert "NOT_FOUND" in done.stderr
