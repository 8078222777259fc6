#!/usr/bin/env python3
"""Resident memory of the real server (lowbitd) serving one model with 1, 2 and 4 workers.

    .venv/bin/python bench/server_memory.py [--server build/server/lowbitd]
        [--model-repo models] [--model nanodet-g-w2a2] [--workers 1,2,4]
        [--malloc default|fixed-mmap-threshold|both] [--lowbit build/engine/lowbit]
        [--image data/images/dog.jpg] [--requests 48] [--rounds 2] [--concurrency 8] [--json]

For each worker count, a fresh lowbitd serves a model repository holding only
MODEL (a temporary directory with a symlink to MODEL_REPO/MODEL), with
--threads-per-worker 1 --max-batch 1 --batch-timeout-us 0 (one frame's
activation arena per worker, whatever the queue does), gRPC on a free local
port, no metrics endpoint. Then:
  1. VmRSS from /proc/PID/status once the server listens ("loaded": model
     compiled, every worker's session created, no arena touched yet);
  2. ROUNDS x REQUESTS Detect calls on IMAGE from CONCURRENCY client threads
     (the same for every worker count, so the gRPC side costs the same), more
     rounds (up to 8) while a worker has not run: the scheduler's threads are
     the unnamed ("lowbitd") threads present at load, and a worker that ran
     inference has used >= 30 ms of CPU (/proc/PID/task/TID/stat);
  3. VmRSS, RssAnon, RssFile and VmHWM then ("served").

The engine does not report its activation arena size, so the per-worker cost is
estimated as RSS(2 workers) - RSS(1 worker) after serving: one session's arena,
its kernel objects, the worker thread's stack and heap. The issue's target
(weights shared by every session): RSS(4) <= RSS(1) + 3 x that increment.
Weights copied per session would show at load already: RSS loaded would grow by
a copy of the weights per worker.

--malloc: "default" runs the server as it is; "fixed-mmap-threshold" sets
MALLOC_MMAP_THRESHOLD_ (see FIXED_MMAP_THRESHOLD below for why); "both" (the
default) measures both, one after the other. --lowbit prints the model's weight
bytes as `lowbit inspect` reports them. Linux only (reads /proc).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKER_CPU_TICKS = 3  # >= 30 ms of CPU at 100 ticks/s: a thread that ran inference
MAX_ROUNDS = 8
# glibc's malloc raises its mmap threshold each time a large mmapped block is freed, so
# the per-request buffers (decoded image, input tensor, outputs: 0.1-2 MB) soon come from
# the heaps instead, which then hold freed memory: the server's RSS creeps up with the
# number of requests (tens of MB over hundreds of calls, per heap, and each worker
# thread gets its own heap). Fixing the threshold (what mallopt(M_MMAP_THRESHOLD) does)
# returns those buffers to the kernel on free and makes RSS a function of the workers.
FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": "131072"}
MALLOC_MODES = {"default": {}, "fixed-mmap-threshold": FIXED_MMAP_THRESHOLD}


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile (kB) from /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0])
    return values


def unnamed_thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks (utime + stime) of the threads still named like the process ("lowbitd"),
    the main thread excluded: the scheduler's batcher and workers."""
    ticks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        try:
            if tid == pid or task.joinpath("comm").read_text().strip() != "lowbitd":
                continue
            fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            continue
    return ticks


class Server:
    """A lowbitd child on 127.0.0.1, a free port, logging to a file."""

    def __init__(self, binary: Path, repo: Path, workers: int, log: Path, env: dict[str, str] | None = None):
        self.log = log
        command = [str(binary), "--model-repo", str(repo), "--workers", str(workers),
                   "--threads-per-worker", "1", "--max-batch", "1", "--batch-timeout-us", "0",
                   "--address", "127.0.0.1:0", "--metrics-address", ""]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                            env={**os.environ, **(env or {})})
        self.address = self._wait_listening(120.0)

    def _wait_listening(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lowbitd exited with {self.process.returncode}:\n{self.log.read_text()}")
            match = re.search(r"listening on (127\.0\.0\.1:\d+)", self.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"lowbitd did not listen within {timeout_s} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure(binary: Path, repo: Path, workers: int, image: bytes, requests: int, rounds: int,
            concurrency: int, log_dir: Path, env: dict[str, str] | None = None) -> dict:
    """One fresh server: RSS loaded and after `rounds` rounds of `requests` Detect calls
    (more rounds, up to MAX_ROUNDS, while a worker has not run yet), and how many of the
    scheduler's threads (present at load: the batcher and the workers) ran inference."""
    from lowbit import Client

    server = Server(binary, repo, workers, log_dir / f"lowbitd-{workers}w.log", env)
    try:
        pid = server.process.pid
        loaded = status_kb(pid)
        before = unnamed_thread_ticks(pid)  # threads created later (gRPC's) are not workers
        done, ran = 0, 0
        with Client(server.address) as client, \
                concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            while done < rounds or (ran < workers and done < MAX_ROUNDS):
                list(pool.map(lambda _: client.detect(image, timeout=60), range(requests)))
                done += 1
                now = unnamed_thread_ticks(pid)
                ran = sum(1 for tid in before if now.get(tid, 0) - before[tid] >= WORKER_CPU_TICKS)
        served = status_kb(pid)
        return {"workers": workers, "loaded_kb": loaded["VmRSS"], "rss_kb": served["VmRSS"],
                "anon_kb": served["RssAnon"], "file_kb": served["RssFile"], "hwm_kb": served["VmHWM"],
                "requests": done * requests, "threads_ran": ran}
    finally:
        server.stop()


def single_model_repo(model_repo: Path, model: str, into: Path) -> Path:
    entry = model_repo / model
    if not (entry / "config.pbtxt").exists():
        raise SystemExit(f"{entry}/config.pbtxt missing: run deploy/models/fetch-models.sh {model_repo}")
    repo = into / "repo"
    repo.mkdir()
    (repo / model).symlink_to(entry.resolve(), target_is_directory=True)
    return repo


def run(binary: Path, model_repo: Path, model: str, worker_counts: list[int], image: Path,
        requests: int = 48, rounds: int = 2, concurrency: int = 8, env: dict[str, str] | None = None) -> dict:
    """{workers: measure()}, one fresh server each; the server logs go to a temp dir."""
    with tempfile.TemporaryDirectory(prefix="lowbit_mem_") as tmp:
        repo = single_model_repo(model_repo, model, Path(tmp))
        data = image.read_bytes()
        return {n: measure(binary, repo, n, data, requests, rounds, concurrency, Path(tmp), env)
                for n in worker_counts}


def find_server(explicit: str | None) -> Path:
    path = Path(explicit or os.environ.get("LOWBIT_SERVER_BIN") or REPO / "build" / "server" / "lowbitd")
    if not path.is_file():
        sys.exit(f"{path} not found: build lowbitd (deploy/build.sh) or pass --server PATH")
    return path


def summarize(results: dict) -> dict:
    """The per-worker increment RSS(2) - RSS(1) and the issue's target RSS(4) <= RSS(1) + 3 x it."""
    r1, r2, r4 = (results[n]["rss_kb"] for n in (1, 2, 4))
    increment = r2 - r1
    return {"results": list(results.values()), "per_worker_increment_kb": increment,
            "loaded_4_vs_1_kb": results[4]["loaded_kb"] - results[1]["loaded_kb"],
            "extra_4_vs_1_kb": r4 - r1, "target_kb": r1 + 3 * increment, "pass": r4 <= r1 + 3 * increment,
            "all_workers_ran": all(r["threads_ran"] >= r["workers"] for r in results.values())}


def stored_weight_bytes(lowbit: str, entry: Path) -> int | None:
    text = subprocess.run([lowbit, "inspect", str(entry)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^weights ([\d,]+) bytes", text, re.M)
    return int(match.group(1).replace(",", "")) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="lowbitd (default: $LOWBIT_SERVER_BIN or build/server/lowbitd)")
    parser.add_argument("--lowbit", help="lowbit CLI, for the model's weight bytes (default: $LOWBIT_BIN)")
    parser.add_argument("--model-repo", default="models")
    parser.add_argument("--model", default="nanodet-g-w2a2")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated; must include 1, 2 and 4")
    parser.add_argument("--image", default="data/images/dog.jpg")
    parser.add_argument("--requests", type=int, default=48, help="Detect calls per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server (more while a worker has not run)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--malloc", choices=[*MALLOC_MODES, "both"], default="both",
                        help="the server's glibc malloc settings (default: both, one after the other)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.workers.split(",")})
    if not {1, 2, 4} <= set(counts):
        parser.error("--workers must include 1, 2 and 4")
    binary = find_server(args.server)
    started = time.monotonic()
    modes = list(MALLOC_MODES) if args.malloc == "both" else [args.malloc]
    report = {"model": args.model, "server": str(binary), "requests_per_round": args.requests,
              "concurrency": args.concurrency, "modes": {}}
    for mode in modes:
        results = run(binary, Path(args.model_repo), args.model, counts, Path(args.image), args.requests,
                      args.rounds, args.concurrency, MALLOC_MODES[mode])
        report["modes"][mode] = summarize(results)
    lowbit = args.lowbit or os.environ.get("LOWBIT_BIN")
    report["stored_weight_bytes"] = stored_weight_bytes(lowbit, Path(args.model_repo) / args.model) if lowbit else None
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    mib = 1024.0
    print(f"lowbitd {binary}: model {args.model} alone, --threads-per-worker 1 --max-batch 1, "
          f"{args.concurrency} client threads, Detect on {args.image}; VmRSS etc. from /proc/PID/status")
    for mode, summary in report["modes"].items():
        env = " ".join(f"{k}={v}" for k, v in MALLOC_MODES[mode].items()) or "(environment unchanged)"
        print(f"\nmalloc {mode}: {env}")
        print(f"  {'workers':>7}  {'RSS loaded':>10}  {'RSS served':>10}  {'RssAnon':>9}  {'RssFile':>9}  "
              f"{'VmHWM':>9}  {'requests':>8}  workers that ran")
        for r in summary["results"]:
            print(f"  {r['workers']:>7}  {r['loaded_kb'] / mib:>6.1f} MiB  {r['rss_kb'] / mib:>6.1f} MiB  "
                  f"{r['anon_kb'] / mib:>5.1f} MiB  {r['file_kb'] / mib:>5.1f} MiB  {r['hwm_kb'] / mib:>5.1f} MiB  "
                  f"{r['requests']:>8}  {r['threads_ran']} of {r['workers']}")
        inc, extra = summary["per_worker_increment_kb"], summary["extra_4_vs_1_kb"]
        print(f"  at load, 3 more sessions: RSS loaded(4) - loaded(1) = {summary['loaded_4_vs_1_kb'] / mib:.2f} MiB "
              "(a copy of the weights per session would show here)")
        print(f"  per-worker increment (arena estimate) RSS(2) - RSS(1) = {inc / mib:.2f} MiB")
        print(f"  RSS(4) - RSS(1) = {extra / mib:.2f} MiB = {extra / inc if inc > 0 else float('inf'):.2f} "
              f"increments; target RSS(4) <= RSS(1) + 3 arenas = {summary['target_kb'] / mib:.1f} MiB: "
              f"{'PASS' if summary['pass'] else 'MISS'}"
              f"{'' if summary['all_workers_ran'] else ' (NOT every worker ran: increase --rounds)'}")
    if report["stored_weight_bytes"]:
        print(f"\nmodel weights as stored (lowbit inspect): {report['stored_weight_bytes'] / 2**20:.2f} MiB")
    print(f"({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
