"""lowbit-loadgen: load generator of the lowbit detection server (lowbitd).

    lowbit-loadgen closed --concurrency 1,2,4,8 --duration 10 --in-process
    lowbit-loadgen open --cameras 16 --fps 10 --max-frame-age-ms 500 --duration 30
    lowbit-loadgen in-process

Frames are real camera frames: the first ``--frame-count`` frames of a video
(default data/images/vtest.avi, 768x576, 10 fps), decoded with OpenCV and
encoded as JPEG once before any load is sent, so encoding costs nothing
during a run. Camera k of an open-loop run starts at frame k * count / cameras
and walks the frames in order, like a camera of its own.

closed   ``--concurrency`` unary Detects in flight at all times, for each
         level in turn: throughput and latency percentiles per level.
open     N cameras x fps frames sent over DetectStream at fixed (evenly
         phased) or Poisson arrival times, whatever the server answers;
         capture_time_us stamped at send. Offered vs answered throughput,
         latency, goodput within ``--objective-ms``, frame age at answer,
         drops by reason, per-camera share of the answers.
in-process  ``lowbit bench --frames`` on the same JPEG files: decode,
         pre-process, inference and post-process per frame on one thread,
         the engine without the server. ``closed --in-process`` prints the
         server's own overhead = gRPC p50 at concurrency 1 - in-process p50.

The client runs on one asyncio event loop (grpc.aio), requests are built once
per frame; its own CPU time and its lateness against the arrival schedule
are reported, so a run shows whether the client kept up.
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import grpc

from lowbit.client import DEFAULT_ADDRESS, drop_reason_name
from lowbit.protos import detector_pb2, detector_pb2_grpc

REPO = Path(__file__).resolve().parents[3]
DEFAULT_VIDEO = REPO / "data" / "images" / "vtest.avi"
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


# -- frames -----------------------------------------------------------------


@dataclass
class Frames:
    """Encoded frames, in video order; all of the same size."""

    jpegs: list[bytes]
    width: int
    height: int
    source: str

    @property
    def mean_bytes(self) -> int:
        return sum(map(len, self.jpegs)) // max(1, len(self.jpegs))

    def write(self, directory: Path) -> Path:
        """Writes the frames as 00000.jpg, 00001.jpg, ... (what `lowbit bench --frames` reads)."""
        directory.mkdir(parents=True, exist_ok=True)
        for index, jpeg in enumerate(self.jpegs):
            (directory / f"{index:05d}.jpg").write_bytes(jpeg)
        return directory


def load_frames(source: Path = DEFAULT_VIDEO, count: int = 100, quality: int = 90,
                size: Optional[tuple[int, int]] = None) -> Frames:
    """The first ``count`` frames of a video as JPEGs, or the JPEG files of a directory (by name).

    ``size`` (width, height) resizes video frames; None keeps the video's size.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[:count]
        if not files:
            raise ValueError(f"no .jpg files in {source}")
        jpegs = [p.read_bytes() for p in files]
        width, height = _jpeg_size(jpegs[0])
        return Frames(jpegs, width, height, str(source))
    try:
        import cv2  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit("lowbit-loadgen: reading video frames needs OpenCV: pip install opencv-python-headless, "
                         "or pass a directory of JPEG files") from None
    if not source.is_file():
        raise FileNotFoundError(f"video {source} not found (deploy/fetch-images.sh fetches vtest.avi)")
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ValueError(f"OpenCV cannot open video {source}")
    jpegs: list[bytes] = []
    width = height = 0
    try:
        while len(jpegs) < count:
            ok, bgr = capture.read()
            if not ok:
                break
            if size is not None and (bgr.shape[1], bgr.shape[0]) != size:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            height, width = bgr.shape[:2]
            ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ValueError(f"OpenCV could not encode frame {len(jpegs)} of {source} as JPEG")
            jpegs.append(encoded.tobytes())
    finally:
        capture.release()
    if not jpegs:
        raise ValueError(f"no frames decoded from {source}")
    return Frames(jpegs, width, height, str(source))


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOFn header."""
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2:index + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[index + 7:index + 9], "big"), int.from_bytes(data[index + 5:index + 7], "big")
        index += 2 + length
    return 0, 0


# -- statistics ---------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in (0, 1]) of sorted values; nan when empty."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(round(fraction * len(sorted_values), 9))  # 0.999 * 1000 is 999, not 999.0000000000001
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def summarize_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9, mean and max of millisecond samples."""
    ordered = sorted(values)
    out = {f"p{str(p).rstrip('0').rstrip('.')}_ms": percentile(ordered, p / 100.0) for p in PERCENTILES}
    out["p10_ms"] = percentile(ordered, 0.1)  # least disturbed by other load on a shared machine
    out["mean_ms"] = sum(ordered) / len(ordered) if ordered else math.nan
    out["max_ms"] = ordered[-1] if ordered else math.nan
    return out


class CpuMeter:
    """CPU seconds (user + system, every thread of this process, gRPC's included) over a span."""

    def __enter__(self) -> "CpuMeter":
        self._cpu0, self._wall0 = self._cpu(), time.perf_counter()
        self.cpu_s = self.wall_s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = self._cpu() - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    @property
    def cores(self) -> float:
        """Mean cores busy (1.0 = one core all the time)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class MachineMeter:
    """Cores busy over a span (/proc): the whole machine, the server (``pid``) and the rest.

    On a shared machine ``other_cores`` (busy minus the server, this client and the
    children it waited for, e.g. ``lowbit bench``) says how much of the CPU something
    else took while the figures were measured.
    """

    _TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, server_pid: Optional[int]) -> None:
        self.server_pid = server_pid
        self.figures: dict[str, float] = {}

    @staticmethod
    def _machine_busy_ticks() -> Optional[int]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]) - idle

    def _process_ticks(self) -> Optional[int]:
        if self.server_pid is None:
            return None
        try:
            text = Path(f"/proc/{self.server_pid}/stat").read_text()
        except OSError:
            return None
        fields = text.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def __enter__(self) -> "MachineMeter":
        self._wall = time.perf_counter()
        self._machine, self._server = self._machine_busy_ticks(), self._process_ticks()
        self._client, self._children = CpuMeter._cpu(), self._children_cpu()
        return self

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        machine, server = self._machine_busy_ticks(), self._process_ticks()
        if wall <= 0 or machine is None or self._machine is None:
            return
        busy = (machine - self._machine) / self._TICKS / wall
        client = (CpuMeter._cpu() - self._client) / wall
        children = (self._children_cpu() - self._children) / wall
        served = (server - self._server) / self._TICKS / wall if server is not None and self._server is not None else 0.0
        self.figures = {"machine_busy_cores": busy, "client_cores": client, "children_cores": children,
                        "server_cores": served, "other_cores": max(0.0, busy - served - client - children)}


class RssSampler:
    """Samples a process's resident memory (/proc/PID/status VmRSS) every ``interval_s`` on a thread."""

    def __init__(self, pid: Optional[int], interval_s: float = 0.1) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def read_mb(self) -> Optional[float]:
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    def __enter__(self) -> "RssSampler":
        if self.pid is not None:
            start = time.perf_counter()

            def run() -> None:
                while True:
                    value = self.read_mb()
                    if value is not None:
                        self.samples.append((time.perf_counter() - start, value))
                    if self._stop.wait(self.interval_s):
                        return

            self._thread = threading.Thread(target=run, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def last_mb(self) -> Optional[float]:
        return self.samples[-1][1] if self.samples else None

    def progress_text(self) -> str:
        return f"  server RSS {self.last_mb:.0f} MB" if self.last_mb is not None else ""

    def summary(self) -> Optional[dict[str, float]]:
        """Start, peak and end MB, and the peaks of the first and last third (growth check)."""
        if not self.samples:
            return None
        values = [mb for _, mb in self.samples]
        third = max(1, len(values) // 3)
        return {"start_mb": values[0], "peak_mb": max(values), "end_mb": values[-1],
                "peak_first_third_mb": max(values[:third]), "peak_last_third_mb": max(values[-third:])}


class Progress:
    """One status line on stderr: rewritten in place on a TTY, else a line every ``line_every_s``."""

    def __init__(self, mode: str = "auto", line_every_s: float = 5.0) -> None:
        if mode == "auto":
            mode = "tty" if sys.stderr.isatty() else "lines"
        self.mode, self.line_every_s = mode, line_every_s
        self._last_line = time.monotonic()  # lines mode: the first line after line_every_s
        self._width = 0

    def show(self, text: str) -> None:
        if self.mode == "tty":
            sys.stderr.write("\r" + text.ljust(self._width))
            self._width = len(text)
            sys.stderr.flush()
        elif self.mode == "lines" and time.monotonic() - self._last_line >= self.line_every_s:
            self._last_line = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.mode == "tty" and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0
        self._last_line = time.monotonic()


async def _ticker(every_s: float, callback: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(every_s)
        callback()


async def _measured(calls: Sequence[Any], tick: Callable[[], None], progress: Progress,
                    server_pid: Optional[int]) -> tuple[CpuMeter, "MachineMeter"]:
    """Awaits every call with the progress line ticking; the CPU they took on each side."""
    ticking = asyncio.ensure_future(_ticker(0.5, tick))
    try:
        with CpuMeter() as cpu, MachineMeter(server_pid) as machine:
            await asyncio.gather(*calls)
    finally:
        ticking.cancel()
        progress.done()
    return cpu, machine


# -- closed loop --------------------------------------------------------------


#: lowbit.v1.Timings fields (<stage>_us) the closed loop collects from each answer.
_SERVER_STAGES = ("decode", "queue", "inference", "postprocess", "total")


def _requests(frames: Frames, model: str) -> list[detector_pb2.DetectRequest]:
    return [detector_pb2.DetectRequest(model=model, frame=detector_pb2.Frame(encoded=jpeg), frame_id=index)
            for index, jpeg in enumerate(frames.jpegs)]


async def _closed_level(address: str, requests: list[detector_pb2.DetectRequest], concurrency: int,
                        duration_s: float, warmup_s: float, timeout_s: float, progress: Progress,
                        rss: RssSampler) -> dict[str, Any]:
    latencies_ms: list[float] = []
    errors: Counter[str] = Counter()
    batch_sizes: Counter[int] = Counter()
    stages_ms: dict[str, list[float]] = {stage: [] for stage in _SERVER_STAGES}  # the server's Timings
    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = detector_pb2_grpc.DetectorStub(channel)
        await stub.ListModels(detector_pb2.ListModelsRequest(), timeout=timeout_s)  # connect first
        start = time.perf_counter()
        window_start, end = start + warmup_s, start + warmup_s + duration_s

        async def worker(first: int) -> None:
            index = first
            while True:
                sent = time.perf_counter()
                if sent >= end:
                    return
                request = requests[index % len(requests)]
                index += concurrency
                try:
                    response = await stub.Detect(request, timeout=timeout_s)
                    code = None
                except grpc.aio.AioRpcError as error:
                    code = error.code().name
                answered = time.perf_counter()
                # Throughput counts the answers inside the window, whenever their call was sent
                # (counting by send time would miss the calls still in flight at the end).
                if not window_start <= answered <= end:
                    continue
                if code is None:
                    latencies_ms.append((answered - sent) * 1000.0)
                    batch_sizes[response.batch_size] += 1
                    for stage, samples in stages_ms.items():
                        samples.append(getattr(response.timings, f"{stage}_us") / 1000.0)
                else:
                    errors[code] += 1

        def tick() -> None:
            now = time.perf_counter()
            phase = "warm-up" if now < window_start else f"{now - window_start:4.1f}/{duration_s:.0f} s"
            rate = len(latencies_ms) / max(1e-9, now - window_start) if now > window_start else 0.0
            recent = sorted(latencies_ms[-200:])
            progress.show(f"closed c={concurrency} {phase}  {rate:6.1f}/s  p50 {percentile(recent, 0.5):7.1f} ms  "
                          f"errors {sum(errors.values())}{rss.progress_text()}")

        cpu, machine = await _measured([worker(k) for k in range(concurrency)], tick, progress, rss.pid)
    window = duration_s
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "duration_s": window,
        "answered": len(latencies_ms),
        "throughput_fps": len(latencies_ms) / window,
        **summarize_ms(latencies_ms),
        "errors": dict(errors),
        "batch_sizes": {str(k): v for k, v in sorted(batch_sizes.items())},
        "server_stages_p50_ms": {stage: percentile(sorted(v), 0.5) for stage, v in stages_ms.items()},
        "client_cpu_cores": cpu.cores,
        "client_cpu_ms_per_call": 1000.0 * cpu.cpu_s / max(1, len(latencies_ms) + sum(errors.values())),
        "cpu": machine.figures,
    }
    return result


def run_closed(address: str, frames: Frames, concurrency: Sequence[int], duration_s: float = 10.0,
               warmup_s: float = 2.0, model: str = "", timeout_s: float = 30.0,
               progress: Optional[Progress] = None, server_pid: Optional[int] = None) -> list[dict[str, Any]]:
    """One closed-loop level per entry of ``concurrency``: that many unary Detects always in flight."""
    progress = progress or Progress("off")
    requests = _requests(frames, model)
    levels = []
    for level in concurrency:
        with RssSampler(server_pid) as rss:
            result = asyncio.run(_closed_level(address, requests, level, duration_s, warmup_s, timeout_s,
                                               progress, rss))
        result["server_rss"] = rss.summary()
        levels.append(result)
    return levels


async def _transport_floor(address: str, payload_bytes: int, calls: int) -> dict[str, Any]:
    request = detector_pb2.DetectRequest(frame=detector_pb2.Frame(encoded=b"\0" * payload_bytes))
    codes: Counter[str] = Counter()
    latencies_ms = []
    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = detector_pb2_grpc.DetectorStub(channel)
        await stub.ListModels(detector_pb2.ListModelsRequest(), timeout=10.0)
        for _ in range(calls):
            sent = time.perf_counter()
            try:
                await stub.Detect(request, timeout=10.0)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1
            latencies_ms.append((time.perf_counter() - sent) * 1000.0)
    return {"payload_bytes": payload_bytes, "calls": calls, "codes": dict(codes), **summarize_ms(latencies_ms)}


def run_transport_floor(address: str, payload_bytes: int, calls: int = 200) -> dict[str, Any]:
    """Round trip of a Detect the server refuses at once (payload_bytes of zeros, not an image:
    INVALID_ARGUMENT before any decode): what gRPC and this client cost per call, the model aside."""
    return asyncio.run(_transport_floor(address, payload_bytes, calls))


# -- open loop ----------------------------------------------------------------


@dataclass
class OpenLoopOptions:
    cameras: int = 16
    fps: float = 10.0
    duration_s: float = 30.0
    #: Frames scheduled in the first warmup_s are sent but not counted.
    warmup_s: float = 2.0
    #: "fixed": camera k sends at k / (cameras * fps) + i / fps; "poisson":
    #: exponential gaps of mean 1 / fps, each camera its own seeded stream.
    arrivals: str = "fixed"
    #: "camera": one DetectStream per camera; "gateway": one for all; an
    #: integer N: N streams, cameras dealt round-robin.
    streams: str = "camera"
    max_frame_age_ms: int = 0
    objective_ms: float = 500.0
    #: After the last frame: seconds to wait for the outstanding results.
    drain_s: float = 10.0
    model: str = ""
    seed: int = 1


@dataclass
class _Camera:
    index: int
    name: str
    first_frame: int
    next_frame_id: int = 0
    # frame_id -> (perf_counter at send, capture_time_us, counted)
    pending: dict[int, tuple[float, int, bool]] = field(default_factory=dict)
    answered: int = 0
    last_result_id: int = -1  # frame_id of the latest result (answer or drop) received
    out_of_order: int = 0  # results with a frame_id below an earlier result's


def _camera_streams(options: OpenLoopOptions) -> list[list[int]]:
    if options.streams == "camera":
        return [[k] for k in range(options.cameras)]
    count = 1 if options.streams == "gateway" else int(options.streams)
    if not 1 <= count <= options.cameras:
        raise ValueError(f"streams must be 'camera', 'gateway' or 1..{options.cameras}, not {options.streams}")
    return [list(range(s, options.cameras, count)) for s in range(count)]


async def _open_loop(address: str, frames: Frames, options: OpenLoopOptions, progress: Progress,
                     rss: RssSampler) -> dict[str, Any]:
    interval = 1.0 / options.fps
    cameras = [_Camera(k, f"cam-{k:02d}", k * len(frames.jpegs) // options.cameras) for k in range(options.cameras)]
    # Counted figures only cover frames scheduled inside the window.
    offered = sent = gateway_skipped = 0
    latencies_ms: list[float] = []
    ages_ms: list[float] = []  # client clock: answer time - capture_time_us
    server_ages_ms: list[float] = []  # Timings.frame_age_us
    late_ms: list[float] = []  # send time - scheduled time
    drops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    drops_per_camera: dict[str, Counter[str]] = {c.name: Counter() for c in cameras}
    batch_sizes: Counter[int] = Counter()
    stream_failures: list[str] = []
    total_results = 0

    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = detector_pb2_grpc.DetectorStub(channel)
        await stub.ListModels(detector_pb2.ListModelsRequest(), timeout=10.0)  # connect first
        start = time.perf_counter() + 0.2
        window_start = start + options.warmup_s
        end = window_start + options.duration_s

        async def write_stream(call: Any, members: list[int]) -> None:
            nonlocal offered, sent, gateway_skipped
            rng = random.Random(options.seed * 1000 + members[0])

            def gap() -> float:
                return rng.expovariate(options.fps) if options.arrivals == "poisson" else interval

            heap: list[tuple[float, int]] = []
            for k in members:
                first = start + (k * interval / options.cameras if options.arrivals == "fixed" else gap())
                heapq.heappush(heap, (first, k))
            while heap:
                scheduled, k = heapq.heappop(heap)
                if scheduled >= end:
                    continue
                camera = cameras[k]
                following = scheduled + gap()
                heapq.heappush(heap, (following, k))
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                counted = scheduled >= window_start
                offered += counted
                now = time.perf_counter()
                if following <= now:
                    # The stream was held back (gRPC flow control or a busy client) past this
                    # camera's next frame: like a gateway, send only the newest.
                    gateway_skipped += counted
                    continue
                frame_id = camera.next_frame_id
                camera.next_frame_id += 1
                jpeg = frames.jpegs[(camera.first_frame + frame_id) % len(frames.jpegs)]
                capture_us = time.time_ns() // 1000
                request = detector_pb2.DetectRequest(
                    model=options.model, frame=detector_pb2.Frame(encoded=jpeg), camera_id=camera.name,
                    frame_id=frame_id, capture_time_us=capture_us, max_frame_age_ms=options.max_frame_age_ms)
                camera.pending[frame_id] = (now, capture_us, counted)
                if counted:
                    sent += 1
                    late_ms.append((now - scheduled) * 1000.0)
                await call.write(request)
            await call.done_writing()

        async def read_stream(call: Any) -> None:
            nonlocal total_results
            by_name = {c.name: c for c in cameras}
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                now = time.perf_counter()
                now_us = time.time_ns() // 1000
                total_results += 1
                camera = by_name.get(response.camera_id)
                entry = camera.pending.pop(response.frame_id, None) if camera is not None else None
                if entry is None:
                    errors["UNKNOWN_FRAME"] += 1
                    continue
                if response.frame_id < camera.last_result_id:
                    camera.out_of_order += 1
                camera.last_result_id = max(camera.last_result_id, response.frame_id)
                sent_at, capture_us, counted = entry
                if not counted:
                    continue
                if response.dropped:
                    reason = drop_reason_name(response.dropped) or "?"
                    drops[reason] += 1
                    drops_per_camera[camera.name][reason] += 1
                elif response.HasField("error") and response.error.code != 0:
                    errors[grpc.StatusCode.UNKNOWN.name if response.error.code > 16 else
                           _code_name(response.error.code)] += 1
                else:
                    camera.answered += 1
                    latencies_ms.append((now - sent_at) * 1000.0)
                    ages_ms.append((now_us - capture_us) / 1000.0)
                    if response.timings.frame_age_us:
                        server_ages_ms.append(response.timings.frame_age_us / 1000.0)
                    batch_sizes[response.batch_size] += 1

        async def run_stream(members: list[int]) -> None:
            call = stub.DetectStream(timeout=options.warmup_s + options.duration_s + options.drain_s + 30.0)
            reader = asyncio.ensure_future(read_stream(call))
            try:
                await write_stream(call, members)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the call ended early; the reader says how
            try:
                await asyncio.wait_for(reader, timeout=max(0.0, end - time.perf_counter()) + options.drain_s)
            except asyncio.TimeoutError:
                call.cancel()
                stream_failures.append(f"stream not ended {options.drain_s:g} s after its last frame")
            except grpc.aio.AioRpcError as error:
                stream_failures.append(f"{error.code().name}: {error.details()}")

        last = {"t": time.perf_counter(), "answered": 0, "offered": 0}

        def tick() -> None:
            now = time.perf_counter()
            if now < window_start:
                progress.show(f"open {options.cameras} cameras x {options.fps:g} fps: warm-up")
                return
            answered = len(latencies_ms)
            span = max(1e-9, now - last["t"])
            answered_rate = (answered - last["answered"]) / span
            offered_rate = (offered - last["offered"]) / span
            last.update(t=now, answered=answered, offered=offered)
            recent = sorted(ages_ms[-200:])
            progress.show(
                f"open {min(now, end) - window_start:4.1f}/{options.duration_s:.0f} s  offered {offered_rate:6.1f}/s  "
                f"answered {answered_rate:6.1f}/s  dropped {sum(drops.values())}  "
                f"age p50 {percentile(recent, 0.5):6.1f} ms{rss.progress_text()}")

        cpu, machine = await _measured([run_stream(members) for members in _camera_streams(options)], tick,
                                       progress, rss.pid)

    window = options.duration_s
    lost = sum(1 for c in cameras for (_, _, counted) in c.pending.values() if counted)
    answered_per_camera = {c.name: c.answered for c in cameras}
    shares = list(answered_per_camera.values())
    good = sum(1 for value in latencies_ms if value <= options.objective_ms)
    return {
        "options": asdict(options),
        "frame_bytes_mean": frames.mean_bytes,
        "window_s": window,
        "offered": offered,
        "offered_fps": offered / window,
        "sent": sent,
        "sent_fps": sent / window,
        "gateway_skipped": gateway_skipped,
        "answered": len(latencies_ms),
        "answered_fps": len(latencies_ms) / window,
        "goodput_fps": good / window,
        "objective_ms": options.objective_ms,
        "latency": summarize_ms(latencies_ms),
        "frame_age": summarize_ms(ages_ms),
        "server_frame_age": summarize_ms(server_ages_ms),
        "over_max_age": (sum(1 for a in ages_ms if a > options.max_frame_age_ms)
                         if options.max_frame_age_ms else 0),
        "drops": dict(drops),
        "dropped": sum(drops.values()),
        "errors": dict(errors),
        "lost": lost,
        "out_of_order": sum(c.out_of_order for c in cameras),
        "stream_failures": stream_failures,
        "answered_per_camera": answered_per_camera,
        "drops_per_camera": {name: dict(c) for name, c in drops_per_camera.items()},
        "camera_share_min_max": (min(shares) / max(shares)) if shares and max(shares) else 0.0,
        "batch_sizes": {str(k): v for k, v in sorted(batch_sizes.items())},
        "send_lateness": summarize_ms(late_ms),
        "client_cpu_cores": cpu.cores,
        "client_cpu_ms_per_frame": 1000.0 * cpu.cpu_s / max(1, sent),
        "cpu": machine.figures,
    }


def _code_name(number: int) -> str:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.name
    return "UNKNOWN"


def run_open(address: str, frames: Frames, options: OpenLoopOptions, progress: Optional[Progress] = None,
             server_pid: Optional[int] = None) -> dict[str, Any]:
    """N cameras x fps over DetectStream for options.duration_s (after a warm-up)."""
    with RssSampler(server_pid) as rss:
        result = asyncio.run(_open_loop(address, frames, options, progress or Progress("off"), rss))
    result["server_rss"] = rss.summary()
    return result


# -- in-process baseline --------------------------------------------------------


def default_lowbit_binary() -> str:
    """$LOWBIT_BIN, <repo>/build/engine/lowbit, or `lowbit` on PATH."""
    configured = os.environ.get("LOWBIT_BIN")
    if configured:
        return configured
    built = REPO / "build" / "engine" / "lowbit"
    if built.is_file():
        return str(built)
    return shutil.which("lowbit") or str(built)


def run_in_process(lowbit_binary: str, model_dir: Path, frames: Frames, runs: int = 100, warmup: int = 5,
                   threads: int = 1) -> dict[str, Any]:
    """`lowbit bench MODEL_DIR --frames DIR --json` over the frames: the whole per-frame path, no server."""
    with tempfile.TemporaryDirectory(prefix="lowbit-loadgen-") as tmp:
        directory = frames.write(Path(tmp) / "frames")
        command = [lowbit_binary, "bench", str(model_dir), "--frames", str(directory), "--runs", str(runs),
                   "--warmup", str(warmup), "--threads", str(threads), "--json"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise SystemExit(f"lowbit-loadgen: no lowbit binary at {lowbit_binary} (build it: ninja -C build lowbit; "
                             "or pass --lowbit-bin)") from None
    if done.returncode != 0:
        raise SystemExit(f"lowbit-loadgen: {' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


# -- reports ------------------------------------------------------------------


def _ms(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def _cores(cpu: dict[str, float]) -> str:
    if "server_cores" not in cpu:
        return "-"
    return f"{cpu['server_cores']:.2f} / {cpu['other_cores']:.2f}"


def format_closed(levels: list[dict[str, Any]]) -> str:
    lines = ["closed loop (unary Detect, N in flight)",
             f"  {'N':>3} {'fps':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'errors':>7}  "
             f"{'client cpu/call':>15}  {'cores: server/other':>19}  batches"]
    for level in levels:
        errors = sum(level["errors"].values())
        lines.append(
            f"  {level['concurrency']:>3} {level['throughput_fps']:>7.1f} {_ms(level['p50_ms']):>8} "
            f"{_ms(level['p90_ms']):>8} {_ms(level['p99_ms']):>8} {_ms(level['p99.9_ms']):>8} {errors:>7}  "
            f"{level['client_cpu_ms_per_call']:>12.2f} ms  {_cores(level.get('cpu', {})):>19}  "
            f"{level['batch_sizes']}")
    return "\n".join(lines) + "\n  (latency in ms)"


def format_open(result: dict[str, Any]) -> str:
    o = result["options"]
    lat, age = result["latency"], result["frame_age"]
    rss = result.get("server_rss")
    lines = [
        f"open loop: {o['cameras']} cameras x {o['fps']:g} fps ({o['arrivals']} arrivals, streams: {o['streams']}, "
        f"max_frame_age_ms {o['max_frame_age_ms'] or 'none'}), {result['window_s']:g} s after "
        f"{o['warmup_s']:g} s warm-up, {result['frame_bytes_mean'] // 1024} KB JPEGs",
        f"  offered   {result['offered_fps']:7.1f} fps   sent {result['sent_fps']:.1f} fps "
        f"(held back at the client: {result['gateway_skipped']})",
        f"  answered  {result['answered_fps']:7.1f} fps   goodput within {result['objective_ms']:g} ms: "
        f"{result['goodput_fps']:.1f} fps",
        f"  latency ms    p50 {_ms(lat['p50_ms'])}  p90 {_ms(lat['p90_ms'])}  p99 {_ms(lat['p99_ms'])}  "
        f"p99.9 {_ms(lat['p99.9_ms'])}  max {_ms(lat['max_ms'])}",
        f"  frame age ms  p50 {_ms(age['p50_ms'])}  p99 {_ms(age['p99_ms'])}  max {_ms(age['max_ms'])}  "
        f"(server-reported p99 {_ms(result['server_frame_age']['p99_ms'])}); "
        f"answered over max age: {result['over_max_age']}",
        f"  dropped   {result['dropped']} {result['drops'] or ''}  errors {result['errors'] or 0}  "
        f"never answered {result['lost']}  out of order {result['out_of_order']}",
        f"  per-camera answers min/max {result['camera_share_min_max']:.2f} "
        f"({min(result['answered_per_camera'].values(), default=0)}..{max(result['answered_per_camera'].values(), default=0)})"
        f"  batches {result['batch_sizes']}",
        f"  client: {result['client_cpu_cores'] * 100:.0f}% of a core, {result['client_cpu_ms_per_frame']:.2f} ms CPU "
        f"per frame, send lateness p99 {_ms(result['send_lateness']['p99_ms'])} ms; cores busy: server/other "
        f"{_cores(result.get('cpu', {}))}",
    ]
    if rss:
        lines.append(f"  server RSS MB: start {rss['start_mb']:.0f}  peak {rss['peak_mb']:.0f}  end {rss['end_mb']:.0f}")
    if result["stream_failures"]:
        lines.append(f"  stream failures: {result['stream_failures']}")
    return "\n".join(lines)


def format_in_process(result: dict[str, Any]) -> str:
    stages = result["stages_p50_ms"]
    return (f"in-process ({result['frames']} frames {result['image_width']}x{result['image_height']}, "
            f"{result['threads']} thread, {result['runs']} runs): p50 {result['p50_ms']:.1f} ms  "
            f"p10 {result.get('p10_ms', math.nan):.1f} ms  "
            f"p99 {result['p99_ms']:.1f} ms  (decode {stages['decode']:.1f}, pre-process {stages['preprocess']:.1f}, "
            f"inference {stages['inference']:.1f}, post-process {stages['postprocess']:.1f})")


# -- command line ---------------------------------------------------------------


def _concurrency_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"concurrency levels must be >= 1, got {text!r}")
    return values


def _streams(text: str) -> str:
    if text in ("camera", "gateway") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"--streams takes camera, gateway or a number >= 1, not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=os.environ.get("LOWBIT_ADDRESS", DEFAULT_ADDRESS),
                        help="server HOST:PORT (default: $LOWBIT_ADDRESS or %(default)s)")
    common.add_argument("--model", default="", help="model name (default: the server's default model)")
    common.add_argument("--video", type=Path, default=DEFAULT_VIDEO,
                        help="video (decoded with OpenCV) or directory of JPEG files (default %(default)s)")
    common.add_argument("--frame-count", type=int, default=100, help="distinct frames prepared (default %(default)s)")
    common.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the frames (default %(default)s)")
    common.add_argument("--objective-ms", type=float, default=500.0,
                        help="latency objective: goodput counts answers within it (default %(default)s)")
    common.add_argument("--server-pid", type=int, help="lowbitd's pid: its resident memory is sampled (peak)")
    common.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    common.add_argument("--progress", choices=("auto", "tty", "lines", "off"), default="auto",
                        help="progress on stderr: one rewritten line on a TTY, a line every 5 s otherwise (auto)")
    common.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default %(default)s)")
    common.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default %(default)s)")
    in_process = argparse.ArgumentParser(add_help=False)
    in_process.add_argument("--lowbit-bin", default=default_lowbit_binary(),
                            help="the lowbit CLI (default $LOWBIT_BIN or %(default)s)")
    in_process.add_argument("--model-repo", type=Path, default=REPO / "models",
                            help="model repository, for the in-process run (default %(default)s)")
    in_process.add_argument("--model-dir", type=Path,
                            help="repository entry for the in-process run (default MODEL_REPO/MODEL)")
    in_process.add_argument("--in-process-runs", type=int, default=100, help="timed frames (default %(default)s)")

    parser = argparse.ArgumentParser(prog="lowbit-loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    closed = commands.add_parser("closed", parents=[common, in_process], help="concurrency sweep of unary Detects")
    closed.add_argument("--concurrency", type=_concurrency_list, default=[1, 2, 4, 8],
                        help="in-flight calls per level, comma-separated (default 1,2,4,8)")
    closed.add_argument("--timeout", type=float, default=30.0, help="deadline per call, s (default %(default)s)")
    closed.add_argument("--in-process", action="store_true",
                        help="also run the engine in-process on the same frames; print the server's overhead")
    opened = commands.add_parser("open", parents=[common], help="N cameras x fps over DetectStream")
    opened.add_argument("--cameras", type=int, default=16, help="cameras (default %(default)s)")
    opened.add_argument("--fps", type=float, default=10.0, help="frames per second per camera (default %(default)s)")
    opened.add_argument("--arrivals", choices=("fixed", "poisson"), default="fixed",
                        help="fixed intervals, cameras evenly phased; or Poisson (default %(default)s)")
    opened.add_argument("--streams", type=_streams, default="camera",
                        help="camera: one stream per camera; gateway: one for all; N: N streams (default camera)")
    opened.add_argument("--max-frame-age-ms", type=int, default=0, help="frame age limit sent with each frame (0: none)")
    opened.add_argument("--drain", type=float, default=10.0, help="s to wait for results after the last frame")
    opened.add_argument("--seed", type=int, default=1, help="Poisson seed (default %(default)s)")
    commands.add_parser("in-process", parents=[common, in_process],
                        help="the engine alone on the same frames (lowbit bench --frames)")
    return parser


def _model_dir(args: argparse.Namespace) -> Path:
    if args.model_dir:
        return args.model_dir
    model = args.model
    if not model:
        with grpc.insecure_channel(args.address) as channel:
            try:
                reply = detector_pb2_grpc.DetectorStub(channel).ListModels(detector_pb2.ListModelsRequest(), timeout=10)
                model = reply.default_model
            except grpc.RpcError:
                model = "nanodet-g"
    return args.model_repo / model


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress(args.progress)
    frames = load_frames(args.video, args.frame_count, args.jpeg_quality)
    report: dict[str, Any] = {"frames": {"source": frames.source, "count": len(frames.jpegs), "width": frames.width,
                                         "height": frames.height, "mean_bytes": frames.mean_bytes}}
    text: list[str] = [f"frames: {len(frames.jpegs)} x {frames.width}x{frames.height} JPEG "
                       f"({frames.mean_bytes // 1024} KB mean) from {frames.source}"]
    try:
        if args.command in ("in-process",) or (args.command == "closed" and args.in_process):
            # Before the load: the engine alone must not compete with the server for the cores.
            report["in_process"] = run_in_process(args.lowbit_bin, _model_dir(args), frames, args.in_process_runs)
            text.append(format_in_process(report["in_process"]))
        if args.command == "closed":
            report["closed"] = run_closed(args.address, frames, args.concurrency, args.duration, args.warmup,
                                          args.model, args.timeout, progress, args.server_pid)
            text.append(format_closed(report["closed"]))
            if "in_process" in report and report["closed"][0]["concurrency"] == 1:
                overhead = report["closed"][0]["p50_ms"] - report["in_process"]["p50_ms"]
                report["server_overhead_ms"] = overhead
                report["transport_floor"] = run_transport_floor(args.address, frames.mean_bytes)
                text.append(f"server overhead (gRPC p50 at concurrency 1 - in-process p50): {overhead:.2f} ms; "
                            f"transport floor (a {frames.mean_bytes // 1024} KB non-image refused at once): "
                            f"p50 {report['transport_floor']['p50_ms']:.2f} ms")
        elif args.command == "open":
            options = OpenLoopOptions(cameras=args.cameras, fps=args.fps, duration_s=args.duration,
                                      warmup_s=args.warmup, arrivals=args.arrivals, streams=args.streams,
                                      max_frame_age_ms=args.max_frame_age_ms, objective_ms=args.objective_ms,
                                      drain_s=args.drain, model=args.model, seed=args.seed)
            report["open"] = run_open(args.address, frames, options, progress, args.server_pid)
            text.append(format_open(report["open"]))
    except grpc.RpcError as error:
        print(f"lowbit-loadgen: {error.code().name}: {error.details()} (is lowbitd serving at {args.address}?)",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
