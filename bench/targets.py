"""The servers under test: how to set each one up, start it, know it is ready, and call it.

Each target turns a port and the shared work directory into a `Launch`. Peers run from their
own environments (bench/.venvs/<peer>); Plinth and the bare endpoint run from the project venv.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procs

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MAIN_BIN = ROOT / ".venv" / "bin"


class SetupError(RuntimeError):
    """A target could not be prepared (missing CLI, registration failed); it is skipped."""


@dataclass
class Context:
    """What every target may use: the work dir, the workload and the per-target model file."""

    work_dir: Path
    feature_names: list[str]
    rows: list[list[float]]
    model_path: Path
    bin_dir: Path  # where this target's executables live (its venv's bin)
    state: dict[str, Any] = field(default_factory=dict)  # per-target, kept across rounds


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ready_urls: list[str]
    predict_url: str
    body: dict[str, Any]
    startup_timeout_s: float = 90.0
    # A body that is not JSON (the v2 binary tensor extension), and headers it needs.
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    key: str  # the name used with --servers
    label: str
    env_name: str | None  # peer venv under bench/.venvs, or None for the project venv
    prepare: Callable[[Context, int], Launch]
    note: str = ""
    is_plinth: bool = False


def _base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "VIRTUAL_ENV"))}
    # One thread per BLAS/OpenMP pool: the server owns exactly one core.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _records_body(ctx: Context) -> dict[str, Any]:
    return {"records": [dict(zip(ctx.feature_names, ctx.rows[0], strict=True))]}


def _url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


def prepare_bare(ctx: Context, port: int) -> Launch:
    script = BENCH_DIR / "servers" / "bare_fastapi.py"
    argv = [str(ctx.bin_dir / "python"), str(script), "--model", str(ctx.model_path)]
    return Launch(
        argv=[*argv, "--host", "127.0.0.1", "--port", str(port)],
        env=_base_env(),
        cwd=ctx.work_dir,
        ready_urls=[_url(port, "/readyz")],
        predict_url=_url(port, "/predict"),
        body=_records_body(ctx),
    )


def prepare_floor(ctx: Context, port: int) -> Launch:
    script = BENCH_DIR / "servers" / "floor_asgi.py"
    return Launch(
        argv=[str(ctx.bin_dir / "python"), str(script), "--host", "127.0.0.1", "--port", str(port)],
        env=_base_env(),
        cwd=ctx.work_dir,
        ready_urls=[_url(port, "/readyz")],
        predict_url=_url(port, "/predict"),
        body=_records_body(ctx),
    )


def prepare_mlserver(ctx: Context, port: int) -> Launch:
    repo = ctx.work_dir / f"mlserver-{port}"
    (repo / "bc").mkdir(parents=True, exist_ok=True)
    settings = {
        # debug=false turns uvicorn's access log off, as for every server here; metrics stay
        # on (its default). parallel_workers=0 runs the model in the server process, which
        # is how it measured best on one core.
        "debug": False,
        "parallel_workers": 0,
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": procs.free_port(),
        "metrics_port": procs.free_port(),
    }
    model_settings = {
        "name": "bc",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(ctx.model_path), "version": "v1"},
        "max_batch_size": 64,
        "max_batch_time": 0.005,
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    (repo / "bc" / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    row = ctx.rows[0]
    body = {
        "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}],
        "outputs": [{"name": "predict_proba"}],
    }
    return Launch(
        argv=[str(ctx.bin_dir / "mlserver"), "start", str(repo)],
        env=_base_env(),
        cwd=repo,
        ready_urls=[_url(port, "/v2/health/ready"), _url(port, "/v2/models/bc/ready")],
        predict_url=_url(port, "/v2/models/bc/infer"),
        body=body,
    )


def prepare_bentoml(ctx: Context, port: int) -> Launch:
    env = _base_env(
        BENCH_MODEL=str(ctx.model_path),
        BENTOML_HOME=str(ctx.work_dir / "bentoml-home"),
        BENTOML_DO_NOT_TRACK="True",
    )
    argv = [str(ctx.bin_dir / "bentoml"), "serve", "bentoml_service:Forest"]
    return Launch(
        argv=[*argv, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=BENCH_DIR / "servers",
        ready_urls=[_url(port, "/readyz")],
        predict_url=_url(port, "/predict"),
        body={"input": [ctx.rows[0]]},
    )


def plinth_log_setting_known() -> bool | None:
    """Whether Plinth's Settings has a log_predictions field (None if Plinth will not import)."""
    probe = (
        "from plinth.config.settings import Settings; "
        "print('log_predictions' in Settings.model_fields)"
    )
    done = subprocess.run(
        [str(MAIN_BIN / "python"), "-c", probe], capture_output=True, text=True, check=False
    )
    return None if done.returncode != 0 else done.stdout.strip() == "True"


def _prepare_plinth(
    ctx: Context,
    port: int,
    *,
    home_name: str,
    extra_env: dict[str, str],
    model_path: Path | None = None,
) -> Launch:
    plinth = ctx.bin_dir / "plinth"
    if not plinth.exists():
        raise SetupError(f"{plinth} does not exist (is the project installed?)")
    home = ctx.work_dir / home_name
    env = _base_env(PLINTH_HOME=str(home), **extra_env)
    if not ctx.state.get("registered"):
        home.mkdir(parents=True, exist_ok=True)
        model = model_path or ctx.model_path
        argv = [str(plinth), "register", str(model), "--name", "bc"]
        argv += ["--train", str(ctx.work_dir / "train.csv"), "--target", "target"]
        if model.suffix in (".joblib", ".pkl"):
            argv.append("--trust-pickle")
        done = subprocess.run(
            argv,
            env=env,
            cwd=ctx.work_dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        (ctx.work_dir / f"{home_name}-register.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise SetupError(f"`plinth register` exited {done.returncode}:\n{tail}")
        ctx.state["registered"] = True
    return Launch(
        argv=[str(plinth), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ctx.work_dir,
        ready_urls=[_url(port, "/readyz")],
        predict_url=_url(port, "/v1/models/bc/predict"),
        body=_records_body(ctx),
    )


def prepare_plinth(ctx: Context, port: int) -> Launch:
    return _prepare_plinth(ctx, port, home_name="plinth-home", extra_env={})


def _v2_header(ctx: Context, *, binary: bool) -> dict[str, Any]:
    row = ctx.rows[0]
    tensor: dict[str, Any] = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64"}
    if binary:
        tensor["parameters"] = {"binary_data_size": 8 * len(row)}
    else:
        tensor["data"] = row
    output = {"name": "predict_proba", "parameters": {"binary_data": binary}}
    return {"inputs": [tensor], "outputs": [output]}


def prepare_plinth_v2(ctx: Context, port: int) -> Launch:
    """The same request as MLServer's row: one [1, F] FP64 tensor, JSON in and out."""
    launch = _prepare_plinth(ctx, port, home_name="plinth-home-v2", extra_env={})
    launch.predict_url = _url(port, "/v2/models/bc/infer")
    launch.body = _v2_header(ctx, binary=False)
    return launch


def prepare_plinth_v2_binary(ctx: Context, port: int) -> Launch:
    """Triton's binary tensor extension: JSON header, then the row's 8-byte floats."""
    import struct

    launch = _prepare_plinth(ctx, port, home_name="plinth-home-v2-binary", extra_env={})
    head = json.dumps(_v2_header(ctx, binary=True)).encode()
    launch.predict_url = _url(port, "/v2/models/bc/infer")
    launch.body = {}
    launch.raw_body = head + struct.pack(f"<{len(ctx.rows[0])}d", *ctx.rows[0])
    launch.headers = {"Inference-Header-Content-Length": str(len(head))}
    return launch


def convert_to_onnx(model_path: Path, out: Path) -> Path:
    """The reference forest as ONNX (skl2onnx, ZipMap off: probabilities as one
    ``[N, classes]`` tensor, as docs/flavors.md recommends), from the same joblib file."""
    import joblib
    import numpy as np
    from skl2onnx import to_onnx

    model = joblib.load(model_path)
    sample = np.zeros((1, int(model.n_features_in_)), dtype=np.float32)
    proto = to_onnx(model, sample, options={id(model): {"zipmap": False}})
    out.write_bytes(proto.SerializeToString())
    return out


def prepare_plinth_onnx(ctx: Context, port: int) -> Launch:
    """The reference forest converted with skl2onnx, registered as an ONNX model (the onnx
    flavor, ONNX Runtime), served on /v1 with Plinth's body: the flavor's served latency."""
    onnx_path = ctx.work_dir / "model.onnx"
    if not onnx_path.exists():
        try:
            convert_to_onnx(ctx.model_path, onnx_path)
        except ImportError as exc:
            raise SetupError(f"needs the onnx extra (skl2onnx): {exc}") from exc
    return _prepare_plinth(
        ctx, port, home_name="plinth-home-onnx", extra_env={}, model_path=onnx_path
    )


def _start_otlp_receiver(ctx: Context) -> str:
    """The tests' OTLP/HTTP receiver (decodes every export with opentelemetry-proto), on the
    load generator's core, for as long as the harness runs; its endpoint."""
    receiver = ctx.state.get("otlp_receiver")
    if receiver is None or receiver[0].poll() is not None:
        port = procs.free_port()
        argv = [str(MAIN_BIN / "python"), "-m", "tests.e2e.otlp_receiver", str(port), os.devnull]
        process = subprocess.Popen(["taskset", "-c", "0", *argv], cwd=ROOT)
        atexit.register(process.terminate)
        receiver = ctx.state["otlp_receiver"] = (process, f"http://127.0.0.1:{port}")
    return str(receiver[1])


def prepare_plinth_otel(ctx: Context, port: int) -> Launch:
    """Everything on, and OpenTelemetry tracing exporting every span over OTLP/HTTP."""
    extra = {
        "PLINTH_TRACING": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": _start_otlp_receiver(ctx),
        "OTEL_SERVICE_NAME": "plinth-bench",
    }
    return _prepare_plinth(ctx, port, home_name="plinth-home-otel", extra_env=extra)


def prepare_plinth_nolog(ctx: Context, port: int) -> Launch:
    # A separate home, so this variant's database starts as empty as the other's did.
    extra = {"PLINTH_LOG_PREDICTIONS": "false"}
    return _prepare_plinth(ctx, port, home_name="plinth-home-nolog", extra_env=extra)


TARGETS: dict[str, Target] = {
    t.key: t
    for t in [
        Target("plinth", "Plinth (everything on)", None, prepare_plinth, is_plinth=True),
        Target(
            "plinth-nolog",
            "Plinth, logging off",
            None,
            prepare_plinth_nolog,
            note="PLINTH_LOG_PREDICTIONS=false",
            is_plinth=True,
        ),
        Target(
            "plinth-onnx",
            "Plinth, the forest as ONNX",
            None,
            prepare_plinth_onnx,
            note="the same forest converted with skl2onnx (ZipMap off), registered as an .onnx "
            "file: the onnx flavor on ONNX Runtime, everything on",
            is_plinth=True,
        ),
        Target(
            "plinth-v2",
            "Plinth, Open Inference Protocol /v2, JSON",
            None,
            prepare_plinth_v2,
            note="one [1, F] FP64 tensor in, predict_proba out (MLServer's body), everything on",
            is_plinth=True,
        ),
        Target(
            "plinth-v2-binary",
            "Plinth, /v2 binary tensors",
            None,
            prepare_plinth_v2_binary,
            note="Triton's binary tensor data extension in and out, everything on",
            is_plinth=True,
        ),
        Target(
            "plinth-otel",
            "Plinth, OpenTelemetry tracing on",
            None,
            prepare_plinth_otel,
            note="PLINTH_TRACING=true: every span exported over OTLP/HTTP to a receiver "
            "process on the load generator's core",
            is_plinth=True,
        ),
        Target("bare", "bare FastAPI + uvicorn", None, prepare_bare, note="no batching"),
        Target(
            "floor",
            "floor: plain ASGI, parse and answer",
            None,
            prepare_floor,
            note="orjson parse of the same body, fixed reply, no model: the per-request floor",
        ),
        Target(
            "mlserver",
            "MLServer 1.7.1, adaptive batching",
            "mlserver",
            prepare_mlserver,
            note="max_batch_size 64, max_batch_time 5 ms, in-process",
        ),
        Target(
            "bentoml",
            "BentoML 1.4.39, adaptive batching",
            "bentoml",
            prepare_bentoml,
            note="max_batch_size 64, max_latency_ms 10000",
        ),
    ]
}


def baseline_target(ref: str) -> Target:
    """Plinth at another git commit (``--baseline REF``), built in its own worktree and venv
    under bench/.venvs, measured beside the current tree in the same run (A/B of a change)."""

    def prepare(ctx: Context, port: int) -> Launch:
        return _prepare_plinth(ctx, port, home_name=f"plinth-home-{ref}", extra_env={})

    return Target(
        f"plinth@{ref}",
        f"Plinth at {ref} (everything on)",
        f"plinth@{ref}",
        prepare,
        note="baseline commit, same workload and settings",
        is_plinth=True,
    )
