"""Reference parsing and normalisation, table-driven (Docker's normalize.go behaviour)."""

from __future__ import annotations

import pytest

from ocync.errors import ReferenceError_
from ocync.oci.digest import Digest
from ocync.oci.reference import (
    api_host,
    is_loopback_host,
    normalise_repository,
    parse_reference,
    parse_repository,
    split_port,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        pytest.param("alpine", "docker.io", "library/alpine", None, None, id="hub-official"),
        pytest.param("alpine:3.19", "docker.io", "library/alpine", "3.19", None, id="hub-tag"),
        pytest.param("user/app", "docker.io", "user/app", None, None, id="hub-user"),
        pytest.param("docker.io/alpine", "docker.io", "library/alpine", None, None, id="hub-explicit"),
        pytest.param("index.docker.io/user/app:1", "docker.io", "user/app", "1", None, id="hub-legacy"),
        pytest.param("registry-1.docker.io/library/x", "docker.io", "library/x", None, None, id="hub-api"),
        pytest.param("ghcr.io/owner/app:v1", "ghcr.io", "owner/app", "v1", None, id="ghcr"),
        pytest.param("localhost/app", "localhost", "app", None, None, id="localhost"),
        pytest.param("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None, id="port-deep"),
        pytest.param("127.0.0.1:5000/app@" + D, "127.0.0.1:5000", "app", None, D, id="digest"),
        pytest.param("ghcr.io/o/app:v1@" + D, "ghcr.io", "o/app", "v1", D, id="tag-and-digest"),
        pytest.param("[::1]:5000/app:1", "[::1]:5000", "app", "1", None, id="ipv6"),
        pytest.param("Example.com/app", "Example.com", "app", None, None, id="upper-host"),
        pytest.param("a.b/c__d/e-f.g_h:_x", "a.b", "c__d/e-f.g_h", "_x", None, id="separators"),
    ],
)
def test_parse(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param(" alpine", "spaces", id="space"),
        pytest.param("Alpine", "repository component", id="upper-repo"),
        pytest.param("ghcr.io/o/app:", "bad tag", id="empty-tag"),
        pytest.param("ghcr.io/o/app:-x", "bad tag", id="dash-tag"),
        pytest.param("ghcr.io/o/app:" + "x" * 129, "bad tag", id="long-tag"),
        pytest.param("ghcr.io/o/app@sha256:abc", "sha256 needs 64", id="short-digest"),
        pytest.param("ghcr.io/o/app@md5:" + "a" * 32, "unsupported digest", id="algo"),
        pytest.param("ghcr.io/o//app", "repository component", id="double-slash"),
        pytest.param("ghcr.io/o/a..b", "repository component", id="double-dot"),
        pytest.param("-bad.io/app", "registry host", id="bad-host"),
        pytest.param("localhost:99999/x", "bad port '99999' in registry host 'localhost:99999'",
                     id="port-out-of-range"),
        pytest.param("localhost:0/x", "bad port '0'", id="port-zero"),
        pytest.param("host:abc/x", "bad port 'abc' in registry host 'host:abc'", id="port-not-a-number"),
        pytest.param("[::1]:70000/x:1", r"bad port '70000' in registry host '\[::1\]:70000'",
                     id="ipv6-port-out-of-range"),
        pytest.param("ghcr.io/" + "a" * 260, "longer than 255", id="too-long"),
    ],
)
def test_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ReferenceError_, match=fragment):
        parse_reference(text)


def test_identifier_and_api_host() -> None:
    ref = parse_reference("alpine")
    assert ref.identifier == "latest"
    assert api_host(ref.registry) == "registry-1.docker.io"
    assert api_host(parse_reference("ghcr.io/o/a:1").registry) == "ghcr.io"
    pinned = parse_reference(f"ghcr.io/o/a:1@{D}")
    assert pinned.identifier == D


def test_parse_repository() -> None:
    assert parse_repository("ghcr.io/o/a") == ("ghcr.io", "o/a")
    with pytest.raises(ReferenceError_, match="must not have a tag"):
        parse_repository("ghcr.io/o/a:1")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_split_port() -> None:
    assert split_port("h:80") == ("h", 80)
    assert split_port("[::1]:5000") == ("[::1]", 5000)
    assert split_port("h") == ("h", None)


@pytest.mark.parametrize(
    ("registry", "path", "expected"),
    [
        pytest.param("docker.io", "nginx", "library/nginx", id="hub-official"),
        pytest.param("docker.io", "a/b", "a/b", id="hub-user"),
        pytest.param("ghcr.io", "nginx", "nginx", id="other-registry"),
    ],
)
def test_normalise_repository_is_what_parse_reference_does(registry: str, path: str, expected: str) -> None:
    assert normalise_repository(registry, path) == expected
    assert parse_reference(f"{registry}/{path}").repository == expected
