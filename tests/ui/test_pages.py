"""The console's pages and forms in-process (TestClient), on SQLite and PostgreSQL: the open
console of a laptop (no tokens), every admin action, review, lookup and replay, sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from plinth.api import open_registry
from plinth.config.settings import Settings
from plinth.http.app import create_app
from plinth.runtime import opened
from plinth.store.training import JobRow
from tests.support import churn_model, churn_table


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, review_below=0.75, auth_refresh_s=0.0
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    train = churn_table()
    with open_registry(settings) as registry:
        for seed in (0, 1):
            table = churn_table(seed)
            registry.register(churn_model(table), name="churn", train=table, target="churn")
    del train
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def csrf(page: Response) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


def post(client: TestClient, path: str, csrf_token: str, **fields: str) -> Response:
    return client.post(path, data={"csrf_token": csrf_token, **fields}, follow_redirects=False)


def test_the_open_console_shows_and_changes_everything(client: TestClient) -> None:
    rows = churn_table(7, rows=40).drop(columns=["churn"]).astype(object)
    rows = rows.where(rows.notna(), None)
    reply = client.post("/v1/models/churn/predict", json={"records": rows.to_dict("records")})
    assert reply.status_code == 200, reply.text
    answers = reply.json()["predictions"]
    home = client.get("/ui")
    assert home.status_code == 200 and "open (no tokens)" in home.text
    assert 'data-model="churn"' in home.text
    assert client.get("/ui/login", follow_redirects=False).headers["location"] == "/ui"
    lost = client.get("/ui/nowhere")
    assert lost.status_code == 404 and "text/html" in lost.headers["content-type"]
    assert "request.not_found" in lost.text
    assert client.get("/v1/nowhere").json()["error"]["code"] == "request.not_found"  # API: JSON
    assert client.get("/ui/static/console.css").status_code == 200

    client.app.state.runtime.serving.collector.flush(final=True)  # type: ignore[attr-defined]
    page = client.get("/ui/models/churn?window=1h")
    assert page.status_code == 200
    assert "Requests and records per interval" in page.text and 'id="actions"' in page.text
    control = page.text.split('id="control"')[1].split("</section>")[0]  # drawn, as the report
    assert 'data-chart="mean of confidence"' in control and '<polyline class="limit"' in control
    assert "stayed in control; <code>plinth monitor churn --html report.html</code>" in control
    bad = client.get("/ui/models/churn?window=2h")
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]
    assert "request.invalid" in bad.text and "window must be one of 1h, 24h, 7d, 30d" in bad.text

    for body in ({"version": 1}, {"version": 2, "canary": 50}):
        assert client.post("/v1/deployments/churn", json=body).status_code == 201
    page = client.get("/ui/models/churn")
    assert "canary v2 at 50" in page.text and "Stop the canary" in page.text
    token = csrf(page)
    refused = post(client, "/ui/models/churn/promote", token)
    assert refused.status_code == 422
    assert "a reason is required" in refused.text and "the change was not confirmed" in refused.text
    done = post(client, "/ui/models/churn/stop-canary", token, reason="too slow", confirm="yes")
    assert done.status_code == 303 and done.headers["location"].endswith("done=stop-canary")
    assert (
        client.post("/v1/deployments/churn", json={"version": 2, "canary": 50}).status_code == 201
    )
    done = post(client, "/ui/models/churn/promote", token, reason="looks good", confirm="yes")
    assert done.status_code == 303
    history = client.get("/v1/deployments/churn/history").json()["revisions"]
    assert [r["action"] for r in history[:3]] == ["promote", "canary", "stop-canary"]
    assert history[0]["spec"]["champion"] == 2 and history[0]["who"] == "console"
    back = post(client, "/ui/models/churn/rollback", token, reason="undo", confirm="yes", to="1")
    assert back.status_code == 303
    assert client.get("/v1/deployments/churn").json()["spec"]["champion"] == 1
    unknown = post(client, "/ui/models/churn/explode", token, reason="x", confirm="yes")
    assert unknown.status_code == 422 and "unknown action" in unknown.text

    found = client.get(f"/ui/predictions?id={answers[0]['prediction_id']}", follow_redirects=False)
    assert found.status_code == 303
    shown = client.get(found.headers["location"] + "?replay=1")
    assert shown.status_code == 200 and "Identical" in shown.text
    missing = client.get("/ui/predictions/nope")
    assert missing.status_code == 404 and "log.prediction_not_found" in missing.text

    queue = client.get("/ui/review?model=churn")
    ids = re.findall(r'data-review="([^"]+)"', queue.text)
    assert len(ids) >= 2, "the gate should have sent several answers to review"
    claimed = post(client, f"/ui/review/{ids[0]}/claim", csrf(queue))
    assert claimed.headers["location"] == f"/ui/review/{ids[0]}"
    case = client.get(claimed.headers["location"])
    assert "Claimed by <b>console</b>" in case.text and "Approve" in case.text
    wrong = post(client, f"/ui/review/{ids[0]}/resolve", csrf(case), action="maybe")
    assert wrong.status_code == 422 and "review." in wrong.text
    approved = post(client, f"/ui/review/{ids[0]}/resolve", csrf(case), action="approve")
    # Straight on to the next case, already claimed.
    assert approved.headers["location"] == f"/ui/review/{ids[1]}?done={ids[0]}"
    assert "Claimed by <b>console</b>" in client.get(approved.headers["location"]).text


def test_sign_in_sign_out_and_revocation(client: TestClient, settings: Settings) -> None:
    with opened(settings) as runtime:
        row, token = runtime.tokens.create("reviewer", "rita")
        runtime.tokens.create("admin", "ada")  # auth stays on when rita's token goes
    away = client.get("/ui/models/churn", follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"] == "/ui/login?next=/ui/models/churn"
    login = client.get(away.headers["location"])
    wrong = post(client, "/ui/login", csrf(login), token="plt_wrong", next="/ui/models/churn")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    signed = post(client, "/ui/login", csrf(login), token=token, next="https://evil.example/")
    assert signed.headers["location"] == "/ui"  # never a redirect out of the console
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; over TLS it is Secure:
    tls = TestClient(client.app, base_url="https://testserver")
    over_tls = post(tls, "/ui/login", csrf(tls.get("/ui/login")), token=token)
    assert over_tls.status_code == 303 and "Secure" in over_tls.headers["set-cookie"]
    home = client.get("/ui")
    assert "rita (reviewer)" in home.text and "Review</a>" in home.text
    assert 'id="actions"' not in client.get("/ui/models/churn").text
    out = post(client, "/ui/logout", csrf(home))
    assert out.status_code == 303
    assert client.get("/ui", follow_redirects=False).status_code == 303

    login = client.get("/ui/login")
    post(client, "/ui/login", csrf(login), token=token)
    assert client.get("/ui", follow_redirects=False).status_code == 200
    with opened(settings) as runtime:
        runtime.tokens.revoke(row.id)
    assert client.get("/ui", follow_redirects=False).headers["location"].startswith("/ui/login")


def test_training_jobs_show_on_the_home_model_and_job_pages(
    client: TestClient, settings: Settings
) -> None:
    assert "No training recipe" in client.get("/ui/models/churn").text
    assert client.get("/ui/jobs/nope").status_code == 404
    now = datetime.now(UTC)
    with opened(settings) as runtime:
        jobs = runtime.retraining.jobs
        created = now - timedelta(minutes=5)
        failed, _ = jobs.enqueue(
            JobRow("01JOBFAILED", "churn", "queued", "drift", "alert x", False, created)
        )
        jobs.claim("w", now, now + timedelta(minutes=1))
        stages = {"building data": (now - timedelta(seconds=9)).isoformat()}
        jobs.renew(failed.id, "w", now + timedelta(minutes=1), data={"stage": "building data",
                   "stages": stages})  # fmt: skip
        error = {"code": "data.unreadable", "message": "no such table", "hint": "check sql"}
        jobs.finish(failed.id, "w", "failed", now, error=error)
        running, _ = jobs.enqueue(
            JobRow("01JOBRUNNING", "churn", "queued", "manual", "by hand", False, now)
        )
        jobs.claim("w", now, now + timedelta(minutes=1))
        stages |= {"training": now.isoformat()}
        jobs.renew(running.id, "w", now + timedelta(minutes=1),
                   data={"stage": "training", "stages": stages})  # fmt: skip

    home = client.get("/ui")
    row = home.text[home.text.index('data-model="churn"') :]
    assert 'href="/ui/jobs/01JOBRUNNING"' in row and "running" in row and "training" in row
    page = client.get("/ui/models/churn").text
    assert 'data-job="01JOBRUNNING"' in page and 'data-job="01JOBFAILED"' in page
    assert "data.unreadable" in page and "alert x" in page and "stopped at building data" in page
    shown = client.get("/ui/jobs/01JOBRUNNING").text
    assert "run by w" in shown and "now</span>" in shown and "Gate" not in shown
    shown = client.get("/ui/jobs/01JOBFAILED").text
    assert "data.unreadable" in shown and "hint: check sql" in shown
    assert "nothing registered" in shown


def test_a_remote_models_page_shows_its_cost_and_budget(settings: Settings) -> None:
    from datetime import UTC, datetime

    import pandas as pd

    from plinth.core.interval import LatencyHistogram, Usage, encode_counts
    from plinth.flavors.remote import RemoteSpec
    from plinth.store import Store
    from plinth.store.monitoring import IntervalRow, MonitoringStore
    from plinth.store.spend import SpendStore
    from tests.remote_support import EXAMPLES, triage_spec

    spec = triage_spec(
        "http://127.0.0.1:9/v1", cost={"prompt_per_1k": 1.0, "budget_per_day": 2.0}
    )  # never called: the page reads what the workers stored
    with open_registry(settings) as registry:
        registry.register_remote(
            RemoteSpec.from_dict(spec), name="triage", examples=pd.DataFrame(EXAMPLES)
        )
    now = datetime.now(UTC)
    usage = Usage(calls=7, cached=2, prompt_tokens=700, completion_tokens=28, cost=0.7)
    with Store(settings.resolved_database_url()) as store:
        MonitoringStore(store).insert_intervals(
            [
                IntervalRow(
                    "triage", 1, now.replace(second=0, microsecond=0), 60.0, "w1", 9, 9, {}, 0,
                    {}, encode_counts(LatencyHistogram().counts), None, None, usage.to_dict(),
                )
            ]
        )  # fmt: skip
        SpendStore(store).add("triage", now.date(), 1.7)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        page = client.get("/ui/models/triage")
    assert page.status_code == 200, page.text
    card = page.text[page.text.index('id="cost"') :]
    assert "<td>v1</td>" in card and '<td class="n">700</td>' in card
    assert "spent 1.7 of the daily budget of 2 (85 %; alert at 80 %, then fallback)" in card
