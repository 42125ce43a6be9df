"""Send diamonds traffic in a new price regime to a running server, then its true prices.

The regime: every diamond of one cut (Ideal by default) now sells for 1.5 times what the
model learned. The script scores ``--rows`` diamonds through ``/v1/models/diamonds/predict``
and posts the new-regime prices as labels to ``/v1/feedback``; the served version's realised
R² falls, the performance alert fires, and with ``[models.diamonds.training]`` set a
retraining job starts (README, "The loop on diamonds"). Run:

    python examples/diamonds_shift.py --url http://127.0.0.1:8000 --rows 400
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.diamonds import CATEGORICAL, NAME, NUMERIC, TARGET, load


def shifted(rows: int, *, cut: str = "Ideal", factor: float = 1.5, seed: int = 1) -> pd.DataFrame:
    """``rows`` diamonds with the new regime's prices."""
    frame = load().sample(n=rows, random_state=seed).reset_index(drop=True)
    frame.loc[frame["cut"] == cut, TARGET] *= factor
    return frame


def send(url: str, frame: pd.DataFrame, *, batch: int = 100) -> dict[str, Any]:
    """Score every row, then label each prediction with its row's price."""
    scored = labelled = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        for start in range(0, len(frame), batch):
            part = frame.iloc[start : start + batch]
            records = part[NUMERIC + CATEGORICAL].to_dict(orient="records")
            reply = http.post(f"/v1/models/{NAME}/predict", json={"records": records})
            reply.raise_for_status()
            ids = [p["prediction_id"] for p in reply.json()["predictions"]]
            labels = [
                {"prediction_id": pid, "label": float(price)}
                for pid, price in zip(ids, part[TARGET], strict=True)
            ]
            fed = http.post("/v1/feedback", json={"items": labels})
            fed.raise_for_status()
            scored += len(ids)
            labelled += int(fed.json()["stored"])
    return {"scored": scored, "labelled": labelled}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--cut", default="Ideal")
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--batch", type=int, default=100, help="Records per request.")
    parser.add_argument("--seed", type=int, default=1, help="Which diamonds are sampled.")
    args = parser.parse_args()
    frame = shifted(args.rows, cut=args.cut, factor=args.factor, seed=args.seed)
    print(send(args.url, frame, batch=args.batch))
