"""Small versions of the rate controller's acceptance scenarios over real sockets: the mock
registry in process, ocync's RegistryClient and its PrincipalController; scenario 3 runs two
`ocync sync` processes (stress/ratelimit_scenarios.py runs the full-size ones). Caps of 100-200
per 2 s (120 per 4 s for scenario 3) keep each scenario to a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocync.ratelimit.bucket import parse_rate
from stress.ratelimit_scenarios import (
    SHARED_QUICK,
    USER,
    ScenarioResult,
    markdown,
    plot,
    scenario_known_cap,
    scenario_shared_principal,
    scenario_unknown_cap,
)

CAP = "100/2s"
pytestmark = pytest.mark.slow


def _explain(result: ScenarioResult) -> str:
    return f"{result.checks} {result.summary()}"


async def test_known_cap_zero_429s_at_90_percent() -> None:
    result = await scenario_known_cap(operations=300, tasks=8, cap=CAP, seed=1)
    assert result.numbers["throttled"] == 0, _explain(result)
    assert result.numbers["requests"] >= 300 and result.numbers["client_requests"] >= 300
    assert not result.numbers["errors"], _explain(result)
    assert result.numbers["utilisation"] >= 0.90, _explain(result)
    assert result.passed, _explain(result)


async def test_unknown_cap_few_429s_high_utilisation(tmp_path: Path) -> None:
    # The first wall costs one volley of 429s (the requests in flight when it is met), so this
    # one runs a little longer than the others for the 2% to mean something.
    result = await scenario_unknown_cap(operations=700, tasks=8, cap="200/2s", seed=1)
    assert not result.numbers["errors"], _explain(result)
    assert result.numbers["throttled"] > 0  # the client was not told: it met the cap
    assert result.numbers["throttled_pct"] <= 2.0, _explain(result)
    assert result.numbers["utilisation"] >= 0.80, _explain(result)
    png = plot(result, tmp_path / "scenario2.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "unknown cap" in markdown([result])


async def test_unknown_cap_estimated_when_the_announcement_is_ignored() -> None:
    result = await scenario_unknown_cap(
        operations=800, tasks=8, cap="200/2s", seed=2, learning="estimated"
    )
    assert not result.numbers["errors"], _explain(result)
    assert result.numbers["cap_source"] == "estimated", _explain(result)
    assert result.numbers["throttled_pct"] <= 2.0, _explain(result)
    assert result.numbers["utilisation"] >= 0.80, _explain(result)


async def test_shared_principal_two_ocync_processes_zero_429s(tmp_path: Path) -> None:
    """Two real `ocync sync --rate-share 0.5` processes, one principal on a 120/4s mock: the
    ~230 target requests they make together would exceed the cap without the split (each
    paces at 14.4/s instead of 28.8/s). One prints --json, the other -v: both must show the
    controller's statistics."""
    result = await scenario_shared_principal(
        sizes=SHARED_QUICK, rate_share=0.5, outputs=("json", "verbose"), seed=1, workdir=tmp_path
    )
    n = result.numbers
    assert n["exit_codes"] == [0, 0], _explain(result)
    assert all("--rate-share 0.5" in command for command in n["commands"])
    assert n["throttled"] == 0, _explain(result)
    assert n["per_principal"][USER]["throttled"] == 0, _explain(result)
    # Meaningful: more target requests than the cap admits in one period, so a process that
    # ignored the share would have met it (window peak near the cap, never above).
    cap = parse_rate(SHARED_QUICK.cap)
    assert n["per_principal"][USER]["requests"] > 1.5 * cap.count, _explain(result)
    assert cap.count * 0.8 <= n["per_principal"][USER]["peak_window"] <= cap.count
    assert n["process_reports"][0]["images_synced"] == SHARED_QUICK.tags_per_repo * (
        SHARED_QUICK.repositories // 2
    ), _explain(result)
    assert n["process_reports"][0]["images_failed"] == 0
    # Controller statistics: from the --json report and from -v's stderr.
    for controller in n["controllers"]:
        assert controller is not None, _explain(result)
        assert controller["rate_share"] == 0.5 and controller["cap"] == SHARED_QUICK.cap
        assert controller["throttles"] == 0 and controller["requests"] > 0
        assert set(controller["windows"]["all"]) >= {"min", "mean", "max"}
    assert n["utilisation_both_running"] >= 0.75, _explain(result)
    assert result.passed, _explain(result)
