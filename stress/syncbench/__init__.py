"""`ocync sync` vs `skopeo sync --all`, side by side on the same registries.

Scenario groups (each tool gets its own fresh target registry; the source is shared and both
tools run one after the other, ocync first, in every phase):
  sync_distribution  two Debian docker-registry 2.8 instances: cold, warm (nothing changed),
                     partial (~5% of tags re-pushed with new content at the source)
  sync_ghcr_mock     source mock -> ghcr-profile mock (token auth, rate cap, blob redirects,
                     mounts only inside one namespace): cold, warm, partial
  sync_wan           both tools between generic mocks with --latency 20: cold, warm
  sync_scale         docker-registry pair with 10, 100 (and on request 1000) repositories:
                     cold, warm, and ocync's peak RSS against the number of repositories
Every request is counted from the registries' own access logs (stress/registries.py), so
both tools are measured by the same witness: requests by kind, bytes, source blob GETs,
duplicate blob GETs (the same digest fetched more than once), cross-repository mounts answered
201, 429s. A tag is "failed" when, after the run, the target's manifest HEAD does not answer
the source digest. Peak RSS and CPU time are the tool process's own (getrusage via wait4 in a
small wrapper). The docker-registry pair repeats the cold run on fresh targets (COLD_SAMPLES)
and reports the median ratio; on the ghcr-profile mock every run starts with an empty rate
window (the bench waits one window first).

skopeo runs as a user would run it for a set of repositories: one process,
`skopeo --insecure-policy sync --all --preserve-digests --keep-going --src yaml --dest docker
SRC.yaml DST/mirror` (without --scoped it keeps the last path component: corpus/repo0 ->
mirror/repo0), which is the mapping the ocync config uses.

Modules: tools (configs and commands of both tools), measure (one run: RSS wrapper, log
tallies), sidebyside (one group's phases), scenarios (the groups, `SCENARIO_TABLE`), report
(ratios, target checks, Markdown), cli. Run alone: `python -m stress.sync_bench [--quick]
[--only NAME] [--scale 10,100,1000]`; writes stress/results/sync_bench.json and sync_bench.md.
`python -m stress.bench` runs the same groups (it imports `SCENARIO_TABLE`).
"""

from stress.syncbench.measure import Measured, ToolRun, measure, tally
from stress.syncbench.report import Check, bench_metrics, checks, ratios, render_markdown
from stress.syncbench.scenarios import SCENARIO_TABLE
from stress.syncbench.sidebyside import Endpoint, SideBySide
from stress.syncbench.tools import target_repo, write_ocync_config

__all__ = [
    "SCENARIO_TABLE",
    "Check",
    "Endpoint",
    "Measured",
    "SideBySide",
    "ToolRun",
    "bench_metrics",
    "checks",
    "measure",
    "ratios",
    "render_markdown",
    "tally",
    "target_repo",
    "write_ocync_config",
]
