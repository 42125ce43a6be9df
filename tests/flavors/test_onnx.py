"""The ONNX flavor: parity with scikit-learn within the stated tolerance, both skl2onnx
input layouts, ZipMap on or off, and the class order read from the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plinth.core.contract import infer_contract
from plinth.errors import RegistryError
from plinth.flavors.base import read_model_file
from plinth.flavors.onnx import OnnxFlavor
from tests.flavors import models
from tests.support import churn_table

# The tolerance docs/flavors.md states: ONNX computes in float32, scikit-learn in float64.
PROBABILITY_ATOL = 1e-5
REGRESSION_RTOL = 1e-5


def _served_frame(features):  # type: ignore[no-untyped-def]
    contract = infer_contract(features)
    return contract.frame(features.astype(object).where(features.notna(), None).to_dict("records"))


@pytest.mark.parametrize("build", [models.onnx_forest, models.onnx_logistic])
def test_classifier_probabilities_match_scikit_learn(build) -> None:  # type: ignore[no-untyped-def]
    proto, fitted = build()
    features, _ = models.cancer()
    flavor = OnnxFlavor.load(proto.SerializeToString(), "onnx")
    assert flavor.classes == [0, 1]
    frame = _served_frame(features)
    proba = flavor.predict_proba(frame)
    assert proba is not None
    np.testing.assert_allclose(proba, fitted.predict_proba(features), rtol=0, atol=PROBABILITY_ATOL)
    assert np.array_equal(flavor.predict(frame), fitted.predict(features))


def test_zipmap_output_gives_the_same_probabilities_as_a_tensor() -> None:
    features, _ = models.cancer()
    frame = _served_frame(features)
    plain = OnnxFlavor.load(models.onnx_forest(zipmap=False)[0].SerializeToString(), "onnx")
    zipped = OnnxFlavor.load(models.onnx_forest(zipmap=True)[0].SerializeToString(), "onnx")
    a, b = plain.predict_proba(frame), zipped.predict_proba(frame)
    assert a is not None and b is not None
    assert np.array_equal(a, b)


def test_regressor_matches_scikit_learn() -> None:
    proto, fitted = models.onnx_regressor()
    features, _ = models.regression()
    flavor = OnnxFlavor.load(proto.SerializeToString(), "onnx")
    assert flavor.classes is None and not flavor.has_proba
    predicted = flavor.predict(_served_frame(features))
    assert predicted.shape == (len(features),)
    np.testing.assert_allclose(predicted, fitted.predict(features), rtol=REGRESSION_RTOL)


def test_one_input_per_column_with_string_labels(tmp_path: Path) -> None:
    proto, fitted = models.onnx_churn_pipeline()
    path = models.save(proto, tmp_path / "churn.onnx")
    artifact = read_model_file(path, trust_pickle=False, trust_types=[])
    assert artifact.format == "onnx" and artifact.data == path.read_bytes()
    flavor = artifact.flavor
    assert flavor.feature_names() == ["age", "income", "city", "plan", "tenure"]
    assert flavor.classes == ["no", "yes"]
    features = churn_table().drop(columns=["churn"])
    proba = flavor.predict_proba(_served_frame(features))
    assert proba is not None
    np.testing.assert_allclose(proba, fitted.predict_proba(features), atol=PROBABILITY_ATOL)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a graph")
    with pytest.raises(RegistryError, match="export") as caught:
        read_model_file(path, trust_pickle=False, trust_types=[])
    assert caught.value.code == "registry.load_failed"
