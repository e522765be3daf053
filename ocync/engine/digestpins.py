"""Digest-pinned images (``digests:``, digests in ``tags.include``): each is discovered as
``ocync copy`` discovers its one image (ocync.engine.discovery.OneImage): the source's
manifest is fetched by digest (verified), pushed at the targets by digest, and also under
``tag_template`` when the mapping gives one. A digest is immutable: once the transfer cache
knows it is at every target, a pin costs no request at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, OneImage, TagOutcome
from ocync.engine.endpoints import TargetEndpoint
from ocync.oci.digestpin import render_tag

# The reason a warm pin is skipped (not "unchanged": no referrers refresh, no request).
PINNED_PRESENT = "pinned digest present"


def pin_spec(spec: MappingSpec, digest: str) -> MappingSpec:
    """``spec`` narrowed to one pinned image: the root must have ``digest``, so it is copied
    as pinned (``defaults.platforms`` would trim an index to another digest; a mapping's own
    ``platforms`` with pins is refused by the config)."""
    tag = None if spec.tag_template is None else render_tag(spec.tag_template, digest)
    return dataclasses.replace(spec, one_image=OneImage(tag, digest), digests=(), platforms=())


def pin_ref(spec: MappingSpec, digest: str) -> str:
    """What the target holds the pin under: the template's tag, else the digest itself."""
    assert spec.one_image is not None
    return spec.one_image.target_tag or digest


def known_pin(
    spec: MappingSpec, digest: str, targets: Mapping[str, TargetEndpoint], cache: TransferCache
) -> TagOutcome | None:
    """Every target already holds the pin by the cache's record: skipped without a request."""
    ref = pin_ref(spec, digest)
    if all(cache.tag_digest(targets[t.registry].host, t.repo, ref) == digest for t in spec.targets):
        return TagOutcome(digest, skipped=tuple((t, PINNED_PRESENT) for t in spec.targets), digest=digest)
    return None


__all__ = ["PINNED_PRESENT", "known_pin", "pin_ref", "pin_spec"]
