"""Nearest-neighbour index: scikit-learn as referee on numbers, the mixed rules by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from plinth.core.neighbours import Neighbour, NeighbourIndex
from plinth.errors import PlinthError


def mixed(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows),
            "income": rng.lognormal(10, 1, rows),
            "city": pd.Series(rng.choice(["paris", "lyon", "nice"], rows), dtype="str"),
            "note": ["free text"] * rows,
        }
    )


KINDS = {"age": "numeric", "income": "numeric", "city": "categorical", "note": "text"}


@pytest.mark.parametrize("seed", range(3))
def test_numeric_neighbours_match_scikit_learn_manhattan(seed: int) -> None:
    train = mixed(seed, 400)
    index = NeighbourIndex().fit(train, {"age": "numeric", "income": "integer"})
    x = train[["age", "income"]].to_numpy()
    q25, med, q75 = np.percentile(x, [25, 50, 75], axis=0)
    scaled = (x - med) / (q75 - q25)
    queries = mixed(seed + 100, 20)
    q = (queries[["age", "income"]].to_numpy() - med) / (q75 - q25)
    referee = NearestNeighbors(n_neighbors=5, metric="manhattan").fit(scaled)
    distance, position = referee.kneighbors(q)
    found = index.query(queries, k=5)
    for r in range(20):
        assert [n.index for n in found[r]] == position[r].tolist()
        assert [n.distance for n in found[r]] == pytest.approx(distance[r] / 2)  # mean of 2


def test_mixed_distance_rules_by_hand() -> None:
    train = pd.DataFrame(
        {
            "x": [0.0, 1.0, 2.0, 3.0, 4.0],  # median 2, IQR 2
            "city": pd.array(["a", "b", "a", None, "b"], dtype="str"),
        },
        index=[10, 11, 12, 13, 14],
    )
    index = NeighbourIndex().fit(
        train, {"x": "numeric", "city": "categorical"}, labels=list("vwxyz")
    )
    rows = pd.DataFrame(
        {"x": [2.0, np.nan, 0.0], "city": pd.Series(["a", "a", "zzz"], dtype="str")}
    )
    d = index.distances(rows)
    # row 0 vs 12: same x, same city -> 0; vs 10: |2-0|/2 = 1, same city -> (1 + 0) / 2
    assert d[0].tolist() == pytest.approx([0.5, 0.75, 0.0, 0.75, 1.0])
    # a missing number against a present one counts 1, like a category mismatch
    assert d[1].tolist() == pytest.approx([0.5, 1.0, 0.5, 1.0, 1.0])
    # an unseen category matches nothing, not even a missing one
    assert d[2].tolist() == pytest.approx([0.5, 0.75, 1.0, 1.25, 1.5])
    nearest = index.query(rows.iloc[[0]], k=2)[0]
    assert nearest == [Neighbour(12, 0.0, "x"), Neighbour(10, 0.5, "v")]
    # a missing category matches a missing one
    both_missing = pd.DataFrame({"x": [3.0], "city": pd.Series([None], dtype="str")})
    assert index.query(both_missing, k=1)[0][0] == Neighbour(13, 0.0, "y")


def test_sample_is_capped_seeded_and_round_trips_through_json() -> None:
    train = mixed(0, 3000)
    labels = np.where(train["age"] > 40, "old", "young")
    index = NeighbourIndex(max_rows=500, seed=7).fit(train, KINDS, labels=labels)
    again = NeighbourIndex(max_rows=500, seed=7).fit(train, KINDS, labels=labels)
    assert index.n_rows_ == 500 and index.ids_ == again.ids_
    assert index.ids_ != NeighbourIndex(max_rows=500, seed=8).fit(train, KINDS).ids_
    stored = train.loc[index.ids_]
    assert [labels[i] for i in index.ids_] == index.labels_
    assert (stored["note"] == "free text").all()  # text is stored nowhere, used nowhere
    copy = NeighbourIndex.from_dict(json.loads(json.dumps(index.to_dict())))
    queries = mixed(1, 30)
    assert copy.query(queries, k=4) == index.query(queries, k=4)
    # asking for more neighbours than rows gives every row
    small = NeighbourIndex().fit(train.iloc[:3], KINDS)
    assert len(small.query(queries.iloc[[0]], k=10)[0]) == 3


def test_resolved_reviews_join_and_outlive_training_rows() -> None:
    train = mixed(0, 50)
    index = NeighbourIndex(max_rows=50).fit(train, KINDS, labels=["t"] * 50)
    review = pd.DataFrame(
        {"age": [99.0], "income": [1.0], "city": pd.Series(["rome"], dtype="str"), "note": ["x"]}
    )
    index.add(review, ["approved"], ids=["review-1"])
    assert index.n_rows_ == 50  # at the cap: the oldest training row made room
    assert 0 not in index.ids_ and index.ids_[-1] == "review-1"
    top = index.query(review, k=1)[0][0]
    assert top == Neighbour("review-1", 0.0, "approved")  # "rome" is now a known category
    for i in range(60):
        index.add(review, [f"r{i}"], ids=[f"review-{i + 2}"])
    assert index.n_rows_ == 50 and bool(index.added_.all())
    assert index.ids_[0] == "review-12"  # once all rows are reviews, the oldest go first


def test_misuse_is_reported() -> None:
    with pytest.raises(PlinthError) as info:
        NeighbourIndex().query(mixed(0, 2))
    assert info.value.code == "core.not_fitted"
    with pytest.raises(PlinthError, match="unknown kinds") as info:
        NeighbourIndex().fit(mixed(0, 5), {"age": "vector"})
    assert info.value.code == "neighbours.invalid"
    with pytest.raises(PlinthError, match="No numeric or categorical"):
        NeighbourIndex().fit(mixed(0, 5), {"note": "text"})
    index = NeighbourIndex().fit(mixed(0, 5), KINDS)
    with pytest.raises(PlinthError, match="lack the indexed columns"):
        index.query(mixed(0, 2).drop(columns=["city"]))
    with pytest.raises(PlinthError, match="k=0"):
        index.query(mixed(0, 2), k=0)
    with pytest.raises(PlinthError, match="labels for"):
        index.add(mixed(0, 2), ["a"])
    with pytest.raises(PlinthError, match="ids for"):
        index.add(mixed(0, 2), ["a", "b"], ids=["one"])
    with pytest.raises(PlinthError, match="max_rows"):
        NeighbourIndex(max_rows=0).fit(mixed(0, 5), KINDS)
