"""Model repository that survives mistakes, and hot reload, against the real lowbitd.

Each test serves a repository of its own in a temporary directory: copies of
BlazeFace (the smallest model of models/; its config.pbtxt copied so a test
can touch it, model.onnx and labels.txt symlinked) and broken entries.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from conftest import REPO, ServerProcess
from helpers import DOG, assert_detections
from lowbit import Client, LowbitError
from lowbit._proto.v1 import admin_pb2, admin_pb2_grpc, detector_pb2

SOURCE = REPO / "models" / "blazeface"
MODEL = "blazeface"


def add_model(repo: Path, name: str, source: Path = SOURCE) -> Path:
    directory = repo / name
    directory.mkdir(parents=True)
    shutil.copyfile(source / "config.pbtxt", directory / "config.pbtxt")
    for file in ("model.onnx", "labels.txt"):
        (directory / file).symlink_to(source / file)
    return directory


def break_model_file(directory: Path) -> None:
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").write_bytes(b"this is not an ONNX file")


def fix_model_file(directory: Path) -> None:
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").symlink_to(SOURCE / "model.onnx")


def touch(path: Path) -> None:
    """A new mtime, whatever the file system's timestamp granularity."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if not (SOURCE / "model.onnx").is_file():
        pytest.fail(f"{SOURCE}/model.onnx missing: make it with `deploy/models/fetch-models.sh`", pytrace=False)
    directory = tmp_path / "models"
    directory.mkdir()
    return directory


def start(tmp_path: Path, repo: Path, *args: str) -> ServerProcess:
    # The later --model-repo wins over the one the fixture passes.
    return ServerProcess(log_path=tmp_path / "lowbitd.log", extra_args=["--model-repo", str(repo), *args]).start()


def models_by_name(address: str) -> dict[str, detector_pb2.ModelSummary]:
    with Client(address, timeout=10.0) as client:
        response = client.stub.ListModels(detector_pb2.ListModelsRequest(), timeout=10.0)
    return {m.name: m for m in response.models}


def reload_models(address: str, model: str = "", force: bool = False) -> dict[str, admin_pb2.ModelReloadResult]:
    with grpc.insecure_channel(address) as channel:
        response = admin_pb2_grpc.AdminStub(channel).ReloadModels(
            admin_pb2.ReloadModelsRequest(model=model, force=force), timeout=120.0)
    return {r.model: r for r in response.results}


def metric(server: ServerProcess, name: str, **labels: str) -> float | None:
    """The value of one series of the server's /metrics, None if absent."""
    text = urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=10).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, value = line.rsplit(" ", 1)
        got = ",".join(sorted(series[len(name) + 1:-1].split(",")))
        if got == want:
            return float(value)
    return None


def wait_for(condition, timeout_s: float, what: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} not seen after {timeout_s:.0f} s; log:\n{server.log_tail()}", pytrace=False)


class Load:
    """Threads sending Detect continuously, and DetectStream calls keeping a
    few frames in flight each; every outcome counted."""

    STREAM_IN_FLIGHT = 4

    def __init__(self, address: str, image: bytes, threads: int = 4, model: str = MODEL, streams: int = 0) -> None:
        self.address, self.image, self.model = address, image, model
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.streamed = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._unary, daemon=True) for _ in range(threads)]
        self.threads += [threading.Thread(target=self._stream, daemon=True) for _ in range(streams)]

    def _count(self, error: object, streamed: bool = False) -> None:
        with self.lock:
            if error is None:
                self.ok += 1
                self.streamed += streamed
            else:
                self.failures.append(str(error))

    def _unary(self) -> None:
        with Client(self.address, timeout=30.0) as client:
            while not self.stop.is_set():
                try:
                    self._count(client.detect(self.image, model=self.model).error)
                except LowbitError as failure:
                    self._count(failure)

    def _stream(self) -> None:
        # At most STREAM_IN_FLIGHT frames unanswered: the stream never meets
        # the queue's limit, so any error is the reload's.
        slots = threading.Semaphore(self.STREAM_IN_FLIGHT)

        def frames():
            while not self.stop.is_set():
                if slots.acquire(timeout=0.1):
                    yield self.image

        with Client(self.address, timeout=30.0) as client:
            try:
                for result in client.detect_stream(frames(), model=self.model):
                    slots.release()
                    self._count(result.error, streamed=True)
            except LowbitError as failure:
                self._count(f"stream: {failure}")

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def answered(self) -> int:
        with self.lock:
            return self.ok


def test_hot_reload_under_load_fails_no_request(tmp_path: Path, repo: Path, dog_jpg: Path) -> None:
    directory = add_model(repo, MODEL)
    server = start(tmp_path, repo)
    try:
        assert models_by_name(server.address)[MODEL].version == 1
        with Load(server.address, dog_jpg.read_bytes(), threads=3, streams=1) as load:
            wait_for(lambda: load.answered() >= 20, 30, "20 answers before the first reload", server)
            for expected_version in (2, 3, 4):
                results = reload_models(server.address, force=True)
                assert results[MODEL].action == admin_pb2.RELOAD_ACTION_RELOADED, results[MODEL].message
                assert results[MODEL].version == expected_version
                before = load.answered()
                wait_for(lambda: load.answered() >= before + 10, 30, "answers after a reload", server)
            # SIGHUP reloads what changed on disk.
            for expected_version in (5, 6):
                touch(directory / "config.pbtxt")
                server.process.send_signal(signal.SIGHUP)
                wait_for(lambda: models_by_name(server.address)[MODEL].version == expected_version, 60,
                         f"version {expected_version} after SIGHUP", server)
                before = load.answered()
                wait_for(lambda: load.answered() >= before + 10, 30, "answers after a SIGHUP reload", server)
        assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[:3]}"
        assert load.ok > 50
        assert load.streamed > 10
        assert metric(server, "lowbit_model_loads_total", model=MODEL, result="ok") == 6
        # A reload with nothing changed loads nothing.
        assert reload_models(server.address)[MODEL].action == admin_pb2.RELOAD_ACTION_UNCHANGED
    finally:
        assert server.terminate() == 0, server.log_tail()


def test_nanodet_keeps_answering_while_its_new_version_loads(tmp_path: Path, repo: Path, dog_jpg: Path) -> None:
    """NanoDet-g takes seconds to compile and warm up: the old version answers meanwhile."""
    source = REPO / "models" / "nanodet-g"
    if not (source / "model.onnx").is_file():
        pytest.fail(f"{source}/model.onnx missing: make it with `deploy/models/fetch-models.sh`", pytrace=False)
    add_model(repo, "nanodet-g", source)
    server = start(tmp_path, repo)
    try:
        with Load(server.address, dog_jpg.read_bytes(), threads=3, model="nanodet-g") as load:
            wait_for(lambda: load.answered() >= 5, 60, "5 answers before the reload", server)
            before = load.answered()
            results = reload_models(server.address, force=True)
            during = load.answered() - before
            assert results["nanodet-g"].action == admin_pb2.RELOAD_ACTION_RELOADED, results["nanodet-g"].message
            assert results["nanodet-g"].version == 2
            after = load.answered()
            wait_for(lambda: load.answered() >= after + 5, 60, "answers from version 2", server)
        assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[:3]}"
        print(f"\nanswered {during} during the {results['nanodet-g'].load_ms} ms reload, {load.ok} in all")
        assert during > 0, f"no answer during the {results['nanodet-g'].load_ms} ms reload"
        with Client(server.address, timeout=30.0) as client:
            assert_detections(client.detect(dog_jpg, model="nanodet-g"), DOG)
    finally:
        assert server.terminate() == 0, server.log_tail()


def test_corrupt_models_are_reported_and_the_good_one_is_served(tmp_path: Path, repo: Path, dog_jpg: Path) -> None:
    add_model(repo, MODEL)
    corrupt = add_model(repo, "corrupt")
    break_model_file(corrupt)
    badconfig = add_model(repo, "badconfig")
    (badconfig / "config.pbtxt").write_text("input { width: banana }\n")
    server = start(tmp_path, repo)
    try:
        models = models_by_name(server.address)
        assert models[MODEL].state == detector_pb2.READY
        for name, file in (("corrupt", "model.onnx"), ("badconfig", "config.pbtxt")):
            assert models[name].state == detector_pb2.FAILED
            assert file in models[name].state_message, models[name].state_message
        with Client(server.address, timeout=30.0) as client:
            assert client.detect(dog_jpg, model=MODEL).error is None
            with pytest.raises(LowbitError) as refused:
                client.detect(dog_jpg, model="corrupt")
            assert "corrupt" in str(refused.value)
        assert metric(server, "lowbit_model_loads_total", model="corrupt", result="failed") == 1
        assert metric(server, "lowbit_model_ready", model="corrupt") == 0
        assert metric(server, "lowbit_model_ready", model=MODEL) == 1
        log = server.log_path.read_text(errors="replace")
        assert any("corrupt" in line and "model.onnx" in line for line in log.splitlines()), log

        # Fixed on disk, it is served after a reload; the others are unchanged.
        fix_model_file(corrupt)
        results = reload_models(server.address)
        assert results["corrupt"].action == admin_pb2.RELOAD_ACTION_LOADED, results["corrupt"].message
        assert results[MODEL].action == admin_pb2.RELOAD_ACTION_UNCHANGED
        assert results["badconfig"].action == admin_pb2.RELOAD_ACTION_UNCHANGED
        assert models_by_name(server.address)["corrupt"].state == detector_pb2.READY
        with Client(server.address, timeout=30.0) as client:
            assert client.detect(dog_jpg, model="corrupt").error is None

        # A reload that fails keeps the version being served.
        break_model_file(repo / MODEL)
        results = reload_models(server.address, model=MODEL)
        assert results[MODEL].action == admin_pb2.RELOAD_ACTION_FAILED
        assert results[MODEL].version == 1
        models = models_by_name(server.address)
        assert models[MODEL].state == detector_pb2.READY
        assert "still served" in models[MODEL].state_message
        with Client(server.address, timeout=30.0) as client:
            assert client.detect(dog_jpg, model=MODEL).error is None
    finally:
        assert server.terminate() == 0, server.log_tail()


def test_repository_poll_picks_up_changes(tmp_path: Path, repo: Path, dog_jpg: Path) -> None:
    directory = add_model(repo, MODEL)
    late = add_model(repo, "late")
    break_model_file(late)
    server = start(tmp_path, repo, "--repository-poll-s", "1")
    try:
        assert models_by_name(server.address)["late"].state == detector_pb2.FAILED
        fix_model_file(late)
        touch(directory / "config.pbtxt")
        wait_for(lambda: models_by_name(server.address)["late"].state == detector_pb2.READY, 30,
                 "the fixed model READY", server)
        wait_for(lambda: models_by_name(server.address)[MODEL].version == 2, 30,
                 "the changed model's version 2", server)
        shutil.rmtree(late)
        wait_for(lambda: "late" not in models_by_name(server.address), 30, "the removed model unloaded", server)
        with Client(server.address, timeout=30.0) as client:
            assert client.detect(dog_jpg, model=MODEL).error is None
    finally:
        assert server.terminate() == 0, server.log_tail()
