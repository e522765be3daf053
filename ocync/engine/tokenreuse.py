"""Tell each registry client, before discovery starts, every repository the run will use, so
a registry that grants multi-scope tokens (profile ``multi_scope_tokens``) hands out one token
for many repositories instead of one per repository (distribution token.md, ``scope``
repeated)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ocync.engine.discovery import MappingSpec
from ocync.engine.registryendpoint import ClientEndpoint


def announce_repositories(
    specs: Iterable[MappingSpec], endpoints: Mapping[str, object], *, push: bool
) -> None:
    """Source repositories are announced for pull; target repositories for pull,push unless
    ``push`` is False (a dry run writes nothing, so it asks no push access)."""
    for spec in specs:
        source = endpoints[spec.source]
        if isinstance(source, ClientEndpoint):  # OCI layouts have no tokens
            source.client.want_repository(spec.source_repo)
        for target in spec.targets:
            endpoint = endpoints[target.registry]
            if not isinstance(endpoint, ClientEndpoint):
                continue
            client = endpoint.client
            if push:
                client.want_push(target.repo)
            else:
                client.want_repository(target.repo)


__all__ = ["announce_repositories"]
