"""One rate grammar: a ``rate_limit`` in the config is valid exactly when ``parse_rate`` (which
the client and the registry profiles use) accepts it, and a rejected one fails validation with
parse_rate's own message on one ``FILE:LINE`` line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocync.cli.main import main
from ocync.config import parse_config_text
from ocync.errors import ConfigError
from ocync.ratelimit.bucket import RateCap, parse_rate
from ocync.registry.profiles import PROFILES

ACCEPTED = [
    pytest.param("2000/60s", RateCap(2000, 60.0), id="ghcr"),
    pytest.param("600/6s", RateCap(600, 6.0), id="seconds"),
    pytest.param("10/1m", RateCap(10, 60.0), id="minutes"),
    pytest.param("5/500ms", RateCap(5, 0.5), id="millis"),
    pytest.param("2000/minute", RateCap(2000, 60.0), id="word-unit"),
    pytest.param("2000/MINUTES", RateCap(2000, 60.0), id="word-unit-upper"),
    pytest.param("1/1d", RateCap(1, 86400.0), id="days"),
    pytest.param("3/2hours", RateCap(3, 7200.0), id="hours-word"),
    pytest.param("100/h", RateCap(100, 3600.0), id="unit-without-number"),
    pytest.param("100 / 1 min", RateCap(100, 60.0), id="spaced-min"),
    pytest.param(" 7 / 2.5s ", RateCap(7, 2.5), id="spaces-fraction"),
    pytest.param("5/.5s", RateCap(5, 0.5), id="leading-dot"),
    pytest.param("100/10", RateCap(100, 10.0), id="bare-seconds"),
    pytest.param("600/6s,burst=5", RateCap(600, 6.0, 5), id="burst"),
    pytest.param("600/6s , burst = 5", RateCap(600, 6.0, 5), id="burst-spaced"),
]

REJECTED = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("600", id="no-period"),
    pytest.param("600/", id="empty-period"),
    pytest.param("600/6x", id="bad-unit"),
    pytest.param("600/6 fortnights", id="bad-word-unit"),
    pytest.param("0/6s", id="zero-count"),
    pytest.param("-5/6s", id="negative"),
    pytest.param("600/0s", id="zero-period"),
    pytest.param("600/0.0m", id="zero-fraction-period"),
    pytest.param("abc/6s", id="not-a-number"),
    pytest.param("2000 per minute", id="words"),
    pytest.param("600/6s,burst=0", id="zero-burst"),
    pytest.param("600/6s,burst=", id="empty-burst"),
    pytest.param("600/6s,bursts=5", id="bad-option"),
    pytest.param("600/6s;burst=5", id="bad-separator"),
]


def config_text(rate: str) -> str:
    # JSON string syntax is a YAML double-quoted scalar: the rate arrives byte for byte.
    return (
        "registries:\n"
        "  hub: { url: docker.io }\n"
        f"  ghcr: {{ url: ghcr.io, rate_limit: {json.dumps(rate)} }}\n"
        "defaults: {source: hub, targets: ghcr}\n"
        "mappings:\n"
        "  - from: a/b\n"
    )


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_every_rate_parse_rate_accepts_is_a_valid_config(text: str, expected: RateCap) -> None:
    assert parse_rate(text) == expected
    loaded = parse_config_text(config_text(text), "rates.yaml", environ={})
    stored = loaded.config.registries["ghcr"].rate_limit
    assert stored is not None
    assert parse_rate(stored) == expected  # what the client will be given means the same cap


@pytest.mark.parametrize("text", REJECTED)
def test_every_rate_parse_rate_rejects_fails_validation_with_its_message(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rate(text)
    message = str(caught.value)
    assert message.startswith(f"invalid rate {text!r}: ")
    path = tmp_path / "rates.yaml"
    path.write_text(config_text(text))
    assert main(["validate", str(path)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"ocync: error: {path}:3: registries.ghcr.rate_limit: {message}\n"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_caps_are_in_the_config_grammar(name: str) -> None:
    cap = PROFILES[name].documented_cap
    if cap is None:
        assert name != "ghcr", "GHCR documents 2000 requests per minute"
        return
    parse_rate(cap)
    loaded = parse_config_text(config_text(cap), "rates.yaml", environ={})
    assert loaded.config.registries["ghcr"].rate_limit == cap


@pytest.mark.parametrize("module", ["ocync.ratelimit.bucket", "ocync.ratelimit.aimd", "ocync.ratelimit.signals"])
def test_pure_rate_modules_import_without_trio(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('trio', 'httpx') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_trio_controller_is_still_importable_from_the_package() -> None:
    import ocync.ratelimit as ratelimit
    from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController

    assert ratelimit.ControllerRegistry is ControllerRegistry
    assert ratelimit.PrincipalController is PrincipalController
    with pytest.raises(AttributeError):
        _ = ratelimit.NoSuchThing  # type: ignore[attr-defined]
