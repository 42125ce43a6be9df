"""Faults on a real ``plinth serve``: overload and broken artifacts at start-up.

Each fault has a defined answer: overload is shed at once with 503 ``server.overloaded``
and a Retry-After (never a 500); a version whose artifact was tampered with or deleted is
refused with 503 ``registry.hash_mismatch`` / ``registry.artifact_missing`` while every
other model serves, and ``/readyz`` names the broken one.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from plinth.api import open_registry
from plinth.config.settings import Settings
from tests.e2e.conftest import PLINTH, Env, Server, stop_server
from tests.rollout_support import ConstantModel, SlowModel, register
from tests.support import free_port

pytestmark = pytest.mark.e2e

SLOW = {"a": 900.0, "b": 0.0}  # SlowModel sleeps on a > 500


def settings_of(env: Env) -> Settings:
    return Settings(home=env.home, database_url=env.env["PLINTH_DATABASE_URL"])


def test_overload_is_shed_at_once_with_retry_after_and_never_a_500(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    with open_registry(settings_of(plinth_env)) as registry:
        register(registry, "m", SlowModel(0.2))
    policy = tmp_path / "plinth.toml"
    policy.write_text("[models.m]\nmax_batch_size = 1\n")
    plinth_env.env.update(PLINTH_POLICY_FILE=str(policy), PLINTH_REQUEST_TIMEOUT_S="0.3")
    server = serve()
    url = f"{server.url}/v1/models/m/predict"
    assert httpx.post(url, json={"records": [SLOW]}, timeout=10).status_code == 200  # its cost

    def call(_: int) -> httpx.Response:
        return httpx.post(url, json={"records": [SLOW]}, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(call, range(8)))
    # One call at a time, 0.2 s each, a 0.3 s deadline: most of eight are refused at once.
    assert {r.status_code for r in replies} <= {200, 503}
    shed = [r for r in replies if r.json().get("error", {}).get("code") == "server.overloaded"]
    assert shed, [r.json() for r in replies]
    for reply in shed:
        assert int(reply.headers["retry-after"]) >= 1
        assert "Retry-After" in reply.json()["error"]["hint"]
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    line = next(x for x in metrics.splitlines() if x.startswith("plinth_requests_shed_total{"))
    assert 'model="m"' in line and float(line.split()[-1]) >= len(shed)

    # The Open Inference Protocol goes through the same admission: shed the same way, in the
    # protocol's error shape, with the same Retry-After.
    tensors = [
        {"name": name, "datatype": "FP64", "shape": [1], "data": [value]}
        for name, value in SLOW.items()
    ]

    def infer(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/v2/models/m/infer", json={"inputs": tensors}, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        inferred = list(pool.map(infer, range(8)))
    assert {r.status_code for r in inferred} <= {200, 503}
    v2_shed = [r for r in inferred if r.json().get("code") == "server.overloaded"]
    assert v2_shed, [r.json() for r in inferred]
    for reply in v2_shed:
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.json()["error"].startswith("server.overloaded: ")


def start_unready(env: Env) -> tuple[Server, httpx.Response]:
    """``plinth serve`` that is up but may never be ready: its first complete /readyz."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(env.home.parent / f"server-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [PLINTH, "serve", "--port", str(port)],
        env=env.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(url, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        if ready.json().get("status") != "unavailable":
            return server, ready
    stop_server(server)
    raise AssertionError((env.home.parent / f"server-{port}.log").read_text(errors="replace"))


def test_a_tampered_or_missing_artifact_is_refused_and_named_while_the_rest_serve(
    plinth_env: Env,
) -> None:
    settings = settings_of(plinth_env)
    with open_registry(settings) as registry:
        for name, value in (("good", 1.0), ("tampered", 2.0), ("gone", 3.0)):
            register(registry, name, ConstantModel(value))
        shas = {name: registry.store.get_version(name).sha256 for name in ("tampered", "gone")}
    tampered = settings.artifacts_dir / shas["tampered"]
    os.chmod(tampered, 0o644)
    tampered.write_bytes(tampered.read_bytes() + b"\x00")
    (settings.artifacts_dir / shas["gone"]).unlink()

    server, ready = start_unready(plinth_env)
    try:
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["loaded"] == ["good:1"]
        assert body["errors"]["tampered"]["code"] == "registry.hash_mismatch"
        assert body["errors"]["gone"]["code"] == "registry.artifact_missing"
        with httpx.Client(base_url=server.url, timeout=10) as http:
            record = {"records": [{"a": 1.0, "b": 0.0}]}
            good = http.post("/v1/models/good/predict", json=record)
            assert good.status_code == 200 and good.json()["predictions"][0]["prediction"] == 1.0
            for name, code in (
                ("tampered", "registry.hash_mismatch"),
                ("gone", "registry.artifact_missing"),
            ):
                refused = http.post(f"/v1/models/{name}/predict", json=record)
                assert refused.status_code == 503, refused.text
                error = refused.json()["error"]
                assert error["code"] == code and error["hint"]
    finally:
        stop_server(server)
