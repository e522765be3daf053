"""Differential conformance: the mock (generic profile) against Debian's docker-registry 2.8.

A hypothesis state machine sends the same random sequence of OCI Distribution API calls to both
and asserts the same status codes, the key headers (Docker-Content-Digest, Content-Length,
Range, Content-Range, presence of Location) and, where bodies are content, the same bytes.
Intentional differences are named in KNOWN_DIFFERENCES; each name must appear in
mockregistry/DIFFERENCES.md with its reason. A ref-vs-ref run keeps the harness honest.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from stress.mockproc import MockProcess

pytestmark = pytest.mark.real_registry

ROOT = Path(__file__).resolve().parents[2]

# name -> why the mock intentionally differs from distribution 2.8.2 (see mockregistry/DIFFERENCES.md).
KNOWN_DIFFERENCES = {
    "tags-pagination": "distribution 2.8 ignores n/last on tags/list; the mock pages as OCI 1.1 says",
    "delete-manifest-by-tag": "distribution 2.8 refuses DELETE by tag (400); OCI 1.1 allows it (202)",
    "bad-name-status": "distribution 2.8 misroutes names outside the OCI grammar (router 404, 500 "
    "past 255 characters, an uppercase first component taken as a host: 202); the mock rejects "
    "them all with NAME_INVALID",
    "content-range-order": "distribution 2.8 ignores Content-Range; the mock answers 416 to an "
    "out-of-order chunk as OCI 1.1 says",
    "monolithic-post": "distribution 2.8 ignores ?digest= on POST (202 session); the mock "
    "completes the monolithic upload (201) as OCI 1.1 allows",
    "upload-after-failed-put": "after a PUT refused with DIGEST_INVALID, distribution 2.8 keeps the "
    "session unless the PUT had a body; the spec is silent and the mock may differ",
}

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

FIXED_BLOBS = (
    b"",
    b"{}",
    b"hello world",
    bytes(range(256)) * 4,
    hashlib.sha256(b"ocync").digest() * 2200,  # ~70 kB: more than one read buffer
)
TAGS = ("latest", "v1", "v2.0", "a_tag")
BAD_NAMES = ("UPPER/case", "a..b", "-lead/x", "trail-/x", "a" * 256)
BAD_DIGESTS = (
    "sha256:xyz",
    "sha256:" + "A" * 64,
    "sha256:" + "0" * 63,
    "md5:" + "0" * 32,
    "sha256",
)
NO_SUCH_DIGEST = "sha256:" + "0" * 64
# OCYNC_DIFF_SURVEY=1: record every mismatch instead of stopping at the first (a triage aid).
SURVEY = os.environ.get("OCYNC_DIFF_SURVEY") == "1"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Peer:
    name: str
    client: httpx.Client
    base: httpx.URL

    def url(self, path: str | httpx.URL) -> httpx.URL:
        return self.base.join(path)


@dataclass
class Upload:
    """One upload session, open on every peer (each peer has its own Location)."""

    repo: str
    locations: list[httpx.URL]
    data: bytearray = field(default_factory=bytearray)


_namespaces = itertools.count()


def error_code(response: httpx.Response) -> str | None:
    try:
        errors = response.json().get("errors") or []
        return str(errors[0].get("code")) if errors else None
    except (ValueError, AttributeError, IndexError):
        return None


class DifferentialMachine(RuleBasedStateMachine):
    """Same calls to every peer; peers[0] is the reference, the others must agree with it."""

    peers: Sequence[Peer] = ()
    # Filled in by every run: which known differences were actually observed.
    observed: set[str] = set()
    survey: dict[str, str] = {}

    def __init__(self) -> None:
        super().__init__()
        ns = f"diff{os.getpid()}n{next(_namespaces)}"
        self.repos = (f"{ns}/alpha", f"{ns}/beta", f"{ns}other/gamma")
        self.uploads: list[Upload] = []
        self.contents: dict[str, bytes] = {digest_of(b): b for b in FIXED_BLOBS}
        self.repo_blobs: dict[str, set[str]] = {repo: set() for repo in self.repos}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.repo_manifests: dict[str, set[str]] = {repo: set() for repo in self.repos}
        self.log: list[str] = []

    # --- plumbing ---------------------------------------------------------------------------

    def send(
        self,
        what: str,
        method: str,
        urls: Sequence[str | httpx.URL],
        *,
        content: bytes | None = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> list[httpx.Response]:
        self.log.append(what)
        responses = []
        for peer, url in zip(self.peers, urls, strict=True):
            body: bytes | Iterator[bytes] | None = content
            if stream and content is not None:
                # No Content-Length: httpx sends Transfer-Encoding: chunked (a streamed PATCH).
                body = iter([content[i : i + 4096] for i in range(0, len(content), 4096)] or [b""])
            request = peer.client.build_request(
                method, peer.url(url), content=body, headers=headers
            )
            responses.append(peer.client.send(request))
        return responses

    def same_path(self, what: str, method: str, path: str, **kw: object) -> list[httpx.Response]:
        return self.send(what, method, [path] * len(self.peers), **kw)  # type: ignore[arg-type]

    def fail(
        self, what: str, ref: httpx.Response, other: httpx.Response, peer: Peer, detail: str
    ) -> None:
        steps = "\n  ".join(self.log[-12:])
        if SURVEY:
            key = re.sub(
                r"diff\d+n\d+",
                "NS",
                f"{what}: {detail}: ref {ref.status_code} {error_code(ref)} vs {other.status_code} {error_code(other)}",
            )
            if key not in DifferentialMachine.survey:
                DifferentialMachine.survey[key] = (
                    f"{ref.headers} {ref.content[:150]!r}\n    {other.headers} {other.content[:150]!r}\n    {steps}"
                )
            return
        raise AssertionError(
            f"{what}: {peer.name} differs from {self.peers[0].name}: {detail}\n"
            f"  reference: {ref.status_code} {dict(ref.headers)} {ref.content[:200]!r}\n"
            f"  {peer.name}: {other.status_code} {dict(other.headers)} {other.content[:200]!r}\n"
            f"  recent steps:\n  {steps}"
        )

    def compare(
        self,
        what: str,
        responses: list[httpx.Response],
        *,
        body: bool = False,
        content_type: bool = False,
        location_path: bool = False,
        skip_length: bool = False,
    ) -> None:
        ref = responses[0]
        for peer, other in zip(self.peers[1:], responses[1:], strict=True):
            if other.status_code != ref.status_code:
                self.fail(what, ref, other, peer, "status")
            if ("location" in ref.headers) != ("location" in other.headers):
                self.fail(what, ref, other, peer, "presence of Location")
            if not 200 <= ref.status_code < 300:
                continue
            for name in ("docker-content-digest", "range", "content-range"):
                if ref.headers.get(name) != other.headers.get(name):
                    self.fail(what, ref, other, peer, name)
            # Go omits Content-Length on 204 and on empty 201/202; absent == 0 there.
            default = None if ref.status_code in (200, 206) else "0"
            if not skip_length and ref.headers.get("content-length", default) != other.headers.get(
                "content-length", default
            ):
                self.fail(what, ref, other, peer, "content-length")
            if content_type and ref.headers.get("content-type") != other.headers.get(
                "content-type"
            ):
                self.fail(what, ref, other, peer, "content-type")
            if body and ref.content != other.content:
                self.fail(what, ref, other, peer, "body")
            if location_path:
                paths = [
                    peer_.url(r.headers["location"]).path
                    for peer_, r in ((self.peers[0], ref), (peer, other))
                ]
                if paths[0] != paths[1]:
                    self.fail(what, ref, other, peer, f"Location path {paths}")

    def known(self, name: str) -> None:
        assert name in KNOWN_DIFFERENCES
        DifferentialMachine.observed.add(name)

    def locations(self, responses: list[httpx.Response]) -> list[httpx.URL]:
        return [
            peer.url(r.headers["location"]) for peer, r in zip(self.peers, responses, strict=True)
        ]

    def new_content(self, data: bytes) -> str:
        digest = digest_of(data)
        self.contents[digest] = data
        return digest

    # --- setup and whole-image pushes ---------------------------------------------------------

    @initialize()
    def start(self) -> None:
        # Every run starts from an image in the first repo, so manifests have something to point at.
        self.push_image(0, [0, 1], docker=False, tag="latest")

    @rule(
        repo=st.integers(0, 2),
        layers=st.lists(st.integers(0, len(FIXED_BLOBS) - 1), min_size=1, max_size=3),
        docker=st.booleans(),
        tag=st.sampled_from(TAGS),
    )
    def push_image(self, repo: int, layers: list[int], docker: bool, tag: str) -> None:
        """The common client flow: upload the blobs, then PUT the manifest by tag."""
        name = self.repos[repo]
        for i in [1, *layers]:  # FIXED_BLOBS[1] is `{}`, the config
            self.monolithic(repo, FIXED_BLOBS[i])
        picks = [
            sorted(self.repo_blobs[name]).index(digest_of(FIXED_BLOBS[i])) for i in [1, *layers]
        ]
        self.put_manifest(repo, "image", picks, docker, False, "tag", tag, 1)

    # --- blob uploads ---------------------------------------------------------------------------

    def open_upload(self, repo: str) -> Upload | None:
        responses = self.same_path(f"POST {repo} upload", "POST", f"/v2/{repo}/blobs/uploads/")
        self.compare(f"POST {repo}/blobs/uploads/", responses)
        if responses[0].status_code != 202:
            return None
        return Upload(repo, self.locations(responses))

    def finish(self, upload: Upload, digest: str, final: bytes | None) -> list[httpx.Response]:
        urls = [loc.copy_merge_params({"digest": digest}) for loc in upload.locations]
        responses = self.send(
            f"PUT {upload.repo} upload digest={digest[:20]} final={len(final or b'')}B",
            "PUT",
            urls,
            content=final,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.compare(f"PUT {upload.repo} upload", responses, location_path=True)
        if responses[0].status_code == 201:
            self.repo_blobs[upload.repo].add(digest)
        return responses

    @rule(
        repo=st.integers(0, 2),
        data=st.one_of(st.sampled_from(FIXED_BLOBS), st.binary(max_size=600)),
    )
    def monolithic(self, repo: int, data: bytes) -> None:
        upload = self.open_upload(self.repos[repo])
        if upload is not None:
            self.finish(upload, self.new_content(data), data)

    @rule(
        repo=st.integers(0, 2),
        data=st.one_of(st.sampled_from(FIXED_BLOBS), st.binary(max_size=600)),
    )
    def monolithic_post(self, repo: int, data: bytes) -> None:
        """POST ?digest= with the body (OCI 1.1 'single POST'): optional for registries."""
        name = self.repos[repo]
        digest = self.new_content(data)
        responses = self.same_path(
            f"POST {name} ?digest monolithic",
            "POST",
            str(httpx.URL(f"/v2/{name}/blobs/uploads/", params={"digest": digest})),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        ref = responses[0]
        if ref.status_code == 202 and all(r.status_code == 201 for r in responses[1:]):
            self.known("monolithic-post")
            for peer, other in zip(self.peers[1:], responses[1:], strict=True):
                assert other.headers.get("docker-content-digest") == digest, peer.name
                assert peer.url(other.headers["location"]).path == f"/v2/{name}/blobs/{digest}"
            # Bring the reference level: finish its session with the body.
            self.peers[0].client.put(
                self.peers[0].url(ref.headers["location"]).copy_merge_params({"digest": digest}),
                content=data,
            ).raise_for_status()
            self.repo_blobs[name].add(digest)
            return
        self.compare(f"POST {name} ?digest", responses)
        if ref.status_code == 202:
            self.finish(Upload(name, self.locations(responses)), digest, data)

    @rule(
        repo=st.integers(0, 2),
        data=st.one_of(st.sampled_from(FIXED_BLOBS), st.binary(max_size=600)),
        cuts=st.lists(st.integers(0, 600), max_size=3),
        final_body=st.booleans(),
    )
    def chunked(self, repo: int, data: bytes, cuts: list[int], final_body: bool) -> None:
        upload = self.open_upload(self.repos[repo])
        if upload is None:
            return
        bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        final = pieces.pop() if final_body and len(pieces) > 1 else None
        for piece in pieces:
            if not self.patch(upload, piece, ranged=True):
                return
        self.finish(upload, self.new_content(data), final)

    @rule(
        repo=st.integers(0, 2),
        data=st.one_of(st.sampled_from(FIXED_BLOBS), st.binary(max_size=600)),
    )
    def streamed(self, repo: int, data: bytes) -> None:
        upload = self.open_upload(self.repos[repo])
        if upload is not None and self.patch(upload, data, ranged=False):
            self.finish(upload, self.new_content(data), None)

    def patch(self, upload: Upload, piece: bytes, *, ranged: bool, offset: int = 0) -> bool:
        start = len(upload.data) + offset
        headers = {"Content-Type": "application/octet-stream"}
        if ranged:
            headers["Content-Range"] = f"{start}-{start + len(piece) - 1}"
        responses = self.send(
            f"PATCH {upload.repo} {len(piece)}B range={headers.get('Content-Range')}",
            "PATCH",
            upload.locations,
            content=piece,
            stream=not ranged,
            headers=headers,
        )
        if offset:
            ref = responses[0]
            if ref.status_code == 202 and all(r.status_code == 416 for r in responses[1:]):
                self.known("content-range-order")
                self.uploads = [u for u in self.uploads if u is not upload]
                return False
        self.compare(f"PATCH {upload.repo}", responses)
        if responses[0].status_code != 202:
            return False
        upload.locations = self.locations(responses)
        upload.data += piece
        return True

    @rule(repo=st.integers(0, 2))
    def start_upload(self, repo: int) -> None:
        upload = self.open_upload(self.repos[repo])
        if upload is not None:
            self.uploads.append(upload)

    @rule(
        pick=st.integers(0, 99),
        piece=st.binary(min_size=1, max_size=300),
        out_of_order=st.booleans(),
    )
    def patch_open_upload(self, pick: int, piece: bytes, out_of_order: bool) -> None:
        if self.uploads:
            upload = self.uploads[pick % len(self.uploads)]
            if not self.patch(upload, piece, ranged=True, offset=7 if out_of_order else 0):
                self.uploads = [u for u in self.uploads if u is not upload]

    @rule(pick=st.integers(0, 99))
    def upload_status(self, pick: int) -> None:
        if self.uploads:
            upload = self.uploads[pick % len(self.uploads)]
            responses = self.send(f"GET {upload.repo} upload status", "GET", upload.locations)
            self.compare(f"GET upload status ({len(upload.data)}B sent)", responses)

    @rule(
        pick=st.integers(0, 99),
        how=st.sampled_from(["right", "wrong", "malformed"]),
        with_body=st.booleans(),
    )
    def finish_open_upload(self, pick: int, how: str, with_body: bool) -> None:
        if not self.uploads:
            return
        upload = self.uploads[pick % len(self.uploads)]
        final = b"+" if with_body else None
        data = bytes(upload.data) + (final or b"")
        digest = {
            "right": digest_of(data),
            "wrong": digest_of(data + b"!"),
            "malformed": BAD_DIGESTS[len(data) % len(BAD_DIGESTS)],
        }[how]
        put = self.finish(upload, digest, final)
        if how == "right":
            self.contents[digest] = data
        responses = self.send(f"GET {upload.repo} upload after PUT", "GET", upload.locations)
        self.uploads = [u for u in self.uploads if u is not upload]
        if put[0].status_code == 400 and len({r.status_code for r in responses}) > 1:
            # Whether a refused PUT ends the session is not specified; distribution 2.8 keeps it
            # unless the PUT carried a body. Drop it from the model on every peer.
            self.known("upload-after-failed-put")
            return
        self.compare("GET upload status after PUT", responses)
        if responses[0].status_code == 204:
            upload.locations = self.locations(responses)
            self.uploads.append(upload)

    @rule(pick=st.integers(0, 99))
    def cancel_upload(self, pick: int) -> None:
        if self.uploads:
            upload = self.uploads.pop(pick % len(self.uploads))
            self.compare(
                "DELETE upload",
                self.send(f"DELETE {upload.repo} upload", "DELETE", upload.locations),
            )
            self.compare(
                "PATCH cancelled upload",
                self.send("PATCH cancelled", "PATCH", upload.locations, content=b"x"),
            )

    @rule(
        src=st.integers(0, 2),
        dst=st.integers(0, 2),
        pick=st.integers(0, 99),
        bogus=st.sampled_from(["", "", NO_SUCH_DIGEST, "sha256:xyz"]),
    )
    def mount(self, src: int, dst: int, pick: int, bogus: str) -> None:
        """Mount a blob the source holds (201), or one it lacks / a malformed digest (202)."""
        held = sorted(self.repo_blobs[self.repos[src]]) or sorted(self.contents)
        digest = bogus or held[pick % len(held)]
        name = self.repos[dst]
        path = httpx.URL(
            f"/v2/{name}/blobs/uploads/", params={"mount": digest, "from": self.repos[src]}
        )
        responses = self.same_path(
            f"POST {name} mount {digest[:20]} from {self.repos[src]}", "POST", str(path)
        )
        self.compare("POST mount", responses, location_path=responses[0].status_code == 201)
        if responses[0].status_code == 201:
            self.repo_blobs[name].add(digest)
        elif responses[0].status_code == 202:
            self.uploads.append(Upload(name, self.locations(responses)))

    # --- blob reads ------------------------------------------------------------------------------

    def some_digest(self, repo: str, pick: int) -> str:
        candidates = sorted(self.repo_blobs[repo]) + sorted(self.contents)[:3] + [NO_SUCH_DIGEST]
        return candidates[pick % len(candidates)]

    @rule(repo=st.integers(0, 2), pick=st.integers(0, 99), method=st.sampled_from(["GET", "HEAD"]))
    def read_blob(self, repo: int, pick: int, method: str) -> None:
        name = self.repos[repo]
        digest = self.some_digest(name, pick)
        responses = self.same_path(
            f"{method} {name} blob {digest[:20]}", method, f"/v2/{name}/blobs/{digest}"
        )
        self.compare(f"{method} blob", responses, body=True)

    @rule(
        repo=st.integers(0, 2), pick=st.integers(0, 99), a=st.integers(0, 80), n=st.integers(1, 40)
    )
    def read_blob_range(self, repo: int, pick: int, a: int, n: int) -> None:
        name = self.repos[repo]
        present = sorted(d for d in self.repo_blobs[name] if len(self.contents.get(d, b"")) > a + n)
        if present:
            digest = present[pick % len(present)]
            responses = self.same_path(
                f"GET {name} blob range {a}-{a + n - 1}",
                "GET",
                f"/v2/{name}/blobs/{digest}",
                headers={"Range": f"bytes={a}-{a + n - 1}"},
            )
            self.compare("GET blob with Range", responses, body=True)

    @rule(repo=st.integers(0, 2), pick=st.integers(0, 99))
    def delete_blob(self, repo: int, pick: int) -> None:
        name = self.repos[repo]
        digest = self.some_digest(name, pick)
        responses = self.same_path(
            f"DELETE {name} blob {digest[:20]}", "DELETE", f"/v2/{name}/blobs/{digest}"
        )
        self.compare("DELETE blob", responses)
        if responses[0].status_code == 202:
            self.repo_blobs[name].discard(digest)

    # --- manifests -------------------------------------------------------------------------------

    def image_manifest(
        self, repo: str, picks: list[int], docker: bool, subject: bool
    ) -> tuple[str, bytes]:
        # Mostly blobs the repository holds (so the PUT can succeed), sometimes any known blob.
        held, anywhere = sorted(self.repo_blobs[repo]), sorted(self.contents)
        chosen = [
            held[p % len(held)] if held and p < 85 else anywhere[p % len(anywhere)] for p in picks
        ]
        config, layers = chosen[0], chosen[1:]
        mt = DOCKER_MANIFEST if docker else OCI_MANIFEST
        obj: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json"
                if docker
                else "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": len(self.contents[config]),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                    if docker
                    else "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": d,
                    "size": len(self.contents[d]),
                }
                for d in layers
            ],
        }
        if subject and self.manifests and not docker:
            sub = sorted(self.manifests)[picks[0] % len(self.manifests)]
            obj["subject"] = {
                "mediaType": self.manifests[sub][0],
                "digest": sub,
                "size": len(self.manifests[sub][1]),
            }
        return mt, json.dumps(obj).encode()

    def index_manifest(self, repo: str, picks: list[int], docker: bool) -> tuple[str, bytes]:
        held = sorted(self.repo_manifests[repo])
        anywhere = sorted(self.manifests) or [NO_SUCH_DIGEST]
        entries = []
        for p in picks:
            d = held[p % len(held)] if held and p < 85 else anywhere[p % len(anywhere)]
            mt, data = self.manifests.get(d, (OCI_MANIFEST, b"{}"))
            entries.append(
                {
                    "mediaType": mt,
                    "digest": d,
                    "size": len(data),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            )
        mt = DOCKER_LIST if docker else OCI_INDEX
        return mt, json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": entries}).encode()

    @rule(
        repo=st.integers(0, 2),
        kind=st.sampled_from(["image", "image", "index"]),
        picks=st.lists(st.integers(0, 99), min_size=1, max_size=4),
        docker=st.booleans(),
        subject=st.booleans(),
        ref=st.sampled_from(["tag", "tag", "digest", "digest", "wrong-digest"]),
        tag=st.sampled_from(TAGS),
        wrong_type=st.integers(0, 9),
    )
    def put_manifest(
        self,
        repo: int,
        kind: str,
        picks: list[int],
        docker: bool,
        subject: bool,
        ref: str,
        tag: str,
        wrong_type: int,
    ) -> None:
        name = self.repos[repo]
        if kind == "image":
            mt, data = self.image_manifest(name, picks, docker, subject)
        else:
            mt, data = self.index_manifest(name, picks, docker)
        digest = digest_of(data)
        reference = {"tag": tag, "digest": digest, "wrong-digest": digest_of(data + b" ")}[ref]
        # One time in ten the Content-Type disagrees with the manifest's mediaType.
        content_type = (OCI_INDEX if mt != OCI_INDEX else OCI_MANIFEST) if wrong_type == 0 else mt
        responses = self.same_path(
            f"PUT {name} manifest {kind} {mt.rsplit('.', 1)[-1]} ref={reference[:20]} ct={content_type[-20:]}",
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            content=data,
            headers={"Content-Type": content_type},
        )
        self.compare("PUT manifest", responses, location_path=True)
        if responses[0].status_code == 201:
            self.manifests[digest] = (mt, data)
            self.repo_manifests[name].add(digest)

    def some_reference(self, pick: int) -> str:
        candidates = [*TAGS, *sorted(self.manifests), NO_SUCH_DIGEST]
        return candidates[pick % len(candidates)]

    @rule(repo=st.integers(0, 2), pick=st.integers(0, 99), method=st.sampled_from(["GET", "HEAD"]))
    def read_manifest(self, repo: int, pick: int, method: str) -> None:
        name = self.repos[repo]
        reference = self.some_reference(pick)
        responses = self.same_path(
            f"{method} {name} manifest {reference[:20]}",
            method,
            f"/v2/{name}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        self.compare(f"{method} manifest", responses, body=True, content_type=True)

    @rule(repo=st.integers(0, 2), pick=st.integers(0, 99))
    def delete_manifest(self, repo: int, pick: int) -> None:
        name = self.repos[repo]
        reference = self.some_reference(pick)
        if not reference.startswith("sha256:"):
            return self.delete_tag(name, reference)
        responses = self.same_path(
            f"DELETE {name} manifest {reference[:20]}",
            "DELETE",
            f"/v2/{name}/manifests/{reference}",
        )
        self.compare("DELETE manifest by digest", responses)

    def delete_tag(self, name: str, tag: str) -> None:
        path = f"/v2/{name}/manifests/{tag}"
        before = self.same_path(
            f"GET {name}:{tag} before delete", "GET", path, headers={"Accept": MANIFEST_ACCEPT}
        )
        self.compare("GET manifest before DELETE by tag", before, body=True, content_type=True)
        responses = self.same_path(f"DELETE {name}:{tag}", "DELETE", path)
        ref = responses[0]
        if ref.status_code == 400 and all(
            r.status_code == (202 if old.status_code == 200 else 404)
            for r, old in zip(responses[1:], before[1:], strict=True)
        ):
            self.known("delete-manifest-by-tag")
            for peer in self.peers[1:]:
                gone = peer.client.get(peer.url(path), headers={"Accept": MANIFEST_ACCEPT})
                assert gone.status_code == 404, (
                    f"{peer.name}: tag {tag} still resolves after DELETE"
                )
            if before[0].status_code == 200:
                # Level the peers the way the reference can: delete the manifest by digest
                # everywhere (that drops its other tags too).
                digest = digest_of(before[0].content)
                level = self.same_path(
                    f"DELETE {name}@{digest[:20]} (levelling)",
                    "DELETE",
                    f"/v2/{name}/manifests/{digest}",
                )
                self.compare("DELETE manifest by digest after DELETE by tag", level)
            return
        self.compare("DELETE manifest by tag", responses)

    # --- listing and bad input ---------------------------------------------------------------

    @rule(
        repo=st.integers(0, 2),
        n=st.one_of(st.none(), st.integers(0, 4)),
        last=st.one_of(st.none(), st.sampled_from(TAGS + ("a", "zzz"))),
    )
    def list_tags(self, repo: int, n: int | None, last: str | None) -> None:
        name = self.repos[repo]
        params = {k: str(v) for k, v in (("n", n), ("last", last)) if v is not None}
        path = str(httpx.URL(f"/v2/{name}/tags/list", params=params))
        responses = self.same_path(f"GET {name} tags n={n} last={last}", "GET", path)
        ref = responses[0]
        # Status and Location here; the body (and so Content-Length) is compared page-wise below.
        self.compare("GET tags/list", responses, skip_length=True)
        if ref.status_code != 200:
            return
        # distribution 2.8 answers `"tags": null` once every tag is gone; [] means the same.
        full = sorted(ref.json().get("tags") or [])
        for peer, other in zip(self.peers[1:], responses[1:], strict=True):
            got = other.json().get("tags") or []
            # distribution lists tags in directory order; OCI 1.1 pages them lexically.
            if sorted(got) == full and "link" not in other.headers:
                continue
            # The reference ignores n/last; compute the page OCI 1.1 prescribes from its full list.
            self.known("tags-pagination")
            after = [t for t in full if last is None or t > last]
            # n=0 is no limit (the reference's answer: every tag), not an empty page.
            page = after[:n] if n else after
            if got != page:
                self.fail(
                    "GET tags/list page", ref, other, peer, f"tags {got} != expected page {page}"
                )
            more = n is not None and n > 0 and len(after) > n
            if more != ("link" in other.headers):
                self.fail(
                    "GET tags/list page", ref, other, peer, f"Link header presence should be {more}"
                )

    @rule(
        bad=st.sampled_from(BAD_NAMES),
        call=st.sampled_from(["tags", "manifest", "blob", "upload"]),
    )
    def bad_name(self, bad: str, call: str) -> None:
        method, path = {
            "tags": ("GET", f"/v2/{bad}/tags/list"),
            "manifest": ("HEAD", f"/v2/{bad}/manifests/latest"),
            "blob": ("HEAD", f"/v2/{bad}/blobs/{NO_SUCH_DIGEST}"),
            "upload": ("POST", f"/v2/{bad}/blobs/uploads/"),
        }[call]
        responses = self.same_path(f"{method} bad name {bad[:20]} ({call})", method, path)
        ref = responses[0]
        for peer, other in zip(self.peers[1:], responses[1:], strict=True):
            if other.status_code == ref.status_code and error_code(other) in (
                error_code(ref),
                "NAME_INVALID",
            ):
                continue
            # distribution 2.8 misroutes bad names (router 404, 500 past 255 characters) and even
            # accepts an uppercase first component as a registry host ("UPPER/case" -> 202).
            if other.status_code in (400, 404) and (
                method == "HEAD" or error_code(other) == "NAME_INVALID"
            ):
                self.known("bad-name-status")
                continue
            self.fail("bad name", ref, other, peer, "status")

    @rule(
        repo=st.integers(0, 2),
        bad=st.sampled_from(BAD_DIGESTS + ("sha512:" + "1" * 128,)),
        method=st.sampled_from(["GET", "HEAD"]),
    )
    def bad_digest(self, repo: int, bad: str, method: str) -> None:
        name = self.repos[repo]
        responses = self.same_path(
            f"{method} {name} blob {bad[:20]}", method, f"/v2/{name}/blobs/{bad}"
        )
        self.compare(f"{method} blob with bad digest", responses)


def run_machine(peers: Sequence[Peer], *, max_examples: int) -> set[str]:
    DifferentialMachine.peers = peers
    DifferentialMachine.observed = set()
    DifferentialMachine.survey = {}
    run_state_machine_as_test(
        DifferentialMachine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=20,
            deadline=None,
            # Deterministic in CI; OCYNC_HYPOTHESIS_RANDOM=1 explores new sequences locally.
            derandomize=os.environ.get("OCYNC_HYPOTHESIS_RANDOM") != "1",
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # Survey mode records instead of raising; it still fails, listing every distinct mismatch.
    assert not DifferentialMachine.survey, "mismatches:\n" + "\n".join(DifferentialMachine.survey)
    return set(DifferentialMachine.observed)


@pytest.fixture(scope="module")
def mock_generic() -> Iterator[MockProcess]:
    with MockProcess(["--profile", "generic"]) as mock:
        yield mock


def peer(name: str, url: str) -> Peer:
    return Peer(name, httpx.Client(timeout=30), httpx.URL(url.rstrip("/") + "/"))


def test_mock_agrees_with_distribution(distribution_session, mock_generic: MockProcess) -> None:
    peers = [peer("distribution", distribution_session.url), peer("mock", mock_generic.url)]
    try:
        observed = run_machine(peers, max_examples=25)
    finally:
        for p in peers:
            p.client.close()
    # The machine must have exercised the API, not just agreed on nothing.
    stats = mock_generic.stats()
    by_kind = stats["by_kind"]
    assert isinstance(by_kind, dict)
    for kind in (
        "upload_post",
        "upload_patch",
        "upload_put",
        "manifest_put",
        "manifest_get",
        "tags_list",
    ):
        assert by_kind.get(kind, 0) > 0, f"the machine never sent a {kind} request: {by_kind}"
    undocumented = observed - set(KNOWN_DIFFERENCES)
    assert not undocumented


def test_harness_sees_no_difference_between_two_references(
    distribution_session, distribution
) -> None:
    """Two distribution instances must agree exactly: the comparison itself is not flaky."""
    peers = [
        peer("distribution", distribution_session.url),
        peer("distribution-2", distribution.url),
    ]
    try:
        observed = run_machine(peers, max_examples=6)
    finally:
        for p in peers:
            p.client.close()
    assert observed == set(), f"reference vs reference needed known differences: {observed}"


def test_known_differences_are_documented() -> None:
    doc = ROOT / "mockregistry" / "DIFFERENCES.md"
    assert doc.exists(), "mockregistry/DIFFERENCES.md lists the mock's intentional differences"
    text = doc.read_text()
    missing = [name for name in KNOWN_DIFFERENCES if name not in text]
    assert not missing, (
        f"differences tolerated by the differential test but not documented: {missing}"
    )


def test_tags_list_n_zero_matches_distribution(distribution_session, mock_generic: MockProcess) -> None:
    """`?n=0` on tags/list: distribution 2.8 answers every tag; so does the mock (not an empty
    page, not `"tags": null`). Checked directly, whatever the state machine happens to draw."""
    config = b'{"n0": true}'
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [],
    }).encode()
    answers = []
    for url in (distribution_session.url, mock_generic.url):
        with httpx.Client(base_url=url, timeout=30) as client:
            start = client.post("/v2/probe/n-zero/blobs/uploads/")
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            done = client.put(f"{location}{sep}digest={digest_of(config)}", content=config)
            assert done.status_code == 201, (url, done.text)
            for tag in ("v2", "v1", "v3"):
                put = client.put(f"/v2/probe/n-zero/manifests/{tag}", content=manifest,
                                 headers={"Content-Type": OCI_MANIFEST})
                assert put.status_code == 201, (url, put.text)
            got = client.get("/v2/probe/n-zero/tags/list?n=0")
            assert got.status_code == 200, (url, got.text)
            answers.append((sorted(got.json()["tags"] or []), "link" in got.headers))
    assert answers[0] == answers[1] == (["v1", "v2", "v3"], False), answers
