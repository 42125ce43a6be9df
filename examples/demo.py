"""`make demo`: train and register both example models, serve them, send traffic.

Leaves the server running in the foreground so you can curl it; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples import breast_cancer, diamonds
from examples.common import register


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"plinth serve exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"plinth serve did not become ready at {url} within {timeout:.0f}s")


def send_traffic(url: str, workdir: Path) -> None:
    rng = random.Random(0)
    bc = pd.read_csv(workdir / "breast_cancer_holdout.csv").drop(columns=["target"])
    dm = pd.read_csv(workdir / "diamonds_holdout.csv").drop(columns=["price"])
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for _ in range(100):
            record = bc.iloc[rng.randrange(len(bc))].to_dict()
            client.post("/v1/models/breast-cancer/predict", json={"records": [record]})
        for _ in range(100):
            rows = dm.sample(n=rng.randint(1, 5), random_state=rng.randrange(1 << 30))
            records = rows.to_dict(orient="records")
            if rng.random() < 0.1:
                records[0].pop("depth")  # a missing nullable value: imputed and flagged
            client.post("/v1/models/diamonds/predict", json={"records": records})
        reply = client.post(
            "/v1/models/diamonds/predict",
            json={
                "records": [
                    {
                        "carat": 0.7,
                        "cut": "Ideal",
                        "color": "E",
                        "clarity": "VS1",
                        "depth": 61.5,
                        "table": 55.0,
                        "x": 5.7,
                        "y": 5.72,
                        "z": 3.52,
                    }
                ]
            },
        )
        print("\nA diamonds prediction:\n" + reply.text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workdir", type=Path, default=Path(".plinth/examples"))
    parser.add_argument("--no-wait", action="store_true", help="Stop the server after the traffic.")
    args = parser.parse_args()

    print("Training and registering the example models …")
    for module in (breast_cancer, diamonds):
        record = register(module.build(args.workdir), module.NAME, module.TARGET)
        metrics = record.metadata["metrics"]
        print(
            f"  {record.ref}  sha256 {record.sha256[:12]}…  "
            + ", ".join(f"{k}={v:.3g}" for k, v in metrics.items() if isinstance(v, float))
        )

    url = f"http://{args.host}:{args.port}"
    plinth_bin = Path(sys.executable).parent / "plinth"
    server = subprocess.Popen(
        [str(plinth_bin), "serve", "--host", args.host, "--port", str(args.port)],
        env=os.environ.copy(),
    )
    try:
        wait_ready(url, server)
        print(f"\nServing at {url}; sending example traffic …")
        send_traffic(url, args.workdir)
        print(
            f"""
Open the console: {url}/ui

Try it:
  curl -s {url}/v1/models
  curl -s -X POST {url}/v1/models/diamonds/predict -H 'content-type: application/json' \\
       -d '{{"records": [{{"carat": 1.1, "cut": "Premium", "color": "G", "clarity": "SI1",
                        "depth": 62.0, "table": 58, "x": 6.6, "y": 6.6, "z": 4.1}}]}}'
  curl -s -X POST {url}/v1/models/diamonds/predict -d '{{"records": [{{"carat": "heavy"}}]}}'
  .venv/bin/plinth replay <prediction_id from a reply>
  curl -s {url}/metrics | grep plinth_requests
Press Ctrl-C to stop the server."""
        )
        if args.no_wait:
            return
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
