"""``[models.NAME.training]``: the retraining recipe as a typed policy, every problem listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plinth.config import parse_policies
from plinth.errors import ConfigError

FULL = """
[models.diamonds.training]
entrypoint = "examples.diamonds:retrain"
time_limit = "5m"
memory_mb = 2048
threads = 2
auto_deploy = false
canary_share = 25
canary_min_requests = 40
canary_min_duration = "30s"
[models.diamonds.training.data]
reference = false
window = "7d"
max_rows = 5000
table = "extra.parquet"
[models.diamonds.training.holdout]
share = 0.3
[models.diamonds.training.gate]
absolute = { r2 = 0.8 }
slices = ["cut"]
require_improvement = true
[models.diamonds.training.triggers]
schedule = "0 3 * * *"
labels = 500
drift = true
cooldown = "2h"
"""


def test_the_section_becomes_a_training_policy() -> None:
    policy = parse_policies(FULL).training("diamonds")
    assert policy is not None and parse_policies(FULL).training("other") is None
    assert (policy.entrypoint, policy.command, policy.auto_deploy) == (
        "examples.diamonds:retrain",
        None,
        False,
    )
    assert policy.time_limit == timedelta(minutes=5) and policy.memory_mb == 2048
    assert policy.threads == 2
    assert (policy.data.reference, policy.data.traffic, policy.data.table) == (
        False,
        True,
        "extra.parquet",
    )
    assert policy.data.window == timedelta(days=7) and policy.holdout_share == 0.3
    assert dict(policy.gate.absolute) == {"r2": 0.8} and policy.gate.slices == ("cut",)
    assert policy.gate.require_improvement
    t = policy.triggers
    assert t.schedule is not None and (t.labels, t.drift, t.performance) == (500, True, False)
    assert t.schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC)).hour == 3
    assert t.cooldown == timedelta(hours=2)
    assert policy.canary_settings() == {"min_requests": 40, "min_duration": 30.0}


def test_every_problem_in_the_training_section_is_listed() -> None:
    text = """
[models.m.training]
entrypoint = "not a path"
seed = "x"
canary_share = 100
[models.m.training.data]
sql = "select 1"
[models.m.training.gate]
contract = "maybe"
alpha = 2
[models.m.training.triggers]
schedule = "61 * * * *"
labels = 0
sometimes = true
"""
    with pytest.raises(ConfigError) as caught:
        parse_policies(text)
    assert caught.value.code == "config.invalid"
    where = sorted((p.field or "", p.code) for p in caught.value.problems)
    assert where == [
        ("models.m.training.canary_share", "config.invalid_setting"),
        ("models.m.training.data", "config.invalid_setting"),
        ("models.m.training.entrypoint", "config.invalid_setting"),
        ("models.m.training.gate.alpha", "config.invalid_setting"),
        ("models.m.training.gate.contract", "config.invalid_setting"),
        ("models.m.training.seed", "config.invalid_setting"),
        ("models.m.training.triggers.labels", "config.invalid_setting"),
        ("models.m.training.triggers.schedule", "config.invalid_setting"),
        ("models.m.training.triggers.sometimes", "config.unknown_setting"),
    ]
    messages = " ".join(p.message for p in caught.value.problems)
    assert "sql needs url" in messages and "cron expression" in messages


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "exactly one of entrypoint"),
        ('entrypoint = "a:b"\ncommand = ["x"]', "exactly one of entrypoint"),
        ('command = ["train", "{data}"]', "{output}"),
    ],
)
def test_a_recipe_needs_exactly_one_way_to_train(body: str, says: str) -> None:
    with pytest.raises(ConfigError, match="problem") as caught:
        parse_policies(f"[models.m.training]\n{body}\n")
    assert says in caught.value.problems[0].message
