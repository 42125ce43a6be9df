from __future__ import annotations

from pathlib import Path

from plinth.config.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_configuration_is_generated_from_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m plinth.config.reference > "
        "docs/configuration.md`"
    )


def test_every_setting_and_key_is_documented() -> None:
    text = render()
    for needle in (
        "`PLINTH_POLICY_FILE`",
        "`PLINTH_MAX_BODY_BYTES`",
        "`review_below`",
        "`hold_down`",
    ):
        assert needle in text
