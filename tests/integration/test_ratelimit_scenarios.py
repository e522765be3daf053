"""Small versions of issue 4's rate-limit scenarios over real sockets: the mock registry in
process, ocync's RegistryClient and its PrincipalController (stress/ratelimit_scenarios.py runs
the full-size ones). Caps of 100-200 per 2 s keep each scenario to a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress.ratelimit_scenarios import (
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


async def test_shared_principal_two_processes_zero_429s() -> None:
    result = await scenario_shared_principal(operations=240, tasks=4, cap=CAP, seed=1)
    assert result.numbers["worker_errors"] == 0, _explain(result)
    assert len(result.numbers["worker_operations"]) == 2
    assert min(result.numbers["worker_operations"]) >= 120
    assert result.numbers["throttled"] == 0, _explain(result)
