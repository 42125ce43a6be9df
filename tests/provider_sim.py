"""A provider simulator: an OpenAI-compatible chat-completions server with faults on demand.

The model provider is outside this machine, so tests run this real HTTP server on a
loopback port (``python -m tests.provider_sim --port N``) and script it per test:

- ``POST /_script`` ``{"replies": [...], "rules": [...], "default": {...}}`` — ``replies``
  are consumed one per request, in order: ``{"status": 429, "headers": {...}}``,
  ``{"status": 500}``, ``{"delay_s": 3}`` (then the next fields apply), ``{"content": "not
  json"}`` (a 200 whose message content is that text), ``{"raw": {...}}`` (a 200 with that
  exact JSON body). When none are left, the first of the ``rules`` that matches the last user
  message (``contains``) and the requested ``model`` answers (``answer`` or ``status``, e.g.
  ``{"model": "sim-large", "status": 500}``), after its ``delay_s`` if any, else ``default``.
- ``latency_s`` in the script delays every reply (a provider's own time), and
  ``keep_requests: false`` stops recording requests (for benchmarks).
- ``GET /_requests`` — every request received (body, headers, monotonic time);
  ``POST /_reset`` forgets the script and the requests.

Replies follow the wire format of the official ``openai`` client (``id``, ``object``,
``created``, ``model``, ``choices[].message``, ``finish_reason``, ``usage`` with
``prompt_tokens``, ``completion_tokens``, ``total_tokens``); token counts are word counts.
``POST /score`` is a plain HTTP JSON service: it answers ``{"result": default}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STATE: dict[str, Any] = {
    "replies": [], "rules": [], "default": None, "requests": [], "latency_s": 0.0, "keep": True
}  # fmt: skip


def _reset() -> None:
    STATE.update(replies=[], rules=[], default=None, requests=[], latency_s=0.0, keep=True)


async def script(request: Request) -> Response:
    body = await request.json()
    STATE["replies"] = list(body.get("replies", []))
    STATE["rules"] = list(body.get("rules", []))
    STATE["default"] = body.get("default")
    STATE["latency_s"] = float(body.get("latency_s", 0.0))
    STATE["keep"] = bool(body.get("keep_requests", True))
    return JSONResponse({"ok": True})


async def reset(request: Request) -> Response:
    _reset()
    return JSONResponse({"ok": True})


async def requests(request: Request) -> Response:
    return JSONResponse(STATE["requests"])


def _words(text: str) -> int:
    return len(text.split())


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    return {
        "id": f"chatcmpl-sim{len(STATE['requests'])}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "sim"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": _words(prompt),
            "completion_tokens": _words(content),
            "total_tokens": _words(prompt) + _words(content),
        },
        "system_fingerprint": "fp_sim",
    }


async def chat(request: Request) -> Response:
    body = await request.json()
    if STATE["keep"]:
        STATE["requests"].append(
            {"body": body, "headers": dict(request.headers), "t": time.monotonic()}
        )
    if STATE["latency_s"]:
        await asyncio.sleep(STATE["latency_s"])
    reply = STATE["replies"].pop(0) if STATE["replies"] else None
    if reply is not None:
        if reply.get("delay_s"):
            await asyncio.sleep(float(reply["delay_s"]))
        status = int(reply.get("status", 200))
        if status != 200:
            return JSONResponse(
                {"error": {"message": f"simulated {status}", "type": "sim", "code": status}},
                status_code=status,
                headers=reply.get("headers", {}),
            )
        if "raw" in reply:
            return JSONResponse(reply["raw"])
        if "content" in reply:
            return JSONResponse(_completion(body, reply["content"]))
        if "answer" in reply:
            return JSONResponse(_completion(body, json.dumps(reply["answer"])))
    user = next(
        (m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
        "",
    )
    answer = STATE["default"]
    for rule in STATE["rules"]:
        if rule.get("contains", "") in user and rule.get("model", body.get("model")) == body.get(
            "model"
        ):
            if rule.get("delay_s"):
                await asyncio.sleep(float(rule["delay_s"]))
            if "status" in rule:
                return JSONResponse({"error": {"message": "simulated"}}, status_code=rule["status"])
            answer = rule["answer"]
            break
    if answer is None:
        return JSONResponse({"error": {"message": "no script"}}, status_code=500)
    return JSONResponse(_completion(body, json.dumps(answer)))


async def score(request: Request) -> Response:
    body = await request.json()
    STATE["requests"].append(
        {"body": body, "headers": dict(request.headers), "t": time.monotonic()}
    )
    reply = STATE["replies"].pop(0) if STATE["replies"] else None
    if reply is not None and int(reply.get("status", 200)) != 200:
        return JSONResponse({"error": "simulated"}, status_code=int(reply["status"]))
    return JSONResponse({"result": STATE["default"]})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/score", score, methods=["POST"]),
        Route("/_script", script, methods=["POST"]),
        Route("/_reset", reset, methods=["POST"]),
        Route("/_requests", requests, methods=["GET"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
