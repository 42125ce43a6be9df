"""Single-row predict latency: the reference forest as scikit-learn and as ONNX, side by side.

The reference workload's forest (50 trees, depth 8, breast-cancer data, fitted on a DataFrame)
is converted with skl2onnx (ZipMap off). Four callers of one row's probabilities are timed in
the same process, interleaved round by round so drift of the machine spreads over all:

- ``sklearn``: ``model.predict_proba`` on a one-row DataFrame (what a hand-written server does);
- ``plinth sklearn``: Plinth's sklearn flavor after ``serve_faster`` (a float array, no checks);
- ``onnxruntime``: ``InferenceSession.run`` on a ``[1, 30]`` float32 array;
- ``plinth onnx``: Plinth's ONNX flavor on the served one-row DataFrame (conversion included).

Each figure is the median over rounds of a timeit sample (the mean of enough calls to last about
0.2 s), pinned to one core. Ratios are against ``sklearn``; < 1 is faster. Writes
bench/results/flavors.md.

    .venv/bin/python bench/flavors.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "flavors.md"


def _callers() -> dict[str, Callable[[], Any]]:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from plinth.core.contract import infer_contract
    from plinth.flavors.onnx import OnnxFlavor
    from plinth.flavors.sklearn import SklearnFlavor

    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target
    model = RandomForestClassifier(n_estimators=50, max_depth=8, n_jobs=1, random_state=0)
    model.fit(x, y)
    proto = to_onnx(model, x.to_numpy(np.float32)[:1], options={id(model): {"zipmap": False}})
    contract = infer_contract(x)
    probe = contract.apply(contract.probe_records()).frame
    row = contract.frame([x.iloc[7].to_dict()])  # one row as Plinth's contract builds it
    served = SklearnFlavor(model)
    if not served.serve_faster(probe):
        raise SystemExit("the sklearn flavor did not take its array path")
    onnx = OnnxFlavor.load(proto.SerializeToString(), "onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    array = row.to_numpy(np.float32)
    reference = model.predict_proba(row)
    # Same answers within the stated tolerance, or the timings compare different things.
    for name, answer in (
        ("plinth onnx", onnx.predict_proba(row)),
        ("plinth", served.predict_proba(row)),
    ):
        if answer is None or not np.allclose(answer, reference, rtol=0, atol=1e-5):
            raise SystemExit(f"{name} disagrees with scikit-learn on the probe row")
    return {
        "sklearn": lambda: model.predict_proba(row),
        "plinth sklearn": lambda: served.predict_proba(row),
        "onnxruntime": lambda: session.run(None, {"X": array}),
        "plinth onnx": lambda: onnx.predict_proba(row),
    }


def _sample(call: Callable[[], Any]) -> float:
    """Mean seconds per call over a batch of calls lasting ~0.2 s."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return timer.timeit(number) / number


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--core", type=int, default=1, help="CPU core to pin to (-1: no pinning)")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    callers = _callers()
    for call in callers.values():  # warm-up: first calls allocate and fill caches
        for _ in range(200):
            call()
    samples: dict[str, list[float]] = {name: [] for name in callers}
    for _ in range(args.rounds):
        for name, call in callers.items():
            samples[name].append(_sample(call))
    base = statistics.median(samples["sklearn"])
    lines = [
        "| caller | p50 of round means (us) | spread (us) | ratio to sklearn |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, values in samples.items():
        median = statistics.median(values)
        spread = (max(values) - min(values)) / 2
        lines.append(f"| {name} | {median * 1e6:.1f} | ±{spread * 1e6:.1f} | {median / base:.3f} |")
    import onnxruntime
    import sklearn

    versions = (
        f"Python {sys.version.split()[0]}, scikit-learn {sklearn.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, pandas {pd.__version__}; {args.rounds} rounds, core "
        f"{args.core}"
    )
    table = "\n".join(lines)
    print(table)
    print(versions)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        "# Single-row predict latency: scikit-learn vs ONNX (bench/flavors.py)\n\n"
        f"{table}\n\n{versions}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
