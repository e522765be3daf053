"""Every file in invalid_configs/ must fail `ocync validate` with exit 3 and one clear line.

Each file ends with ``# expect: TEXT`` lines (substrings of the error output, which name the
offending field), optionally ``# env: NAME=VALUE`` and ``# unset: NAME``. In process;
tests/integration/test_validate_cli.py runs two of them through the console script.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocync.cli.main import main

HERE = Path(__file__).parent / "invalid_configs"
FILES = sorted(HERE.glob("*.yaml"))
LINE = re.compile(r"^ocync: error: \S+?:\d+: ")


def _directives(path: Path, key: str) -> list[str]:
    prefix = f"# {key}: "
    return [ln[len(prefix):] for ln in path.read_text().splitlines() if ln.startswith(prefix)]


def test_there_are_at_least_fifty() -> None:
    assert len(FILES) >= 50


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_invalid_config(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expects = _directives(path, "expect")
    assert expects, f"{path.name} has no # expect: line"
    for name in _directives(path, "unset"):
        monkeypatch.delenv(name, raising=False)
    for pair in _directives(path, "env"):
        name, _, value = pair.partition("=")
        monkeypatch.setenv(name, value)
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 3, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines, "no error printed"
    for line in lines:
        assert LINE.match(line), line
        assert str(path) in line
    for expect in expects:
        assert expect in err, f"expected {expect!r} in:\n{err}"


def test_json_errors(capsys: pytest.CaptureFixture[str]) -> None:
    path = HERE / "unknown-mapping-key.yaml"
    assert main(["validate", "--json", str(path)]) == 3
    out, _ = capsys.readouterr()
    assert '"valid": false' in out and "tragets" in out


def test_several_problems_each_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "registries:\n  hub: {url: docker.io, passwd: x}\n"
        "mappings:\n  - from: a\n    tragets: hub\n  - from: b\n    tags: {latest: x}\n"
    )
    assert main(["validate", str(cfg)]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(": ")[3] for ln in lines] == [
        "registries.hub.passwd", "mappings[0].tragets", "mappings[1].tags.latest",
    ]
    assert [ln.split(":")[3] for ln in lines] == ["2", "5", "7"]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 3
    assert "no such file" in capsys.readouterr().err
