"""OCI Image Layout (image-spec 1.1 ``image-layout.md``) as data: ``index.json``, the
``oci-layout`` marker, blob paths and the ref-name convention. No I/O.

One layout can hold many repositories. A tag is an ``index.json`` entry whose
``org.opencontainers.image.ref.name`` annotation names it: ``repo:tag`` (as ``regctl``'s
``ocidir://`` and skopeo's ``oci:DIR:repo:tag`` write it), or ``tag`` alone (what
``skopeo copy ... oci:DIR:TAG`` writes: the layout's unnamed repository). Entries pushed by
digest only carry no ref name and are kept so that their content is not garbage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ocync.errors import ManifestError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, parse_descriptor

# image-layout.md: the annotation key of a tag, and the version the marker file names.
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
# The repository of ref names without a ``repo:`` part (skopeo's ``oci:DIR:TAG``).
UNNAMED = ""
# Where a writer keeps its temporary files and its lock, inside the layout (same file
# system as blobs/, so a rename into place is atomic).
TEMP_DIR = ".ocync-tmp"
LOCK_FILE = ".ocync-lock"
# Cap on index.json: it names tags, not content; beyond this it is not an index we read.
MAX_INDEX_SIZE = 64 * 1024 * 1024


def layout_marker() -> bytes:
    """The ``oci-layout`` file's content."""
    return json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()


def check_layout_marker(raw: bytes, where: str) -> None:
    """Raise ManifestError unless ``raw`` is an ``oci-layout`` file this code reads."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ManifestError(f"{where}: oci-layout is not JSON") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise ManifestError(f"{where}: unsupported imageLayoutVersion {version!r} (expected 1.x)")


def blob_path(digest: Digest) -> str:
    """``blobs/<alg>/<encoded>``, relative to the layout's root (image-layout.md "Blobs")."""
    return f"{BLOBS_DIR}/{digest.algorithm}/{digest.encoded}"


def ref_name(repo: str, tag: str) -> str:
    """The ref name written for ``repo``'s ``tag`` (``tag`` alone for the unnamed repo)."""
    return tag if repo == UNNAMED else f"{repo}:{tag}"


def split_ref_name(name: str) -> tuple[str, str]:
    """``repo:tag`` -> (repo, tag); ``tag`` -> (UNNAMED, tag). A tag never holds ``:``
    (distribution-spec tag grammar), so the last colon separates them."""
    repo, sep, tag = name.rpartition(":")
    return (repo, tag) if sep else (UNNAMED, name)


# skopeo's transports for layouts (``oci:PATH[:REF]``, ``oci-archive:FILE[:REF]``) and the
# config ``type`` each one is.
LAYOUT_TRANSPORTS = {"oci": "oci-layout", "oci-archive": "oci-archive"}
_DIGEST_SUFFIX = re.compile(r"@([a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, slots=True)
class LayoutReference:
    """``oci:PATH[:REF|@DIGEST]`` parsed: REF is ``tag`` or ``repo:tag`` (skopeo splits PATH
    from REF at the first colon); ``repo`` None when REF names none."""

    kind: str  # oci-layout | oci-archive
    path: str
    repo: str | None = None
    tag: str | None = None
    digest: str | None = None


def parse_layout_reference(text: str) -> LayoutReference | None:
    """A layout reference, or None when ``text`` names no layout transport."""
    transport, sep, rest = text.partition(":")
    if not sep or transport not in LAYOUT_TRANSPORTS:
        return None
    kind = LAYOUT_TRANSPORTS[transport]
    m = _DIGEST_SUFFIX.search(rest)
    if m is not None:
        path = rest[: m.start()].removesuffix(":")
        return LayoutReference(kind, path, digest=m.group(1)) if path else None
    path, sep, ref = rest.partition(":")
    if not path:
        return None
    if not sep or not ref:
        return LayoutReference(kind, path)
    repo, tag = split_ref_name(ref)
    return LayoutReference(kind, path, None if repo == UNNAMED else repo, tag)


@dataclass(frozen=True, slots=True)
class LayoutIndex:
    """``index.json``: its entries in file order, and the top-level fields kept as read."""

    entries: tuple[Descriptor, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()  # annotations etc. of the index itself

    # ---- reading ---------------------------------------------------------------------------
    def tagged(self) -> Iterator[tuple[str, str, Descriptor]]:
        """(repo, tag, entry) for every entry with a ref name."""
        for entry in self.entries:
            name = entry.annotation(REF_NAME)
            if name:
                repo, tag = split_ref_name(name)
                yield repo, tag, entry

    def repositories(self) -> set[str]:
        return {repo for repo, _, _ in self.tagged()}

    def serving(self, repo: str) -> str:
        """The repository of the layout that answers for ``repo``: itself when the layout
        names it; else the unnamed one (a layout skopeo wrote with ``oci:DIR:TAG``)."""
        return repo if repo == UNNAMED or repo in self.repositories() else UNNAMED

    def tags(self, repo: str) -> list[str]:
        wanted = self.serving(repo)
        return sorted({tag for r, tag, _ in self.tagged() if r == wanted})

    def find(self, repo: str, tag: str, *, exact: bool = False) -> Descriptor | None:
        """The entry of ``repo``'s ``tag`` (the last one when a tag is named twice);
        ``exact``: only ``repo``'s own entries (a writer's view), never the unnamed ones."""
        wanted, found = (repo if exact else self.serving(repo)), None
        for r, t, entry in self.tagged():
            if r == wanted and t == tag:
                found = entry
        if found is None and repo == UNNAMED and not exact:
            # ``oci:DIR:TAG`` against a layout naming ``repo:TAG``: the one repository with it
            named = [e for _, t, e in self.tagged() if t == tag]
            found = named[0] if len(named) == 1 else None
        return found

    def digests(self) -> set[str]:
        return {str(e.digest) for e in self.entries}

    # ---- writing ---------------------------------------------------------------------------
    def with_tag(self, repo: str, tag: str, desc: Descriptor) -> LayoutIndex:
        """``repo:tag`` now names ``desc``: the old entry of that name is replaced in place;
        an untagged entry of the same digest becomes the tagged one."""
        name = ref_name(repo, tag)
        annotations = tuple((k, v) for k, v in desc.annotations if k != REF_NAME) + ((REF_NAME, name),)
        entry = replace(desc, annotations=annotations)
        out: list[Descriptor] = []
        placed = False
        for e in self.entries:
            own = e.annotation(REF_NAME)
            if own == name or (own is None and e.digest == desc.digest):
                if not placed:
                    out.append(entry)
                    placed = True
                continue
            out.append(e)
        if not placed:
            out.append(entry)
        return replace(self, entries=tuple(out))

    def with_untagged(self, descs: Iterable[Descriptor]) -> LayoutIndex:
        """Entries without a ref name for manifests pushed by digest that nothing names."""
        present = self.digests()
        added = []
        for d in descs:
            if str(d.digest) not in present:
                present.add(str(d.digest))
                added.append(replace(d, annotations=tuple(kv for kv in d.annotations if kv[0] != REF_NAME)))
        return replace(self, entries=(*self.entries, *added)) if added else self

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX}
        doc.update(dict(self.extra))
        doc["manifests"] = [e.to_json() for e in self.entries]
        return json.dumps(doc, indent=2).encode() + b"\n"


def parse_layout_index(raw: bytes, where: str) -> LayoutIndex:
    """``index.json`` bytes -> LayoutIndex; ManifestError naming ``where`` when it is not one."""
    if len(raw) > MAX_INDEX_SIZE:
        raise ManifestError(f"{where}: index.json of {len(raw)} bytes is over {MAX_INDEX_SIZE}")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ManifestError(f"{where}: index.json is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
        raise ManifestError(f"{where}: index.json is not an image index")
    entries = tuple(
        parse_descriptor(x, f"{where} index.json manifests[{i}]")
        for i, x in enumerate(doc.get("manifests", []))
    )
    extra = tuple(
        (k, v) for k, v in doc.items() if k not in ("schemaVersion", "mediaType", "manifests")
    )
    return LayoutIndex(entries, extra)


__all__ = [
    "BLOBS_DIR",
    "INDEX_FILE",
    "LAYOUT_FILE",
    "LAYOUT_VERSION",
    "LOCK_FILE",
    "REF_NAME",
    "TEMP_DIR",
    "UNNAMED",
    "LAYOUT_TRANSPORTS",
    "LayoutIndex",
    "LayoutReference",
    "blob_path",
    "check_layout_marker",
    "layout_marker",
    "parse_layout_index",
    "parse_layout_reference",
    "ref_name",
    "split_ref_name",
]
