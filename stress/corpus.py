"""Synthetic OCI corpora, planned from a seed and pushed to any registry over plain HTTP.

The push flow is the OCI Distribution Spec 1.1 one (blobs, then child manifests, then the tagged
manifest; referrers through the API or the ``sha256-<hex>`` tag fallback when the registry answers
without ``OCI-Subject``). Only httpx is used, never ocync's client, so the corpus can seed the very
registries ocync is tested against. The same ``CorpusSpec`` always yields the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import trio

# OCI image-spec 1.1 and Docker image manifest v2 schema 2 media types.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))

# Referrer artifact types as cosign and syft publish them.
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"
REFERRER_TYPES = (SIGNATURE_TYPE, SBOM_TYPE)

# A fixed timestamp keeps configs (and so every digest) reproducible.
CREATED = "2024-01-01T00:00:00Z"
EMPTY_JSON = b"{}"

IndexFormat = Literal["oci", "docker"]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class CorpusSpec:
    """What to generate. Every field changes the digests deterministically, nothing else does."""

    seed: int = 0
    repositories: int = 2
    namespace: str = "corpus"
    tags_per_repo: int = 2
    # One platform -> single manifests; several -> an index (OCI) or manifest list (Docker) per tag.
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
    index_format: IndexFormat = "oci"
    # The first `single_platform_tags` tags of each repo are plain manifests for platforms[0].
    single_platform_tags: int = 0
    layers_per_image: int = 3
    layer_size: tuple[int, int] = (1024, 16 * 1024)
    # The first N layers of every image of a platform are the same blobs in every repo and tag.
    shared_base_layers: int = 1
    # Artifacts (alternately signature, SBOM) whose `subject` is each tag's top manifest.
    referrers_per_image: int = 0

    def __post_init__(self) -> None:
        if self.repositories < 1 or self.tags_per_repo < 1 or not self.platforms:
            raise ValueError("a corpus needs at least one repository, tag and platform")
        if self.layers_per_image < 1 or not 0 <= self.shared_base_layers <= self.layers_per_image:
            raise ValueError("shared_base_layers must be between 0 and layers_per_image")
        lo, hi = self.layer_size
        if not 0 < lo <= hi:
            raise ValueError("layer_size must be (min, max) with 0 < min <= max")
        if self.index_format not in ("oci", "docker"):
            raise ValueError("index_format must be 'oci' or 'docker'")


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str
    media_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index, byte for byte, with what it references."""

    digest: str
    media_type: str
    data: bytes = field(repr=False)
    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    platform: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type is not None:
            desc["artifactType"] = self.artifact_type
        if self.platform is not None:
            os_name, _, arch = self.platform.partition("/")
            arch, _, variant = arch.partition("/")
            plat = {"architecture": arch, "os": os_name}
            if variant:
                plat["variant"] = variant
            desc["platform"] = plat
        return desc


@dataclass(frozen=True, slots=True)
class Image:
    """One tag: its top manifest, every manifest under it, every blob, and its referrers."""

    repo: str
    tag: str
    digest: str
    manifests: tuple[str, ...]  # children first, the top manifest last
    blobs: tuple[str, ...]
    referrers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Corpus:
    """The plan of a corpus: what `push_corpus` sends, and what a faithful copy must hold."""

    spec: CorpusSpec
    blobs: Mapping[str, Blob]
    manifests: Mapping[str, Manifest]
    images: tuple[Image, ...]

    @property
    def repos(self) -> dict[str, dict[str, str]]:
        """repo -> tag -> top manifest digest."""
        out: dict[str, dict[str, str]] = {}
        for image in self.images:
            out.setdefault(image.repo, {})[image.tag] = image.digest
        return out

    def repo_blobs(self, repo: str) -> set[str]:
        return {d for image in self.images if image.repo == repo for d in image.blobs}

    def repo_manifests(self, repo: str) -> set[str]:
        return {
            d
            for image in self.images
            if image.repo == repo
            for d in image.manifests + image.referrers
        }

    def referrers(self, repo: str) -> dict[str, tuple[str, ...]]:
        """subject digest -> referrer manifest digests, for one repository."""
        return {
            image.digest: image.referrers
            for image in self.images
            if image.repo == repo and image.referrers
        }

    @property
    def blob_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs.values())

    def summary(self) -> dict[str, int]:
        return {
            "repositories": len(self.repos),
            "tags": len(self.images),
            "manifests": len(self.manifests),
            "blobs": len(self.blobs),
            "blob_bytes": self.blob_bytes,
            "referrers": sum(len(image.referrers) for image in self.images),
        }

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description: repo -> tag -> digest, plus the blobs (digest -> size)."""
        return {
            "repos": self.repos,
            "blobs": {d: b.size for d, b in sorted(self.blobs.items())},
            "referrers": {repo: self.referrers(repo) for repo in self.repos},
        }


class _Planner:
    def __init__(self, spec: CorpusSpec) -> None:
        self.spec = spec
        self.blobs: dict[str, Blob] = {}
        self.manifests: dict[str, Manifest] = {}
        docker = spec.index_format == "docker"
        self.manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        self.index_type = DOCKER_LIST if docker else OCI_INDEX
        self.config_type = DOCKER_CONFIG if docker else OCI_CONFIG
        self.layer_type = DOCKER_LAYER if docker else OCI_LAYER

    def _rng(self, key: str) -> random.Random:
        # str seeds are hashed with SHA-512 by random (version 2): stable across runs and hosts.
        return random.Random(f"ocync-corpus/{self.spec.seed}/{key}")

    def _blob(self, media_type: str, data: bytes) -> Blob:
        blob = Blob(sha256_digest(data), media_type, data)
        self.blobs.setdefault(blob.digest, blob)
        return blob

    def _manifest(self, media_type: str, obj: dict[str, Any], **kw: Any) -> Manifest:
        data = _json_bytes(obj)
        manifest = Manifest(sha256_digest(data), media_type, data, **kw)
        self.manifests.setdefault(manifest.digest, manifest)
        return manifest

    def _layer(self, key: str) -> tuple[Blob, str]:
        """A layer blob and its diff_id. The bytes are a real gzip stream (stored, level 0):
        clients such as skopeo sniff the magic number and would recompress anything else,
        changing the digests."""
        rng = self._rng(key)
        lo, hi = self.spec.layer_size
        size = rng.randint(lo, hi)
        header = f"ocync synthetic layer {key}\n".encode()
        raw = (header + rng.randbytes(max(0, size - len(header))))[:size]
        data = gzip.compress(raw, compresslevel=0, mtime=0)
        return self._blob(self.layer_type, data), sha256_digest(raw)

    def _image_manifest(self, image_key: str, platform: str) -> Manifest:
        spec = self.spec
        layers, diff_ids = [], []
        for i in range(spec.layers_per_image):
            shared = i < spec.shared_base_layers
            layer, diff_id = self._layer(
                f"base/{platform}/{i}" if shared else f"{image_key}/{platform}/{i}"
            )
            layers.append(layer)
            diff_ids.append(diff_id)
        os_name, _, arch = platform.partition("/")
        arch, _, variant = arch.partition("/")
        config_obj: dict[str, Any] = {
            "architecture": arch,
            "os": os_name,
            "created": CREATED,
            "config": {"Labels": {"org.opencontainers.image.ref.name": image_key}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if variant:
            config_obj["variant"] = variant
        config = self._blob(self.config_type, _json_bytes(config_obj))
        obj = {
            "schemaVersion": 2,
            "mediaType": self.manifest_type,
            "config": {
                "mediaType": config.media_type,
                "digest": config.digest,
                "size": config.size,
            },
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
        return self._manifest(
            self.manifest_type,
            obj,
            blobs=(config.digest, *(layer.digest for layer in layers)),
            platform=platform,
        )

    def _referrer(self, image_key: str, n: int, subject: Manifest) -> Manifest:
        artifact_type = REFERRER_TYPES[n % len(REFERRER_TYPES)]
        payload = _json_bytes(
            {"kind": artifact_type, "image": image_key, "subject": subject.digest, "n": n}
        )
        layer = self._blob(artifact_type, payload)
        empty = self._blob(OCI_EMPTY, EMPTY_JSON)
        obj = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty.digest, "size": empty.size},
            "layers": [{"mediaType": artifact_type, "digest": layer.digest, "size": layer.size}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
            "annotations": {"org.opencontainers.image.created": CREATED},
        }
        return self._manifest(
            OCI_MANIFEST,
            obj,
            blobs=(empty.digest, layer.digest),
            subject=subject.digest,
            artifact_type=artifact_type,
        )

    def plan(self) -> Corpus:
        spec = self.spec
        images: list[Image] = []
        for r in range(spec.repositories):
            repo = f"{spec.namespace}/repo{r}" if spec.namespace else f"repo{r}"
            for t in range(spec.tags_per_repo):
                tag = f"v{t}.0"
                key = f"{repo}:{tag}"
                single = t < spec.single_platform_tags or len(spec.platforms) == 1
                platforms = spec.platforms[:1] if single else spec.platforms
                children = [self._image_manifest(key, p) for p in platforms]
                if single:
                    top = children[0]
                    manifests: tuple[str, ...] = (top.digest,)
                else:
                    obj = {
                        "schemaVersion": 2,
                        "mediaType": self.index_type,
                        "manifests": [child.descriptor() for child in children],
                    }
                    top = self._manifest(
                        self.index_type, obj, children=tuple(c.digest for c in children)
                    )
                    manifests = (*(c.digest for c in children), top.digest)
                blobs = tuple(dict.fromkeys(d for c in children for d in c.blobs))
                refs = [self._referrer(key, n, top) for n in range(spec.referrers_per_image)]
                ref_blobs = tuple(d for ref in refs for d in ref.blobs if d not in blobs)
                images.append(
                    Image(
                        repo=repo,
                        tag=tag,
                        digest=top.digest,
                        manifests=manifests,
                        blobs=blobs + tuple(dict.fromkeys(ref_blobs)),
                        referrers=tuple(ref.digest for ref in refs),
                    )
                )
        return Corpus(spec, dict(self.blobs), dict(self.manifests), tuple(images))


def build_corpus(spec: CorpusSpec) -> Corpus:
    """Plan a corpus (pure: no I/O). The same spec always gives the same digests."""
    return _Planner(spec).plan()


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: `<alg>-<hex>` for registries without the referrers API."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}-{hexpart}"[:128]


# --- auth -------------------------------------------------------------------------------------

_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="..",service="..",scope=".."` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class RegistryAuth(httpx.Auth):
    """Distribution token auth (docs.docker.com/registry/spec/auth/token) or Basic, on demand.

    Tokens are cached per (repository, push?) so only the first request of a scope sees a 401.
    """

    requires_response_body = True

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self._tokens: dict[tuple[str, bool, str], str] = {}
        self._basic = False
        self.token_requests = 0

    def _basic_header(self) -> str:
        return httpx.BasicAuth(self.username or "", self.password or "")._auth_header

    @staticmethod
    def _scope_key(request: httpx.Request) -> tuple[str, bool, str]:
        """(repository, needs push, mount source): a mount needs pull on `from` too."""
        match = _REPO_PATH.match(request.url.path)
        repo = match.group(1) if match else ""
        return repo, request.method not in ("GET", "HEAD"), request.url.params.get("from", "")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self._scope_key(request)
        if self._basic and self.username is not None:
            request.headers["Authorization"] = self._basic_header()
        elif key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic" and self.username is not None:
            self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
            return
        if scheme != "bearer" or "realm" not in params:
            return
        repo, push, source = key
        scopes = [params["scope"]] if "scope" in params else []
        if repo:
            scopes = [f"repository:{repo}:{'pull,push' if push else 'pull'}"]
            if source:
                scopes.append(f"repository:{source}:pull")
        query: list[tuple[str, str]] = []
        if "service" in params:
            query.append(("service", params["service"]))
        query.extend(("scope", s) for s in scopes)
        token_request = httpx.Request("GET", httpx.URL(params["realm"], params=query))
        if self.username is not None:
            token_request.headers["Authorization"] = self._basic_header()
        self.token_requests += 1
        token_response = yield token_request
        if token_response.status_code != 200:
            return
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            return
        self._tokens[key] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


# --- push -------------------------------------------------------------------------------------


class PushError(RuntimeError):
    """A registry refused part of the corpus; the message names the request and the status."""


@dataclass(slots=True)
class PushStats:
    requests: int = 0
    blobs_uploaded: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    bytes_uploaded: int = 0
    manifests_pushed: int = 0
    fallback_tags: int = 0
    throttled: int = 0
    referrers_api: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


_RETRY_HINT = re.compile(r"retry-after:\s*([0-9.]+)(ms|s)")


def _retry_delay(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after")
    if header and header.replace(".", "", 1).isdigit():
        return min(float(header), 10.0)
    match = _RETRY_HINT.search(response.text)
    if match:
        value = float(match.group(1))
        return min(value / 1000 if match.group(2) == "ms" else value, 10.0)
    return min(0.05 * 2.0**attempt, 2.0)


async def send_with_retry(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_attempts: int = 8,
    observe: Callable[[httpx.Response], None] | None = None,
) -> httpx.Response:
    """One request, retried on 429 and 5xx after the registry's hint (or a short backoff)."""
    for attempt in range(max_attempts):
        response = await client.request(method, url, content=content, headers=headers)
        if observe is not None:
            observe(response)
        retryable = response.status_code == 429 or response.status_code >= 500
        if not retryable or attempt == max_attempts - 1:
            break
        await trio.sleep(_retry_delay(response, attempt))
    return response


class CorpusPusher:
    """Pushes a `Corpus` to one registry; retries 429/5xx with the registry's hint, then gives up."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        mount: bool = True,
        max_attempts: int = 8,
    ) -> None:
        self.client = client
        self.base = httpx.URL(base_url.rstrip("/") + "/")
        self.mount = mount
        self.max_attempts = max_attempts
        self.stats = PushStats()
        self._holders: dict[str, str] = {}  # blob digest -> a repo known to hold it

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        ok: tuple[int, ...],
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        target = self.base.join(url)

        def count(response: httpx.Response) -> None:
            self.stats.requests += 1
            self.stats.throttled += response.status_code == 429

        response = await send_with_retry(
            self.client,
            method,
            target,
            content=content,
            headers=headers,
            max_attempts=self.max_attempts,
            observe=count,
        )
        if response.status_code in ok:
            return response
        raise PushError(
            f"{method} {target.path} -> {response.status_code}: {response.text[:200].strip()}"
        )

    async def push_blob(self, repo: str, blob: Blob) -> None:
        head = await self.request("HEAD", f"v2/{repo}/blobs/{blob.digest}", ok=(200, 404))
        if head.status_code == 200:
            self.stats.blobs_present += 1
            self._holders.setdefault(blob.digest, repo)
            return
        source = self._holders.get(blob.digest)
        if self.mount and source is not None and source != repo:
            start = await self.request(
                "POST",
                httpx.URL(
                    f"v2/{repo}/blobs/uploads/", params={"mount": blob.digest, "from": source}
                ),
                ok=(201, 202),
            )
            if start.status_code == 201:
                self.stats.blobs_mounted += 1
                return
        else:
            start = await self.request("POST", f"v2/{repo}/blobs/uploads/", ok=(202,))
        location = self.base.join(start.headers["location"])
        # Keep the session's own query (distribution's `_state`) and add the digest.
        await self.request(
            "PUT",
            location.copy_merge_params({"digest": blob.digest}),
            ok=(201,),
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.stats.blobs_uploaded += 1
        self.stats.bytes_uploaded += blob.size
        self._holders.setdefault(blob.digest, repo)

    async def push_manifest(self, repo: str, reference: str, manifest: Manifest) -> httpx.Response:
        response = await self.request(
            "PUT",
            f"v2/{repo}/manifests/{reference}",
            ok=(201,),
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        got = response.headers.get("docker-content-digest")
        if got is not None and got != manifest.digest:
            raise PushError(
                f"PUT {repo}:{reference}: registry says {got}, expected {manifest.digest}"
            )
        self.stats.manifests_pushed += 1
        return response

    async def _add_to_referrers_tag(self, repo: str, subject: str, referrer: Manifest) -> None:
        tag = referrers_tag(subject)
        current = await self.request(
            "GET", f"v2/{repo}/manifests/{tag}", ok=(200, 404), headers={"Accept": OCI_INDEX}
        )
        entries: list[dict[str, Any]] = []
        if current.status_code == 200:
            entries = list(current.json().get("manifests", []))
        if any(entry.get("digest") == referrer.digest for entry in entries):
            return
        entry = referrer.descriptor()
        entries.append(entry)
        data = _json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        index = Manifest(sha256_digest(data), OCI_INDEX, data)
        await self.push_manifest(repo, tag, index)
        self.stats.fallback_tags += 1

    async def push_image(self, corpus: Corpus, image: Image) -> None:
        for digest in image.blobs:
            await self.push_blob(image.repo, corpus.blobs[digest])
        for digest in image.manifests[:-1]:
            await self.push_manifest(image.repo, digest, corpus.manifests[digest])
        await self.push_manifest(image.repo, image.tag, corpus.manifests[image.digest])
        for digest in image.referrers:
            referrer = corpus.manifests[digest]
            response = await self.push_manifest(image.repo, digest, referrer)
            # OCI 1.1: a registry with the referrers API answers with OCI-Subject; else the client
            # maintains the `sha256-<hex>` index itself.
            has_api = "oci-subject" in response.headers
            self.stats.referrers_api = has_api
            if not has_api:
                await self._add_to_referrers_tag(image.repo, image.digest, referrer)

    async def push(self, corpus: Corpus, *, concurrency: int = 4) -> PushStats:
        limiter = trio.CapacityLimiter(concurrency)
        by_repo: dict[str, list[Image]] = {}
        for image in corpus.images:
            by_repo.setdefault(image.repo, []).append(image)

        async def push_repo(images: list[Image]) -> None:
            # Tags of one repository go in order: the referrers tag is read-modify-write.
            for image in images:
                async with limiter:
                    await self.push_image(corpus, image)

        # The first image goes alone so later repos can mount its shared base layers.
        first = corpus.images[0]
        await self.push_image(corpus, first)
        async with trio.open_nursery() as nursery:
            for images in by_repo.values():
                rest = [image for image in images if image is not first]
                if rest:
                    nursery.start_soon(push_repo, rest)
        return self.stats


def make_client(
    username: str | None = None, password: str | None = None, *, timeout: float = 60.0
) -> httpx.AsyncClient:
    """An httpx client for registries on loopback: token/basic auth on demand, redirects followed."""
    auth = RegistryAuth(username, password) if username is not None else RegistryAuth()
    return httpx.AsyncClient(auth=auth, timeout=timeout, follow_redirects=True)


async def push_corpus(
    corpus: Corpus,
    base_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 4,
    mount: bool = True,
) -> PushStats:
    """Push every blob, manifest, tag and referrer of `corpus` to the registry at `base_url`."""
    if client is not None:
        return await CorpusPusher(client, base_url, mount=mount).push(
            corpus, concurrency=concurrency
        )
    async with make_client(username, password) as own:
        return await CorpusPusher(own, base_url, mount=mount).push(corpus, concurrency=concurrency)


async def seed_registry(
    base_url: str,
    spec: CorpusSpec | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    concurrency: int = 4,
) -> Corpus:
    """Plan the corpus for `spec` and push it; returns the plan (repo -> tag -> digest, blobs)."""
    corpus = build_corpus(spec or CorpusSpec())
    await push_corpus(
        corpus, base_url, username=username, password=password, concurrency=concurrency
    )
    return corpus


async def verify_corpus(
    corpus: Corpus,
    base_url: str,
    *,
    client: httpx.AsyncClient | None = None,
    username: str | None = None,
    password: str | None = None,
    repo_map: Mapping[str, str] | None = None,
    check_blob_bytes: bool = False,
) -> list[str]:
    """Compare a registry's content with the plan; returns the problems found (empty = faithful).

    Every tag must resolve to the planned digest with byte-identical manifests (children
    included), every blob must exist with its size (and bytes, when asked). `repo_map` renames
    source repositories to where a copy put them.
    """
    own = client is None
    http = client or make_client(username, password)
    base = httpx.URL(base_url.rstrip("/") + "/")
    problems: list[str] = []
    try:
        for image in corpus.images:
            repo = (repo_map or {}).get(image.repo, image.repo)
            tagged = await send_with_retry(
                http,
                "GET",
                base.join(f"v2/{repo}/manifests/{image.tag}"),
                headers={"Accept": MANIFEST_ACCEPT},
            )
            if tagged.status_code != 200:
                problems.append(f"{repo}:{image.tag}: GET manifest -> {tagged.status_code}")
                continue
            if sha256_digest(tagged.content) != image.digest:
                problems.append(
                    f"{repo}:{image.tag}: digest {sha256_digest(tagged.content)} != {image.digest}"
                )
            for digest in image.manifests[:-1] + image.referrers:
                got = await send_with_retry(
                    http,
                    "GET",
                    base.join(f"v2/{repo}/manifests/{digest}"),
                    headers={"Accept": MANIFEST_ACCEPT},
                )
                if got.status_code != 200 or got.content != corpus.manifests[digest].data:
                    problems.append(
                        f"{repo}@{digest}: manifest -> {got.status_code} or bytes differ"
                    )
            for digest in image.blobs:
                blob = corpus.blobs[digest]
                url = base.join(f"v2/{repo}/blobs/{digest}")
                if check_blob_bytes:
                    got = await send_with_retry(http, "GET", url)
                    if got.status_code != 200 or got.content != blob.data:
                        problems.append(
                            f"{repo}@{digest}: blob GET -> {got.status_code} or bytes differ"
                        )
                    continue
                got = await send_with_retry(http, "HEAD", url)
                size = got.headers.get("content-length")
                if got.status_code != 200 or size != str(blob.size):
                    problems.append(f"{repo}@{digest}: blob HEAD -> {got.status_code} size {size}")
    finally:
        if own:
            await http.aclose()
    return problems


def main(argv: list[str] | None = None) -> int:
    """`python -m stress.corpus URL [...]`: seed a registry by hand (e.g. one started by `make mock`)."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="python -m stress.corpus", description=main.__doc__)
    parser.add_argument("url", help="registry base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--namespace", default="corpus")
    parser.add_argument("--repos", type=int, default=2)
    parser.add_argument("--tags", type=int, default=2)
    parser.add_argument("--platforms", default="linux/amd64,linux/arm64", help="comma-separated")
    parser.add_argument("--format", choices=["oci", "docker"], default="oci")
    parser.add_argument("--single", type=int, default=0, help="single-platform tags per repo")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-size", default="1024:16384", help="MIN:MAX bytes")
    parser.add_argument("--shared", type=int, default=1, help="shared base layers")
    parser.add_argument("--referrers", type=int, default=0, help="referrers per image")
    parser.add_argument("--user", help="user name; the password comes from $CORPUS_PASSWORD")
    parser.add_argument("--json", action="store_true", help="print the full description")
    args = parser.parse_args(argv)
    try:
        lo, _, hi = args.layer_size.partition(":")
        spec = CorpusSpec(
            seed=args.seed,
            namespace=args.namespace,
            repositories=args.repos,
            tags_per_repo=args.tags,
            platforms=tuple(p for p in args.platforms.split(",") if p),
            index_format=args.format,
            single_platform_tags=args.single,
            layers_per_image=args.layers,
            layer_size=(int(lo), int(hi or lo)),
            shared_base_layers=args.shared,
            referrers_per_image=args.referrers,
        )
    except ValueError as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 3
    corpus = build_corpus(spec)
    password = os.environ.get("CORPUS_PASSWORD") if args.user else None
    try:
        stats = trio.run(
            lambda: push_corpus(corpus, args.url, username=args.user, password=password)
        )
    except (PushError, httpx.HTTPError) as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 2
    out = corpus.describe() if args.json else {**corpus.summary(), "push": stats.to_dict()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
