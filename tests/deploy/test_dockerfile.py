"""The Dockerfile, read as text: it must agree with the chart and with Plinth's settings.

Building the image needs a container tool and the network (`make image`), so it is not
part of `make test`; these checks catch the image and the manifests drifting apart.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from typing import Any

import pytest
import yaml

from plinth.config import Settings
from tests.deploy.rendering import CHART, MINIMAL, REPO, one, render

Instruction = tuple[str, str]


def _instructions() -> list[Instruction]:
    """(KEYWORD, arguments) for each instruction, continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _final_stage() -> list[Instruction]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arguments))
    return env


def _the(stage: list[Instruction], keyword: str) -> str:
    found = [arguments for k, arguments in stage if k == keyword]
    assert found, f"no {keyword} in the final stage"
    return found[-1]


def _deployment_container() -> dict[str, Any]:
    container: dict[str, Any] = one(render(MINIMAL), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_both_stages_build_on_one_slim_python_base() -> None:
    instructions = _instructions()
    froms = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    (base,) = [a for k, a in instructions if k == "ARG" and a.startswith("BASE_IMAGE=")]
    image = base.removeprefix("BASE_IMAGE=")
    assert fnmatch.fnmatch(image, "python:3.*-slim*")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    python = image.removeprefix("python:").split("-")[0]
    assert requires.startswith(">=")
    assert _version(python) >= _version(requires.removeprefix(">="))


def test_the_server_runs_as_the_non_root_user_the_chart_declares() -> None:
    stage = _final_stage()
    (uid,) = [a for k, a in stage if k == "ARG" and a.startswith("PLINTH_UID=")]
    user = _the(stage, "USER")
    assert user == "${PLINTH_UID}"
    number = int(uid.removeprefix("PLINTH_UID="))
    assert number >= 10000  # above any uid a base image or host assigns
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == number


def test_plinth_home_is_the_volume_the_chart_mounts_and_settings_are_real() -> None:
    stage = _final_stage()
    env = _env(stage)
    assert json.loads(_the(stage, "VOLUME")) == [env["PLINTH_HOME"]]
    container = _deployment_container()
    chart_env = {e["name"]: e.get("value") for e in container["env"]}
    assert chart_env["PLINTH_HOME"] == env["PLINTH_HOME"]
    assert chart_env["PLINTH_POLICY_FILE"] == env["PLINTH_POLICY_FILE"]
    for name in (n for n in env if n.startswith("PLINTH_")):
        assert name.removeprefix("PLINTH_").lower() in Settings.model_fields, name
    # The root filesystem is read-only: Python must not try to write bytecode there.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_command_serves_on_every_interface_on_the_port_the_chart_probes() -> None:
    stage = _final_stage()
    assert json.loads(_the(stage, "ENTRYPOINT")) == ["plinth"]
    command = json.loads(_the(stage, "CMD"))
    port = _the(stage, "EXPOSE")
    assert command == ["serve", "--host", "0.0.0.0", "--port", port]
    (container_port,) = _deployment_container()["ports"]
    assert container_port["containerPort"] == int(port)
    healthcheck = _the(stage, "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck


@pytest.mark.parametrize("source", ["pyproject.toml", "README.md", "plinth"])
def test_the_build_context_holds_what_the_build_copies(source: str) -> None:
    copied = [
        a.split()[:-1] for k, a in _instructions() if k == "COPY" and not a.startswith("--from")
    ]
    assert source in {s for sources in copied for s in sources}
    rules = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*", "the context is an allow-list"
    assert f"!{source}" in rules or f"!{source}/" in rules
    assert (REPO / source).exists()
