"""The remote flavor against the provider simulator: a real HTTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from plinth.errors import (
    PlinthError,
    RemoteBudgetError,
    RemoteCredentialsError,
    RemoteRefusedError,
    RemoteSchemaError,
    RemoteSpecError,
    RemoteUnavailableError,
)
from plinth.flavors.base import CALL_DEADLINE, flavor_for_object, load_bytes
from plinth.flavors.remote import RemoteFlavor, RemoteSpec
from plinth.flavors.remote.flavor import Ledger
from tests.remote_support import EXAMPLES, Provider, triage_spec, write_spec

BILLING = {"label": "billing", "confidence": 0.9}


@pytest.fixture
def make(provider: Provider) -> Iterator[Any]:
    made: list[RemoteFlavor] = []

    def build(**sections: dict[str, Any]) -> RemoteFlavor:
        flavor = RemoteFlavor(RemoteSpec.from_dict(triage_spec(provider.base_url, **sections)))
        flavor.attach("triage", 1)
        flavor.ledger = Ledger()
        flavor.caller.draw = lambda: 1.0  # the longest wait of each retry: exact, checkable
        flavor.sleeps = []  # type: ignore[attr-defined]
        flavor.caller.sleep = flavor.sleeps.append  # type: ignore[attr-defined]
        made.append(flavor)
        return flavor

    yield build
    for flavor in made:
        flavor.close()


def frame(rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    return pd.DataFrame(rows or EXAMPLES[:1])


# -- the spec -------------------------------------------------------------------------------


def test_a_spec_lists_every_problem_at_once() -> None:
    spec = triage_spec("ftp://nowhere")
    spec["endpoint"].update(kind="grpc", headers={"Authorization": "Bearer sk-1"}, colour="red")
    spec["prompt"]["template"] = "Subject: {} {subject"
    spec["retry"]["attempts"] = 0
    spec["output"]["answer"] = "nope"
    spec["extra"] = {}
    with pytest.raises(RemoteSpecError) as caught:
        RemoteSpec.from_dict(spec)
    fields = sorted({p.field or "" for p in caught.value.problems})
    assert caught.value.code == "registry.remote_spec"
    assert fields == [
        "endpoint.base_url",
        "endpoint.colour",
        "endpoint.headers",
        "endpoint.kind",
        "extra",
        "output.answer",
        "prompt.template",
        "retry.attempts",
    ]
    assert all(p.code == "registry.spec_field" for p in caught.value.problems)


def test_a_classification_schema_makes_a_classifier_and_a_number_a_regressor() -> None:
    spec = RemoteSpec.from_dict(triage_spec("http://x"))
    assert (spec.task, spec.classes, spec.fields) == (
        "classification",
        ["billing", "bug", "other"],
        ["subject", "priority", "body"],
    )
    schema = {
        "type": "object",
        "properties": {"minutes": {"type": "number"}},
        "required": ["minutes"],
    }
    numeric = RemoteSpec.from_dict(
        triage_spec("http://x", output={"schema": schema, "answer": "minutes", "confidence": None})
    )
    assert (numeric.task, numeric.classes) == ("regression", None)
    loose = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    with pytest.raises(RemoteSpecError, match="problem") as caught:
        RemoteSpec.from_dict(
            triage_spec("http://x", output={"schema": loose, "answer": "text", "confidence": None})
        )
    assert [p.field for p in caught.value.problems] == ["output.answer"]


def test_the_version_is_the_canonical_spec_not_its_formatting(tmp_path: Path) -> None:
    document = triage_spec("http://x")
    first = RemoteSpec.read(write_spec(tmp_path / "a.toml", document))
    reordered = dict(reversed(list(document.items())))
    second = RemoteSpec.read(write_spec(tmp_path / "b.toml", reordered))
    assert first.sha256 == second.sha256
    document["prompt"]["template"] += "\nBe brief."
    assert RemoteSpec.read(write_spec(tmp_path / "c.toml", document)).sha256 != first.sha256
    # Stored bytes come back as the same spec, through the generic load path.
    assert flavor_for_object(first) is RemoteFlavor
    loaded = load_bytes(first.canonical(), "remote-spec", [])
    assert isinstance(loaded.flavor, RemoteFlavor)
    assert loaded.sha256 == first.sha256
    loaded.flavor.close()  # type: ignore[attr-defined]


def test_a_key_in_the_spec_is_refused_it_names_a_variable(tmp_path: Path) -> None:
    document = triage_spec("http://x")
    document["endpoint"]["api_key_env"] = "sk-live-123"
    with pytest.raises(RemoteSpecError) as caught:
        RemoteSpec.from_dict(document)
    assert [p.field for p in caught.value.problems] == ["endpoint.api_key_env"]


# -- structured output ----------------------------------------------------------------------


def test_a_valid_reply_is_parsed_validated_costed_and_recorded(
    make: Any, provider: Provider
) -> None:
    provider.script(default=BILLING)
    flavor = make()
    answered = flavor.answer(frame())
    assert answered.predictions.tolist() == ["billing"]
    np.testing.assert_allclose(answered.probabilities, [[0.9, 0.05, 0.05]])
    details = answered.details[0]
    sent = provider.requests()[0]["body"]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["label", "confidence"]
    assert (sent["temperature"], sent["max_tokens"], sent["seed"]) == (0, 50, 7)
    assert sent["messages"][1]["content"] == (
        "Subject: Charged twice\nPriority: 2\n\nMy card was charged twice this month"
    )
    assert details["request"] == sent
    assert details["parsed"] == BILLING and json.loads(details["raw"]) == BILLING
    assert details["response"]["system_fingerprint"] == "fp_sim"
    assert (details["response"]["model"], details["response"]["finish_reason"]) == (
        "sim-small",
        "stop",
    )
    prompt_words = len(" ".join(m["content"] for m in sent["messages"]).split())
    assert details["usage"] == {"prompt_tokens": prompt_words, "completion_tokens": 4}
    assert details["cost"] == pytest.approx(prompt_words / 1000 * 0.5 + 4 / 1000 * 1.5)
    assert [a["outcome"] for a in details["attempts"]] == ["ok"]
    assert (details["reasks"], details["cached"]) == (0, False)


@pytest.mark.parametrize(
    ("structured", "expected"),
    [
        ("json_object_schema", {"type": "json_object", "schema": "the schema"}),
        ("json_object", {"type": "json_object"}),
        ("none", None),
    ],
)
def test_each_way_of_asking_for_json_sends_its_response_format(
    make: Any, provider: Provider, structured: str, expected: dict[str, Any] | None
) -> None:
    provider.script(default=BILLING)
    flavor = make(endpoint={"structured": structured})
    assert flavor.answer(frame()).predictions.tolist() == ["billing"]
    sent = provider.requests()[0]["body"].get("response_format")
    if expected is not None and "schema" in expected:
        expected = {**expected, "schema": flavor.spec.output["schema"]}
    assert sent == expected


def test_an_invalid_reply_is_asked_again_with_the_validation_error(
    make: Any, provider: Provider
) -> None:
    provider.script(
        replies=[{"content": "Sure! The label is billing."}, {"answer": BILLING}], default=None
    )
    answered = make().answer(frame())
    assert answered.predictions.tolist() == ["billing"]
    first, second = (r["body"] for r in provider.requests())
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {
        "role": "assistant",
        "content": "Sure! The label is billing.",
    }
    assert "the reply is not JSON" in second["messages"][3]["content"]
    details = answered.details[0]
    assert details["reasks"] == 1
    assert details["usage"]["completion_tokens"] == 5 + 4  # both replies are paid for


def test_a_reply_that_breaks_the_schema_twice_is_a_model_error(
    make: Any, provider: Provider
) -> None:
    wrong = {"label": "sales", "confidence": 0.8}
    provider.script(replies=[{"answer": wrong}, {"answer": {"label": "bug", "confidence": 3}}])
    with pytest.raises(RemoteSchemaError, match="after 1 re-ask") as caught:
        make().answer(frame())
    assert caught.value.code == "model.remote_schema"
    assert "confidence: 3 is greater than the maximum of 1" in caught.value.message
    assert "'sales' is not one of" in provider.requests()[1]["body"]["messages"][3]["content"]


def test_a_reply_text_found_valid_is_not_validated_again_an_invalid_one_always_is(
    make: Any, provider: Provider
) -> None:
    flavor = make()
    validated: list[Any] = []
    real = flavor._validator.iter_errors

    class Counting:
        def iter_errors(self, value: Any) -> Any:
            validated.append(value)
            return real(value)

    flavor._validator = Counting()
    wrong = {"label": "sales", "confidence": 0.8}
    provider.script(
        replies=[{"answer": a} for a in (BILLING, BILLING, wrong, BILLING, wrong, BILLING)],
        default=None,
    )
    rows = [{**EXAMPLES[0], "priority": n} for n in range(4)]  # four requests, none cached
    answers = [flavor.answer(frame([row])) for row in rows]
    assert [a.predictions.tolist() for a in answers] == [["billing"]] * 4
    assert [a.details[0]["reasks"] for a in answers] == [0, 0, 1, 1]
    assert validated == [BILLING, wrong, wrong]  # each invalid reply, the valid text once
    assert answers[1].details[0]["parsed"] == answers[0].details[0]["parsed"] == BILLING


def test_reask_zero_fails_at_once(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"content": "{}"}], default=BILLING)
    with pytest.raises(RemoteSchemaError, match="after 0 re-ask"):
        make(output={"reask": 0}).answer(frame())
    assert len(provider.requests()) == 1


# -- retries --------------------------------------------------------------------------------


def test_a_429_waits_as_long_as_retry_after_says(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"status": 429, "headers": {"Retry-After": "0.04"}}], default=BILLING)
    flavor = make()
    answered = flavor.answer(frame())
    assert answered.predictions.tolist() == ["billing"]
    assert flavor.sleeps == [0.04]  # Retry-After, not the backoff's 0.01
    attempts = answered.details[0]["attempts"]
    assert [(a.get("status"), a["outcome"]) for a in attempts] == [
        (429, "rate limited"),
        (200, "ok"),
    ]
    assert attempts[0]["retry_after_s"] == 0.04


def test_5xx_are_retried_with_exponential_backoff_then_fail(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"status": 500}, {"status": 502}, {"status": 503}], default=BILLING)
    flavor = make(retry={"backoff_base_s": 0.01, "backoff_cap_s": 0.015})
    with pytest.raises(RemoteUnavailableError, match="after 3 attempt") as caught:
        flavor.answer(frame())
    assert caught.value.code == "model.remote_unavailable"
    assert flavor.sleeps == [0.01, 0.015]  # base, then 2 x base capped; none after the last
    assert len(provider.requests()) == 3


def test_full_jitter_draws_the_wait_below_the_ceiling(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"status": 500}, {"status": 500}], default=BILLING)
    flavor = make(retry={"backoff_base_s": 0.02, "backoff_cap_s": 1.0})
    draws = iter([0.5, 0.25])
    flavor.caller.draw = lambda: next(draws)
    flavor.answer(frame())
    assert flavor.sleeps == [0.01, 0.01]  # 0.5 x 0.02, then 0.25 x 0.04


def test_a_retry_after_past_the_deadline_gives_up_at_once(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"status": 429, "headers": {"Retry-After": "60"}}], default=BILLING)
    flavor = make()  # total_timeout_s is 30: waiting 60 s would be pointless
    with pytest.raises(RemoteUnavailableError, match="#1 429 rate limited") as caught:
        flavor.answer(frame())
    assert flavor.sleeps == [] and len(provider.requests()) == 1
    attempts = caught.value.attempts  # type: ignore[attr-defined]
    assert attempts[0]["gave_up"] == "the next wait would pass the deadline"


def test_a_4xx_other_than_429_is_not_retried(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"status": 401}], default=BILLING)
    flavor = make()
    with pytest.raises(RemoteRefusedError, match="HTTP 401") as caught:
        flavor.answer(frame())
    assert caught.value.code == "model.remote_refused"
    assert len(provider.requests()) == 1 and flavor.sleeps == []


def test_a_hung_attempt_times_out_and_the_retry_answers(make: Any, provider: Provider) -> None:
    provider.script(replies=[{"delay_s": 5, "answer": BILLING}], default=BILLING)
    answered = make(retry={"timeout_s": 0.3}).answer(frame())
    attempts = answered.details[0]["attempts"]
    assert [a["outcome"] for a in attempts] == ["timeout", "ok"]


def test_a_hedged_attempt_takes_the_first_reply(make: Any, provider: Provider) -> None:
    slow = {"label": "bug", "confidence": 0.5}
    provider.script(replies=[{"delay_s": 3, "answer": slow}], default=BILLING)
    answered = make(retry={"timeout_s": 10.0, "hedge_after_s": 0.3}).answer(frame())
    assert answered.predictions.tolist() == ["billing"]  # the hedge's reply, not the slow one
    [attempt] = answered.details[0]["attempts"]
    assert (attempt["outcome"], attempt["hedged"]) == ("ok", True)
    first, second = provider.requests()
    assert first["body"] == second["body"]


def test_an_attempt_answered_before_the_hedge_is_not_hedged(make: Any, provider: Provider) -> None:
    provider.script(default=BILLING)
    answered = make(retry={"hedge_after_s": 1.0}).answer(frame())
    assert "hedged" not in answered.details[0]["attempts"][0]
    assert len(provider.requests()) == 1


def test_the_request_deadline_cuts_the_attempt_and_stops_retrying(
    make: Any, provider: Provider
) -> None:
    import time

    provider.script(replies=[{"delay_s": 5}, {"delay_s": 5}, {"delay_s": 5}], default=BILLING)
    flavor = make(retry={"timeout_s": 10.0, "backoff_base_s": 0.2, "backoff_cap_s": 0.2})
    token = CALL_DEADLINE.set(time.perf_counter() + 0.3)
    try:
        with pytest.raises(RemoteUnavailableError) as caught:
            flavor.answer(frame())
    finally:
        CALL_DEADLINE.reset(token)
    attempts = caught.value.attempts  # type: ignore[attr-defined]
    assert attempts[0]["outcome"] == "timeout" and attempts[0]["timeout_s"] <= 0.3
    assert len(attempts) == 1  # no time left for a second one


# -- credentials, budget, cache, batches ---------------------------------------------------


def test_credentials_come_from_the_named_variable(
    make: Any, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.script(default=BILLING)
    flavor = make(endpoint={"api_key_env": "SIM_API_KEY"})
    with pytest.raises(RemoteCredentialsError, match="SIM_API_KEY") as caught:
        flavor.answer(frame())
    assert caught.value.code == "model.remote_credentials"
    assert provider.requests() == []
    monkeypatch.setenv("SIM_API_KEY", "sk-test-42")
    flavor.answer(frame())
    assert provider.requests()[0]["headers"]["authorization"] == "Bearer sk-test-42"
    assert "sk-test-42" not in json.dumps(flavor.spec.document)


def test_the_daily_budget_stops_calls_and_resets_at_midnight(make: Any, provider: Provider) -> None:
    from datetime import date

    provider.script(default=BILLING)
    flavor = make(cost={"prompt_per_1k": 1.0, "completion_per_1k": 1.0, "budget_per_day": 0.01})
    today = [date(2026, 12, 5)]
    flavor.ledger.today = lambda: today[0]
    flavor.answer(frame())  # ~0.02: over the budget after this one
    with pytest.raises(RemoteBudgetError, match="daily budget") as caught:
        flavor.answer(frame())
    assert caught.value.code == "model.budget_exhausted"
    assert len(provider.requests()) == 1
    today[0] = date(2026, 12, 6)
    assert flavor.answer(frame()).predictions.tolist() == ["billing"]


def test_on_budget_alert_keeps_calling(make: Any, provider: Provider) -> None:
    provider.script(default=BILLING)
    flavor = make(cost={"prompt_per_1k": 1.0, "budget_per_day": 0.001, "on_budget": "alert"})
    flavor.answer(frame())
    flavor.answer(frame())
    assert len(provider.requests()) == 2


def test_the_cache_answers_an_identical_request_without_paying(
    make: Any, provider: Provider
) -> None:
    provider.script(default=BILLING)
    flavor = make(cache={"ttl_s": 60})
    first = flavor.answer(frame()).details[0]
    again = flavor.answer(frame()).details[0]
    assert len(provider.requests()) == 1
    assert (again["cached"], again["cost"], again["parsed"]) == (True, 0.0, first["parsed"])
    assert again["request_sha256"] == first["request_sha256"]
    flavor.answer(frame(EXAMPLES[1:2]))  # another input is another request
    assert len(provider.requests()) == 2


def test_a_batch_is_sent_concurrently_and_one_bad_row_costs_the_others_nothing(
    make: Any, provider: Provider
) -> None:
    provider.script(
        rules=[{"contains": "office", "answer": {"label": "nope", "confidence": 1}}],
        default=BILLING,
    )
    flavor = make(output={"reask": 0})
    with pytest.raises(RemoteSchemaError):
        flavor.answer(frame(EXAMPLES))
    assert len(provider.requests()) == 5
    # Scoring retries the batch's requests one by one to isolate the culprit: the rows
    # already answered come from the memo, not from the provider again.
    for row in [EXAMPLES[0], EXAMPLES[1], EXAMPLES[3], EXAMPLES[4]]:
        assert flavor.answer(frame([row])).predictions.tolist() == ["billing"]
    with pytest.raises(RemoteSchemaError):  # the culprit fails again, from the memo
        flavor.answer(frame(EXAMPLES[2:3]))
    assert len(provider.requests()) == 5
    flavor.answer(frame(EXAMPLES[:1]))  # the memo is spent: a new request is sent
    assert len(provider.requests()) == 6


def test_a_plain_http_json_service(make: Any, provider: Provider) -> None:
    provider.script(default={"label": "bug", "confidence": 0.7})
    flavor = make(
        endpoint={"kind": "http-json", "base_url": provider.url, "path": "/score"},
        prompt={"system": None, "template": None},
        output={"path": "result"},
    )
    answered = flavor.answer(frame())
    assert answered.predictions.tolist() == ["bug"]
    sent = provider.requests()[0]["body"]
    assert sent["inputs"] == EXAMPLES[0]
    assert sent["parameters"] == {"temperature": 0, "max_tokens": 50, "seed": 7}


def test_jinja2_templates(make: Any, provider: Provider) -> None:
    provider.script(default=BILLING)
    flavor = make(
        prompt={
            "engine": "jinja2",
            "template": "{{ subject | upper }}{% if priority < 2 %} (urgent){% endif %}",
        }
    )
    flavor.answer(frame(EXAMPLES[1:2]))
    assert provider.requests()[0]["body"]["messages"][1]["content"] == "APP CRASHES (urgent)"


def test_every_remote_error_is_a_model_error_so_the_fallback_chain_answers() -> None:
    from plinth.errors import ModelError

    for cls in (
        RemoteBudgetError,
        RemoteCredentialsError,
        RemoteRefusedError,
        RemoteSchemaError,
        RemoteUnavailableError,
    ):
        assert issubclass(cls, ModelError) and issubclass(cls, PlinthError)
        assert cls("x").status == 503


def test_the_example_spec_in_the_readme_is_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "remote"
    spec = RemoteSpec.read(examples / "ticket_triage.toml")
    assert (spec.task, spec.classes) == ("classification", ["billing", "bug", "other"])
    assert spec.endpoint["api_key_env"] == "OPENAI_API_KEY"
    assert set(spec.fields) == {"subject", "priority", "body"}
