"""A small HTTP client for a running Plinth server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from plinth.errors import PlinthError, Problem, RemoteError, error_class


class Client:
    """Talks JSON to ``plinth serve``; server errors come back as ``PlinthError``."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def predict(
        self,
        model: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Score records; returns the server's reply with one entry per record."""
        body: dict[str, Any] = {"records": list(records)}
        if key is not None:
            body["key"] = key
        params = {"version": version} if version is not None else None
        return self._call("POST", f"/v1/models/{model}/predict", body, params)

    def models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/models")["models"])

    def model(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{name}")

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/predictions/{prediction_id}")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content else None
        response = self._http.request(method, path, content=content, params=params, headers=headers)
        data: dict[str, Any] = orjson.loads(response.content) if response.content else {}
        if response.status_code >= 400:
            raise _remote_error(data.get("error", {}), response)
        return data


def _remote_error(error: dict[str, Any], response: httpx.Response) -> PlinthError:
    """The server's error as the class that owns its code, so ``except ContractError``
    works against a server as it does in-process; a code this version does not know
    (or an answer that is no Plinth error) becomes a ``RemoteError`` carrying it."""
    message = error.get("message", response.text)
    hint = error.get("hint", "")
    problems = [
        Problem(
            p.get("code", ""),
            p.get("message", ""),
            p.get("hint", ""),
            p.get("field"),
            p.get("record"),
        )
        for p in error.get("problems", [])
    ]
    code = error.get("code")
    leaf = error_class(code) if isinstance(code, str) else None
    if leaf is None or leaf is RemoteError:
        return RemoteError(
            message, status=response.status_code, code=code, hint=hint, problems=problems
        )
    return leaf.restore(message, hint, response.status_code, problems)
