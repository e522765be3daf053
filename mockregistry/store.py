"""Content and metadata of the mock: blobs, manifests, tags, upload sessions (memory or disk).

Content is addressed by digest and shared between repositories; each repository links the blobs
and manifests it holds, as distribution does (a blob pushed to `a` is not visible in `b` until
mounted or pushed there). Uploads hash incrementally as bytes arrive and are never held twice:
in memory the upload buffer becomes the stored object; on disk a temp file is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .blobbytes import BlobSource, Blocks, FileSource, MemorySource, Upload

DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}
# Abandoned upload sessions are purged after this long once many are open, bounding memory under
# fault-injection runs (distribution purges after a week; tests need far less).
UPLOAD_TTL = 600.0
UPLOADS_BEFORE_PURGE = 1000


def parse_digest(text: str) -> tuple[str, str] | None:
    """``sha256:<hex>`` -> (algorithm, hex), or None if it is not a digest we support."""
    algorithm, sep, hexpart = text.partition(":")
    size = DIGEST_ALGORITHMS.get(algorithm)
    if not sep or size is None or len(hexpart) != size:
        return None
    if hexpart.strip("0123456789abcdef"):
        return None
    return algorithm, hexpart


def digest_of(data: bytes | bytearray | memoryview, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """One stored manifest (its bytes live in the content store under ``digest``)."""

    digest: str
    media_type: str
    size: int
    subject: str | None = None
    artifact_type: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.size,
            "subject": self.subject,
            "artifact_type": self.artifact_type,
            "annotations": dict(self.annotations),
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> ManifestRecord:
        annotations = data.get("annotations") or {}
        assert isinstance(annotations, dict)
        return ManifestRecord(
            digest=str(data["digest"]),
            media_type=str(data["media_type"]),
            size=int(str(data["size"])),
            subject=None if data.get("subject") is None else str(data["subject"]),
            artifact_type=None if data.get("artifact_type") is None else str(data["artifact_type"]),
            annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        )


@dataclass(slots=True)
class Repository:
    name: str
    blobs: set[str] = field(default_factory=set)
    manifests: dict[str, ManifestRecord] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    tagged: bool = False  # ever tagged: an empty tag list is then [] rather than NAME_UNKNOWN


class Store:
    """Repositories, content and uploads; in memory, or persisted under ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.repos: dict[str, Repository] = {}
        self.uploads: dict[str, Upload] = {}
        self._content: dict[str, bytes | bytearray | Blocks] = {}
        self._sizes: dict[str, int] = {}
        self._blob_digests: set[str] = set()
        self.uploads_cancelled = 0
        if root is not None:
            self._open_disk(root)

    # -- disk layout: blobs/<alg>/<hex>, uploads/<uuid>, repos/<name>/index.json ----------------
    def _open_disk(self, root: Path) -> None:
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        uploads = root / "uploads"
        uploads.mkdir(exist_ok=True)
        for stale in uploads.iterdir():  # sessions do not survive a restart (nor do they on GHCR)
            stale.unlink()
        for alg_dir in (root / "blobs").iterdir():
            for path in alg_dir.iterdir():
                if path.name.endswith(".tmp"):
                    path.unlink()
                    continue
                self._sizes[f"{alg_dir.name}:{path.name}"] = path.stat().st_size
        for index in sorted((root / "repos").rglob("index.json")) if (root / "repos").exists() else []:
            data = json.loads(index.read_text())
            repo = Repository(str(data["name"]))
            repo.blobs = set(data["blobs"])
            repo.manifests = {d: ManifestRecord.from_json(m) for d, m in data["manifests"].items()}
            repo.tags = dict(data["tags"])
            repo.tagged = bool(data.get("tagged", repo.tags))
            self.repos[repo.name] = repo
            self._blob_digests.update(repo.blobs)

    def _blob_path(self, digest: str) -> Path:
        assert self.root is not None
        algorithm, _, hexpart = digest.partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def _persist(self, repo: Repository) -> None:
        if self.root is None:
            return
        path = self.root / "repos" / repo.name / "index.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "name": repo.name,
            "blobs": sorted(repo.blobs),
            "manifests": {d: m.to_json() for d, m in sorted(repo.manifests.items())},
            "tags": dict(sorted(repo.tags.items())),
            "tagged": repo.tagged,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    # -- content ---------------------------------------------------------------------------------
    def has_content(self, digest: str) -> bool:
        return digest in self._sizes

    def content_size(self, digest: str) -> int | None:
        return self._sizes.get(digest)

    def open_content(self, digest: str) -> BlobSource:
        if self.root is None:
            return MemorySource(self._content[digest])
        return FileSource(self._blob_path(digest))

    def read_content(self, digest: str) -> bytes:
        """Whole content; only for manifests (capped at 4 MiB)."""
        if self.root is None:
            return bytes(self._content[digest])
        return self._blob_path(digest).read_bytes()

    def put_content(self, digest: str, data: bytes | bytearray) -> None:
        if digest in self._sizes:
            return
        if self.root is None:
            self._content[digest] = data
        else:
            path = self._blob_path(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{uuidlib.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        self._sizes[digest] = len(data)

    # -- repositories ----------------------------------------------------------------------------
    def repo(self, name: str) -> Repository | None:
        return self.repos.get(name)

    def _repo_for_write(self, name: str) -> Repository:
        repo = self.repos.get(name)
        if repo is None:
            repo = self.repos[name] = Repository(name)
        return repo

    def has_blob(self, name: str, digest: str) -> bool:
        repo = self.repos.get(name)
        return repo is not None and digest in repo.blobs and digest in self._sizes

    def link_blob(self, name: str, digest: str) -> None:
        repo = self._repo_for_write(name)
        if digest not in repo.blobs:
            repo.blobs.add(digest)
            self._blob_digests.add(digest)
            self._persist(repo)

    def unlink_blob(self, name: str, digest: str) -> bool:
        repo = self.repos.get(name)
        if repo is None or digest not in repo.blobs:
            return False
        repo.blobs.discard(digest)
        self._persist(repo)
        return True

    def put_manifest(self, name: str, record: ManifestRecord, body: bytes, tag: str | None) -> None:
        self.put_content(record.digest, body)
        repo = self._repo_for_write(name)
        repo.manifests[record.digest] = record
        if tag is not None:
            repo.tags[tag] = record.digest
            repo.tagged = True
        self._persist(repo)

    def resolve(self, name: str, reference: str) -> ManifestRecord | None:
        repo = self.repos.get(name)
        if repo is None:
            return None
        digest = repo.tags.get(reference, reference)
        return repo.manifests.get(digest)

    def delete_manifest(self, name: str, digest: str) -> bool:
        repo = self.repos.get(name)
        if repo is None or digest not in repo.manifests:
            return False
        del repo.manifests[digest]
        for tag in [t for t, d in repo.tags.items() if d == digest]:
            del repo.tags[tag]
        self._persist(repo)
        return True

    def delete_tag(self, name: str, tag: str) -> bool:
        repo = self.repos.get(name)
        if repo is None or tag not in repo.tags:
            return False
        del repo.tags[tag]
        self._persist(repo)
        return True

    def seed_repository(
        self,
        name: str,
        blobs: Iterable[str],
        manifests: Iterable[tuple[ManifestRecord, bytes]],
        tags: dict[str, str],
    ) -> None:
        """Bulk seeding (stress/scale.py): a repository's blob links (their content put first),
        manifests and tags in one persist, where a push persists once per link and manifest."""
        repo = self._repo_for_write(name)
        for digest in blobs:
            repo.blobs.add(digest)
            self._blob_digests.add(digest)
        for record, body in manifests:
            self.put_content(record.digest, body)
            repo.manifests[record.digest] = record
        repo.tags.update(tags)
        repo.tagged = repo.tagged or bool(tags)
        self._persist(repo)

    def referrers(self, name: str, digest: str) -> list[ManifestRecord]:
        repo = self.repos.get(name)
        if repo is None:
            return []
        return sorted((m for m in repo.manifests.values() if m.subject == digest), key=lambda m: m.digest)

    def repository_names(self) -> list[str]:
        return sorted(self.repos)

    # -- uploads ---------------------------------------------------------------------------------
    def start_upload(self, name: str, now: float) -> Upload:
        if len(self.uploads) >= UPLOADS_BEFORE_PURGE:
            self.purge_uploads(now)
        upload_id = str(uuidlib.uuid4())
        path = None if self.root is None else self.root / "uploads" / upload_id
        upload = self.uploads[upload_id] = Upload(name, upload_id, now, path)
        return upload

    def purge_uploads(self, now: float) -> int:
        """Drop sessions started more than UPLOAD_TTL ago (clients that vanished mid-upload)."""
        stale = [u for u in self.uploads.values() if now - u.started > UPLOAD_TTL]
        for upload in stale:
            self.cancel_upload(upload)
        return len(stale)

    def cancel_upload(self, upload: Upload) -> None:
        self.uploads.pop(upload.id, None)
        upload.discard()
        self.uploads_cancelled += 1

    def commit_upload(self, upload: Upload, digest: str) -> None:
        """Store a verified upload under ``digest`` and link it into the upload's repository."""
        self.uploads.pop(upload.id, None)
        if digest in self._sizes:
            upload.discard()
        elif self.root is None:
            self._content[digest] = upload.take_buffer()
            self._sizes[digest] = upload.size
        else:
            path = self._blob_path(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(upload.take_file(), path)
            self._sizes[digest] = upload.size
        self.link_blob(upload.repo, digest)

    # -- observability ---------------------------------------------------------------------------
    def blob_digests(self) -> Iterator[str]:
        return (d for d in self._blob_digests if d in self._sizes)

    def statistics(self) -> dict[str, int]:
        digests = list(self.blob_digests())
        return {
            "repositories": len(self.repos),
            "blobs": len(digests),
            "blob_bytes": sum(self._sizes[d] for d in digests),
            "manifests": sum(len(r.manifests) for r in self.repos.values()),
            "tags": sum(len(r.tags) for r in self.repos.values()),
            "uploads_open": len(self.uploads),
            "uploads_cancelled": self.uploads_cancelled,
        }

    def __repr__(self) -> str:
        where = "memory" if self.root is None else str(self.root)
        return f"Store({where}, {self.statistics()})"
