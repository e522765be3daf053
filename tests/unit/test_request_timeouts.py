"""The request timeout: the pure give-up counter of a host that answers nothing, and where a
registry's timeout comes from (``--timeout``, its ``timeout:`` entry, the 60 s default)."""

from __future__ import annotations

import pytest

from ocync.cli.main import main
from ocync.config import RegistrySettings
from ocync.engine.syncrun import client_settings
from ocync.registry.client import HostSilence


@pytest.mark.parametrize(
    ("events", "given_up"),
    [
        pytest.param("t", False, id="one-timeout"),
        pytest.param("tt", True, id="two-in-a-row"),
        pytest.param("tat", False, id="an-answer-between"),
        pytest.param("ttat", True, id="given-up-stays-given-up"),
        pytest.param("aaaa", False, id="answers-only"),
    ],
)
def test_host_silence(events: str, given_up: bool) -> None:
    silence = HostSilence(limit=2)
    for event in events:
        if event == "t":
            silence.timed_out()
        else:
            silence.answered()
    assert silence.given_up is given_up
    assert silence.in_a_row <= 2


def _registry(timeout: float | None) -> RegistrySettings:
    return RegistrySettings(name="r", host="reg.test", scheme="https", auth_type=None, timeout=timeout)


@pytest.mark.parametrize(
    ("entry", "flag", "read", "connect"),
    [
        pytest.param(None, None, 60.0, 10.0, id="default"),
        pytest.param(120.0, None, 120.0, 10.0, id="entry"),
        pytest.param(120.0, 2.0, 2.0, 2.0, id="flag-wins"),
        pytest.param(None, 0.5, 0.5, 0.5, id="flag"),
    ],
)
def test_where_a_registry_timeout_comes_from(
    entry: float | None, flag: float | None, read: float, connect: float
) -> None:
    settings = client_settings(_registry(entry), None, flag)
    assert (settings.read_timeout, settings.connect_timeout) == (read, connect)


@pytest.mark.parametrize("command", [["sync"], ["watch"], ["analyze"], ["auth", "check"]])
@pytest.mark.parametrize("value", ["0", "-3", "inf", "nan", "soon"])
def test_a_bad_timeout_flag_is_one_line_exit_3(
    capsys: pytest.CaptureFixture[str], command: list[str], value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "-c", "unused.yaml", "--timeout", value])
    assert info.value.code == 3
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("ocync: error: argument --timeout: ") and value in err
