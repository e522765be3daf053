"""Writes charts/ocync/values.schema.json: the chart's values, with ``config:`` being ocync's
own config schema (``ocync schema``), so ``helm install`` refuses a misspelt config key.

Run ``python charts/values_schema.py`` after changing the config models or the chart's values;
tests/integration/test_chart_render.py fails while the committed file differs from its output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ocync.config import json_schema

OUT = Path(__file__).parent / "ocync" / "values.schema.json"

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer", "minimum": 0}
BOOL: dict[str, Any] = {"type": "boolean"}
OBJ: dict[str, Any] = {"type": "object"}
STRMAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
LIST_OF_OBJ: dict[str, Any] = {"type": "array", "items": {"type": "object"}}


def closed(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties}


def chart_values(config: dict[str, Any]) -> dict[str, Any]:
    env_from = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "prefix": STR,
                "secretRef": {"type": "object", "required": ["name"], "properties": {"name": STR, "optional": BOOL}},
                "configMapRef": {"type": "object", "required": ["name"], "properties": {"name": STR, "optional": BOOL}},
            },
            "additionalProperties": False,
        },
    }
    env = {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": STR}}}
    probe = closed(initialDelaySeconds=INT, periodSeconds=INT, timeoutSeconds=INT,
                   failureThreshold=INT, successThreshold=INT)
    schema = closed(
        mode={"enum": ["cronjob", "job", "watch"]},
        config=config,
        envFrom=env_from,
        env=env,
        image=closed(repository=STR, tag=STR, digest={"type": "string", "pattern": "^(|sha256:[0-9a-f]{64})$"},
                     pullPolicy={"enum": ["Always", "IfNotPresent", "Never"]}),
        imagePullSecrets=LIST_OF_OBJ,
        nameOverride=STR,
        fullnameOverride=STR,
        configDir={"type": "string", "pattern": "^/"},
        cronjob=closed(schedule={"type": "string", "minLength": 1}, timeZone=STR,
                       concurrencyPolicy={"enum": ["Forbid", "Allow", "Replace"]},
                       successfulJobsHistoryLimit=INT, failedJobsHistoryLimit=INT,
                       startingDeadlineSeconds={"type": ["integer", "null"], "minimum": 0}, suspend=BOOL),
        job=closed(backoffLimit=INT, activeDeadlineSeconds={"type": ["integer", "null"], "minimum": 1},
                   ttlSecondsAfterFinished={"type": ["integer", "null"], "minimum": 0}),
        shards={"type": "integer", "minimum": 1},
        rateShare={"oneOf": [{"const": "auto"}, {"type": "null"},
                             {"type": "number", "exclusiveMinimum": 0, "maximum": 1}]},
        watch=closed(interval={"type": "number", "exclusiveMinimum": 0}, schedule=STR,
                     healthPort={"type": "integer", "minimum": 1, "maximum": 65535},
                     probes=closed(liveness=probe, readiness=probe)),
        service=closed(enabled=BOOL, type={"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                       port={"type": "integer", "minimum": 1, "maximum": 65535}, annotations=STRMAP),
        logFormat={"enum": ["", "text", "json"]},
        drainTimeout={"type": "integer", "minimum": 0},
        graceMargin={"type": "integer", "minimum": 1},
        extraArgs={"type": "array", "items": STR},
        cache=closed(
            mountPath={"type": "string", "pattern": "^/"},
            persistence=closed(enabled=BOOL, existingClaim=STR, size=STR, storageClass=STR,
                               accessModes={"type": "array", "items": STR}, annotations=STRMAP),
            emptyDir=closed(sizeLimit=STR, medium={"enum": ["", "Memory"]}),
        ),
        externalSecret=closed(enabled=BOOL, apiVersion=STR, refreshInterval=STR,
                              secretStoreRef=closed(name=STR, kind={"enum": ["SecretStore", "ClusterSecretStore"]}),
                              targetName=STR, data=LIST_OF_OBJ, dataFrom=LIST_OF_OBJ),
        secretProviderClass=closed(enabled=BOOL, provider=STR, parameters=STRMAP,
                                   secretObjects=LIST_OF_OBJ, mountPath={"type": "string", "pattern": "^/"}),
        serviceAccount=closed(create=BOOL, name=STR, annotations=STRMAP, automountServiceAccountToken=BOOL),
        podAnnotations=STRMAP,
        podLabels=STRMAP,
        podSecurityContext=OBJ,
        securityContext=OBJ,
        resources=OBJ,
        nodeSelector=STRMAP,
        tolerations=LIST_OF_OBJ,
        affinity=OBJ,
        priorityClassName=STR,
        extraVolumes=LIST_OF_OBJ,
        extraVolumeMounts=LIST_OF_OBJ,
        # a parent chart's global values reach every subchart
        **{"global": OBJ},
    )
    return schema


def build() -> dict[str, Any]:
    config = dict(json_schema())
    defs = config.pop("$defs", {})
    config.pop("$schema", None)
    values = chart_values(config)
    # config's "#/$defs/..." references resolve against the root of values.schema.json
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "ocync chart values",
            **values, "$defs": defs}


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
