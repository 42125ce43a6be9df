"""One full retraining loop on the diamonds example, timed step by step.

What the README's "The loop on diamonds" does, scripted: register diamonds as `make demo`
does (43,152 training rows), write its plinth.toml, start `plinth serve` with one-second
background intervals, send 400 diamonds in the new price regime with their labels, wait for the
performance alert's job to ship a canary, send canary traffic until the analysis promotes it.
Prints where the time went: from the labels to the job, the job's own steps (data, train,
gate, register, ship, from `plinth job show`), and from the canary to its promotion.

    .venv/bin/python bench/retrain_loop.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.common import register  # noqa: E402
from examples.diamonds import NAME, TARGET, build  # noqa: E402
from examples.diamonds_shift import send, shifted  # noqa: E402

POLICY = """
[models.diamonds.monitoring]
min_labels = 800
[models.diamonds.canary]
checks = ["error_rate", "fallback_rate"]
[models.diamonds.training]
entrypoint = "examples.diamonds:retrain"
canary_share = 50
canary_min_requests = 30
canary_min_duration = "1s"
[models.diamonds.training.data]
traffic_weight = 50
max_rows = 20000
[models.diamonds.training.triggers]
performance = true
cooldown = "10m"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="plinth-retrain-loop-"))
    home = work / "home"
    work.mkdir(parents=True, exist_ok=True)
    (work / "plinth.toml").write_text(POLICY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        PLINTH_HOME=str(home),
        PLINTH_POLICY_FILE=str(work / "plinth.toml"),
        PLINTH_ALERT_INTERVAL_S="1",
        PLINTH_CANARY_INTERVAL_S="1",
        PLINTH_PROFILE_INTERVAL_S="1",
        PLINTH_TRAINING_INTERVAL_S="1",
        PYTHONPATH=str(ROOT),
    )
    os.environ["PLINTH_HOME"] = str(home)
    t = time.monotonic()
    register(build(work / "examples"), NAME, TARGET)
    registered = time.monotonic() - t
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    log = open(work / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "plinth"), "serve", "--port", str(port)],
        env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        t0 = time.monotonic()
        send(url, shifted(1000, seed=1))
        t1 = time.monotonic()
        job = None
        while job is None:
            jobs = httpx.get(f"{url}/v1/jobs").json()["jobs"]
            job = next((j for j in jobs if j["state"] not in ("queued", "running")), None)
            queued = next((j for j in jobs), None)
            time.sleep(0.2)
        t2 = time.monotonic()
        more = shifted(400, seed=2)
        i = 0
        while job["outcome"] == "canary":
            send(url, more.iloc[i % 400 : i % 400 + 10], batch=1)
            i += 10
            live = httpx.get(f"{url}/v1/deployments/{NAME}").json()["spec"]
            if live["canary"] is None:
                break
        t3 = time.monotonic()
        final = httpx.get(f"{url}/v1/jobs/{job['id']}").json()
        created = final["created_at"]
        print(json.dumps({
            "register version 1 (43,152 rows)": round(registered, 1),
            "send + label 1000": round(t1 - t0, 1),
            "labels -> job finished": round(t2 - t1, 1),
            "job created": created, "job started": final["started_at"],
            "job finished": final["finished_at"], "queued job": queued and queued["id"],
            "job steps (s)": final["data"]["timings"],
            "job rows": final["data"]["sources"],
            "canary -> promoted": round(t3 - t2, 1),
            "champion now": live["champion"], "outcome": final["outcome"],
            "gate": {k: final["gate"]["relative"][k] for k in ("change", "upper", "improved")},
            "total (labels -> promoted)": round(t3 - t1, 1),
        }, indent=2))  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
