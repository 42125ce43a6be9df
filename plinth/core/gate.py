"""The validation gate: is a retrained candidate good enough to replace its champion?

Both models answer the same holdout rows (the newest labelled traffic, never trained on), so
every comparison is paired: one loss per row per model. The gate asks four kinds of question
and every number it used goes into the verdict:

- ``absolute``: the candidate's metric against a fixed bar (``r2 >= 0.8``, ``rmse <= 600``;
  the direction is the metric's own: error metrics are upper bounds, scores lower bounds).
- ``relative`` (non-inferiority): is the candidate provably not worse than the champion by
  more than ``max_regression``? For values, the loss is the squared error and the statistic
  the relative change of the mean loss, ``(cand - champ) / champ``, with a paired bootstrap
  (rows resampled together, so both models see the same rows). The check passes when the
  upper bound of the one-sided ``1 - alpha`` interval is at most ``max_regression``. For
  classes, the loss is 0/1 and the statistic the accuracy drop ``champ - cand``, with the
  McNemar variance of the paired difference for the bound and McNemar's exact test (on the
  discordant pairs) for whether the two differ at all.
- ``improvement`` (when ``require_improvement``): a noisy win is not a win. The candidate
  must be better with the bound on the right side of zero (bootstrap or McNemar).
- ``slices``: per value of each declared categorical column with ``slice_min_rows`` rows, the
  same statistic as a point estimate, at most ``slice_max_regression``.
- ``contract``: fields the champion accepts that the candidate lacks, or whose kind changed,
  break callers; they block unless ``contract = "report"``.

>>> rng = np.random.default_rng(0)
>>> y = rng.normal(size=400)
>>> verdict = judge(
...     GatePolicy(),
...     "regression",
...     y,
...     candidate=y + rng.normal(scale=0.5, size=400),
...     champion=y + rng.normal(scale=1.0, size=400),
...     seed=0,
... )
>>> verdict.passed, verdict.relative["improved"], round(verdict.relative["change"], 2)
(True, True, -0.71)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from plinth.core.gate_policy import GatePolicy
from plinth.core.metrics import regression_metrics

#: Metrics where lower is better: an absolute threshold on them is an upper bound.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss", "ece", "mse"})


@dataclass(frozen=True)
class GateVerdict:
    """The decision with every number behind it (stored in the job and the lineage)."""

    passed: bool
    reasons: tuple[str, ...]
    rows: int
    metrics: dict[str, dict[str, float]]
    absolute: list[dict[str, Any]]
    relative: dict[str, Any]
    slices: list[dict[str, Any]]
    contract: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out


def judge(
    policy: GatePolicy,
    task: str,
    y: Sequence[Any] | np.ndarray,
    *,
    candidate: Sequence[Any] | np.ndarray,
    champion: Sequence[Any] | np.ndarray,
    slices: Mapping[str, Sequence[Any]] | None = None,
    contracts: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    seed: int = 0,
) -> GateVerdict:
    """Judge ``candidate`` against ``champion`` on the same rows (their predictions of ``y``).

    ``contracts`` is (champion, candidate) input contracts as documents; ``slices`` maps a
    categorical column to its value per row.
    """
    y_arr = np.asarray(y, dtype=object if task == "classification" else float)
    cand = np.asarray(candidate, dtype=y_arr.dtype)
    champ = np.asarray(champion, dtype=y_arr.dtype)
    if not (len(y_arr) == len(cand) == len(champ)) or len(y_arr) == 0:
        raise ValueError("the gate needs the same, non-zero number of rows for y and both models")
    reasons: list[str] = []
    metrics = {"candidate": _metrics(task, y_arr, cand), "champion": _metrics(task, y_arr, champ)}

    absolute = []
    for name, bar in policy.absolute.items():
        value = metrics["candidate"].get(name)
        upper = name in LOWER_IS_BETTER
        ok = value is not None and (value <= bar if upper else value >= bar)
        absolute.append(
            {"metric": name, "value": value, "bar": bar, "op": "<=" if upper else ">=", "ok": ok}
        )
        if not ok:
            shown = "missing" if value is None else f"{value:.4g}"
            reasons.append(f"{name} {shown} is not {'<=' if upper else '>='} {bar:g}")

    cand_loss, champ_loss = _losses(task, y_arr, cand), _losses(task, y_arr, champ)
    if task == "classification":
        relative = _mcnemar(cand_loss, champ_loss, policy.alpha)
    else:
        relative = _paired_bootstrap(cand_loss, champ_loss, policy.alpha, policy.bootstrap, seed)
    relative["max_regression"] = policy.max_regression
    relative["ok"] = bool(relative["upper"] <= policy.max_regression)
    if not relative["ok"]:
        reasons.append(
            f"{relative['statistic']} could be {relative['upper']:+.4g} (upper "
            f"{1 - policy.alpha:.0%} bound), above the {policy.max_regression:+.4g} allowed"
        )
    if policy.require_improvement and not relative["improved"]:
        reasons.append(
            f"no proven improvement over the champion ({relative['statistic']} "
            f"{relative['change']:+.4g}, upper bound {relative['upper']:+.4g} is not below 0)"
        )

    slice_checks = _slices(task, cand_loss, champ_loss, slices or {}, policy)
    for s in slice_checks:
        if not s["ok"]:
            reasons.append(
                f"slice {s['column']}={s['value']!s}: {s['statistic']} {s['change']:+.4g} "
                f"above {policy.slice_max_regression:+.4g}"
            )

    contract = contract_diff(*contracts) if contracts is not None else {"checked": False}
    blocks = bool(policy.contract == "block" and contract.get("breaking"))
    contract["blocks"] = blocks
    if blocks:
        reasons.append(f"the candidate's input contract breaks callers: {contract['summary']}")

    return GateVerdict(
        passed=not reasons,
        reasons=tuple(reasons),
        rows=len(y_arr),
        metrics=metrics,
        absolute=absolute,
        relative=relative,
        slices=slice_checks,
        contract=contract,
    )


def paired_metrics(
    task: str,
    y: Sequence[Any] | np.ndarray,
    candidate: Sequence[Any] | np.ndarray,
    champion: Sequence[Any] | np.ndarray,
) -> dict[str, dict[str, float]]:
    """Both models' metrics on the same rows, without a verdict (a report beside the gate)."""
    y_arr = np.asarray(y, dtype=object if task == "classification" else float)
    return {
        "candidate": _metrics(task, y_arr, np.asarray(candidate, dtype=y_arr.dtype)),
        "champion": _metrics(task, y_arr, np.asarray(champion, dtype=y_arr.dtype)),
    }


def contract_diff(champion: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    """Fields removed, added, or of another kind, between two contract documents.

    >>> a = {"fields": [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}]}
    >>> b = {"fields": [{"name": "x", "kind": "categorical"}, {"name": "z", "kind": "numeric"}]}
    >>> d = contract_diff(a, b)
    >>> d["removed"], d["added"], d["changed"], d["breaking"]
    (['c'], ['z'], [{'field': 'x', 'from': 'numeric', 'to': 'categorical'}], True)
    """
    old = {f["name"]: f for f in champion.get("fields", [])}
    new = {f["name"]: f for f in candidate.get("fields", [])}
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    changed = [
        {"field": n, "from": old[n].get("kind"), "to": new[n].get("kind")}
        for n in old
        if n in new and old[n].get("kind") != new[n].get("kind")
    ]
    parts = []
    if removed:
        parts.append("removed " + ", ".join(removed))
    if changed:
        parts.append(
            "changed " + ", ".join(f"{c['field']} ({c['from']} -> {c['to']})" for c in changed)
        )
    if added:
        parts.append("added " + ", ".join(added))
    return {
        "checked": True,
        "removed": removed,
        "added": added,
        "changed": changed,
        "breaking": bool(removed or changed),
        "summary": "; ".join(parts) or "same fields and kinds",
    }


# ---------------------------------------------------------------------- statistics


def _metrics(task: str, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    if task == "classification":
        correct = np.asarray([str(a) == str(b) for a, b in zip(y, predicted, strict=True)])
        return {"accuracy": float(correct.mean()), "errors": float((~correct).sum())}
    found = regression_metrics(y, predicted)
    found["mse"] = float(np.mean((y - predicted) ** 2))
    return found


def _losses(task: str, y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    if task == "classification":
        return np.asarray([str(a) != str(b) for a, b in zip(y, predicted, strict=True)], float)
    return np.asarray((y - predicted) ** 2, dtype=float)


def _paired_bootstrap(
    cand: np.ndarray, champ: np.ndarray, alpha: float, draws: int, seed: int
) -> dict[str, Any]:
    """Relative change of the mean squared error, rows resampled in pairs."""
    base = float(champ.mean())
    scale = base if base > 0 else 1.0
    change = (float(cand.mean()) - base) / scale
    rng = np.random.default_rng(seed)
    n = len(cand)
    index = rng.integers(0, n, size=(draws, n))
    cand_means = cand[index].mean(axis=1)
    champ_means = champ[index].mean(axis=1)
    champ_means = np.where(champ_means > 0, champ_means, scale)
    changes = (cand_means - champ_means) / champ_means
    upper = float(np.quantile(changes, 1 - alpha))
    lower = float(np.quantile(changes, alpha))
    return {
        "test": "paired bootstrap",
        "statistic": "relative change of mean squared error",
        "candidate_loss": float(cand.mean()),
        "champion_loss": base,
        "change": change,
        "lower": lower,
        "upper": upper,
        "draws": draws,
        "p_better": float(np.mean(changes >= 0)),
        "improved": bool(upper < 0),
    }


def _mcnemar(cand: np.ndarray, champ: np.ndarray, alpha: float) -> dict[str, Any]:
    """Accuracy drop (champion minus candidate) with McNemar's exact test and bound."""
    n = len(cand)
    worse = int(np.sum((cand == 1) & (champ == 0)))  # candidate wrong where champion right
    better = int(np.sum((cand == 0) & (champ == 1)))
    drop = (worse - better) / n
    variance = max((worse + better) - (worse - better) ** 2 / n, 0.0) / n**2
    z = float(stats.norm.ppf(1 - alpha))
    half = z * math.sqrt(variance)
    discordant = worse + better
    p_value = (
        1.0
        if discordant == 0
        else float(stats.binomtest(better, discordant, 0.5, alternative="greater").pvalue)
    )
    return {
        "test": "McNemar",
        "statistic": "accuracy drop",
        "candidate_loss": float(cand.mean()),
        "champion_loss": float(champ.mean()),
        "change": drop,
        "lower": drop - half,
        "upper": drop + half,
        "candidate_only_wrong": worse,
        "champion_only_wrong": better,
        "p_better": p_value,
        "improved": bool(p_value < alpha and better > worse),
    }


def _slices(
    task: str,
    cand: np.ndarray,
    champ: np.ndarray,
    columns: Mapping[str, Sequence[Any]],
    policy: GatePolicy,
) -> list[dict[str, Any]]:
    checks = []
    for column, values in columns.items():
        keys = np.asarray([str(v) for v in values], dtype=object)
        for value in sorted(set(keys.tolist())):
            mask = keys == value
            rows = int(mask.sum())
            if rows < policy.slice_min_rows:
                continue
            c, h = float(cand[mask].mean()), float(champ[mask].mean())
            if task == "classification":
                change, statistic = c - h, "accuracy drop"
            else:
                change, statistic = (c - h) / (h if h > 0 else 1.0), "relative change of MSE"
            checks.append(
                {
                    "column": column,
                    "value": value,
                    "rows": rows,
                    "statistic": statistic,
                    "candidate_loss": c,
                    "champion_loss": h,
                    "change": change,
                    "ok": bool(change <= policy.slice_max_regression),
                }
            )
    return checks
