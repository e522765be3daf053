"""OCI 1.1 referrers (artifact manifests with ``subject``) made and pushed the way a signing
client does: blobs, the manifest by digest, and where the registry has no referrers API (no
``OCI-Subject`` answer, distribution-spec "Pushing Manifests with Subject") the ``sha256-<hex>``
tag-schema index updated too. Shared by the sync tests that add signatures at a source or a
mirror.
"""

from __future__ import annotations

import json
from typing import Any

from stress.corpus import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    CorpusPusher,
    Manifest,
    make_client,
    referrers_tag,
    sha256_digest,
)


def artifact(subject: Manifest, artifact_type: str, signer: str) -> tuple[list[Blob], Manifest]:
    """An OCI 1.1 artifact manifest (``subject`` set) as a signer would make it."""
    payload = json.dumps({"signed": subject.digest, "by": signer}).encode()
    empty = Blob(sha256_digest(b"{}"), OCI_EMPTY, b"{}")
    layer = Blob(sha256_digest(payload), artifact_type, payload)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty.digest, "size": empty.size},
        "layers": [{"mediaType": artifact_type, "digest": layer.digest, "size": layer.size}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
    }
    data = json.dumps(doc, separators=(",", ":")).encode()
    manifest = Manifest(
        sha256_digest(data), OCI_MANIFEST, data, blobs=(empty.digest, layer.digest),
        subject=subject.digest, artifact_type=artifact_type,
    )
    return [empty, layer], manifest


async def push_referrer(
    url: str, repo: str, subject: Manifest, referrer: tuple[list[Blob], Manifest],
    creds: tuple[str, str] | None, descriptor: dict[str, Any],
) -> bool:
    """Push blobs and manifest; where the registry has no referrers API (no ``OCI-Subject``
    answer) append ``descriptor`` to the tag-schema index, as a signing client does.
    Returns whether the registry has the referrers API."""
    blobs, manifest = referrer
    async with make_client(*(creds or ())) as http:
        pusher = CorpusPusher(http, url)
        for blob in blobs:
            await pusher.push_blob(repo, blob)
        response = await pusher.push_manifest(repo, manifest.digest, manifest)
        if "oci-subject" in response.headers:
            return True
        tag = referrers_tag(subject.digest)
        current = await pusher.request(
            "GET", f"v2/{repo}/manifests/{tag}", ok=(200, 404), headers={"Accept": OCI_INDEX}
        )
        entries = current.json()["manifests"] if current.status_code == 200 else []
        data = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*entries, descriptor]},
            separators=(",", ":"),
        ).encode()
        await pusher.push_manifest(repo, tag, Manifest(sha256_digest(data), OCI_INDEX, data))
        return False


__all__ = ["artifact", "push_referrer"]
