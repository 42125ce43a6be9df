"""Local attribution: exact answers on a linear model, the known driver of tree models."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeRegressor

from plinth.core.attribution import Attribution, occlusion, shapley_sampling
from plinth.errors import PlinthError

COEF = {"a": 3.0, "b": -2.0, "c": 0.0}


def linear(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(sum(w * frame[c].to_numpy() for c, w in COEF.items()))


def table(seed: int, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.normal(1.0, 2.0, rows) for c in COEF})


@pytest.mark.parametrize("method", [occlusion, shapley_sampling])
@pytest.mark.parametrize("seed", range(3))
def test_linear_model_gets_coefficient_times_distance_from_the_mean(
    method: Callable[..., Attribution], seed: int
) -> None:
    train = table(seed)
    row = pd.DataFrame({"a": [2.5], "b": [-1.0], "c": [4.0]})
    # With the whole reference as background both methods are exact: coef * (x - mean).
    full = method(linear, row, train, n_background=len(train), seed=seed)
    for c, w in COEF.items():
        assert full.values[c] == pytest.approx(w * (row[c].iloc[0] - train[c].mean()), abs=1e-9)
    assert full.values["c"] == pytest.approx(0.0, abs=1e-12)
    assert full.base == pytest.approx(linear(train).mean())
    assert full.output == pytest.approx(linear(row)[0])
    assert full.target is None
    # A sampled background of 50 rows is within its sampling error (sd of a mean of 50: 0.28).
    sampled = method(linear, row, train, n_background=50, seed=seed)
    for c, w in COEF.items():
        expected = w * (row[c].iloc[0] - 1.0)  # the population mean is 1
        assert sampled.values[c] == pytest.approx(expected, abs=abs(w) * 4 * 2.0 / np.sqrt(50))
    assert sampled.ranked()[0][0] == "a" and sampled.ranked()[-1][0] == "c"


def decisive_table(seed: int, rows: int = 600) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["c"] = rng.normal(size=rows)
    y = (frame["a"] > 0.3).astype(int).to_numpy()  # only "a" matters
    return frame, y


@pytest.mark.parametrize("seed", range(3))
def test_the_decisive_feature_of_a_forest_ranks_first(seed: int) -> None:
    frame, y = decisive_table(seed)
    forest = RandomForestClassifier(n_estimators=30, max_depth=4, random_state=seed)
    forest.fit(frame, y)
    for row in (pd.DataFrame({"a": [2.0], "b": [0.1], "c": [-0.2]}), frame.iloc[[3]]):
        for method in (occlusion, shapley_sampling):
            result = method(forest.predict_proba, row, frame, seed=seed)
            assert result.ranked(1)[0][0] == "a"
            assert result.target == int(forest.predict_proba(row)[0].argmax())
            assert result.output == pytest.approx(forest.predict_proba(row)[0].max())


def test_shapley_values_add_up_to_output_minus_base_with_interactions() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = frame["a"] * frame["b"] + rng.normal(scale=0.1, size=400)
    tree = DecisionTreeRegressor(max_depth=6, random_state=0).fit(frame, y)
    row = frame.iloc[[7]]
    result = shapley_sampling(tree.predict, row, frame, n_background=40, n_permutations=4)
    assert sum(result.values.values()) == pytest.approx(result.output - result.base, abs=1e-9)
    # occlusion has no such guarantee, but its base is the same background mean
    occluded = occlusion(tree.predict, row, frame, n_background=40)
    assert occluded.base == pytest.approx(result.base)


def churn_like(seed: int, rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "city": pd.Series(rng.choice(["paris", "lyon", "nice"], rows), dtype="str"),
            "age": rng.integers(18, 80, rows),
            "noise": rng.normal(size=rows),
        }
    )


def test_string_columns_take_background_values() -> None:
    frame = churn_like(0)
    y = np.where(frame["city"] == "paris", "yes", "no")
    model = make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
        ),
        RandomForestClassifier(n_estimators=20, random_state=0),
    ).fit(frame, y)
    seen: list[pd.DataFrame] = []

    def predict(rows: pd.DataFrame) -> np.ndarray:
        seen.append(rows)
        return np.asarray(model.predict_proba(rows))

    row = pd.DataFrame({"city": pd.Series(["paris"], dtype="str"), "age": [40], "noise": [0.0]})
    for method in (occlusion, shapley_sampling):
        seen.clear()
        result = method(predict, row, frame, n_background=30, seed=1)
        assert result.ranked(1)[0][0] == "city"
        assert result.values["city"] > 0.3
        # one call for the row, one for all perturbed rows; column types preserved
        assert len(seen) == 2
        perturbed = seen[1]
        assert perturbed["city"].dtype == frame["city"].dtype
        assert perturbed["age"].dtype == frame["age"].dtype
        assert set(perturbed["city"]) <= {"paris", "lyon", "nice"}


def test_feature_subset_batches_and_explicit_target() -> None:
    frame, y = decisive_table(1)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(frame, y)
    row = frame.iloc[[0]]
    whole = shapley_sampling(forest.predict_proba, row, frame, n_background=20, target=1)
    chunked = shapley_sampling(
        forest.predict_proba, row, frame, n_background=20, target=1, batch_rows=7
    )
    assert whole.values == pytest.approx(chunked.values)
    assert whole.target == 1
    assert whole.output == pytest.approx(forest.predict_proba(row)[0, 1])
    only = occlusion(forest.predict_proba, row, frame, features=["a"], n_background=20)
    assert list(only.values) == ["a"]
    assert isinstance(only, Attribution)
    assert only.to_dict()["method"] == "occlusion"
    # a single attributed feature: the Shapley value is the whole difference
    single = shapley_sampling(forest.predict_proba, row, frame, features=["a"], n_background=20)
    assert single.values["a"] == pytest.approx(single.output - single.base)


def test_bad_inputs_are_named() -> None:
    frame = table(0)
    with pytest.raises(PlinthError, match="one row at a time") as info:
        occlusion(linear, frame.iloc[:2], frame)
    assert info.value.code == "attribution.invalid"
    with pytest.raises(PlinthError, match="even number"):
        shapley_sampling(linear, frame.iloc[[0]], frame, n_permutations=3)
    with pytest.raises(PlinthError, match="Reference lacks"):
        occlusion(linear, frame.iloc[[0]], frame.drop(columns=["c"]))
    with pytest.raises(PlinthError, match="background row"):
        occlusion(linear, frame.iloc[[0]], frame.iloc[:0])
    with pytest.raises(PlinthError, match="not \\(rows,\\)"):
        occlusion(lambda f: np.zeros((len(f), 2, 2)), frame.iloc[[0]], frame)
