"""``plinth serve --ssl-certfile/--ssl-keyfile``: HTTPS with a certificate made here."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.e2e.conftest import PLINTH, REPO, Server, stop_server
from tests.support import churn_model, churn_record, churn_table, free_port

pytestmark = pytest.mark.e2e


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_serve_speaks_https_with_the_given_certificate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{tmp_path / 'plinth.db'}")
    train = churn_table()
    with open_registry(settings) as registry:
        registry.register(churn_model(train), name="churn", train=train, target="churn")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PLINTH_DATABASE_URL=settings.database_url or "")
    env["PYTHONPATH"] = str(REPO)
    cert, key = self_signed(tmp_path)

    half = subprocess.run(
        [PLINTH, "serve", "--ssl-certfile", str(cert)], env=env, capture_output=True, text=True
    )
    assert half.returncode != 0 and "cli.tls_files" in half.stdout + half.stderr

    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [PLINTH, "serve", "--port", str(port), "--ssl-certfile", str(cert),
         "--ssl-keyfile", str(key)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Server(f"https://127.0.0.1:{port}", process, log)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{server.url}/readyz", verify=trust, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (
                tmp_path / "server.log"
            ).read_text(errors="replace")
            time.sleep(0.2)
        body = {"records": [churn_record()]}
        with httpx.Client(base_url=server.url, verify=trust, timeout=30) as https:
            assert https.post("/v1/models/churn/predict", json=body).status_code == 200
        with pytest.raises(httpx.ConnectError):  # a client that does not trust it refuses
            httpx.get(f"{server.url}/healthz", timeout=5)
        with pytest.raises(httpx.HTTPError):  # and plain HTTP gets no answer
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        stop_server(server)
