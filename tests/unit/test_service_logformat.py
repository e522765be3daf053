"""JSON log lines: the shape, redaction by value and of URLs, and wrapping of printed lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ocync.registry.auth import remember_secret, secret_scope
from ocync.service.logformat import JsonFormatter, JsonLinesStream

SECRET = "tok-Zq9\"quote-and-more"


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL])
def test_every_level_is_one_json_object_without_the_secret(level: int) -> None:
    record = logging.LogRecord("ocync.test", level, __file__, 1,
                               "pushing with %s to https://u:%s@h/v2/?sig=abc", (SECRET, SECRET), None)
    record.event = "push"
    record.fields = {"image": "a/b:1", "error": f"Bearer {SECRET}", "nested": [SECRET, {"k": SECRET}]}
    with secret_scope():
        remember_secret(SECRET)
        line = JsonFormatter().format(record)
    doc = json.loads(line)
    assert doc["level"] == logging.getLevelName(level).lower() and doc["event"] == "push"
    assert doc["image"] == "a/b:1" and doc["time"].endswith("Z")
    assert SECRET not in line and json.dumps(SECRET)[1:-1] not in line and "sig=abc" not in line


def test_printed_lines_are_wrapped_and_json_lines_pass_through() -> None:
    raw = io.StringIO()
    stream = JsonLinesStream(raw)
    stream.write("ocync: error: registry src: conn")
    stream.write("ection refused\nocync: warning: w\n{\"event\": \"x\"}\nplain")
    stream.flush()
    docs = [json.loads(line) for line in raw.getvalue().splitlines()]
    assert [(d.get("level"), d["event"]) for d in docs] == [
        ("error", "error"), ("warning", "warning"), (None, "x"), ("info", "stderr")]
    assert docs[0]["message"] == "registry src: connection refused"
    assert not stream.isatty()
