"""Settings: PLINTH_* variables, the policy file's name and its deprecated alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth.config.settings import SETTINGS_HANDOFF, Settings


def test_the_policy_file_is_named_by_plinth_policy_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings().policy_file == Path("plinth.toml")
    monkeypatch.setenv("PLINTH_POLICY_FILE", str(tmp_path / "p.toml"))
    assert Settings().policy_file == tmp_path / "p.toml"


def test_the_old_name_still_works_and_says_it_is_deprecated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLINTH_MONITORING_FILE", str(tmp_path / "old.toml"))
    with pytest.warns(FutureWarning, match="PLINTH_POLICY_FILE"):
        settings = Settings()
    assert settings.policy_file == tmp_path / "old.toml"


def test_policies_are_read_with_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "plinth.toml"
    path.write_text("[models.churn]\nmax_wait_ms = 3\n")
    monkeypatch.setenv("PLINTH_POLICY_FILE", str(path))
    monkeypatch.setenv("PLINTH_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("PLINTH_REVIEW_BELOW", "0.6")
    policies = Settings().policies()
    assert policies.batching("churn").max_batch_size == 16
    assert policies.batching("churn").max_wait_s == 0.003
    assert policies.review("any") is not None and policies.review("any").threshold == 0.6


def test_serve_hands_its_exact_settings_to_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = Settings(home=Path("/srv/plinth"), review_below=0.8, max_batch_size=7)
    monkeypatch.setenv(SETTINGS_HANDOFF, resolved.model_dump_json())
    monkeypatch.setenv("PLINTH_MAX_BATCH_SIZE", "99")  # the handoff wins over the environment
    assert Settings.from_handoff() == resolved
    monkeypatch.delenv(SETTINGS_HANDOFF)
    assert Settings.from_handoff().max_batch_size == 99
