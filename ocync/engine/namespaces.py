"""Pattern mappings (``from: team/*``): the source's catalog, page by page, becomes concrete
mappings handed to discovery as they are found, so the first copies start after the first
page and a 10,000-repository namespace never sits in memory as a list of plans.

Which repository lands where is pure (ocync.oci.repopattern); this module pages the catalog
(distribution-spec "Listing Repositories": every ``Link: rel="next"`` page is followed),
applies ``--shard`` with the literal mappings' key function, and keeps two mappings from
writing one target repository: a literal mapping always wins over an expansion, and of two
expansions the first to reach a repository wins; the other skips it with a warning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import trio

from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.endpoints import CatalogSource, SourceEndpoint
from ocync.engine.sharding import Shard, mapping_key, shard_of
from ocync.errors import OcyncError, Unauthorized
from ocync.oci.repopattern import RepoPattern, excluded, target_repository


def expand_spec(spec: MappingSpec, repository: str) -> MappingSpec | None:
    """The concrete mapping ``repository`` gives under ``spec``'s pattern (None: it does not
    match, or an ``exclude`` glob drops it)."""
    pattern = spec.source_pattern
    assert pattern is not None
    suffix = pattern.match(repository)
    if suffix is None or excluded(repository, spec.exclude):
        return None
    return dataclasses.replace(
        spec,
        name=f"{spec.name} [{repository}]",
        source_repo=repository,
        targets=tuple(TargetRepo(t.registry, target_repository(t.repo, suffix)) for t in spec.targets),
        source_pattern=None,
        exclude=(),
    )


def spec_key(spec: MappingSpec, hosts: Mapping[str, str]) -> str:
    """The ``--shard`` key of a concrete mapping: the same as a literal mapping's."""
    return mapping_key(
        hosts[spec.source], spec.source_repo, ((hosts[t.registry], t.repo) for t in spec.targets)
    )


class TargetClaims:
    """Which mapping writes each (target host, repository): literal mappings first."""

    def __init__(self, literal: Iterable[MappingSpec], hosts: Mapping[str, str]) -> None:
        self.hosts = hosts
        self._owner: dict[tuple[str, str], str] = {}
        for spec in literal:
            for t in spec.targets:
                self._owner.setdefault((hosts[t.registry], t.repo), spec.name)

    def claim(self, spec: MappingSpec) -> tuple[MappingSpec | None, list[str]]:
        """``spec`` without the targets another mapping writes (None: none left), and a
        warning for each of those."""
        kept: list[TargetRepo] = []
        warnings: list[str] = []
        for t in spec.targets:
            key = (self.hosts[t.registry], t.repo)
            owner = self._owner.setdefault(key, spec.name)
            if owner == spec.name:
                kept.append(t)
            else:
                warnings.append(f"{spec.name}: skipped {t.label()}, which {owner} writes")
        if not kept:
            return None, warnings
        return dataclasses.replace(spec, targets=tuple(kept)), warnings

    def __repr__(self) -> str:
        return f"<TargetClaims {len(self._owner)} target repositories>"


@dataclass(slots=True)
class NamespaceListing:
    """What one pattern mapping's catalog gave (the dry run's and the report's account)."""

    mapping: str
    pattern: str
    pages: int = 0
    listed: int = 0  # repositories the catalog named
    matched: int = 0  # under the pattern (excluded ones too)
    excluded: int = 0
    other_shard: int = 0
    claimed_elsewhere: int = 0
    repositories: list[str] = field(default_factory=list)  # started (dry run: all)
    error: str = ""
    auth_failure: bool = False
    complete: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "mapping": self.mapping,
            "pattern": self.pattern,
            "catalog_pages": self.pages,
            "listed": self.listed,
            "matched": self.matched,
            "excluded": self.excluded,
            "other_shard": self.other_shard,
            "claimed_elsewhere": self.claimed_elsewhere,
            "repositories": sorted(self.repositories),
            "complete": self.complete,
            "error": self.error,
        }


def _admit(
    spec: MappingSpec,
    pattern: RepoPattern,
    repo: str,
    claims: TargetClaims,
    shard: Shard | None,
    listing: NamespaceListing,
    warn: Callable[[str], None],
) -> MappingSpec | None:
    """The concrete mapping of one listed repository, or None (counted in ``listing``) when
    the pattern does not match, ``exclude`` drops it, another shard owns it, or a literal
    mapping claims its target."""
    if pattern.match(repo) is None:
        return None
    listing.matched += 1
    concrete = expand_spec(spec, repo)
    if concrete is None:
        listing.excluded += 1
        return None
    if shard is not None and shard_of(spec_key(concrete, claims.hosts), shard.count) != shard.index:
        listing.other_shard += 1
        return None
    kept, warnings = claims.claim(concrete)
    for w in warnings:
        warn(w)
    if kept is None:
        listing.claimed_elsewhere += 1
    return kept


async def expand_namespace(
    spec: MappingSpec,
    source: SourceEndpoint,
    claims: TargetClaims,
    discover: Callable[[MappingSpec], Awaitable[None]],
    *,
    shard: Shard | None,
    concurrency: int,
    listing: NamespaceListing,
    warn: Callable[[str], None],
    keep_names: bool = False,
) -> None:
    """Page the catalog; start ``discover`` for each concrete mapping, at most
    ``concurrency`` at once (a full engine channel holds the paging back too). A listing
    error ends the paging (``listing.error``) and lets the started mappings finish."""
    if not isinstance(source, CatalogSource):
        listing.error = f"{spec.name}: source {spec.source} cannot list its repositories"
        return
    slots = trio.Semaphore(concurrency)
    pattern = spec.source_pattern
    assert pattern is not None

    async def run(concrete: MappingSpec) -> None:
        try:
            await discover(concrete)
        finally:
            slots.release()

    async with trio.open_nursery() as nursery:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            try:
                repos, cursor = await source.catalog_page(cursor)
            except OcyncError as exc:
                listing.error = f"{spec.name}: listing the catalog: {exc}"
                listing.auth_failure = isinstance(exc, Unauthorized)
                break
            listing.pages += 1
            listing.listed += len(repos)
            for repo in repos:
                kept = _admit(spec, pattern, repo, claims, shard, listing, warn)
                if kept is None:
                    continue
                if keep_names:
                    listing.repositories.append(repo)
                await slots.acquire()
                nursery.start_soon(run, kept)
            if cursor is None or cursor in seen:  # a Link loop (a broken registry) ends it
                listing.complete = True
                break
            seen.add(cursor)
    if listing.complete and listing.matched == 0:
        # Not a silent empty sync: say that nothing matched.
        warn(f"{spec.name}: no repository of {spec.source}'s catalog ({listing.listed} listed) "
             f"matches {pattern}")


__all__ = [
    "NamespaceListing",
    "TargetClaims",
    "expand_namespace",
    "expand_spec",
    "spec_key",
]
