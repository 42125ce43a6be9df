"""Fold rounds into medians with their spread, compare Plinth with each peer, and write it up.

Medians, because one noisy round on a shared machine should not move the figure; the spread
(half the min-max range, as a percentage of the median) says how far to trust it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

METRICS = ("rps", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_req", "rss_mb")


def step_labels(concurrency: list[int]) -> list[str]:
    """'1', '16', '64', '1 after burst': a level seen again after a higher one is marked."""
    labels, peak = [], 0
    for c in concurrency:
        labels.append(f"{c} after burst" if c < peak else str(c))
        peak = max(peak, c)
    return labels


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    med = statistics.median(values)
    spread = 50 * (max(values) - min(values)) / med if med else 0.0
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "spread_pct": spread,
        "n": len(values),
    }


def aggregate(runs: list[dict[str, Any]], labels: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per server, per step: the median and spread of each metric over consistent runs."""
    out: dict[str, list[dict[str, Any]]] = {}
    for server in dict.fromkeys(r["server"] for r in runs):
        steps = []
        for i, label in enumerate(labels):
            kept = [r for r in runs if r["server"] == server and r["step"] == i and r["kept"]]
            dropped = sum(r["dropped"] for r in runs if r["server"] == server and r["step"] == i)
            row: dict[str, Any] = {
                "step": i,
                "label": label,
                "rounds": len(kept),
                "dropped": dropped,
            }
            errors = sum(r["load"]["non_2xx"] for r in kept)
            row["non_2xx"] = errors
            other = [
                r["server_core_other_pct"]
                for r in kept
                if r.get("server_core_other_pct") is not None
            ]
            # The worst round: one busy neighbour is enough to distrust a median.
            row["other_load_pct_max"] = max(other) if other else None
            steal = [
                r["server_core_steal_pct"]
                for r in kept
                if r.get("server_core_steal_pct") is not None
            ]
            # Time the hypervisor gave the server's core to another VM: slows everything.
            row["steal_pct_max"] = max(steal) if steal else None
            for m in METRICS:
                row[m] = _summary([r[m] if m in r else r["load"][m] for r in kept])
            steps.append(row)
        out[server] = steps
    return out


def add_ratios(agg: dict[str, list[dict[str, Any]]], plinth_key: str = "plinth") -> None:
    """On each peer's rows: Plinth's req/s and p99 divided by the peer's, at the same step."""
    ours = agg.get(plinth_key)
    for server, steps in agg.items():
        for i, row in enumerate(steps):
            row["ratio_rps"] = row["ratio_p99"] = None
            if ours is None or server.startswith("plinth"):
                continue
            mine, theirs = ours[i], row
            if mine["rps"] and theirs["rps"]:
                row["ratio_rps"] = mine["rps"]["median"] / theirs["rps"]["median"]
            if mine["p99_ms"] and theirs["p99_ms"]:
                row["ratio_p99"] = mine["p99_ms"]["median"] / theirs["p99_ms"]["median"]


def _fmt(summary: dict[str, float] | None, digits: int = 1, spread: bool = False) -> str:
    if summary is None:
        return "—"
    text = f"{summary['median']:,.{digits}f}"
    return f"{text} ±{summary['spread_pct']:.0f}%" if spread else text


def _pct(value: float | None) -> str:
    return "—" if value is None else f"≤{value:.0f}%"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def markdown_table(agg: dict[str, list[dict[str, Any]]], labels_by_key: dict[str, str]) -> str:
    head = (
        "| server | concurrency | req/s | p50 ms | p95 ms | p99 ms | CPU ms/req | RSS MB "
        "| Plinth/peer req/s | Plinth/peer p99 | other load on server core | CPU steal |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for server, steps in agg.items():
        for row in steps:
            flag = ""
            if row["rounds"] == 0:
                flag = " (no consistent run)"
            elif row["non_2xx"]:
                flag = f" ({row['non_2xx']} non-2xx)"
            lines.append(
                f"| {labels_by_key.get(server, server)} | {row['label']}{flag} "
                f"| {_fmt(row['rps'], 0, spread=True)} | {_fmt(row['p50_ms'])} "
                f"| {_fmt(row['p95_ms'])} | {_fmt(row['p99_ms'], spread=True)} "
                f"| {_fmt(row['cpu_ms_per_req'], 2)} | {_fmt(row['rss_mb'], 0)} "
                f"| {_ratio(row['ratio_rps'])} | {_ratio(row['ratio_p99'])} "
                f"| {_pct(row['other_load_pct_max'])} | {_pct(row.get('steal_pct_max'))} |"
            )
    return "\n".join(lines)


def limit_table(limit: dict[str, Any]) -> str:
    lines = [
        "| call | batch | ms per call | ms per row | rows/s (one core) | spread |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for who, key in (("the model's own predict_proba", None), ("as Plinth calls it", "plinth")):
        for batch, v in limit.items():
            v = v.get(key, {}) if key else v
            if v:
                lines.append(
                    f"| {who} | {batch} | {v['ms_per_call']:.2f} | {v['ms_per_row']:.3f} "
                    f"| {v['rows_per_s']:,.0f} | ±{v['spread_pct']:.0f}% |"
                )
    return "\n".join(lines)


def write(results_dir: Path, doc: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_dir / "latest.json", results_dir / "latest.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path
