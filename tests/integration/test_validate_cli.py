"""`python -m ocync validate` in a subprocess on two of tests/unit/invalid_configs/: what the
user's terminal shows is exit 3 and the expected lines, never a traceback (the in-process cases
are tests/unit/test_config_invalid.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

INVALID = Path(__file__).parents[1] / "unit" / "invalid_configs"


@pytest.mark.parametrize("name", ["latest-without-sort", "env-required-unset"])
def test_subprocess_exit_code_and_no_traceback(name: str) -> None:
    path = INVALID / f"{name}.yaml"
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "ocync", "validate", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    expects = [ln[len("# expect: ") :] for ln in path.read_text().splitlines() if ln.startswith("# expect: ")]
    assert expects
    for expect in expects:
        assert expect in proc.stderr
