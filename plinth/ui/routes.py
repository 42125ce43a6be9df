"""The console's pages and forms under ``/ui``.

Every page is one GET that renders a template from ``plinth.ui.data``; every change is one
POST of a form (CSRF-checked, roles as the API's) that calls the same service method as
the CLI and redirects back (post/redirect/get), so a page works without JavaScript and a
reload never repeats an action. Errors render as HTML pages with the error's code, message
and hint (``error_page``); an expired or missing session goes to the sign-in page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from plinth.core.svg import format_number
from plinth.errors import (
    AuthError,
    InvalidParametersError,
    InvalidTokenError,
    PlinthError,
    Problem,
)
from plinth.errors.request import INVALID_PARAMETER
from plinth.services.replay import replay
from plinth.services.views import prediction_view
from plinth.ui import charts, data
from plinth.ui.session import (
    CSRF_FIELD,
    Viewer,
    auth_is_on,
    check_token,
    csrf_token,
    ensure_csrf_cookie,
    read_form,
    require,
    runtime_of,
    sign_in,
    sign_out,
    viewer_of,
)
from plinth.version import __version__

log = logging.getLogger("plinth.ui")

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"
#: No inline script or style: the page's own files only (SVG is markup, not a resource).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
ACTIONS = {"promote": "promote", "rollback": "roll back", "stop-canary": "stop the canary"}

router = APIRouter(prefix=PREFIX, include_in_schema=False)

T = TypeVar("T")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("plinth.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, d=1: "—" if v is None else f"{v * 100:.{d}f} %"
    env.filters["ms"] = lambda v: "—" if v is None else charts.seconds(v)
    env.filters["num"] = _num
    env.filters["when"] = lambda v: "—" if not v else str(v)[:19].replace("T", " ")
    env.filters["age"] = _age
    env.globals.update(
        line_chart=charts.line_chart,
        histogram=charts.histogram,
        control_chart=charts.control_chart,
        version=__version__,
        csrf_field=CSRF_FIELD,
        actions=ACTIONS,
    )
    return env


def _num(value: Any, digits: int = 4) -> str:
    """As the HTML report: never an exponent (a p-value of 3.8e-227 reads < 0.0001)."""
    return format_number(value, digits)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return (
                f"{seconds / size:.1f} {unit}"
                if seconds < 10 * size
                else f"{seconds // size:.0f} {unit}"
            )
    return f"{seconds:.0f} s"


TEMPLATES = _environment()


def render(
    request: Request, viewer: Viewer | None, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A template as a page, with the session's CSRF token and the security headers."""
    html = TEMPLATES.get_template(name).render(
        request=request,
        viewer=viewer,
        csrf=csrf_token(request),
        prefix=PREFIX,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    ensure_csrf_cookie(request, response)
    return response


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers={"cache-control": "no-store"})


async def blocking(work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work)


def error_page(request: Request, error: PlinthError) -> Response:
    """A console error as an HTML page (the API's JSON error, for a person)."""
    if isinstance(error, AuthError) and error.status == 401 and request.method == "GET":
        return redirect(f"{PREFIX}/login?next={quote(request.url.path)}")
    return render(request, None, "error.html", status=error.status, error=error)


# ---------------------------------------------------------------------- sign-in


@router.get("/login")
async def login_page(request: Request, next: str = PREFIX) -> Response:
    if not await auth_is_on(request):
        return redirect(PREFIX)
    return render(request, None, "login.html", next=_local(next), failed=False)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = _local(form.get("next", PREFIX))
    token = form.get("token", "").strip()
    try:
        if not token:
            raise InvalidTokenError("Paste a token to sign in.")
        await check_token(request, token)
    except InvalidTokenError:
        return render(request, None, "login.html", status=401, next=target, failed=True)
    response = redirect(target)
    sign_in(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    response = redirect(f"{PREFIX}/login")
    sign_out(response)
    return response


def _local(target: str) -> str:
    """Only ever redirect within the console (no open redirect)."""
    if target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return PREFIX


# ---------------------------------------------------------------------- models


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    viewer = await viewer_of(request)
    runtime = runtime_of(request)
    rows = await blocking(lambda: data.models_overview(runtime))
    return render(request, viewer, "home.html", models=rows, window=data.HOME_WINDOW)


@router.get("/models/{name}")
async def model(request: Request, name: str, window: str = "24h") -> Response:
    viewer = await viewer_of(request)
    if window not in data.WINDOWS:
        raise InvalidParametersError(
            f"window {window!r} is not one the console offers.",
            problems=[
                Problem(
                    INVALID_PARAMETER,
                    f"window must be one of {', '.join(data.WINDOWS)}",
                    hint="Pick a window from the page's window picker.",
                    field="window",
                )
            ],
        )
    runtime = runtime_of(request)
    page = await blocking(lambda: data.model_page(runtime, name, window))
    done = request.query_params.get("done")
    return render(request, viewer, "model.html", page=page, done=done)


@router.post("/models/{name}/{action}")
async def change_deployment(request: Request, name: str, action: str) -> Response:
    """Promote, roll back or stop the canary: the CLI's service calls, with a reason."""
    viewer = await viewer_of(request)
    require(viewer, "admin")
    form = await read_form(request)
    problems = []
    if action not in ACTIONS:
        problems.append(
            Problem(
                INVALID_PARAMETER,
                f"unknown action {action!r}",
                hint=f"Actions: {', '.join(ACTIONS)}.",
                field="action",
            )
        )
    reason = form.get("reason", "").strip()
    if not reason:
        problems.append(
            Problem(
                INVALID_PARAMETER,
                "a reason is required",
                hint="Say why in a few words; it goes into the deployment history.",
                field="reason",
            )
        )
    if form.get("confirm") != "yes":
        problems.append(
            Problem(
                INVALID_PARAMETER,
                "the change was not confirmed",
                hint="Tick the confirmation box before you press the button.",
                field="confirm",
            )
        )
    to: int | None = None
    if form.get("to"):
        try:
            to = int(form["to"])
        except ValueError:
            problems.append(
                Problem(INVALID_PARAMETER, "to must be a revision number", "e.g. 3", "to")
            )
    if problems:
        raise InvalidParametersError("The change was not made.", problems=problems)
    who = f"console:{viewer.name}" if viewer.name else "console"
    runtime = runtime_of(request)
    service = runtime.deployments
    if action == "promote":
        await blocking(lambda: service.promote(name, reason=reason, who=who))
    elif action == "rollback":
        await blocking(lambda: service.rollback(name, to=to, reason=reason, who=who))
    else:
        await blocking(
            lambda: service.end_canary(
                name, reason=reason, evidence={}, who=who, action="stop-canary"
            )
        )
    if runtime.serving is not None:
        await runtime.serving.router.refresh()  # read-your-writes on this worker
    window = form.get("window", "24h")
    window = window if window in data.WINDOWS else "24h"
    return redirect(f"{PREFIX}/models/{quote(name)}?window={window}&done={action}")


@router.get("/jobs/{job_id}")
async def training_job(request: Request, job_id: str) -> Response:
    """One training job: trigger, steps, data, the gate's table and the outcome."""
    viewer = await viewer_of(request)
    runtime = runtime_of(request)
    job = await blocking(lambda: data.training_job(runtime, job_id))
    return render(request, viewer, "job.html", job=job)


# ---------------------------------------------------------------------- review


@router.get("/review")
async def review_list(request: Request, model: str | None = None) -> Response:
    viewer = await viewer_of(request)
    require(viewer, "reviewer")
    runtime = runtime_of(request)
    items = await blocking(lambda: data.review_queue(runtime, model or None))
    return render(
        request,
        viewer,
        "review_list.html",
        items=items,
        model=model,
        sla_s=runtime.review_queue.sla.total_seconds(),
        me=_reviewer(viewer),
    )


def _reviewer(viewer: Viewer) -> str:
    return viewer.name or "console"


@router.post("/review/{review_id}/claim")
async def review_claim(request: Request, review_id: str) -> Response:
    viewer = await viewer_of(request)
    require(viewer, "reviewer")
    await read_form(request)
    queue = runtime_of(request).review_queue
    await blocking(lambda: queue.claim(review_id, _reviewer(viewer)))
    return redirect(f"{PREFIX}/review/{quote(review_id)}")


@router.get("/review/{review_id}")
async def review_case(request: Request, review_id: str) -> Response:
    viewer = await viewer_of(request)
    require(viewer, "reviewer")
    runtime = runtime_of(request)
    item = await blocking(lambda: data.review_case(runtime, review_id))
    return render(
        request,
        viewer,
        "review_case.html",
        item=item,
        me=_reviewer(viewer),
        lease_left=data.seconds_left(item.get("claimed_until")),
    )


@router.post("/review/{review_id}/resolve")
async def review_resolve(request: Request, review_id: str) -> Response:
    viewer = await viewer_of(request)
    require(viewer, "reviewer")
    form = await read_form(request)
    action = form.get("action", "")
    label = form.get("label") or None if action == "correct" else None
    note = form.get("note", "").strip() or None
    runtime = runtime_of(request)
    queue = runtime.review_queue
    item = await blocking(lambda: queue.resolve(review_id, _reviewer(viewer), action, label, note))
    model = item["model"]
    # Straight on to the next case: claim the oldest pending one for this reviewer.
    following = await blocking(lambda: data.next_pending(runtime, model, review_id))
    if following is not None:
        claim = following
        try:
            await blocking(lambda: queue.claim(claim, _reviewer(viewer)))
        except PlinthError:  # taken by someone else meanwhile: back to the queue
            following = None
    if following is None:
        return redirect(f"{PREFIX}/review?model={quote(model)}&done={quote(review_id)}")
    return redirect(f"{PREFIX}/review/{quote(following)}?done={quote(review_id)}")


# ---------------------------------------------------------------------- predictions


@router.get("/predictions")
async def prediction_lookup(request: Request, id: str = "") -> Response:
    viewer = await viewer_of(request)
    if id.strip():
        return redirect(f"{PREFIX}/predictions/{quote(id.strip())}")
    return render(request, viewer, "prediction.html", record=None, result=None)


@router.get("/predictions/{prediction_id}")
async def prediction(request: Request, prediction_id: str) -> Response:
    viewer = await viewer_of(request)
    runtime = runtime_of(request)
    record = await blocking(lambda: runtime.store.get_prediction(prediction_id))
    result = None
    if request.query_params.get("replay") == "1":
        result = await blocking(lambda: replay(runtime.store, runtime.registry, prediction_id))
    return render(
        request,
        viewer,
        "prediction.html",
        record=prediction_view(record),
        result=result,
    )


def mount(app: FastAPI) -> None:
    """Add the console's routes and its static files (CSS, a few lines of JS) to ``app``."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")
