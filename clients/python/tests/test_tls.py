"""TLS and mutual TLS end to end: a real lowbitd with --tls-cert/--tls-key
(and --tls-client-ca), the SDK's Client and lowbit-client.

The certificates are made here at test time with the openssl command: a test
CA, a server certificate for localhost and 127.0.0.1 signed by it, a client
certificate signed by it, and a second CA (with its own client certificate)
that the server does not trust.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from conftest import SERVER_START_TIMEOUT_S, ServerProcess, nanodet_only_repo, server_binary
from helpers import DOG, assert_detections
from lowbit import Client, LowbitError
from lowbit.client import make_channel

CLI_TIMEOUT_S = 60
# A refused handshake surfaces as UNAVAILABLE; a short deadline keeps the
# refused cases fast (a TLS failure does not wait for it).
REFUSED_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed: {done.stderr}"


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=lowbit test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=directory)
    return cert, key


def _issue(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=directory)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test certificates (apt install openssl)",
                    pytrace=False)
    directory = tmp_path_factory.mktemp("pki")
    ca = _make_ca(directory, "ca")
    server = _issue(directory, "server", ca,
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client = _issue(directory, "camera-1", ca, "extendedKeyUsage=clientAuth\n")
    other_ca = _make_ca(directory, "other-ca")
    other_client = _issue(directory, "intruder", other_ca, "extendedKeyUsage=clientAuth\n")
    return Pki(ca[0], server[0], server[1], client[0], client[1], other_ca[0], other_client[0], other_client[1])


@dataclass
class TlsServerProcess(ServerProcess):
    """A ServerProcess whose start-up health check speaks TLS (with the client
    certificate when the server requires one)."""

    ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def channel(self) -> grpc.Channel:
        return make_channel(self.address, tls_ca=self.ca, tls_cert=self.client_cert, tls_key=self.client_key)


def _start(tmp_path: Path, pki: Pki, mutual: bool) -> TlsServerProcess:
    flags = ["--model-repo", str(nanodet_only_repo(tmp_path)),
             "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    if mutual:
        flags += ["--tls-client-ca", str(pki.ca)]
    return TlsServerProcess(
        log_path=tmp_path / "lowbitd.log", extra_args=flags, ca=pki.ca,
        client_cert=pki.client_cert if mutual else None, client_key=pki.client_key if mutual else None,
    ).start()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsServerProcess]:
    server = _start(tmp_path_factory.mktemp("lowbitd-tls"), pki, mutual=False)
    try:
        yield server
    finally:
        assert server.terminate() == 0, server.log_tail()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsServerProcess]:
    server = _start(tmp_path_factory.mktemp("lowbitd-mtls"), pki, mutual=True)
    try:
        yield server
    finally:
        assert server.terminate() == 0, server.log_tail()


def _assert_refused(client: Client, dog_jpg: Path) -> None:
    with client:
        with pytest.raises(LowbitError) as refused:
            client.detect(dog_jpg, timeout=REFUSED_TIMEOUT_S)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE, refused.value


# ---- TLS ----

def test_tls_detect_works(tls_server: TlsServerProcess, pki: Pki, dog_jpg: Path) -> None:
    with Client(tls_server.address, tls_ca=pki.ca) as client:
        assert_detections(client.detect(dog_jpg, score_threshold=0.35), DOG)
    # The CA as PEM bytes, and the server's DNS name instead of its IP.
    port = tls_server.address.rsplit(":", 1)[1]
    with Client(f"localhost:{port}", tls_ca=pki.ca.read_bytes()) as client:
        assert_detections(client.detect(dog_jpg, score_threshold=0.35), DOG)
    assert "TLS, certificate" in tls_server.log_path.read_text()


def test_tls_server_refuses_a_plaintext_client(tls_server: TlsServerProcess, dog_jpg: Path) -> None:
    _assert_refused(Client(tls_server.address), dog_jpg)


def test_tls_client_refuses_a_server_its_ca_did_not_sign(tls_server: TlsServerProcess, pki: Pki,
                                                         dog_jpg: Path) -> None:
    _assert_refused(Client(tls_server.address, tls_ca=pki.other_ca), dog_jpg)
    # The system's roots do not know the test CA either.
    _assert_refused(Client(tls_server.address, tls=True), dog_jpg)


def test_tls_server_name_is_checked(tls_server: TlsServerProcess, pki: Pki, dog_jpg: Path) -> None:
    _assert_refused(Client(tls_server.address, tls_ca=pki.ca, tls_server_name="camera.example"), dog_jpg)


# ---- mutual TLS ----

def test_mtls_client_with_a_ca_signed_certificate_works(mtls_server: TlsServerProcess, pki: Pki,
                                                        dog_jpg: Path) -> None:
    with Client(mtls_server.address, tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key) as client:
        assert_detections(client.detect(dog_jpg, score_threshold=0.35), DOG)
        # Streams run over the same channel.
        results = sorted(client.detect_stream([("", 1, dog_jpg), ("", 2, dog_jpg)], score_threshold=0.35),
                         key=lambda r: r.frame_id)
    assert [r.frame_id for r in results] == [1, 2]
    for result in results:
        assert_detections(result, DOG)
    assert "mutual TLS" in mtls_server.log_path.read_text()


def test_mtls_refuses_a_client_without_a_certificate(mtls_server: TlsServerProcess, pki: Pki,
                                                     dog_jpg: Path) -> None:
    _assert_refused(Client(mtls_server.address, tls_ca=pki.ca), dog_jpg)
    _assert_refused(Client(mtls_server.address), dog_jpg)


def test_mtls_refuses_a_certificate_another_ca_signed(mtls_server: TlsServerProcess, pki: Pki,
                                                      dog_jpg: Path) -> None:
    _assert_refused(Client(mtls_server.address, tls_ca=pki.ca, tls_cert=pki.other_client_cert,
                           tls_key=pki.other_client_key), dog_jpg)


def test_client_tls_arguments_are_checked(pki: Pki) -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        Client("127.0.0.1:1", tls_ca=pki.ca, tls_cert=pki.client_cert)
    with pytest.raises(OSError, match="cannot read the TLS CA certificate"):
        Client("127.0.0.1:1", tls_ca=pki.ca.with_name("missing.crt"))


# ---- lowbit-client ----

def _run_cli(*args: str) -> subprocess.CompletedProcess:
    path = Path(sys.executable).with_name("lowbit-client")
    if not path.is_file():
        pytest.fail(f"{path} missing: `pip install --no-build-isolation -e clients/python`", pytrace=False)
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_lowbit_client_tls_flags(mtls_server: TlsServerProcess, pki: Pki, dog_jpg: Path) -> None:
    done = _run_cli("detect", str(dog_jpg), "--address", mtls_server.address, "--score", "0.35",
                    "--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key))
    assert done.returncode == 0, done.stderr
    labels = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.startswith("  ")}
    assert {"bicycle", "dog", "truck"} <= labels, done.stdout

    models = _run_cli("models", "--address", mtls_server.address, "--tls-ca", str(pki.ca),
                      "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key))
    assert models.returncode == 0 and "nanodet-g" in models.stdout, models.stderr

    # Without the client certificate the server refuses the connection.
    refused = _run_cli("detect", str(dog_jpg), "--address", mtls_server.address, "--tls-ca", str(pki.ca),
                       "--timeout", str(REFUSED_TIMEOUT_S))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "UNAVAILABLE" in refused.stderr
    # A certificate without its key is bad input.
    bad = _run_cli("detect", str(dog_jpg), "--address", mtls_server.address, "--tls-cert", str(pki.client_cert))
    assert bad.returncode == 2 and "tls_cert and tls_key" in bad.stderr, bad.stderr


# ---- lowbitd's start-up checks ----

def test_lowbitd_refuses_unusable_tls_files_at_start_up(pki: Pki, tmp_path: Path) -> None:
    repo = nanodet_only_repo(tmp_path)
    cases = [
        (["--tls-cert", str(pki.server_cert)], "--tls-cert needs --tls-key"),
        (["--tls-cert", str(pki.server_cert), "--tls-key", str(tmp_path / "missing.key")], "cannot open"),
        (["--tls-cert", str(pki.server_key), "--tls-key", str(pki.server_key)], "holds no PEM certificate"),
        (["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_cert)], "holds no unencrypted PEM"),
        (["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.client_key)], "does not belong to the certificate"),
        (["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca",
          str(pki.client_key)], "--tls-client-ca"),
        (["--tls-client-ca", str(pki.ca)], "--tls-client-ca needs --tls-cert"),
    ]
    for flags, message in cases:
        started = time.monotonic()
        done = subprocess.run([str(server_binary()), "--model-repo", str(repo), "--address", "127.0.0.1:0",
                               "--metrics-address", "", *flags],
                              capture_output=True, text=True, timeout=SERVER_START_TIMEOUT_S)
        assert done.returncode == 2, (flags, done.stdout, done.stderr)
        assert message in done.stderr, (flags, done.stderr)
        # Refused before any model loads.
        assert time.monotonic() - started < 5.0, flags
