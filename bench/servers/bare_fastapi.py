"""The baseline: the same model behind one FastAPI endpoint, no batching, no checks, no log.

It takes Plinth's request body ({"records": [{feature: value, ...}]}) so the two parse the same
JSON; the gap between them is what Plinth's contract, batcher and log cost or save.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import joblib
import numpy as np
import uvicorn
from fastapi import Body, FastAPI

# The forest was fitted on a DataFrame; feeding it a plain array (as a bare endpoint would)
# makes scikit-learn warn on every call.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


def build_app(model_path: str) -> FastAPI:
    model = joblib.load(model_path)
    names = [str(n) for n in model.feature_names_in_]
    app = FastAPI()

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    # A plain `def`: FastAPI runs it in its thread pool, off the event loop, as most do.
    @app.post("/predict")
    def predict(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
        x = np.array([[float(r[n]) for n in names] for r in payload["records"]], dtype=float)
        return {"probabilities": model.predict_proba(x).tolist()}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.model), host=args.host, port=args.port, log_level="warning", access_log=False
    )
