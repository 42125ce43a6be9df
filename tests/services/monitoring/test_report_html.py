"""The HTML report, rendered from a seeded store: every section drawn with real numbers.

Ten minutes of traffic go through the real scorer and collector (the last five with ``age``
shifted, slower and with contract failures), sixty predictions are logged and half of them
labelled, then ``Monitor.report(detail=True)`` and ``Performance.report`` feed the page,
as ``plinth monitor --html`` does.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from plinth.core.durations import format_latency
from plinth.services.feedback.labels import Feedback
from plinth.services.feedback.performance import Performance, align
from plinth.services.monitoring.collector import MonitorCollector
from plinth.services.monitoring.report import Monitor
from plinth.services.monitoring.report_html import _performance, render_html
from plinth.services.registry.versions import Registry, ServedModel
from plinth.services.serving.scoring import Job, score
from plinth.store import PredictionRecord, Store
from tests.services.monitoring.test_monitoring import T0, Clock, _at, _records
from tests.support import churn_model, churn_record, churn_table

EXPONENT = re.compile(r"\d[eE][+-]?\d")
MINUTES = 14
WINDOW = timedelta(minutes=MINUTES)
NOW = _at(T0 + 60 * MINUTES)


def _serve(model: ServedModel, collector: MonitorCollector, records: list[Any], s: float) -> None:
    jobs = [
        Job(records[i : i + 20], f"r{i}", time.perf_counter(), time.perf_counter() + 30)
        for i in range(0, len(records), 20)
    ]
    for _job, result in zip(jobs, score(model, jobs, [collector]), strict=True):
        collector.observe_reply(model, result, s)


def _log_and_label(store: Store, model: ServedModel) -> None:
    """Sixty logged predictions inside the performance window, thirty of them labelled."""
    # Performance windows are epoch-aligned: log in the middle of the one holding NOW.
    middle = align(NOW, WINDOW) - WINDOW / 2
    rng = np.random.default_rng(3)
    p_yes = rng.uniform(0, 1, 60)
    ids = [f"p{i:02d}" for i in range(60)]
    store.insert_predictions(
        [
            PredictionRecord(
                id=pid, ts=middle + timedelta(seconds=i), model="churn", version=1,
                sha256=model.record.sha256, route="champion", input=churn_record(),
                features=churn_record(),
                output={"prediction": "yes" if p > 0.5 else "no",
                        "probabilities": {"no": 1 - p, "yes": p}},
                confidence=None, latency_ms=4.0, warnings=[], request_id=pid,
            )
            for i, (pid, p) in enumerate(zip(ids, p_yes, strict=True))
        ]
    )  # fmt: skip
    truth = ["yes" if p > 0.4 else "no" for p in p_yes[:30]]
    Feedback(store).ingest(
        [
            {"prediction_id": pid, "label": y, "time": (middle + timedelta(minutes=2)).isoformat()}
            for pid, y in zip(ids[:30], truth, strict=True)
        ]
    )


def seed(registry: Registry) -> Store:
    """Register churn, serve fourteen minutes through the collector, log and label."""
    train = churn_table()
    record = registry.register(churn_model(train), name="churn", train=train, target="churn")
    model = registry.load(record)
    store = registry.store
    clock = Clock(T0)
    collector = MonitorCollector(store, interval_s=60, clock=clock)
    for minute in range(MINUTES):
        clock.now = T0 + 60 * minute
        if minute < 10:
            _serve(model, collector, _records(20 + minute, 200), 0.004 + 0.001 * minute)
        else:
            shifted = _records(20 + minute, 200, age=lambda s: s + 60)
            _serve(model, collector, shifted, 3.21)  # slow: p99 above a second
            bad = [{**r, "age": "old"} for r in _records(40 + minute, 20)]
            _serve(model, collector, bad, 0.002)
    collector.flush(final=True)
    _log_and_label(store, model)
    return store


def build_report(store: Store) -> dict[str, Any]:
    """What ``plinth monitor churn --window 14m --html`` renders, at ``NOW``."""
    body = Monitor(store).report("churn", window=WINDOW, now=NOW, detail=True)
    body["performance"] = Performance(store).report("churn", window=WINDOW, windows=1, end=NOW)
    return body


@pytest.fixture
def seeded(registry: Registry) -> Store:
    return seed(registry)


@pytest.fixture
def report(seeded: Store) -> dict[str, Any]:
    return build_report(seeded)


def _section(page: str, anchor: str) -> str:
    return page.split(f"<section id='{anchor}'>")[1].split("</section>")[0]


def test_traffic_and_latency_are_drawn_over_time_in_readable_units(
    report: dict[str, Any],
) -> None:
    page = render_html(report)
    traffic = _section(page, "traffic")
    assert traffic.count("<svg") == 4  # requests, latency, errors, contract failures
    assert traffic.count("<polyline") >= 4
    series = report["series"]
    assert len(series["starts"]) == MINUTES and series["validation_failures"][-1] == 1
    # Legends carry each line's last interval in its unit: seconds now, ms before the
    # slowdown (the early minutes' p50, about 4 ms, sets no exponent either).
    assert re.search(r">p99: 3\.\d+ s<", traffic) and series["p50"][0] < 0.01
    assert f">p99: {format_latency(series['p99'][-1])}<" in traffic
    assert f">requests: {series['requests'][-1]}<" in traffic
    assert ">contract failures: 1<" in traffic and ">errors: 0<" in traffic
    p99 = traffic.split("<th>p99</th><td class='n'>")[1].split("</td>")[0]
    assert p99 == format_latency(report["latency"]["p99"]) and p99.endswith(" s")
    rate = report["traffic"]["validation_rate"]
    assert rate == 4 / 144  # one bad request in each of the last four minutes
    assert f"<b>{rate * 100:.2f} %</b><span>contract failures</span>" in traffic
    body = page.split("</style>")[1]  # not the CSS's colours
    text = re.sub(r"<[^>]+>", " ", body)  # what a reader sees, without coordinates
    found = [text[m.start() - 40 : m.end() + 10] for m in EXPONENT.finditer(text)]
    assert not found, found


def test_control_charts_are_drawn_with_limits_and_breaches(report: dict[str, Any]) -> None:
    page = render_html(report)
    control = _section(page, "control")
    charts = {(c["statistic"], c["section"]): c for c in report["control"]}
    age, tenure = charts[("mean", "age")], charts[("mean", "tenure")]
    assert age["breach"] and not tenure["breach"]
    assert len(age["series"]["z"]) == age["points"] == MINUTES
    figures = control.split("<figure>")[1:]
    assert len(figures) == len(report["control"])
    first = figures[0]  # breaching charts come first
    assert "breach now" in first and first.count('class="breach"') == age["breaches"]
    assert 'class="centre"' in first and first.count('class="limit"') == 2
    assert (
        first.split('class="points" d="')[1].count("h0") == MINUTES
        and '<polyline class="s0"' in first
    )
    calm = [c for c in report["control"] if c["breaches"] == 0]
    assert calm and sum("in control" in f for f in figures) == len(calm)
    assert sum('class="breach"' not in f for f in figures) == len(calm)
    # Latency is charted after a ten-interval warm-up; the slowdown breaches it, and its
    # table row reads as a latency.
    assert charts[("p95_latency", "latency")]["breach"]
    (row,) = [r for r in control.split("<tr") if "<td>p95_latency</td>" in r]
    value = format_latency(charts[("p95_latency", "latency")]["last"]["value"])
    assert f"<td class='n'>{value}</td>" in row and value.endswith(" s")


def test_every_feature_has_a_histogram_drifted_first(report: dict[str, Any]) -> None:
    page = render_html(report)
    drift = _section(page, "drift")
    figures = drift.split("<figure>")[1:]
    captions = [f.split("<figcaption>")[1].split("</figcaption>")[0] for f in figures]
    assert captions[0] == "age <span class='bad'>drifted</span>"
    assert "tenure <span class='ok'>stable</span>" in captions
    assert captions[-1] == "predictions (output)"
    stable = figures[captions.index("tenure <span class='ok'>stable</span>")]
    assert stable.count('<rect class="ref"') >= 2 and '<rect class="cur"' in stable
    assert len(figures) == len(report["drift"]["features"]) + 1


def test_performance_shows_realised_estimated_band_and_holdout(report: dict[str, Any]) -> None:
    (entry,) = report["performance"]["windows"][-1]["versions"]
    assert (entry["predictions"], entry["labelled"]) == (60, 30)
    page = render_html(report)
    perf = _section(page, "performance")
    row = next(r for r in perf.split("<tr") if "<td>accuracy</td>" in r)
    realised = entry["realised"]["accuracy"]
    estimated = entry["estimated"]["accuracy"]
    assert f"<td class='n'>{realised:.3g}</td>" in row
    assert f"<td class='n'>{estimated['value']:.3g}</td>" in row
    assert f"{estimated['lower']:.3g} … {estimated['upper']:.3g}" in row
    assert '<rect class="band"' in row and 'class="estimate"' in row
    assert 'class="holdout"' in row and '<circle class="realised' in row
    assert "60 predictions, 30 labelled (50.0 %)" in perf


def test_the_page_is_self_contained_and_themed(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert "<script" not in page and "href=" not in page and "src=" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "prefers-color-scheme:dark" in page and "color-scheme" in page
    assert ' style="' not in page  # colours by class, so both themes restyle them


def test_the_detail_only_adds_keys(seeded: Store) -> None:
    """The plain JSON report keeps its shape (the API's default); detail adds to it."""
    args: dict[str, Any] = {"window": WINDOW, "now": NOW}
    plain = Monitor(seeded).report("churn", **args)
    detail = Monitor(seeded).report("churn", **args, detail=True)
    assert set(detail) - set(plain) == {"series"}
    assert "series" not in plain["control"][0]
    for before, after in zip(plain["control"], detail["control"], strict=True):
        assert {k: v for k, v in after.items() if k != "series"} == before
    assert set(detail["histograms"]) - set(plain["histograms"]) == {"(output)"}


def test_a_performance_section_without_labels_or_predictions() -> None:
    performance = {
        "task": "classification",
        "windows": [
            {
                "versions": [
                    {
                        "version": 1,
                        "predictions": 120,
                        "labelled": 0,
                        "coverage": 0.0,
                        "realised": None,
                        "holdout": {"accuracy": 0.91},
                    }
                ]
            }
        ],
    }
    page = "".join(_performance(performance))
    assert "<td>accuracy</td><td class='n'>0.91</td><td class='n'>—</td>" in page
    empty = "".join(_performance({"task": "regression", "windows": []}))
    assert "No predictions in this window." in empty
