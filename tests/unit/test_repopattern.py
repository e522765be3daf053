"""Repository patterns and target naming (ocync.oci.repopattern), digest-pin templates
(ocync.oci.digestpin): pure, table-driven, plus the properties the engine relies on."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocync.oci.digestpin import REFERRERS_TAG, render_tag, tag_problem, template_problem
from ocync.oci.repopattern import RepoPattern, excluded, target_repository

H = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("pattern", "repo", "suffix"),
    [
        pytest.param("team/*", "team/app", "app", id="one-more"),
        pytest.param("team/*", "team/sub/app", None, id="star-not-deeper"),
        pytest.param("team/**", "team/sub/app", "sub/app", id="double-star-any-depth"),
        pytest.param("team/**", "team", None, id="not-the-prefix-itself"),
        pytest.param("team/*", "teams/app", None, id="component-boundary"),
        pytest.param("*", "app", "app", id="top-level"),
        pytest.param("*", "org/app", None, id="top-level-one-component"),
        pytest.param("**", "org/app", "org/app", id="whole-catalog"),
        pytest.param("a/b/*", "a/b/c", "c", id="nested-prefix"),
    ],
)
def test_match(pattern: str, repo: str, suffix: str | None) -> None:
    assert RepoPattern.parse(pattern).match(repo) == suffix


@pytest.mark.parametrize(
    "text", ["team/a*", "te*m/*", "team/*/x", "team/***", "Team/*", "team//*", "team/x"]
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        RepoPattern.parse(text)


@pytest.mark.parametrize(
    ("to", "suffix", "target"),
    [
        pytest.param("mirror/team/*", "app", "mirror/team/app", id="prefix"),
        pytest.param("*", "sub/app", "sub/app", id="bare"),
        pytest.param("m/**", "sub/app", "m/sub/app", id="double-star"),
    ],
)
def test_target_repository(to: str, suffix: str, target: str) -> None:
    assert target_repository(to, suffix) == target


def test_exclude_globs_match_the_whole_path() -> None:
    assert excluded("team/old-app", ["team/old-*"])
    assert excluded("team/sub/x", ["team/sub/*"])
    assert not excluded("team/app", ["old-*"])


component = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)


@given(prefix=st.lists(component, max_size=3), rest=st.lists(component, min_size=1, max_size=4))
def test_suffix_roundtrip(prefix: list[str], rest: list[str]) -> None:
    """What ``**`` matches, ``to: X/*`` puts under X with the same suffix; ``*`` matches
    exactly the one-component suffixes."""
    repo = "/".join([*prefix, *rest])
    deep = RepoPattern.parse("/".join([*prefix, "**"]))
    assert deep.match(repo) == "/".join(rest)
    assert target_repository("mirror/*", "/".join(rest)) == "mirror/" + "/".join(rest)
    shallow = RepoPattern.parse("/".join([*prefix, "*"]))
    assert (shallow.match(repo) is not None) == (len(rest) == 1)


@pytest.mark.parametrize(
    ("template", "tag"),
    [
        pytest.param("pin-{hex12}", "pin-0123456789ab", id="hex12"),
        pytest.param("{alg}.{hex12}", "sha256.0123456789ab", id="alg"),
    ],
)
def test_render(template: str, tag: str) -> None:
    assert template_problem(template) is None
    assert render_tag(template, f"sha256:{H}") == tag


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        pytest.param("sha256-{hex}", "referrers tag schema", id="referrers-literal"),
        pytest.param("{alg}-{hex}", "referrers tag schema", id="referrers-fields"),
        pytest.param("pin", "needs {hex} or {hex12}", id="one-tag-for-all"),
        pytest.param("pin-{sha}", "unknown field {sha}", id="unknown-field"),
        pytest.param("pin/{hex12}", "not a valid tag", id="slash"),
        pytest.param("pin-{hex", "tag_template 'pin-{hex'", id="unclosed"),
    ],
)
def test_template_refused(template: str, needle: str) -> None:
    problem = template_problem(template)
    assert problem is not None and needle in problem


def test_sha512_hex_is_too_long_for_a_tag() -> None:
    assert tag_problem("pin-{hex}", "sha512:" + "a" * 128) is not None
    assert tag_problem("pin-{hex12}", "sha512:" + "a" * 128) is None


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._{}", max_size=20))
def test_accepted_templates_never_render_a_referrers_tag(template: str) -> None:
    if template_problem(template) is None:
        for digest in (f"sha256:{H}", "sha256:" + "f" * 64):
            assert not REFERRERS_TAG.fullmatch(render_tag(template, digest))
