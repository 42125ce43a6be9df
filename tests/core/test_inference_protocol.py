"""The Open Inference Protocol's tensors <-> Plinth's records, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from plinth.core import inference_protocol as oip
from plinth.errors import InvalidBodyError


def test_bytes_elements_round_trip_behind_their_lengths() -> None:
    values = ["paris", "", "zürich"]
    packed = oip.pack_bytes(values)
    assert packed[:4] == (5).to_bytes(4, "little") and len(packed) == 12 + 5 + 7
    assert oip.from_raw("BYTES", [3], packed).tolist() == values
    with pytest.raises(ValueError, match="holds 2 BYTES elements"):
        oip.from_raw("BYTES", [2], packed)
    with pytest.raises(ValueError, match="4-byte length"):
        oip.from_raw("BYTES", [3], packed + b"\x01")


def test_binary_and_json_tensors_become_the_same_records() -> None:
    ages = np.array([30, 41], dtype="<i8")
    income = np.array([1.5, np.nan], dtype="<f4")
    header = {
        "inputs": [
            {
                "name": "age",
                "datatype": "INT64",
                "shape": [2],
                "parameters": {"binary_data_size": 16},
            },
            {
                "name": "income",
                "datatype": "FP32",
                "shape": [2, 1],
                "parameters": {"binary_data_size": 8},
            },
            {"name": "city", "datatype": "BYTES", "shape": [2], "data": ["paris", "nice"]},
        ],
        "parameters": {"binary_data_output": True},
    }
    request = oip.parse_request(header, ages.tobytes() + income.tobytes())
    assert request.binary_output and request.outputs is None
    records = oip.to_records(request.inputs, ["age", "income", "city"])
    assert records == [
        {"age": 30, "income": 1.5, "city": "paris"},
        {"age": 41, "income": None, "city": "nice"},  # NaN is a missing number
    ]
    as_json = oip.parse_request(
        {
            "inputs": [
                {"name": "m", "datatype": "FP64", "shape": [2, 2], "data": [[1, 2.5], [3, None]]}
            ]
        }
    )
    assert oip.to_records(as_json.inputs, ["a", "b"]) == [{"a": 1, "b": 2.5}, {"a": 3, "b": None}]


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(InvalidBodyError) as caught:
        oip.parse_request(
            {
                "inputs": [
                    {"name": "a", "datatype": "FP8", "shape": [1], "data": [1]},
                    {"name": "b", "datatype": "INT64", "shape": [-1], "data": [1]},
                    {"name": "c", "datatype": "INT64", "shape": [3], "data": [1, 2]},
                    {"name": "d", "datatype": "BOOL", "shape": [1], "data": [1]},
                ],
                "outputs": [{}],
            }
        )
    codes = [p.code for p in caught.value.problems]
    assert codes == [
        "request.tensor_datatype",
        "request.tensor_shape",
        "request.tensor_data",
        "request.tensor_data",
        "request.unknown_output",
    ]
    with pytest.raises(InvalidBodyError) as rows:
        oip.to_records(
            [
                oip.Tensor("a", "FP64", [2], np.zeros(2)),
                oip.Tensor("b", "FP64", [3], np.zeros(3)),
                oip.Tensor("z", "FP64", [2], np.zeros(2)),
            ],
            ["a", "b"],
        )
    assert [p.code for p in rows.value.problems] == [
        "request.unknown_input",
        "request.tensor_shape",
    ]


def test_outputs_take_the_labels_datatype() -> None:
    answers = [
        {"prediction": 1, "probabilities": {"0": 0.2, "1": 0.8}, "prediction_id": "p1"},
        {"prediction": 0, "probabilities": {"0": 0.9, "1": 0.1}, "prediction_id": "p2"},
    ]
    tensors = oip.to_outputs(answers, "classification", [0, 1], None)
    assert [(t.name, t.datatype, t.shape) for t in tensors] == [
        ("predict", "INT64", [2]),
        ("predict_proba", "FP64", [2, 2]),
        ("prediction_id", "BYTES", [2]),
    ]
    assert np.frombuffer(oip.raw_bytes(tensors[0]), "<i8").tolist() == [1, 0]
    assert oip.json_data(tensors[1]) == [0.2, 0.8, 0.9, 0.1]
    assert oip.label_datatype("classification", ["no", "yes"]) == "BYTES"
    assert oip.label_datatype("regression", None) == "FP64"
    with pytest.raises(InvalidBodyError, match="outputs the model does not give"):
        oip.to_outputs(answers, "regression", None, [oip.RequestedOutput("predict_proba", False)])
