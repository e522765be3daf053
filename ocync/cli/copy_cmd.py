"""``ocync copy SRC DST``: copy one tag or digest (all platforms unless ``--platform``).

Argument parsing and rendering only; the work is a one-image run of the sync engine
(:func:`ocync.engine.singlecopy.copy_one`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from ocync.cli.interrupt import run_interruptible
from ocync.config import load_config_file
from ocync.engine.layoutendpoint import layout_location
from ocync.engine.singlecopy import CopyRequest, copy_one, registry_access
from ocync.errors import ConfigError
from ocync.oci.digest import Digest
from ocync.oci.layout import UNNAMED, parse_layout_reference, ref_name
from ocync.oci.platform import parse_platforms
from ocync.oci.reference import Reference, parse_reference
from ocync.registry.auth import AuthSettings, docker_config_path
from ocync.registry.client import ClientSettings
from ocync.registry.profiles import PROFILES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="copy one image (tag or digest) from one registry to another",
        description="Copy one tag or digest, all platforms by default. The destination tag "
        "defaults to the source's.",
    )
    parser.add_argument("source", metavar="SRC", help="source reference, e.g. ghcr.io/owner/app:1.0")
    parser.add_argument("destination", metavar="DST", help="destination reference or repository")
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help="copy only these platforms of an index (repeatable); pushes a trimmed index",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help="a sync config: the registry whose host is SRC's (DST's) supplies its URL, "
        "credentials, profile, caps and timeout",
    )
    parser.add_argument("--insecure", action="store_true", help="plain HTTP to non-loopback registries")
    parser.add_argument(
        "--authfile",
        type=Path,
        default=None,
        help="docker config.json with credentials (default: $DOCKER_CONFIG or ~/.docker)",
    )
    parser.add_argument("--src-profile", choices=sorted(PROFILES), default=None, help="source registry profile")
    parser.add_argument("--dst-profile", choices=sorted(PROFILES), default=None, help="destination registry profile")
    parser.add_argument("--retries", type=int, default=5, metavar="N", help="attempts per request and per blob")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up on a registry that sends nothing for this long (default: the config "
        "entry's timeout, else 60)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: requests)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(func=run)


def _reference(text: str) -> Reference:
    """A registry reference (a leading ``docker://`` accepted, as skopeo writes it), or an
    OCI layout's (``oci:PATH[:TAG|:REPO:TAG|@DIGEST]``, ``oci-archive:FILE.tar[...]``) as a
    Reference whose registry is the layout's key (``oci-layout:/abs/path``)."""
    text = text.removeprefix("docker://")
    layout = parse_layout_reference(text)
    if layout is None:
        return parse_reference(text)
    path = os.path.abspath(os.path.expanduser(layout.path))
    digest = Digest.parse(layout.digest) if layout.digest is not None else None
    return Reference(f"{layout.kind}:{path}", layout.repo or UNNAMED, layout.tag, digest)


def _shown(ref: Reference, tag: str | None = None, digest: str | None = None) -> str:
    """``ref`` as written on the command line (a layout as ``oci:PATH:REF``)."""
    tag = tag if tag is not None or digest is not None else ref.tag
    where = layout_location(ref.registry)
    if where is None:
        name = ref.name
        return f"{name}:{tag}" if tag else f"{name}@{digest or ref.digest}"
    kind, path = where
    transport = "oci" if kind == "oci-layout" else kind
    if tag:
        return f"{transport}:{path}:{ref_name(ref.repository, tag)}"
    return f"{transport}:{path}@{digest or ref.digest}"


def _destination(source: Reference, text: str) -> tuple[Reference, str | None]:
    dst = _reference(text)
    if layout_location(dst.registry) and not dst.repository and dst.tag is None and dst.digest is None:
        # ``oci:DIR`` alone: the source's repository and tag, named ``repo:tag`` in the layout
        dst = dataclasses.replace(dst, repository=source.repository)
    if dst.digest is not None and dst.tag is None:
        if source.digest is not None and dst.digest != source.digest:
            raise ConfigError(f"destination digest {dst.digest} differs from the source's {source.digest}")
        return dst, None
    tag = dst.tag or source.tag
    if tag is None and source.digest is None:
        tag = "latest"
    return dst, tag


def run(args: argparse.Namespace) -> int:
    try:
        return _copy(args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
        if args.json:  # a failure is a JSON document too; the line on stderr follows
            from ocync.cli.main import error_document

            doc = {"source": args.source, "destination": args.destination, **error_document(exc)}
            print(json.dumps(doc, indent=2))
        raise  # ocync.cli.main prints the one line and returns the exit code


def _copy(args: argparse.Namespace) -> int:
    source = _reference(args.source)
    destination, tag = _destination(source, args.destination)
    platforms = parse_platforms(args.platform)
    if args.retries < 1:
        raise ConfigError("--retries must be at least 1")
    connect_timeout, read_timeout = check_timeout(DEFAULT_TIMEOUT if args.timeout is None else args.timeout)
    if args.authfile is not None and not docker_config_path(args.authfile).exists():
        resolved = docker_config_path(args.authfile)
        shown = "" if resolved == args.authfile else f" ({resolved})"
        raise ConfigError(f"--authfile {args.authfile}: no such file{shown}")
    config = load_config_file(args.config).config if args.config is not None else None
    auth = AuthSettings(docker_config=args.authfile)
    common = ClientSettings(
        auth=auth, insecure=args.insecure, attempts=args.retries,
        connect_timeout=connect_timeout, read_timeout=read_timeout,
    )
    src_access = registry_access(
        source.registry, dataclasses.replace(common, profile=args.src_profile), config, timeout=args.timeout
    )
    dst_access = registry_access(
        destination.registry, dataclasses.replace(common, profile=args.dst_profile), config, timeout=args.timeout
    )
    started = time.monotonic()
    request = CopyRequest(source, destination, tag, tuple(platforms))
    outcome = run_interruptible(copy_one, request, src_access, dst_access)
    seconds = time.monotonic() - started
    digest = outcome.result.digest
    target = _shown(destination, tag, digest)
    for warning in outcome.report.warnings:
        print(f"ocync: warning: {warning}", file=sys.stderr)
    doc = outcome.to_dict()
    if args.json:
        doc = {"source": _shown(source), "destination": target, **doc, "seconds": round(seconds, 3)}
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        trimmed = f" (trimmed index: {', '.join(outcome.trimmed_platforms)})" if outcome.trimmed_platforms else ""
        print(
            f"copied {_shown(source)} -> {target} {digest}{trimmed}: "
            f"blobs {doc['blobs_transferred']} transferred / {doc['blobs_mounted']} mounted / "
            f"{doc['blobs_skipped']} already present, {_human(doc['bytes'])}, "
            f"{doc['requests']} requests, {seconds:.1f}s",
            file=sys.stdout,
        )
    return 0


# Seconds a request may receive nothing before it fails (the client's default).
DEFAULT_TIMEOUT = 60.0


def check_timeout(seconds: float) -> tuple[float, float]:
    """``--timeout`` -> (connect, read) timeouts; connecting never waits longer than 10 s."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {seconds:g}")
    return min(seconds, 10.0), seconds


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


__all__ = ["check_timeout", "register", "run"]
