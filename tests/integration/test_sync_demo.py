"""`make demo` end to end: both mocks as subprocesses, a real `ocync sync -c examples/demo.yaml`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_demo_runs_a_real_sync_under_30s() -> None:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "stress.demo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "$ ocync sync -c examples/demo.yaml" in text
    assert "images: 11 synced, 0 skipped, 0 failed" in text  # repo3 drops v0.0 (hard exclude)
    assert "images: 0 synced, 11 skipped, 0 failed" in text  # the warm second run
    assert "429s: 0; credentials leaked to the storage host: 0" in text
    assert "bit for bit at the target: ok" in text
    assert "demo-pat" not in out.stdout + out.stderr  # the token never printed
    assert elapsed < 30
