"""``plinth`` — register, serve, score, inspect and replay models from the terminal.

Every command shows a PlinthError as its code, message and hint and exits non-zero.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli import feedback, privacy, rollout
from plinth.cli.common import (
    HomeOption,
    console,
    handle_errors,
    open_runtime,
    open_settings,
    parse_ref,
    progress_bar,
)
from plinth.cli.contract import contract_app
from plinth.cli.monitor import monitor
from plinth.config.settings import SETTINGS_HANDOFF
from plinth.core.durations import parse_duration
from plinth.errors import BadTagError, ModelSourceChoiceError, RetentionOrderError
from plinth.flavors.mlflow import read_mlflow_model
from plinth.runtime import Runtime
from plinth.services.batch_scoring import score_frame
from plinth.services.datasets import file_sha256, read_table, write_table
from plinth.services.replay import replay as replay_prediction
from plinth.services.review.writer import ReviewWriter
from plinth.services.views import version_view

app = typer.Typer(
    name="plinth",
    help="Run a trained model in production: contract, serving, prediction log, replay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_parse_ref = parse_ref


def _parse_tags(tags: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise BadTagError(tag)
        parsed[key] = value
    return parsed


@app.command()
@handle_errors
def register(
    model: Annotated[
        Path | None,
        typer.Argument(
            help="Model file: .skops, .onnx, XGBoost .ubj/.json, LightGBM .txt, "
            "or .joblib/.pkl with --trust-pickle."
        ),
    ] = None,
    *,
    name: Annotated[str, typer.Option(help="Model name; versions are numbered per name.")],
    train: Annotated[
        Path, typer.Option(help="Training table (.csv or .parquet), target included.")
    ],
    target: Annotated[str, typer.Option(help="Name of the target column in --train.")],
    holdout: Annotated[Path | None, typer.Option(help="Held-out table for the metrics.")] = None,
    task: Annotated[
        str | None, typer.Option(help="classification or regression [default: inferred].")
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle", help="Allow pickle/joblib files (they run code when loaded)."
        ),
    ] = False,
    trust: Annotated[
        list[str] | None,
        typer.Option("--trust", help="Trust one extra type in a .skops file (repeatable)."),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="key=value label (repeatable).")
    ] = None,
    from_mlflow: Annotated[
        str | None,
        typer.Option(
            "--from-mlflow",
            help="Import the model at an MLflow URI (runs:/ID/PATH, models:/NAME/VERSION or "
            "a model directory; MLFLOW_TRACKING_URI names the store) instead of MODEL.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Register a trained model with its training data as a new version."""
    tags = _parse_tags(tag or [])
    if (model is None) == (from_mlflow is None):
        raise ModelSourceChoiceError(
            "Give either a model file or --from-mlflow URI.",
        )
    source: Any = model
    lineage = None
    if from_mlflow is not None:
        imported = read_mlflow_model(from_mlflow, trust_pickle=trust_pickle, trust_types=trust)
        source, lineage = imported.artifact, imported.lineage
    train_frame = read_table(train)
    holdout_frame = read_table(holdout) if holdout is not None else None
    with open_runtime(home) as runtime:
        record = runtime.registry.register(
            source,
            name=name,
            train=train_frame,
            target=target,
            holdout=holdout_frame,
            task=task,
            trust_pickle=trust_pickle,
            trust_types=trust or [],
            tags=tags,
            train_sha256=file_sha256(train),
            lineage=lineage,
        )
    metrics = record.metadata.get("metrics", {})
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    console.print(
        f"[green]registered[/] {record.name}:{record.version} "
        f"({record.flavor}, {record.task}, sha256 {record.sha256[:12]}…)",
        highlight=False,
    )
    console.print(f"  {metrics.get('split', 'train')} metrics: {shown}", highlight=False)


@app.command()
@handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List registered models."""
    with open_runtime(home) as runtime:
        summaries = runtime.store.list_models()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "task": s.task,
                        "latest_version": s.latest_version,
                        "versions": s.versions,
                        "updated_at": s.updated_at.isoformat(),
                    }
                    for s in summaries
                ],
                indent=2,
            )
        )
        return
    table = Table("name", "task", "latest", "versions", "updated")
    for s in summaries:
        table.add_row(
            s.name,
            s.task,
            str(s.latest_version),
            str(s.versions),
            s.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table if summaries else "No models registered yet: see `plinth register --help`.")


@app.command()
@handle_errors
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION [default version: latest].")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole version as JSON.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Show one version: contract, metrics, lineage."""
    name, version = _parse_ref(ref)
    with open_runtime(home) as runtime:
        record = runtime.store.get_version(name, version)
    view = version_view(record, with_profile=as_json)
    if as_json:
        print(json.dumps(view, indent=2, default=str))
        return
    console.print(
        f"[bold]{record.name}:{record.version}[/]  {record.flavor} {record.task}  "
        f"sha256 {record.sha256}",
        highlight=False,
    )
    console.print(f"registered {record.created_at:%Y-%m-%d %H:%M:%S} UTC", highlight=False)
    metrics = view.get("metrics", {})
    console.print(
        "metrics ("
        + str(metrics.get("split"))
        + "): "
        + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)),
        highlight=False,
    )
    from plinth.core.contract import FieldSpec

    table = Table(
        "field",
        "type",
        "required",
        "nullable",
        "range / categories",
        "repair",
        title="input contract",
    )
    for f in view["contract"]["fields"]:
        if f.get("categories") is not None:
            cats = [str(c) for c in f["categories"]]
            span = ", ".join(cats[:6]) + (f" … (+{len(cats) - 6})" if len(cats) > 6 else "")
        elif f.get("minimum") is not None:
            span = f"{f['minimum']} … {f['maximum']}"
        else:
            span = ""
        # What a null and an absent key really get, not the bare on_null setting: a field
        # that is not nullable refuses a null whatever on_null says.
        handling = FieldSpec.from_dict(f).null_handling()
        repair = f"null→{handling['null']}"
        if handling["missing"] != handling["null"]:
            repair += f", missing→{handling['missing']}"
        if f["kind"] == "categorical":
            repair += f", unseen→{f.get('on_unseen')}"
        table.add_row(
            escape(f["name"]),
            f["kind"],
            "yes" if f.get("required") else "no",
            "yes" if f.get("nullable") else "no",
            escape(span),
            escape(repair),
        )
    console.print(table)
    lineage = view.get("lineage", {})
    git = lineage.get("git") or {}
    console.print(
        f"lineage: train sha256 {str(lineage.get('train_sha256'))[:12]}…, "
        f"{lineage.get('train_rows')} rows, commit {git.get('commit', 'n/a')}"
        f"{' (dirty)' if git.get('dirty') else ''}, "
        + ", ".join(f"{k} {v}" for k, v in (lineage.get("libraries") or {}).items()),
        highlight=False,
    )
    if view.get("tags"):
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in view["tags"].items()))


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the store.")] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request line.")
    ] = False,
    review_below: Annotated[
        float | None,
        typer.Option(help="Send answers below this confidence to human review."),
    ] = None,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile."),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The certificate's PEM private key.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Serve every registered model over HTTP (FastAPI on uvicorn), or HTTPS with
    --ssl-certfile and --ssl-keyfile."""
    import uvicorn

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter(
            "give both --ssl-certfile and --ssl-keyfile, or neither",
            param_hint="--ssl-certfile/--ssl-keyfile",
        )
    for option, path in (("--ssl-certfile", ssl_certfile), ("--ssl-keyfile", ssl_keyfile)):
        if path is not None and not path.is_file():
            raise typer.BadParameter(f"{path} is not a readable file", param_hint=option)
    settings = open_settings(home)
    settings = settings.model_copy(update={"home": settings.home.resolve()})
    if review_below is not None:
        settings = settings.model_copy(update={"review_below": review_below})
    settings.policies()  # a bad plinth.toml stops here, every problem listed (exit 2)
    # Apply migrations once here, before workers race to do it.
    Runtime.open(settings).close()
    # Each worker process builds its app from these exact settings (plinth.http.app).
    os.environ[SETTINGS_HANDOFF] = settings.model_dump_json()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="plinth-metrics-")
    scheme = "https" if ssl_certfile is not None else "http"
    console.print(
        f"Plinth serving on {scheme}://{host}:{port} (home {settings.home}, "
        f"{workers} worker{'s' if workers > 1 else ''})",
        highlight=False,
    )
    uvicorn.run(
        "plinth.http.app:create_app_from_handoff",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=settings.worker_start_timeout_s,
        ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
        ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
    )


@app.command()
@handle_errors
def predict(
    name: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    input: Annotated[
        Path, typer.Option("--input", "-i", help="Table to score (.csv or .parquet).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the scored table.")
    ],
    review_below: Annotated[
        float | None,
        typer.Option(
            help="Send rows below this confidence to human review [default: the review "
            "policy plinth serve uses: plinth.toml, then PLINTH_REVIEW_BELOW]."
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Score a file through the same contract, log and review gate as online traffic.

    Rows under the model's review gate become review items, like unsure online answers;
    the output then has review_id and review_status columns.
    """
    model_name, version = _parse_ref(name)
    frame = read_table(input)
    settings = open_settings(home)
    if review_below is not None:  # as PLINTH_REVIEW_BELOW: plinth.toml's per-model gates win
        settings = settings.model_copy(update={"review_below": review_below})
    with open_runtime(home, settings) as runtime, runtime.writers() as (writer, reviews):
        model = runtime.registry.load(runtime.store.get_version(model_name, version))
        model.review = runtime.policies.review(model.name)
        model.log_policy = runtime.policies.log(model.name)
        with progress_bar(f"scoring {model.name}:{model.version}", len(frame)) as advance:
            scored, summary = score_frame(
                model, frame, writer, reviews=reviews, on_progress=advance
            )
        write_table(scored, output)
        if summary.reviewed and settings.review_context:
            _wait_for_review_context(reviews, summary.reviewed)
    gate = ""
    if model.review is not None:
        gate = f", {summary.reviewed} sent to review"
    console.print(
        f"[green]scored[/] {summary.scored}/{summary.rows} rows with "
        f"{model.name}:{model.version} → {output} "
        f"({summary.warned} with warnings, {summary.failed} failed{gate})",
        highlight=False,
    )
    if summary.reviewed:
        console.print(f"review them with: plinth review list --model {model.name}", highlight=False)
    if summary.failed:
        raise typer.Exit(1 if summary.scored == 0 else 0)


def _wait_for_review_context(reviews: ReviewWriter, items: int) -> None:
    """The reviewer's context (attribution, similar cases) is computed after the items are
    stored; wait for it here, or the process would exit before it is attached."""
    with progress_bar("reviewer context", items) as advance:
        done = 0
        while True:
            now_done = items - reviews.pending_contexts()
            advance(now_done - done)
            done = now_done
            if done >= items:
                return
            time.sleep(0.1)


@app.command()
@handle_errors
def replay(
    prediction_id: Annotated[str, typer.Argument(help="A prediction id from a reply or the log.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Re-run a logged prediction on its exact artifact; exit 1 if the output differs."""
    with open_runtime(home) as runtime:
        result = replay_prediction(runtime.store, runtime.registry, prediction_id)
    if as_json:
        print(
            json.dumps(
                {
                    "id": prediction_id,
                    "identical": result.identical,
                    "logged": result.logged,
                    "replayed": result.replayed,
                    "differences": result.differences,
                },
                indent=2,
            )
        )
    else:
        rec = result.record
        console.print(
            f"prediction {rec.id}  {rec.model}:{rec.version}  {rec.ts:%Y-%m-%d %H:%M:%S} "
            f"UTC  route {rec.route}",
            highlight=False,
        )
        table = Table("", "logged", "replayed")
        keys = sorted(set(_flatten(result.logged)) | set(_flatten(result.replayed)))
        flat_l, flat_r = _flatten(result.logged), _flatten(result.replayed)
        for key in keys:
            left, right = flat_l.get(key, "—"), flat_r.get(key, "—")
            style = "" if repr(left) == repr(right) else "bold red"
            table.add_row(key, repr(left), repr(right), style=style)
        console.print(table)
        if result.identical:
            console.print("[green]identical[/]")
        else:
            console.print("[bold red]differs:[/] " + "; ".join(result.differences), highlight=False)
    if not result.identical:
        raise typer.Exit(1)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return {k.rstrip("."): v for k, v in out.items()}
    return {prefix: value}


@app.command()
@handle_errors
def prune(
    older_than: Annotated[
        str,
        typer.Option(help="Delete predictions and one-minute interval rows older than this."),
    ] = "30d",
    rollups_older_than: Annotated[
        str, typer.Option(help="Delete hourly monitoring roll-ups older than this.")
    ] = "400d",
    home: HomeOption = None,
) -> None:
    """Delete logged predictions and monitoring intervals past their retention windows.

    Finished minute intervals are rolled up into hourly rows first, so pruning never drops
    what an hourly roll-up keeps; roll-ups are kept for --rollups-older-than.
    """
    # Imported here to keep this command's change local to it.
    from plinth.services.monitoring.rollup import prune_intervals

    now = datetime.now(UTC)
    cutoff = now - parse_duration(older_than, allow_zero=True)
    rollup_cutoff = now - parse_duration(rollups_older_than, allow_zero=True)
    if rollup_cutoff > cutoff:
        raise RetentionOrderError(
            f"--rollups-older-than {rollups_older_than} is shorter than --older-than {older_than}.",
        )
    with open_runtime(home) as runtime:
        deleted = runtime.store.prune_predictions(cutoff)
        intervals = prune_intervals(
            runtime.store, minutes_before=cutoff, hours_before=rollup_cutoff, now=now
        )
    console.print(
        f"deleted {deleted} predictions older than {cutoff:%Y-%m-%d %H:%M:%S} UTC", highlight=False
    )
    console.print(
        f"rolled up {intervals.rolled_up} minute interval rows into hours; deleted "
        f"{intervals.minutes_deleted} minute rows older than {cutoff:%Y-%m-%d %H:%M:%S} UTC "
        f"and {intervals.hours_deleted} hourly roll-ups older than "
        f"{rollup_cutoff:%Y-%m-%d %H:%M:%S} UTC",
        highlight=False,
    )


rollout.register(app, handle_errors)  # deploy, promote, rollback, history
feedback.register(app, handle_errors)  # feedback, performance, review, tokens
privacy.register(app, handle_errors)  # forget
app.add_typer(contract_app)
app.command()(handle_errors(monitor))  # plinth monitor


def main() -> None:
    """Console-script entry point."""
    app(prog_name="plinth")


if __name__ == "__main__":  # pragma: no cover
    main()
