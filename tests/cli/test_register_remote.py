"""``plinth register spec.toml --examples``, ``plinth diff`` and ``plinth show`` in process:
what a user sees for a good spec and for each mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plinth.cli.common import console
from plinth.cli.main import app
from tests.remote_support import (
    EXAMPLES,
    Provider,
    strict_rules,
    triage_spec,
    write_examples,
    write_spec,
)


@pytest.fixture
def home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLINTH_DATABASE_URL", database_url)
    monkeypatch.setattr(console, "width", 200)
    return tmp_path / "home"


def cli(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args))
    return done.exit_code, done.output


def test_register_show_and_diff_a_remote_model(home: Path, tmp_path: Path) -> None:
    examples = str(write_examples(tmp_path / "examples.jsonl"))
    spec = triage_spec("http://127.0.0.1:9/v1")
    v1 = str(write_spec(tmp_path / "v1.toml", spec))
    spec["prompt"]["system"] = "You triage tickets.\nAnswer with JSON only."
    v2 = str(write_spec(tmp_path / "v2.toml", spec))
    for path in (v1, v2, v2):
        code, out = cli("register", path, "--name", "triage", "--examples", examples,
                        "--home", str(home))  # fmt: skip
        assert code == 0, out
    assert "registered triage:2" in out  # the same spec again: the same version
    code, out = cli("show", "triage", "--home", str(home))
    assert code == 0 and "remote: openai http://127.0.0.1:9/v1 model sim-small" in out
    assert "Subject: {subject}" in out and "lineage: examples sha256" in out
    code, out = cli("diff", "triage", "1", "2", "--home", str(home))
    assert code == 0, out
    assert "-You triage support tickets. Answer with JSON only." in out
    assert "+You triage tickets." in out and "+Answer with JSON only." in out
    code, out = cli("diff", "triage", "2", "2", "--home", str(home))
    assert "triage:2 and triage:2 are the same" in out


def test_each_mistake_is_named(home: Path, tmp_path: Path) -> None:
    spec = str(write_spec(tmp_path / "s.toml", triage_spec("http://127.0.0.1:9/v1")))
    code, out = cli("register", spec, "--name", "triage", "--home", str(home))
    assert code == 1 and "cli.model_source" in out and "--examples" in out

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "a"}\n[1, 2]\nnot json\n')
    code, out = cli("register", spec, "--name", "t", "--examples", str(bad), "--home", str(home))
    assert code == 1 and "registry.examples" in out and "line(s) 2, 3" in out

    partial = str(write_examples(tmp_path / "partial.jsonl", [{"subject": "a", "body": "b"}]))
    code, out = cli("register", spec, "--name", "t", "--examples", partial, "--home", str(home))
    assert code == 1 and "registry.examples" in out and "priority" in out

    broken = tmp_path / "broken.toml"
    broken.write_text('[endpoint]\nkind = "openai"\nbase_url = "nowhere"\n')
    code, out = cli("register", str(broken), "--name", "t", "--examples", partial,
                    "--home", str(home))  # fmt: skip
    assert code == 1 and "registry.remote_spec" in out
    assert "endpoint.base_url" in out and "output.schema" in out and "prompt.template" in out


def test_batch_scoring_a_file_with_a_remote_model_logs_every_call(
    home: Path, tmp_path: Path, provider: Provider
) -> None:
    import pandas as pd

    from plinth.api import open_registry
    from plinth.config.settings import Settings

    examples = str(write_examples(tmp_path / "examples.jsonl"))
    spec = str(write_spec(tmp_path / "s.toml", triage_spec(provider.base_url)))
    code, out = cli("register", spec, "--name", "triage", "--examples", examples,
                    "--home", str(home))  # fmt: skip
    assert code == 0, out
    provider.script(rules=strict_rules("sim-small"), default={"label": "bug", "confidence": 0.6})
    table = tmp_path / "tickets.csv"
    pd.DataFrame(EXAMPLES).to_csv(table, index=False)
    scored = tmp_path / "scored.csv"
    code, out = cli("predict", "triage", "-i", str(table), "-o", str(scored),
                    "--home", str(home))  # fmt: skip
    assert code == 0, out
    assert pd.read_csv(scored)["prediction"].tolist() == [
        "billing",
        "bug",
        "other",
        "billing",
        "bug",
    ]
    assert len(provider.requests()) == 5
    settings = Settings(home=home, database_url=os.environ["PLINTH_DATABASE_URL"])
    with open_registry(settings) as registry:
        logged = registry.store.list_predictions("triage")
    assert len(logged) == 5
    assert all(r.output["remote"]["usage"]["completion_tokens"] == 4 for r in logged)
