"""`ocync-mockregistry serve ...`: the mock registry in the foreground.

The registry's base URL is the first line of stdout (flushed) so scripts can read it; log lines go
to stderr; SIGINT/SIGTERM stop it cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from .quirks import MockOptions, OptionsError, parse_rate
from .server import serve_mock


def _pair(shape: str) -> Callable[[str], tuple[str, str]]:
    """An argument type for ``A:B`` with both parts non-empty (NAME:TOKEN, USER:NAMESPACE)."""

    def parse(text: str) -> tuple[str, str]:
        first, sep, second = text.partition(":")
        if not sep or not first or not second:
            raise argparse.ArgumentTypeError(f"expected {shape}, got {text!r}")
        return first, second

    return parse


def _whole(low: int, high: int | None, what: str) -> Callable[[str], int]:
    """An argument type for a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def _latency(text: str) -> tuple[float, float]:
    base, _, jitter = text.partition(":")
    try:
        values = float(base), float(jitter or 0)
    except ValueError:
        values = (-1.0, -1.0)
    if not all(0.0 <= v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected MS or MS:JITTER (>= 0), got {text!r}")
    return values


class _Parser(argparse.ArgumentParser):
    """One line for a bad argument (exit 3, as ocync's invalid-arguments code), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(3, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _rate(text: str) -> str:
    if text.strip().lower() in ("off", "none", "0"):
        return text
    try:
        parse_rate(text)
    except OptionsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return value


# Flags whose value is the MockOptions field of the same name (argparse dest == field name).
_PROFILE_TOGGLES = ("retry_after_header", "referrers_api", "count_rejected")
_FAULT_RATES = ("fault_rate", "reset_rate", "truncate_rate", "corrupt_rate")
_SAME_NAME = ("profile", "auth", "rate_limit", "pull_limit", "blob_redirect", "tags_page_size",
              "catalog_page_size", *_PROFILE_TOGGLES,
              *_FAULT_RATES, "corrupt_first", "seed", "access_log", "host", "port", "storage_port")


_TOGGLE_HELP = {
    "retry_after_header": "send Retry-After with 429s (GHCR sends none)",
    "referrers_api": "answer the OCI 1.1 referrers API (GHCR answers 404)",
    "count_rejected": "count throttled (429) requests toward the window (GHCR does not)",
}
_FAULT_HELP = {
    "fault_rate": "probability of answering a request with 500, 502 or 503",
    "reset_rate": "probability of resetting the connection (before or inside a blob body)",
    "truncate_rate": "probability of cutting a blob body short",
    "corrupt_rate": "probability of flipping one byte of a blob body",
}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ocync-mockregistry",
                                     description="A real OCI registry for tests, with GHCR's quirks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="run a mock registry in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    port = _whole(0, 65535, "a port from 0 to 65535")
    serve.add_argument("--port", type=port, default=0, help="0 picks a free port")
    serve.add_argument("--storage-port", type=port, default=0,
                       help="port of the storage host blob GETs redirect to (0 picks a free one)")
    serve.add_argument("--profile", choices=["generic", "ghcr", "dockerhub"], default="generic",
                       help="registry behaviour: generic (distribution), ghcr or dockerhub (default generic)")
    serve.add_argument("--auth", choices=["none", "token"], default="none",
                       help="none, or bearer tokens for the --user principals (default none)")
    serve.add_argument("--user", type=_pair("NAME:TOKEN"), action="append", default=[], metavar="NAME:TOKEN",
                       help="a principal and its token (repeatable)")
    serve.add_argument("--namespace", type=_pair("USER:NAMESPACE"), action="append", default=[], metavar="USER:NAMESPACE",
                       help="let USER push under NAMESPACE too")
    serve.add_argument("--public", action="append", default=[], metavar="GLOB",
                       help="repositories anyone may pull (repeatable glob)")
    serve.add_argument("--auth-file", type=Path, help="YAML with users, user_namespaces, public")
    serve.add_argument("--rate-limit", type=_rate, metavar="COUNT/WINDOW", help="e.g. 600/6s; off")
    serve.add_argument("--pull-limit", type=_rate, metavar="COUNT/WINDOW",
                       help="manifest GETs per principal, e.g. 100/6h (the dockerhub profile's default); off")
    redirect = serve.add_mutually_exclusive_group()
    redirect.add_argument("--blob-redirect", dest="blob_redirect", action="store_true", default=None,
                          help="answer blob GETs with 307 to the storage host (the ghcr profile's default)")
    redirect.add_argument("--no-blob-redirect", dest="blob_redirect", action="store_false",
                          help="serve blob bodies directly")
    for toggle in _PROFILE_TOGGLES:  # None: the profile's default
        serve.add_argument(_flag(toggle), action="store_true", default=None, help=_TOGGLE_HELP[toggle])
    serve.add_argument("--tags-page-size", type=_whole(1, None, "a whole number >= 1"),
                       help="tags per page when the client sends no n (ghcr: 100)")
    serve.add_argument("--catalog-page-size", type=_whole(1, None, "a whole number >= 1"),
                       help="repositories per /v2/_catalog page when the client sends no n (default 100)")
    for rate in _FAULT_RATES:
        serve.add_argument(_flag(rate), type=_probability, default=0.0, metavar="P", help=_FAULT_HELP[rate])
    serve.add_argument("--corrupt-first", type=_whole(0, None, "a whole number >= 0"), default=0, metavar="N",
                       help="damage the first N bodies served of every blob")
    serve.add_argument("--latency", type=_latency, default=(0.0, 0.0), metavar="MS[:JITTER]",
                       help="delay every answer by MS milliseconds, +- up to JITTER")
    serve.add_argument("--storage", type=Path, metavar="DIR", help="keep content on disk")
    serve.add_argument("--access-log", type=Path, metavar="FILE", help="one JSON line per request")
    serve.add_argument("--seed", type=int, default=0, help="seed of the fault and latency draws (default 0)")
    serve.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    return parser


def _load_auth_file(path: Path) -> dict[str, Any]:
    import yaml  # only the CLI reads YAML

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise OptionsError(f"cannot read auth file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OptionsError(f"auth file {path}{where}: invalid YAML: {reason}") from None
    if not isinstance(data, dict):
        raise OptionsError(f"auth file {path} must be a mapping with users/public/user_namespaces")
    shapes = {"users": dict, "user_namespaces": dict, "public": list}
    for key, value in data.items():
        if key not in shapes:
            raise OptionsError(f"auth file {path}: unknown key {key!r} (expected users, user_namespaces, public)")
        if value is not None and not isinstance(value, shapes[key]):
            kind = "a mapping" if shapes[key] is dict else "a list"
            raise OptionsError(f"auth file {path}: {key} must be {kind}")
    for user, token in (data.get("users") or {}).items():
        if not isinstance(token, str | int) or isinstance(token, bool) or not str(token):
            raise OptionsError(f"auth file {path}: users.{user} must be a token string")  # never echo it
    for user, spaces in (data.get("user_namespaces") or {}).items():
        if not isinstance(spaces, list):
            raise OptionsError(f"auth file {path}: user_namespaces.{user} must be a list of namespaces")
    return data


def options_from_args(args: argparse.Namespace) -> MockOptions:
    users = dict(args.user)
    public = list(args.public)
    namespaces: dict[str, list[str]] = {}
    for user, namespace in args.namespace:
        namespaces.setdefault(user, []).append(namespace)
    if args.auth_file is not None:
        data = _load_auth_file(args.auth_file)
        users.update({str(k): str(v) for k, v in (data.get("users") or {}).items()})
        public += [str(g) for g in data.get("public") or []]
        for user, spaces in (data.get("user_namespaces") or {}).items():
            namespaces.setdefault(str(user), []).extend(str(s) for s in spaces)
    latency, jitter = args.latency
    options = MockOptions(
        **{name: getattr(args, name) for name in _SAME_NAME},
        users=users,
        user_namespaces=namespaces,
        public=public,
        latency_ms=latency,
        latency_jitter_ms=jitter,
        storage_dir=args.storage,
    )
    if args.storage is not None and args.storage.exists() and not args.storage.is_dir():
        raise OptionsError(f"--storage {args.storage}: not a directory")
    if args.access_log is not None and not args.access_log.parent.is_dir():
        raise OptionsError(f"--access-log {args.access_log}: no such directory {args.access_log.parent}")
    options.resolve_profile()  # validate now, for a one-line error
    return options


async def run(options: MockOptions) -> None:
    log = logging.getLogger("mockregistry")
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve_mock(options) as mock:
            print(mock.url, flush=True)
            profile = mock.registry.profile
            log.warning("registry listening on %s (profile %s, auth %s, rate limit %s, pull limit %s)",
                        mock.url, profile.name, options.auth,
                        profile.rate_limit.describe() if profile.rate_limit else "off",
                        profile.pull_limit.describe() if profile.pull_limit else "off")
            if mock.storage_url:
                log.warning("storage host listening on %s", mock.storage_url)
            async for signum in signals:
                log.warning("received %s, stopping", signal.Signals(signum).name)
                break


def _os_error_line(exc: OSError, args: argparse.Namespace) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename:
        return f"{exc.filename}: {reason}"
    # No file: binding the listening socket failed (address in use, unknown host...).
    return f"cannot listen on {args.host}:{args.port}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.WARNING if not args.verbose
                        else logging.INFO, format="mockregistry: %(message)s", stream=sys.stderr)
    try:
        options = options_from_args(args)
        trio.run(run, options)
    except OptionsError as exc:
        print(f"ocync-mockregistry: error: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"ocync-mockregistry: error: {_os_error_line(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
