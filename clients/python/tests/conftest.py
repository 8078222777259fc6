"""Fixtures of the end-to-end tests: a real lowbitd process and the real images.

Environment:
  LOWBIT_SERVER_BIN   the server binary (default <repo>/build/server/lowbitd)
  LOWBIT_MODEL_REPO   model repository (default <repo>/models)
  LOWBIT_IMAGES       directory with dog.jpg, giraffe.jpg, eagle.jpg
                      (default <repo>/data/images)
  LOWBIT_SERVER_ARGS  extra server flags, e.g. "--workers 2"

Nothing is skipped: a missing binary, model repository or image fails the run
with the command that makes it.
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lowbit import Client

REPO = Path(__file__).resolve().parents[3]
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 30.0

BUILD_HINT = (
    "build it with `cmake -S . -B build -G Ninja && ninja -C build lowbitd` "
    "(deploy/install-deps.sh installs the dependencies), or set LOWBIT_SERVER_BIN"
)
MODELS_HINT = "make it with `deploy/models/fetch-models.sh`, or set LOWBIT_MODEL_REPO"
IMAGES_HINT = "get them with `deploy/fetch-images.sh {dir}`, or set LOWBIT_IMAGES"
REQUIRED_IMAGES = ("dog.jpg", "giraffe.jpg", "eagle.jpg")


def server_binary() -> Path:
    configured = os.environ.get("LOWBIT_SERVER_BIN")
    candidates = [Path(configured) if configured else REPO / "build" / "server" / "lowbitd"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"lowbitd not found (looked at {', '.join(map(str, candidates))}): {BUILD_HINT}", pytrace=False)


def model_repo() -> Path:
    repo = Path(os.environ.get("LOWBIT_MODEL_REPO", REPO / "models"))
    if not repo.is_dir() or not any(repo.glob("*/config.pbtxt")):
        pytest.fail(f"no model repository with */config.pbtxt at {repo}: {MODELS_HINT}", pytrace=False)
    return repo


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A lowbitd child process on free local ports, its output in log_path."""

    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    address: str = ""
    metrics_address: str = ""
    process: Optional[subprocess.Popen] = None

    def start(self) -> "ServerProcess":
        binary, models = server_binary(), model_repo()
        self.address = f"127.0.0.1:{free_port()}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        command = [
            str(binary),
            "--model-repo", str(models),
            "--address", self.address,
            "--metrics-address", self.metrics_address,
            *shlex.split(os.environ.get("LOWBIT_SERVER_ARGS", "")),
            *self.extra_args,
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            log.write((" ".join(command) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self.wait_serving(SERVER_START_TIMEOUT_S)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def channel(self) -> grpc.Channel:
        """A channel to the server as its clients reach it (plaintext here)."""
        return grpc.insecure_channel(self.address)

    def wait_serving(self, timeout_s: float) -> None:
        """Polls grpc.health.v1 until SERVING; fails on exit or after timeout_s."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with self.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(
                        f"lowbitd exited with {self.process.returncode} during start-up; log:\n{self.log_tail()}",
                        pytrace=False,
                    )
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.RpcError as error:
                    last = f"{error.code().name}: {error.details()}"
                time.sleep(0.1)
        self.kill()
        pytest.fail(f"lowbitd not SERVING after {timeout_s:.0f} s (last: {last}); log:\n{self.log_tail()}", pytrace=False)

    def terminate(self, timeout_s: float = SERVER_STOP_TIMEOUT_S) -> int:
        """SIGTERM, then waits up to timeout_s; returns the exit code (kills and fails on timeout)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"lowbitd still running {timeout_s:.0f} s after SIGTERM; log:\n{self.log_tail()}", pytrace=False)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def nanodet_only_repo(directory: Path) -> Path:
    """A repository in `directory` holding only the real nanodet-g (linked, not
    copied): for tests that start servers of their own and need them up fast."""
    source = model_repo() / "nanodet-g"
    if not (source / "config.pbtxt").is_file():
        pytest.fail(f"no nanodet-g in {model_repo()}: {MODELS_HINT}", pytrace=False)
    repo = directory / "nanodet-only"
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / "nanodet-g").exists():
        (repo / "nanodet-g").symlink_to(source.resolve(), target_is_directory=True)
    return repo


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared server of the session (started once, SIGTERM-ed at the end)."""
    process = ServerProcess(log_path=tmp_path_factory.mktemp("lowbitd") / "lowbitd.log")
    try:
        process.start()
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            code = process.terminate()
            if code != 0:
                pytest.fail(f"lowbitd exited with {code} after SIGTERM; log:\n{process.log_tail()}", pytrace=False)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.address, timeout=30.0) as c:
        yield c


@pytest.fixture(scope="session")
def images() -> Path:
    directory = Path(os.environ.get("LOWBIT_IMAGES", REPO / "data" / "images"))
    missing = [name for name in REQUIRED_IMAGES if not (directory / name).is_file()]
    if missing:
        pytest.fail(f"images {', '.join(missing)} missing in {directory}: {IMAGES_HINT.format(dir=directory)}",
                    pytrace=False)
    return directory


@pytest.fixture(scope="session")
def dog_jpg(images: Path) -> Path:
    return images / "dog.jpg"
