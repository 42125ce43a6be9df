"""Security at the wire, through a real ``plinth serve``: TLS with a certificate made here,
and a server log that never holds a token or a raw input value."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import PLINTH, Env
from tests.e2e.test_serve import _register_churn
from tests.support import churn_record, free_port

pytestmark = pytest.mark.e2e

MARKER = "raw-input-marker-5501"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    (tmp_path / "db").mkdir()
    return f"sqlite:///{tmp_path / 'db' / 'plinth.db'}"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_and_a_server_log_without_tokens_or_raw_inputs(plinth_env: Env, tmp_path: Path) -> None:
    _register_churn(plinth_env, tmp_path)
    token = plinth_env.cli("tokens", "create", "--role", "admin").stdout
    admin = next(word for word in token.split() if word.startswith("plt_"))
    cert, key = _self_signed(tmp_path)

    half = plinth_env.cli("serve", "--ssl-certfile", str(cert), check=False)
    assert half.returncode != 0 and "--ssl-keyfile" in half.stdout + half.stderr

    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [PLINTH, "serve", "--port", str(port), "--access-log",
             "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
            env=plinth_env.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            url = f"https://127.0.0.1:{port}"
            trusted = ssl.create_default_context(cafile=str(cert))
            with httpx.Client(verify=trusted, timeout=5) as client:
                for _ in range(600):
                    try:
                        if client.get(f"{url}/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                else:
                    raise AssertionError(log_path.read_text(errors="replace"))
                good = {"authorization": f"Bearer {admin}"}
                reply = client.post(
                    f"{url}/v1/models/churn/predict",
                    json={"records": [churn_record(note=MARKER)], "key": MARKER + "-key"},
                    headers=good,
                )
                assert reply.status_code == 200, reply.text
                bad = client.post(
                    f"{url}/v1/models/churn/predict",
                    json={"records": [churn_record(age=MARKER)]},
                    headers=good,
                )
                assert bad.status_code == 422  # the caller is told; the log is not
                wrong = client.post(
                    f"{url}/v1/models/churn/predict",
                    json={"records": [churn_record()]},
                    headers={"authorization": "Bearer plt_wrong-secret-77"},
                )
                assert wrong.status_code == 401
            # The same server does not speak plain HTTP.
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            # An untrusted certificate is refused by a verifying client.
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    text = log_path.read_text(errors="replace")
    assert "/v1/models/churn/predict" in text  # the access log did record the requests
    for secret in (admin, "plt_wrong-secret-77", MARKER):
        assert secret not in text, f"{secret!r} leaked into the server log"
