"""One (image, target): the image's tree (blobs, then children, then the tag's manifest:
:mod:`ocync.engine.blobplacement`), pushed again without trusting the cache when the target
refuses it for a blob the cache claimed, then its referrers (:mod:`ocync.engine.referrers`).
Every outcome, an interrupted one too, becomes an :class:`ImageResult`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from ocync.engine.blobplacement import BlobPlacement, push_tree_checked, repository_is_fresh
from ocync.engine.discovery import TargetRepo, WorkItem
from ocync.engine.referrers import ReferrerSet, copy_referrers
from ocync.engine.report import BlobCounts, ImageResult, ImageStatus, redact
from ocync.engine.runstate import RunState
from ocync.errors import OcyncError

log = logging.getLogger("ocync.engine.transfer")

@dataclass(slots=True)
class TransferProgress:
    """How far one transfer got, kept outside it so that a transfer cancelled by an
    interrupt's drain deadline can still be reported (:func:`interrupted_result`)."""

    tally: BlobCounts = field(default_factory=BlobCounts)
    tag_pushed: bool = False
    referrers_wanted: int = 0


def failed_result(item: WorkItem, dest: TargetRepo, exc: OcyncError, seconds: float = 0.0) -> ImageResult:
    return ImageResult.failed(
        item.mapping.name,
        item.mapping.source_label(item.tag),
        dest.label(item.push_tag),
        exc,
        digest=item.tree.digest,
        seconds=seconds,
    )


def interrupted_result(
    item: WorkItem, dest: TargetRepo, progress: TransferProgress, seconds: float = 0.0
) -> ImageResult:
    """A transfer cut off by an interrupt, as far as it got: its tag may already be live
    (blobs and children are pushed before it) with referrers still missing."""
    tally = progress.tally
    if progress.tag_pushed:
        missing = max(progress.referrers_wanted - tally.referrers, 0)
        reason = f"tag pushed, {missing} referrer(s) not copied"
    else:
        reason = "tag not pushed"
    return ImageResult.synced(
        item.mapping.name,
        item.mapping.source_label(item.tag),
        dest.label(item.push_tag),
        item.tree.digest,
        tally,
        status=ImageStatus.INTERRUPTED,
        reason=f"interrupted: {reason}",
        seconds=seconds,
    )


async def transfer_image(
    ctx: RunState,
    item: WorkItem,
    dest: TargetRepo,
    referrers: ReferrerSet | None = None,
    progress: TransferProgress | None = None,
) -> ImageResult:
    """Copy one work item to one target; failures become the result, never an exception.
    ``referrers`` come from :func:`find_referrers` (looked up once per item); ``progress``
    is updated as the transfer goes (read by the caller if it is cancelled)."""
    start = trio.current_time()
    progress = progress if progress is not None else TransferProgress()
    progress.referrers_wanted = len(referrers.trees) if referrers is not None else 0
    tally = progress.tally
    source = ctx.sources[item.mapping.source]
    target = ctx.targets[dest.registry]
    stage_hint = len({ctx.targets[t.registry].host for t in item.targets}) > 1
    label_src = item.mapping.source_label(item.tag)
    label_dst = dest.label(item.push_tag)

    try:
        if referrers is not None and referrers.trees and target.referrers_api is not True:
            # Whether the repository is new to this run decides whether copy_referrers must
            # read the target's tag-schema index before merging into it: ask before writing.
            await repository_is_fresh(ctx, target, dest.repo)
        placement = BlobPlacement(
            ctx, target, dest.repo, source, item.mapping.source_repo, tally, stage_hint=stage_hint
        )
        await push_tree_checked(placement, item.tree, item.push_tag, label_dst)
        progress.tag_pushed = True
        if referrers is not None:
            await copy_referrers(placement, item.tree.digest, referrers)
    except OcyncError as exc:
        return ImageResult.failed(
            item.mapping.name, label_src, label_dst, exc, digest=item.tree.digest, counts=tally,
            seconds=trio.current_time() - start,
        )
    except Exception as exc:  # a bug must not stop the other images
        log.debug("internal error while copying %s", label_dst, exc_info=True)
        return ImageResult(
            mapping=item.mapping.name,
            source=label_src,
            target=label_dst,
            status=ImageStatus.FAILED,
            digest=item.tree.digest,
            reason=redact(f"internal error: {type(exc).__name__}: {exc}"),
            seconds=trio.current_time() - start,
        )
    return ImageResult.synced(
        item.mapping.name, label_src, label_dst, item.tree.digest, tally,
        seconds=trio.current_time() - start,
    )


__all__ = [
    "TransferProgress",
    "failed_result",
    "interrupted_result",
    "transfer_image",
]
