"""The KServe v2 ``GRPCInferenceService`` messages, built from their descriptor at import.

The protocol's ``grpc_predict_v2.proto`` (package ``inference``, the service Triton also
serves) written down as data, not as protoc output: generated ``_pb2`` modules pin the
protobuf runtime they were generated for, and this needs only ``protobuf`` itself. The
messages live in a private descriptor pool, so a process that also loads Triton's own
``inference`` package (``tritonclient.grpc``) sees no clash. Field numbers are the
protocol's; ``tests/http/test_grpc_messages.py`` checks them against Triton's client.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"

_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}
_PARAMS = ("map", "InferParameter")

# message -> [(field, number, type or ("map", value message) or message name, repeated)]
# A nested message is written "Outer.Inner"; a oneof member as "type|oneof".
_MESSAGES: dict[str, list[tuple[str, int, Any, bool]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", False)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", False)],
    "ModelReadyRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelReadyResponse": [("ready", 1, "bool", False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("extensions", 3, "string", True),
    ],
    "ModelMetadataRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelMetadataResponse.TensorMetadata": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
    ],
    "ModelMetadataResponse": [
        ("name", 1, "string", False),
        ("versions", 2, "string", True),
        ("platform", 3, "string", False),
        ("inputs", 4, "ModelMetadataResponse.TensorMetadata", True),
        ("outputs", 5, "ModelMetadataResponse.TensorMetadata", True),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
        ("parameters", 4, _PARAMS, True),
        ("contents", 5, "InferTensorContents", False),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string", False),
        ("parameters", 2, _PARAMS, True),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("parameters", 4, _PARAMS, True),
        ("inputs", 5, "ModelInferRequest.InferInputTensor", True),
        ("outputs", 6, "ModelInferRequest.InferRequestedOutputTensor", True),
        ("raw_input_contents", 7, "bytes", True),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
        ("parameters", 4, _PARAMS, True),
        ("contents", 5, "InferTensorContents", False),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("parameters", 4, _PARAMS, True),
        ("outputs", 5, "ModelInferResponse.InferOutputTensor", True),
        ("raw_output_contents", 6, "bytes", True),
    ],
    "ModelStreamInferResponse": [
        ("error_message", 1, "string", False),
        ("infer_response", 2, "ModelInferResponse", False),
    ],
    "InferParameter": [
        ("bool_param", 1, "bool|parameter_choice", False),
        ("int64_param", 2, "int64|parameter_choice", False),
        ("string_param", 3, "string|parameter_choice", False),
        ("double_param", 4, "double|parameter_choice", False),
        ("uint64_param", 5, "uint64|parameter_choice", False),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", True),
        ("int_contents", 2, "int32", True),
        ("int64_contents", 3, "int64", True),
        ("uint_contents", 4, "uint32", True),
        ("uint64_contents", 5, "uint64", True),
        ("fp32_contents", 6, "float", True),
        ("fp64_contents", 7, "double", True),
        ("bytes_contents", 8, "bytes", True),
    ],
}
#: The service's methods Plinth answers: name -> (request, response).
METHODS = {
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
    "ModelStreamInfer": ("ModelInferRequest", "ModelStreamInferResponse"),
}
#: The methods whose requests and responses are streams (both ways); the rest are unary.
STREAMING = frozenset({"ModelStreamInfer"})


def _field(
    message: descriptor_pb2.DescriptorProto,
    path: str,
    name: str,
    number: int,
    kind: Any,
    repeated: bool,
) -> None:
    field = message.field.add(name=name, number=number)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if isinstance(kind, tuple):  # map<string, V>: a repeated nested entry message
        entry = message.nested_type.add(name=f"{name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=_F.TYPE_MESSAGE,
            label=_F.LABEL_OPTIONAL,
            type_name=f".{PACKAGE}.{kind[1]}",
        )
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{path}.{entry.name}"
        return
    kind, _, oneof = kind.partition("|")
    if oneof:
        if not any(o.name == oneof for o in message.oneof_decl):
            message.oneof_decl.add(name=oneof)
        field.oneof_index = [o.name for o in message.oneof_decl].index(oneof)
    if kind in _TYPES:
        field.type = _TYPES[kind]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{kind}"


def _build() -> dict[str, Any]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="plinth/grpc_predict_v2.proto", package=PACKAGE, syntax="proto3"
    )
    built: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full, fields in _MESSAGES.items():
        outer, _, inner = full.partition(".")
        if outer not in built:
            built[outer] = proto.message_type.add(name=outer)
        message = built[outer].nested_type.add(name=inner) if inner else built[outer]
        for name, number, kind, repeated in fields:
            _field(message, full, name, number, kind, repeated)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in {*_MESSAGES, *(m for pair in METHODS.values() for m in pair)}
    }


#: Every message class by name ("ModelInferRequest", "ModelInferRequest.InferInputTensor", …).
MESSAGES = _build()
