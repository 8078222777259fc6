#!/usr/bin/env python3
"""The serving load report: lowbitd under camera load, batching, and its own overhead, from one command.

    .venv/bin/python bench/serving_load.py [--server build/server/lowbitd] [--lowbit build/engine/lowbit]
        [--model-repo models] [--model nanodet-g] [--quantized-model nanodet-g-w8a8]
        [--quick] [--json FILE] [--log-dir DIR]

Every scenario starts its own lowbitd (gRPC on a free 127.0.0.1 port, no
metrics endpoint) on a temporary repository holding only the model under
test (a symlink to MODEL_REPO/MODEL), sends it real frames (the first 100 of
data/images/vtest.avi, 768x576, as JPEG) with lowbit-loadgen's closed and open
loops, and SIGTERMs it (exit 0 expected). Server flags common to all:
--workers W --threads-per-worker 1 (W = --workers, default 2 = the cores).

(c) Server overhead. `lowbit bench --frames` on the same JPEG files with no
    server running (decode + pre-process + inference + post-process, one
    thread, p50), then a lowbitd with --max-batch 1 (no batching wait) and one
    unary Detect in flight: overhead = gRPC p50 - in-process p50. Target <= 1 ms.
    Its bound, in the same rounds: lowbit_grpc_floor (bench/serving), a
    Detector that only busy-computes the in-process p50 on its gRPC thread;
    its p50 minus that compute is what gRPC, this client and the machine's
    wake-ups cost a call of that length, which no server goes under.
(b) Batching, per model (MODEL FP32 and QUANTIZED_MODEL): closed-loop sweeps
    (concurrency 2, 4, 8, 16; each level twice on each server, alternating,
    the repeat with the least other load kept) against --max-batch 1, and against
    --max-batch B --latency-objective-ms OBJECTIVE; for each, the highest
    throughput whose p99 stays under --p99-bound-ms. Target: batched >= 1.3x
    batch 1. The engine's own ratio (`lowbit bench --batch B` vs `--batch 1`,
    Session::Run only) is printed beside it: the server cannot batch better
    than the engine does.
(a) Cameras, MODEL, batching on with --latency-objective-ms CAMERA_OBJECTIVE
    (default: the cameras' 500 ms age limit, which the server's deadline check
    enforces per frame): capacity = the closed-loop throughput at saturation (concurrency
    2*W*B), measured before and after (the higher counts); between them 16
    cameras x 10 fps over DetectStream (one stream per camera),
    max_frame_age_ms 500, for 30 s.
    Targets: every answered frame younger than 500 ms when its answer arrives;
    each camera's answers within 20% of the others' (min/max >= 0.8); answered
    throughput >= 90% of capacity; server RSS bounded (peak <= --rss-limit-mb
    and the last third's peak at most 5% + 16 MB over the first third's).

--quick (CI, test_loadgen.py): a few seconds per scenario, MODEL only, fewer
cameras; only sanity is enforced (every scenario answered frames, no frame left
unanswered, the servers exited 0). Exit status: 0 when every enforced check
passes, 1 otherwise; targets NOT MET in a full run are reported, and make the
exit status 1 only with --strict.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "clients" / "python"))

from lowbit import loadgen  # noqa: E402
from lowbit.protos import detector_pb2, detector_pb2_grpc  # noqa: E402

SERVER_START_TIMEOUT_S = 120.0
SERVER_STOP_TIMEOUT_S = 30.0


# -- host ----------------------------------------------------------------------


def host_info() -> dict[str, Any]:
    """CPU model, the ISA flags that matter for the kernels, cores, load."""
    model, flags = platform.processor() or "unknown", set()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"^Model name:\s*(.+)$", text, re.MULTILINE)
        if found:
            model = found.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [name for name in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
           if name in flags]
    return {"cpu_model": model, "isa": isa, "cores": os.cpu_count(), "load_average": os.getloadavg()}


# -- servers ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_flags(binary: str) -> set[str]:
    """The --flags this lowbitd accepts (from --help)."""
    done = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"^\s+(--[a-z0-9-]+)", done.stdout + done.stderr, re.MULTILINE))


@dataclass
class Server:
    """One lowbitd on a repository holding only `model`."""

    binary: str
    model_repo: Path
    model: str
    flags: dict[str, Any]
    log_path: Path
    known_flags: set[str] = field(default_factory=set)
    address: str = ""
    process: Optional[subprocess.Popen] = None
    skipped_flags: list[str] = field(default_factory=list)
    exit_code: Optional[int] = None
    _repo: Optional[tempfile.TemporaryDirectory] = None

    def __enter__(self) -> "Server":
        source = self.model_repo / self.model
        if not (source / "config.pbtxt").is_file():
            raise SystemExit(f"serving_load: no model {source}/config.pbtxt (deploy/models/fetch-models.sh makes it)")
        self._repo = tempfile.TemporaryDirectory(prefix="lowbit-serving-load-")
        (Path(self._repo.name) / self.model).symlink_to(source.resolve())
        self.address = f"127.0.0.1:{free_port()}"
        command = [self.binary, "--model-repo", self._repo.name, "--default-model", self.model,
                   "--address", self.address, "--metrics-address", "", "--log-level", "warn"]
        for name, value in self.flags.items():
            if self.known_flags and name not in self.known_flags:
                self.skipped_flags.append(name)  # an older lowbitd: run without it, and say so
                continue
            command += [name, str(value)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            log.write((shlex.join(command) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self._wait_ready()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        last = "no answer"
        with grpc.insecure_channel(self.address) as channel:
            stub = detector_pb2_grpc.DetectorStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"serving_load: lowbitd exited with {self.process.returncode} at start-up; "
                                     f"log {self.log_path}:\n{self.log_tail()}")
                try:
                    reply = stub.ListModels(detector_pb2.ListModelsRequest(), timeout=2.0)
                    # state 0: a lowbitd from before model states (every listed model serves).
                    if any(m.name == self.model and m.state in (0, detector_pb2.READY) for m in reply.models):
                        return
                    last = f"models {[(m.name, m.state) for m in reply.models]}"
                except grpc.RpcError as error:
                    last = f"{error.code().name}: {error.details()}"
                time.sleep(0.2)
        self.process.kill()
        raise SystemExit(f"serving_load: lowbitd not ready after {SERVER_START_TIMEOUT_S:.0f} s ({last}); "
                         f"log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                self.exit_code = -9
        elif self.process is not None:
            self.exit_code = self.process.returncode
        if self._repo is not None:
            self._repo.cleanup()


@dataclass
class FloorServer:
    """lowbit_grpc_floor (bench/serving/grpc_floor.cc): a Detector whose Detect only busy-computes
    `compute_us` on the gRPC thread. Its client p50 minus compute_us is the least any gRPC server
    costs per call of that length on this machine, with this client."""

    binary: str
    compute_us: int
    address: str = ""
    process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "FloorServer":
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.process = subprocess.Popen([self.binary, "--port", str(port), "--compute-us", str(self.compute_us)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline()  # "listening on ..." once the port is bound
        if "listening" not in line:
            self.process.kill()
            raise SystemExit(f"serving_load: {self.binary} did not start: {line.strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=SERVER_STOP_TIMEOUT_S)


# -- checks ------------------------------------------------------------------------


@dataclass
class Check:
    scenario: str
    name: str
    target: str
    measured: str
    passed: bool
    #: Enforced checks decide the exit status; targets of a full run are reported.
    enforced: bool = False


def best_under_bound(levels: list[dict[str, Any]], p99_bound_ms: float) -> Optional[dict[str, Any]]:
    """The level with the highest throughput whose p99 is under the bound."""
    fitting = [level for level in levels if level["answered"] and level["p99_ms"] <= p99_bound_ms]
    return max(fitting, key=lambda level: level["throughput_fps"]) if fitting else None


def engine_batch_ratio(lowbit_binary: str, model_dir: Path, batch: int, runs: int) -> Optional[dict[str, float]]:
    """Session::Run throughput at `batch` over batch 1 (`lowbit bench --batch`), one thread."""
    rates = {}
    for size in (1, batch):
        done = subprocess.run([lowbit_binary, "bench", str(model_dir), "--batch", str(size), "--runs", str(runs),
                               "--warmup", "2", "--image", str(REPO / "data" / "images" / "dog.jpg"), "--json"],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return None
        rates[size] = 1000.0 * size / json.loads(done.stdout)["median_ms"]
    return {"batch1_fps": rates[1], f"batch{batch}_fps": rates[batch], "ratio": rates[batch] / rates[1]}


def peer_batch_ratio(model_dir: Path, batch: int, runs: int) -> Optional[dict[str, float]]:
    """ONNX Runtime's throughput at `batch` over batch 1 on the same ONNX file, one thread, measured in the
    same run: the peer's batch gain on this CPU, beside the engine's. None if the model is not ONNX or
    onnxruntime is missing."""
    model = model_dir / "model.onnx"
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return None
    if not model.is_file():
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    if not all(isinstance(d, int) for d in first.shape[1:]):
        return None
    # Three alternating rounds; per size the fastest round's median counts (other load only slows).
    rates = {1: 0.0, batch: 0.0}
    inputs = {size: np.random.default_rng(0).random((size, *first.shape[1:]), dtype=np.float32)
              for size in rates}
    for _ in range(3):
        for size, x in inputs.items():
            session.run(None, {first.name: x})
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, {first.name: x})
                times.append(time.perf_counter() - start)
            rates[size] = max(rates[size], size / sorted(times)[len(times) // 2])
    return {"batch1_fps": rates[1], f"batch{batch}_fps": rates[batch], "ratio": rates[batch] / rates[1]}


# -- scenarios -------------------------------------------------------------------------


@dataclass
class Settings:
    server: str
    floor: Optional[str]
    lowbit: str
    model_repo: Path
    model: str
    quantized_model: Optional[str]
    workers: int
    max_batch: int
    objective_ms: int
    camera_objective_ms: int
    p99_bound_ms: float
    max_frame_age_ms: int
    cameras: int
    fps: float
    camera_duration_s: float
    closed_duration_s: float
    warmup_s: float
    overhead_rounds: int
    overhead_frames: int
    overhead_duration_s: float
    batch_repeats: int
    sweep: list[int]
    rss_limit_mb: float
    log_dir: Path
    quick: bool
    known_flags: set[str] = field(default_factory=set)

    def server_flags(self, batched: bool, objective_ms: Optional[int] = None) -> dict[str, Any]:
        flags: dict[str, Any] = {"--workers": self.workers, "--threads-per-worker": 1}
        if batched:
            flags.update({"--max-batch": self.max_batch,
                          "--latency-objective-ms": objective_ms if objective_ms is not None else self.objective_ms})
        else:
            flags.update({"--max-batch": 1, "--batch-timeout-us": 0})
        return flags


def say(text: str) -> None:
    print(f"[serving_load {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def scenario_overhead(s: Settings, frames: loadgen.Frames, progress: loadgen.Progress,
                      checks: list[Check]) -> dict[str, Any]:
    """Short rounds of (in-process run, gRPC run at concurrency 1), the server idle during the
    in-process run, so a load change on the shared machine shifts both halves of a round alike.
    The overhead is the median difference over the quieter half of the rounds (by the cores other
    processes took during the round). The p10 difference is shown beside it (the low percentiles
    are the least disturbed by other processes)."""
    say(f"(c) {s.overhead_rounds} rounds of: lowbit bench --frames ({s.overhead_frames} frames), then "
        f"lowbitd --max-batch 1 with one Detect in flight ({s.overhead_duration_s:g} s)")
    rounds = []
    with Server(s.server, s.model_repo, s.model, s.server_flags(batched=False), s.log_dir / "lowbitd-overhead.log",
                s.known_flags) as server:
        for _ in range(s.overhead_rounds):
            with loadgen.MachineMeter(None) as machine:
                in_process = loadgen.run_in_process(s.lowbit, s.model_repo / s.model, frames, s.overhead_frames)
            closed = loadgen.run_closed(server.address, frames, [1], s.overhead_duration_s, 0.5,
                                        progress=progress, server_pid=server.pid)[0]
            round_ = {"in_process": in_process, "closed": closed,
                      "overhead_ms": closed["p50_ms"] - in_process["p50_ms"],
                      "overhead_p10_ms": closed["p10_ms"] - in_process.get("p10_ms", math.nan),
                      "other_cores": max(machine.figures.get("other_cores", 0.0),
                                         closed["cpu"].get("other_cores", 0.0))}
            if s.floor:
                # The same call length on a server that does nothing else: what gRPC, the
                # kernel and this machine's wake-ups cost, lowbit aside.
                compute_us = int(round(in_process["p50_ms"] * 1000.0))
                with FloorServer(s.floor, compute_us) as floor_server:
                    floor_closed = loadgen.run_closed(floor_server.address, frames, [1], s.overhead_duration_s, 0.5,
                                                      progress=progress, server_pid=floor_server.process.pid)[0]
                round_["floor"] = floor_closed
                round_["floor_ms"] = floor_closed["p50_ms"] - compute_us / 1000.0
                round_["other_cores"] = max(round_["other_cores"], floor_closed["cpu"].get("other_cores", 0.0))
            rounds.append(round_)
        floor = loadgen.run_transport_floor(server.address, frames.mean_bytes, 50 if s.quick else 300)
    quieter = sorted(rounds, key=lambda r: r["other_cores"])[:(len(rounds) + 1) // 2]
    for round_ in quieter:
        round_["counted"] = True
    middle = sorted(quieter, key=lambda r: r["overhead_ms"])[len(quieter) // 2]
    overhead = middle["overhead_ms"]
    spread = ", ".join(f"{r['overhead_ms']:.2f}" for r in quieter)
    p10 = sorted(r["overhead_p10_ms"] for r in quieter)[len(quieter) // 2]
    checks.append(Check("c", "server overhead (gRPC p50 - in-process p50)", "<= 1 ms",
                        f"{overhead:.2f} ms ({middle['closed']['p50_ms']:.1f} - {middle['in_process']['p50_ms']:.1f}; "
                        f"{len(quieter)} quietest rounds {spread}; p10 difference {p10:.2f})", overhead <= 1.0))
    grpc_floor = None
    if s.floor:
        grpc_floor = sorted(r["floor_ms"] for r in quieter)[len(quieter) // 2]
        beyond = sorted(r["overhead_ms"] - r["floor_ms"] for r in quieter)[len(quieter) // 2]
        checks.append(Check("c", "bound: a gRPC server doing only the compute", "(the least any server costs)",
                            f"{grpc_floor:.2f} ms (same call length on lowbit_grpc_floor, same client, "
                            f"{len(quieter)} quietest rounds)", True))
        checks.append(Check("c", "lowbitd's overhead beyond that bound", "<= 1 ms",
                            f"{beyond:.2f} ms (median of the quietest rounds' differences)", beyond <= 1.0))
    answered = sum(r["closed"]["answered"] for r in rounds)
    errors = sum(sum(r["closed"]["errors"].values()) for r in rounds)
    checks.append(Check("c", "sanity: answers at concurrency 1", "> 0, no errors",
                        f"{answered} answered, {errors} errors", answered > 0 and errors == 0, enforced=True))
    checks.append(Check("c", "sanity: lowbitd exit on SIGTERM", "0", str(server.exit_code), server.exit_code == 0,
                        enforced=True))
    return {"rounds": rounds, "in_process": middle["in_process"], "closed": middle["closed"],
            "server_overhead_ms": overhead, "server_overhead_p10_ms": p10, "transport_floor": floor,
            "grpc_floor_ms": grpc_floor, "server_flags_skipped": server.skipped_flags}


def scenario_batching(s: Settings, model: str, frames: loadgen.Frames, progress: loadgen.Progress,
                      checks: list[Check]) -> dict[str, Any]:
    """Both servers run at once (an idle lowbitd costs no CPU); each concurrency level is measured on
    one and then the other, `batch_repeats` times, so a load change on the shared machine hits both
    sides alike; of the repeats, the one during which other processes took the least CPU counts."""
    result: dict[str, Any] = {"model": model, "p99_bound_ms": s.p99_bound_ms}
    say(f"(b) {model}: lowbitd --max-batch 1 and lowbitd --max-batch {s.max_batch} --latency-objective-ms "
        f"{s.objective_ms}, closed loop {s.sweep}, alternating")
    with Server(s.server, s.model_repo, model, s.server_flags(False), s.log_dir / f"lowbitd-batch-{model}-off.log",
                s.known_flags) as single, \
         Server(s.server, s.model_repo, model, s.server_flags(True), s.log_dir / f"lowbitd-batch-{model}-on.log",
                s.known_flags) as batching:
        levels: dict[str, list[dict[str, Any]]] = {"batch1": [], "batched": []}
        for level in s.sweep:
            repeats: dict[str, list[dict[str, Any]]] = {"batch1": [], "batched": []}
            for _ in range(s.batch_repeats):
                for key, server in (("batch1", single), ("batched", batching)):
                    repeats[key] += loadgen.run_closed(server.address, frames, [level], s.closed_duration_s,
                                                       s.warmup_s, model=model, progress=progress,
                                                       server_pid=server.pid)
            for key, runs in repeats.items():
                levels[key].append(min(runs, key=lambda run: run["cpu"].get("other_cores", 0.0)))
    for key, server in (("batch1", single), ("batched", batching)):
        result[key] = {"levels": levels[key], "best": best_under_bound(levels[key], s.p99_bound_ms),
                       "server_exit": server.exit_code, "server_flags_skipped": server.skipped_flags}
        answered = sum(level["answered"] for level in levels[key])
        checks.append(Check("b", f"sanity: {model} {key} answers, exit 0", "> 0 answered, exit 0",
                            f"{answered} answered, exit {server.exit_code}",
                            answered > 0 and server.exit_code == 0, enforced=True))
    one, many = result["batch1"]["best"], result["batched"]["best"]
    ratio = (many["throughput_fps"] / one["throughput_fps"]) if one and many else None
    result["ratio"] = ratio
    result["engine"] = None if s.quick else engine_batch_ratio(s.lowbit, s.model_repo / model, s.max_batch, 15)
    result["peer"] = None if s.quick else peer_batch_ratio(s.model_repo / model, s.max_batch, 15)
    engine = f", engine alone {result['engine']['ratio']:.2f}x" if result["engine"] else ""
    if result["peer"]:
        engine += f", ONNX Runtime alone {result['peer']['ratio']:.2f}x"
    measured = (f"{ratio:.2f}x ({many['throughput_fps']:.1f} fps at c={many['concurrency']} vs "
                f"{one['throughput_fps']:.1f} at c={one['concurrency']}){engine}" if ratio is not None
                else "no level under the bound")
    checks.append(Check("b", f"{model}: batched / batch-1 throughput at p99 <= {s.p99_bound_ms:g} ms", ">= 1.3x",
                        measured, ratio is not None and ratio >= 1.3))
    return result


def scenario_cameras(s: Settings, frames: loadgen.Frames, progress: loadgen.Progress,
                     checks: list[Check]) -> dict[str, Any]:
    saturation = [2 * s.workers * s.max_batch]
    say(f"(a) {s.model}: lowbitd batching on (objective {s.camera_objective_ms} ms); capacity by closed loop at "
        f"{saturation}, then "
        f"{s.cameras} cameras x {s.fps:g} fps for {s.camera_duration_s:.0f} s")
    options = loadgen.OpenLoopOptions(cameras=s.cameras, fps=s.fps, duration_s=s.camera_duration_s,
                                      warmup_s=s.warmup_s, max_frame_age_ms=s.max_frame_age_ms,
                                      objective_ms=float(s.max_frame_age_ms), model=s.model,
                                      drain_s=5.0)
    with Server(s.server, s.model_repo, s.model, s.server_flags(True, s.camera_objective_ms),
                s.log_dir / "lowbitd-cameras.log", s.known_flags) as server:
        capacity_levels = loadgen.run_closed(server.address, frames, saturation, s.closed_duration_s, s.warmup_s,
                                             model=s.model, progress=progress, server_pid=server.pid)
        cameras = loadgen.run_open(server.address, frames, options, progress, server.pid)
        if not s.quick:  # capacity again after: other load only lowers it, so the higher one counts
            capacity_levels += loadgen.run_closed(server.address, frames, saturation, s.closed_duration_s,
                                                  s.warmup_s, model=s.model, progress=progress,
                                                  server_pid=server.pid)
    capacity = max(level["throughput_fps"] for level in capacity_levels)
    rss = cameras["server_rss"]
    checks.append(Check("a", f"answered frames younger than {s.max_frame_age_ms} ms at answer", "all",
                        f"{cameras['over_max_age']} of {cameras['answered']} older (age max "
                        f"{cameras['frame_age']['max_ms']:.0f} ms)",
                        cameras["answered"] > 0 and cameras["over_max_age"] == 0))
    checks.append(Check("a", "per-camera share of answers (min/max)", ">= 0.80",
                        f"{cameras['camera_share_min_max']:.2f}", cameras["camera_share_min_max"] >= 0.8))
    fraction = cameras["answered_fps"] / capacity if capacity else 0.0
    checks.append(Check("a", "answered throughput / capacity", ">= 0.90",
                        f"{fraction:.2f} ({cameras['answered_fps']:.1f} / {capacity:.1f} fps)", fraction >= 0.9))
    if rss:
        growth_ok = rss["peak_last_third_mb"] <= rss["peak_first_third_mb"] * 1.05 + 16
        checks.append(Check("a", "server RSS bounded", f"peak <= {s.rss_limit_mb:g} MB, no growth",
                            f"peak {rss['peak_mb']:.0f} MB, thirds {rss['peak_first_third_mb']:.0f} -> "
                            f"{rss['peak_last_third_mb']:.0f} MB", rss["peak_mb"] <= s.rss_limit_mb and growth_ok))
    lateness = cameras["send_lateness"]["p99_ms"]
    checks.append(Check("a", "the client kept up (else the figures describe the client)",
                        "client < 0.5 core, send lateness p99 < 1 frame interval",
                        f"{cameras['client_cpu_cores']:.2f} core, lateness p99 {lateness:.1f} ms",
                        cameras["client_cpu_cores"] < 0.5 and lateness < 1000.0 / s.fps))
    checks.append(Check("a", "sanity: every sent frame answered or dropped, per camera in order",
                        "0 unanswered, in order, exit 0", f"{cameras['lost']} unanswered, "
                        f"{cameras['out_of_order']} out of order, failures {len(cameras['stream_failures'])}, "
                        f"exit {server.exit_code}",
                        cameras["answered"] > 0 and cameras["lost"] == 0 and cameras["out_of_order"] == 0
                        and not cameras["stream_failures"] and server.exit_code == 0, enforced=True))
    return {"capacity_fps": capacity, "capacity_levels": capacity_levels, "cameras": cameras,
            "server_flags_skipped": server.skipped_flags}


def _other_cores(value: Any, seen: Optional[set[int]] = None) -> Any:
    """Every run's `other_cores` figure (MachineMeter) found in the results, each run once."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        if isinstance(value.get("cpu"), dict) and "other_cores" in value["cpu"]:
            yield value["cpu"]["other_cores"]
        for item in value.values():
            yield from _other_cores(item, seen)
    elif isinstance(value, list):
        for item in value:
            yield from _other_cores(item, seen)


# -- report -------------------------------------------------------------------------------


def format_report(s: Settings, host: dict[str, Any], frames: loadgen.Frames, results: dict[str, Any],
                  checks: list[Check]) -> str:
    lines = [
        "# lowbitd serving load report" + (" (--quick: sanity only)" if s.quick else ""),
        f"CPU: {host['cpu_model']}, {host['cores']} cores, ISA {' '.join(host['isa']) or '-'}; "
        f"load average at start {host['load_average'][0]:.2f}",
        f"server: {s.server} --workers {s.workers} --threads-per-worker 1; batching on = --max-batch {s.max_batch} "
        f"--latency-objective-ms {s.objective_ms} ((a): {s.camera_objective_ms}), off = --max-batch 1 "
        f"--batch-timeout-us 0",
        f"frames: {len(frames.jpegs)} x {frames.width}x{frames.height} JPEG, {frames.mean_bytes // 1024} KB mean, "
        f"from {frames.source}; closed-loop levels {s.closed_duration_s:g} s after {s.warmup_s:g} s warm-up; "
        f"overhead: {s.overhead_rounds} rounds of {s.overhead_frames} in-process frames + "
        f"{s.overhead_duration_s:g} s of gRPC",
    ]
    skipped = sorted({flag for part in results.values() if isinstance(part, dict)
                      for flag in part.get("server_flags_skipped", [])})
    if skipped:
        lines.append(f"NOTE: this lowbitd does not accept {', '.join(skipped)}: ran without them")
    lines.append("")
    if "overhead" in results:
        lines.append("overhead rounds (* = the quieter half, which counts):")
        for number, round_ in enumerate(results["overhead"]["rounds"], 1):
            closed = round_["closed"]
            mark = "*" if round_.get("counted") else " "
            lines.append(f"overhead round {number}{mark} (other processes {round_['other_cores']:.2f} cores): "
                         + loadgen.format_in_process(round_["in_process"]))
            lines.append(f"  gRPC Detect, 1 in flight: p50 {closed['p50_ms']:.1f} ms  p99 {closed['p99_ms']:.1f} ms "
                         f"p10 {closed['p10_ms']:.1f} ms ({closed['answered']} frames)  -> overhead "
                         f"{round_['overhead_ms']:.2f} ms (p10 {round_['overhead_p10_ms']:.2f})")
            stages = closed.get("server_stages_p50_ms")
            if stages:
                lines.append("  server's own Timings, p50 ms: " + "  ".join(f"{k} {v:.1f}" for k, v in stages.items())
                             + f"  -> outside the server's total: {closed['p50_ms'] - stages['total']:.2f} ms")
            if "floor" in round_:
                floor_closed = round_["floor"]
                lines.append(f"  lowbit_grpc_floor computing {floor_closed['server_stages_p50_ms']['total']:.1f} ms per "
                             f"call: p50 {floor_closed['p50_ms']:.1f} ms p10 {floor_closed['p10_ms']:.1f} ms "
                             f"({floor_closed['answered']} calls)  -> gRPC floor {round_['floor_ms']:.2f} ms")
        floor = results["overhead"]["transport_floor"]
        lines.append(f"transport floor: a {floor['payload_bytes'] // 1024} KB Detect that is not an image, refused "
                     f"before decode: p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms {floor['codes']}")
        lines.append("")
    for part in results.get("batching", []):
        for key, title in (("batch1", "batch 1"), ("batched", f"batching on (max {s.max_batch})")):
            lines.append(f"{part['model']}, {title}:")
            lines.append(loadgen.format_closed(part[key]["levels"]))
        if part["engine"]:
            e = part["engine"]
            lines.append(f"engine alone (Session::Run, 1 thread): batch 1 {e['batch1_fps']:.1f} fps, "
                         f"batch {s.max_batch} {e[f'batch{s.max_batch}_fps']:.1f} fps = {e['ratio']:.2f}x")
        if part.get("peer"):
            e = part["peer"]
            lines.append(f"ONNX Runtime alone (same ONNX file, 1 thread): batch 1 {e['batch1_fps']:.1f} fps, "
                         f"batch {s.max_batch} {e[f'batch{s.max_batch}_fps']:.1f} fps = {e['ratio']:.2f}x")
        lines.append("")
    if "cameras" in results:
        lines.append(f"capacity (closed loop at saturation, before and after the cameras; the higher counts): "
                     f"{results['cameras']['capacity_fps']:.1f} fps")
        lines.append(loadgen.format_closed(results["cameras"]["capacity_levels"]))
        lines.append(loadgen.format_open(results["cameras"]["cameras"]))
        lines.append("")
    width = max(len(c.name) for c in checks) if checks else 10
    lines.append(f"| scen. | {'check'.ljust(width)} | target | measured | result |")
    lines.append(f"|---|{'-' * (width + 2)}|---|---|---|")
    for c in checks:
        verdict = "PASS" if c.passed else ("FAIL" if c.enforced else "NOT MET")
        if s.quick and not c.enforced:
            verdict = f"({verdict}, not enforced)"
        lines.append(f"| ({c.scenario}) | {c.name.ljust(width)} | {c.target} | {c.measured} | {verdict} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("LOWBIT_SERVER_BIN", str(REPO / "build/server/lowbitd")),
                        help="lowbitd binary (default $LOWBIT_SERVER_BIN or %(default)s)")
    parser.add_argument("--floor", default=None,
                        help="lowbit_grpc_floor binary for (c)'s bound (default: bench/serving/lowbit_grpc_floor in "
                        "the build directory of --server; '' to skip)")
    parser.add_argument("--lowbit", default=os.environ.get("LOWBIT_BIN", str(REPO / "build/engine/lowbit")),
                        help="lowbit CLI, for the in-process runs (default $LOWBIT_BIN or %(default)s)")
    parser.add_argument("--model-repo", type=Path, default=REPO / "models")
    parser.add_argument("--model", default="nanodet-g")
    parser.add_argument("--quantized-model", default="nanodet-g-w8a8",
                        help="second model of the batching scenario; '' to skip")
    parser.add_argument("--video", type=Path, default=loadgen.DEFAULT_VIDEO)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--objective-ms", type=int, default=400, help="--latency-objective-ms of batching on")
    parser.add_argument("--camera-objective-ms", type=int, default=0,
                        help="--latency-objective-ms of the camera scenario (default: --max-frame-age-ms). The "
                        "cameras' age limit is their latency objective: a camera's slot holds only its newest frame, "
                        "so a frame waits at most one camera period before its batch, and the server's deadline "
                        "check drops any frame its batch could not answer within the age limit")
    parser.add_argument("--p99-bound-ms", type=float, default=500.0, help="p99 bound of the batching comparison")
    parser.add_argument("--max-frame-age-ms", type=int, default=500)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the camera scenario")
    parser.add_argument("--rss-limit-mb", type=float, default=1024.0)
    parser.add_argument("--scenarios", default="c,b,a", help="which of a, b, c to run (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="CI form: seconds per scenario, sanity checks only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is NOT MET, too")
    parser.add_argument("--json", type=Path, help="write every figure as JSON to this file")
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()) / "lowbit-serving-load",
                        help="lowbitd logs (default %(default)s)")
    parser.add_argument("--progress", choices=("auto", "tty", "lines", "off"), default="auto")
    args = parser.parse_args(argv)

    for path, what in ((args.server, "lowbitd"), (args.lowbit, "lowbit")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise SystemExit(f"serving_load: {what} not found at {path}: build it (cmake --build build --target "
                             f"{what}) or pass --{'server' if what == 'lowbitd' else 'lowbit'}")
    floor = args.floor
    if floor is None:
        candidate = Path(args.server).resolve().parent.parent / "bench" / "serving" / "lowbit_grpc_floor"
        floor = str(candidate) if candidate.is_file() else ""
    if floor and not (Path(floor).is_file() and os.access(floor, os.X_OK)):
        raise SystemExit(f"serving_load: lowbit_grpc_floor not found at {floor}: build it (cmake --build build "
                         "--target lowbit_grpc_floor) or pass --floor ''")
    quick = args.quick
    # --quick checks that the path works, not how fast the machine is: with other work on
    # the cores a NanoDet frame can take 350 ms, and a 500 ms age limit then drops them all.
    max_frame_age_ms = max(args.max_frame_age_ms, 3000) if quick else args.max_frame_age_ms
    settings = Settings(
        server=args.server, floor=floor or None, lowbit=args.lowbit, model_repo=args.model_repo, model=args.model,
        quantized_model=None if quick or not args.quantized_model else args.quantized_model,
        workers=args.workers, max_batch=args.max_batch, objective_ms=args.objective_ms,
        camera_objective_ms=args.camera_objective_ms or max_frame_age_ms,
        p99_bound_ms=args.p99_bound_ms, max_frame_age_ms=max_frame_age_ms,
        cameras=4 if quick else args.cameras, fps=5.0 if quick else args.fps,
        camera_duration_s=3.0 if quick else args.duration, closed_duration_s=1.5 if quick else 8.0,
        warmup_s=0.5 if quick else 2.0, overhead_rounds=1 if quick else 7,
        overhead_frames=10 if quick else 40, overhead_duration_s=1.5 if quick else 3.0,
        sweep=[4] if quick else [2, 4, 8, 16], batch_repeats=1 if quick else 2, rss_limit_mb=args.rss_limit_mb, log_dir=args.log_dir,
        quick=quick, known_flags=server_flags(args.server))
    host = host_info()
    say(f"CPU {host['cpu_model']} ({host['cores']} cores, {' '.join(host['isa'])}), load {host['load_average'][0]:.2f}")
    frames = loadgen.load_frames(args.video, 20 if quick else 100)
    progress = loadgen.Progress(args.progress)
    scenarios = set(args.scenarios.split(","))
    checks: list[Check] = []
    results: dict[str, Any] = {"host": host, "quick": quick}
    if "c" in scenarios:
        results["overhead"] = scenario_overhead(settings, frames, progress, checks)
    if "b" in scenarios:
        models = [settings.model] + ([settings.quantized_model] if settings.quantized_model else [])
        results["batching"] = [scenario_batching(settings, model, frames, progress, checks) for model in models]
    if "a" in scenarios:
        results["cameras"] = scenario_cameras(settings, frames, progress, checks)
    others = list(_other_cores(results))
    if others:
        mean_other = sum(others) / len(others)
        results["other_cores"] = {"mean": mean_other, "max": max(others), "runs": len(others)}
        checks.append(Check("all", "machine quiet: cores other processes used during the runs", "mean <= 0.25",
                            f"mean {mean_other:.2f}, max {max(others):.2f} over {len(others)} runs "
                            "(else every figure is below what the server can do)", mean_other <= 0.25))
    results["checks"] = [c.__dict__ for c in checks]
    print(format_report(settings, host, frames, results, checks))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        say(f"figures written to {args.json}")
    failed = [c for c in checks if not c.passed and (c.enforced or (args.strict and not quick))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
