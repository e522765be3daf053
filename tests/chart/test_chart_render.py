"""The chart, rendered with the real Helm engine in every mode and with every ci/*.yaml values
file: Helm's lint finds no error, every object validates against the Kubernetes OpenAPI
schemas, the pods are hardened, sharded jobs are Indexed, and values.schema.json (whose
config: is ``ocync schema``) refuses a misspelt config key before anything renders."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.chart.helmchart import (
    CHART,
    CI_VALUES,
    GUIDE_VALUES,
    KUBE_VERSION,
    by_kind,
    load_values,
    notes,
    pod_spec,
    render,
)

GUIDE = load_values(GUIDE_VALUES)

MODES = [
    pytest.param({**GUIDE}, "CronJob", id="cronjob"),
    pytest.param({**GUIDE, "mode": "job"}, "Job", id="job"),
    pytest.param({**GUIDE, "mode": "watch"}, "Deployment", id="watch"),
    pytest.param({**GUIDE, "mode": "job", "shards": 4}, "Job", id="job-shards"),
    pytest.param({**GUIDE, "shards": 2, "cache": {"persistence": {"enabled": True}}}, "CronJob", id="cronjob-shards-pvc"),
]


def validate_all(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["apiVersion"].startswith(("external-secrets.io/", "secrets-store.csi.x-k8s.io/")):
            # CRDs: not in the Kubernetes OpenAPI schemas; their shape is checked below
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(("values", "kind"), MODES)
def test_every_mode_renders_valid_kubernetes_objects(values: dict[str, Any], kind: str) -> None:
    objects = render(values)
    kinds = by_kind(objects)
    assert kind in kinds
    validate_all(objects)
    spec = pod_spec(objects)
    container = spec["containers"][0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    drain = float(container["args"][container["args"].index("--drain-timeout") + 1])
    assert spec["terminationGracePeriodSeconds"] > drain
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"]["readOnly"] is True
    assert container["args"][1:3] == ["-c", "/config/ocync.yaml"]
    config = yaml.safe_load(kinds["ConfigMap"]["data"]["ocync.yaml"])
    assert config["global"]["cache_dir"] == mounts["cache"]["mountPath"] == "/cache"


@pytest.mark.parametrize("path", CI_VALUES, ids=[p.stem for p in CI_VALUES])
def test_ci_values_files_render_and_validate(path: Path) -> None:
    values = load_values(path)
    objects = render(values)
    validate_all(objects)
    assert by_kind(objects)["ConfigMap"]


@pytest.mark.parametrize("path", [None, *CI_VALUES], ids=["defaults", *[p.stem for p in CI_VALUES]])
def test_helm_lint_reports_no_errors(path: Path | None) -> None:
    values = load_values(path) if path else None
    report = helm.lint(CHART, values, strict=False, kube_version=f"v{KUBE_VERSION}")
    errors = [m for m in report["messages"] if m["severity"] >= 3]
    assert report["total_charts_linted"] == 1
    assert errors == [] and report["errors"] == [], report


def test_sharded_job_is_indexed_with_shard_and_rate_share_args() -> None:
    objects = render({**GUIDE, "mode": "job", "shards": 3})
    job = by_kind(objects)["Job"]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 3, 3)
    container = job["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)/3"
    assert float(args[args.index("--rate-share") + 1]) == pytest.approx(1 / 3, abs=1e-6)
    index_env = [e for e in container["env"] if e["name"] == "JOB_COMPLETION_INDEX"]
    assert index_env[0]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )


def test_cronjob_defaults() -> None:
    cron = by_kind(render(GUIDE))["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["startingDeadlineSeconds"] == 300
    assert (cron["successfulJobsHistoryLimit"], cron["failedJobsHistoryLimit"]) == (3, 3)
    assert "completionMode" not in cron["jobTemplate"]["spec"]  # one shard: a plain Job


def test_watch_mode_probes_service_and_flags() -> None:
    objects = render({**GUIDE, "mode": "watch", "watch": {"interval": 120}})
    kinds = by_kind(objects)
    deployment = kinds["Deployment"]["spec"]
    assert deployment["replicas"] == 1
    container = deployment["template"]["spec"]["containers"][0]
    assert container["args"][:8] == [
        "watch", "-c", "/config/ocync.yaml", "--health-port", "8080", "--health-bind", "0.0.0.0", "--interval",
    ]
    assert container["args"][8] == "120"
    assert container["args"][container["args"].index("--log-format") + 1] == "json"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert "--shard" not in container["args"]
    cron = render({**GUIDE, "mode": "watch", "watch": {"schedule": "*/5 * * * *"}})
    args = pod_spec(cron)["containers"][0]["args"]
    assert args[args.index("--schedule") + 1] == "*/5 * * * *" and "--interval" not in args


def test_secret_options_render_their_objects() -> None:
    objects = render(load_values(CHART / "ci" / "secrets-values.yaml"))
    kinds = by_kind(objects)
    external = kinds["ExternalSecret"]["spec"]
    assert external["target"]["name"] == "ocync-credentials"
    assert external["data"][0]["secretKey"] == "GITHUB_TOKEN"
    spc = kinds["SecretProviderClass"]["spec"]
    assert spc["secretObjects"][0]["secretName"] == "ocync-credentials"
    spec = pod_spec(objects)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["secrets-store"]["csi"]["driver"] == "secrets-store.csi.k8s.io"
    assert volumes["cache"]["persistentVolumeClaim"]["claimName"] == "ocync-cache"
    assert "PersistentVolumeClaim" not in kinds  # existingClaim: the chart makes none
    args = spec["containers"][0]["args"]
    assert args[-2:] == ["--timeout", "30"]
    assert args[args.index("--rate-share") + 1] == "0.4"


def test_service_account_annotations_for_workload_identity() -> None:
    annotations = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ocync"}
    kinds = by_kind(render({**GUIDE, "serviceAccount": {"annotations": annotations}}))
    assert kinds["ServiceAccount"]["metadata"]["annotations"] == annotations


def test_guide_values_render_the_guides_cronjob(tmp_path: Path) -> None:
    kinds = by_kind(render(GUIDE))
    container = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "ocync-credentials"}}]
    config = tmp_path / "ocync.yaml"
    config.write_text(kinds["ConfigMap"]["data"]["ocync.yaml"])
    done = subprocess.run(
        [sys.executable, "-m", "ocync", "validate", str(config)],
        capture_output=True, text=True, env={"GITHUB_TOKEN": "ghp_test", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ocync-credentials" in notes(GUIDE)


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        pytest.param(("config", "mappings", 0, "tgas"), {"glob": "*"}, "/config/mappings/0", id="mapping-key"),
        pytest.param(("config", "registries", "ghcr", "auth"), "x", "/config/registries/ghcr", id="registry-key"),
        pytest.param(("config", "defaults", "target"), "ghcr", "/config/defaults", id="defaults-key"),
        pytest.param(("mdoe",), "job", "mdoe", id="top-level-key"),
        pytest.param(("mode",), "deployment", "/mode", id="bad-mode"),
    ],
)
def test_values_schema_refuses_a_misspelt_key(path: tuple[Any, ...], value: Any, where: str) -> None:
    values = copy.deepcopy(GUIDE)
    node: Any = values
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(helm.HelmValuesError, match="schema") as info:
        render(values)
    assert where in str(info.value)


def test_values_schema_is_generated_from_ocync_schema() -> None:
    sys.path.insert(0, str(CHART.parent))
    try:
        import values_schema  # charts/values_schema.py
    finally:
        sys.path.remove(str(CHART.parent))
    committed = (CHART / "values.schema.json").read_text()
    assert committed == values_schema.render(), "run: python charts/values_schema.py"
