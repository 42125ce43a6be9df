from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from plinth.core.contract import FieldSpec
from plinth.errors import PlinthError, RegistryError
from plinth.services.registry.versions import Registry
from tests.support import (
    SHOPPERS_FEATURES,
    SHOPPERS_NUMBERS,
    BrokenModel,
    churn_model,
    churn_table,
    imputing_pipeline,
    numbers_only_model,
    regression_table,
    ridge_model,
    shoppers_table,
    strict_category_model,
)


def test_register_records_everything_a_version_needs(registry: Registry) -> None:
    train = churn_table(0)
    holdout = churn_table(1, rows=200)
    record = registry.register(
        churn_model(train),
        name="churn",
        train=train,
        target="churn",
        holdout=holdout,
        tags={"team": "growth"},
    )
    assert (record.name, record.version, record.flavor, record.task) == (
        "churn",
        1,
        "sklearn",
        "classification",
    )
    meta = record.metadata
    assert registry.artifacts.path(record.sha256).is_file()
    fields = {f["name"]: f for f in meta["contract"]["fields"]}
    assert set(fields) == {"age", "income", "city", "plan", "tenure"}
    assert fields["city"]["kind"] == "categorical"
    assert fields["city"]["on_unseen"] == "pass"  # OneHotEncoder(handle_unknown="ignore")
    assert fields["income"]["nullable"] is True
    assert meta["output_contract"]["classes"] == ["no", "yes"]
    assert meta["metrics"]["split"] == "holdout"
    assert 0.0 <= meta["metrics"]["accuracy"] <= 1.0
    assert meta["lineage"]["train_rows"] == len(train)
    assert meta["lineage"]["libraries"]["scikit-learn"]
    assert meta["tags"] == {"team": "growth"}
    assert meta["reference_profile"]
    assert meta["default_output"]["prediction"] in ("no", "yes")


def test_versions_count_up_and_identical_bytes_return_the_same_version(
    registry: Registry, tmp_path: Path
) -> None:
    train = churn_table(0)
    first = tmp_path / "a.skops"
    sio.dump(churn_model(train), first)
    v1 = registry.register(first, name="churn", train=train, target="churn")
    again = registry.register(first, name="churn", train=train, target="churn")
    second = tmp_path / "b.skops"
    sio.dump(strict_category_model(train), second)
    v2 = registry.register(second, name="churn", train=train, target="churn")
    assert (v1.version, again.version, v2.version) == (1, 1, 2)
    assert again.sha256 == v1.sha256


def test_unseen_category_policy_follows_what_the_pipeline_can_handle(registry: Registry) -> None:
    train = churn_table(0)
    record = registry.register(strict_category_model(train), name="s", train=train, target="churn")
    fields = {f["name"]: f for f in record.metadata["contract"]["fields"]}
    assert fields["city"]["on_unseen"] == "reject"


def _fields(record: Any) -> dict[str, FieldSpec]:
    return {f["name"]: FieldSpec.from_dict(f) for f in record.metadata["contract"]["fields"]}


@pytest.mark.parametrize("saved", ["object", "skops", "joblib"])
def test_nulls_go_to_a_model_that_handles_them_itself(
    registry: Registry, tmp_path: Path, saved: str
) -> None:
    train = shoppers_table()
    model: Any = imputing_pipeline(train)
    if saved == "skops":
        sio.dump(model, tmp_path / "model.skops")
        model = tmp_path / "model.skops"
    elif saved == "joblib":
        joblib.dump(model, tmp_path / "model.joblib")
        model = tmp_path / "model.joblib"
    record = registry.register(
        model, name="shoppers", train=train, target="bought", trust_pickle=saved == "joblib"
    )
    fields = _fields(record)
    assert {n: f.on_null for n, f in fields.items()} == {
        "region": "pass",
        "segment": "pass",
        "age": "pass",
        "income": "pass",
        "visits": "impute",  # required: never probed, and a null is refused anyway
    }
    assert fields["visits"].null_handling() == {"null": "reject", "missing": "reject"}
    assert fields["age"].null_handling() == {"null": "pass to model", "missing": "pass to model"}


def test_nulls_are_imputed_for_a_model_that_cannot_take_them(registry: Registry) -> None:
    train = shoppers_table()
    record = registry.register(numbers_only_model(train), name="n", train=train, target="bought")
    fields = _fields(record)
    assert [(n, f.on_null) for n, f in fields.items()] == [
        ("age", "impute"),
        ("income", "impute"),
        ("visits", "impute"),
    ]
    age = train["age"].dropna()
    assert fields["age"].null_handling()["null"] == f"impute {float(np.median(age))!r}"


def test_the_null_policy_is_decided_field_by_field(registry: Registry) -> None:
    # region has an imputer in front of its encoder; the numbers go to the regression bare.
    train = shoppers_table()
    model = make_pipeline(
        ColumnTransformer(
            [
                (
                    "region",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["region"],
                ),
                ("numbers", "passthrough", SHOPPERS_NUMBERS),
            ]
        ),
        LogisticRegression(max_iter=1000),
    )
    features = train[SHOPPERS_FEATURES].copy()
    features[SHOPPERS_NUMBERS] = features[SHOPPERS_NUMBERS].fillna(0.0)
    model.fit(features.drop(columns="segment"), train["bought"])
    record = registry.register(
        model, name="m", train=train.drop(columns="segment"), target="bought"
    )
    on_null = {n: f.on_null for n, f in _fields(record).items()}
    assert on_null == {"region": "pass", "age": "impute", "income": "impute", "visits": "impute"}


class NaNForNaN:
    """A model that answers a missing value with NaN instead of raising."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["a"].to_numpy(dtype=float) * 2.0 + frame["b"].to_numpy(dtype=float)


def test_a_model_that_answers_nan_for_a_null_gets_imputed_values(registry: Registry) -> None:
    train = regression_table()
    train.loc[::10, "a"] = np.nan
    record = registry.register(
        NaNForNaN(), name="nan", train=train, target="y", task="regression", trust_pickle=True
    )
    assert _fields(record)["a"].on_null == "impute"


def test_a_null_reaches_the_model_as_the_training_table_spelled_it(registry: Registry) -> None:
    # A frame built from records or SQL rows holds None in an object column; the pipeline
    # learned None as a category there, so NaN would be an unseen value for it.
    train = shoppers_table(missing=None)
    record = registry.register(imputing_pipeline(train), name="n", train=train, target="bought")
    fields = _fields(record)
    assert (fields["region"].null_as, fields["region"].on_null) == ("none", "pass")
    contract = registry.load(record).contract
    frame = contract.frame([{**train[SHOPPERS_FEATURES].iloc[0].to_dict(), "region": None}])
    assert frame["region"][0] is None


def test_regression_version_has_regression_metrics(registry: Registry) -> None:
    train = regression_table()
    record = registry.register(ridge_model(train), name="ridge", train=train, target="y")
    assert record.task == "regression"
    assert record.metadata["metrics"]["split"] == "train"
    assert record.metadata["metrics"]["r2"] > 0.9


def test_pickle_files_need_trust(registry: Registry, tmp_path: Path) -> None:
    train = regression_table()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(ridge_model(train)))
    with pytest.raises(RegistryError) as info:
        registry.register(path, name="p", train=train, target="y")
    assert info.value.code == "registry.pickle_not_trusted"
    record = registry.register(path, name="p", train=train, target="y", trust_pickle=True)
    assert record.metadata["artifact"]["format"] == "pickle"


def test_plain_python_objects_need_trust_too(registry: Registry) -> None:
    train = regression_table()
    with pytest.raises(RegistryError) as info:
        registry.register(BrokenModel(), name="b", train=train, target="y", task="regression")
    assert info.value.code == "registry.pickle_not_trusted"


def test_a_changed_artifact_is_refused_on_load(registry: Registry) -> None:
    train = regression_table()
    record = registry.register(ridge_model(train), name="r", train=train, target="y")
    path = registry.artifacts.path(record.sha256)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError) as info:
        registry.load(record)
    assert info.value.code == "registry.hash_mismatch"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"name": "bad name!"}, "registry.invalid_name"),
        ({"target": "nope"}, "registry.missing_target"),
        ({"task": "ranking"}, "registry.invalid_task"),
    ],
)
def test_registration_mistakes_have_codes(
    registry: Registry, kwargs: dict[str, str], code: str
) -> None:
    train = regression_table()
    args: dict[str, str] = {"name": "ok", "target": "y", **kwargs}
    with pytest.raises(PlinthError) as info:
        registry.register(ridge_model(train), train=train, **args)  # type: ignore[arg-type]
    assert info.value.code == code


def test_missing_model_file_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        registry.register(tmp_path / "nope.skops", name="x", train=regression_table(), target="y")


def test_review_assets_live_in_one_checked_artifact_not_in_the_version_row(
    registry: Registry,
) -> None:
    train = churn_table(0, rows=1500)
    record = registry.register(
        churn_model(train), name="churn", train=train, target="churn", holdout=churn_table(1)
    )
    context = record.metadata["review_context"]
    assert set(context) >= {"assets", "background_rows", "neighbour_rows", "ood"}
    assert (context["background_rows"], context["neighbour_rows"], context["ood"]) == (
        100,
        1000,
        True,
    )
    # The version row keeps a pointer; the hundreds of kilobytes are in the artifact.
    stored = registry.store.get_version("churn")
    assert len(orjson.dumps(stored.metadata)) < 30_000
    pointer = context["assets"]
    path = registry.artifacts.path(pointer["sha256"])
    assert path.stat().st_size == pointer["bytes"] > 100_000
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pointer["sha256"]

    assets = registry.load(stored).review_assets()
    assert assets.source == "artifact"
    assert len(assets.background) == 100
    assert assets.neighbours is not None and assets.neighbours.n_rows_ == 1000
    # The OOD reference was fitted at registration over the neighbour sample.
    assert assets.ood is not None and assets.ood.reference_.size == 1000
    assert len(assets.holdout_confidence) == 400

    path.write_bytes(path.read_bytes()[:-1] + b" ")
    with pytest.raises(RegistryError) as changed:
        registry.load(stored).review_assets()
    assert changed.value.code == "registry.hash_mismatch"
    path.unlink()
    with pytest.raises(RegistryError) as gone:
        registry.load(stored).review_assets()
    assert gone.value.code == "registry.artifact_missing"


def test_a_remote_spec_registered_twice_is_one_version(registry: Registry) -> None:
    from plinth.flavors.remote import RemoteSpec
    from tests.remote_support import EXAMPLES, triage_spec

    spec = RemoteSpec.from_dict(triage_spec("http://127.0.0.1:9/v1"))
    first = registry.register_remote(spec, name="triage", examples=pd.DataFrame(EXAMPLES))
    again = registry.register_remote(
        RemoteSpec.from_dict(triage_spec("http://127.0.0.1:9/v1")),
        name="triage",
        examples=pd.DataFrame(EXAMPLES[:2]),
    )
    assert (first.version, again.version, first.sha256) == (1, 1, spec.sha256)
    assert first.flavor == "remote" and first.metadata["remote"] == spec.document
    fields = {f["name"]: f for f in first.metadata["contract"]["fields"]}
    assert fields["priority"]["kind"] == "integer"
    assert fields["body"]["kind"] == "text"  # every example differs: free text
    assert all(f["on_unseen"] == "pass" for f in fields.values() if f["kind"] == "categorical")
    served = registry.load(first)
    assert served.flavor.model_name == "triage"  # type: ignore[attr-defined]
    served.flavor.close()
