"""The ``ocync`` command line: argument parsing and rendering only, no engine logic.

Each subcommand lives in its own module with ``register(subparsers)``; the parser sets
``func(args) -> int`` (the exit code). Errors become one line on stderr, never a traceback.
Exit codes: 0 success, 1 partial failure, 2 failure, 3 invalid config or arguments,
4 authentication or authorization failure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ocync import __version__
from ocync.errors import OcyncError

# Subcommand modules, in the order they appear in --help.
COMMAND_MODULES = (
    "ocync.cli.copy_cmd",
    "ocync.cli.sync_cmd",
    "ocync.cli.tags_cmd",
    "ocync.cli.config_cmds",
    "ocync.cli.auth_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 3 (invalid arguments) with one line instead of 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(3, f"ocync: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ocync", description="Mirror OCI container images between registries.")
    parser.add_argument("--version", action="version", version=f"ocync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _args: _print_version())
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _print_version() -> int:
    print(f"ocync {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 3
    verbose = getattr(args, "verbose", 0) or 0
    quiet = getattr(args, "quiet", False)
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    if quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="ocync: %(levelname)s: %(message)s", stream=sys.stderr)
    # httpx logs every request URL at INFO; keep it for -vv only.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    try:
        code: int = args.func(args)
        return code
    except OcyncError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:  # config errors: one per line
            print(f"ocync: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ocync: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
