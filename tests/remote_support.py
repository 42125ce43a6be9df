"""The provider simulator as a fixture, and the ticket-triage spec the remote tests share."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port

REPO = Path(__file__).resolve().parents[1]


class Provider:
    """A running ``tests.provider_sim`` process and the calls that script it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.provider_sim", "--port", str(self.port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{self.url}/_reset", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("the provider simulator did not start")

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, **body: Any) -> None:
        httpx.post(f"{self.url}/_script", json=body, timeout=5).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_requests", timeout=5).json())

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset", timeout=5).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def provider_process() -> Iterator[Provider]:
    started = Provider()
    yield started
    started.stop()


@pytest.fixture
def provider(provider_process: Provider) -> Provider:
    provider_process.reset()
    return provider_process


TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["billing", "bug", "other"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}

EXAMPLES = [
    {"subject": "Charged twice", "body": "My card was charged twice this month", "priority": 2},
    {"subject": "App crashes", "body": "The app crashes when I open settings", "priority": 1},
    {"subject": "Hello", "body": "Where is your office?", "priority": 3},
    {"subject": "Refund", "body": "I want a refund for the last invoice", "priority": 2},
    {"subject": "Error 500", "body": "Saving a report shows an error page", "priority": 1},
]


def triage_spec(base_url: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A complete classifier spec; ``sections`` override whole keys of a section."""
    spec: dict[str, Any] = {
        "endpoint": {"kind": "openai", "base_url": base_url, "model": "sim-small"},
        "prompt": {
            "system": "You triage support tickets. Answer with JSON only.",
            "template": "Subject: {subject}\nPriority: {priority}\n\n{body}",
        },
        "parameters": {"temperature": 0, "max_tokens": 50, "seed": 7},
        "output": {"schema": TRIAGE_SCHEMA, "answer": "label", "confidence": "confidence"},
        "retry": {"attempts": 3, "timeout_s": 2.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05},
        "cost": {"prompt_per_1k": 0.5, "completion_per_1k": 1.5},
    }
    for section, values in sections.items():
        spec[section] = {**spec.get(section, {}), **values}
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    """The spec as TOML (written by hand: the standard library reads TOML, not writes it)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(v)

    for section, values in spec.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def write_examples(path: Path, rows: list[dict[str, Any]] = EXAMPLES) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


LABELS = ["billing", "bug", "other", "billing", "bug"]  # the right answers for EXAMPLES
KEYWORDS = {"charged": "billing", "crashes": "bug", "office": "other", "refund": "billing"}


def strict_rules(model: str) -> list[dict[str, Any]]:
    """Simulator rules under which ``model`` answers EXAMPLES right but for the last one."""
    return [
        {"model": model, "contains": word, "answer": {"label": label, "confidence": 0.8}}
        for word, label in KEYWORDS.items()
    ]


def partial_credit(predicted: Any, expected: Any) -> float:
    """A user scorer (``tests.remote_support:partial_credit``): half a point for "other"."""
    if predicted == expected:
        return 1.0
    return 0.5 if predicted == "other" else 0.0
