from __future__ import annotations

from pathlib import Path

import pytest

from plinth.config import read_plinth_toml
from plinth.errors import ConfigError


def test_a_missing_file_means_defaults_and_a_good_one_is_parsed(tmp_path: Path) -> None:
    assert read_plinth_toml(tmp_path / "absent.toml") == {}
    path = tmp_path / "plinth.toml"
    path.write_text('[models.churn]\nreview_below = 0.7\n[monitoring]\nwindow = "5m"\n')
    assert read_plinth_toml(path) == {
        "models": {"churn": {"review_below": 0.7}},
        "monitoring": {"window": "5m"},
    }


def test_a_syntax_error_names_the_file_and_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "plinth.toml"
    path.write_text("[monitoring\nwindow = 5m\n")
    with pytest.raises(ConfigError, match=r"plinth\.toml") as caught:
        read_plinth_toml(path)
    assert caught.value.code == "config.plinth_toml" and "TOML" in caught.value.hint
