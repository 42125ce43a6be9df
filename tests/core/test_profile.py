"""Profiles: bins learned from training data, filled by live batches, merged by addition."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plinth.core import profile as profile_module
from plinth.core.profile import FeatureBins, Profile
from plinth.errors import PlinthError

KINDS = {
    "x": "numeric",
    "n": "integer",
    "flag": "boolean",
    "city": "categorical",
    "when": "datetime",
    "note": "text",
}


def training(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, rows)
    x[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 5, rows),
            "flag": rng.random(rows) < 0.3,
            "city": rng.choice(["paris", "oslo", "rome"], rows, p=[0.5, 0.3, 0.2]),
            "when": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 86_400 * 30, rows), unit="s"),
            "note": ["free text"] * rows,
        }
    )


@pytest.fixture
def reference() -> Profile:
    return Profile.fit(training(), KINDS)


def test_numeric_edges_are_deduplicated_training_quantiles(reference: Profile) -> None:
    train = training()
    x = reference.features_["x"]
    values = train["x"].dropna().to_numpy()
    expected = np.unique(np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf"))
    assert x.edges == expected.tolist()
    assert x.counts.sum() == values.size and x.nulls == train["x"].isna().sum()
    assert (x.minimum, x.maximum) == (values.min(), values.max())
    assert x.out_of_range == 0
    # every training value falls in its right-closed bin
    assert (
        x.counts.tolist()
        == np.bincount(
            np.searchsorted(expected, values, side="left"), minlength=len(expected) + 1
        ).tolist()
    )


def test_integer_and_boolean_edges_sit_on_observed_values(reference: Profile) -> None:
    n = reference.features_["n"]
    assert n.edges == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert n.counts[-1] == 0  # (4, inf): only values above the training maximum land here
    flag = reference.features_["flag"]
    assert flag.edges == [0.0, 1.0] and flag.source_kind == "boolean"
    assert flag.counts.tolist() == [(~training()["flag"]).sum(), training()["flag"].sum(), 0]


def test_datetimes_are_binned_on_epoch_seconds(reference: Profile) -> None:
    when = reference.features_["when"]
    seconds = (training()["when"] - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    assert when.minimum == seconds.min() and when.maximum == seconds.max()
    assert when.mean() == pytest.approx(seconds.mean(), rel=1e-12)
    assert when.std() == pytest.approx(seconds.std(ddof=0), rel=1e-9)


def test_text_is_skipped_and_categories_are_most_frequent_first(reference: Profile) -> None:
    assert "note" not in reference.features_
    city = reference.features_["city"]
    assert city.categories == ["paris", "oslo", "rome"]
    assert city.counts[-1] == 0  # nothing unseen in training


def test_rare_categories_share_the_last_slot() -> None:
    frame = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c", "d"]})
    bins = Profile.fit(frame, {"c": "categorical"}, max_categories=2).features_["c"]
    assert bins.categories == ["a", "b"]
    assert bins.counts.tolist() == [5, 3, 2]


def test_live_values_land_in_slots_nulls_and_unseen(reference: Profile) -> None:
    live = reference.empty_like()
    live.update(
        pd.DataFrame(
            {
                "x": [1000.0, None, np.inf],
                "n": [1, 2, 99],
                "flag": [True, False, True],
                "city": ["oslo", None, "berlin"],
                "when": pd.to_datetime(["2024-01-02", None, "2030-01-01"]),
            }
        )
    )
    x, city, when = live.features_["x"], live.features_["city"], live.features_["when"]
    assert x.counts.tolist() == [0] * 9 + [1] and x.nulls == 2 and x.out_of_range == 1
    assert live.features_["n"].out_of_range == 1
    assert city.counts.tolist() == [0, 1, 0, 1] and city.nulls == 1
    assert when.nulls == 1 and when.out_of_range == 1
    assert "note" not in live.features_
    assert live.n_rows_ == 3


def test_a_missing_column_counts_as_nulls(reference: Profile) -> None:
    live = reference.empty_like()
    live.update(pd.DataFrame({"x": [1.0, 2.0]}))
    assert live.features_["x"].total == 2
    assert live.features_["city"].nulls == 2 and live.features_["n"].nulls == 2


def test_messy_columns_are_coerced_not_fatal(reference: Profile) -> None:
    live = reference.empty_like()
    live.update(
        pd.DataFrame(
            {
                "x": pd.Series(["51.5", "oops", None], dtype=object),
                "n": pd.array([1, pd.NA, 3], dtype="Int64"),
                "flag": pd.array([True, None, False], dtype="boolean"),
                "city": ["rome", "rome", "paris"],
                "when": ["2024-01-03T00:00:00", "not a date", None],
            }
        )
    )
    assert live.features_["x"].total == 1 and live.features_["x"].nulls == 2
    assert live.features_["n"].total == 2 and live.features_["flag"].nulls == 1
    assert live.features_["when"].total == 1 and live.features_["when"].nulls == 2


def test_small_batches_and_one_big_batch_agree(reference: Profile) -> None:
    rows = profile_module._SMALL_BATCH * 3
    frame = training(rows, seed=1)
    frame.loc[::7, "city"] = "atlantis"
    frame.loc[::11, "n"] = None
    whole = reference.empty_like()
    whole.update(frame)
    pieces = reference.empty_like()
    for start in range(0, rows, 32):
        pieces.update(frame.iloc[start : start + 32])
    for name, bins in whole.features_.items():
        other = pieces.features_[name]
        assert bins.counts.tolist() == other.counts.tolist(), name
        assert (bins.nulls, bins.out_of_range) == (other.nulls, other.out_of_range), name
        assert bins.sum == pytest.approx(other.sum, rel=1e-9, abs=1e-6), name
        assert bins.sum_sq == pytest.approx(other.sum_sq, rel=1e-9), name


def test_fit_counts_equal_an_update_of_the_same_rows(reference: Profile) -> None:
    again = reference.empty_like()
    again.update(training())
    assert again == reference


def test_outputs_and_confidence_sections() -> None:
    frame = training(200)
    rng = np.random.default_rng(3)
    labels = rng.choice(["cat", "dog"], 150)
    conf = rng.uniform(0.5, 1.0, 150)
    ref = Profile.fit(
        frame,
        {"x": "numeric"},
        outputs=labels,
        output_kind="categorical",
        confidence=conf,
        classes=["cat", "dog", "eel"],
    )
    assert ref.output_ is not None and ref.confidence_ is not None
    assert ref.output_.categories == ["cat", "dog", "eel"]
    assert ref.output_.total == 150 and ref.confidence_.total == 150
    live = ref.empty_like()
    live.update(frame.head(2), np.array(["eel", "fox"]), np.array([0.7, 0.9]))
    assert live.output_ is not None and live.output_.counts.tolist() == [0, 0, 1, 1]
    assert [s.name for s in live.sections] == ["x", "prediction", "confidence"]

    regression = Profile.fit(frame, {"x": "numeric"}, outputs=rng.normal(size=80))
    assert regression.output_ is not None and regression.output_.kind == "numeric"
    with pytest.raises(PlinthError) as info:
        regression.update(frame.head(2), np.zeros((2, 2)))
    assert info.value.code == "profile.invalid_outputs"


def test_merge_adds_counts_and_is_commutative_and_associative(reference: Profile) -> None:
    parts = []
    for seed in range(3):
        part = reference.empty_like()
        part.update(training(300, seed=10 + seed))
        parts.append(part)
    a, b, c = parts
    assert (a + b).to_dict() == (b + a).to_dict()
    left, right = (a + b) + c, a + (b + c)
    for name, bins in left.features_.items():
        assert bins.counts.tolist() == right.features_[name].counts.tolist()
        assert bins.sum == pytest.approx(right.features_[name].sum, rel=1e-12, abs=1e-9)
    assert left.n_rows_ == 900
    assert sum(parts) == left  # sum() starts from 0
    assert a.features_["x"].total == (a.features_["x"] + b.features_["x"]).total - (
        b.features_["x"].total
    )


def test_mismatched_profiles_refuse_to_merge(reference: Profile) -> None:
    other = Profile.fit(training(seed=5), KINDS)
    with pytest.raises(PlinthError, match="different bins") as info:
        reference.merge(other)
    assert info.value.code == "profile.incompatible"
    fewer = Profile.fit(training(), {"x": "numeric"})
    with pytest.raises(PlinthError) as info:
        _ = reference + fewer
    assert info.value.code == "profile.incompatible"
    with_output = Profile.fit(training(), KINDS, outputs=np.zeros(10))
    with pytest.raises(PlinthError, match="prediction section") as info:
        reference.merge(with_output)
    assert info.value.code == "profile.incompatible"


def test_json_round_trip_is_exact(reference: Profile) -> None:
    live = reference.empty_like()
    live.update(training(50, seed=9))
    for profile in (reference, live):
        text = json.dumps(profile.to_dict(), allow_nan=False)
        back = Profile.from_dict(json.loads(text))
        assert back == profile and back.to_dict() == profile.to_dict()
        back.update(training(5, seed=4))  # a loaded profile is fully usable
    with pytest.raises(PlinthError) as info:
        Profile.from_dict({**reference.to_dict(), "format": 99})
    assert info.value.code == "profile.unsupported_format"


def test_categories_are_json_native() -> None:
    frame = pd.DataFrame({"k": np.array([1, 2, 2, 3], dtype=np.int64), "b": [True, False] * 2})
    ref = Profile.fit(frame, {"k": "categorical", "b": "categorical"})
    assert ref.features_["k"].categories == [2, 1, 3]
    assert all(type(c) is int for c in ref.features_["k"].categories or [])
    assert ref.features_["b"].categories == [False, True]
    json.dumps(ref.to_dict())


def test_unfitted_profile_names_the_missing_call() -> None:
    for action in (
        lambda p: p.update(training(3)),
        lambda p: p.empty_like(),
        lambda p: p.to_dict(),
    ):
        with pytest.raises(PlinthError, match=r"Profile\.fit") as info:
            action(Profile())
        assert info.value.code == "core.not_fitted"
    assert "bins=10" in repr(Profile())


def test_bad_kinds_and_parameters_are_reported() -> None:
    with pytest.raises(PlinthError, match="unknown kinds") as info:
        Profile.fit(training(), {"x": "complex", "ghost": "numeric"})
    assert info.value.code == "profile.invalid_kinds"
    assert "ghost" in info.value.message
    with pytest.raises(PlinthError) as info:
        Profile.fit(training(), {"x": "numeric"}, bins=0)
    assert info.value.code == "profile.invalid_parameter"


def test_empty_training_column_still_profiles() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "c": [None, None]})
    ref = Profile.fit(frame, {"x": "numeric", "c": "categorical"}, bins=1)
    assert ref.features_["x"].edges == [] and ref.features_["x"].nulls == 2
    assert ref.features_["x"].mean() is None and ref.features_["x"].std() is None
    assert ref.features_["c"].categories == [] and ref.features_["c"].nulls == 2
    live = ref.empty_like()
    live.update(pd.DataFrame({"x": [1.0], "c": ["new"]}))
    assert live.features_["x"].counts.tolist() == [1]
    assert live.features_["c"].counts.tolist() == [1]


def test_moments_match_numpy() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(1e6, 3.0, 500)
    ref = Profile.fit(pd.DataFrame({"v": values}), {"v": "numeric"})
    bins = ref.features_["v"]
    assert bins.mean() == pytest.approx(values.mean(), rel=1e-12)
    assert bins.std() == pytest.approx(values.std(), rel=1e-9)
    assert FeatureBins.from_dict(bins.to_dict()) == bins


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.just(np.nan), st.floats(-1e6, 1e6)), min_size=1, max_size=80
    ),
    cut=st.integers(0, 80),
)
def test_folding_two_batches_equals_folding_their_union(
    values: list[float | None], cut: int
) -> None:
    ref = Profile.fit(pd.DataFrame({"v": np.linspace(-10, 10, 101)}), {"v": "numeric"})
    frame = pd.DataFrame({"v": pd.Series(values, dtype=float)})
    whole, split = ref.empty_like(), ref.empty_like()
    whole.update(frame)
    split.update(frame.iloc[:cut])
    split.update(frame.iloc[cut:])
    a, b = whole.features_["v"], split.features_["v"]
    assert a.counts.tolist() == b.counts.tolist()
    assert (a.nulls, a.out_of_range) == (b.nulls, b.out_of_range)
    assert a.sum == pytest.approx(b.sum, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("rows", [8, profile_module._SMALL_BATCH + 8])
def test_pandas_categorical_and_tz_aware_columns(rows: int) -> None:
    cities = pd.Categorical(["oslo", "rome"] * (rows // 2), categories=["oslo", "rome", "x"])
    stamps = pd.date_range("2024-01-01", periods=rows, freq="h", tz="Europe/Oslo")
    frame = pd.DataFrame({"city": cities, "when": stamps, "v": np.arange(rows, dtype=float)})
    kinds = {"city": "categorical", "when": "datetime", "v": "numeric"}
    ref = Profile.fit(frame, kinds)
    assert ref.features_["city"].categories == ["oslo", "rome"]
    assert ref.features_["city"].counts.tolist() == [rows // 2, rows // 2, 0]
    assert ref.features_["when"].minimum == stamps[0].timestamp()
    live = ref.empty_like()
    live.update(frame)
    assert live == ref


# -- the vectorised fold against a value-by-value reference --------------------------------


def _one_by_one(reference: Profile, frame: pd.DataFrame) -> Profile:
    """The profile of ``frame`` counted value by value in plain Python (the definition)."""
    expected = reference.empty_like()
    for name, bins in expected.features_.items():
        if name not in frame.columns:
            bins.nulls += len(frame)
            continue
        if bins.kind == "numeric":
            values = profile_module._numeric_column(frame[name], bins.source_kind)
            for v in values.tolist():
                if not np.isfinite(v):
                    bins.nulls += 1
                    continue
                # right-closed bins: the count of edges strictly below v
                bins.counts[sum(e < v for e in bins.edges or [])] += 1
                low, high = bins.minimum, bins.maximum
                if low is not None and high is not None and not low <= v <= high:
                    bins.out_of_range += 1
                bins.sum += v - bins.center
                bins.sum_sq += (v - bins.center) ** 2
        else:
            categories = bins.categories or []
            for v in np.asarray(frame[name], dtype=object).tolist():
                if pd.isna(v):
                    bins.nulls += 1
                else:
                    bins.counts[categories.index(v) if v in categories else len(categories)] += 1
    expected.n_rows_ = len(frame)
    return expected


def _messy(rows: int, seed: int) -> pd.DataFrame:
    """Every column type the contract can hand the profile, with nulls, junk and unseen."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, rows)
    x[rng.random(rows) < 0.1] = np.nan
    x[rng.random(rows) < 0.03] = np.inf
    x[rng.random(rows) < 0.03] = -np.inf
    x[rng.random(rows) < 0.05] = 500.0  # out of range
    city = rng.choice(["paris", "oslo", "rome", "atlantis"], rows).astype(object)
    city[rng.random(rows) < 0.1] = None
    n = pd.array(rng.integers(-2, 8, rows), dtype="Int64")
    n[rng.random(rows) < 0.1] = pd.NA
    when = pd.Series(
        pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 40, rows), unit="s")
    )
    when[rng.random(rows) < 0.1] = pd.NaT
    return pd.DataFrame(
        {
            "x": x,
            "n": n,
            "flag": rng.random(rows) < 0.4,
            "city": pd.array(city, dtype="str"),
            "when": when,
            "note": ["free"] * rows,
        }
    )


@pytest.mark.parametrize("rows", [1, 7, 32, profile_module._SMALL_BATCH + 5])
def test_vectorised_fold_equals_value_by_value_counting(reference: Profile, rows: int) -> None:
    for seed in range(3):
        frame = _messy(rows, seed)
        live = reference.empty_like()
        live.update(frame)
        expected = _one_by_one(reference, frame)
        for name, bins in expected.features_.items():
            got = live.features_[name]
            assert got.counts.tolist() == bins.counts.tolist(), name
            assert (got.nulls, got.out_of_range) == (bins.nulls, bins.out_of_range), name
            assert got.sum == pytest.approx(bins.sum, rel=1e-9, abs=1e-6), name
            assert got.sum_sq == pytest.approx(bins.sum_sq, rel=1e-9, abs=1e-6), name


def test_object_and_categorical_columns_fold_like_plain_ones(reference: Profile) -> None:
    frame = _messy(64, 4)
    plain = reference.empty_like()
    plain.update(frame)
    variants = {
        "object": frame.astype({"x": object, "city": object}),
        "category": frame.astype({"city": "category"}),
        "python strings": frame.astype({"city": pd.StringDtype("python")}),
        "tz-aware": frame.assign(when=frame["when"].dt.tz_localize("UTC")),
    }
    for label, variant in variants.items():
        other = reference.empty_like()
        other.update(variant)
        assert other == plain, label


def test_big_batches_are_folded_in_chunks(reference: Profile) -> None:
    frame = _messy(3000, 5)
    whole = reference.empty_like()
    whole.update(frame)
    chunked = reference.empty_like()
    chunked.update(frame.iloc[:1])  # builds the plan
    assert chunked._plan is not None
    chunked._plan.chunk = 100  # 30 chunks instead of one
    chunked.update(frame.iloc[1:])
    for name, bins in whole.features_.items():
        got = chunked.features_[name]
        assert got.counts.tolist() == bins.counts.tolist(), name
        assert (got.nulls, got.out_of_range) == (bins.nulls, bins.out_of_range), name
        assert got.sum == pytest.approx(bins.sum, rel=1e-9, abs=1e-6), name


def test_replaced_counts_are_noticed_not_lost(reference: Profile) -> None:
    live = reference.empty_like()
    live.update(training(10, seed=1))
    live.features_["x"].counts = live.features_["x"].counts.copy()  # no longer the plan's view
    live.update(training(10, seed=2))
    expected = reference.empty_like()
    expected.update(pd.concat([training(10, seed=1), training(10, seed=2)], ignore_index=True))
    assert live.features_["x"].counts.tolist() == expected.features_["x"].counts.tolist()


def test_output_sections_without_outputs_count_nothing() -> None:
    frame = training(50)
    rng = np.random.default_rng(3)
    ref = Profile.fit(
        frame, {"x": "numeric"}, outputs=rng.normal(size=50), confidence=rng.uniform(size=50)
    )
    live = ref.empty_like()
    live.update(frame.head(4))
    assert live.output_ is not None and live.confidence_ is not None
    assert (live.output_.rows, live.confidence_.rows) == (0, 0)
    live.update(frame.head(3), np.array([0.5, np.nan, 1e9]), np.array([0.9, 0.8, np.inf]))
    assert (live.output_.total, live.output_.nulls, live.output_.out_of_range) == (2, 1, 1)
    assert (live.confidence_.total, live.confidence_.nulls) == (2, 1)
