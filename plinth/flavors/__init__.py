"""Flavors adapt one kind of model object to the one interface the server calls.

A flavor knows how to save a model to bytes, load it back safely, and call it on the
DataFrame the contract produced. scikit-learn models are stored with skops; ONNX, XGBoost
and LightGBM models in their libraries' own safe formats (each an optional extra); plain
Python objects with pickle, when trusted; a remote model (an LLM or a service behind an
API) as its spec, called over HTTP. New kinds of model are new flavors; nothing else
changes. ``plinth.testing.check_flavor`` is the conformance suite every flavor passes.
"""

from plinth.flavors.base import (
    Flavor,
    LoadedArtifact,
    flavor_for_object,
    flavors,
    load_artifact,
)
from plinth.flavors.lightgbm import LightGBMFlavor
from plinth.flavors.onnx import OnnxFlavor
from plinth.flavors.python import PythonFlavor
from plinth.flavors.remote import RemoteFlavor, RemoteSpec
from plinth.flavors.sklearn import SklearnFlavor
from plinth.flavors.xgboost import XGBoostFlavor

__all__ = [
    "Flavor",
    "LightGBMFlavor",
    "LoadedArtifact",
    "OnnxFlavor",
    "PythonFlavor",
    "RemoteFlavor",
    "RemoteSpec",
    "SklearnFlavor",
    "XGBoostFlavor",
    "flavor_for_object",
    "flavors",
    "load_artifact",
]
