"""Every option of every ``ocync`` subcommand and of ``ocync-mockregistry serve`` says what it
does in ``--help``: a flag without help text is a flag nobody can find."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from mockregistry.cli import build_parser as build_mock_parser
from ocync.cli.main import build_parser


def _commands(parser: argparse.ArgumentParser, prog: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prog} {name}")


def _options_without_help() -> list[str]:
    missing = []
    commands = [*_commands(build_parser(), "ocync"), *_commands(build_mock_parser(), "ocync-mockregistry")]
    for prog, parser in commands:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            help_text = action.help
            if not help_text or help_text == argparse.SUPPRESS or not str(help_text).strip():
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_has_help() -> None:
    assert _options_without_help() == []


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["watch"], id="watch"),
        pytest.param(["serve"], id="mock-serve"),
    ],
)
def test_commands_are_found(command: list[str]) -> None:
    """The walk above reaches the subcommands it is meant to check."""
    names = {prog for prog, _ in [*_commands(build_parser(), "ocync"), *_commands(build_mock_parser(), "ocync-mockregistry")]}
    assert any(name.endswith(" " + command[0]) for name in names), names
