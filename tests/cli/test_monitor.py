"""The real CLI on monitoring rows: ``plinth monitor --watch`` and ``plinth prune``.

The store is seeded in-process (a registered model and interval rows written by the
collector, as a server would write them); the commands run as subprocesses of the installed
``plinth`` script, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from plinth.config.settings import Settings
from plinth.services.monitoring.alerts import LEASE
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.registry.versions import Registry
from plinth.services.rollout.deployments import Deployments
from plinth.services.serving.scoring import Job, score
from plinth.store import Store
from plinth.store.artifacts import ArtifactStore
from plinth.store.monitoring import ROLLUP_SECONDS, MonitoringStore
from tests.e2e.conftest import PLINTH, Env
from tests.services.monitoring.test_monitoring import _records, _serve
from tests.services.monitoring.test_rollup import _row
from tests.support import churn_model, churn_table

pytestmark = pytest.mark.e2e


@pytest.fixture
def registry(plinth_env: Env, database_url: str) -> Iterator[Registry]:
    """The CLI's database and artifacts, with ``churn`` registered."""
    settings = Settings(home=plinth_env.home, database_url=database_url)
    opened = Registry(
        Store(settings.resolved_database_url()), ArtifactStore(settings.artifacts_dir)
    )
    train = churn_table()
    opened.register(churn_model(train), name="churn", train=train, target="churn")
    yield opened
    opened.store.close()


@pytest.fixture
def store(registry: Registry) -> Store:
    return registry.store


@pytest.fixture
def drifted(registry: Registry) -> Store:
    """The last minute's traffic: ``age`` shifted and a ``city`` never seen in training."""
    model = registry.load(registry.store.get_version("churn"))
    collector = MonitorCollector(registry.store, interval_s=60)
    shifted = _records(
        1, 600, age=lambda s: s + 25, city=lambda s: s.where(np.arange(len(s)) % 5 != 0, "rome")
    )
    _serve(model, collector, shifted)
    collector.flush(final=True)
    return registry.store


def _lease_is_free(store: Store) -> bool:
    now = datetime.now(UTC)
    rows = MonitoringStore(store)
    taken = rows.acquire_lease(LEASE, "the-test", now, now + timedelta(seconds=1))
    if taken:
        rows.release_lease(LEASE, "the-test")
    return taken


def test_watch_evaluates_rules_each_round_and_stops_after_count(
    plinth_env: Env, drifted: Store
) -> None:
    done = plinth_env.cli("monitor", "churn", "--watch", "--every", "0.1", "--count", "3")
    out = done.stdout
    rounds = [line for line in out.splitlines() if line.startswith("[watch] round")]
    assert [r.split(" at ")[0] for r in rounds] == [f"[watch] round {i}" for i in (1, 2, 3)]
    assert "feature_drift firing" in rounds[0]
    assert all(r.endswith("alert rules evaluated: no changes") for r in rounds[1:])
    assert out.count("churn:1  last 1h") == 3  # the report, once per round
    assert "unseen_rate" in out and "feature_drift" in out
    firing = MonitoringStore(drifted).open_alerts("churn")
    assert [a.rule for a in firing if a.rule == "feature_drift"] == ["feature_drift"]
    features = next(a for a in firing if a.rule == "feature_drift").evidence["features"]
    assert features == ["age", "city"]
    assert _lease_is_free(drifted)


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_watch_stops_cleanly_on_sigint(plinth_env: Env, drifted: Store) -> None:
    command = [PLINTH, "monitor", "churn", "--watch", "--every", "0.2", "--format", "json"]
    seen: list[str] = []
    with subprocess.Popen(
        command,
        env=plinth_env.env,
        cwd=plinth_env.home.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background inherits SIGINT ignored; Ctrl-C must work here.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as process:
        try:
            assert process.stderr is not None and process.stdout is not None
            progress = _lines(process.stderr)
            deadline = time.monotonic() + 120  # a guard against hanging, not a timing check
            # Round 3 has begun: rounds 1 and 2 have printed their reports.
            while not any(line.startswith("[watch] round 3") for line in seen):
                line = progress.get(timeout=max(deadline - time.monotonic(), 0.01))
                assert line is not None, "".join(seen)
                seen.append(line)
            process.send_signal(signal.SIGINT)
            stdout = process.stdout.read()
            assert process.wait(timeout=60) == 0, "".join(seen)
            while (line := progress.get(timeout=30)) is not None:
                seen.append(line)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert any(line.startswith("stopped watching after") for line in seen)
    assert not any("Traceback" in line for line in seen)
    reports: list[dict[str, Any]] = []
    decoder, rest = json.JSONDecoder(), stdout.strip()
    while rest:  # stdout is nothing but whole JSON reports, one per finished round
        document, end = decoder.raw_decode(rest)
        reports.append(document)
        rest = rest[end:].strip()
    assert len(reports) >= 2
    assert all(r["model"] == "churn" for r in reports)
    assert reports[0]["drift"]["drifted_features"] == ["age", "city"]
    assert _lease_is_free(drifted)  # released on the way out, not left to expire


def test_prune_rolls_up_and_keeps_roll_ups_longer(plinth_env: Env, store: Store) -> None:
    rows = MonitoringStore(store)
    now = datetime.now(UTC)
    old_hour = (now - timedelta(days=45)).replace(minute=0, second=0, microsecond=0)
    ancient = (now - timedelta(days=500)).replace(minute=0, second=0, microsecond=0)
    minutes = [_row(old_hour + timedelta(minutes=i), i) for i in range(4)]
    rows.insert_intervals([*minutes, _row(ancient, 9)])
    done = plinth_env.cli("prune", "--older-than", "30d")
    assert "rolled up 5 minute interval rows into hours" in done.stdout
    assert "and 1 hourly roll-ups older than" in done.stdout  # the 500-day-old hour
    left = rows.read_intervals("m", 1, ancient, now)
    assert [(r.start, r.seconds, r.records) for r in left] == [
        (old_hour, ROLLUP_SECONDS, sum(r.records for r in minutes))
    ]
    bad = plinth_env.cli("prune", "--older-than", "30d", "--rollups-older-than", "7d", check=False)
    assert bad.returncode == 1 and "cli.invalid_retention" in bad.stderr


def test_monitor_reports_the_champion_not_a_newer_shadow_and_html_replaces_the_tables(
    plinth_env: Env, registry: Registry, drifted: Store, tmp_path: Path
) -> None:
    """Issue 11, item 4 and the HTML report's smaller ones: the default version is what
    serves, the roles are listed; --html writes the file only; p99 has no exponent."""
    champion = registry.load(registry.store.get_version("churn", 1))
    train = churn_table(seed=3)
    registry.register(churn_model(train), name="churn", train=train, target="churn")
    shadow = registry.load(registry.store.get_version("churn", 2))
    Deployments(registry.store).deploy("churn", 1, shadows=[2], reason="test")
    collector = MonitorCollector(registry.store, interval_s=60)
    _serve(shadow, collector, _records(4, 60))  # the newest traffic is the shadow's
    now = time.perf_counter()
    slow = [Job(_records(5, 20), "slow", now, now + 30) for _ in range(3)]
    for result in score(champion, slow, [collector]):
        collector.observe_reply(champion, result, 3.21)  # p99 above a second
    collector.flush(final=True)

    done = plinth_env.cli("monitor", "churn")
    assert "churn:1  last 1h" in done.stdout, done.stdout
    assert "serving: champion 1; shadows 2" in done.stdout

    page = tmp_path / "report.html"
    written = plinth_env.cli("monitor", "churn", "--html", str(page))
    assert written.stdout.strip() == f"wrote {page}"  # not the terminal tables as well
    html = page.read_text()
    assert "churn:1" in html and "serving: champion 1; shadows 2" in html
    p99 = html.split("<th>p99</th><td class='n'>")[1].split("</td>")[0]
    assert p99.endswith(" s") and "e+" not in p99, p99
    assert "<figcaption>age <span class='bad'>drifted</span></figcaption>" in html
    # A stable feature is drawn too; the series and control points come with --html.
    assert "<figcaption>tenure <span class='ok'>stable</span></figcaption>" in html
    assert "<figcaption>Latency (p50, p95, p99)</figcaption>" in html
    assert "<figcaption>mean of age <span class='bad'>breach now</span></figcaption>" in html
    assert "<h2>Performance</h2>" in html  # nothing logged here: see test_report_html
    # --format json with --html prints the same detailed document the page was drawn from.
    both = plinth_env.cli("monitor", "churn", "--html", str(page), "--format", "json")
    document = json.loads(both.stdout.split("\nwrote ")[0])
    assert "series" in document and "series" in document["control"][0]
    plain = json.loads(plinth_env.cli("monitor", "churn", "--format", "json").stdout)
    assert "series" not in plain and "series" not in plain["control"][0]
