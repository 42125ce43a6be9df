"""``plinth retrain | jobs | job show | approve | worker``: retraining from the terminal.

``plinth retrain NAME`` queues a job and, unless another process claims it first, runs it
right here (the trainer in its child process), showing each step and its elapsed time as
the job records them in the store (following a job another process runs looks the same);
``--queue`` only queues it for ``plinth serve`` or ``plinth worker``. ``--dry-run`` builds
the training set, trains and gates, and registers nothing. ``register`` adds the commands
to the main Typer app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from plinth.cli.common import err_console, handle_errors, open_runtime

if TYPE_CHECKING:
    from plinth.store.training import JobRow

console = Console()

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="PLINTH_HOME", help="Plinth's data folder [default: ./.plinth]."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

job_app = typer.Typer(help="One training job.", no_args_is_help=True)


@handle_errors
def retrain(
    name: Annotated[str, typer.Argument(help="Model name (needs [models.NAME.training]).")],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Build the training set, train and gate; register and deploy nothing.",
        ),
    ] = False,
    queue: Annotated[
        bool,
        typer.Option("--queue", help="Only queue the job, for `plinth serve` or a worker."),
    ] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Retrain NAME now: training set, trainer, gate, registration, canary."""
    with open_runtime(home) as runtime:
        service = runtime.retraining
        if dry_run:
            with err_console.status("dry run") as status:
                found = service.dry_run(name, progress=lambda m: status.update(escape(m)))
            if as_json:
                console.print_json(json.dumps(found, default=str))
            else:
                _show_dry_run(found)
            return
        job, created = service.request(name, trigger="manual", reason="plinth retrain")
        if not created:
            err_console.print(
                f"job {job.id} for {name} is already {job.state}; following it",
                highlight=False,
            )
        if queue:
            console.print(f"queued job {job.id}" if created else job.id, highlight=False)
            return
        now = service.clock()
        claimed = (
            service.jobs.claim(service.holder, now, now + timedelta(seconds=service.lease_s), name)
            if job.state == "queued"
            else None
        )
        if claimed is not None:
            done = _run_here(service, claimed)
        else:
            done = _follow(service.jobs.get, job.id)
    if as_json:
        console.print_json(json.dumps(_job_dict(done), default=str))
    else:
        _show_job(done)
    if done.state == "failed":
        raise typer.Exit(1)


@handle_errors
def jobs(
    name: Annotated[str | None, typer.Argument(help="Only this model's jobs.")] = None,
    limit: Annotated[int, typer.Option(help="Newest this many.")] = 20,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List training jobs, newest first."""
    with open_runtime(home) as runtime:
        if name is not None:
            runtime.store.get_version(name)  # an unknown model says so
        found = runtime.retraining.jobs.jobs(name, limit=limit)
    if as_json:
        console.print_json(json.dumps([_job_dict(j) for j in found], default=str))
        return
    table = Table("job", "model", "state", "trigger", "created (UTC)", "took", "version",
                  "outcome")  # fmt: skip
    for j in found:
        table.add_row(
            j.id, j.model, _state(j.state), escape(j.trigger),
            f"{j.created_at:%Y-%m-%d %H:%M:%S}", _took(j),
            "" if j.version is None else str(j.version), j.outcome or "",
        )  # fmt: skip
    console.print(table)


@job_app.command("show")
@handle_errors
def job_show(
    job_id: Annotated[str, typer.Argument(help="The job's id (plinth jobs lists them).")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Trigger, data, the gate's table and the outcome of one job."""
    with open_runtime(home) as runtime:
        found = runtime.retraining.jobs.get(job_id)
    if as_json:
        console.print_json(json.dumps(_job_dict(found), default=str))
    else:
        _show_job(found)


@handle_errors
def approve(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="The version a job is holding.")],
    home: HomeOption = None,
) -> None:
    """Ship a retrained version that waits for approval (auto_deploy = false) as a canary."""
    with open_runtime(home) as runtime:
        job = runtime.retraining.approve(name, version)
        live = runtime.deployments.current(name)
    console.print(
        f"[green]approved[/] {name}:{version} (job {job.id}): "
        f"{escape(live.spec.describe()) if live else 'deployed'}",
        highlight=False,
    )


@handle_errors
def worker(
    once: Annotated[
        bool,
        typer.Option("--once", help="One pass (triggers, one job, canaries) and exit."),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Run retraining triggers and jobs, alert rules and canary analysis without serving."""
    with open_runtime(home) as runtime:
        if once:
            job = runtime.retraining.tick()
            if job is not None:
                _show_job(job)
            return
        console.print(f"plinth worker (home {runtime.settings.home})", highlight=False)
        asyncio.run(_background(runtime))


def register(app: typer.Typer) -> None:
    """Add ``plinth retrain``, ``jobs``, ``job show``, ``approve`` and ``worker`` to ``app``."""
    app.command()(retrain)
    app.command()(jobs)
    app.add_typer(job_app, name="job")
    app.command()(approve)
    app.command()(worker)


async def _background(runtime: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await runtime.start_background(gauges=False)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def _run_here(service: Any, job: JobRow) -> JobRow:
    """Run a claimed job in a thread of this process while showing its stages from the
    store; Ctrl-C stops the trainer at its next heartbeat and fails the job."""
    finished: list[JobRow] = []
    raised: list[BaseException] = []

    def say(message: str) -> None:
        err_console.print(f"  [dim]{escape(message)}[/]", highlight=False)

    def work() -> None:
        try:
            finished.append(service.execute(job, progress=say))
        except BaseException as exc:  # shown by the main thread
            raised.append(exc)

    runner = threading.Thread(target=work, name=f"job-{job.id}", daemon=True)
    runner.start()
    try:
        _follow(service.jobs.get, job.id, runner)
    except KeyboardInterrupt:
        service.stopping.set()
        runner.join()
        raise
    runner.join()
    if raised:
        raise raised[0]
    return finished[0]


def _follow(
    get: Callable[[str], JobRow], job_id: str, runner: threading.Thread | None = None
) -> JobRow:
    """Show a job's stages with their elapsed times, read from the store, until it ends
    (or, when it runs here, until its thread does)."""
    from plinth.store.training import FINISHED

    try:
        with Live(console=err_console, refresh_per_second=4) as live:
            while True:
                job = get(job_id)
                live.update(_progress(job))
                if job.state in FINISHED:
                    return job
                if runner is not None and not runner.is_alive():
                    return get(job_id)
                time.sleep(0.5)
    finally:
        if not err_console.is_terminal:
            err_console.line()  # a file or pipe gets the last frame without its newline


def _progress(job: JobRow) -> RenderableType:
    """The job's header and one line per stage: done, running (a spinner) or failed."""
    now = datetime.now(UTC)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=2)
    grid.add_column(min_width=14)
    grid.add_column(justify="right")
    total = (
        ""
        if job.started_at is None
        else f" · {_seconds((job.finished_at or now) - job.started_at)}"
    )
    header = Text.from_markup(f"job {job.id} {job.model} · {_state(job.state)}{total}")
    if job.state == "queued":
        header.append(" · waiting for a worker", style="dim")
    elif job.state == "running" and job.holder:
        header.append(f" · run by {job.holder}", style="dim")
    stages = job.stage_times()
    for i, (name, began, ended) in enumerate(stages):
        last = i == len(stages) - 1
        mark: RenderableType
        if ended is None:
            mark = Spinner("dots", style="cyan")
        elif last and job.state in ("failed", "rejected"):
            mark = Text("✗", style="red" if job.state == "failed" else "yellow")
        else:
            mark = Text("✓", style="green")
        grid.add_row(mark, name, _seconds((ended or now) - began))
    return Group(header, grid)


def _seconds(span: timedelta) -> str:
    return f"{max(span.total_seconds(), 0.0):.1f} s"


# ---------------------------------------------------------------------- showing


# ---------------------------------------------------------------------- showing


def _job_dict(job: JobRow) -> dict[str, Any]:
    return {f.name: getattr(job, f.name) for f in fields(job)} | {"stage": job.stage}


def _state(state: str) -> str:
    colour = {"succeeded": "green", "rejected": "yellow", "failed": "red"}.get(state, "cyan")
    return f"[{colour}]{state}[/]"


def _took(job: JobRow) -> str:
    if job.started_at is None or job.finished_at is None:
        return ""
    return f"{(job.finished_at - job.started_at).total_seconds():.1f} s"


def _show_job(job: JobRow) -> None:
    console.print(
        f"job {job.id}  {job.model}  {_state(job.state)}"
        + (f"  version {job.version}" if job.version is not None else "")
        + (f"  outcome {job.outcome}" if job.outcome else ""),
        highlight=False,
    )
    console.print(
        f"  trigger {escape(job.trigger)}: {escape(job.reason)}; parent version "
        f"{job.parent_version}; created {job.created_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f"; took {_took(job)}" if _took(job) else ""),
        highlight=False,
    )
    stages = job.stage_times()
    if stages:
        now = datetime.now(UTC)
        running = job.state == "running"
        console.print(
            f"  stage{'' if running else 's'}: "
            + ", ".join(f"{name} {_seconds((end or now) - at)}" for name, at, end in stages)
            + (f" (now {job.stage})" if running else ""),
            highlight=False,
        )
    if job.data and "rows" in job.data:  # a job that failed building its data has none
        _show_data(job.data)
    if job.gate:
        _show_gate(job.gate)
    if job.error:
        console.print(
            f"  [red]error[/] {escape('[' + str(job.error.get('code')) + ']')} "
            f"{escape(str(job.error.get('message')))}",
            highlight=False,
        )
        if job.error.get("hint"):
            console.print(f"  [yellow]hint:[/] {escape(str(job.error['hint']))}", highlight=False)


def _show_data(data: dict[str, Any]) -> None:
    sources = ", ".join(f"{k} {v}" for k, v in (data.get("sources") or {}).items())
    console.print(
        f"  data: {data.get('rows')} training rows ({sources or 'none'}), "
        f"{data.get('holdout_rows')} holdout rows ({data.get('holdout_source')}), "
        f"cut-off {data.get('cutoff')}",
        highlight=False,
    )
    timings = data.get("timings") or {}
    if timings:
        console.print(
            "  time: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()),
            highlight=False,
        )
    served = data.get("predictions_in_window")
    labelled = data.get("labelled_traffic")
    if served is not None:
        share = f" ({labelled / served:.0%})" if served else ""
        console.print(
            f"  labels: {labelled} of {served} predictions in the window{share}; "
            f"sha256 {str(data.get('sha256'))[:16]}…",
            highlight=False,
        )


def _show_gate(gate: dict[str, Any]) -> None:
    verdict = "[green]passed[/]" if gate.get("passed") else "[yellow]rejected[/]"
    console.print(f"  gate: {verdict} on {gate.get('rows')} rows", highlight=False)
    table = Table("check", "candidate", "champion", "limit", "ok")
    metrics = gate.get("metrics") or {}
    cand, champ = metrics.get("candidate", {}), metrics.get("champion", {})
    for key in sorted(cand):
        if key == "errors":
            continue
        table.add_row(key, _num(cand.get(key)), _num(champ.get(key)), "", "")
    for check in gate.get("absolute") or []:
        table.add_row(
            f"absolute {check['metric']}", _num(check["value"]), "",
            f"{check['op']} {check['bar']:g}", _ok(check["ok"]),
        )  # fmt: skip
    relative = gate.get("relative") or {}
    if relative:
        table.add_row(
            f"{relative.get('test')}: {relative.get('statistic')}",
            _num(relative.get("change")),
            f"bound {_num(relative.get('upper'))}",
            f"<= {_num(relative.get('max_regression'))}",
            _ok(bool(relative.get("ok"))),
        )
        table.add_row(
            "proven improvement", "yes" if relative.get("improved") else "no",
            f"p {_num(relative.get('p_better'))}", "", "",
        )  # fmt: skip
    for s in gate.get("slices") or []:
        table.add_row(
            f"slice {s['column']}={s['value']} ({s['rows']})", _num(s["change"]), "",
            "", _ok(s["ok"]),
        )  # fmt: skip
    contract = gate.get("contract") or {}
    if contract.get("checked"):
        table.add_row(
            "contract", escape(str(contract.get("summary"))), "", "",
            _ok(not contract.get("blocks")),
        )  # fmt: skip
    console.print(table)
    registered = gate.get("registered_holdout") or {}
    if registered.get("rows"):
        cand, champ = registered["candidate"], registered["champion"]
        shown = ", ".join(
            f"{k} {_num(cand[k])} vs {_num(champ[k])}" for k in sorted(cand) if k != "errors"
        )
        console.print(
            f"  registered holdout ({registered['rows']} rows, reported only): {shown}",
            highlight=False,
        )
    for reason in gate.get("reasons") or []:
        console.print(f"  [yellow]-[/] {escape(reason)}", highlight=False)


def _show_dry_run(found: dict[str, Any]) -> None:
    console.print(
        f"dry run for {found['model']} (parent version {found['parent_version']}): "
        f"would {found['would']}; nothing was registered",
        highlight=False,
    )
    _show_data(found["data"])
    _show_gate(found["gate"])


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _ok(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"
