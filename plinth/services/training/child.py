"""The trainer's own process: ``python -m plinth.services.training.child SPEC.json``.

The parent (``plinth.services.training.runner``) writes the spec: the entrypoint
``package.module:function``, the Parquet file of training rows, the context and where to
write the model. Here the function is imported (never unpickled) and called with the
DataFrame and the context; the fitted estimator is written in its safe format (skops for
scikit-learn, the library's own format otherwise) and a small JSON result says which. A
failure writes the error's type and message to the result and exits 1; the parent reads
that, so a raising trainer is reported in its own words.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

WEIGHT = "__plinth_weight__"


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    from plinth.flavors.base import dump_model, flavors

    module_name, _, function_name = str(spec["entrypoint"]).partition(":")
    for path in spec.get("sys_path") or []:
        if path not in sys.path:
            sys.path.insert(0, path)
    function = getattr(importlib.import_module(module_name), function_name)
    frame = pd.read_parquet(spec["data"])
    context = dict(spec["context"])
    context["sample_weight"] = None
    if WEIGHT in frame.columns:
        context["sample_weight"] = frame.pop(WEIGHT).to_numpy()
    model = function(frame, context)
    if model is None:
        raise TypeError(f"{spec['entrypoint']} returned None instead of a fitted model")
    artifact = dump_model(model, trust_pickle=False)
    suffix = ".skops"
    for flavor in flavors():
        for candidate, fmt in flavor.suffixes.items():
            if fmt == artifact.format:
                suffix = candidate
    output = Path(spec["output"]).with_suffix(suffix)
    output.write_bytes(artifact.data)
    return {"ok": True, "model": str(output), "format": artifact.format}


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    result_path = Path(spec["result"])
    try:
        result = run(spec)
    except BaseException as exc:  # the parent reports it; nothing else is listening
        result = {
            "ok": False,
            "type": type(exc).__name__,
            "message": str(exc)[:2000],
            "traceback": traceback.format_exc()[-4000:],
        }
        result_path.write_text(json.dumps(result), encoding="utf-8")
        return 1
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
