"""Routing: which OCI Distribution API endpoint (spec 1.1, "Endpoints") a method and path name,
the request kind it is counted under, and the name, tag and digest grammars the router applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# OCI Distribution Spec 1.1, "Pulling manifests": repository names and tags.
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# What distribution's router accepts as a digest before parsing it (go-digest's DigestRegexp);
# anything else is a router miss (404).
DIGEST_SHAPE_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
NAME_MAX = 255  # distribution's reference.NameTotalLengthMax


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_RE.fullmatch(name) is not None


_UPLOAD_KINDS = {"PATCH": "upload_patch", "PUT": "upload_put", "GET": "upload_get",
                 "HEAD": "upload_get", "DELETE": "upload_delete"}
_BLOB_KINDS = {"HEAD": "blob_head", "GET": "blob_get"}
_MANIFEST_KINDS = {"HEAD": "manifest_head", "GET": "manifest_get", "PUT": "manifest_put",
                   "DELETE": "manifest_delete"}


def classify(method: str, path: str, query: Mapping[str, list[str]]) -> tuple[str, str, dict[str, str]]:
    """(kind, route, params) for a request; kinds are the counter names in `stats.KINDS`, which
    ocync's client counts under the same names (a test keeps the two lists equal).

    String splitting rather than a list of regexes: this runs for every request.
    """
    if path in ("/v2/", "/v2"):
        return "ping", "ping", {}
    if path == "/token":
        return "token", "token", {}
    if path == "/v2/_catalog":
        return "catalog", "catalog", {}
    if not path.startswith("/v2/"):
        return "other", "", {}
    head, _, last = path[4:].rpartition("/")
    if not head or not last and not head.endswith(("/blobs/uploads", "/blobs/upload")):
        return "other", "", {}
    name, _, section = head.rpartition("/")
    if section in ("uploads", "upload"):
        name, _, blobs = name.rpartition("/")
        if blobs != "blobs" or not name:
            return "other", "", {}
        if method == "POST" and not last:
            kind = "mount" if "mount" in query else "upload_post"
        else:
            kind = _UPLOAD_KINDS.get(method, "other")
        return kind, "upload", {"name": name, "id": last}
    if not name:
        return "other", "", {}
    if section == "blobs" and last in ("uploads", "upload") and method == "POST":
        # `/blobs/uploads` without the trailing slash (distribution redirects it; we just serve it).
        return ("mount" if "mount" in query else "upload_post"), "upload", {"name": name, "id": ""}
    if section == "blobs":
        return _BLOB_KINDS.get(method, "other"), "blob", {"name": name, "digest": last}
    if section == "manifests":
        return _MANIFEST_KINDS.get(method, "other"), "manifest", {"name": name, "ref": last}
    if section == "tags" and last == "list":
        return "tags_list", "tags", {"name": name}
    if section == "referrers":
        return "referrers", "referrers", {"name": name, "digest": last}
    return "other", "", {}
