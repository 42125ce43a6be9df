"""Render the Helm chart into deploy/k8s/plinth.yaml, plain manifests for `kubectl apply`.

Uses Helm's own template engine (helm-python-sdk, in the `dev` extra), offline:

    .venv/bin/python deploy/k8s/render.py           # rewrite plinth.yaml
    .venv/bin/python deploy/k8s/render.py --check   # exit 1 if plinth.yaml is stale

tests/deploy checks that the committed file is what the chart renders today.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE.parent / "helm" / "plinth"
VALUES = HERE / "values.yaml"
OUTPUT = HERE / "plinth.yaml"
RELEASE = "plinth"
# kubectl applies documents in file order: what others refer to comes first.
KIND_ORDER = (
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "CronJob",
)
HEADER = """\
# Plinth on Kubernetes, as plain manifests: the Helm chart deploy/helm/plinth rendered with
# deploy/k8s/values.yaml by deploy/k8s/render.py. Do not edit; change the chart or the values
# and render again. Before `kubectl apply -f deploy/k8s/plinth.yaml`, create the Secret
# plinth-db with key database-url (docs/deploy.md).
"""


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` prints them."""
    import helm_python

    chart = helm_python.Chart.load(CHART)
    rendered: dict[str, str] = chart.render(values, name=release, namespace="default")
    return rendered


def plain_manifests() -> str:
    """The chart rendered with deploy/k8s/values.yaml, one YAML stream in apply order."""
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    documents: list[tuple[int, str, str]] = []
    for path, text in render(values).items():
        if not path.endswith(".yaml") or not text.strip():
            continue
        kind = yaml.safe_load(text)["kind"]
        documents.append((KIND_ORDER.index(kind), path, text.strip("\n")))
    documents.sort()
    body = "\n---\n".join(f"# Source: {path}\n{text}" for _, path, text in documents)
    return f"{HEADER}---\n{body}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if plinth.yaml is stale")
    args = parser.parse_args()
    text = plain_manifests()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run {Path(__file__).name} to render it", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
