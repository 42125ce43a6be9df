"""Plinth's gRPC messages are the protocol's: every field as Triton's client defines it."""

from __future__ import annotations

from typing import Any

import pytest

from plinth.http.grpc_messages import MESSAGES, METHODS, SERVICE

service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")


def _fields(descriptor: Any) -> dict[str, tuple[int, int, int]]:
    return {f.name: (f.number, f.type, f.label) for f in descriptor.fields}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_fields_match_tritons(name: str) -> None:
    ours = MESSAGES[name].DESCRIPTOR
    theirs: Any = service_pb2
    for part in name.split("."):
        theirs = getattr(theirs, part)
    assert _fields(ours) == _fields(theirs.DESCRIPTOR)
    for nested in ours.nested_types:
        assert _fields(nested) == _fields(theirs.DESCRIPTOR.nested_types_by_name[nested.name])


def test_the_methods_are_the_services() -> None:
    service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == SERVICE
    for method, (request, response) in METHODS.items():
        assert service.methods_by_name[method].input_type.name == request
        assert service.methods_by_name[method].output_type.name == response


def test_a_triton_request_reads_back_byte_for_byte() -> None:
    request = service_pb2.ModelInferRequest(model_name="churn", id="1")
    tensor = request.inputs.add(name="age", datatype="INT64", shape=[2])
    tensor.contents.int64_contents.extend([40, 41])
    request.parameters["key"].string_param = "order-1"
    request.raw_input_contents.append(b"\x00\x01")
    wire = request.SerializeToString()
    ours = MESSAGES["ModelInferRequest"].FromString(wire)
    assert ours.SerializeToString() == wire
    assert list(ours.inputs[0].contents.int64_contents) == [40, 41]
    assert ours.parameters["key"].string_param == "order-1"
