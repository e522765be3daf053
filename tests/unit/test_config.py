"""Loading, expansion, resolution and the config commands (ocync.config, ocync.cli.config_cmds)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ocync.cli.main import main
from ocync.config import (
    Config,
    dump_yaml,
    expanded_data,
    format_duration,
    format_size,
    json_schema,
    load_config,
    load_config_file,
    parse_config_text,
    parse_duration,
    parse_size,
    substitute,
)
from ocync.errors import ConfigError
from ocync.oci.platform import Platform
from ocync.registry.auth import docker_config_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [ROOT / "examples" / n for n in ("ghcr.yaml", "full.yaml", "dockerhub-to-local.yaml")]
EXAMPLE_ENV = {"GITHUB_TOKEN": "ghp_secret", "DOCKERHUB_TOKEN": "dckr_secret"}

GHCR_GUIDE = """\
registries:
  src: { url: cgr.dev }
  ghcr:
    url: ghcr.io
    auth_type: static_token
    token: ${GITHUB_TOKEN}
defaults:
  source: src
  targets: ghcr
mappings:
  - from: chainguard/static
    to: myorg/static
"""


def test_guide_config_resolves() -> None:
    cfg = parse_config_text(GHCR_GUIDE, environ={"GITHUB_TOKEN": "s3cr3t"}).config
    (m,) = cfg.resolve()
    assert m.source.host == "cgr.dev" and m.source.auth_type is None
    (target,) = m.targets
    assert (target.host, target.auth_type, target.token) == ("ghcr.io", "static_token", "s3cr3t")
    assert "s3cr3t" not in repr(target)
    assert (m.repo_from, m.repo_to, m.target_repos) == ("chainguard/static", "myorg/static",
                                                       ("myorg/static",))
    assert m.platforms is None and m.artifacts.enabled and not m.artifacts.require_artifacts
    assert m.tag_filter.glob == ("*",) and m.tag_filter.sort is None
    assert target.base_url == "https://ghcr.io"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        pytest.param("${A}", {"A": "x"}, "x", id="plain"),
        pytest.param("pre-${A}-post", {"A": "x"}, "pre-x-post", id="embedded"),
        pytest.param("${A:-dflt}", {}, "dflt", id="default-unset"),
        pytest.param("${A:-dflt}", {"A": ""}, "dflt", id="default-empty"),
        pytest.param("${A:-dflt}", {"A": "set"}, "set", id="default-set"),
        pytest.param("${A:-}", {}, "", id="empty-default"),
        pytest.param("${A:?need it}", {"A": "v"}, "v", id="required-set"),
        pytest.param("$$HOME", {}, "$HOME", id="escaped"),
        pytest.param("a$b", {}, "a$b", id="lone-dollar"),
        pytest.param("${A}${B}", {"A": "1", "B": "2"}, "12", id="two"),
        pytest.param("${A:-x$$y}", {}, "x$y", id="escape-in-default"),
    ],
)
def test_substitute(text: str, env: dict[str, str], expected: str) -> None:
    assert substitute(text, env) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("${A}", "environment variable A is not set", id="unset"),
        pytest.param("${A:?give A}", "${A} is not set: give A", id="required"),
        pytest.param("${A:?}", "${A} is not set: required", id="required-no-message"),
        pytest.param("${1A}", "bad substitution", id="bad-name"),
        pytest.param("${A", "unterminated", id="unterminated"),
    ],
)
def test_substitute_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        substitute(text, {})
    assert needle in str(info.value)


def test_substitution_does_not_reparse_yaml() -> None:
    # A value with YAML syntax in it stays one string: expansion happens after parsing.
    cfg = parse_config_text(
        "registries:\n  r: {url: ghcr.io, token: '${T}'}\n", environ={"T": "a: [b"}
    ).config
    assert cfg.registries["r"].token == "a: [b"


def test_env_for_numbers_and_booleans() -> None:
    text = "global:\n  max_concurrent_transfers: ${N}\n  rate_share: ${S:-0.5}\n" \
           "registries:\n  r: {url: 'localhost:5000', insecure: '${I}'}\n"
    cfg = parse_config_text(text, environ={"N": "4", "I": "true"}).config
    assert cfg.global_.max_concurrent_transfers == 4
    assert cfg.global_.rate_share == 0.5
    assert cfg.registries["r"].insecure is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12h", 43200.0), ("30m", 1800.0), ("45s", 45.0), ("500ms", 0.5), ("1d", 86400.0),
     ("1h30m", 5400.0), ("90", 90.0), (60, 60.0), (1.5, 1.5), ("2.5h", 9000.0)],
)
def test_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["12 hours", "h", "", "-1s", True, None, "1w"])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("2GiB", 2 * 1024**3), ("512MiB", 512 * 1024**2), ("500MB", 500 * 10**6), ("1g", 1024**3),
     ("100", 100), (4096, 4096), ("1.5KiB", 1536), ("2Gi", 2 * 1024**3), ("7B", 7)],
)
def test_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize("text", ["2 gigs", "GiB", "-1", -5, False, "1.2.3MB"])
def test_bad_size(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_defaults_and_global() -> None:
    cfg = parse_config_text("registries: {}\n", environ={}).config
    assert cfg.global_.cache_ttl == 12 * 3600
    assert cfg.global_.staging_size_limit == 2 * 1024**3
    assert cfg.global_.max_concurrent_transfers == 8 and cfg.global_.rate_share == 1.0
    assert cfg.global_.resolved_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/ocync")
    assert cfg.mappings == []


def test_field_by_field_merge_and_tiers() -> None:
    text = """\
registries: {a: {url: a.io}, b: {url: b.io}}
defaults:
  source: a
  targets: b
  platforms: linux/amd64
  tags: {glob: "1.*", sort: semver, latest: 5, exclude: ["*-debug"], include: [edge]}
  artifacts: {include: ["application/vnd.dev.sigstore*"], require_artifacts: true}
mappings:
  - from: x
  - from: y
    platforms: [linux/arm64/v8, linux/amd64]
    tags: {latest: 2, exclude: ["1.0"], glob: ["1.*", "2.*"]}
    artifacts: {exclude: ["*sbom*"]}
"""
    x, y = parse_config_text(text, environ={}).config.resolve()
    assert x.tag_filter.glob == ("1.*",) and x.tag_filter.latest == 5
    assert x.tag_filter.exclude == () and x.tag_filter.soft_exclude == ("*-debug",)
    assert x.tag_filter.include == ("edge",)
    assert x.platforms == (Platform("linux", "amd64"),)
    assert y.tag_filter.glob == ("1.*", "2.*") and y.tag_filter.latest == 2
    assert y.tag_filter.sort == "semver"
    assert y.tag_filter.exclude == ("1.0",) and y.tag_filter.soft_exclude == ("*-debug",)
    assert y.platforms == (Platform("linux", "arm64", "v8"), Platform("linux", "amd64"))
    assert y.artifacts.require_artifacts and y.artifacts.include == x.artifacts.include
    assert y.artifacts.exclude == ("*sbom*",)
    assert x.artifacts.allows("application/vnd.dev.sigstore.bundle.v0.3+json")
    assert not x.artifacts.allows("application/spdx+json")
    assert not y.artifacts.allows("application/vnd.dev.sigstore.sbom")


def test_artifacts_refresh_default_inheritance_expand_and_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = """\
registries: {a: {url: a.io}, b: {url: b.io}}
defaults:
  source: a
  targets: b
  artifacts: {refresh: on_change}
mappings:
  - from: x
  - from: y
    artifacts: {refresh: always, include: ["application/vnd.dev.sigstore*"]}
"""
    loaded = parse_config_text(text, environ={})
    x, y = loaded.config.resolve()
    assert x.artifacts.refresh == "on_change" and y.artifacts.refresh == "always"
    # unset everywhere: the default is "cached" (a late signature reaches the mirror when the
    # tag is next verified, at least once per cache_ttl, at no cost to the runs in between)
    [z] = parse_config_text(
        "registries: {a: {url: a.io}, b: {url: b.io}}\nmappings: [{from: x, source: a, targets: b}]\n",
        environ={},
    ).config.resolve()
    assert z.artifacts.refresh == "cached"
    assert z.artifacts.refresh_unchanged and not z.artifacts.refresh_trusted
    assert y.artifacts.refresh_trusted and not x.artifacts.refresh_unchanged
    expanded = dump_yaml(expanded_data(loaded))
    assert "refresh: on_change" in expanded and "refresh: always" in expanded
    assert parse_config_text(expanded, "expanded.yaml", {}).config == loaded.config
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    refresh = schema["$defs"]["ArtifactsConfig"]["properties"]["refresh"]
    assert {"enum": ["cached", "on_change", "always"], "type": "string"} in refresh["anyOf"]


def test_targets_group_registry_and_list() -> None:
    text = """\
registries: {src: {url: docker.io}, g: {url: ghcr.io}, q: {url: quay.io}, l: {url: 'localhost:5000'}}
target_groups: {both: [g, q]}
defaults: {source: src, targets: both}
mappings:
  - from: nginx
  - from: a/b
    targets: l
  - from: c/d
    targets: [both, l, g]
"""
    a, b, c = parse_config_text(text, environ={}).config.resolve()
    assert [t.name for t in a.targets] == ["g", "q"]
    assert a.repo_from == "library/nginx" and a.target_repos == ("nginx", "nginx")
    assert [t.name for t in b.targets] == ["l"]
    assert b.targets[0].base_url == "http://localhost:5000"
    assert [t.name for t in c.targets] == ["g", "q", "l"]
    assert c.repo_to == "c/d"


def test_auth_inference_and_ghcr_alias(caplog: pytest.LogCaptureFixture) -> None:
    text = """\
registries:
  t: {url: ghcr.io, token: x}
  c: {url: quay.io, credentials: {username: u, password: p}}
  n: {url: cgr.dev}
  old: {url: ghcr.io, auth_type: ghcr}
  old2: {url: ghcr.io, auth_type: ghcr}
  anon: {url: 'http://127.0.0.1:5000', auth_type: anonymous}
"""
    with caplog.at_level(logging.WARNING, logger="ocync.config"):
        loaded = parse_config_text(text, environ={})
    cfg = loaded.config
    kinds = {n: cfg.registry(n).auth_type for n in cfg.registries}
    assert kinds == {"t": "static_token", "c": "basic", "n": None,
                     "old": "docker_config", "old2": "docker_config", "anon": "anonymous"}
    deprecations = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(deprecations) == 1 and "old, old2" in deprecations[0].getMessage()
    assert loaded.warnings == (deprecations[0].getMessage(),)
    assert cfg.registry("anon").base_url == "http://127.0.0.1:5000"
    assert cfg.registry_for_host("ghcr.io") is not None
    assert cfg.registry_for_host("nothing.example") is None


def test_docker_config_path() -> None:
    assert docker_config_path(environ={"DOCKER_CONFIG": "/etc/dc"}) == Path("/etc/dc/config.json")
    assert docker_config_path(environ={}).name == "config.json"


def test_yaml_anchors_and_merge_keys() -> None:
    text = """\
registries:
  base: &base {url: ghcr.io, max_concurrent: 4}
  other:
    <<: *base
    url: quay.io
"""
    cfg = parse_config_text(text, environ={}).config
    assert cfg.registries["other"].url == "quay.io"
    assert cfg.registries["other"].max_concurrent == 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = load_config(path)
    assert cfg.resolve()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("show", [True, False], ids=["show-secrets", "redacted"])
def test_expand_round_trip(path: Path, show: bool) -> None:
    loaded = load_config_file(path, EXAMPLE_ENV)
    text = dump_yaml(expanded_data(loaded, show_secrets=show))
    again = parse_config_text(text, "expanded.yaml", EXAMPLE_ENV).config
    assert again == loaded.config
    if not show:
        assert "ghp_secret" not in text and "dckr_secret" not in text


def test_expand_redacts_literal_secrets_and_escapes_dollars() -> None:
    text = "registries:\n  r:\n    url: ghcr.io\n    credentials: {username: u, password: 'p$$w'}\n" \
           "mappings:\n  - from: a\n    source: r\n    targets: r\n    to: b\n" \
           "    tags: {include: ['x$$y']}\n"
    loaded = parse_config_text(text, environ={})
    assert loaded.config.registries["r"].credentials is not None
    assert loaded.config.registries["r"].credentials.password == "p$w"
    redacted = dump_yaml(expanded_data(loaded))
    assert "<redacted>" in redacted and "p$w" not in redacted and "x$$y" in redacted
    shown = dump_yaml(expanded_data(loaded, show_secrets=True))
    assert parse_config_text(shown, environ={}).config == loaded.config


def test_cli_validate_and_expand(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_abc")
    cfg = tmp_path / "ocync.yaml"
    cfg.write_text(GHCR_GUIDE)
    assert main(["validate", str(cfg)]) == 0
    assert "ok (2 registries, 0 target groups, 1 mappings)" in capsys.readouterr().out
    assert main(["validate", "--json", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    assert main(["expand", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "ghp_abc" not in out and "${GITHUB_TOKEN}" in out and "to: myorg/static" in out
    assert main(["expand", "--show-secrets", str(cfg)]) == 0
    assert "token: ghp_abc" in capsys.readouterr().out
    assert main(["expand", "--json", "--show-secrets", str(cfg)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert Config.model_validate(data) == load_config(cfg)


def test_cli_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json_schema()
    assert set(schema["properties"]) == {"global", "registries", "target_groups", "defaults",
                                         "mappings"}
    assert schema["additionalProperties"] is False
    mapping = schema["$defs"]["MappingConfig"]
    assert "from" in mapping["properties"] and mapping["required"] == ["from"]


def test_profile_and_literal_only_glob() -> None:
    text = """\
registries: {m: {url: '127.0.0.1:5000', profile: ghcr}, t: {url: 'http://10.0.0.1:5000'}}
defaults: {source: m, targets: t}
mappings:
  - from: a
    tags: {glob: [], include: [v1, v2]}
  - from: b
    tags: {include: [v1]}
"""
    a, b = parse_config_text(text, environ={}).config.resolve()
    assert a.source.profile == "ghcr" and a.targets[0].profile is None
    assert a.source.base_url == "http://127.0.0.1:5000"
    assert a.targets[0].base_url == "http://10.0.0.1:5000"
    assert a.tag_filter.glob == () and a.tag_filter.apply(["v1", "v3"]).tags == ("v1", "v2")
    assert b.tag_filter.glob == ("*",)
    assert b.tag_filter.apply(["v1", "v3"]).tags == ("v1", "v3")


def test_docker_hub_api_host() -> None:
    cfg = parse_config_text("registries: {hub: {url: index.docker.io}}\n", environ={}).config
    hub = cfg.registry("hub")
    assert hub.host == "docker.io" and hub.base_url == "https://registry-1.docker.io"
    assert hub.repository("nginx") == "library/nginx" and hub.repository("a/b") == "a/b"


def test_readme_config_example_validates() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- section:CONFIG -->", 1)[1].split("<!-- /section:CONFIG -->")[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (m,) = parse_config_text(block, "README.md", {"GITHUB_TOKEN": "x"}).config.resolve()
    assert m.tag_filter.latest == 5 and m.tag_filter.semver == ">=1.0, <2.0"


@pytest.mark.parametrize(
    "mappings",
    [
        pytest.param(
            "  - {from: a/app, to: mirror/app, tags: {glob: [], include: [v1, v2]}}\n"
            "  - {from: b/app, source: other, to: mirror/app, tags: {glob: [], include: [v3]}}\n",
            id="disjoint-literals",
        ),
        pytest.param(
            "  - {from: a/app, to: mirror/app, tags: {glob: '1.*'}}\n"
            "  - {from: b/app, source: other, to: mirror/app, tags: {glob: [], include: [latest]}}\n",
            id="literal-outside-the-other-glob",
        ),
        pytest.param(
            "  - {from: a/app, to: mirror/app, tags: {glob: [], include: [v1, v2], exclude: [v2]}}\n"
            "  - {from: b/app, source: other, to: mirror/app, tags: {glob: [], include: [v2]}}\n",
            id="shared-literal-hard-excluded-by-one",
        ),
        pytest.param(
            "  - {from: a/app, to: mirror/app}\n"
            "  - {from: a/app, to: mirror/app, targets: other}\n",
            id="same-repo-at-two-registries",
        ),
        pytest.param(
            "  - {from: a/app, to: mirror/one}\n  - {from: a/app, to: mirror/two}\n",
            id="one-source-two-target-repos",
        ),
    ],
)
def test_mappings_sharing_a_target_with_disjoint_tags_are_valid(mappings: str) -> None:
    text = (
        "registries: {src: {url: src.example}, other: {url: other.example}, dst: {url: dst.example}}\n"
        "defaults: {source: src, targets: dst}\n"
        f"mappings:\n{mappings}"
    )
    assert len(parse_config_text(text, environ={}).config.resolve()) == 2


def test_overlapping_target_refused_by_sync_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command that loads a config runs the check, with FILE:LINE, before any request."""
    cfg = tmp_path / "ocync.yaml"
    cfg.write_text(
        "registries: {src: {url: '127.0.0.1:9'}, dst: {url: '127.0.0.1:9'}}\n"
        "defaults: {source: src, targets: dst}\n"
        "mappings:\n  - {from: a/app, to: mirror/app}\n  - {from: b/app, to: mirror/app}\n"
    )
    for argv in (["sync", "--dry-run", "-c", str(cfg)], ["sync", "-c", str(cfg), "--json"],
                 ["validate", str(cfg)]):
        assert main(argv) == 3, argv
        out, err = capsys.readouterr()
        assert f"{cfg}:5: mappings[1].to: writes `mirror/app` at registry `dst` like mappings[0]" in err + out
        assert "Traceback" not in err
