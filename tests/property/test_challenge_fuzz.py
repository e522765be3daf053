"""Challenge parsing of arbitrary strings raises only our own errors (h11's fuzz invariant)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.errors import OcyncError
from ocync.oci.challenge import Challenge, parse_www_authenticate

PIECES = ['Bearer', 'Basic', ' ', ',', '=', '"', '\\', 'realm', 'scope', 'x', '==', '\t', 'a/b:c', 'é']


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(st.sampled_from(PIECES), max_size=30).map("".join)))
def test_arbitrary_input(header: str) -> None:
    try:
        challenges = parse_www_authenticate(header)
    except OcyncError:
        return
    assert challenges and all(isinstance(c, Challenge) and c.scheme for c in challenges)


quoted = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["realm", "service", "scope", "error"]), quoted), min_size=1, max_size=4))
def test_quoted_params_round_trip(params: list[tuple[str, str]]) -> None:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Bearer " + ",".join(f"{k}={quote(v)}" for k, v in params)
    [challenge] = parse_www_authenticate(header)
    assert challenge.params == tuple(params)
