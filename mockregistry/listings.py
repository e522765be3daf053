"""The listing endpoints (OCI Distribution Spec 1.1, "Listing Tags" and "Listing Referrers"; the
catalog is distribution's): paging with `n`/`last` and a `Link` header, tags, catalog, referrers.
"""

from __future__ import annotations

from urllib.parse import quote

from .http import Request, Response, error, json_response
from .manifests import OCI_INDEX
from .quirks import Profile
from .store import Store, parse_digest


def page(items: list[str], n_text: str | None, last: str | None, default: int | None
         ) -> tuple[list[str], bool]:
    """Slice a sorted list after ``last``, at most ``n`` (or ``default``) items; (page, more)."""
    if last:
        items = [item for item in items if item > last]
    limit = default
    # distribution ignores an `n` that is not a number; so do we.
    if n_text is not None and n_text.isdigit():
        limit = int(n_text)
    if limit is None or len(items) <= limit:
        return items, False
    if limit == 0:
        return [], False
    return items[:limit], True


def tags_response(req: Request, store: Store, profile: Profile, name: str) -> Response:
    if req.method not in ("GET", "HEAD"):
        return error(405, "UNSUPPORTED")
    repo = store.repo(name)
    if repo is None or not (repo.tags or repo.manifests or repo.tagged):
        return error(404, "NAME_UNKNOWN", {"name": name})
    n_text = req.arg("n")
    if n_text is not None and n_text.isdigit() and int(n_text) == 0:
        # distribution 2.8 answers `?n=0` with every tag (observed: it ignores `n` on
        # tags/list); an empty page would also leave no `last` to continue from.
        n_text = None
    tags, more = page(sorted(repo.tags), n_text, req.arg("last"), profile.tags_page_size)
    if not tags and not more and profile.empty_tags_null:
        return json_response({"name": name, "tags": None})
    headers: list[tuple[str, str]] = []
    if more:
        n = len(tags)
        headers.append(("Link", f'</v2/{name}/tags/list?last={quote(tags[-1])}&n={n}>; rel="next"'))
    return json_response({"name": name, "tags": tags}, headers=headers)


def catalog_response(req: Request, store: Store, profile: Profile) -> Response:
    names = [n for n, r in store.repos.items() if r.manifests or r.blobs or r.tags]
    repos, more = page(sorted(names), req.arg("n"), req.arg("last"), profile.catalog_page_size)
    headers: list[tuple[str, str]] = []
    if more:
        headers.append(("Link", f'</v2/_catalog?last={quote(repos[-1])}&n={len(repos)}>; rel="next"'))
    return json_response({"repositories": repos}, headers=headers)


def referrers_response(req: Request, store: Store, profile: Profile, name: str, digest: str) -> Response:
    if not profile.referrers_api:
        return error(404, "MANIFEST_UNKNOWN", digest)
    if parse_digest(digest) is None:
        return error(400, "DIGEST_INVALID", digest, message="invalid digest")
    wanted = req.arg("artifactType")
    descriptors = []
    for record in store.referrers(name, digest):
        if wanted and record.artifact_type != wanted:
            continue
        desc: dict[str, object] = {
            "mediaType": record.media_type, "digest": record.digest, "size": record.size,
        }
        if record.artifact_type:
            desc["artifactType"] = record.artifact_type
        if record.annotations:
            desc["annotations"] = dict(record.annotations)
        descriptors.append(desc)
    headers = [("OCI-Filters-Applied", "artifactType")] if wanted else []
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return json_response(index, content_type=OCI_INDEX, headers=headers)
