"""``ocync watch``: the sync as a long-running service (argument parsing and wiring only; the
loop is ``ocync.service.loop``). Every run's report goes to stdout as ``sync`` prints it; with
``--health-port`` the same trio run serves ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import trio

from ocync.cli.sync_cmd import (
    _common,
    _interrupt_and_share,
    _positive,
    _print_report,
    _seconds,
    add_timeout,
)
from ocync.config import load_config_file
from ocync.engine.report import RunReport
from ocync.errors import ConfigError, OcyncError
from ocync.service.health import serve_health
from ocync.service.loop import WatchOptions, WatchService
from ocync.service.routes import make_router
from ocync.service.schedule import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    CronSchedule,
    FailureBackoff,
    IntervalSchedule,
    Schedule,
)
from ocync.service.state import DEFAULT_LIVENESS_FLOOR, DEFAULT_UNREADY_AFTER


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _cron(text: str) -> CronSchedule:
    try:
        return CronSchedule(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"not a cron expression: {text!r}") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch", help="run sync repeatedly (every --interval seconds or on --schedule) until stopped"
    )
    _common(p)
    when = p.add_mutually_exclusive_group()
    when.add_argument("--interval", type=_positive, default=300.0, metavar="S",
                      help="seconds from the end of one run to the start of the next (default 300)")
    when.add_argument("--schedule", type=_cron, default=None, metavar="CRON",
                      help="start runs on a cron schedule instead, in UTC (e.g. '*/30 * * * *')")
    _interrupt_and_share(p)
    p.add_argument("--max-runs", type=_count, default=0, metavar="N", help="stop after N runs (default 0: never)")
    add_timeout(p)
    p.add_argument("--health-port", type=_port, default=None, metavar="PORT",
                   help="serve /healthz, /readyz and /metrics on PORT (0: any free port)")
    p.add_argument("--health-bind", default="127.0.0.1", metavar="ADDR",
                   help="address of the health port (default 127.0.0.1; 0.0.0.0 in a pod)")
    p.add_argument("--failure-backoff", type=_positive, default=DEFAULT_BACKOFF_BASE, metavar="S",
                   help=f"pause after a failed run, doubled per failure in a row (default {DEFAULT_BACKOFF_BASE:g})")
    p.add_argument("--failure-backoff-max", type=_positive, default=DEFAULT_BACKOFF_MAX, metavar="S",
                   help=f"longest pause after failed runs (default {DEFAULT_BACKOFF_MAX:g})")
    p.add_argument("--unready-after", type=_count, default=DEFAULT_UNREADY_AFTER, metavar="K",
                   help=f"/readyz answers 503 after K failed runs in a row (default {DEFAULT_UNREADY_AFTER})")
    p.add_argument("--liveness-floor", type=_seconds, default=DEFAULT_LIVENESS_FLOOR, metavar="S",
                   help="/healthz fails after max(3 x interval, S) seconds without progress "
                   f"(default {DEFAULT_LIVENESS_FLOOR:g})")
    p.set_defaults(func=run_watch_command, dry_run=False, no_cache=False)


def watch_options(args: argparse.Namespace) -> WatchOptions:
    schedule: Schedule = args.schedule or IntervalSchedule(args.interval)
    return WatchOptions(
        config_path=args.config,
        schedule=schedule,
        backoff=FailureBackoff(args.failure_backoff, max(args.failure_backoff, args.failure_backoff_max)),
        drain_timeout=args.drain_timeout,
        rate_share=args.rate_share,
        timeout=args.timeout,
        max_runs=args.max_runs,
        sigterm_exits_0=args.health_port is not None,
        liveness_floor=args.liveness_floor,
        unready_after=max(1, args.unready_after),
    )


async def serve(service: WatchService, host: str, port: int | None) -> int:
    """The loop, the signal watcher and (with a port) the health server in one nursery."""
    async with trio.open_nursery() as nursery:
        await nursery.start(service.watch_signals)
        if port is not None:
            route = make_router(service.state, service.metrics, trio.current_time)
            try:
                await nursery.start(serve_health, route, host, port)
            except OSError as exc:
                raise OcyncError(
                    f"--health-port {port}: cannot listen on {host}: {exc.strerror or exc}"
                ) from exc
        code = await service.run()
        nursery.cancel_scope.cancel()
    return code


def run_watch_command(args: argparse.Namespace) -> int:
    # A config that is invalid at start has no last good one to fall back on: exit 3 at once.
    loaded = load_config_file(args.config)
    for warning in loaded.warnings:
        logging.getLogger("ocync.config").warning("%s", warning)
    if not args.quiet:  # the heartbeat and cycle lines are INFO, shown without -v
        logging.getLogger("ocync.service").setLevel(logging.INFO)

    def on_report(report: RunReport) -> None:
        _print_report(report, args)
        sys.stdout.flush()  # each run's report is seen when it ends, also through a pipe

    service = WatchService(watch_options(args), loaded.config, on_report=on_report)
    return trio.run(serve, service, args.health_bind, args.health_port)


__all__ = ["register", "run_watch_command", "watch_options"]
