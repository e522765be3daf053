"""``--log-format json``: one JSON object per stderr line (``time``, ``level``, ``event`` and
the event's fields). Every string is redacted on its own before encoding (``redact`` works on
text; run over the encoded line it could cut a JSON string open). Lines the CLI prints for
humans on stderr (``ocync: error: ...``) are wrapped into the same shape, so a log collector
never meets a line that is not JSON.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from typing import Any, TextIO

from ocync.engine.report import redact

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_PREFIXES = (("ocync: error: ", "error", "error"), ("ocync: warning: ", "warning", "warning"),
             ("ocync: internal error: ", "error", "internal_error"),
             ("ocync: interrupted", "warning", "interrupted"))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrub(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def json_line(level: str, event: str, message: str, fields: dict[str, Any], when: float) -> str:
    doc: dict[str, Any] = {"time": _timestamp(when), "level": level, "event": event,
                           "message": message}
    for key, value in fields.items():
        doc.setdefault(key, value)
    return json.dumps(_scrub(doc), ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """``extra={"event": NAME, "fields": {...}}`` names the event; other records are
    ``event: "log"`` with the logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in ("event", "fields"):
                fields.setdefault(key, value)
        fields.setdefault("logger", record.name)
        if record.exc_info and record.exc_info[1] is not None:
            fields.setdefault("error", f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        event = str(getattr(record, "event", None) or "log")
        return json_line(record.levelname.lower(), event, record.getMessage(), fields, record.created)


class JsonLinesStream(io.TextIOBase):
    """A text stream for ``sys.stderr`` that passes JSON lines through and wraps any other
    complete line as ``{"event": "error" | "warning" | "interrupted" | "stderr", ...}``."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # no live progress display in JSON mode

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.raw.write(self._wrap(line) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.raw.write(self._wrap(self._pending) + "\n")
            self._pending = ""
        self.raw.flush()

    @staticmethod
    def _wrap(line: str) -> str:
        if line.startswith("{"):
            try:
                json.loads(line)
                return line
            except ValueError:
                pass
        level, event, message = "info", "stderr", line
        for prefix, lvl, evt in _PREFIXES:
            if line.startswith(prefix):
                level, event = lvl, evt
                message = line.removeprefix("ocync: ") if evt == "interrupted" else line[len(prefix):]
                break
        return json_line(level, event, message, {}, time.time())


def install_json_stderr() -> TextIO:
    """Route ``sys.stderr`` through :class:`JsonLinesStream`; the real stream is returned
    (the JSON log handler writes to it directly)."""
    raw = sys.stderr
    if not isinstance(raw, JsonLinesStream):
        sys.stderr = JsonLinesStream(raw)
        return raw
    return raw.raw


__all__ = ["JsonFormatter", "JsonLinesStream", "install_json_stderr", "json_line"]
