"""Render the Helm chart offline with Helm's own engine and check manifests against schemas.

Helm's template engine comes from helm-python-sdk (Helm's Go SDK behind ctypes: no helm
binary, no cluster); the Kubernetes schemas from kubernetes-validate (bundled, strict:
an unknown field is an error). Both are in the `dev` extra.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import yaml
from kubernetes_validate import utils as kubernetes_schemas

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "plinth"
POSTGRES_URL = "postgresql+psycopg://plinth:secret@postgres.db.svc:5432/plinth"
MINIMAL: dict[str, Any] = {"database": {"url": POSTGRES_URL}}

Manifest = dict[str, Any]


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values layered like repeated `helm -f`: nested mappings merge, the rest replaces."""
    out: dict[str, Any] = {}
    for layer in layers:
        _merge_into(out, copy.deepcopy(layer))
    return out


def _merge_into(target: dict[str, Any], layer: dict[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def render(values: dict[str, Any], *, upgrade: bool = True) -> list[Manifest]:
    """Every manifest the chart makes for these values (hooks included, as on an upgrade)."""
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values, name="plinth", namespace="ml", is_upgrade=upgrade)
    manifests: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(manifests: list[Manifest]) -> set[str]:
    return {m["kind"] for m in manifests}


def supported_kubernetes_versions() -> tuple[str, str]:
    """The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest schema."""
    claimed = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    oldest = claimed.removeprefix(">=").split("-")[0]
    return oldest, kubernetes_schemas.latest_version()


def validate(manifest: Manifest, kubernetes_version: str) -> None:
    """Raise if the manifest breaks its schema (strict: unknown fields are errors)."""
    if manifest["kind"] == "ServiceMonitor":
        jsonschema.Draft202012Validator(SERVICE_MONITOR).validate(manifest)
        return
    kubernetes_schemas.validate(manifest, kubernetes_version, strict=True)


def _strict_object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# Prometheus durations: 30s, 1m30s, 500ms...
_DURATION = {"type": "string", "pattern": "^(0|([0-9]+(y|w|d|h|m|s|ms))+)$"}

# The ServiceMonitor is a custom resource, so kubernetes-validate has no schema for it. This
# one is written from the Prometheus Operator's API reference (monitoring.coreos.com/v1), for
# the fields the chart uses, and strict like the others; it is not the CRD itself.
SERVICE_MONITOR: dict[str, Any] = _strict_object(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _strict_object(
            {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": _STRING_MAP,
                "annotations": _STRING_MAP,
            },
            ["name"],
        ),
        "spec": _strict_object(
            {
                "selector": _strict_object({"matchLabels": _STRING_MAP}, ["matchLabels"]),
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": _strict_object(
                        {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                        ["port"],
                    ),
                },
            },
            ["selector", "endpoints"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)
