"""SIGTERM while requests are in flight: they complete, then the server exits 0."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from conftest import SERVER_STOP_TIMEOUT_S, ServerProcess
from helpers import SCORE_THRESHOLD
from lowbit.protos import detector_pb2, detector_pb2_grpc

REQUESTS = 32
FIRST_RESULT_WAIT_S = 60.0


def test_sigterm_drains_in_flight_requests(tmp_path: Path, dog_jpg: Path) -> None:
    server = ServerProcess(log_path=tmp_path / "lowbitd.log").start()
    try:
        request = detector_pb2.DetectRequest(
            frame=detector_pb2.Frame(encoded=dog_jpg.read_bytes()), score_threshold=SCORE_THRESHOLD)
        with grpc.insecure_channel(server.address) as channel:
            stub = detector_pb2_grpc.DetectorStub(channel)
            calls = [stub.Detect.future(request, timeout=120) for _ in range(REQUESTS)]
            # All requests are on the wire; once one is answered the rest are being worked on.
            first_answer = threading.Event()
            for call in calls:
                call.add_done_callback(lambda _call: first_answer.set())
            assert first_answer.wait(FIRST_RESULT_WAIT_S), (
                f"no answer within {FIRST_RESULT_WAIT_S} s; log:\n{server.log_tail()}")
            in_flight = sum(not call.done() for call in calls)
            assert in_flight > 0, "every request finished before SIGTERM: nothing was in flight"

            signalled = time.monotonic()
            code = server.terminate(SERVER_STOP_TIMEOUT_S)
            exit_s = time.monotonic() - signalled

            failures = []
            for index, call in enumerate(calls):
                try:
                    labels = {d.label for d in call.result(timeout=1).detections}
                    if "bicycle" not in labels:
                        failures.append(f"#{index}: wrong result {sorted(labels)}")
                except grpc.RpcError as error:
                    failures.append(f"#{index}: {error.code().name} {error.details()}")
            assert not failures, (
                f"{len(failures)} of {in_flight} requests in flight at SIGTERM failed: {failures[:5]}; "
                f"log:\n{server.log_tail()}")
        assert code == 0, f"exit code {code} after SIGTERM ({exit_s:.1f} s); log:\n{server.log_tail()}"
    finally:
        server.kill()
