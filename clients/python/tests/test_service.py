"""Health, reflection and Prometheus metrics of the real server."""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from conftest import ServerProcess
from helpers import sample_sum
from helpers import scrape as scrape_metrics
from lowbit import Client


def scrape(server: ServerProcess) -> str:
    return scrape_metrics(server.metrics_address)


SERVICES = ("lowbit.v1.Detector", "lowbit.v1.Admin", "inference.GRPCInferenceService")


def test_health_serving_overall_and_per_service(client: Client) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", *SERVICES):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_services(client: Client) -> None:
    services = ProtoReflectionDescriptorDatabase(client.channel).get_services()
    for service in (*SERVICES, "grpc.health.v1.Health"):
        assert service in services, services


def test_reflection_describes_detector(client: Client) -> None:
    database = ProtoReflectionDescriptorDatabase(client.channel)
    proto = database.FindFileContainingSymbol("lowbit.v1.Detector")
    service = next(s for s in proto.service if s.name == "Detector")
    assert {m.name for m in service.method} == {"Detect", "DetectStream", "ListModels", "GetModel"}


def test_metrics_histogram_and_counter(server: ServerProcess, client: Client, dog_jpg: Path) -> None:
    client.detect(dog_jpg)  # at least one request before the first scrape
    before = scrape(server)
    assert "# TYPE lowbit_request_duration_seconds histogram" in before, before[:2000]
    assert re.search(r'^lowbit_request_duration_seconds_bucket\{[^}]*le="\+Inf"', before, re.MULTILINE), before[:2000]
    assert "# TYPE lowbit_requests_total counter" in before, before[:2000]

    requests = 3
    for _ in range(requests):
        client.detect(dog_jpg)
    after = scrape(server)
    observed = sample_sum(after, "lowbit_request_duration_seconds_count") - sample_sum(
        before, "lowbit_request_duration_seconds_count")
    assert observed >= requests, f"histogram count rose by {observed}, expected >= {requests}"
    counted = sample_sum(after, "lowbit_requests_total") - sample_sum(before, "lowbit_requests_total")
    assert counted >= requests, f"lowbit_requests_total rose by {counted}, expected >= {requests}"


def test_idle_connections_do_not_block_metrics(server: ServerProcess) -> None:
    """Connections that never send a request (a port scanner, a stuck
    scraper) must not hold /metrics: they are timed out, and more than they
    occupy is left to answer."""
    host, port = server.metrics_address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
    try:
        started = time.monotonic()
        text = scrape(server)
        took_s = time.monotonic() - started
        assert "lowbit_requests_total" in text or "lowbit_" in text
        assert took_s < 2.0, f"/metrics took {took_s:.1f} s with {len(idle)} idle connections open"
        # The server closes an idle connection itself (recv sees the end).
        idle[0].settimeout(15)
        started = time.monotonic()
        assert idle[0].recv(1) == b""
        assert time.monotonic() - started < 10
    finally:
        for connection in idle:
            connection.close()
