"""deploy/grafana/dashboards/lowbit.json against what lowbitd (and the camera
bridge) really export: every metric a panel queries exists in a live /metrics,
every label a query filters or groups by is a label of its metric; with
Prometheus installed (apt-get install prometheus), every query also runs on a
real Prometheus scraping them and returns series."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, ServerProcess, free_port
from helpers import SCORE_THRESHOLD, scrape
from lowbit import Client, Frame, now_us

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "lowbit.json"
DATASOURCE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
VIDEO = REPO / "data" / "images" / "vtest.avi"
#: Labels Prometheus adds to every scraped series (the target's).
TARGET_LABELS = {"job", "instance"}
#: Grafana's variables, as a query sees them once substituted.
VARIABLES = {"$model": ".*", "$__rate_interval": "1m", "$__range": "5m"}

_METRIC = re.compile(r"\b(lowbit_[A-Za-z0-9_:]*)")
_SELECTOR = re.compile(r"\b(lowbit_[A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*(lowbit_[A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+\S+")
_SAMPLE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> Iterator[dict]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(board: dict) -> list[tuple[str, str]]:
    """(where, PromQL with the variables substituted) of every query of the dashboard."""
    found = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        found.append((f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query))
    substituted = []
    for where, expr in found:
        for name, value in sorted(VARIABLES.items(), key=lambda item: -len(item[0])):
            expr = expr.replace(name, value)
        assert "$" not in expr, f"{where}: unknown variable left in {expr}"
        substituted.append((where, expr))
    return substituted


def exported_labels(text: str) -> dict[str, set[str]]:
    """Sample name (histograms: name_bucket, _sum, _count) -> label names, from Prometheus text."""
    labels: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels.setdefault(match.group(1), set()).update(_SAMPLE_LABEL.findall(match.group(2) or ""))
    return labels


def produce_traffic(server: ServerProcess, images: Path) -> None:
    """OK frames with capture times, and dropped ones (an unpaced burst of one camera: superseded)."""
    dog = (images / "dog.jpg").read_bytes()
    with Client(server.address, timeout=60) as client:
        for index in range(4):
            client.detect(dog, camera_id="door", frame_id=index, capture_time_us=now_us(),
                          score_threshold=SCORE_THRESHOLD)
        burst = [Frame(image=dog, camera_id="burst", frame_id=i) for i in range(16)]
        results = list(client.detect_stream(burst, timeout=120))
    assert any(r.dropped == "SUPERSEDED" for r in results), "16 unpaced frames of one camera: none superseded?"


def start_watch(server: ServerProcess, metrics_address: str, tmp_path: Path) -> subprocess.Popen:
    """The camera bridge looping over vtest.avi at 4 frames/s with its metrics endpoint."""
    cli = Path(sys.executable).with_name("lowbit-client")
    process = subprocess.Popen(
        [str(cli), "watch", str(VIDEO), "--address", server.address, "--camera-id", "street", "--loop", "--fps", "4",
         "--metrics-address", metrics_address, "--output", str(tmp_path / "watch.jsonl")],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "watch.err", "w"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "watch.err").read_text()
        try:
            if 'result="ok"} ' in scrape(metrics_address) and (tmp_path / "watch.jsonl").stat().st_size:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail("the bridge answered no frame within 60 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_dashboard_shape() -> None:
    board = dashboard()
    uid = re.search(r"^\s*uid:\s*(\S+)", DATASOURCE.read_text(), re.MULTILINE).group(1)
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    titles = " | ".join(p["title"].lower() for p in panels(board))
    for topic in ("requests per second by model and code", "latency", "stage", "queue depth", "batch size",
                  "drops", "frames per camera", "model loads"):
        assert topic in titles, f"no panel about {topic}: {titles}"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
        position = panel["gridPos"]
        assert 0 <= position["x"] and position["x"] + position["w"] <= 24, panel["title"]


def test_dashboard_queries_match_exported_metrics(server: ServerProcess, images: Path, tmp_path: Path) -> None:
    produce_traffic(server, images)
    bridge_metrics = f"127.0.0.1:{free_port()}"
    watch = start_watch(server, bridge_metrics, tmp_path)
    try:
        exported = exported_labels(scrape(server.metrics_address))
        exported.update(exported_labels(scrape(bridge_metrics)))
    finally:
        stop(watch)
    problems = []
    used = set()
    for where, expr in expressions(dashboard()):
        metrics = set(_METRIC.findall(expr))
        assert metrics, f"{where}: no lowbit metric in {expr}"
        used |= metrics
        for metric in sorted(metrics - exported.keys()):
            problems.append(f"{where}: {metric} is not exported")
        known = metrics & exported.keys()
        for metric, matchers in _SELECTOR.findall(expr):
            for label in _MATCHER.findall(matchers):
                if metric in exported and label not in exported[metric] | TARGET_LABELS:
                    problems.append(f"{where}: {metric} has no label {label} (has {sorted(exported[metric])})")
        grouped = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
        for metric, label in _LABEL_VALUES.findall(expr):
            grouped.add(label)
        available = set().union(*(exported[m] for m in known)) | TARGET_LABELS if known else set()
        for label in sorted(grouped - available):
            problems.append(f"{where}: groups by {label}, a label of none of {sorted(metrics)}")
    assert not problems, "\n".join(problems)
    families = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    print(f"\ndashboard: {len(expressions(dashboard()))} queries over {len(families)} metric families, all exported")


def prometheus_query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def test_dashboard_queries_on_real_prometheus(server: ServerProcess, images: Path, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary (apt-get install prometheus)")
    bridge_metrics = f"127.0.0.1:{free_port()}"
    web = f"127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: lowbitd, static_configs: [{{targets: ['{server.metrics_address}']}}]}}\n"
        f"  - {{job_name: lowbit-watch, static_configs: [{{targets: ['{bridge_metrics}']}}]}}\n")
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={web}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    watch = None
    try:
        base = f"http://{web}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert prometheus.poll() is None and time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        watch = start_watch(server, bridge_metrics, tmp_path)
        # Both targets scraped (Prometheus starts scraping a few seconds after
        # it is ready on a busy machine) before the traffic, so rates see it.
        deadline = time.monotonic() + 60
        while not prometheus_query(base, 'count(up == 1) == 2')["data"]["result"]:
            assert time.monotonic() < deadline, "Prometheus did not scrape lowbitd and the bridge within 60 s"
            time.sleep(0.5)
        time.sleep(2)
        produce_traffic(server, images)
        deadline = time.monotonic() + 30
        while True:
            empty, failed = [], []
            for where, expr in expressions(dashboard()):
                if expr.startswith("label_values"):
                    metric, label = _LABEL_VALUES.search(expr).groups()
                    expr = f"count by ({label}) ({metric})"
                answer = prometheus_query(base, expr)
                if answer.get("status") != "success":
                    failed.append(f"{where}: {answer.get('error')} in {expr}")
                elif not answer["data"]["result"]:
                    empty.append(f"{where}: {expr}")
            if failed or not empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not failed, "\n".join(failed)
        assert not empty, "queries without series after traffic:\n" + "\n".join(empty)
    finally:
        if watch is not None:
            stop(watch)
        stop(prometheus)


def test_compose_file() -> None:
    """deploy/compose.yaml: podman-compose accepts it, its bind mounts exist, Prometheus scrapes lowbitd's port."""
    compose = REPO / "deploy" / "compose.yaml"
    text = compose.read_text()
    mounts = re.findall(r"^\s*-\s*(\./[^:]+):", text, re.MULTILINE)
    assert mounts, "no bind mounts found"
    for source in mounts:
        assert (compose.parent / source).exists(), f"compose.yaml mounts {source}, which does not exist"
    scrape_config = (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text()
    port = re.search(r'"--metrics-address",\s*"0\.0\.0\.0:(\d+)"', text).group(1)
    assert f'"lowbitd:{port}"' in scrape_config, "Prometheus does not scrape lowbitd's metrics port"
    promtool = shutil.which("promtool")
    if promtool is not None:
        checked = subprocess.run([promtool, "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    tool = shutil.which("podman-compose") or str(Path(sys.executable).with_name("podman-compose"))
    if not Path(tool).is_file():
        pytest.skip("podman-compose missing (pip install podman-compose): syntax not checked")
    for profile in ([], ["--profile", "camera"]):
        done = subprocess.run([tool, "-f", str(compose), *profile, "config"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        for service in ("lowbitd", "prometheus", "grafana", *(["watch"] if profile else [])):
            assert re.search(rf"^  {service}:$", done.stdout, re.MULTILINE), f"{service} missing: {done.stdout}"
