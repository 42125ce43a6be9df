"""plinth.Client against the real app: a server's error comes back as the class owning its code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from plinth.client import Client
from plinth.errors import (
    ContractError,
    ContractViolationError,
    ModelNotFoundError,
    NotFoundError,
    PathNotFoundError,
)


@pytest.fixture
def plinth_client(client: TestClient) -> Client:
    remote = Client()
    remote._http = client  # the in-process app instead of a socket; same httpx API
    return remote


def test_a_contract_error_is_a_contract_error_on_the_client(plinth_client: Client) -> None:
    with pytest.raises(ContractError) as caught:
        plinth_client.predict("churn", [{"tenure": "many"}])
    error = caught.value
    assert type(error) is ContractViolationError and error.status == 422
    assert error.code == "contract.invalid" and error.problems
    assert {p.code for p in error.problems} >= {"contract.wrong_type"}


def test_not_found_errors_keep_their_family_and_the_servers_hint(
    plinth_client: Client, client: TestClient
) -> None:
    with pytest.raises(NotFoundError) as caught:
        plinth_client.model("nope")
    assert type(caught.value) is ModelNotFoundError
    assert caught.value.hint == client.get("/v1/models/nope").json()["error"]["hint"]
    with pytest.raises(PathNotFoundError, match="Not Found"):
        plinth_client._call("GET", "/v1/nowhere")
