"""Remote models: a version of a model Plinth calls but does not host (an LLM behind an
OpenAI-compatible API, another team's scoring service). The spec (``spec.py``) is the
version's content-addressed artifact; the client (``client.py``) retries and keeps to the
request's deadline; the flavor (``flavor.py``) validates structured output and counts cost.
"""

from plinth.flavors.remote.flavor import LEDGER, RemoteFlavor
from plinth.flavors.remote.spec import FORMAT, RemoteSpec

__all__ = ["FORMAT", "LEDGER", "RemoteFlavor", "RemoteSpec"]
