"""deploy/lowbitd.service: `systemd-analyze verify` passes, its exposure score
from `systemd-analyze security` stays at what was measured, its stop timeout
covers the drain, its MemoryMax covers the memory model of docs/serving.md,
and (with strace) every system call lowbitd makes through start-up, model
loading, Detect, DetectStream, a metrics scrape, SIGHUP and SIGTERM passes its
SystemCallFilter, with no writable-and-executable mapping (MemoryDenyWriteExecute)."""
from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, free_port, nanodet_only_repo, server_binary
from lowbit import Client, Frame

UNIT = REPO / "deploy" / "lowbitd.service"
DEFAULTS = REPO / "deploy" / "lowbitd.default"
INSTALLED_BINARY = "/usr/local/bin/lowbitd"
#: Measured with systemd 252 (Debian 12): 1.1 "OK". What is left exposed is
#: what a network server needs (it has the host's network and AF_INET/AF_INET6/
#: AF_UNIX sockets, no IP allow list: the operator's choice), /proc's
#: non-process files (cpuinfo reads /proc/cpuinfo on ARM), the host's root
#: directory. Dropping one of the filters (SystemCallFilter, say) takes it to 1.7.
MAX_EXPOSURE = 1.3
REQUIRED = {
    "DynamicUser": "yes", "ProtectSystem": "strict", "ReadOnlyPaths": "/var/lib/lowbit/models",
    "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "KillSignal": "SIGTERM", "Restart": "on-failure",
    "EnvironmentFile": "-/etc/default/lowbitd", "ExecReload": "/bin/kill -HUP $MAINPID",
}
MIB = 1024 * 1024


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze missing (apt-get install systemd)")
    return path


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def default_flags() -> list[str]:
    match = re.search(r'^LOWBITD_FLAGS="(.*?)"', DEFAULTS.read_text(), re.MULTILINE | re.DOTALL)
    assert match, f"no LOWBITD_FLAGS in {DEFAULTS}"
    return shlex.split(match.group(1).replace("\\\n", " "))


def flag(flags: list[str], name: str) -> int:
    return int(flags[flags.index(name) + 1])


def unit_for_verify(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary replaced by the built lowbitd (verify checks it is executable)."""
    unit = tmp_path / "lowbitd.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_BINARY, str(server_binary())))
    return unit


def test_verify_passes(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    done = subprocess.run([analyze, "verify", str(unit_for_verify(tmp_path))], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    if not Path(INSTALLED_BINARY).exists():
        # The same check fails on the unit as shipped here: it is a real check.
        as_shipped = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
        assert as_shipped.returncode != 0 and INSTALLED_BINARY in as_shipped.stderr, as_shipped.stderr


def test_hardening_and_security_score(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    settings = unit_settings()
    for key, value in REQUIRED.items():
        assert value in settings.get(key, []), f"{key}={value} missing from {UNIT.name}: {settings.get(key)}"
    assert "@system-service" in settings["SystemCallFilter"]
    done = subprocess.run([analyze, "security", "--offline=true", str(unit_for_verify(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for lowbitd\.service: ([0-9.]+) (\w+)", done.stdout)
    assert match, done.stdout + done.stderr
    score = float(match.group(1))
    print(f"\nsystemd-analyze security: {score} {match.group(2)}")
    assert score <= MAX_EXPOSURE, done.stdout


def test_stop_timeout_covers_the_drain() -> None:
    settings = unit_settings()
    grace_ms = flag(default_flags(), "--shutdown-grace-ms")
    timeout_s = int(settings["TimeoutStopSec"][0])
    assert timeout_s * 1000 >= grace_ms + 5000, f"TimeoutStopSec={timeout_s} s vs --shutdown-grace-ms {grace_ms}"


def memory_bound_mib(flags: list[str], models: int, base_mib: float) -> float:
    """docs/serving.md "Memory model", with 48 MiB of slack as test_hostile_memory uses."""
    return (base_mib + models * flag(flags, "--queue-memory-mb") + flag(flags, "--decode-memory-mb")
            + models * flag(flags, "--workers") * 8 + flag(flags, "--grpc-memory-mb")
            + flag(flags, "--max-streams") * (flag(flags, "--max-pending-kb-per-stream") + 256) / 1024 + 48)


def syscall_group(analyze: str, group: str) -> set[str]:
    out = subprocess.run([analyze, "syscall-filter", group], capture_output=True, text=True, timeout=60).stdout
    names: set[str] = set()
    for line in out.splitlines():
        item = line.strip()
        if not item or item.startswith("#") or item == group:
            continue
        if item.startswith("@"):
            names |= syscall_group(analyze, item)
        elif re.fullmatch(r"[a-z0-9_]+", item):
            names.add(item)
    return names


def test_syscalls_and_memory_under_the_unit_limits(tmp_path: Path, dog_jpg: Path) -> None:
    """lowbitd with /etc/default/lowbitd's flags, NanoDet-g, traced: its system
    calls within the unit's filter, its peak memory within MemoryMax."""
    analyze = systemd_analyze()
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace missing (apt-get install strace)")
    flags = default_flags()
    address, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    flags[flags.index("--address") + 1] = address
    flags[flags.index("--metrics-address") + 1] = metrics
    trace = tmp_path / "strace.out"
    command = [strace, "-f", "-qq", "-o", str(trace), str(server_binary()), "--model-repo",
               str(nanodet_only_repo(tmp_path)), *flags]
    log = open(tmp_path / "lowbitd.log", "w")
    tracer = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        with Client(address, timeout=60) as client:
            client.wait_until_ready(120)
            for _ in range(4):
                client.detect(dog_jpg)
            list(client.detect_stream([Frame(image=dog_jpg, camera_id="c", frame_id=i) for i in range(4)],
                                      timeout=120))
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as reply:
            assert reply.status == 200
        children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()
        assert len(children) == 1, children
        server_pid = int(children[0])
        status = Path(f"/proc/{server_pid}/status").read_text()
        peak_mib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        subprocess.run(["kill", "-HUP", str(server_pid)], check=True)
        time.sleep(2)
        subprocess.run(["kill", "-TERM", str(server_pid)], check=True)
        assert tracer.wait(timeout=60) == 0, (tmp_path / "lowbitd.log").read_text()[-2000:]
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGKILL)
            tracer.wait(timeout=10)
    log.close()
    text = trace.read_text()
    used = set(re.findall(r"^\d+ +([a-z0-9_]+)\(", text, re.MULTILINE))
    used |= set(re.findall(r"^\d+ +<\.\.\. ([a-z0-9_]+) resumed>", text, re.MULTILINE))
    assert "openat" in used and {"accept", "accept4"} & used, sorted(used)
    allowed = syscall_group(analyze, "@system-service")
    denied = syscall_group(analyze, "@privileged") | syscall_group(analyze, "@resources")
    assert not used - allowed, f"system calls outside @system-service: {sorted(used - allowed)}"
    assert not used & denied, f"system calls the unit denies (~@privileged @resources): {sorted(used & denied)}"
    writable_exec = re.findall(r"^\d+ +(?:mmap|mprotect)\(.*PROT_WRITE\|PROT_EXEC.*$|^\d+ +(?:mmap|mprotect)\(.*"
                               r"PROT_EXEC\|PROT_WRITE.*$", text, re.MULTILINE)
    assert not writable_exec, f"writable and executable mappings (MemoryDenyWriteExecute): {writable_exec[:3]}"
    # MemoryMax against the memory model: the measured warmed-up peak as base,
    # for the two models the unit's comment budgets for.
    memory_max = int(re.fullmatch(r"(\d+)M", unit_settings()["MemoryMax"][0]).group(1))
    bound = memory_bound_mib(flags, models=2, base_mib=peak_mib)
    print(f"\nlowbitd traced: {len(used)} distinct system calls, all allowed; warmed-up peak {peak_mib:.0f} MiB, "
          f"memory-model bound {bound:.0f} MiB, MemoryMax {memory_max} MiB")
    assert bound <= memory_max, f"MemoryMax={memory_max}M below the memory model's {bound:.0f} MiB"
