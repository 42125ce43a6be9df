"""The Open Inference Protocol's tensors (KServe v2 / Triton), as Plinth's records and answers.

Plinth scores records (one JSON object per row, checked by the version's contract); the
protocol carries tensors. This module is the one translation between them, shared by the
REST route (``plinth.http.v2``) and the gRPC service (``plinth.grpc``), so both speak the
protocol identically and both hand the router the same records ``/v1`` would:

- inputs: one tensor per contract field, named by the field (shape ``[N]`` or ``[N, 1]``),
  or one tensor of shape ``[N, F]`` whose columns are the contract's fields in order;
- values arrive as JSON ``data`` (row-major, flat or nested) or as raw little-endian bytes
  (the binary tensor data extension; ``BYTES`` elements each behind a 4-byte length);
- outputs: ``predict`` (labels or values), ``predict_proba`` (``[N, classes]``, classifiers)
  and ``prediction_id`` (``BYTES``, the ids the log keeps; ``plinth replay`` takes them).

Every problem with a request's tensors is listed at once, as ``/v1`` lists a body's.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plinth.core.contract import Contract
from plinth.core.output import OutputContract
from plinth.errors import InvalidBodyError, Problem
from plinth.errors.request import (
    TENSOR_DATA,
    TENSOR_DATATYPE,
    TENSOR_SHAPE,
    UNKNOWN_INPUT,
    UNKNOWN_OUTPUT,
)

#: Fixed-size datatypes and their little-endian numpy dtypes (BYTES is variable-size).
NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
BYTES = "BYTES"
DATATYPES = (*NUMPY_TYPES, BYTES)
PREDICT, PREDICT_PROBA, PREDICTION_ID = "predict", "predict_proba", "prediction_id"
BODY_HINT = (
    "Send one input tensor per contract field (named by the field, shape [N]) or one "
    "[N, F] tensor with the fields in contract order; GET /v2/models/NAME lists them."
)


@dataclass
class Tensor:
    """One decoded tensor: values shaped as declared (``object`` of ``str`` for BYTES)."""

    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray


@dataclass
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class InferRequest:
    """What a v2 request asks for, its tensors decoded."""

    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None  # None: every output
    parameters: dict[str, Any] = field(default_factory=dict)
    binary_output: bool = False  # the request-wide ``binary_data_output`` default


@dataclass
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray


def parse_request(header: Any, binary: bytes | memoryview = b"") -> InferRequest:
    """The request's JSON header and the bytes after it (binary extension) as tensors."""
    if not isinstance(header, Mapping):
        raise InvalidBodyError(
            "The body must be a JSON object with an 'inputs' list.", hint=BODY_HINT
        )
    problems: list[Problem] = []
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        problems.append(
            Problem(
                TENSOR_SHAPE, "'inputs' must be a non-empty list of tensors", BODY_HINT, "inputs"
            )
        )
        raw_inputs = []
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        problems.append(Problem(TENSOR_DATA, "'parameters' must be an object", field="parameters"))
        parameters = {}
    offset = 0
    inputs: list[Tensor] = []
    view = memoryview(binary)
    for position, raw in enumerate(raw_inputs):
        where = f"inputs[{position}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(TENSOR_SHAPE, f"{where} must be an object", field=where))
            continue
        name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
        if isinstance(name, str):
            where = name
        tensor_params = raw.get("parameters") or {}
        size = tensor_params.get("binary_data_size") if isinstance(tensor_params, Mapping) else None
        found = _check_header(name, datatype, shape, where)
        if found:
            problems.extend(found)
            if isinstance(size, int):
                offset += size
            continue
        assert isinstance(name, str) and isinstance(datatype, str) and isinstance(shape, list)
        try:
            if size is not None:
                if not isinstance(size, int) or size < 0 or offset + size > len(view):
                    raise ValueError(
                        f"binary_data_size {size!r} does not fit the {len(view) - offset} bytes "
                        "left after the JSON header"
                    )
                values = from_raw(datatype, shape, view[offset : offset + size])
                offset += size
            else:
                values = from_json(datatype, shape, raw.get("data"))
        except ValueError as exc:
            problems.append(Problem(TENSOR_DATA, f"{where}: {exc}", field=where))
            continue
        inputs.append(Tensor(name, datatype, list(shape), values))
    if offset != len(view) and not problems:
        problems.append(
            Problem(
                TENSOR_DATA,
                f"{len(view) - offset} bytes after the JSON header belong to no input",
                "Set each binary input's parameters.binary_data_size to its length in bytes.",
            )
        )
    outputs = _requested_outputs(header.get("outputs"), problems)
    if problems:
        raise InvalidBodyError(
            "The inference request is malformed.", hint=BODY_HINT, problems=problems
        )
    request_id = header.get("id")
    return InferRequest(
        id=None if request_id is None else str(request_id),
        inputs=inputs,
        outputs=outputs,
        parameters=dict(parameters),
        binary_output=bool(parameters.get("binary_data_output", False)),
    )


def _check_header(name: Any, datatype: Any, shape: Any, where: str) -> list[Problem]:
    problems = []
    if not isinstance(name, str) or not name:
        problems.append(Problem(TENSOR_SHAPE, f"{where} has no 'name'", field=where))
    if datatype not in DATATYPES:
        problems.append(
            Problem(
                TENSOR_DATATYPE,
                f"{where}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
                "FP64 or FP32 for numbers, INT64 for whole numbers, BYTES for text.",
                where,
            )
        )
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        problems.append(
            Problem(
                TENSOR_SHAPE, f"{where}: shape must be a list of sizes, not {shape!r}", field=where
            )
        )
    return problems


def _requested_outputs(raw: Any, problems: list[Problem]) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        problems.append(Problem(UNKNOWN_OUTPUT, "'outputs' must be a list", field="outputs"))
        return None
    wanted = []
    for position, item in enumerate(raw):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            problems.append(
                Problem(UNKNOWN_OUTPUT, f"outputs[{position}] has no 'name'", field="outputs")
            )
            continue
        params = item.get("parameters") or {}
        binary = bool(params.get("binary_data", False)) if isinstance(params, Mapping) else False
        wanted.append(RequestedOutput(name, binary))
    return wanted


def from_json(datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """A tensor's JSON ``data`` (flat row-major or nested) as an array of ``shape``."""
    if not isinstance(data, list):
        raise ValueError("'data' must be a list (or send the tensor as binary data)")
    count = int(np.prod(shape))
    flat = _flatten(data)
    if len(flat) != count:
        raise ValueError(f"shape {list(shape)} holds {count} values; 'data' has {len(flat)}")
    if datatype == BYTES:
        values = np.empty(count, dtype=object)
        values[:] = [v if isinstance(v, str) or v is None else _text(v) for v in flat]
        return values.reshape(shape)
    # JSON has no NaN: a null stands for a missing number, and stays null for the contract.
    values = np.empty(count, dtype=object)
    values[:] = flat
    if datatype == "BOOL":
        if not all(isinstance(v, bool) or v is None for v in flat):
            raise ValueError("BOOL data must be true or false")
    elif not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in flat
    ):
        raise ValueError(f"{datatype} data must be numbers")
    return values.reshape(shape)


def from_raw(datatype: str, shape: Sequence[int], raw: bytes | memoryview) -> np.ndarray:
    """A tensor sent as raw little-endian bytes (row-major) as an array of ``shape``."""
    count = int(np.prod(shape))
    if datatype == BYTES:
        values = np.empty(count, dtype=object)
        values[:] = _unpack_bytes(raw, count)
        return values.reshape(shape)
    dtype = NUMPY_TYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise ValueError(
            f"shape {list(shape)} of {datatype} takes {count * dtype.itemsize} bytes, "
            f"not {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _unpack_bytes(raw: bytes | memoryview, count: int) -> list[str]:
    data = bytes(raw)
    out: list[str] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError("BYTES data ends inside an element's 4-byte length")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ValueError("a BYTES element is longer than the data left")
        out.append(_text(data[offset : offset + length]))
        offset += length
    if len(out) != count:
        raise ValueError(f"the shape holds {count} BYTES elements; the data has {len(out)}")
    return out


def pack_bytes(values: Sequence[Any]) -> bytes:
    """BYTES elements as the binary extension sends them: each behind its 4-byte length."""
    parts = []
    for value in values:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"a BYTES element is not UTF-8 text: {exc}") from None
    return str(value)


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def to_records(inputs: list[Tensor], fields: Sequence[str]) -> list[dict[str, Any]]:
    """The rows the tensors carry, as the records ``/v1`` takes, every problem listed."""
    problems: list[Problem] = []
    if len(inputs) == 1 and inputs[0].name not in fields and len(inputs[0].shape) == 2:
        tensor = inputs[0]
        if len(tensor.shape) != 2 or tensor.shape[1] != len(fields):
            problems.append(
                Problem(
                    TENSOR_SHAPE,
                    f"{tensor.name}: one matrix tensor must have shape [N, {len(fields)}] "
                    f"(the contract's fields in order), not {tensor.shape}",
                    BODY_HINT,
                    tensor.name,
                )
            )
            raise InvalidBodyError(
                "The inference request does not fit the contract.", problems=problems
            )
        rows = _plain(tensor.values).tolist()
        return [dict(zip(fields, row, strict=True)) for row in rows]
    columns: dict[str, list[Any]] = {}
    rows_seen: set[int] = set()
    for tensor in inputs:
        if tensor.name not in fields:
            problems.append(
                Problem(
                    UNKNOWN_INPUT,
                    f"input {tensor.name!r} is not a field of the contract",
                    f"Name each input after a field ({', '.join(fields)}), or send one "
                    f"[N, {len(fields)}] tensor with the fields in this order.",
                    tensor.name,
                )
            )
            continue
        shape = tensor.shape
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            problems.append(
                Problem(
                    TENSOR_SHAPE,
                    f"{tensor.name}: a field's tensor has shape [N] or [N, 1], not {shape}",
                    field=tensor.name,
                )
            )
            continue
        columns[tensor.name] = _plain(tensor.values).reshape(-1).tolist()
        rows_seen.add(shape[0])
    # A field with no tensor is missing from every record: the contract says so (or
    # imputes it, for a nullable field), exactly as for a /v1 record without the key.
    if len(rows_seen) > 1:
        problems.append(
            Problem(
                TENSOR_SHAPE,
                f"the input tensors disagree on the number of rows: {sorted(rows_seen)}",
                "Send the same N rows in every input tensor.",
            )
        )
    if problems:
        raise InvalidBodyError(
            "The inference request does not fit the contract.", problems=problems
        )
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _plain(values: np.ndarray) -> np.ndarray:
    """NaN stands for a missing number in binary tensors; the contract reads None."""
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            out = values.astype(object)
            out[np.isnan(values)] = None
            return out
        return values.astype(np.float64) if values.dtype.itemsize < 8 else values
    return values


def label_datatype(task: str, classes: Sequence[Any] | None) -> str:
    """The ``predict`` tensor's datatype for a model's labels."""
    if task != "classification":
        return "FP64"
    labels = list(classes or [])
    if labels and all(isinstance(c, bool) for c in labels):
        return "BOOL"
    if labels and all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
        return "INT64"
    if labels and all(isinstance(c, int | float) and not isinstance(c, bool) for c in labels):
        return "FP64"
    return BYTES


def field_datatype(kind: str, categories: Sequence[Any] | None) -> str:
    """The input tensor's datatype a client should send for one contract field."""
    if kind == "numeric":
        return "FP64"
    if kind == "integer":
        return "INT64"
    if kind == "boolean":
        return "BOOL"
    if (
        kind == "categorical"
        and categories
        and all(isinstance(c, int) and not isinstance(c, bool) for c in categories)
    ):
        return "INT64"
    return BYTES


def output_names(task: str) -> list[str]:
    return (
        [PREDICT, PREDICT_PROBA, PREDICTION_ID]
        if task == "classification"
        else [
            PREDICT,
            PREDICTION_ID,
        ]
    )


def to_outputs(
    answers: list[dict[str, Any]],
    task: str,
    classes: Sequence[Any] | None,
    wanted: list[RequestedOutput] | None,
) -> list[OutputTensor]:
    """The answers as output tensors, in the order asked for (all of them by default)."""
    available = output_names(task)
    names = available if wanted is None else [w.name for w in wanted]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InvalidBodyError(
            "The inference request asks for outputs the model does not give.",
            problems=[
                Problem(
                    UNKNOWN_OUTPUT,
                    f"output {n!r} is not one of {', '.join(available)}",
                    field=n,
                )
                for n in unknown
            ],
        )
    count = len(answers)
    out = []
    for name in names:
        if name == PREDICT:
            datatype = label_datatype(task, classes)
            labels = [a["prediction"] for a in answers]
            if datatype == BYTES:
                values = np.empty(count, dtype=object)
                values[:] = [str(v) for v in labels]
            else:
                values = np.asarray(labels, dtype=NUMPY_TYPES[datatype])
            out.append(OutputTensor(name, datatype, [count], values))
        elif name == PREDICT_PROBA:
            width = len(classes or [])
            matrix = np.asarray(
                [list((a.get("probabilities") or {}).values()) for a in answers], dtype=np.float64
            ).reshape(count, width)
            out.append(OutputTensor(name, "FP64", [count, width], matrix))
        else:
            ids = np.empty(count, dtype=object)
            ids[:] = [a["prediction_id"] for a in answers]
            out.append(OutputTensor(name, BYTES, [count], ids))
    return out


def raw_bytes(tensor: OutputTensor) -> bytes:
    """An output tensor's values as the binary extension carries them."""
    if tensor.datatype == BYTES:
        return pack_bytes(tensor.values.reshape(-1).tolist())
    return np.ascontiguousarray(tensor.values, dtype=NUMPY_TYPES[tensor.datatype]).tobytes()


def json_data(tensor: OutputTensor) -> list[Any]:
    """An output tensor's values as flat row-major JSON ``data``."""
    return list(tensor.values.reshape(-1).tolist())


def model_metadata(
    name: str, versions: list[str], platform: str, contract: Contract, output: OutputContract
) -> dict[str, Any]:
    """``GET /v2/models/NAME``: one input per contract field, and the outputs given."""
    classes = len(output.classes or [])
    shapes = {PREDICT: [-1], PREDICT_PROBA: [-1, classes], PREDICTION_ID: [-1]}
    types = {PREDICT: label_datatype(output.task, output.classes), PREDICT_PROBA: "FP64"}
    return {
        "name": name,
        "versions": versions,
        "platform": platform,
        "inputs": [
            {"name": f.name, "datatype": field_datatype(f.kind, f.categories), "shape": [-1]}
            for f in contract.fields
        ],
        "outputs": [
            {"name": n, "datatype": types.get(n, BYTES), "shape": shapes[n]}
            for n in output_names(output.task)
        ],
    }
