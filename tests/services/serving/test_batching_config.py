"""Per-model batching settings from plinth.toml."""

from __future__ import annotations

import pytest

from plinth.errors import ConfigError
from plinth.services.serving.pool import batching_source


def test_a_section_overrides_the_defaults_and_others_keep_them() -> None:
    source = batching_source({"big": {"max_batch_size": 256, "max_wait_ms": 2}}, 64, 5.0)
    assert source("big") == (256, 0.002)
    assert source("other") == (64, 0.005)


def test_every_bad_value_is_listed_at_once() -> None:
    bad = {"a": {"max_batch_size": 0}, "b": {"max_wait_ms": "soon", "max_batch_size": True}}
    with pytest.raises(ConfigError) as error:
        batching_source(bad, 64, 5.0)
    assert error.value.code == "config.batching"
    assert {(p.field, p.code) for p in error.value.problems} == {
        ("models.a.max_batch_size", "config.max_batch_size"),
        ("models.b.max_wait_ms", "config.max_wait_ms"),
        ("models.b.max_batch_size", "config.max_batch_size"),
    }
