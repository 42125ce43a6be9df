"""ONNX models, run by ONNX Runtime (``pip install 'plinth-ml[onnx]'``).

The artifact is the ``.onnx`` file itself. Two input layouts are understood, the two
skl2onnx writes: one ``[N, F]`` tensor taking the features in the training table's column
order, or one ``[N, 1]`` tensor per column, named as the column. A classifier has two
outputs, the label and the probabilities (a ``[N, classes]`` tensor, or the list of maps
skl2onnx's ZipMap writes by default); its class order is read from the graph. One output
is a regressor.

Two decisions make a batch answer each row exactly as that row alone does, so that replay
(one row) reproduces what serving (a micro-batch) logged: the session runs on one thread
(a tree ensemble sums its trees in a different order when it splits work between threads),
and a single row is run as two copies of itself (ONNX Runtime multiplies a one-row matrix
with another kernel than a taller one, which rounds differently).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from plinth.flavors.base import Flavor, defined_in, require

ONNX = "onnx"
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
_ROUNDING = 1e-6  # float32 rounding tolerated on a probability (as the output contract's sum)
_CLASS_LABELS = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


class OnnxModel:
    """An ONNX Runtime session with the scikit-learn surface Plinth reads
    (``predict``, ``predict_proba``, ``classes_``, ``feature_names_in_``)."""

    def __init__(self, data: bytes) -> None:
        ort = require("onnxruntime", "onnx")
        self.data = data
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self._inputs = [(i.name, i.type, list(i.shape)) for i in self.session.get_inputs()]
        outputs = self.session.get_outputs()
        if not self._inputs or not outputs:
            raise ValueError("the ONNX graph has no inputs or no outputs")
        unknown = [t for _, t, _ in self._inputs if t not in _DTYPES]
        if unknown:
            raise ValueError(f"input types {unknown} are not supported (tensors of numbers/str)")
        self._columns = len(self._inputs) > 1
        if not self._columns and len(self._inputs[0][2]) != 2:
            raise ValueError("a single input must be a [N, features] tensor")
        self._label = outputs[0].name
        self._proba = outputs[1].name if len(outputs) > 1 else None
        self._zipmap = outputs[1].type.startswith("seq(map") if len(outputs) > 1 else False
        if self._proba is not None:
            labels = _class_labels(data)
            if labels is not None:
                self.classes_ = np.asarray(labels)
        if self._columns:
            self.feature_names_in_ = np.asarray([name for name, _, _ in self._inputs])
            self.n_features_in_ = len(self._inputs)
        elif isinstance(self._inputs[0][2][1], int):
            self.n_features_in_ = int(self._inputs[0][2][1])

    def _feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if not self._columns:
            name, kind, _ = self._inputs[0]
            feed = {name: _array(frame, kind)}
        else:
            feed = {name: _array(frame[[name]], kind) for name, kind, _ in self._inputs}
        if len(frame) == 1:  # see the module docstring: one row runs as two
            feed = {name: np.concatenate([a, a]) for name, a in feed.items()}
        return feed

    def _run(self, frame: pd.DataFrame) -> list[Any]:
        names = [self._label] + ([self._proba] if self._proba is not None else [])
        out = self.session.run(names, self._feed(frame))
        return [o[: len(frame)] for o in out]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._run(frame)[0]).reshape(len(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self._proba is None:
            raise AttributeError("this ONNX model has no probabilities output")
        raw = self._run(frame)[1]
        if self._zipmap:  # one {class: probability} dict per row, put back in class order
            order = list(getattr(self, "classes_", sorted(raw[0]) if raw else []))
            raw = [[row[c] for c in order] for row in raw]
        proba = np.asarray(raw, dtype=np.float64)
        # float32 arithmetic can land a certain class at 1.0000001: pull such rounding back
        # into [0, 1]; anything further out is left for the output contract to refuse.
        slack = (proba > 1.0) & (proba <= 1.0 + _ROUNDING)
        proba[slack] = 1.0
        proba[(proba < 0.0) & (proba >= -_ROUNDING)] = 0.0
        return proba

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """What wrote the file, for lineage (an ONNX model has no hyper-parameters here)."""
        meta = self.session.get_modelmeta()
        return {
            "producer": meta.producer_name,
            "graph": meta.graph_name,
            "inputs": ", ".join(f"{n}: {t} {s}" for n, t, s in self._inputs),
        }


def _array(frame: pd.DataFrame, kind: str) -> np.ndarray:
    dtype = _DTYPES[kind]
    if dtype is np.object_:  # ONNX strings: no missing value, so a null is the empty string
        return np.asarray(frame.astype(object).where(frame.notna(), "").astype(str), dtype=object)
    return np.asarray(frame.to_numpy(dtype=dtype))


def _class_labels(data: bytes) -> list[Any] | None:
    """The class labels of the classifier (or ZipMap) node, in probability column order."""
    onnx = require("onnx", "onnx")
    graph = onnx.load_model_from_string(data).graph
    found: list[Any] | None = None
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name not in _CLASS_LABELS:
                continue
            values = onnx.helper.get_attribute_value(attribute)
            labels = [v.decode() if isinstance(v, bytes) else int(v) for v in values]
            if node.op_type == "ZipMap":  # the map keys are what the caller sees
                return labels
            found = found if found is not None else labels
    return found


class OnnxFlavor(Flavor):
    """A model in ONNX format; registered from a ``.onnx`` file or an ``onnx.ModelProto``."""

    name: ClassVar[str] = "onnx"
    formats: ClassVar[tuple[str, ...]] = (ONNX,)
    suffixes: ClassVar[dict[str, str]] = {".onnx": ONNX}

    @classmethod
    def accepts(cls, model: Any) -> bool:
        return isinstance(model, OnnxModel) or (
            defined_in(model, "onnx") and type(model).__name__ == "ModelProto"
        )

    @classmethod
    def dump(cls, model: Any) -> tuple[bytes, str]:
        if isinstance(model, OnnxModel):
            return model.data, ONNX
        return bytes(model.SerializeToString()), ONNX

    @classmethod
    def load(cls, data: bytes, fmt: str) -> OnnxFlavor:
        return cls(OnnxModel(data))

    @property
    def has_proba(self) -> bool:
        return bool(self.model._proba is not None)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(frame))
