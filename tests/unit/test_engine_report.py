"""Run report: summary line, JSON shape, exit codes, redaction."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ocync.cli.main import _RedactingFormatter
from ocync.engine.report import ImageResult, ImageStatus, RunReport, redact
from ocync.registry.auth import Credential, known_secrets, secret_scope


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


# Secrets as a broken token file or a hostile registry may hold them: anything at all.
_secret_text = st.text(min_size=1, max_size=40)


@settings(max_examples=500, deadline=None)
@given(secret=_secret_text, before=st.text(max_size=30), after=st.text(max_size=30))
def test_redact_never_leaves_a_known_secret_in_any_form(secret: str, before: str, after: str) -> None:
    forms = [secret, repr(secret), repr(secret.encode(errors="surrogatepass")), json.dumps(secret)]
    for form in forms:
        out = redact(before + form + after, [secret])
        assert secret not in out, (form, out)
    rep = RunReport()
    with secret_scope():
        Credential("static_token", None, secret, "config")
        rep.add_error(before + secret + after)
    (error,) = json.loads(json.dumps(rep.to_dict()))["errors"]
    assert secret not in error


@settings(max_examples=300, deadline=None)
@given(token=st.text(st.characters(blacklist_characters="\r\n"), min_size=1, max_size=40))
def test_redact_cuts_an_authorization_value_whatever_it_holds(token: str) -> None:
    """No known secrets: the pattern alone cuts a Bearer/Basic value to the end of its line,
    also when h11 shows it escaped ("Illegal header value b'Bearer ...\\r'")."""
    for text in (f"Illegal header value b'Bearer {token}\\r' (GET /v2/a/tags/list)",
                 f"header Authorization: Basic {token}",
                 f"Authorization: {token}"):
        assume(token not in "Illegal header value b'Bearer <redacted>header Authorization: <redacted>")
        assert token not in redact(text, ()), text


def test_redact_removes_the_parts_of_a_secret_split_at_control_characters() -> None:
    secret = "PART1-SECRET\nPART2-SECRET\r"
    out = redact("first line PART1-SECRET\nPART2-SECRET and PART2-SECRET\\r again", [secret])
    assert "PART1-SECRET" not in out and "PART2-SECRET" not in out
    assert out.startswith("first line <redacted>")


def test_only_secrets_resolved_in_a_scope_are_remembered() -> None:
    Credential("basic", "u", "outside-secret")
    with secret_scope():
        Credential("basic", "u", "inside-secret")
        assert known_secrets() == {"inside-secret", base64.b64encode(b"u:inside-secret").decode()}
        assert redact("got inside-secret and outside-secret") == "got <redacted> and outside-secret"
    assert known_secrets() == frozenset()
    assert redact("got inside-secret") == "got inside-secret"


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
def test_log_lines_lose_the_run_secrets_at_every_level(level: int) -> None:
    formatter = _RedactingFormatter("ocync: %(levelname)s: %(message)s")
    with secret_scope():
        Credential("static_token", None, 'tok"with\\odd-SECRET', "config")
        record = logging.LogRecord("httpx", level, __file__, 1, "sent %r as Bearer tok\"with\\odd-SECRET", ("tok\"with\\odd-SECRET",), None)
        line = formatter.format(record)
    assert "SECRET" not in line and line.startswith(f"ocync: {logging.getLevelName(level)}: sent ")
