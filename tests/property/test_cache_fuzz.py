"""The transfer-cache file, whatever its bytes, loads or is discarded; it never raises
(h11's fuzz invariant applied to a file a crash, a full disk or another tool may have mangled)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import FORMAT, VERSION, CacheFile

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _load(content: bytes, now: float = 1000.0) -> TransferCache:
    with tempfile.TemporaryDirectory() as tmp:
        f = CacheFile(Path(tmp), ttl=3600)
        f.path.write_bytes(content)
        return f.load(now=now)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(content: bytes) -> None:
    assert isinstance(_load(content), TransferCache)


@settings(max_examples=300, deadline=None)
@given(json_values, st.one_of(st.floats(), st.integers(), json_values))
def test_wellformed_document_around_any_payload_never_raises(payload: object, saved_at: object) -> None:
    """Right format, version and checksum, anything inside: wrong types are discarded too."""
    text = json.dumps(payload)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": saved_at,
        "checksum": "sha256:" + hashlib.sha256(text.encode()).hexdigest(),
        "payload": text,
    }
    cache = _load(json.dumps(doc).encode())
    assert isinstance(cache, TransferCache)
    if cache.loaded:  # only a payload of the saved shape is trusted
        assert isinstance(payload, dict) and isinstance(payload.get("registries"), dict)
