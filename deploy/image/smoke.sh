#!/usr/bin/env bash
# Run the built image the way Kubernetes will (read-only root filesystem, non-root, no
# capabilities, /tmp and PLINTH_HOME as the only writable paths) and check that it serves:
# /healthz, the image's HEALTHCHECK, a model registered inside the container, a prediction,
# /readyz and /metrics.
#
#   deploy/image/smoke.sh plinth:0.1.0                        # SQLite in a volume, 1 worker
#   DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/plinth_smoke WORKERS=2 \
#       deploy/image/smoke.sh plinth:0.1.0                    # PostgreSQL on this host
#
# PODMAN and PODMAN_RUN_FLAGS adapt it to the machine (`make image-smoke` passes them).
set -euo pipefail
image="${1:?usage: smoke.sh IMAGE}"
podman_cmd=(${PODMAN:-podman})
run_flags=(${PODMAN_RUN_FLAGS:-})
workers="${WORKERS:-1}"
name="plinth-smoke-$$"
volume="plinth-smoke-home-$$"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

cleanup() {
    "${podman_cmd[@]}" rm --force --time 15 "$name" >/dev/null 2>&1 || true
    "${podman_cmd[@]}" volume rm --force "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

common=(--name "$name" --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges
        -v "$volume:/var/lib/plinth" "${run_flags[@]}")
if [[ -n "${DATABASE_URL:-}" ]]; then
    # The database is on this host's loopback: share the host's network.
    "${podman_cmd[@]}" run -d "${common[@]}" --network host -e PLINTH_DATABASE_URL="$DATABASE_URL" \
        "$image" serve --host 127.0.0.1 --port "$port" --workers "$workers" >/dev/null
else
    "${podman_cmd[@]}" run -d "${common[@]}" -p "127.0.0.1:$port:8000" \
        "$image" serve --host 0.0.0.0 --port 8000 --workers "$workers" >/dev/null
fi
url="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && break
    sleep 1
done
echo "healthz:      $(curl -fsS "$url/healthz")"
if [[ -z "${DATABASE_URL:-}" ]]; then
    # The HEALTHCHECK dials port 8000 inside the container, which is where it listens here.
    "${podman_cmd[@]}" healthcheck run "$name" && echo "HEALTHCHECK:  healthy"
fi
"${podman_cmd[@]}" exec "$name" python3 -c '
import plinth
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=500).fit(X, y)
version = plinth.register(model, name="iris", train=X.assign(species=y), target="species")
print("registered:  ", version.name, version.version, version.sha256[:12])
'
reply="$(curl -fsS -X POST "$url/v1/models/iris/predict" -H 'content-type: application/json' \
    -d '{"records": [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}]}')"
echo "prediction:   $reply"
echo "readyz:       $(curl -fsS "$url/readyz")"
echo "metrics:      $(curl -fsS "$url/metrics" | grep -c '^plinth_') plinth_* samples," \
     "$(curl -fsS "$url/metrics" | grep '^plinth_requests_total' | head -1)"
echo "container:    uid $("${podman_cmd[@]}" exec "$name" id -u)," \
     "root fs read-only: $("${podman_cmd[@]}" inspect "$name" --format '{{.HostConfig.ReadonlyRootfs}}')"
echo "smoke test passed: $image"
