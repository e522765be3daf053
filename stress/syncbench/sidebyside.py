"""One scenario group: a seeded source, a fresh target per tool, and phases in which ocync and
then skopeo copy the corpus; each run is measured, tallied from the logs and checked afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import trio

from stress.corpus import Corpus, build_corpus, push_corpus, verify_corpus
from stress.registries import LoggedRequest
from stress.syncbench.measure import Measured, ToolRun, failed_tags, measure, tally
from stress.syncbench.report import ratios
from stress.syncbench.tools import (
    TOOLS,
    ocync_command,
    skopeo_command,
    target_repo,
    tool_env,
    write_ocync_config,
    write_skopeo_yaml,
)


class Endpoint(Protocol):
    """A registry whose requests are logged (stress/registries.py)."""

    @property
    def host(self) -> str: ...

    @property
    def url(self) -> str: ...

    def take(self) -> list[LoggedRequest]: ...


class SideBySide:
    """Runs ocync then skopeo for each phase against the same source and its own target."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        corpus: Corpus,
        source: Endpoint,
        targets: Mapping[str, Endpoint],
        *,
        auth: tuple[str, str] | None = None,
        profile: str | None = None,
        rate_limit: str | None = None,
        pause: float = 0.0,
    ) -> None:
        self.name = name
        self.pause = pause  # seconds to wait before each tool run (a rate window to drain)
        self.corpus = corpus
        self.source = source
        self.targets = targets
        self.auth = auth
        self.runs: list[ToolRun] = []
        self.expected: dict[str, dict[str, str]] = {
            repo: dict(tags) for repo, tags in corpus.repos.items()
        }
        self.sizes: dict[str, int] = {d: b.size for d, b in corpus.blobs.items()}
        self.extra: dict[str, Any] = {}
        self.workdir = workdir
        self._target_settings: dict[str, Any] = {
            "profile": profile,
            "auth": auth,
            "rate_limit": rate_limit,
        }
        self.ocync_config = workdir / "ocync.yaml"
        self.retarget(targets, workdir / "cache")
        self.skopeo_yaml = workdir / "skopeo.yaml"
        write_skopeo_yaml(self.skopeo_yaml, source.host, sorted(self.expected))

    def retarget(
        self, targets: Mapping[str, Endpoint], cache: Path, **settings: Any
    ) -> None:
        """Point both tools at other (fresh) targets; ocync gets `cache` as its cache_dir
        (`settings`: more write_ocync_config keywords, e.g. artifacts_refresh, kept from now on)."""
        self.targets = targets
        self._target_settings.update(settings)
        write_ocync_config(
            self.ocync_config,
            self.source.host,
            targets["ocync"].host,
            sorted(self.expected),
            cache,
            **self._target_settings,
        )

    def seed(self) -> None:
        trio.run(push_corpus, self.corpus, self.source.url)
        self.source.take()

    @property
    def tag_count(self) -> int:
        return sum(len(tags) for tags in self.expected.values())

    def phase(self, phase: str, *, verify: bool = False) -> None:
        """Each tool once, in order; the target is checked after each (in full if `verify`)."""
        for tool in TOOLS:
            target = self.targets[tool]
            if tool == "ocync":
                cmd = ocync_command(self.ocync_config)
            else:
                cmd = skopeo_command(self.skopeo_yaml, target.host, self.auth)
            print(f"  {self.name} {phase}: {tool} ...", file=sys.stderr, flush=True)
            time.sleep(self.pause)
            got = measure(cmd, env=tool_env())
            run = ToolRun(
                tool,
                phase,
                round(got.wall, 3),
                got.exit_code,
                round(got.peak_rss_mib, 1),
                tags=self.tag_count,
                cpu_s=round(got.cpu_s, 2),
            )
            tally(run, self.source.take(), target.take(), self.sizes)
            if tool == "ocync":
                _read_ocync_report(run, got)
            elif got.exit_code != 0:
                run.note = _last_line(got.stderr)
            self._check_target(run, target, verify)
            self.runs.append(run)

    def _check_target(self, run: ToolRun, target: Endpoint, verify: bool) -> None:
        run.failed_images = len(failed_tags(target.url, self.expected, self.auth))
        if verify:
            problems = trio.run(self._verify, target.url)
            run.verify_problems = len(problems)
            if problems and not run.note:
                run.note = problems[0][:200]
        target.take()  # the checks' own requests are not the tool's

    async def _verify(self, url: str) -> list[str]:
        user, password = self.auth if self.auth else (None, None)
        return await verify_corpus(
            self.corpus,
            url,
            username=user,
            password=password,
            repo_map={repo: target_repo(repo) for repo in self.expected},
        )

    def change_some_tags(self, share: float = 0.05) -> int:
        """Re-push ~`share` of the tags with new content (tag v0.0 of the first repositories)."""
        spec = self.corpus.spec
        changed = max(1, round(self.tag_count * share))
        changed = min(changed, spec.repositories)
        fresh = build_corpus(
            dataclasses.replace(spec, seed=spec.seed + 1, repositories=changed, tags_per_repo=1)
        )
        trio.run(push_corpus, fresh, self.source.url)
        self.source.take()
        for repo, tags in fresh.repos.items():
            self.expected[repo].update(tags)
        self.sizes.update({d: b.size for d, b in fresh.blobs.items()})
        self.extra["changed_tags"] = changed
        return changed

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "corpus": self.corpus.summary(),
            **self.extra,
            "runs": [r.to_dict() for r in self.runs],
        }
        out["ratios"] = ratios(self.runs)
        return out


def _read_ocync_report(run: ToolRun, got: Measured) -> None:
    """What `ocync sync --json` said: the failed count, and the first failure's reason as note."""
    try:
        doc = json.loads(got.stdout)
        run.reported_failed = int(doc["summary"]["images_failed"])
    except (ValueError, KeyError, TypeError):
        run.note = _last_line(got.stderr)
        return
    reasons = [i.get("reason") for i in doc.get("images", []) if i.get("status") == "failed"]
    reasons += doc.get("errors", [])
    if run.reported_failed and reasons:
        run.note = str(reasons[0])[:200]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
