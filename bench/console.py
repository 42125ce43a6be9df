"""Console benchmark: server time of the model page over 30 days of one-minute profiles.

    .venv/bin/python bench/console.py [--days 30] [--features 50] [--rounds 7]
        [--database-url URL]

A 50-feature classifier (40 numeric, 10 categorical features, as in bench/monitoring.py)
gets 30 days of one-minute interval profiles, then the hourly roll-up a server runs (the
store holds hours for old traffic, minutes for recent). Then ``/ui/models/wide`` is
rendered for each window of the picker: the page's data (``plinth.ui.data.model_page``:
versions, deployment, the monitoring report with every interval's series and every
feature's histograms, performance, queue) and the template (SVG charts, 50 histograms).
Target: < 300 ms for 30 days. Also the HTML report ``plinth monitor --html`` writes for the
same window (``render_html`` of the same detailed report: every control chart drawn),
as process CPU time, and its size. Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from starlette.requests import Request

sys.path.insert(0, str(Path(__file__).resolve().parent))

import monitoring as mon  # bench/monitoring.py: the same model and interval rows

from plinth.config.settings import Settings
from plinth.core.contract import infer_contract
from plinth.core.interval import ProfileLayout
from plinth.core.profile import Profile
from plinth.runtime import Runtime
from plinth.services.monitoring.report_html import render_html
from plinth.services.monitoring.rollup import roll_up
from plinth.store import VersionRecord
from plinth.ui import data
from plinth.ui.routes import TEMPLATES
from plinth.ui.session import Viewer


def _request(path: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "headers": [],
                    "query_string": b"", "scheme": "http", "server": ("bench", 80)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    floats, cats = args.features * 4 // 5, args.features - args.features * 4 // 5
    train = mon._frame(rng, 20_000, floats, 0, cats)
    proba = rng.dirichlet([1, 1], 20_000)
    labels = np.asarray(["no", "yes"], dtype=object)
    reference = Profile.fit(
        train, mon._kinds(train), outputs=labels[proba.argmax(1)], output_kind="categorical",
        confidence=proba.max(1), classes=["no", "yes"],
    )  # fmt: skip
    layout = ProfileLayout(reference)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        runtime = Runtime.open(Settings(home=Path(tmp) / "home", database_url=url))
        base = mon._model(reference, train, "wide").record
        record = runtime.store.add_version(
            VersionRecord(
                **{**base.__dict__, "metadata": {
                    **base.metadata, "contract": infer_contract(train).to_dict(),
                    "metrics": {"split": "holdout", "accuracy": 0.91},
                }}
            )
        )  # fmt: skip
        t0 = time.perf_counter()
        mon._fill(runtime.store, layout, record.version, start, args.days * 24 * 60)
        filled = time.perf_counter() - t0
        roll_up(runtime.store, now=now)
        print(
            f"{args.days} days of one-minute profiles, {args.features} features "
            f"(filled in {filled:.0f} s, then rolled up to hours as a server does)"
        )
        runtime.deployments.deploy("wide", record.version, reason="bench", who="bench")
        viewer = Viewer("admin", "bench", auth_on=True)
        template = TEMPLATES.get_template("model.html")
        print(f"{'window':>7} {'data ms':>9} {'render ms':>10} {'total best':>11} "
              f"{'median':>8} {'cpu ms':>7} {'html KB':>8} {'report cpu ms':>14} "
              f"{'report KB':>10}")  # fmt: skip
        drawn = 0
        for window in data.WINDOWS:
            totals, gathers, renders, size = [], [], [], 0
            cpus, reports, report_size = [], [], 0
            for _ in range(args.rounds):
                c0 = time.process_time()
                t0 = time.perf_counter()
                page = data.model_page(runtime, "wide", window)
                t1 = time.perf_counter()
                html = template.render(
                    request=_request("/ui/models/wide"), viewer=viewer, csrf="0" * 64,
                    prefix="/ui", page=page, done=None,
                )  # fmt: skip
                t2 = time.perf_counter()
                c1 = time.process_time()
                document = render_html({**page["report"], "performance": page["performance"]})
                reports.append(time.process_time() - c1)
                report_size = len(document.encode())
                cpus.append(c1 - c0)
                gathers.append(t1 - t0)
                renders.append(t2 - t1)
                totals.append(t2 - t0)
                size = len(html.encode())
                drawn = html.count("data-chart=")
            print(
                f"{window:>7} {min(gathers) * 1e3:9.0f} {min(renders) * 1e3:10.0f} "
                f"{min(totals) * 1e3:11.0f} {statistics.median(totals) * 1e3:8.0f} "
                f"{min(cpus) * 1e3:7.0f} {size / 1024:8.0f} {min(reports) * 1e3:14.0f} "
                f"{report_size / 1024:10.0f}   ({drawn} control charts on the page)"
            )
        runtime.close()


if __name__ == "__main__":
    main()
