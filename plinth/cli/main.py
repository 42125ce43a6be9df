"""``plinth`` — register, serve, score, inspect and replay models from the terminal.

Every command shows a PlinthError as its code, message and hint and exits non-zero. Each
command imports the services it uses in its body, so ``plinth --help`` and light commands
never load pandas, scipy or scikit-learn (see ``plinth.cli.common``).
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli import canary as canary_cli
from plinth.cli import contract as contract_cli
from plinth.cli import feedback, privacy, rollout, training
from plinth.cli import monitor as monitor_cli
from plinth.cli.common import (
    HomeOption,
    console,
    handle_errors,
    open_runtime,
    open_settings,
    parse_ref,
    progress_bar,
)
from plinth.core.durations import parse_duration
from plinth.errors import BadTagError, ModelSourceChoiceError, RetentionOrderError, TlsFilesError

if TYPE_CHECKING:
    from plinth.config.settings import Settings
    from plinth.services.review.writer import ReviewWriter

app = typer.Typer(
    rich_markup_mode=None,  # help is plain text: "[default: …]" must survive
    name="plinth",
    help="Run a trained model in production: contract, serving, prediction log, replay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_parse_ref = parse_ref


def _print_version(value: bool) -> None:
    if value:
        from plinth.version import __version__

        print(f"plinth {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run a trained model in production: contract, serving, prediction log, replay."""


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
            ".joblib/.pkl with --trust-pickle, or a remote model's spec .toml "
            "(docs/remote-models.md)."
        ),
    ] = None,
    *,
    name: Annotated[str, typer.Option(help="Model name; versions are numbered per name.")],
    train: Annotated[
        Path | None,
        typer.Option(help="Training table (.csv or .parquet), target included."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Name of the target column in --train.")
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option(
            help="Example inputs of a remote model (.jsonl, .csv or .parquet): the input "
            "contract is inferred from them. Only with a spec .toml."
        ),
    ] = None,
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
    """Register a trained model with its training data (or a remote model's spec with
    example inputs) as a new version."""
    from plinth.flavors.mlflow import read_mlflow_model
    from plinth.services.datasets import file_sha256, read_table

    tags = _parse_tags(tag or [])
    if (model is None) == (from_mlflow is None):
        raise ModelSourceChoiceError(
            "Give either a model file or --from-mlflow URI.",
        )
    if model is not None and model.suffix.lower() == ".toml":
        _register_remote(model, name=name, examples=examples, tags=tags, home=home)
        return
    if train is None or target is None or examples is not None:
        raise ModelSourceChoiceError(
            "A trained model needs --train and --target (--examples is for a remote spec).",
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


def _register_remote(
    spec_path: Path, *, name: str, examples: Path | None, tags: dict[str, str], home: Path | None
) -> None:
    if examples is None:
        raise ModelSourceChoiceError(
            "A remote model's spec needs --examples: a file of example inputs.",
        )
    from plinth.flavors.remote import RemoteSpec
    from plinth.services.datasets import file_sha256, read_examples

    spec = RemoteSpec.read(spec_path)
    frame = read_examples(examples)
    with open_runtime(home) as runtime:
        record = runtime.registry.register_remote(
            spec, name=name, examples=frame, tags=tags, examples_sha256=file_sha256(examples)
        )
    endpoint = spec.endpoint
    console.print(
        f"[green]registered[/] {record.name}:{record.version} "
        f"(remote, {record.task}, {endpoint['kind']} {endpoint['model'] or endpoint['base_url']}, "
        f"sha256 {record.sha256[:12]}…)",
        highlight=False,
    )
    contract = record.metadata["contract"]["fields"]
    console.print(
        f"  input contract from {len(frame)} examples: "
        + ", ".join(f"{f['name']} ({f['kind']})" for f in contract),
        highlight=False,
    )


@app.command()
@handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List registered models, with the versions that serve (champion, canary, shadows)."""
    with open_runtime(home) as runtime:
        summaries = runtime.store.list_models()
        live = {r.name: r.spec for r in runtime.deployments.live()}
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
                        **_roles(live.get(s.name), s.latest_version),
                    }
                    for s in summaries
                ],
                indent=2,
            )
        )
        return
    table = Table("name", "task", "champion", "canary", "shadows", "latest", "versions", "updated")
    for s in summaries:
        roles = _roles(live.get(s.name), s.latest_version)
        canary = roles["canary"]
        table.add_row(
            s.name,
            s.task,
            str(roles["champion"]),
            "" if canary is None else f"{canary['version']} @ {canary['weight']:g}%",
            ", ".join(map(str, roles["shadows"])),
            str(s.latest_version),
            str(s.versions),
            s.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table if summaries else "No models registered yet: see `plinth register --help`.")


def _roles(spec: Any, latest: int) -> dict[str, Any]:
    """Who serves: the live deployment's roles, or the newest version when never deployed."""
    if spec is None:
        return {"champion": latest, "canary": None, "shadows": []}
    canary = None if spec.canary is None else spec.canary.to_dict()
    return {"champion": spec.champion, "canary": canary, "shadows": list(spec.shadows)}


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
    from plinth.core.contract import FieldSpec
    from plinth.services.views import version_view

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
    remote = view.get("remote")
    if isinstance(remote, dict):
        endpoint, prompt = remote.get("endpoint", {}), remote.get("prompt", {})
        console.print(
            f"remote: {endpoint.get('kind')} {endpoint.get('base_url')} "
            f"model {endpoint.get('model')}, parameters "
            + json.dumps({k: v for k, v in remote.get("parameters", {}).items() if v is not None}),
            highlight=False,
        )
        for part in ("system", "template"):
            if prompt.get(part):
                console.print(f"prompt {part}:", highlight=False)
                console.print(escape(str(prompt[part])), highlight=False)
    source = "examples" if isinstance(remote, dict) else "train"
    console.print(
        f"lineage: {source} sha256 {str(lineage.get(source + '_sha256'))[:12]}…, "
        f"{lineage.get('example_rows' if source == 'examples' else 'train_rows')} rows, "
        f"commit {git.get('commit', 'n/a')}"
        f"{' (dirty)' if git.get('dirty') else ''}, "
        + ", ".join(f"{k} {v}" for k, v in (lineage.get("libraries") or {}).items()),
        highlight=False,
    )
    if view.get("tags"):
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in view["tags"].items()))


class LogLevel(enum.StrEnum):
    """``plinth serve --log-level``."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


def server_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with Plinth's own loggers (``plinth.*``) on the same
    handler and level, so the server's log is one stream at one level."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["plinth"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


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
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the Open Inference Protocol over gRPC (KServe v2 "
            "GRPCInferenceService) on this port, on --host; needs the grpc extra."
        ),
    ] = None,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Serve HTTPS with this PEM certificate (chain)."
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="The certificate's PEM private key."),
    ] = None,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            help="Least severe server log line shown, Plinth's and uvicorn's alike; no level "
            "ever logs a token or a request's input."
        ),
    ] = LogLevel.info,
    home: HomeOption = None,
) -> None:
    """Serve every registered model over HTTP, or HTTPS with --ssl-certfile/--ssl-keyfile
    (FastAPI on uvicorn), and gRPC if asked."""
    import uvicorn

    from plinth.config.settings import SETTINGS_HANDOFF
    from plinth.runtime import Runtime

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise TlsFilesError(
            "--ssl-certfile and --ssl-keyfile go together; one of them is missing.",
        )

    settings = open_settings(home)
    settings = settings.model_copy(update={"home": settings.home.resolve()})
    if review_below is not None:
        settings = settings.model_copy(update={"review_below": review_below})
    if grpc_port is not None:
        settings = settings.model_copy(update={"grpc_port": grpc_port, "grpc_host": host})
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
        f"{workers} worker{'s' if workers > 1 else ''})"
        + (f"; gRPC on {host}:{settings.grpc_port}" if settings.grpc_port else ""),
        highlight=False,
    )
    uvicorn.run(
        "plinth.http.app:create_app_from_handoff",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level.value,
        log_config=server_log_config(log_level.value),
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=settings.worker_start_timeout_s,
        ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
        ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
    )


class Engine(enum.StrEnum):
    """Where ``plinth predict`` scores."""

    local = "local"
    ray = "ray"


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
    engine: Annotated[
        Engine,
        typer.Option(help="Where to score: this process, or a Ray cluster (the `ray` extra)."),
    ] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to use with --engine ray, e.g. ray://head:10001 "
            "[default: a local Ray started for this run]."
        ),
    ] = None,
    block_rows: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rows per block with --engine ray: the unit a Ray worker "
            "scores, logs and, if it dies, scores again.",
        ),
    ] = 5_000,
    home: HomeOption = None,
) -> None:
    """Score a file through the same contract, log and review gate as online traffic.

    Rows under the model's review gate become review items, like unsure online answers;
    the output then has review_id and review_status columns. With --engine ray the rows
    are split over a Ray cluster's workers, each scoring its blocks the same way; they
    need the same database and artifacts folder.
    """
    from plinth.services.batch_scoring import score_frame, startup_objects_frozen
    from plinth.services.datasets import read_table, write_table

    model_name, version = _parse_ref(name)
    frame = read_table(input)
    settings = open_settings(home)
    if review_below is not None:  # as PLINTH_REVIEW_BELOW: plinth.toml's per-model gates win
        settings = settings.model_copy(update={"review_below": review_below})
    if engine is Engine.ray:
        _predict_on_ray(settings, model_name, version, frame, output, address, block_rows)
        return
    if address is not None:
        raise typer.BadParameter("--address needs --engine ray", param_hint="--address")
    with open_runtime(home, settings) as runtime, runtime.writers() as (writer, reviews):
        model = runtime.registry.load(runtime.store.get_version(model_name, version))
        model.review = runtime.policies.review(model.name)
        model.log_policy = runtime.policies.log(model.name)
        try:
            with (
                progress_bar(f"scoring {model.name}:{model.version}", len(frame)) as advance,
                startup_objects_frozen(),
            ):
                scored, summary = score_frame(
                    model, frame, writer, reviews=reviews, on_progress=advance
                )
        finally:
            model.flavor.close()
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


def _predict_on_ray(
    settings: Settings,
    name: str,
    version: int | None,
    frame: Any,
    output: Path,
    address: str | None,
    block_rows: int,
) -> None:
    try:
        from plinth.engines.ray_data import score_on_ray
    except ImportError as error:  # pragma: no cover - the extra is part of the dev install
        raise typer.BadParameter(
            f"--engine ray needs Ray: pip install 'plinth-ml[ray]' ({error})", param_hint="--engine"
        ) from error
    from plinth.services.datasets import write_table

    with open_runtime(None, settings) as runtime:  # the version exists, before any cluster
        shown = runtime.store.get_version(name, version)
    console.print(f"scoring {name}:{shown.version} on Ray ({address or 'local'})", highlight=False)
    scored, summary = score_on_ray(
        settings, name, shown.version, frame, address=address, block_rows=block_rows
    )
    write_table(scored, output)
    console.print(
        f"[green]scored[/] {summary.scored}/{summary.rows} rows with {name}:{shown.version} "
        f"on Ray → {output} ({summary.warned} with warnings, {summary.failed} failed, "
        f"{summary.reviewed} sent to review)",
        highlight=False,
    )
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
    from plinth.services.replay import replay as replay_prediction

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
                    "note": result.note,
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
        if result.note:
            console.print(f"[yellow]note:[/] {result.note}", highlight=False)
        if result.identical:
            console.print("[green]identical[/]")
        else:
            console.print("[bold red]differs:[/] " + "; ".join(result.differences), highlight=False)
    if not result.identical:
        raise typer.Exit(1)


@app.command("diff")
@handle_errors
def diff_versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    before: Annotated[int, typer.Argument(help="The older version.")],
    after: Annotated[int, typer.Argument(help="The newer version.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Show what changed between two versions: a remote model's prompt (as a diff),
    parameters, schema and call settings; a trained model's artifact and parameters."""
    from plinth.services.registry.compare import version_changes

    with open_runtime(home) as runtime:
        a = runtime.store.get_version(name, before)
        b = runtime.store.get_version(name, after)
    changes = version_changes(a, b)
    if as_json:
        print(json.dumps([c.to_dict() for c in changes], indent=2, default=str))
        return
    if not changes:
        console.print(f"{name}:{before} and {name}:{after} are the same", highlight=False)
        return
    for change in changes:
        if change.lines:
            console.print(f"[bold]{change.path}[/]", highlight=False)
            for line in change.lines:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                console.print(escape(line), style=style, highlight=False)
        else:
            console.print(
                f"[bold]{change.path}[/]: {escape(repr(change.before))} → "
                f"{escape(repr(change.after))}",
                highlight=False,
            )


@app.command("evaluate")
@handle_errors
def evaluate_version(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="The version to evaluate.")],
    dataset: Annotated[
        Path,
        typer.Option(help="Labelled examples (.jsonl, .csv or .parquet): inputs and a label."),
    ],
    against: Annotated[
        int | None, typer.Option(help="Another version to run on the same rows, side by side.")
    ] = None,
    label: Annotated[str, typer.Option(help="The column holding the right answer.")] = "label",
    scorer: Annotated[
        str | None,
        typer.Option(
            help="module:function(predicted, expected) -> score in [0, 1] [default: exact match]."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Rows in flight at once.", min=1)] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Run a version over labelled examples before rollout: schema validity, score
    (accuracy or your scorer), latency, tokens and cost; with --against, two side by side.
    Nothing is logged as a prediction."""
    from plinth.services.datasets import read_examples
    from plinth.services.evaluation import evaluate, load_scorer

    score_fn = load_scorer(scorer) if scorer is not None else None
    frame = read_examples(dataset)
    versions = [version] if against is None else [against, version]
    with open_runtime(home) as runtime:
        results = [
            evaluate(
                runtime.store,
                runtime.registry,
                name,
                v,
                frame,
                label=label,
                scorer=score_fn,
                concurrency=concurrency,
            )
            for v in versions
        ]
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return
    table = Table("", *(f"{name}:{r.version}" for r in results), title=f"{len(frame)} examples")

    def row(title: str, cell: Any) -> None:
        table.add_row(title, *(cell(r) for r in results))

    row("answered (valid)", lambda r: f"{r.answered}/{r.rows} ({r.valid_share:.1%})")
    row("score" if scorer else "accuracy", lambda r: "—" if r.score is None else f"{r.score:.4f}")
    row("errors", lambda r: ", ".join(f"{c} {n}" for c, n in r.errors.items()) or "—")
    row("latency p50 / p95 ms", lambda r: _latency(r.latency_ms))
    row("tokens (prompt / completion)", lambda r: f"{r.prompt_tokens} / {r.completion_tokens}")
    row("re-asks", lambda r: str(r.reasks))
    row("cost", lambda r: f"{r.cost:.6g}")
    console.print(table)


def _latency(latency: dict[str, float]) -> str:
    if not latency:
        return "—"
    return f"{latency['p50']:.1f} / {latency['p95']:.1f}"


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


rollout.register(app)  # deploy, promote, rollback, history
canary_cli.register(app)  # canary
feedback.register(app)  # feedback, performance, review, tokens
privacy.register(app)  # forget, audit
training.register(app)  # retrain, jobs, job show, approve, worker


@app.command("prometheus-rules")
@handle_errors
def prometheus_rules_command(home: HomeOption = None) -> None:
    """Print Plinth's alert rules (plinth.toml) as a Prometheus rules file (YAML).

    The traffic rules are PromQL over the request metrics; drift, control charts and
    performance fire from the gauges Plinth's own evaluator sets. Check it with
    `promtool check rules FILE`.
    """
    from plinth.services.monitoring.exports import prometheus_rules, to_yaml

    settings = open_settings(home)
    rules = prometheus_rules(settings.policies().monitoring, settings.review_sla_s)
    typer.echo(to_yaml(rules))


@app.command()
@handle_errors
def grafana(
    name: Annotated[
        str | None, typer.Argument(help="One model's dashboard [default: all, with a chooser].")
    ] = None,
) -> None:
    """Print a Grafana dashboard (JSON) of Plinth's Prometheus metrics: traffic, latency
    percentiles, errors, batch sizes, drift, performance, review queue, alerts firing."""
    from plinth.services.monitoring.exports import grafana_dashboard

    typer.echo(json.dumps(grafana_dashboard(name), indent=2))


contract_cli.register(app)  # contract show, contract set
monitor_cli.register(app)  # monitor


def main() -> None:
    """Console-script entry point."""
    app(prog_name="plinth")


if __name__ == "__main__":  # pragma: no cover
    main()
