"""The ``ocync`` command line: argument parsing and rendering only, no engine logic.

Each subcommand lives in its own module with ``register(subparsers)``; the parser sets
``func(args) -> int`` (the exit code). Errors become one line on stderr, never a traceback.
Exit codes: 0 success, 1 partial failure, 2 failure, 3 invalid config or arguments,
4 authentication or authorization failure. SIGINT and SIGTERM follow one rule in every
command: an interrupt that left work undone exits 1, a clean stop with nothing undone
(``watch`` between runs) exits 0, each with one line saying it was interrupted. One
exception: ``watch --health-port`` is a service, and a SIGTERM it drained exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence

from ocync import __version__
from ocync.cli.interrupt import received
from ocync.engine.report import redact
from ocync.errors import OcyncError
from ocync.registry.auth import secret_scope

# Subcommand modules, in the order they appear in --help.
COMMAND_MODULES = (
    "ocync.cli.copy_cmd",
    "ocync.cli.sync_cmd",
    "ocync.cli.watch_cmd",
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
    for command in LOG_FORMAT_COMMANDS:
        if command in sub.choices:
            sub.choices[command].add_argument(
                "--log-format", choices=("text", "json"), default="text",
                help="stderr as text lines (default) or one JSON object per line",
            )
    return parser


# The commands that take --log-format (the long-running and bulk ones a collector reads).
LOG_FORMAT_COMMANDS = ("copy", "sync", "watch")


def _print_version() -> int:
    print(f"ocync {__version__}")
    return 0


def _subcommand_help(parser: argparse.ArgumentParser, command: str | None) -> str:
    """The help of ``command`` (e.g. ``auth`` without its subcommand), else the main help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return str(action.choices[command].format_help())
    return parser.format_help()


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: trio nurseries wrap what they raise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


# The last signal that interrupted the process (SIGTERM arrives as SIGINT, see main()).
_received = received


def _sigterm_as_sigint(signum: int, frame: object) -> None:
    """SIGTERM does what Ctrl-C does: trio turns SIGINT into KeyboardInterrupt at a safe
    point (a handler raising by itself could land in the middle of trio's own code)."""
    _received["signal"] = "SIGTERM"
    if not callable(signal.getsignal(signal.SIGINT)):
        raise KeyboardInterrupt  # SIGINT ignored (started in the background): no safe point
    signal.raise_signal(signal.SIGINT)


def interrupted_line() -> str:
    """The one line of a command cut short by SIGINT/SIGTERM (its work is undone: exit 1)."""
    return f"ocync: interrupted by {_received['signal']} before the command finished; its work is undone"


def _report(exc: BaseException) -> int:
    """One line per distinct error on stderr (config errors carry one per problem)."""
    leaves = _leaves(exc)
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        print(interrupted_line(), file=sys.stderr)
        return 1
    foreign = [e for e in leaves if not isinstance(e, OcyncError)]
    if foreign:
        return _report_foreign(foreign[0])
    ours = [e for e in leaves if isinstance(e, OcyncError)]
    lines: dict[str, None] = {}
    for error in ours:
        for line in str(error).splitlines() or [type(error).__name__]:
            lines[line] = None
    for line in lines:
        print(f"ocync: error: {redact(line)}", file=sys.stderr)
    return max(e.exit_code for e in ours)


def error_document(exc: BaseException) -> dict[str, object]:
    """What ``--json`` prints when a command fails or is interrupted: the exit code
    :func:`_report` returns and the lines it prints (without the ``ocync: error:`` prefix)."""
    leaves = _leaves(exc)
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        line = interrupted_line().removeprefix("ocync: ")
        return {"ok": False, "exit_code": 1, "interrupted": True, "errors": [line]}
    ours = [e for e in leaves if isinstance(e, OcyncError)]
    if len(ours) < len(leaves):
        foreign = next(e for e in leaves if not isinstance(e, OcyncError))
        errors = [f"internal error: {type(foreign).__name__}"]
        return {"ok": False, "exit_code": 2, "interrupted": False, "errors": errors}
    lines = dict.fromkeys(line for e in ours for line in str(e).splitlines() or [type(e).__name__])
    code = max(e.exit_code for e in ours)
    return {"ok": False, "exit_code": code, "interrupted": False, "errors": list(lines)}


def _report_foreign(exc: BaseException) -> int:
    """An exception that is not ours: the environment (stdout closed, disk full) or a bug.

    Never a traceback for users; ``OCYNC_TRACEBACK=1`` shows it for bug reports."""
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        print("ocync: error: the output was closed before everything was written (broken pipe)",
              file=sys.stderr)
        return 2
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else "cannot write the output: "
        print(f"ocync: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    if os.environ.get("OCYNC_TRACEBACK"):
        traceback.print_exception(exc, file=sys.stderr)
    text = redact(str(exc)).splitlines()[0][:200] if str(exc) else ""
    print(f"ocync: internal error: {type(exc).__name__}{': ' + text if text else ''} "
          "(a bug: please report it; OCYNC_TRACEBACK=1 shows the traceback)", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


class _RedactingFormatter(logging.Formatter):
    """Every log line, at every level and from every library, without the run's secrets."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """After Ctrl-C, async generators abandoned inside ``trio.run`` are finalised once the
    run is over; trio then says RunFinishedError ("Exception ignored in ..."): not news."""
    if type(unraisable.exc_value).__name__ == "RunFinishedError":
        return
    sys.__unraisablehook__(unraisable)


def main(argv: Sequence[str] | None = None) -> int:
    # Ctrl-C can land inside a third-party coroutine (httpcore's tracing context managers);
    # the half-run coroutine then warns "was never awaited" when collected: noise, not news.
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    if sys.unraisablehook is sys.__unraisablehook__:  # the real CLI, not a test harness
        sys.unraisablehook = _unraisable
    _received["signal"] = "SIGINT"
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm_as_sigint)
    except ValueError:  # not the main thread: signals cannot be handled here
        return _main(argv)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()  # imports every command module: Ctrl-C may land here
        args = parser.parse_args(argv)
    except KeyboardInterrupt as exc:
        return _report(exc)
    if not getattr(args, "func", None):
        command = getattr(args, "command", None)
        if command:
            print(f"ocync: error: '{command}' needs a subcommand", file=sys.stderr)
        sys.stderr.write(_subcommand_help(parser, command))
        return 3
    verbose = getattr(args, "verbose", 0) or 0
    quiet = getattr(args, "quiet", False)
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    if quiet:
        level = logging.ERROR
    saved_stderr = sys.stderr
    if getattr(args, "log_format", "text") == "json":
        from ocync.service.logformat import JsonFormatter, install_json_stderr

        handler = logging.StreamHandler(install_json_stderr())
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_RedactingFormatter("ocync: %(levelname)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # httpx logs every request URL at INFO (queries redacted by ocync.registry.neterrors);
    # keep it for -vv only. httpcore's DEBUG lines dump raw response headers (signed
    # Location URLs, cookies): never shown.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    with secret_scope():  # what the command resolves is redacted from all it prints
        try:
            code: int = args.func(args)
            if sys.stdout is not None:
                sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
            return code
        except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
            return _report(exc)  # the CLI boundary: one line per error, never a traceback
        finally:
            if sys.stderr is not saved_stderr:
                sys.stderr.flush()
                sys.stderr = saved_stderr


if __name__ == "__main__":
    raise SystemExit(main())
