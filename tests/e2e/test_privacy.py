"""[models.NAME.log] through a real ``plinth serve``: the redacted value never reaches the
database file, a hashed one is stored as its keyed hash, and forget works over HTTP and CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from plinth.core.privacy import keyed_hash
from tests.e2e.conftest import PLINTH, Env, Server, stop_server
from tests.e2e.test_serve import _register_churn
from tests.support import churn_record, free_port

pytestmark = pytest.mark.e2e

EMAIL = "ada.lovelace@example.org"
CUSTOMER = "cust-8841-unique"
SECRET = "0123456789abcdef0123456789abcdef"
POLICY = """
[models.churn.log]
redact = ["email"]
hash = ["customer_id"]
retention = "30d"
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the test reads the database's own files."""
    (tmp_path / "db").mkdir()
    return f"sqlite:///{tmp_path / 'db' / 'plinth.db'}"


def test_redacted_values_never_reach_the_database_file(
    plinth_env: Env, serve: type[Server], tmp_path: Path
) -> None:
    _register_churn(plinth_env, tmp_path)
    policy = tmp_path / "plinth.toml"
    policy.write_text(POLICY)
    plinth_env.env["PLINTH_POLICY_FILE"] = str(policy)

    # Hashing without a key: the server refuses to start and says why.
    refused = subprocess.run(
        [PLINTH, "serve", "--port", str(free_port())],
        env=plinth_env.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "config.log_hash_key" in refused.stdout + refused.stderr

    plinth_env.env["PLINTH_LOG_HASH_KEY"] = SECRET
    server = serve()
    ids = {}
    for key in ("subject-7", "subject-8"):
        record = churn_record(email=EMAIL, customer_id=CUSTOMER)
        reply = httpx.post(
            f"{server.url}/v1/models/churn/predict", json={"records": [record], "key": key}
        )
        assert reply.status_code == 200, reply.text
        answer = reply.json()["predictions"][0]
        assert not {"log.redacted", "log.hashed"} & {w["code"] for w in answer["warnings"]}
        ids[key] = answer["prediction_id"]

    logged = httpx.get(f"{server.url}/v1/predictions/{ids['subject-7']}").json()
    assert "email" not in logged["input"]
    assert logged["input"]["customer_id"] == keyed_hash(SECRET.encode(), CUSTOMER)

    forgot = httpx.post(f"{server.url}/v1/forget", json={"key": "subject-8"})
    assert forgot.status_code == 200, forgot.text
    assert forgot.json()["predictions"] == 1
    bad = httpx.post(f"{server.url}/v1/forget", json={"key": 7, "who": "x"})
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json()["error"]["problems"]} == {"key", "who"}
    stop_server(server)

    # Every byte the database wrote: main file, WAL and shared memory.
    files = list((tmp_path / "db").iterdir())
    assert files
    stored = b"".join(f.read_bytes() for f in files)
    assert keyed_hash(SECRET.encode(), CUSTOMER).encode() in stored  # the row is there
    assert EMAIL.encode() not in stored
    assert CUSTOMER.encode() not in stored
    (server_log,) = tmp_path.glob("server-*.log")
    assert EMAIL not in server_log.read_text(errors="replace")  # nor in the server's own log

    # The extra fields were not model features: replay is still exact.
    replayed = plinth_env.cli("replay", ids["subject-7"])
    assert "identical" in replayed.stdout.lower(), replayed.stdout

    gone = json.loads(plinth_env.cli("forget", "--key", "subject-7", "--json").stdout)
    assert gone == {"predictions": 1, "labels": 0, "label_history": 0, "review_items": 0}
    trail = json.loads(plinth_env.cli("audit", "--action", "subject.forget", "--json").stdout)
    assert [(e["who"].startswith("api:"), e["detail"]["predictions"]) for e in trail] == [
        (False, 1),  # the CLI's, by the OS user
        (True, 1),  # the HTTP route's, by its token name (auth off here)
    ]
    assert "subject-7" not in json.dumps(trail)  # counts only, never the subject's key
    missing = plinth_env.cli("replay", ids["subject-7"], check=False)
    assert missing.returncode != 0 and "not_found" in missing.stdout + missing.stderr
