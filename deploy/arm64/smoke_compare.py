"""Health and one Detect against two lowbitd servers (x86 and arm64), compared.

    .venv/bin/python deploy/arm64/smoke_compare.py --x86 127.0.0.1:P1 --arm64 127.0.0.1:P2 \
        --image data/images/dog.jpg [--ready-timeout 600] [--box-tolerance 2.0] [--score-tolerance 0.01]

For each server: polls grpc.health.v1 until SERVING, then sends one Detect of
the image (the server's default model and threshold) and prints the
detections and the server's timings. The arm64 answer must have the same
labels in the same order as the x86 one, every score within --score-tolerance
and every box corner within --box-tolerance pixels. Exit status 0 when they
agree, 1 when they do not, 2 when a server does not answer.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lowbit import Client, LowbitError


def wait_serving(address: str, timeout_s: float) -> float:
    """Seconds until the health check said SERVING."""
    start = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        last = "no answer"
        while time.monotonic() - start < timeout_s:
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - start
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                last = error.code().name
            time.sleep(0.5)
    raise TimeoutError(f"{address}: not SERVING after {timeout_s:.0f} s (last: {last})")


def detect(name: str, address: str, image: str, timeout_s: float):
    with Client(address, timeout=timeout_s) as client:
        start = time.monotonic()
        result = client.detect(image)
        elapsed = time.monotonic() - start
    print(f"{name} ({address}): model {result.model}, {result.image_width}x{result.image_height}, "
          f"{len(result.detections)} detection(s), Detect took {elapsed:.2f} s "
          f"(server: inference {result.timings.inference_ms:.1f} ms, total {result.timings.total_ms:.1f} ms)")
    for d in result.detections:
        box = ", ".join(f"{v:.1f}" for v in d.box)
        print(f"  {d.label:<14} {d.score:.3f}  [{box}]")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--x86", required=True, help="address of the x86 lowbitd")
    parser.add_argument("--arm64", required=True, help="address of the arm64 lowbitd (under qemu)")
    parser.add_argument("--image", required=True)
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for SERVING")
    parser.add_argument("--detect-timeout", type=float, default=600.0, help="deadline of one Detect, s")
    parser.add_argument("--box-tolerance", type=float, default=2.0, help="pixels per box corner")
    parser.add_argument("--score-tolerance", type=float, default=0.01)
    args = parser.parse_args()

    results = {}
    try:
        for name, address in (("x86", args.x86), ("arm64", args.arm64)):
            seconds = wait_serving(address, args.ready_timeout)
            print(f"{name} ({address}): health SERVING after {seconds:.1f} s of waiting")
            results[name] = detect(name, address, args.image, args.detect_timeout)
    except (TimeoutError, LowbitError) as error:
        print(f"smoke: {error}", file=sys.stderr)
        return 2

    x86, arm64 = results["x86"].detections, results["arm64"].detections
    problems = []
    if not x86:
        problems.append("the x86 server found nothing to compare")
    if [d.label for d in x86] != [d.label for d in arm64]:
        problems.append(f"labels differ: x86 {[d.label for d in x86]}, arm64 {[d.label for d in arm64]}")
    else:
        for a, b in zip(x86, arm64):
            box_difference = max(abs(p - q) for p, q in zip(a.box, b.box))
            if abs(a.score - b.score) > args.score_tolerance:
                problems.append(f"{a.label}: score {a.score:.4f} on x86, {b.score:.4f} on arm64")
            if box_difference > args.box_tolerance:
                problems.append(f"{a.label}: boxes differ by {box_difference:.2f} px")
        if not problems:
            worst_box = max(max(abs(p - q) for p, q in zip(a.box, b.box)) for a, b in zip(x86, arm64))
            worst_score = max(abs(a.score - b.score) for a, b in zip(x86, arm64))
            print(f"smoke: same {len(x86)} detections on x86 and arm64 (largest box corner difference "
                  f"{worst_box:.3f} px, largest score difference {worst_score:.4f})")
    for problem in problems:
        print(f"smoke: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
