"""A remote model's spec: the small TOML document that *is* a version of a model Plinth calls.

The spec says where the model lives (an OpenAI-compatible chat-completions endpoint or a
plain HTTP JSON service), what to send (the prompt template over the input fields and the
sampling parameters), what must come back (a JSON Schema), and how to call it (retries,
time-outs, concurrency, prices and a daily budget). It is read and checked once, every
problem listed together; its canonical JSON (defaults filled in, keys sorted) is the
version's artifact, so a prompt is versioned and content-addressed like any model file.
Credentials are never in it: it names the environment variable that holds them.
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.errors import Problem, RemoteSpecError
from plinth.errors.registry import SPEC_FIELD

#: The artifact format name of a remote spec (``metadata.artifact.format``).
FORMAT = "remote-spec"
OPENAI, HTTP_JSON = "openai", "http-json"
KINDS = (OPENAI, HTTP_JSON)
# How an openai endpoint is asked for JSON: OpenAI's json_schema; json_object with the schema
# beside it (llama.cpp's servers, llama-cpp-python's and JSON modes modelled on Anyscale's);
# plain json_object (any JSON); or not at all.
STRUCTURED = ("json_schema", "json_object_schema", "json_object", "none")
ENGINES = ("format", "jinja2")
ON_BUDGET = ("fallback", "alert")

# Every section and key a spec may hold, with its default (None: required or optional
# without default). Unknown keys are refused: a typo must not silently do nothing.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "endpoint": {
        "kind": OPENAI,
        "base_url": None,
        "path": None,
        "model": None,
        "api_key_env": None,
        "structured": "json_schema",
        "headers": {},
    },
    "prompt": {"engine": "format", "system": None, "template": None},
    "parameters": {"temperature": None, "max_tokens": None, "seed": None, "top_p": None},
    "output": {
        "schema": None,
        "answer": None,
        "confidence": None,
        "path": None,
        "reask": 1,
        "default": None,
    },
    "retry": {
        "attempts": 3,
        "timeout_s": 10.0,
        "total_timeout_s": 30.0,
        "backoff_base_s": 0.5,
        "backoff_cap_s": 8.0,
        "hedge_after_s": None,
    },
    "limits": {"concurrency": 8},
    "cost": {
        "prompt_per_1k": 0.0,
        "completion_per_1k": 0.0,
        "budget_per_day": None,
        "alert_at": 0.8,
        "on_budget": "fallback",
    },
    "cache": {"ttl_s": 0.0},
}


@dataclass(frozen=True)
class RemoteSpec:
    """A checked spec; ``document`` is the canonical form that is hashed and stored."""

    document: dict[str, Any]
    task: str  # classification (an enum answer) or regression (a number)
    classes: list[Any] | None = None
    fields: list[str] = field(default_factory=list)  # input fields the template names

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def read(cls, path: Path) -> RemoteSpec:
        """Read and check a spec file (TOML, or the canonical JSON Plinth stores)."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RemoteSpecError(f"Cannot read the spec {path}: {exc.strerror}.") from exc
        try:
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise RemoteSpecError(f"The spec {path.name} is not valid TOML: {exc}.") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_bytes(cls, data: bytes) -> RemoteSpec:
        """Rebuild a stored spec from its canonical bytes."""
        return cls.from_dict(json.loads(data))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RemoteSpec:
        """Fill defaults, check every field, and list every problem at once."""
        problems: list[Problem] = []
        document: dict[str, Any] = {}
        for section in raw:
            if section not in _DEFAULTS:
                problems.append(_bad(section, f"unknown section [{section}]"))
        for section, defaults in _DEFAULTS.items():
            given = raw.get(section, {})
            if not isinstance(given, Mapping):
                problems.append(_bad(section, f"[{section}] must be a table"))
                given = {}
            for key in given:
                if key not in defaults:
                    problems.append(_bad(f"{section}.{key}", f"unknown key {section}.{key}"))
            document[section] = {k: given.get(k, v) for k, v in defaults.items()}
        task, classes, fields = _check(document, problems)
        if problems:
            raise RemoteSpecError(
                f"The remote model spec has {len(problems)} problem(s).", problems=problems
            )
        return cls(document=document, task=task, classes=classes, fields=fields)

    # -- identity -----------------------------------------------------------------------------

    def canonical(self) -> bytes:
        """The bytes stored and hashed: sorted-key JSON, so formatting never makes a version."""
        return json.dumps(self.document, sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    # -- reading sections ---------------------------------------------------------------------

    @property
    def endpoint(self) -> dict[str, Any]:
        return dict(self.document["endpoint"])

    @property
    def output(self) -> dict[str, Any]:
        return dict(self.document["output"])

    @property
    def retry(self) -> dict[str, Any]:
        return dict(self.document["retry"])

    @property
    def cost(self) -> dict[str, Any]:
        return dict(self.document["cost"])

    @property
    def parameters(self) -> dict[str, Any]:
        """Sampling parameters that were set (unset ones are not sent)."""
        return {k: v for k, v in self.document["parameters"].items() if v is not None}

    @property
    def url(self) -> str:
        endpoint = self.document["endpoint"]
        path = endpoint["path"]
        if path is None:
            path = "/chat/completions" if endpoint["kind"] == OPENAI else ""
        return str(endpoint["base_url"]).rstrip("/") + str(path)

    def render(self, record: Mapping[str, Any]) -> str | None:
        """The prompt for one input record (None for an HTTP JSON spec without a template)."""
        prompt = self.document["prompt"]
        if prompt["template"] is None:
            return None
        return _render(prompt["engine"], prompt["template"], record)

    def render_system(self, record: Mapping[str, Any]) -> str | None:
        prompt = self.document["prompt"]
        if prompt["system"] is None:
            return None
        return _render(prompt["engine"], prompt["system"], record)


def _render(engine: str, template: str, record: Mapping[str, Any]) -> str:
    values = {k: ("" if v is None else v) for k, v in record.items()}
    if engine == "jinja2":
        return str(_jinja(template).render(**values))
    return template.format(**values)


_JINJA_CACHE: dict[str, Any] = {}


def _jinja(template: str) -> Any:
    found = _JINJA_CACHE.get(template)
    if found is None:
        from plinth.flavors.base import require

        jinja2 = require("jinja2", "remote")
        sandbox = require("jinja2.sandbox", "remote")
        env = sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
        found = _JINJA_CACHE[template] = env.from_string(template)
    return found


def _bad(where: str, message: str, hint: str = "") -> Problem:
    return Problem(SPEC_FIELD, message, hint, field=where)


def _check(
    document: dict[str, Any], problems: list[Problem]
) -> tuple[str, list[Any] | None, list[str]]:
    endpoint, prompt, output = document["endpoint"], document["prompt"], document["output"]
    if endpoint["kind"] not in KINDS:
        problems.append(_bad("endpoint.kind", f"kind must be one of {', '.join(KINDS)}"))
    base_url = endpoint["base_url"]
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        problems.append(
            _bad(
                "endpoint.base_url",
                "base_url must be an http:// or https:// URL",
                'e.g. base_url = "https://api.openai.com/v1"',
            )
        )
    if endpoint["kind"] == OPENAI and not isinstance(endpoint["model"], str):
        problems.append(_bad("endpoint.model", 'an openai endpoint needs model = "..."'))
    if endpoint["structured"] not in STRUCTURED:
        problems.append(
            _bad("endpoint.structured", f"structured must be one of {', '.join(STRUCTURED)}")
        )
    key_env = endpoint["api_key_env"]
    if key_env is not None and (not isinstance(key_env, str) or not key_env.isidentifier()):
        problems.append(
            _bad(
                "endpoint.api_key_env",
                "api_key_env names an environment variable",
                "never put the key itself in the spec: it would be stored",
            )
        )
    headers = endpoint["headers"]
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        problems.append(_bad("endpoint.headers", "headers must be a table of strings"))
    elif any(k.lower() in ("authorization", "api-key", "x-api-key") for k in headers):
        problems.append(
            _bad(
                "endpoint.headers",
                "credentials do not belong in the spec",
                "name the variable that holds them with api_key_env",
            )
        )

    fields = _check_prompt(document, problems)
    if endpoint["kind"] == OPENAI and prompt["template"] is None:
        problems.append(_bad("prompt.template", "an openai endpoint needs a prompt template"))

    _check_numbers(document, problems)
    task, classes = _check_output(output, problems)
    return task, classes, fields


def _check_prompt(document: dict[str, Any], problems: list[Problem]) -> list[str]:
    prompt = document["prompt"]
    if prompt["engine"] not in ENGINES:
        problems.append(_bad("prompt.engine", f"engine must be one of {', '.join(ENGINES)}"))
        return []
    names: list[str] = []
    for key in ("system", "template"):
        text = prompt[key]
        if text is None:
            continue
        if not isinstance(text, str):
            problems.append(_bad(f"prompt.{key}", f"{key} must be a string"))
            continue
        if prompt["engine"] == "format":
            try:
                for _, name, _, _ in string.Formatter().parse(text):
                    if name is not None and name != "":
                        root = name.split(".")[0].split("[")[0]
                        if root not in names:
                            names.append(root)
                    elif name == "":
                        problems.append(
                            _bad(
                                f"prompt.{key}",
                                "positional {} fields are not allowed",
                                "name the input field: {subject}",
                            )
                        )
            except ValueError as exc:
                problems.append(_bad(f"prompt.{key}", f"not a valid format string: {exc}"))
        else:
            try:
                from plinth.flavors.base import require

                sandbox = require("jinja2.sandbox", "remote")
                meta = require("jinja2.meta", "remote")
                parsed = sandbox.SandboxedEnvironment().parse(text)
                names += sorted(meta.find_undeclared_variables(parsed) - set(names))
            except Exception as exc:
                if type(exc).__name__ == "MissingExtraError":
                    raise
                problems.append(_bad(f"prompt.{key}", f"not a valid Jinja2 template: {exc}"))
    return names


def _check_numbers(document: dict[str, Any], problems: list[Problem]) -> None:
    def number(section: str, key: str, *, low: float, allow_none: bool = False) -> None:
        value = document[section][key]
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            problems.append(_bad(f"{section}.{key}", f"{section}.{key} must be a number >= {low}"))

    number("retry", "attempts", low=1)
    number("retry", "timeout_s", low=0.001)
    number("retry", "total_timeout_s", low=0.001)
    number("retry", "backoff_base_s", low=0)
    number("retry", "backoff_cap_s", low=0)
    number("retry", "hedge_after_s", low=0.001, allow_none=True)
    number("limits", "concurrency", low=1)
    number("cost", "prompt_per_1k", low=0)
    number("cost", "completion_per_1k", low=0)
    number("cost", "budget_per_day", low=0, allow_none=True)
    number("cost", "alert_at", low=0)
    number("cache", "ttl_s", low=0)
    number("output", "reask", low=0)
    number("parameters", "temperature", low=0, allow_none=True)
    number("parameters", "max_tokens", low=1, allow_none=True)
    number("parameters", "top_p", low=0, allow_none=True)
    seed = document["parameters"]["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        problems.append(_bad("parameters.seed", "seed must be an integer"))
    if document["cost"]["on_budget"] not in ON_BUDGET:
        problems.append(_bad("cost.on_budget", f"on_budget must be one of {', '.join(ON_BUDGET)}"))


def _check_output(output: dict[str, Any], problems: list[Problem]) -> tuple[str, list[Any] | None]:
    schema = output["schema"]
    if not isinstance(schema, Mapping):
        problems.append(
            _bad(
                "output.schema",
                "output.schema must be a JSON Schema (a TOML table)",
                'e.g. [output.schema] type = "object" with properties and required',
            )
        )
        return "classification", None
    try:
        from plinth.flavors.base import require

        jsonschema = require("jsonschema", "remote")
        jsonschema.Draft202012Validator.check_schema(schema)
    except Exception as exc:
        if type(exc).__name__ == "MissingExtraError":
            raise
        problems.append(_bad("output.schema", f"not a valid JSON Schema: {exc}"))
        return "classification", None
    properties = schema.get("properties") if schema.get("type") == "object" else None
    if not isinstance(properties, Mapping):
        problems.append(
            _bad(
                "output.schema",
                "the schema must describe an object with properties",
                "the answer is one property of it, named by output.answer",
            )
        )
        return "classification", None
    answer = output["answer"]
    if answer is None:
        enums = [k for k, v in properties.items() if isinstance(v, Mapping) and "enum" in v]
        if len(enums) == 1:
            answer = output["answer"] = enums[0]
    if answer not in properties:
        problems.append(
            _bad(
                "output.answer",
                f"output.answer must name a property of the schema, "
                f"one of {', '.join(map(str, properties))}",
            )
        )
        return "classification", None
    confidence = output["confidence"]
    if confidence is not None:
        spec = properties.get(confidence)
        if not isinstance(spec, Mapping) or spec.get("type") not in ("number", "integer"):
            problems.append(
                _bad(
                    "output.confidence",
                    "output.confidence must name a number property",
                    "give it minimum = 0 and maximum = 1 in the schema",
                )
            )
    answer_spec = properties[answer]
    required = schema.get("required", [])
    for name in (answer, confidence):
        if name is not None and name not in required:
            problems.append(
                _bad("output.schema", f"{name!r} must be in the schema's required list")
            )
    if isinstance(answer_spec, Mapping) and isinstance(answer_spec.get("enum"), list):
        classes = list(answer_spec["enum"])
        default = output["default"]
        if default is not None and default not in classes:
            problems.append(_bad("output.default", f"default {default!r} is not one of the enum"))
        return "classification", classes
    if isinstance(answer_spec, Mapping) and answer_spec.get("type") in ("number", "integer"):
        if confidence is not None:
            problems.append(_bad("output.confidence", "a numeric answer takes no confidence"))
        return "regression", None
    problems.append(
        _bad(
            "output.answer",
            f"the answer {answer!r} must be an enum (a classifier) or a number (a regressor)",
            "other structured outputs are logged under remote.parsed; make one property the answer",
        )
    )
    return "classification", None
