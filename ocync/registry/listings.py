"""The listing requests of the distribution API: tags, the catalog and referrers, each
following ``Link: <...>; rel="next"`` pages (distribution-spec) and stopping on a Link loop."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from ocync.errors import ManifestError, RegistryError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import MAX_MANIFEST_SIZE, Descriptor, parse_manifest
from ocync.registry.requestcore import RequestCore, Response, registry_error
from ocync.registry.urls import next_link

# The token scope of the catalog (distribution's token auth: "registry:catalog:*").
CATALOG_SCOPE = "registry:catalog:*"


def _not_json(what: str, response: Response) -> RegistryError:
    ctype = mt.base_type(response.headers.get("content-type", "")) or "no Content-Type"
    hint = " (is this a registry?)" if "html" in ctype else ""
    return RegistryError(f"{what}: the answer is not JSON ({ctype}){hint}", status=response.status)


class ListingRequests(RequestCore):
    """Tags, catalog pages and referrers of one registry (a part of RegistryClient)."""

    async def _names_page(
        self, kind: str, url: str, scopes: tuple[str, ...], key: str, what: str
    ) -> tuple[list[str], Response]:
        """One page of a JSON listing (``{"tags": [...]}``, ``{"repositories": [...]}``):
        the strings under ``key`` (anything else on the page is ignored) and the response."""
        response = await self._exchange(
            kind, "GET", url, scopes=scopes, ok=(200,), max_body=64 * 1024 * 1024
        )
        if response.status != 200:
            raise registry_error("GET", url, response.status, response.body, what)
        try:
            doc = json.loads(response.body)
        except (ValueError, RecursionError):
            raise _not_json(what, response) from None
        page = doc.get(key) if isinstance(doc, dict) else None
        return [x for x in page or [] if isinstance(x, str)], response

    async def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """All tags, following ``Link: <...>; rel="next"`` pages (distribution-spec)."""
        n = page_size or self.profile.tags_page_size
        url = self.url(f"{repository}/tags/list") + (f"?n={n}" if n else "")
        tags: list[str] = []
        known: set[str] = set()
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            page, response = await self._names_page(
                "tags_list", url, self._scopes(repository), "tags",
                f"listing tags of {self.name}/{repository}",
            )
            found = [t for t in page if t not in known]
            known.update(found)
            tags += found
            # A page with nothing new that still points further is a Link loop with fresh
            # URLs each time (a broken registry): stop rather than page forever.
            url = (next_link(response.headers, url) or "") if found else ""
        return tags

    async def catalog_page(self, url: str | None = None) -> tuple[list[str], str | None]:
        """One page of ``GET /v2/_catalog`` (distribution-spec "Listing Repositories"): the
        repositories on it and the next page's URL from ``Link: <...>; rel="next"`` (None:
        the last). ``url`` None asks for the first page, with ``n`` only where the profile
        says. Every page must be followed: a client stopping after the first page of 100
        sees a tenth of a thousand repositories (a bug seen in regclient)."""
        n = self.profile.catalog_page_size
        first = self.url("_catalog") + (f"?n={n}" if n else "")
        url = url or first
        repos, response = await self._names_page(
            "catalog", url, (CATALOG_SCOPE,), "repositories",
            f"listing the repositories of {self.name} (catalog)",
        )
        # An empty page that still points further would page forever: stop.
        following = next_link(response.headers, url) if repos else None
        return repos, (following if following and following != url else None)

    async def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """OCI 1.1 referrers of ``digest``; None when the API is unsupported (then use the
        ``sha256-<hex>`` tag fallback)."""
        if self.profile.referrers_api is False:
            return None
        url = self.url(f"{repository}/referrers/{digest}")
        if artifact_type:
            url += "?" + urlencode({"artifactType": artifact_type})
        out: list[Descriptor] = []
        known: set[Digest] = set()
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            response = await self._exchange(
                "referrers", "GET", url, scopes=self._scopes(repository), ok=(200,), max_body=MAX_MANIFEST_SIZE
            )
            if response.status in (404, 405, 400) and not out:
                return None
            if response.status != 200:
                raise registry_error("GET", url, response.status, response.body, f"referrers of {self.name}/{repository}@{digest.short}")
            if not mt.is_index(response.headers.get("content-type", "")):
                return None
            try:
                index = parse_manifest(response.body, mt.OCI_INDEX)
            except ManifestError:
                return None
            fresh = [d for d in index.manifests if d.digest not in known]
            known.update(d.digest for d in fresh)
            out += [d for d in fresh if artifact_type is None or d.artifact_type == artifact_type]
            url = (next_link(response.headers, url) or "") if fresh else ""  # nothing new: a Link loop
        return out


__all__ = ["CATALOG_SCOPE", "ListingRequests"]
