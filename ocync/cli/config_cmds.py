"""``ocync validate``, ``ocync expand`` and ``ocync schema``: the config file, no network
(but ``expand --catalog``).

``validate`` prints every problem on its own line (``FILE:LINE: path: what``) and exits 3;
``expand`` prints the resolved config (defaults filled, ``${VAR}`` expanded, secrets
redacted unless ``--show-secrets``) which re-validates to the same model; with
``--catalog`` each pattern mapping (``from: team/*``) is replaced by one mapping per
repository its source's catalog lists now; ``schema`` prints the JSON Schema generated from
the models, for editors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ocync.cli.interrupt import run_interruptible
from ocync.config import dump_yaml, expanded_data, json_schema, load_config_file
from ocync.errors import ConfigError
from ocync.oci.repopattern import RepoPattern, target_repository


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("validate", help="check a config file (no network)")
    p.add_argument("file", metavar="FILE", help="the YAML config")
    _common(p)
    p.set_defaults(func=run_validate)

    p = subparsers.add_parser("expand", help="print the resolved config")
    p.add_argument("file", metavar="FILE", help="the YAML config")
    p.add_argument(
        "--show-secrets", action="store_true", help="print passwords and tokens in clear"
    )
    p.add_argument(
        "--catalog",
        action="store_true",
        help="list the source catalogs: each pattern mapping becomes one mapping per repository",
    )
    _common(p)
    p.set_defaults(func=run_expand)

    p = subparsers.add_parser("schema", help="print the config's JSON Schema")
    _common(p)
    p.set_defaults(func=run_schema)


def _report_problems(exc: ConfigError, as_json: bool) -> int:
    lines: list[str] = list(getattr(exc, "problems", None) or str(exc).splitlines())
    if as_json:
        print(json.dumps({"valid": False, "errors": lines}, indent=2))
    for line in lines:
        print(f"ocync: error: {line}", file=sys.stderr)
    return exc.exit_code


def run_validate(args: argparse.Namespace) -> int:
    try:
        loaded = load_config_file(args.file)
    except ConfigError as exc:
        return _report_problems(exc, args.json)
    cfg = loaded.config
    from ocync.engine.prune import check_prune_targets

    try:
        check_prune_targets(cfg.resolve())  # prune into a registry that cannot delete
    except ConfigError as exc:
        return _report_problems(exc, args.json)
    summary = {
        "valid": True,
        "file": args.file,
        "registries": len(cfg.registries),
        "target_groups": len(cfg.target_groups),
        "mappings": len(cfg.mappings),
        "warnings": list(loaded.warnings),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        print(
            f"{args.file}: ok ({len(cfg.registries)} registries, "
            f"{len(cfg.target_groups)} target groups, {len(cfg.mappings)} mappings)"
        )
    return 0


def run_expand(args: argparse.Namespace) -> int:
    try:
        loaded = load_config_file(args.file)
    except ConfigError as exc:
        return _report_problems(exc, args.json)
    data = expanded_data(loaded, show_secrets=args.show_secrets)
    if args.catalog:
        from ocync.engine.catalogexpand import pattern_repositories  # the network, only here

        found = run_interruptible(pattern_repositories, loaded.config)
        data["mappings"] = [
            concrete
            for i, mapping in enumerate(data.get("mappings", []))
            for concrete in (_expanded(mapping, found[i]) if i in found else [mapping])
        ]
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        sys.stdout.write(dump_yaml(data))
    return 0


def _expanded(
    mapping: dict[str, Any], repositories: list[tuple[str, tuple[str, ...] | None]]
) -> list[dict[str, Any]]:
    """One literal mapping per repository a pattern mapping's catalog listed (with only the
    targets no literal mapping writes)."""
    pattern = RepoPattern.parse(mapping["from"])
    rest = {k: v for k, v in mapping.items() if k not in ("from", "to", "exclude")}
    out = []
    for repo, targets in repositories:
        suffix = pattern.match(repo) or repo
        to = target_repository(mapping.get("to", mapping["from"]), suffix)
        out.append({"from": repo, "to": to, **rest, **({"targets": list(targets)} if targets else {})})
    return out


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0
