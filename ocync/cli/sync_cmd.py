"""``ocync sync`` and ``ocync analyze``: argument parsing and rendering only.

The engine (``ocync.engine``) does the work; this module loads the config, runs it under
trio, shows live progress on a terminal (nothing of it when output is piped) and prints
the report: one line per image synced or failed and a summary, or ``--json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from typing import Any

import trio

from ocync.cli.interrupt import run_interruptible
from ocync.config import load_config_file
from ocync.engine.pipeline import SyncEngine
from ocync.engine.report import RunReport
from ocync.engine.sharding import shard_from_env
from ocync.engine.syncrun import RunOptions, run_sync, shard_mappings
from ocync.errors import OcyncError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML config")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors and the summary only")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):  # float() reads "nan" and "inf"
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _seconds(text: str) -> float:
    """--drain-timeout: 0 stops in-flight transfers at once."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="a request that receives nothing for SECONDS fails, for every registry "
        "(default: each registry's timeout:, else 60)",
    )


def _share(text: str) -> float:
    value = _positive(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]: {text!r}")
    return value


def _interrupt_and_share(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=25.0,
        metavar="S",
        help="on SIGINT/SIGTERM, let in-flight transfers finish for up to S seconds (default 25)",
    )
    parser.add_argument(
        "--rate-share",
        type=_share,
        default=None,
        metavar="F",
        help="use only this share (0 < F <= 1) of each registry's rate budget",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sync", help="mirror every mapping of a config file")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="show what would be copied; write nothing")
    _interrupt_and_share(p)
    p.add_argument("--no-cache", action="store_true", help="ignore and do not save the transfer cache")
    p.add_argument(
        "--verify-targets",
        action="store_true",
        help="HEAD every target tag even when the transfer cache vouches for it "
        "(targets shared with other writers; costs a request per tag and target)",
    )
    p.add_argument(
        "--force-prune",
        action="store_true",
        help="prune even when a repository would lose more than prune.max_fraction of the "
        "tags ocync owns there (every other prune rail still holds)",
    )
    add_timeout(p)
    p.add_argument("--shard", metavar="I/N", help="only the mappings of shard I of N (also OCYNC_SHARD)")
    _shards(p, "with JOB_COMPLETION_INDEX as I: the shard of an Indexed Job's pod")
    p.set_defaults(func=run_sync_command)

    p = subparsers.add_parser(
        "analyze", help="from manifests only: blobs, shared layers, mounts, requests and minutes"
    )
    _common(p)
    add_timeout(p)
    _shards(p, "also show how the mappings split into N shards and the extra source pulls it costs")
    p.set_defaults(func=run_analyze_command)


def _shards(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--shards", type=_count, default=None, metavar="N", help=help_text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1: {text!r}")
    return int(text)


class _LiveProgress:
    """A one-line live status on stderr (rich), only when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.live = Live(console=self.console, transient=True, refresh_per_second=4)
        self.start = time.monotonic()

    def __enter__(self) -> _LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def tick(self, engine: SyncEngine) -> None:
        from rich.text import Text

        progress = engine.progress()
        elapsed = max(time.monotonic() - self.start, 0.001)
        requests = sum(ep.requests for ep in progress.endpoints)
        # requests per minute against each principal's budget
        budgets = [
            f"{ep.name} {ep.requests / elapsed * 60:.0f}/{ep.cap_per_minute:.0f} req/min"
            for ep in progress.endpoints
            if ep.cap_per_minute is not None
        ]
        mib = progress.bytes_transferred / (1024 * 1024)
        line = (
            f"images {progress.results} done, {progress.in_flight} in flight, "
            f"{progress.expected} to copy so far · "
            f"{mib / elapsed:.1f} MiB/s · {requests / elapsed * 60:.0f} req/min in all"
        )
        if budgets:
            line += " · " + ", ".join(budgets)
        self.live.update(Text(line))


def _render_dry_run(report: RunReport) -> str:
    lines: list[str] = []
    for n in report.plan.get("namespaces", []):
        skipped = [f"{n[k]} {what}" for k, what in (("excluded", "excluded"), ("other_shard", "in other shards"),
                   ("claimed_elsewhere", "written by another mapping")) if n[k]]
        lines.append(
            f"{n['mapping']}: catalog {n['catalog_pages']} page(s), {n['listed']} repositories listed, "
            f"{n['matched']} match {n['pattern']}" + (f" ({', '.join(skipped)})" if skipped else "")
            + ("" if n["complete"] else " (listing incomplete)")
        )
        for repo in n["repositories"]:
            lines.append(f"  repository {repo}")
    for m in report.plan.get("mappings", []):
        stages = ", ".join(
            f"{s['name']} -{s['dropped']}" + (f" +{s['added']}" if s["added"] else "")
            for s in m["stages"]
            if s["dropped"] or s["added"]
        )
        lines.append(
            f"{m['mapping']}: {m['listed']} tags listed, {len(m['selected'])} selected"
            + (f" ({stages})" if stages else "")
        )
        for w in m["would_copy"]:
            lines.append(
                f"  would copy {w['tag']} {w['digest'][:19]} ({w['blobs']} blobs, "
                f"{w['bytes'] / (1024 * 1024):.1f} MiB) -> {', '.join(w['targets'])}"
            )
        if m["up_to_date"]:
            lines.append(f"  up to date: {len(m['up_to_date'])} tag(s)")
        for e in m["errors"]:
            lines.append(f"  error: {e}")
    lines.extend(f"{p.line()}" for p in report.pruned if p.action in ("would_delete", "skipped"))
    lines.append(
        f"dry run: {report.requests} requests, {report.throttled} throttled, {report.elapsed:.1f}s"
    )
    return "\n".join(lines)


def _print_report(report: RunReport, args: argparse.Namespace) -> None:
    # Failures go to stderr in every mode: whoever pipes stdout (or reads --json) still sees
    # them; stdout carries the report itself.
    for problem in report.problem_lines():
        print(f"ocync: error: {problem}", file=sys.stderr)
    for deferred in report.deferred_lines():
        print(f"ocync: deferred: {deferred}", file=sys.stderr)
    if not args.quiet:
        for warning in dict.fromkeys(report.warnings):
            print(f"ocync: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    if report.dry_run:
        print(_render_dry_run(report))
        return
    print(report.render_text(quiet=args.quiet))
    if args.verbose and report.controllers:
        for name, stats in report.controllers.items():
            # a registry's controller; an OCI layout's own statistics (it has no controller)
            controller = stats.get("controller", stats) if isinstance(stats, dict) else {}
            print(f"  {name}: {json.dumps(controller, sort_keys=True)}", file=sys.stderr)


def _fatal_json(exc: OcyncError) -> None:
    """With --json, a run that could not start still prints a JSON document."""
    doc = {"ok": False, "exit_code": exc.exit_code, "errors": str(exc).splitlines()}
    print(json.dumps(doc, indent=2))


def _run_once(args: argparse.Namespace, *, handle_signals: bool) -> RunReport:
    loaded = load_config_file(args.config)
    live = sys.stderr.isatty() and sys.stdout.isatty() and not args.json and not args.quiet
    progress = _LiveProgress() if live else None
    options = RunOptions(
        dry_run=bool(getattr(args, "dry_run", False)),
        drain_timeout=args.drain_timeout,
        rate_share=args.rate_share,
        handle_signals=handle_signals,
        use_cache=not getattr(args, "no_cache", False),
        verify_targets=bool(getattr(args, "verify_targets", False)),
        force_prune=bool(getattr(args, "force_prune", False)),
        on_tick=progress.tick if progress is not None else None,
        timeout=args.timeout,
        shard=shard_from_env(args.shard, args.shards, os.environ),
    )
    if options.shard is not None and options.dry_run and not args.json:
        every = loaded.config.resolve()
        kept = shard_mappings(every, options.shard)
        print(f"shard {options.shard}: {len(kept)} of {len(every)} mappings")
    if progress is None:
        return trio.run(run_sync, loaded.config, options)
    with progress:
        return trio.run(run_sync, loaded.config, options)


def run_sync_command(args: argparse.Namespace) -> int:
    try:
        report = _run_once(args, handle_signals=True)
    except OcyncError as exc:
        if args.json:
            _fatal_json(exc)
        raise  # ocync.cli.main prints the one line and returns its exit code
    _print_report(report, args)
    _print_interrupted(report)
    return report.exit_code()


def _print_interrupted(report: RunReport) -> None:
    """One line on stderr after a run stopped by SIGINT/SIGTERM (exit 1 if work is undone)."""
    if report.interrupted:
        left = f"{report.undone} left undone" if report.undone else "nothing left undone"
        print(f"ocync: interrupted: {left}", file=sys.stderr)


def run_analyze_command(args: argparse.Namespace) -> int:
    from ocync.engine.analyze import analyze

    try:
        loaded = load_config_file(args.config)
        result = run_interruptible(
            functools.partial(analyze, loaded.config, request_timeout=args.timeout, shards=args.shards)
        )
    except OcyncError as exc:
        if args.json:
            _fatal_json(exc)
        raise
    for error in result.errors:
        print(f"ocync: error: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.render_text())
    return result.exit_code()


__all__ = ["add_timeout", "register", "run_analyze_command", "run_sync_command"]
