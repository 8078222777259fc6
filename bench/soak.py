#!/usr/bin/env python3
"""Soak: lowbitd (a sanitizer build) at 2x overload for N minutes; resident memory, descriptors and
threads must stay flat and every frame sent must get its result.

    .venv/bin/python bench/soak.py [--server build-asan/server/lowbitd] [--minutes 2]
        [--overload 2.0] [--cameras 8] [--interval-s 5] [--window-s 30] [--json FILE] [--log-dir DIR]

One lowbitd (bench/serving_load.py's Server: a temporary repository holding only --model, gRPC on a
free 127.0.0.1 port) is measured first: capacity = closed-loop throughput at concurrency
2 x workers x max-batch (10 s). Then --cameras cameras over DetectStream (lowbit.loadgen's open loop,
one stream per camera, frames of data/images/vtest.avi) offer --overload x capacity frames/s,
in windows of --window-s seconds (each window opens its streams anew, so stream set-up and tear-down
repeat too), until --minutes have passed. The capacity moves with whatever else the machine runs, so
each window offers at least --overload x the rate the window before answered, and 1.5x more after a
window in which nothing was dropped. A sampler reads the server's VmRSS and Threads
(/proc/PID/status) and its open descriptors (/proc/PID/fd) every --interval-s seconds.

Passes when, over the samples after the warm-up (the first --warmup-s seconds of load, default a
sixth of the run, at least 20 s), "flat" holds: the median of the last third is at most
--rss-growth (10%) above the median of the first third for resident memory, at most --fd-slack (4)
descriptors and --thread-slack (2) threads above it; and no frame was lost (every frame sent got
its result, an answer or a drop with its reason), none out of order, no stream failed, and lowbitd
exited 0 on SIGTERM (a sanitizer report or a LeakSanitizer leak at exit makes it non-zero).
Prints the samples and the windows as tables; exit status 0 on pass, 1 otherwise.

ASAN_OPTIONS for the server default to a 64 MB quarantine (ASan's 256 MB default takes minutes
of load to fill, and RSS grows until it is full) unless the environment sets quarantine_size_mb.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import serving_load  # noqa: E402  (puts clients/python on sys.path)
from serving_load import Server, host_info  # noqa: E402
from lowbit import loadgen  # noqa: E402


@dataclass
class Sample:
    t_s: float  # seconds since the load started
    rss_mb: float
    fds: int
    threads: int


def read_sample(pid: int, t_s: float) -> Optional[Sample]:
    """VmRSS and Threads from /proc/PID/status, descriptors from /proc/PID/fd; None once it exited."""
    try:
        rss_kb = threads = None
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    if rss_kb is None or threads is None:
        return None
    return Sample(t_s, rss_kb / 1024.0, fds, threads)


class Sampler:
    """Samples a process every ``interval_s`` on a thread, from ``start`` (perf_counter)."""

    def __init__(self, pid: int, interval_s: float, start: float) -> None:
        self.pid, self.interval_s, self.start = pid, interval_s, start
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            sample = read_sample(self.pid, time.perf_counter() - self.start)
            if sample is not None:
                self.samples.append(sample)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flatness(samples: list[Sample], warmup_s: float, rss_growth: float, fd_slack: int,
             thread_slack: int) -> dict[str, Any]:
    """First-third and last-third medians of the samples after the warm-up, and whether each is flat."""
    steady = [s for s in samples if s.t_s >= warmup_s]
    if len(steady) < 6:
        return {"steady_samples": len(steady), "passed": False,
                "reason": f"only {len(steady)} samples after the {warmup_s:.0f} s warm-up (need 6): run longer"}
    third = len(steady) // 3
    first, last = steady[:third], steady[-third:]
    result: dict[str, Any] = {"steady_samples": len(steady), "warmup_s": warmup_s}
    limits = {"rss_mb": lambda base: base * (1.0 + rss_growth), "fds": lambda base: base + fd_slack,
              "threads": lambda base: base + thread_slack}
    passed = True
    for name, limit in limits.items():
        before = statistics.median(getattr(s, name) for s in first)
        after = statistics.median(getattr(s, name) for s in last)
        ok = after <= limit(before)
        passed &= ok
        result[name] = {"first_third_median": before, "last_third_median": after, "limit": limit(before),
                        "min": min(getattr(s, name) for s in steady), "max": max(getattr(s, name) for s in steady),
                        "flat": ok}
    result["passed"] = passed
    return result


def format_samples(samples: list[Sample], warmup_s: float) -> str:
    lines = ["     t s   RSS MB   fds  threads"]
    for s in samples:
        mark = "  (warm-up)" if s.t_s < warmup_s else ""
        lines.append(f"{s.t_s:8.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.threads:8d}{mark}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("LOWBIT_SERVER_BIN",
                                                           str(REPO / "build-asan/server/lowbitd")))
    parser.add_argument("--model-repo", type=Path, default=Path(os.environ.get("LOWBIT_MODEL_REPO",
                                                                               REPO / "models")))
    parser.add_argument("--model", default="nanodet-g")
    parser.add_argument("--video", type=Path, default=loadgen.DEFAULT_VIDEO)
    parser.add_argument("--minutes", type=float, default=2.0, help="load duration (after the capacity probe)")
    parser.add_argument("--overload", type=float, default=2.0, help="offered load / measured capacity")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--max-frame-age-ms", type=int, default=0,
                        help="the frames' max_frame_age_ms (0: none; with one, a slow build may drop every frame)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--interval-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--window-s", type=float, default=30.0, help="seconds of one open-loop window")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="seconds of load not judged (default: a sixth of the run, at least 20)")
    parser.add_argument("--rss-growth", type=float, default=0.10)
    parser.add_argument("--fd-slack", type=int, default=4)
    parser.add_argument("--thread-slack", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--log-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "lowbit-soak")
    args = parser.parse_args(argv)

    # A sanitizer build prepares every batch size of the model several times slower than Release.
    serving_load.SERVER_START_TIMEOUT_S = max(serving_load.SERVER_START_TIMEOUT_S, 600.0)
    duration_s = args.minutes * 60.0
    warmup_s = args.warmup_s if args.warmup_s is not None else max(20.0, duration_s / 6.0)
    asan = os.environ.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in asan:
        os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [asan, "quarantine_size_mb=64"]))
    host = host_info()
    say = serving_load.say
    say(f"CPU {host['cpu_model']} ({host['cores']} cores, {' '.join(host['isa'])}); server {args.server}")
    frames = loadgen.load_frames(args.video)
    progress = loadgen.Progress("lines", line_every_s=30.0)
    flags = {"--workers": args.workers, "--threads-per-worker": 1, "--max-batch": args.max_batch}
    log_path = args.log_dir / "lowbitd-soak.log"
    windows: list[dict[str, Any]] = []
    with Server(args.server, args.model_repo, args.model, flags, log_path,
                serving_load.server_flags(args.server)) as server:
        saturation = 2 * args.workers * args.max_batch
        probe = loadgen.run_closed(server.address, frames, [saturation], 10.0, 3.0, model=args.model,
                                   progress=progress, server_pid=server.pid)[0]
        capacity = probe["throughput_fps"]
        if capacity <= 0:
            say(f"no answers in the capacity probe: {probe['errors']}; log {log_path}:\n{server.log_tail()}")
            return 1
        fps = args.overload * capacity / args.cameras
        say(f"capacity {capacity:.1f} fps (closed loop c={saturation}); offering {args.overload:g}x = "
            f"{args.cameras} cameras x {fps:.2f} fps for {args.minutes:g} min in {args.window_s:g} s windows")
        windows_fps: list[float] = []
        start = time.perf_counter()
        with Sampler(server.pid, args.interval_s, start) as sampler:
            while (left := duration_s - (time.perf_counter() - start)) > 1.0:
                options = loadgen.OpenLoopOptions(cameras=args.cameras, fps=fps, duration_s=min(args.window_s, left),
                                                  warmup_s=0.0, max_frame_age_ms=args.max_frame_age_ms,
                                                  objective_ms=float(args.max_frame_age_ms), model=args.model,
                                                  drain_s=15.0, seed=len(windows) + 1)
                result = loadgen.run_open(server.address, frames, options, progress, server.pid)
                # Keep the overload whatever else the machine runs: the answered rate of an
                # overloaded window is the capacity of the moment; a window with no drop was not
                # overloaded, so the next offers half as much again.
                windows_fps.append(fps * args.cameras)
                fps = max(fps, args.overload * result["answered_fps"] / args.cameras)
                if result["dropped"] == 0:
                    fps *= 1.5
                windows.append({key: result[key] for key in (
                    "window_s", "sent", "answered", "dropped", "drops", "errors", "lost", "out_of_order",
                    "stream_failures", "answered_fps", "frame_age")})
                windows[-1]["offered_fps"] = windows_fps[-1]
                last = sampler.samples[-1] if sampler.samples else None
                say(f"window {len(windows)}: sent {result['sent']} answered {result['answered']} dropped "
                    f"{result['dropped']} errors {sum(result['errors'].values())} lost {result['lost']}"
                    + (f"; RSS {last.rss_mb:.0f} MB, {last.fds} fds, {last.threads} threads" if last else ""))
    samples = sampler.samples
    flat = flatness(samples, warmup_s, args.rss_growth, args.fd_slack, args.thread_slack)
    totals = {key: sum(w[key] for w in windows) for key in ("sent", "answered", "dropped", "lost", "out_of_order")}
    totals["errors"] = sum(sum(w["errors"].values()) for w in windows)
    drops: dict[str, int] = {}
    for w in windows:
        for reason, count in w["drops"].items():
            drops[reason] = drops.get(reason, 0) + count
    failures = [f for w in windows for f in w["stream_failures"]]

    checks = [
        ("resident memory flat", f"last-third median <= first-third median x {1 + args.rss_growth:.2f}",
         _flat_text(flat, "rss_mb", "MB"), flat.get("rss_mb", {}).get("flat", False)),
        ("descriptors flat", f"last-third median <= first-third median + {args.fd_slack}",
         _flat_text(flat, "fds", ""), flat.get("fds", {}).get("flat", False)),
        ("threads flat", f"last-third median <= first-third median + {args.thread_slack}",
         _flat_text(flat, "threads", ""), flat.get("threads", {}).get("flat", False)),
        ("every frame sent got its result", "0 lost, 0 out of order, no stream failure",
         f"{totals['lost']} lost, {totals['out_of_order']} out of order, {len(failures)} stream failures",
         totals["lost"] == 0 and totals["out_of_order"] == 0 and not failures and totals["answered"] > 0),
        ("no frame failed", "0 errors (drops are answers)", f"{totals['errors']} errors", totals["errors"] == 0),
        ("lowbitd exit on SIGTERM (sanitizer reports and leaks make it non-zero)", "0", str(server.exit_code),
         server.exit_code == 0),
    ]
    print(f"# lowbitd soak: {args.minutes:g} min at {args.overload:g}x overload")
    print(f"CPU: {host['cpu_model']}, {host['cores']} cores, ISA {' '.join(host['isa'])}; load average at start "
          f"{host['load_average'][0]:.2f}")
    print(f"server: {args.server} --workers {args.workers} --max-batch {args.max_batch}; "
          f"ASAN_OPTIONS={os.environ.get('ASAN_OPTIONS', '')}")
    print(f"capacity {capacity:.1f} fps at the start; offered {args.overload:g}x the answered rate of the window before "
          f"({args.cameras} cameras, {min(windows_fps, default=0):.1f}-{max(windows_fps, default=0):.1f} fps); frames {len(frames.jpegs)} x {frames.width}x{frames.height} JPEG from {frames.source}")
    print(f"sent {totals['sent']}, answered {totals['answered']} ({totals['answered'] / duration_s:.1f} fps), "
          f"dropped {totals['dropped']} {drops}, errors {totals['errors']}, lost {totals['lost']}")
    print()
    print(format_samples(samples, warmup_s))
    print()
    print("window  offered fps  answered fps  sent  answered  dropped  errors  lost  age p50 ms  age max ms")
    for number, w in enumerate(windows, 1):
        print(f"{number:6d} {w['offered_fps']:12.1f} {w['answered_fps']:13.1f} {w['sent']:5d} {w['answered']:9d} "
              f"{w['dropped']:8d} {sum(w['errors'].values()):7d} {w['lost']:5d} {w['frame_age']['p50_ms']:11.0f} "
              f"{w['frame_age']['max_ms']:11.0f}")
    print()
    if "reason" in flat:
        print(f"flatness: {flat['reason']}")
    passed = all(ok for *_, ok in checks)
    for name, target, measured, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {measured} (target {target})")
    print(f"soak: {'PASS' if passed else 'FAIL'}")
    if not passed:
        print(f"lowbitd log {log_path}, last lines:\n{server.log_tail(40)}")
    if args.json:
        args.json.write_text(json.dumps({
            "host": host, "args": {k: str(v) for k, v in vars(args).items()}, "capacity_fps": capacity,
            "offered_fps": windows_fps, "samples": [asdict(s) for s in samples], "flatness": flat,
            "windows": windows, "totals": totals, "drops": drops, "server_exit": server.exit_code,
            "checks": [{"name": n, "target": t, "measured": m, "passed": ok} for n, t, m, ok in checks],
            "passed": passed}, indent=2))
    return 0 if passed else 1


def _flat_text(flat: dict[str, Any], name: str, unit: str) -> str:
    figures = flat.get(name)
    if not figures:
        return flat.get("reason", "no samples")
    return (f"{figures['first_third_median']:.1f} -> {figures['last_third_median']:.1f}{unit and ' ' + unit} "
            f"(range {figures['min']:.1f}-{figures['max']:.1f})")


if __name__ == "__main__":
    sys.exit(main())
