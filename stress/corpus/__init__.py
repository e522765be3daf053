"""Synthetic OCI corpora, planned from a seed and pushed to any registry over plain HTTP.

plan.py plans (pure: the same `CorpusSpec` always yields the same digests), push.py pushes the
OCI Distribution Spec 1.1 way, verify.py checks a registry against the plan, client.py is the
httpx client both use. Only httpx is used, never ocync's client, so the corpus can seed the very
registries ocync is tested against. `python -m stress.corpus URL` seeds one by hand.
"""

from stress.corpus.client import RegistryAuth, make_client, parse_challenge, send_with_retry
from stress.corpus.plan import (
    CREATED,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_JSON,
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    REFERRER_TYPES,
    SBOM_TYPE,
    SIGNATURE_TYPE,
    Blob,
    Corpus,
    CorpusSpec,
    Image,
    IndexFormat,
    Manifest,
    build_corpus,
    compact_json,
    referrers_tag,
    sha256_digest,
)
from stress.corpus.push import CorpusPusher, PushError, PushStats, push_corpus, seed_registry
from stress.corpus.verify import verify_corpus

__all__ = [
    "CREATED",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "EMPTY_JSON",
    "MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "REFERRER_TYPES",
    "SBOM_TYPE",
    "SIGNATURE_TYPE",
    "Blob",
    "Corpus",
    "CorpusPusher",
    "CorpusSpec",
    "Image",
    "IndexFormat",
    "Manifest",
    "PushError",
    "PushStats",
    "RegistryAuth",
    "build_corpus",
    "compact_json",
    "make_client",
    "parse_challenge",
    "push_corpus",
    "referrers_tag",
    "seed_registry",
    "send_with_retry",
    "sha256_digest",
    "verify_corpus",
]
