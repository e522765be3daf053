"""What a `python -m stress.bench` scenario is: a named run from a context to metrics.

Apart from stress/bench.py (the table and the runner) so that the modules defining scenarios
(client_bench, syncbench) and the runner importing them do not import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    value: float
    unit: str
    target: float | None = None  # None: informational
    higher_is_better: bool = True

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


@dataclass(slots=True)
class ScenarioResult:
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BenchContext:
    quick: bool
    workdir: Path


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    run: Callable[[BenchContext], ScenarioResult]
