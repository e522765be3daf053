"""Pruning's decisions as pure functions: which target tags to delete, when to refuse.

Only tags ocync owns (ocync.engine.ownership) that the tag filter no longer selects are
candidates; ``keep`` globs and referrers tag-schema tags (``sha256-<hex>``, which belong to
their subject) never are. A run that would delete more than ``max_fraction`` of a
repository's owned tags is refused unless forced, and nothing is pruned when the source
listing failed or selected nothing: an empty answer looks the same as "everything vanished".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ocync.config.resolve import PrunePolicy
from ocync.oci.digestpin import REFERRERS_TAG


@dataclass(frozen=True, slots=True)
class PruneDecision:
    """For one target repository: the tags to delete (sorted), the unselected owned tags
    that ``keep`` protects, and the refusal (then nothing is deleted)."""

    delete: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    refusal: str | None = None
    refused: tuple[str, ...] = ()  # what would have been deleted without the refusal


def decide_prune(
    owned: Collection[str], selected: Collection[str], policy: PrunePolicy, *, force: bool = False
) -> PruneDecision:
    """``owned``: the repository's tags ocync owns for this mapping; ``selected``: what the
    filter pipeline selected this run. ``force`` (``--force-prune``) lifts only the
    ``max_fraction`` refusal."""
    wanted = set(selected)
    candidates = sorted(t for t in owned if t not in wanted and not REFERRERS_TAG.fullmatch(t))
    kept = tuple(t for t in candidates if policy.keeps(t))
    delete = tuple(t for t in candidates if not policy.keeps(t))
    # len / len is the correctly rounded quotient, so it compares with the configured
    # fraction exactly at the boundary (2 of 4 is 0.5: allowed; 3 of 4 is not).
    if delete and not force and len(delete) / len(owned) > policy.max_fraction:
        refusal = (
            f"would delete {len(delete)} of {len(owned)} tags ocync owns there, more than "
            f"prune.max_fraction {policy.max_fraction:g}: nothing pruned (--force-prune allows it)"
        )
        return PruneDecision((), kept, refusal, delete)
    return PruneDecision(delete, kept)


def source_refusal(error: str, listed: int | None, selected: int) -> str | None:
    """Why nothing may be pruned for a mapping (None: pruning may go on). ``listed`` is None
    when the tags were not listed (only literal includes)."""
    if error:
        return "the source tags could not be listed or selected"
    if listed == 0:
        return "the source listed no tags"
    if selected == 0:
        return "the tag filter selected no tags"
    return None


def digest_blockers(
    deleting: Mapping[str, str], others: Mapping[str, str | None]
) -> dict[str, tuple[str, ...]]:
    """Deleting by digest removes every tag on that digest: for each tag in ``deleting``
    (tag -> digest), the other target tags (``others``: tag -> digest, None when unknown)
    that point at the same digest. A tag with blockers must not be deleted by digest."""
    by_digest: dict[str, list[str]] = {}
    for tag, digest in others.items():
        if tag not in deleting and digest is not None:
            by_digest.setdefault(digest, []).append(tag)
    return {
        tag: tuple(sorted(by_digest[digest]))
        for tag, digest in deleting.items()
        if digest in by_digest
    }


@dataclass(frozen=True, slots=True)
class PruneEvent:
    """One tag pruning acted on: deleted, would be deleted (dry run), skipped or refused."""

    mapping: str
    target: str  # e.g. "dst/mirror/alpine:3.18"
    tag: str
    action: str  # "deleted" | "would_delete" | "skipped" | "refused" | "failed"
    digest: str = ""
    reason: str = ""

    def line(self) -> str:
        words = {"deleted": "pruned", "would_delete": "would prune"}
        head = f"{words.get(self.action, self.action)} {self.target}"
        digest = f" {self.digest[:19]}" if self.digest else ""
        return head + digest + (f": {self.reason}" if self.reason else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "target": self.target,
            "tag": self.tag,
            "action": self.action,
            "digest": self.digest,
            "reason": self.reason,
        }


__all__ = ["PruneDecision", "PruneEvent", "decide_prune", "digest_blockers", "source_refusal"]
