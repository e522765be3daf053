"""`python -m stress.corpus URL [...]`: plan a corpus and push it to a registry by hand (e.g. one
started by `make mock`); prints the summary and push statistics, or with --json the full plan.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx
import trio

from stress.corpus.plan import CorpusSpec, build_corpus
from stress.corpus.push import PushError, push_corpus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stress.corpus",
        description="`python -m stress.corpus URL [...]`: seed a registry by hand (e.g. one started by `make mock`).",
    )
    parser.add_argument("url", help="registry base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--namespace", default="corpus")
    parser.add_argument("--repos", type=int, default=2)
    parser.add_argument("--tags", type=int, default=2)
    parser.add_argument("--platforms", default="linux/amd64,linux/arm64", help="comma-separated")
    parser.add_argument("--format", choices=["oci", "docker"], default="oci")
    parser.add_argument("--single", type=int, default=0, help="single-platform tags per repo")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-size", default="1024:16384", help="MIN:MAX bytes")
    parser.add_argument("--shared", type=int, default=1, help="shared base layers")
    parser.add_argument("--referrers", type=int, default=0, help="referrers per image")
    parser.add_argument("--user", help="user name; the password comes from $CORPUS_PASSWORD")
    parser.add_argument("--json", action="store_true", help="print the full description")
    return parser


def _spec(args: argparse.Namespace) -> CorpusSpec:
    """The spec the flags describe; ValueError names what is wrong."""
    lo, _, hi = args.layer_size.partition(":")
    return CorpusSpec(
        seed=args.seed,
        namespace=args.namespace,
        repositories=args.repos,
        tags_per_repo=args.tags,
        platforms=tuple(p for p in args.platforms.split(",") if p),
        index_format=args.format,
        single_platform_tags=args.single,
        layers_per_image=args.layers,
        layer_size=(int(lo), int(hi or lo)),
        shared_base_layers=args.shared,
        referrers_per_image=args.referrers,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        spec = _spec(args)
    except ValueError as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 3
    corpus = build_corpus(spec)
    password = os.environ.get("CORPUS_PASSWORD") if args.user else None
    try:
        stats = trio.run(
            lambda: push_corpus(corpus, args.url, username=args.user, password=password)
        )
    except (PushError, httpx.HTTPError) as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 2
    out = corpus.describe() if args.json else {**corpus.summary(), "push": stats.to_dict()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
