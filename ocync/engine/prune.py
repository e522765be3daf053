"""Pruning at the end of a sync run: record which target tags ocync owns, then delete the
owned tags the filter no longer selects (decisions: ocync.engine.prunepolicy).

Before a delete, one manifest HEAD checks the tag still holds the digest ocync left there
(another writer may have moved it: then it is not ocync's any more). A tag is deleted by
tag where the registry can (OCI distribution 1.1); otherwise by digest, only when no other
tag at the target points at that digest (deleting a digest removes every tag on it).
Every request goes through the target's client, so through its principal's controller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ocync.config.resolve import RegistrySettings, ResolvedMapping
from ocync.engine.discovery import MappingDiscovery, MappingSpec, TargetRepo, literal_only
from ocync.engine.endpoints import TargetEndpoint
from ocync.engine.prunepolicy import PruneEvent, decide_prune, digest_blockers, source_refusal
from ocync.engine.report import RunReport, redact
from ocync.engine.runstate import RunState
from ocync.errors import ConfigError, OcyncError, RegistryError
from ocync.registry.profiles import RegistryProfile, select_profile

log = logging.getLogger("ocync.engine.prune")


def check_prune_targets(resolved: Iterable[ResolvedMapping]) -> None:
    """ConfigError naming the first mapping that prunes a target whose registry cannot delete
    through the distribution API (GHCR: package versions go through GitHub's REST API)."""
    for m in resolved:
        if not m.prune.enabled:
            continue
        for target in m.targets:
            if target.path is not None:
                raise ConfigError(
                    f"{m.label}: prune is set but target {target.name!r} is an OCI layout "
                    "(pruning deletes through the distribution API): remove prune from this "
                    "mapping"
                )
            if not _profile_of(target).manifest_delete:
                raise ConfigError(
                    f"{m.label}: prune is set but target registry {target.name!r} "
                    f"({_profile_of(target).name} profile) cannot delete tags through the "
                    "registry API (GHCR deletes package versions only through GitHub's REST "
                    "API): remove prune from this mapping"
                )


def _profile_of(reg: RegistrySettings) -> RegistryProfile:
    return select_profile(reg.host, reg.profile)


def source_ref(ctx: RunState, mapping: MappingSpec) -> str:
    """Whose tags these are: the mapping's source repository, ``host/repo``."""
    return f"{ctx.sources[mapping.source].host}/{mapping.source_repo}"


def record_ownership(ctx: RunState, discoveries: Iterable[MappingDiscovery]) -> None:
    """Every selected tag the cache knows at a target (ocync pushed or verified it) is owned
    by its mapping from now on."""
    for d in discoveries:
        m = d.mapping
        if d.selection is None or m.one_image is not None:
            continue
        source = source_ref(ctx, m)
        for t in m.targets:
            host = ctx.targets[t.registry].host
            for tag in d.selection.tags:
                digest = ctx.cache.tag_digest(host, t.repo, tag)
                if digest is not None:
                    ctx.cache.owned.record(host, t.repo, tag, digest, source)


@dataclass(slots=True)
class PruneRun:
    """One run's pruning: what it learned about tag deletion per target registry."""

    ctx: RunState
    report: RunReport
    force: bool = False
    dry_run: bool = False
    # registry host -> False once a tag DELETE was refused (then by digest for the run)
    tag_delete: dict[str, bool] = field(default_factory=dict)

    async def prune_all(self, discoveries: Iterable[MappingDiscovery]) -> None:
        for d in discoveries:
            if d.mapping.prune is not None and d.mapping.prune.enabled and d.mapping.one_image is None:
                await self.prune_mapping(d)

    async def prune_mapping(self, d: MappingDiscovery) -> None:
        m = d.mapping
        assert m.prune is not None
        selected = d.selection.tags if d.selection is not None else ()
        listing = m.list_tags and not literal_only(m.tag_filter)
        why = source_refusal(d.error, d.listed if listing else None, len(selected))
        if why is not None:
            self.report.warnings.append(f"mapping {m.name}: nothing pruned: {why}")
            return
        source = source_ref(self.ctx, m)
        for t in m.targets:
            endpoint = self.ctx.targets[t.registry]
            owned = self.ctx.cache.owned.owned_tags(endpoint.host, t.repo, source)
            decision = decide_prune(owned, selected, m.prune, force=self.force)
            if decision.refusal is not None:
                self.report.add_error(f"mapping {m.name}: {t.label()}: prune refused: {decision.refusal}")
                for tag in decision.refused:
                    self._event(m, t, tag, "refused", owned[tag], decision.refusal)
                continue
            if decision.delete:
                await self._prune_target(m, t, endpoint, {tag: owned[tag] for tag in decision.delete})

    def _event(
        self, m: MappingSpec, t: TargetRepo, tag: str, action: str, digest: str = "", reason: str = ""
    ) -> None:
        self.report.pruned.append(PruneEvent(m.name, t.label(tag), tag, action, digest, reason))

    def _forget(self, endpoint: TargetEndpoint, t: TargetRepo, tag: str) -> None:
        self.ctx.cache.forget_tag(endpoint.host, t.repo, tag)

    def _failed(self, m: MappingSpec, t: TargetRepo, tag: str, digest: str, exc: OcyncError) -> None:
        reason = redact(str(exc)) or type(exc).__name__
        self.report.add_error(f"mapping {m.name}: pruning {t.label(tag)}: {reason}")
        self._event(m, t, tag, "failed", digest, reason)

    async def _prune_target(
        self, m: MappingSpec, t: TargetRepo, endpoint: TargetEndpoint, candidates: Mapping[str, str]
    ) -> None:
        verified: dict[str, str] = {}
        for tag, digest in candidates.items():
            try:
                now = await endpoint.head_manifest(t.repo, tag)
            except OcyncError as exc:
                self._failed(m, t, tag, digest, exc)
                continue
            if now is None:
                self._forget(endpoint, t, tag)
                self._event(m, t, tag, "skipped", digest, "already absent at the target")
            elif now != digest:
                # someone else pushed the tag since: it is theirs now, never deleted
                self.ctx.cache.owned.forget(endpoint.host, t.repo, tag)
                reason = f"moved to {now[:19]} since ocync wrote it: not ocync's any more"
                self._event(m, t, tag, "skipped", now, reason)
            else:
                verified[tag] = digest
        if not verified:
            return
        by_tag = endpoint.tag_delete is not False and self.tag_delete.get(endpoint.host, True)
        if by_tag and (endpoint.tag_delete is True or not self.dry_run):
            verified = await self._delete_tags(m, t, endpoint, verified)
        if verified:
            await self._delete_digests(m, t, endpoint, verified)

    async def _delete_tags(
        self, m: MappingSpec, t: TargetRepo, endpoint: TargetEndpoint, verified: Mapping[str, str]
    ) -> dict[str, str]:
        """Delete each tag by tag; the ones left for deletion by digest (the registry refused
        tag deletion) are returned."""
        left = dict(verified)
        for tag, digest in verified.items():
            if self.dry_run:
                self._event(m, t, tag, "would_delete", digest)
                del left[tag]
                continue
            try:
                deleted = await endpoint.delete_manifest(t.repo, tag)
            except RegistryError as exc:
                if endpoint.tag_delete is None and _tag_delete_refused(exc):
                    # distribution 2.8: 400 DIGEST_INVALID (405 UNSUPPORTED with deletes off)
                    self.tag_delete[endpoint.host] = False
                    return left
                self._failed(m, t, tag, digest, exc)
                del left[tag]
                continue
            except OcyncError as exc:
                self._failed(m, t, tag, digest, exc)
                del left[tag]
                continue
            del left[tag]
            self._forget(endpoint, t, tag)
            if deleted:
                self._event(m, t, tag, "deleted", digest)
            else:
                self._event(m, t, tag, "skipped", digest, "already absent at the target")
        return left

    async def _delete_digests(
        self, m: MappingSpec, t: TargetRepo, endpoint: TargetEndpoint, verified: Mapping[str, str]
    ) -> None:
        try:
            listing = await endpoint.list_tags(t.repo)
            others: dict[str, str | None] = {}
            for tag in listing:
                if tag not in verified:
                    others[tag] = await endpoint.head_manifest(t.repo, tag)
        except OcyncError as exc:
            for tag, digest in verified.items():
                self._failed(m, t, tag, digest, exc)
            return
        blockers = digest_blockers(verified, others)
        done: dict[str, bool] = {}  # digest -> deleted (several tags may share one)
        for tag, digest in verified.items():
            if tag in blockers:
                reason = (
                    f"also tagged {', '.join(blockers[tag])} at the target, and this registry "
                    "deletes by digest only (that would remove those tags too)"
                )
                self._event(m, t, tag, "skipped", digest, reason)
                continue
            if self.dry_run:
                self._event(m, t, tag, "would_delete", digest)
                continue
            if digest not in done:
                try:
                    done[digest] = await endpoint.delete_manifest(t.repo, digest)
                except OcyncError as exc:
                    self._failed(m, t, tag, digest, _unsupported_hint(exc, endpoint))
                    if isinstance(exc, RegistryError) and _deletes_off(exc):
                        return  # every other delete here would get the same answer
                    continue
            self._forget(endpoint, t, tag)
            self._event(m, t, tag, "deleted" if done[digest] else "skipped", digest,
                        "" if done[digest] else "already absent at the target")


def _tag_delete_refused(exc: RegistryError) -> bool:
    return (exc.status == 400 and "DIGEST_INVALID" in exc.codes) or _deletes_off(exc)


def _deletes_off(exc: RegistryError) -> bool:
    return exc.status == 405 or "UNSUPPORTED" in exc.codes


def _unsupported_hint(exc: OcyncError, endpoint: TargetEndpoint) -> OcyncError:
    if isinstance(exc, RegistryError) and _deletes_off(exc):
        return ConfigError(
            f"registry {endpoint.name} does not allow deleting manifests "
            f"({exc.status} UNSUPPORTED; docker-registry needs REGISTRY_STORAGE_DELETE_ENABLED=true)"
        )
    return exc


__all__ = ["PruneRun", "check_prune_targets", "record_ownership", "source_ref"]
