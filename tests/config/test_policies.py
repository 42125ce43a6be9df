"""plinth.toml: one reader, every problem at once, typed policies per model."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from plinth.config import BatchingPolicy, CanaryPolicies, Policies, parse_policies, read_policies
from plinth.core.canary_policy import CanaryPolicy
from plinth.core.review_policy import ReviewPolicy
from plinth.errors import ConfigError

GOOD = """
[monitoring]
window = "5m"
error_rate = 0.01
latency_p99_s = false          # switches the rule off
[monitoring.drift]
numeric_large = { method = "psi", threshold = 0.3 }

[canary]
min_requests = 500

[models.churn]
max_batch_size = 256
max_wait_ms = 2
review_below = 0.7
review_measure = "margin"
[models.churn.monitoring]
hold_down = "30s"
control_sections = ["prediction"]
[models.churn.monitoring.drift.features.age]
method = "psi"
threshold = 0.1
[models.churn.canary]
action = "rollback"
checks = ["error_rate", "p95_latency"]

[models.prices]
review_above = 2.5
review_measure = "tree_spread"
"""


def test_a_missing_file_means_every_default(tmp_path: Path) -> None:
    policies = read_policies(tmp_path / "absent.toml", max_batch_size=32, max_wait_ms=5)
    assert policies.batching("any") == BatchingPolicy(32, 0.005)
    assert policies.review("any") is None
    assert policies.canary == CanaryPolicies() and policies.alerts("any") == Policies().alerts("x")


def test_every_section_becomes_a_typed_policy_per_model() -> None:
    policies = parse_policies(GOOD, review_below=0.5)
    churn = policies.alerts("churn")
    assert churn.window == timedelta(minutes=5)  # inherited from [monitoring]
    assert churn.hold_down == timedelta(seconds=30)
    assert churn.error_rate == 0.01 and churn.latency_p99_s is None
    assert churn.control_sections == ("prediction",)
    assert churn.drift.overrides["age"].method == "psi"
    assert churn.drift.numeric_large.threshold == 0.3
    assert policies.alerts("other") == policies.monitoring.defaults
    assert policies.batching("churn") == BatchingPolicy(256, 0.002)
    assert policies.batching("other") == BatchingPolicy(64, 0.0)
    assert policies.review("churn") == ReviewPolicy(0.7, "margin")
    assert policies.review("prices") == ReviewPolicy(2.5, "tree_spread")
    assert policies.review("other") == ReviewPolicy(0.5, "top_probability")  # the setting
    assert policies.canary.for_model("other").min_requests == 500
    canary = policies.canary.for_model("churn")
    assert (canary.min_requests, canary.action, canary.checks) == (
        500,
        "rollback",
        ("error_rate", "p95_latency"),
    )
    assert policies.canary.for_model("churn", {"action": "auto"}).action == "auto"


def test_the_drift_settings_reach_the_drift_config() -> None:
    text = """
[monitoring.drift]
min_values = 50
min_expected = 10.0
distance_alpha = 0.05
unseen_min_change = 0.05
"""
    drift = parse_policies(text).alerts("any").drift
    assert (drift.min_values, drift.min_expected, drift.distance_alpha) == (50, 10.0, 0.05)
    assert drift.unseen_min_change == 0.05
    with pytest.raises(ConfigError) as info:
        parse_policies("[monitoring.drift]\nmin_values = 0\n")
    assert info.value.code == "config.invalid"


def test_every_problem_in_the_file_is_listed_at_once() -> None:
    bad = """
[monitoring]
windw = "5m"
hold_down = "soon"
[monitoring.drift.features.x]
method = "magic"
threshold = 1
[canary]
min_requests = -1
[models.a]
max_batch_size = 0
[models.b]
max_wait_ms = "soon"
max_batch_size = true
review_below = 1.5
[models.c.canary]
bogus = 1
"""
    with pytest.raises(ConfigError, match="has 9 problems") as caught:
        parse_policies(bad)
    error = caught.value
    assert error.code == "config.invalid" and "plinth.toml" in error.hint
    assert {(p.field, p.code) for p in error.problems} == {
        ("monitoring.windw", "config.unknown_setting"),
        ("monitoring.hold_down", "config.invalid_setting"),
        ("monitoring.drift.features.x.method", "config.invalid_setting"),
        ("canary.min_requests", "canary.invalid_setting"),
        ("models.a.max_batch_size", "config.invalid_setting"),
        ("models.b.max_wait_ms", "config.invalid_setting"),
        ("models.b.max_batch_size", "config.invalid_setting"),
        ("models.b.review_below", "config.invalid_setting"),
        ("models.c.canary.bogus", "canary.unknown_setting"),
    }


def test_semantic_problems_are_listed_together_too() -> None:
    bad = """
[models.a]
review_below = 0.5
review_above = 1.0
[models.b]
review_measure = "tree_spread"
review_below = -0.0001
[models.c.canary]
min_requests = "many"
"""
    with pytest.raises(ConfigError) as caught:
        parse_policies(bad)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"models.a", "models.b.review_below", "models.c.canary.min_requests"}


def test_a_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plinth.toml"
    path.write_text("[monitoring\nwindow = 5m\n")
    with pytest.raises(ConfigError, match=r"plinth\.toml has 1 problem") as caught:
        read_policies(path)
    assert caught.value.code == "config.invalid"
    assert caught.value.problems[0].code == "config.syntax"


def test_deploy_flags_are_validated_as_the_file_is() -> None:
    policies = parse_policies(GOOD)
    with pytest.raises(ConfigError) as caught:
        policies.canary.for_model("churn", {"min_requests": -5})
    assert caught.value.problems[0].code == "canary.invalid_setting"
    assert policies.canary.for_model("churn", {"min_requests": 5}) == CanaryPolicy(
        checks=("error_rate", "p95_latency"), action="rollback", min_requests=5
    )


def test_admission_limits_are_per_model_over_the_settings_defaults() -> None:
    text = (
        "[models.churn]\nmax_queue_records = 500\nshed = false\n[models.prices]\nmax_wait_ms = 2\n"
    )
    policies = parse_policies(text, max_queue_records=1000)
    assert policies.batching("churn") == BatchingPolicy(64, 0.0, max_queue_records=500, shed=False)
    assert policies.batching("prices") == BatchingPolicy(64, 0.002, max_queue_records=1000)
    assert policies.batching("other") == BatchingPolicy(64, 0.0, max_queue_records=1000, shed=True)
    with pytest.raises(ConfigError, match="1 problem") as caught:
        parse_policies("[models.churn]\nmax_queue_records = -1\n")
    assert caught.value.code == "config.invalid"
    assert caught.value.problems[0].field == "models.churn.max_queue_records"


LOG = """
[log]
retention = "30d"
[models.churn.log]
redact = ["email"]
hash = ["customer_id"]
[models.fraud.log]
retention = "7d"
"""


def test_log_policies_per_model_over_the_file_default() -> None:
    policies = parse_policies(LOG, log_hash_key="secret")
    churn = policies.log("churn")
    assert churn.redact == {"email"} and churn.hash == {"customer_id"}
    assert churn.retention == timedelta(days=30)  # from [log]
    assert churn.hash_key == b"secret"
    assert policies.log("fraud").retention == timedelta(days=7)
    assert policies.log("fraud").redact == frozenset()
    assert policies.log("other") == policies.log_default
    assert "secret" not in repr(churn)


def test_hashing_without_a_key_refuses_to_start_with_every_log_problem_listed() -> None:
    text = LOG + '[models.churn2.log]\nredact = ["a"]\nhash = ["a"]\nretention = "soon"\n'
    with pytest.raises(ConfigError) as info:
        parse_policies(text)
    assert info.value.code == "config.invalid"
    found = {(p.code, p.field) for p in info.value.problems}
    assert ("config.invalid_setting", "models.churn2.log.retention") in found
    # The schema error stops the file first; fix it and the semantic problems show.
    text = LOG + '[models.churn2.log]\nredact = ["a"]\nhash = ["a"]\n'
    with pytest.raises(ConfigError) as info:
        parse_policies(text)
    found = {(p.code, p.field) for p in info.value.problems}
    assert found == {
        ("config.log_hash_key", "models.churn.log.hash"),
        ("config.log_hash_key", "models.churn2.log.hash"),
        ("config.log_redact_and_hash", "models.churn2.log"),
    }
    assert "PLINTH_LOG_HASH_KEY" in info.value.problems[0].hint


def test_the_hash_key_comes_from_the_setting(tmp_path: Path) -> None:
    from plinth.config.settings import Settings

    path = tmp_path / "plinth.toml"
    path.write_text(LOG)
    with pytest.raises(ConfigError):
        Settings(policy_file=path).policies()
    settings = Settings(policy_file=path, log_hash_key="k" * 32)
    assert settings.policies().log("churn").hash_key == b"k" * 32
    assert "kkkk" not in repr(settings)
