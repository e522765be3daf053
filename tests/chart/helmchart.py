"""The chart rendered by the real Helm engine (helm-python-sdk binds Helm v4's Go library), and
the rendered objects as dictionaries, for the chart tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "ocync"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
GUIDE_VALUES = CHART / "ci" / "guide-values.yaml"
# Every rendered object validates against this Kubernetes release's OpenAPI schemas.
KUBE_VERSION = "1.37.0"


def render(values: dict[str, Any], *, name: str = "ocync", namespace: str = "mirror") -> list[dict[str, Any]]:
    """The objects ``helm template`` would print (NOTES.txt left out), in template order."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=name, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def notes(values: dict[str, Any]) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="ocync", namespace="mirror", is_install=True)
    return manifests["ocync/templates/NOTES.txt"]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in out, f"two {obj['kind']} objects"
        out[obj["kind"]] = obj
    return out


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = by_kind(objects)
    if "CronJob" in kinds:
        spec: dict[str, Any] = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif "Job" in kinds:
        spec = kinds["Job"]["spec"]["template"]["spec"]
    else:
        spec = kinds["Deployment"]["spec"]["template"]["spec"]
    return spec


def load_values(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data
