"""Flavors adapt one kind of model object to the one interface the server calls.

A flavor knows how to save a model to bytes, load it back safely, and call it on the
DataFrame the contract produced. New kinds of model (ONNX, remote HTTP) are new flavors;
nothing else changes. ``plinth.flavors.testing.check_flavor`` is the conformance suite.
"""

from plinth.flavors.base import Flavor, LoadedArtifact, flavor_for_object, load_artifact
from plinth.flavors.python import PythonFlavor
from plinth.flavors.sklearn import SklearnFlavor

__all__ = [
    "Flavor",
    "LoadedArtifact",
    "PythonFlavor",
    "SklearnFlavor",
    "flavor_for_object",
    "load_artifact",
]
