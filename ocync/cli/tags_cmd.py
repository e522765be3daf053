"""``ocync tags REPO``: list a repository's tags through the filter pipeline.

Shows what each stage (glob, semver, include, the soft and hard exclude tiers, sort, latest,
literal includes) kept and dropped. With ``-c CONFIG`` the registry's credentials are used
and, when REPO is the source of a mapping, that mapping's effective filter is the starting
point (flags override it field by field), so the output is what ``sync`` would select.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocync.cli.copy_cmd import check_timeout
from ocync.cli.interrupt import run_interruptible
from ocync.config import MappingConfig, RegistrySettings, load_config
from ocync.engine.syncrun import client_settings
from ocync.errors import ConfigError
from ocync.oci.reference import is_valid_tag, parse_repository
from ocync.oci.tagfilter import TagFilter, TagSelection, apply_filter
from ocync.oci.version import parse_range
from ocync.registry.client import ClientSettings
from ocync.registry.pool import ClientPool

# Dropped tags shown per stage without -v; the rest is summarised as "(+N more)".
_SHOWN = 8
# The same bound as a registry's tag list (RegistryClient.list_tags reads at most 64 MiB).
MAX_TAG_FILE_BYTES = 64 * 1024 * 1024


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tags", help="list a repository's tags through the tag filter")
    p.add_argument("repo", metavar="REPO", help="repository, e.g. ghcr.io/org/app")
    p.add_argument("--glob", action="append", default=None, help="glob a tag must match (repeat)")
    p.add_argument("--semver", default=None, metavar="RANGE", help='e.g. ">=1.0, <2.0"')
    p.add_argument("--exclude", action="append", default=None, help="glob to drop (repeat)")
    p.add_argument("--include", action="append", default=None, help="tag or glob to keep")
    p.add_argument("--sort", choices=("semver", "alpha"), default=None, help="order before --latest")
    p.add_argument("--latest", type=int, default=None, metavar="N", help="keep the N highest")
    p.add_argument("--min-tags", type=int, default=None, metavar="N", help="fewer tags kept is an error")
    p.add_argument(
        "--no-builtin-excludes",
        action="store_true",
        help="do not drop pre-release tags (*-rc*, *-beta*, ...) by default",
    )
    p.add_argument("-c", "--config", default=None, metavar="CONFIG", help="config file")
    p.add_argument(
        "--tags-from",
        default=None,
        metavar="FILE",
        help="read the tag list from FILE ('-' for stdin, one per line) instead of the registry",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS",
        help="give up on a registry that sends nothing for this long (default 60)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="list every dropped tag")
    p.add_argument("-q", "--quiet", action="store_true", help="print the selected tags only")
    p.set_defaults(func=run_tags)


def build_filter(args: argparse.Namespace, base: TagFilter | None = None) -> TagFilter:
    """The command-line flags over ``base`` (a mapping's effective filter), field by field."""
    flt = base or TagFilter()
    changes: dict[str, Any] = {}
    for flag in ("glob", "exclude", "include"):
        if any(not p.strip() for p in getattr(args, flag) or ()):
            raise ConfigError(f"--{flag}: empty pattern")
    if args.glob:
        changes["glob"] = tuple(args.glob)
    if args.semver is not None:
        try:
            parse_range(args.semver)
        except ConfigError as exc:
            raise ConfigError(f"--semver: {exc}") from None
        changes["semver"] = args.semver
    if args.exclude:
        changes["exclude"] = tuple(args.exclude)
    if args.include:
        changes["include"] = tuple(args.include)
    if args.sort is not None:
        changes["sort"] = args.sort
    if args.latest is not None:
        if args.latest < 1:
            raise ConfigError("--latest must be at least 1")
        changes["latest"] = args.latest
    if args.min_tags is not None:
        if args.min_tags < 0:
            raise ConfigError("--min-tags must be 0 or more")
        changes["min_tags"] = args.min_tags
    if args.no_builtin_excludes:
        changes["builtin_soft_excludes"] = False
    flt = dataclasses.replace(flt, **changes) if changes else flt
    if flt.latest is not None and flt.sort is None:
        raise ConfigError("--latest needs --sort semver or --sort alpha")
    return flt


def render_text(repo: str, selection: TagSelection, verbose: int = 0) -> str:
    """One line per stage with counts and (some of) the dropped tags, then the result."""
    listed = len(selection.stages[0].kept) if selection.stages else 0
    lines = [f"{repo}: {listed} tag(s) listed, {len(selection.tags)} selected"]
    for stage in selection.stages[1:]:
        lines.append(f"  {stage.name:<18} {len(stage.kept):>5} kept   [{stage.detail}]")
        for verb, tags in (("dropped", stage.dropped), ("added", stage.added)):
            if tags:
                shown = tags if verbose else tags[:_SHOWN]
                more = f" (+{len(tags) - len(shown)} more)" if len(tags) > len(shown) else ""
                lines.append(f"  {'':<18} {verb} {len(tags)}: {', '.join(shown)}{more}")
    if selection.literal_added:
        lines.append(f"  not in the listing (kept as literal includes): "
                     f"{', '.join(selection.literal_added)}")
    if selection.below_min_tags:
        lines.append(f"  error: {selection.min_tags_message()}")
    lines.append("selected: " + (" ".join(selection.tags) if selection.tags else "(none)"))
    return "\n".join(lines) + "\n"


def read_tag_lines(path: str) -> list[str]:
    """Tags from a file or stdin: one per line, blank lines and ``#`` comments ignored."""
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_TAG_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as f:
                raw = f.read(MAX_TAG_FILE_BYTES + 1)
        if len(raw) > MAX_TAG_FILE_BYTES:
            raise ConfigError(f"--tags-from {path}: larger than {MAX_TAG_FILE_BYTES >> 20} MiB")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"--tags-from {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--tags-from {path}: not UTF-8 text (one tag per line)") from None
    tags = []
    for number, line in enumerate(text.splitlines(), 1):
        tag = line.strip()
        if not tag or tag.startswith("#"):
            continue
        if not is_valid_tag(tag):
            raise ConfigError(f"--tags-from {path}:{number}: {tag[:60]!r} is not a tag "
                              "(letters, digits, '_', '.', '-', at most 128)")
        tags.append(tag)
    return tags


def client_address(registry: RegistrySettings | None, host: str) -> str:
    """What to hand the client: the configured registry's base URL (scheme included), else
    the host of REPO."""
    return registry.base_url if registry is not None else host


async def fetch_tags(
    registry: str, repository: str, settings: RegistrySettings | None = None,
    rate_share: float | None = None, read_timeout_s: float = 60.0,
) -> list[str]:
    """List every tag (following ``Link`` pagination) through ocync's registry client."""
    connect_timeout, read_timeout = check_timeout(read_timeout_s)
    async with ClientPool() as pool:
        client_opts = client_settings(settings, rate_share) if settings else ClientSettings()
        client_opts = dataclasses.replace(
            client_opts, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        client = await pool.client(client_address(settings, registry), client_opts)
        tags: list[str] = await client.list_tags(repository)
        return tags


def _from_config(
    config_path: str, registry: str, repository: str
) -> tuple[TagFilter, RegistrySettings | None, float]:
    """The effective filter of the mapping whose source is this repository (else the
    defaults), the configured registry for its host, and the global rate share."""
    config = load_config(config_path)
    rate_share = config.global_.rate_share
    for resolved in config.resolve():
        if resolved.source.host == registry and resolved.repo_from == repository:
            return resolved.tag_filter, resolved.source, rate_share
    base = config.effective_tags(MappingConfig.model_validate({"from": "x"}))
    settings = config.registry_for_host(registry)
    # Say so: the output is then not what any `sync` of this config would select.
    unknown_host = "" if settings is not None else f"; no registry in it serves {registry}"
    print(
        f"ocync: warning: {registry}/{repository} is not the `from` of any mapping in "
        f"{config_path}{unknown_host}: using the defaults' tag filter",
        file=sys.stderr,
    )
    return base, settings, rate_share


def run_tags(args: argparse.Namespace) -> int:
    registry, repository = parse_repository(args.repo)
    base: TagFilter | None = None
    settings: RegistrySettings | None = None
    rate_share: float | None = None
    if args.config:
        base, settings, rate_share = _from_config(args.config, registry, repository)
    flt = build_filter(args, base)
    if args.tags_from is not None:
        tags: Sequence[str] = read_tag_lines(args.tags_from)
    else:
        check_timeout(args.timeout)
        tags = run_interruptible(fetch_tags, registry, repository, settings, rate_share, args.timeout)
    selection = apply_filter(flt, tags)
    name = f"{registry}/{repository}"
    if args.json:
        print(json.dumps({"repository": name, "filter": flt.to_dict(), **selection.to_dict()},
                         indent=2))
    elif args.quiet:
        for tag in selection.tags:
            print(tag)
    else:
        sys.stdout.write(render_text(name, selection, args.verbose))
    if selection.below_min_tags:
        if not args.json:
            print(f"ocync: error: {name}: {selection.min_tags_message()}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "build_filter",
    "client_address",
    "fetch_tags",
    "read_tag_lines",
    "register",
    "render_text",
    "run_tags",
]
