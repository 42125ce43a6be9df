"""The fast paths (a float array, a forest tree by tree): taken only when they answer
exactly as the model's own call does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from plinth.core.contract import infer_contract
from plinth.flavors.sklearn import SklearnFlavor
from plinth.flavors.sklearn_forest import DirectForest


def _served(model: object, train: pd.DataFrame) -> tuple[SklearnFlavor, pd.DataFrame]:
    contract = infer_contract(train)
    probe = contract.apply(contract.probe_records()).frame
    return SklearnFlavor(model), probe


def _traffic(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    contract = infer_contract(train)
    rng = np.random.default_rng(seed)
    rows = train.sample(200, replace=True, random_state=seed).to_dict(orient="records")
    for row in rows:  # nudge every value so the traffic is not the training rows
        for name, value in row.items():
            if isinstance(value, float):
                row[name] = value * float(rng.uniform(0.8, 1.2))
    return contract.apply(rows).frame


def test_a_forest_fitted_on_a_frame_switches_and_answers_identically() -> None:
    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target
    model = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, y)
    flavor, probe = _served(model, x)
    traffic = _traffic(x, seed=3)
    usual_proba, usual = model.predict_proba(traffic), model.predict(traffic)
    assert flavor.serve_faster(probe)
    with np.testing.assert_no_warnings():
        fast_proba = flavor.predict_proba(traffic)
        fast = flavor.predict(traffic)
    assert fast_proba is not None
    assert np.array_equal(usual_proba, fast_proba) and np.array_equal(usual, fast)
    assert hasattr(model, "feature_names_in_")  # the user's model is untouched


def test_a_regressor_and_a_scaled_linear_model_switch_too() -> None:
    data = load_diabetes(as_frame=True)
    x, y = data.data, data.target
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(x, y)
    flavor, probe = _served(model, x)
    assert flavor.serve_faster(probe)
    traffic = _traffic(x, seed=5)
    assert np.array_equal(model.predict(traffic), flavor.predict(traffic))


@pytest.mark.parametrize("case", ["pipeline", "by_name", "categorical", "array_fitted"])
def test_models_that_need_a_frame_keep_it(case: str) -> None:
    data = load_breast_cancer(as_frame=True)
    x, y = data.data.iloc[:, :5].copy(), data.target
    if case == "pipeline":
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    elif case == "by_name":
        columns = ColumnTransformer([("scale", StandardScaler(), list(x.columns[:3]))])
        model = make_pipeline(columns, LogisticRegression()).fit(x, y)
    elif case == "categorical":
        x["size"] = np.where(x.iloc[:, 0] > x.iloc[:, 0].median(), "big", "small")
        columns = ColumnTransformer(
            [("onehot", OneHotEncoder(), ["size"])], remainder="passthrough"
        )
        model = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(x, y)
    else:
        model = LogisticRegression(max_iter=500).fit(x.to_numpy(), y)
    flavor, probe = _served(model, x)
    assert not flavor.serve_faster(probe)
    traffic = _traffic(x, seed=7)
    usual = model.predict(traffic if case != "array_fitted" else traffic.to_numpy())
    assert np.array_equal(usual, flavor.predict(traffic))


def test_the_probe_spreads_over_each_fields_range() -> None:
    frame = pd.DataFrame(
        {"x": np.linspace(0, 10, 50), "n": np.arange(50), "c": ["a", "b"] * 25, "b": [True] * 50}
    )
    contract = infer_contract(frame)
    records = contract.probe_records(32)
    checked = contract.apply(records)
    assert len(checked.valid) == 32 and not checked.all_problems()
    xs = sorted(r["x"] for r in records)
    assert xs[0] == 0.0 and xs[-1] == 10.0
    assert {r["c"] for r in records} == {"a", "b"}
    assert [r["x"] for r in records] != xs  # shuffled, not a diagonal


def _forest_case(case: str) -> tuple[object, pd.DataFrame]:
    data = load_breast_cancer(as_frame=True)
    x, y = data.data.iloc[:, :8].copy(), data.target
    if case == "regressor":
        return ExtraTreesRegressor(n_estimators=15, random_state=0).fit(x, y * 1.5), x
    if case == "missing":  # trees that learnt where missing values go
        x.iloc[::7, 2] = np.nan
        return RandomForestClassifier(n_estimators=15, random_state=0).fit(x, y), x
    x["size"] = np.where(x.iloc[:, 0] > x.iloc[:, 0].median(), "big", "small")
    columns = ColumnTransformer([("onehot", OneHotEncoder(), ["size"])], remainder="passthrough")
    forest = RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0)
    return make_pipeline(columns, forest).fit(x, y), x


@pytest.mark.parametrize("case", ["regressor", "missing", "pipeline"])
def test_forests_are_called_tree_by_tree_and_answer_bit_for_bit(case: str) -> None:
    model, x = _forest_case(case)
    flavor, probe = _served(model, x)
    assert flavor.serve_faster(probe)
    assert isinstance(flavor._fast, DirectForest)  # not joblib's per-tree hand-off
    traffic = _traffic(x, seed=11)
    if case == "missing":
        traffic.iloc[::3, 2] = np.nan
    with np.testing.assert_no_warnings():
        served = flavor.predict(traffic), flavor.predict_proba(traffic)
    assert np.array_equal(model.predict(traffic), served[0])  # type: ignore[attr-defined]
    if case != "regressor":
        usual = model.predict_proba(traffic)  # type: ignore[attr-defined]
        assert served[1] is not None and usual.dtype == served[1].dtype
        assert np.array_equal(usual, served[1])
    for i in range(3):  # one row alone, as at c=1
        one = traffic.iloc[[i]]
        assert np.array_equal(model.predict(one), flavor.predict(one))  # type: ignore[attr-defined]


class _OwnProba(RandomForestClassifier):
    def predict_proba(self, X: object) -> np.ndarray:  # noqa: N803 - scikit-learn's name
        return np.asarray(super().predict_proba(X)) ** 2


@pytest.mark.parametrize("case", ["jobs", "own_method"])
def test_forests_that_could_answer_otherwise_keep_the_usual_call(case: str) -> None:
    data = load_breast_cancer(as_frame=True)
    x, y = data.data.iloc[:, :8], data.target
    if case == "jobs":  # threads add the trees up in the order they finish
        model: RandomForestClassifier = RandomForestClassifier(n_estimators=8, n_jobs=2)
    else:
        model = _OwnProba(n_estimators=8)
    model.fit(x, y)
    flavor, probe = _served(model, x)
    flavor.serve_faster(probe)
    assert not isinstance(flavor._fast, DirectForest)
    traffic = _traffic(x, seed=13)
    assert np.array_equal(model.predict_proba(traffic), flavor.predict_proba(traffic))
