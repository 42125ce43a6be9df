"""The Helm chart: rendered by Helm's engine, checked against the Kubernetes schemas, and
held to what Plinth needs (probes, a read-only root, PostgreSQL, a shared PLINTH_HOME)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from typer.testing import CliRunner

from plinth.cli.main import app as cli
from plinth.config import Settings
from tests.deploy.rendering import (
    CHART,
    MINIMAL,
    POSTGRES_URL,
    REPO,
    Manifest,
    kinds,
    merged,
    one,
    render,
    supported_kubernetes_versions,
    validate,
)

EVERYTHING_ON: dict[str, Any] = {
    "workers": 3,
    "tokens": {"value": "admin:s3cret-token,predict:another-token"},
    "env": {"PLINTH_REQUEST_TIMEOUT_S": "10", "PLINTH_REVIEW_BELOW": 0.7},
    "plinthToml": '[models.iris]\nreview_below = 0.7\n\n[monitoring]\nwindow = "5m"\n',
    "autoscaling": {"enabled": True, "requestsPerSecond": {"enabled": True}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "imagePullSecrets": [{"name": "registry"}],
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
    "podAnnotations": {"team": "ml"},
    "service": {"annotations": {"example.com/lb": "internal"}},
    "serviceAccount": {"annotations": {"example.com/role": "plinth"}},
}
USER_MANAGED: dict[str, Any] = {
    "database": {"existingSecret": "plinth-db", "existingSecretKey": "url"},
    "tokens": {"existingSecret": "plinth-tokens"},
    "persistence": {"existingClaim": "models-nfs"},
    "podDisruptionBudget": {"enabled": False},
    "topologySpread": {"enabled": False},
    "preStopSleepSeconds": 0,
}
ONE_POD: dict[str, Any] = {
    "replicaCount": 1,
    "persistence": {"enabled": False},
    "migration": {"enabled": False},
}
VALUE_SETS = {
    "minimal": MINIMAL,
    "everything-on": merged(MINIMAL, EVERYTHING_ON),
    "user-managed-secrets-and-claim": USER_MANAGED,
    "one-pod": merged(MINIMAL, ONE_POD),
}


def _pod_specs(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """The pod spec of every Deployment, Job and CronJob."""
    specs = []
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            specs.append(m["spec"]["template"]["spec"])
        elif m["kind"] == "CronJob":
            specs.append(m["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


def _container(manifests: list[Manifest]) -> dict[str, Any]:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


# -- schemas ------------------------------------------------------------------------------


def test_helm_lint_finds_no_warning_and_no_error() -> None:
    report = helm_python.lint(CHART, MINIMAL, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kubernetes", supported_kubernetes_versions())
@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_manifest_matches_its_kubernetes_schema(name: str, kubernetes: str) -> None:
    manifests = render(VALUE_SETS[name])
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= kinds(manifests)
    for manifest in manifests:
        validate(manifest, kubernetes)


def test_the_schema_check_is_strict_enough_to_catch_a_misspelt_field() -> None:
    deployment = one(render(MINIMAL), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(Exception, match="readinesProbe"):
        validate(deployment, supported_kubernetes_versions()[1])
    monitor = one(render(merged(MINIMAL, EVERYTHING_ON)), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(Exception, match="intervall"):
        validate(monitor, supported_kubernetes_versions()[1])


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"workers": 0}, r"/workers.*minimum"),
        ({"env": {"DATABASE_URL": "x"}}, r"DATABASE_URL.*does not match"),
        ({"env": {"PLINTH_DATABASE_URL": "x"}}, r"invalid propertyName 'PLINTH_DATABASE_URL'"),
        ({"env": {"PLINTH_MONITORING_FILE": "x"}}, r"invalid propertyName"),
        ({"replicas": 3}, r"additional properties 'replicas' not allowed"),
        ({"service": {"type": "ExternalName"}}, r"/service/type"),
        ({"retention": {"olderThan": "30 days"}}, r"/retention/olderThan"),
    ],
)
def test_the_values_schema_rejects_values_that_are_not_plinths(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=problem):
        render(merged(MINIMAL, values))


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({}, r"set database\.url .* or database\.existingSecret"),
        ({"database": {"url": "sqlite:////var/lib/plinth/plinth.db"}}, r"must be a PostgreSQL"),
        (merged(MINIMAL, {"persistence": {"enabled": False}}), r"needs persistence\.enabled"),
        (
            merged(MINIMAL, {"persistence": {"accessModes": ["ReadWriteOnce"]}}),
            r"accessModes to include ReadWriteMany",
        ),
        (
            merged(MINIMAL, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}),
            r"minReplicas is above",
        ),
    ],
)
def test_values_that_cannot_work_fail_at_install_with_the_reason(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=problem):
        render(values)


def test_one_pod_may_keep_artifacts_in_the_pod_and_a_user_claim_may_be_of_any_mode() -> None:
    home = next(
        v
        for v in one(render(VALUE_SETS["one-pod"]), "Deployment")["spec"]["template"]["spec"][
            "volumes"
        ]
        if v["name"] == "home"
    )
    assert home == {"name": "home", "emptyDir": {}}
    manifests = render(USER_MANAGED)
    assert "PersistentVolumeClaim" not in kinds(manifests)
    volumes = one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "models-nfs"}} in volumes


# -- what Plinth needs from the pods --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    """The rules of Kubernetes' "restricted" profile, plus a read-only root filesystem."""
    manifests = render(VALUE_SETS[name])
    specs = _pod_specs(manifests)
    assert specs
    for spec in specs:
        pod = spec.get("securityContext", {})
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert spec["automountServiceAccountToken"] is False
        for volume in spec["volumes"]:
            assert set(volume) - {"name"} <= {
                "emptyDir",
                "configMap",
                "secret",
                "persistentVolumeClaim",
            }
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is True
            assert ctx.get("runAsUser", pod.get("runAsUser")) not in (0, None)
            assert ctx["allowPrivilegeEscalation"] is False
            assert "ALL" in ctx["capabilities"]["drop"]
            assert set(ctx["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
            seccomp = ctx.get("seccompProfile", pod.get("seccompProfile", {}))
            assert seccomp.get("type") in ("RuntimeDefault", "Localhost")
            assert ctx["readOnlyRootFilesystem"] is True
            assert "privileged" not in ctx or ctx["privileged"] is False


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_path_plinth_writes_is_a_volume_and_home_is_where_plinth_looks(name: str) -> None:
    for spec in _pod_specs(render(VALUE_SETS[name])):
        container = spec["containers"][0]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        env = _env(container)
        assert env["PLINTH_HOME"] in mounts and not mounts[env["PLINTH_HOME"]].get("readOnly")
        assert "/tmp" in mounts and not mounts["/tmp"].get("readOnly")
        config_dir = env["PLINTH_POLICY_FILE"].rsplit("/", 1)[0]
        assert mounts[config_dir]["readOnly"] is True


def test_probes_ask_healthz_for_liveness_and_readyz_for_readiness_on_the_served_port() -> None:
    manifests = render(MINIMAL)
    container = _container(manifests)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # Five minutes for models to load and warm before liveness may restart the pod.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 300
    (port,) = container["ports"]
    args = container["args"]
    assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
    assert args[args.index("--port") + 1] == "8000" and args[args.index("--host") + 1] == "0.0.0.0"
    service = one(manifests, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_containers_run_real_plinth_commands(tmp_path: Path) -> None:
    manifests = render(merged(MINIMAL, {"workers": 3, "retention": {"olderThan": "7d"}}))
    args = _container(manifests)["args"]
    assert args[0] == "serve" and args[args.index("--workers") + 1] == "3"
    serve_help = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    assert serve_help.exit_code == 0
    for option in (a for a in args if a.startswith("--")):
        assert option in serve_help.output
    # The migration and retention commands run for real, here on SQLite.
    migrate = one(manifests, "Job")["spec"]["template"]["spec"]["containers"][0]["args"]
    prune = one(manifests, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    prune_args = prune["containers"][0]["args"]
    assert migrate == ["models"] and prune_args[:3] == ["prune", "--older-than", "7d"]
    migrated = CliRunner().invoke(cli, [*migrate, "--home", str(tmp_path)])
    assert migrated.exit_code == 0, migrated.output
    assert (tmp_path / "plinth.db").is_file()
    pruned = CliRunner().invoke(cli, [*prune_args, "--home", str(tmp_path)])
    assert pruned.exit_code == 0, pruned.output
    assert "deleted 0 predictions" in pruned.output


def test_the_migration_job_runs_before_an_upgrade_only_with_the_servers_environment() -> None:
    manifests = render(merged(MINIMAL, EVERYTHING_ON))
    job = one(manifests, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    assert _env(job_container) == _env(_container(manifests))
    assert job_container["image"] == _container(manifests)["image"]
    assert "Job" not in kinds(render(merged(MINIMAL, {"migration": {"enabled": False}})))


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_environment_variable_is_a_plinth_setting(name: str) -> None:
    for spec in _pod_specs(render(VALUE_SETS[name])):
        for variable in _env(spec["containers"][0]):
            assert variable.startswith("PLINTH_")
            assert variable.removeprefix("PLINTH_").lower() in Settings.model_fields, variable


def test_the_database_url_and_tokens_come_from_the_charts_secret() -> None:
    manifests = render(merged(MINIMAL, EVERYTHING_ON))
    secret = one(manifests, "Secret")
    env = _env(_container(manifests))
    assert env["PLINTH_DATABASE_URL"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "database-url"}
    }
    assert env["PLINTH_TOKENS"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "tokens"}
    }
    assert secret["stringData"] == {
        "database-url": POSTGRES_URL,
        "tokens": EVERYTHING_ON["tokens"]["value"],
    }
    # Extra settings are strings, as the environment holds them.
    assert env["PLINTH_REVIEW_BELOW"] == "0.7" and env["PLINTH_REQUEST_TIMEOUT_S"] == "10"
    # No tokens configured: no PLINTH_TOKENS at all (auth stays with `plinth tokens`).
    assert "PLINTH_TOKENS" not in _env(_container(render(MINIMAL)))


def test_user_managed_secrets_are_referenced_and_the_chart_makes_none() -> None:
    manifests = render(USER_MANAGED)
    assert "Secret" not in kinds(manifests)
    env = _env(_container(manifests))
    assert env["PLINTH_DATABASE_URL"] == {"secretKeyRef": {"name": "plinth-db", "key": "url"}}
    assert env["PLINTH_TOKENS"] == {"secretKeyRef": {"name": "plinth-tokens", "key": "tokens"}}


def test_plinth_toml_reaches_the_pods_verbatim_and_a_change_rolls_them(tmp_path: Path) -> None:
    values = merged(MINIMAL, EVERYTHING_ON)
    manifests = render(values)
    text = one(manifests, "ConfigMap")["data"]["plinth.toml"]
    assert text == values["plinthToml"]
    # What the pods will read, read by Plinth's own policy reader.
    (tmp_path / "plinth.toml").write_text(text)
    policies = Settings(policy_file=tmp_path / "plinth.toml").policies()
    assert policies.review_models["iris"].threshold == 0.7
    before = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    changed = merged(values, {"plinthToml": "[models.iris]\nreview_below = 0.6\n"})
    after = one(render(changed), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/config"] != before["checksum/config"]
    assert after["checksum/secret"] == before["checksum/secret"]
    moved = merged(values, {"database": {"url": POSTGRES_URL.replace("5432", "6432")}})
    after = one(render(moved), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/secret"] != before["checksum/secret"]


# -- scaling and monitoring -----------------------------------------------------------------


def test_replicas_are_fixed_or_owned_by_the_autoscaler_never_both() -> None:
    fixed = render(merged(MINIMAL, {"replicaCount": 4}))
    assert one(fixed, "Deployment")["spec"]["replicas"] == 4
    assert "HorizontalPodAutoscaler" not in kinds(fixed)
    scaled = render(merged(MINIMAL, EVERYTHING_ON))
    deployment = one(scaled, "Deployment")
    assert "replicas" not in deployment["spec"]
    hpa = one(scaled, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "plinth_requests_per_second"
    # CPU utilisation is measured against requests: without one the HPA cannot work.
    assert _container(scaled)["resources"]["requests"]["cpu"]


def test_the_service_pdb_and_servicemonitor_select_exactly_the_plinth_pods() -> None:
    manifests = render(merged(MINIMAL, EVERYTHING_ON))
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(manifests, "Service")
    monitor = one(manifests, "ServiceMonitor")
    pdb = one(manifests, "PodDisruptionBudget")
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pdb["spec"]["maxUnavailable"] == 1
    # The Job's pods must not be taken for servers.
    job_labels = one(manifests, "Job")["spec"]["template"]["metadata"]["labels"]
    assert job_labels["app.kubernetes.io/component"] == "migrate"


def test_the_plain_manifests_are_the_chart_rendered_today() -> None:
    spec = importlib.util.spec_from_file_location("render", REPO / "deploy" / "k8s" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPO / "deploy" / "k8s" / "plinth.yaml").read_text(encoding="utf-8")
    assert committed == module.plain_manifests(), "run deploy/k8s/render.py"


@pytest.mark.parametrize("kubernetes", supported_kubernetes_versions())
def test_the_plain_manifests_match_the_kubernetes_schemas(kubernetes: str) -> None:
    text = (REPO / "deploy" / "k8s" / "plinth.yaml").read_text(encoding="utf-8")
    manifests = [doc for doc in yaml.safe_load_all(text) if doc]
    assert kinds(manifests) >= {"Deployment", "Service", "PersistentVolumeClaim"}
    assert "Job" not in kinds(manifests)  # a hook means nothing to kubectl
    for manifest in manifests:
        validate(manifest, kubernetes)
