"""Reference round-trips: whatever we build from the grammar parses back to itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.errors import OcyncError
from ocync.oci.digest import Digest
from ocync.oci.reference import Reference, parse_reference

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
component = st.builds(
    lambda parts, seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=False)),
    st.lists(st.text(ALNUM, min_size=1, max_size=6), min_size=1, max_size=3),
    st.lists(st.sampled_from([".", "_", "__", "-", "--"]), min_size=2, max_size=2),
)
host = st.one_of(
    st.sampled_from(["ghcr.io", "docker.io", "quay.io", "localhost", "registry.example.com"]),
    st.builds(lambda h, p: f"{h}:{p}", st.sampled_from(["localhost", "127.0.0.1", "reg.example"]), st.integers(1, 65535)),
)
tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
digest = st.binary(min_size=0, max_size=16).map(Digest.of)


@settings(max_examples=300, deadline=None)
@given(host, st.lists(component, min_size=1, max_size=4), st.none() | tag, st.none() | digest)
def test_round_trip(registry: str, path: list[str], t: str | None, d: Digest | None) -> None:
    text = f"{registry}/{'/'.join(path)}" + (f":{t}" if t else "") + (f"@{d}" if d else "")
    ref = parse_reference(text)
    assert ref.tag == t and ref.digest == d
    assert parse_reference(str(ref)) == ref
    assert isinstance(ref, Reference)
    assert ref.repository.endswith("/".join(path))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_raises_only_our_errors(text: str) -> None:
    try:
        ref = parse_reference(text)
    except OcyncError:
        return
    assert parse_reference(str(ref)) == ref
