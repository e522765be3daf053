"""Run report: summary line, JSON shape, exit codes, redaction."""

from __future__ import annotations

import json

import pytest

from ocync.engine.report import ImageResult, ImageStatus, RunReport, redact


def _r(status: ImageStatus, **kw: object) -> ImageResult:
    return ImageResult(mapping="m", source="src/a:1", target="dst/a:1", status=status, **kw)  # type: ignore[arg-type]


def test_summary_and_json() -> None:
    rep = RunReport(requests=42, throttled=0, elapsed=1.25)
    rep.add(_r(ImageStatus.SYNCED, digest="sha256:" + "a" * 64, blobs_transferred=3, blobs_mounted=1, bytes_transferred=2 * 1024 * 1024))
    rep.add(_r(ImageStatus.SKIPPED, reason="unchanged"))
    rep.add(_r(ImageStatus.FAILED, reason="boom"))
    line = rep.summary_line()
    assert "1 synced, 1 skipped, 1 failed" in line
    assert "3 transferred, 1 mounted, 0 skipped" in line
    assert "2.0 MiB" in line and "42 requests" in line
    text = rep.render_text()
    assert text.splitlines()[0].startswith("synced src/a:1 -> dst/a:1")
    assert len(text.splitlines()) == 2  # the synced image and the summary; skipped are silent
    assert rep.problem_lines() == ["src/a:1 -> dst/a:1: boom"]  # for stderr
    assert rep.render_text(quiet=True) == line
    doc = json.loads(json.dumps(rep.to_dict()))
    assert doc["summary"]["images_synced"] == 1
    assert doc["exit_code"] == 1
    assert [i["status"] for i in doc["images"]] == ["synced", "skipped", "failed"]
    # the image lines count blobs in the summary's words; --json lists the failed image
    assert text.splitlines()[0].endswith("[3 transferred, 1 mounted, 0 skipped]")
    assert doc["errors"] == ["src/a:1 -> dst/a:1: boom"]


@pytest.mark.parametrize(
    ("statuses", "auth", "code"),
    [
        ([], False, 0),
        ([ImageStatus.SYNCED, ImageStatus.SKIPPED], False, 0),
        ([ImageStatus.FAILED], False, 2),
        ([ImageStatus.FAILED], True, 4),
        ([ImageStatus.SYNCED, ImageStatus.FAILED], True, 1),
    ],
)
def test_exit_codes(statuses: list[ImageStatus], auth: bool, code: int) -> None:
    rep = RunReport()
    for s in statuses:
        rep.add(_r(s, auth_failure=auth and s is ImageStatus.FAILED))
    assert rep.exit_code() == code


def test_json_errors_list_failed_images_then_run_errors() -> None:
    rep = RunReport()
    rep.add(_r(ImageStatus.FAILED, reason="403 DENIED"))
    rep.add_error("mapping m: repository not found")
    assert rep.to_dict()["errors"] == ["src/a:1 -> dst/a:1: 403 DENIED", "mapping m: repository not found"]
    assert rep.errors == ["mapping m: repository not found"]  # run-level ones, as before


def test_interrupted_with_undone_is_partial() -> None:
    rep = RunReport(interrupted=True, undone=2)
    rep.add(_r(ImageStatus.SYNCED))
    assert rep.exit_code() == 1
    assert "interrupted, 2 left undone" in rep.summary_line()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://storage.example/blob?sig=SECRET123&x=1 failed", "SECRET123"),
        ("https://alice:SECRET123@host/v2/", "SECRET123"),
        ("header Authorization: Bearer SECRET123", "SECRET123"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    rep = RunReport()
    rep.add_error(text)
    assert secret not in json.dumps(rep.to_dict())
