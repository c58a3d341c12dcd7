"""The check before training asks a tracking server through MLflow's own client: token auth, TLS settings and a
proxy from the environment work as they do for MLflow, and a server that is down or silent fails it within seconds."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import http.server
import ipaddress
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import MlflowServer, free_port

from stacktune.search.errors import UnreachableError
from stacktune.search.tracking.store import check_tracking

# Everything of the user's that would change what the check sends.
_CLIENT_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in _CLIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials of the user's


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


class Gateway:
    """A small HTTP(S) server on 127.0.0.1 that forwards every request to an MLflow server and records it: a reverse
    proxy (the tracking URI names it) or an HTTP proxy (HTTP_PROXY names it). With `token` it answers 401 itself to
    requests without that bearer token, as a token-checking gateway does; `host` is the Host header it sends on."""

    def __init__(self, upstream: int, *, tls: ssl.SSLContext | None = None, token: str = "", host: str = ""):
        self.upstream, self.token, self.host = upstream, token, host
        self.authorizations: list[str] = []
        self.targets: list[str] = []
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _forwarder(self))
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.uri = f"{'https' if tls else 'http'}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def _forwarder(gateway: Gateway) -> type[http.server.BaseHTTPRequestHandler]:
    class Forward(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _forward(self) -> None:
            gateway.targets.append(self.path)
            gateway.authorizations.append(self.headers.get("Authorization", ""))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if gateway.token and self.headers.get("Authorization") != f"Bearer {gateway.token}":
                self._answer(401, b'{"error_code": "UNAUTHENTICATED", "message": "a bearer token is needed"}', {})
                return
            skip = {"host", "connection", "proxy-connection", "keep-alive", "content-length"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            headers["Host"] = gateway.host or f"127.0.0.1:{gateway.upstream}"
            target = urlsplit(self.path)  # an HTTP proxy is sent the whole URL
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream = http.client.HTTPConnection("127.0.0.1", gateway.upstream, timeout=30)
            try:
                upstream.request(self.command, path, body=body, headers=headers)
                answer = upstream.getresponse()
                self._answer(answer.status, answer.read(), dict(answer.getheaders()))
            finally:
                upstream.close()

        def _answer(self, status: int, body: bytes, headers: dict) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Forward


@contextlib.contextmanager
def gateway(upstream: int, **options):
    """A Gateway in front of port `upstream`, closed on the way out."""
    gw = Gateway(upstream, **options)
    try:
        yield gw
    finally:
        gw.close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, written as PEM files under `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stacktune test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _failure(uri: str) -> UnreachableError:
    with pytest.raises(UnreachableError) as failed:
        check_tracking(uri)
    assert failed.value.exit_code == 3 and len(str(failed.value).splitlines()) == 1
    return failed.value


@pytest.mark.slow
def test_the_token_in_mlflow_tracking_token_reaches_the_server_as_a_bearer_header(server, monkeypatch):
    token = "tok-" + "7f3a9c" * 4
    with gateway(server.port, token=token) as gw:
        assert "needs credentials: set MLFLOW_TRACKING_USERNAME" in str(_failure(gw.uri))
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "not-" + token)
        refused = str(_failure(gw.uri))
        assert "refused the token in MLFLOW_TRACKING_TOKEN" in refused and token not in refused
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        check_tracking(gw.uri)
    assert gw.authorizations[-1] == f"Bearer {token}"


@pytest.mark.slow
# MLFLOW_TRACKING_INSECURE_TLS asks for an unverified request, which urllib3 warns about, as it should.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_self_signed_https_server_passes_with_mlflow_tls_settings_and_fails_without(server, tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with gateway(server.port, tls=tls) as gw:
        failed = str(_failure(gw.uri))
        assert f"cannot reach the MLflow tracking server at {gw.uri}" in failed and "certificate" in failed
        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
        check_tracking(gw.uri)
        monkeypatch.delenv("MLFLOW_TRACKING_INSECURE_TLS")
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
        check_tracking(gw.uri)
    assert len(gw.targets) >= 2  # both passes were answered by the server behind it


@pytest.mark.slow
def test_a_proxy_from_the_environment_carries_the_check(server, monkeypatch):
    with gateway(server.port) as proxy:
        # A name that does not resolve here: only the proxy can reach it.
        uri = "http://mlflow.stacktune-test.invalid:5000"
        monkeypatch.setenv("HTTP_PROXY", proxy.uri)
        check_tracking(uri)
    assert proxy.targets and proxy.targets[-1].startswith(f"{uri}/api/")


@pytest.mark.slow
def test_a_server_refusing_the_host_name_says_how_to_allow_it(server):
    with gateway(server.port, host="elsewhere.example") as gw:
        refused = str(_failure(gw.uri))
    assert "Invalid Host header" in refused and "--allowed-hosts" in refused and "127.0.0.1" in refused


def test_a_refused_port_fails_within_seconds_and_leaves_the_users_client_settings(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")  # MLflow's client would wait minutes
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    failed = str(_failure(uri))
    elapsed = time.monotonic() - start
    assert f"cannot reach the MLflow tracking server at {uri}" in failed and "refused" in failed
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ and "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR" not in os.environ


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_that_never_answers_fails_within_seconds(scheme):
    # Connections complete in the kernel's backlog, and nothing ever reads or answers them.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        uri = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        failed = str(_failure(uri))
        elapsed = time.monotonic() - start
    assert f"cannot reach the MLflow tracking server at {uri}" in failed and "timed out" in failed
    assert elapsed < 10, f"took {elapsed:.1f} s"
