"""`lra-bench --help` and every sub-command's: each option has help text, and each that takes
a value shows its default."""

import argparse

import pytest

from lra_bench.cli import build_parser, parsers, shows_default


def every_parser():
    return list(parsers(build_parser()))


@pytest.mark.parametrize("parser", every_parser(), ids=lambda p: p.prog)
def test_every_option_has_help_and_its_default(parser):
    text = parser.format_help()  # raises on a help string argparse cannot format
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        assert action.help, f"{parser.prog} {action.option_strings or action.dest}: no help"
        if shows_default(action):
            shown = str(action.default) if not isinstance(action.default, list) else ""
            assert "default" in parser._get_formatter()._get_help_string(action)
            assert shown in text


def test_the_top_level_help_lists_the_commands_and_the_training_entry_points():
    text = build_parser().format_help()
    for command in ("data", "leaderboard", "speed", "records", "budget"):
        assert command in text
    assert "python -m lra_bench.run" in text and "make sweep" in text


def test_a_default_is_appended_once():
    text = {p.prog: p.format_help() for p in every_parser()}
    assert "generator seed (default: 0)" in text["lra-bench data generate listops"]
    speed = " ".join(text["lra-bench speed"].split())
    assert speed.count("(default: results)") == 1  # stated by the help itself, not repeated
