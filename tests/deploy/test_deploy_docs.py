"""docs/deploy.md stays true to the code: every setting, only real settings, every value."""

from __future__ import annotations

import re

import yaml

from plinth.config import Settings
from tests.deploy.rendering import CHART, REPO

DOC = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_and_every_documented_variable_is_a_setting() -> None:
    named = set(re.findall(r"\bPLINTH_[A-Z0-9_]*[A-Z0-9]\b", DOC))
    settings = {f"PLINTH_{field.upper()}" for field in Settings.model_fields}
    assert settings - named == set(), "settings missing from docs/deploy.md"
    assert named - settings == set(), "docs/deploy.md names variables Plinth does not read"


def test_every_top_level_chart_value_is_named_in_the_guide() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    missing = [key for key in values if f"`{key}`" not in DOC]
    assert missing == []
