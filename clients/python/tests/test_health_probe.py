"""lowbit-health, the image's HEALTHCHECK: exit 0 only when lowbitd answers
grpc.health.v1 Check with SERVING, nonzero (and quickly) otherwise.

The probe binary sits beside lowbitd (LOWBIT_SERVER_BIN's directory, or
LOWBIT_HEALTH_BIN)."""
from __future__ import annotations

import os
import subprocess
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import ServerProcess, free_port, server_binary

EXIT_SERVING, EXIT_NOT_SERVING, EXIT_CALL_FAILED, EXIT_USAGE = 0, 1, 2, 64


def probe_binary() -> Path:
    configured = os.environ.get("LOWBIT_HEALTH_BIN")
    path = Path(configured) if configured else server_binary().parent / "lowbit-health"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"lowbit-health not found at {path}: build the lowbit-health target, or set LOWBIT_HEALTH_BIN",
                    pytrace=False)
    return path


def run_probe(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run([str(probe_binary()), *args], capture_output=True, text=True, timeout=30,
                            env={**os.environ, **(env or {})})
    return result, time.monotonic() - start


def test_serving_server_gives_0(server: ServerProcess) -> None:
    result, seconds = run_probe("--timeout-ms", "2000", server.address)
    assert result.returncode == EXIT_SERVING, result.stderr
    assert result.stdout.strip() == "SERVING"
    assert seconds < 2.0


def test_address_from_environment(server: ServerProcess) -> None:
    result, _ = run_probe("--timeout-ms", "2000", env={"LOWBIT_HEALTH_ADDRESS": server.address})
    assert result.returncode == EXIT_SERVING, result.stderr


def test_named_service(server: ServerProcess) -> None:
    result, _ = run_probe("--service", "lowbit.v1.Detector", server.address)
    assert result.returncode == EXIT_SERVING, result.stderr
    result, _ = run_probe("--service", "no.such.Service", server.address)
    assert result.returncode == EXIT_CALL_FAILED
    assert "NOT_FOUND" in result.stderr or "code 5" in result.stderr, result.stderr


def test_no_server_fails_within_the_deadline() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result, seconds = run_probe("--timeout-ms", "500", address)
    assert result.returncode == EXIT_CALL_FAILED
    assert address in result.stderr
    assert seconds < 2.0


def test_not_serving_gives_1() -> None:
    """A health service that says NOT_SERVING (what lowbitd answers while it
    drains) is unhealthy: exit 1, not 0."""
    health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, health_server)
    port = health_server.add_insecure_port("127.0.0.1:0")
    health_server.start()
    try:
        result, _ = run_probe("--timeout-ms", "2000", f"127.0.0.1:{port}")
        assert result.returncode == EXIT_NOT_SERVING, result.stderr
        assert result.stdout.strip() == "NOT_SERVING"
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        result, _ = run_probe("--timeout-ms", "2000", f"127.0.0.1:{port}")
        assert result.returncode == EXIT_SERVING, result.stderr
    finally:
        health_server.stop(grace=None)


@pytest.mark.parametrize("args", [["--timeout-ms"], ["--timeout-ms", "0"], ["--timeout-ms", "x"],
                                  ["--bogus"], ["a:1", "b:2"]])
def test_bad_arguments_give_64(args: list[str]) -> None:
    result, _ = run_probe(*args)
    assert result.returncode == EXIT_USAGE
    assert "usage:" in result.stderr
