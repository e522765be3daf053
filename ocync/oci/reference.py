"""Image references parsed and normalised as Docker does (distribution/reference:
``normalize.go`` and ``regexp.go``): default registry ``docker.io`` (API host
``registry-1.docker.io``), ``library/`` for one-component Docker Hub names, ``host:port``,
tags, digests and ``name:tag@digest``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ocync.errors import ReferenceError_
from ocync.oci.digest import Digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Names Docker folds into docker.io (normalize.go: legacyDefaultDomain).
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

# distribution/reference regexp.go
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
NAME_MAX_LENGTH = 255  # regexp.go: NameTotalLengthMax


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest if any, else the tag, else ``latest``."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ``[::1]`` (with or without a port): plain HTTP by
    default, as Docker treats them (docker/registry: ``isSecureIndex`` loopback rule)."""
    name = split_port(host)[0].lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def split_port(host: str) -> tuple[str, int | None]:
    """``host:port`` -> (host, port); understands bracketed IPv6."""
    if host.startswith("["):
        end = host.find("]")
        if end != -1 and host[end + 1 : end + 2] == ":" and host[end + 2 :].isdigit():
            return host[: end + 1], int(host[end + 2 :])
        return host, None
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        if port.isdigit():
            return name, int(port)
    return host, None


def normalise_registry(host: str) -> str:
    host = host.strip()
    if host.lower() in _HUB_ALIASES:
        return DOCKER_HUB
    return host


def normalise_repository(registry: str, path: str) -> str:
    """Docker Hub's one-component names live under ``library/`` (normalize.go); ``registry``
    is a normalised registry name (:func:`normalise_registry`)."""
    if registry == DOCKER_HUB and "/" not in path:
        return f"library/{path}"
    return path


def api_host(registry: str) -> str:
    """The host the distribution API of a normalised registry name is served on: Docker Hub's
    (``registry-1.docker.io``) differs from its name."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def is_valid_tag(tag: str) -> bool:
    """A tag per the distribution spec: ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""
    return _TAG_RE.fullmatch(tag) is not None


def parse_reference(text: str) -> Reference:
    """Parse ``text`` into a normalised :class:`Reference`; one-line error on bad input."""
    if not text or text != text.strip():
        raise ReferenceError_(f"invalid reference {text!r}: empty or surrounded by spaces")
    if "://" in text:
        scheme, _, rest = text.partition("://")
        raise ReferenceError_(
            f"invalid reference {text[:120]!r}: no {scheme}:// in image references (write {rest[:100]!r}; "
            "loopback registries use plain HTTP by default, others need --insecure)"
        )
    remainder = text
    digest: Digest | None = None
    if "@" in remainder:
        remainder, _, digest_text = remainder.rpartition("@")
        try:
            digest = Digest.parse(digest_text)
        except ReferenceError_ as exc:
            raise ReferenceError_(f"invalid reference {text!r}: {exc}") from None
    tag: str | None = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not is_valid_tag(tag):
            raise ReferenceError_(
                f"invalid reference {text!r}: bad tag {tag!r} "
                "(letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')"
            )
    registry, path = _split_domain(remainder, text)
    components = path.split("/")
    for component in components:
        if not _PATH_COMPONENT_RE.match(component):
            raise ReferenceError_(
                f"invalid reference {text!r}: bad repository component {component!r} "
                "(lowercase letters, digits and single separators . _ __ -)"
            )
    path = normalise_repository(registry, path)
    if len(registry) + 1 + len(path) > NAME_MAX_LENGTH:
        raise ReferenceError_(
            f"invalid reference {text[:80]!r}...: name longer than {NAME_MAX_LENGTH} characters"
        )
    return Reference(registry, path, tag, digest)


def _split_domain(name: str, text: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return DOCKER_HUB, name
    # normalize.go splitDockerDomain: the first component is a host when it has a dot,
    # a port, is "localhost", or has uppercase letters.
    if "." not in first and ":" not in first and first != "localhost" and first == first.lower():
        return DOCKER_HUB, name
    host_part = first.rpartition("]")[2] if first.startswith("[") else first
    port = host_part.partition(":")[2]
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        # A TCP port is 1-65535 (RFC 793); regexp.go accepts any digits, a socket would not.
        raise ReferenceError_(
            f"invalid reference {text!r}: bad port {port!r} in registry host {first!r} (1-65535)"
        )
    if not _DOMAIN_RE.match(first):
        raise ReferenceError_(f"invalid reference {text!r}: bad registry host {first!r}")
    return normalise_registry(first), rest


def parse_repository(text: str) -> tuple[str, str]:
    """``host/repo`` or ``repo`` (Docker Hub) without tag or digest -> (registry, repository)."""
    ref = parse_reference(text)
    if ref.tag is not None or ref.digest is not None:
        raise ReferenceError_(f"invalid repository {text!r}: must not have a tag or digest")
    return ref.registry, ref.repository


__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "Reference",
    "api_host",
    "is_loopback_host",
    "is_valid_tag",
    "normalise_registry",
    "normalise_repository",
    "parse_reference",
    "parse_repository",
    "split_port",
]
