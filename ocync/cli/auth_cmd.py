"""``ocync auth check -c FILE [-c FILE...]``: verify every registry's credentials of one or
more configs (rendering only)."""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any

from ocync.cli.interrupt import run_interruptible
from ocync.cli.sync_cmd import add_timeout
from ocync.config import load_config_file
from ocync.engine.authcheck import AuthCheck, check_auth, exit_code


def register(subparsers: Any) -> None:
    auth = subparsers.add_parser("auth", help="credential checks")
    sub = auth.add_subparsers(dest="auth_command", metavar="ACTION")
    p = sub.add_parser("check", help="verify every registry's credentials (pull and push)")
    p.add_argument(
        "-c", "--config", required=True, action="append", metavar="FILE",
        help="a YAML config (repeatable: every file's registries are checked)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.add_argument("-q", "--quiet", action="store_true", help="failures only")
    add_timeout(p)
    p.set_defaults(func=run_auth_check)


def run_auth_check(args: argparse.Namespace) -> int:
    configs = [load_config_file(path).config for path in args.config]  # every file valid first
    checks: list[AuthCheck] = []
    for config in configs:
        for check in run_interruptible(functools.partial(check_auth, config, request_timeout=args.timeout)):
            if check not in checks:  # a registry two files share is listed once
                checks.append(check)
    code = exit_code(checks)
    if args.json:
        print(json.dumps({"ok": code == 0, "checks": [c.to_dict() for c in checks]}, indent=2))
        return code
    for check in checks:
        if check.ok and args.quiet:
            continue
        print(check.line())
    return code


__all__ = ["register", "run_auth_check"]
