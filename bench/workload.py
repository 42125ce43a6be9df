"""The reference workload: one random forest on scikit-learn's breast-cancer data.

Runs both in the project venv and, as a script, inside a peer venv whose scikit-learn could not
be pinned to ours, so a pickled model always loads with the version that wrote it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

ROWS_FOR_REQUESTS = 8  # rows written for request bodies; hey sends one, wrk could rotate


def train(out_dir: Path) -> dict[str, Any]:
    """Fit the reference forest, write model.joblib, train.csv and sample rows; return metadata.

    The model is fitted on a DataFrame (when pandas is there) because that is what a Plinth user
    has: the training table, whose column names the model then remembers.
    """
    import joblib
    import sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    model = RandomForestClassifier(n_estimators=50, max_depth=8, n_jobs=1, random_state=0)
    try:
        import pandas as pd

        model.fit(pd.DataFrame(data.data, columns=names), data.target)
    except ImportError:
        model.fit(data.data, data.target)
    joblib.dump(model, out_dir / "model.joblib")
    with (out_dir / "train.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "target"])
        for row, label in zip(data.data, data.target, strict=True):
            writer.writerow([*(repr(float(v)) for v in row), int(label)])
    rows = [[float(v) for v in data.data[i]] for i in range(ROWS_FOR_REQUESTS)]
    meta = {"feature_names": names, "rows": rows, "sklearn": sklearn.__version__}
    (out_dir / "workload.json").write_text(json.dumps(meta))
    return meta


def model_limit(model_path: Path, rows: list[list[float]], *, repeats: int = 15) -> dict[str, Any]:
    """Time predict_proba in process at batch 1 and 64: the floor under any server's cost.

    Two ways of calling the same model: its own ``predict_proba`` on a DataFrame (what the
    peers do), and the call Plinth's sklearn flavor picks at load time (a float array, the
    forest tree by tree; identical answers, checked here). Median of `repeats` timeit
    samples; each sample averages enough calls to last ~0.2 s.
    """
    import joblib
    import numpy as np
    import pandas as pd

    from plinth.flavors.sklearn import SklearnFlavor

    model = joblib.load(model_path)
    names = getattr(model, "feature_names_in_", None)
    flavor = SklearnFlavor(model)
    probe = pd.DataFrame(
        np.asarray(rows, dtype=float), columns=list(names) if names is not None else None
    )
    flavor.serve_faster(probe)
    out: dict[str, Any] = {}
    for batch in (1, 64):
        x = np.array([rows[i % len(rows)] for i in range(batch)], dtype=float)
        features: Any = x
        frame = pd.DataFrame(x, columns=list(names) if names is not None else None)
        if names is not None:
            features = frame
        if not np.array_equal(model.predict_proba(features), flavor.predict_proba(frame)):
            raise AssertionError("Plinth's call of the model answers differently")
        out[str(batch)] = {
            **_timed(lambda f=features: model.predict_proba(f), batch, repeats),
            "plinth": _timed(lambda f=frame: flavor.predict_proba(f), batch, repeats),
        }
    return out


def _timed(call: Any, batch: int, repeats: int) -> dict[str, float]:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    samples = [t / number for t in timer.repeat(repeat=repeats, number=number)]
    per_call = statistics.median(samples)
    return {
        "ms_per_call": per_call * 1e3,
        "ms_per_row": per_call * 1e3 / batch,
        "rows_per_s": batch / per_call,
        "spread_pct": 50 * (max(samples) - min(samples)) / per_call,  # ± half range
    }


def pinned_limit(model_path: Path, rows: list[list[float]], core: int) -> dict[str, Any]:
    """Run model_limit on one core (the server's), restoring this process's affinity after."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {core})
        return model_limit(model_path, rows)
    finally:
        os.sched_setaffinity(0, before)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    meta = train(parser.parse_args().out_dir)
    print(json.dumps({"sklearn": meta["sklearn"]}))
    sys.exit(0)
