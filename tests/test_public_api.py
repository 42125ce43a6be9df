from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

import plinth

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_is_the_public_namespace() -> None:
    assert plinth.__all__ == sorted(plinth.__all__)
    assert dir(plinth) == plinth.__all__
    for name in plinth.__all__:
        value = getattr(plinth, name)  # imported on first use
        if name != "__version__":
            assert value.__module__.startswith("plinth."), name
    public = {n for n in vars(plinth) if not n.startswith("_") and n in plinth.__all__}
    assert public == set(plinth.__all__) - {"__version__"}


def test_unknown_names_are_attribute_errors() -> None:
    try:
        plinth.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("plinth.no_such_thing resolved")


def test_version_has_one_source() -> None:
    assert plinth.__version__ == version("plinth-ml")


def test_cli_help_lists_the_commands() -> None:
    plinth_bin = Path(sys.executable).parent / "plinth"
    done = subprocess.run(
        [str(plinth_bin), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    for command in ("register", "models", "show", "serve", "predict", "replay", "prune"):
        assert command in done.stdout


def test_the_helm_charts_app_version_is_the_package_version() -> None:
    # pyproject.toml is the one source; the chart repeats it for its default image tag, and
    # deploy/k8s is that chart rendered (tests/deploy keeps the two equal).
    chart = yaml.safe_load((ROOT / "deploy" / "helm" / "plinth" / "Chart.yaml").read_text())
    assert chart["appVersion"] == version("plinth-ml")
