"""URLs of the distribution API: a registry's API base (Docker Hub's differs from its name),
origins (credentials go to one origin only), URLs a registry hands us (Location, Link)
resolved and checked, and the ``digest=`` query of the committing PUT.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import httpx

from ocync.errors import RegistryError
from ocync.oci.digest import Digest
from ocync.oci.reference import api_host, is_loopback_host, normalise_registry
from ocync.registry.neterrors import redact_url
from ocync.registry.origin import Origin


def registry_base_url(registry: str, insecure: bool = False) -> tuple[str, str]:
    """``registry`` (name, ``host:port`` or URL) -> (registry name, API base URL).

    Loopback hosts use plain HTTP, as Docker does; others HTTPS unless ``insecure``."""
    text = registry.strip().rstrip("/")
    if "://" in text:
        scheme, _, host = text.partition("://")
        host = host.split("/", 1)[0]
        name = normalise_registry(host)
        return name, f"{scheme.lower()}://{host}"
    name = normalise_registry(text)
    host = api_host(name)
    scheme = "http" if insecure or is_loopback_host(host) else "https"
    return name, f"{scheme}://{host}"


def join_url(base: str, reference: str) -> str:
    try:
        return str(httpx.URL(base).join(reference))
    except httpx.InvalidURL as exc:
        raise RegistryError(f"{redact_url(base)}: the registry sent an invalid URL ({exc})") from None


def check_url(url: str) -> None:
    """A URL a registry handed us (Location, Link) must be one we can request."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RegistryError(f"{redact_url(url)}: the registry sent an invalid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RegistryError(f"{redact_url(url)}: the registry sent a URL that is not http(s)://host/...")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise RegistryError(f"{redact_url(url)}: the registry sent a URL with port {parsed.port}")


def location_url(request_url: str, location: str | None, status: int) -> str:
    """The absolute URL of a ``Location`` header (upload sessions are followed verbatim)."""
    if not location:
        raise RegistryError(f"{redact_url(request_url)}: HTTP {status} without a Location header")
    url = join_url(request_url, location) if "://" not in location else location
    check_url(url)
    return url


def next_link(headers: httpx.Headers, current: str) -> str | None:
    """The ``rel="next"`` target of a Link header (RFC 8288), resolved against ``current``."""
    for value in headers.get_list("link"):
        for part in value.split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if target.startswith("<") and target.endswith(">") and 'rel="next"' in params.replace(" ", "") or (
                target.startswith("<") and "rel=next" in params.replace(" ", "")
            ):
                return join_url(current, target[1:-1])
    return None


def digest_query(location: str, digest: Digest) -> str:
    """``location`` with ``digest=`` appended to its query, everything else kept verbatim."""
    sep = "&" if urlsplit(location).query else ("" if location.endswith("?") else "?")
    return f"{location}{sep}digest={quote(str(digest), safe=':')}"


__all__ = [
    "Origin",
    "check_url",
    "digest_query",
    "join_url",
    "location_url",
    "next_link",
    "registry_base_url",
]
