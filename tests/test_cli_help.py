"""``aar COMMAND --help`` states every option's default, run in-process through ``aar.cli.main``."""

import argparse
import re

import pytest

from aar.cli import build_parser, main
from aar.tokenizer import DEFAULT_WINDOW_BATCH

COMMANDS = ("encode", "decode", "generate", "vary", "convert", "info", "tokenize", "demo")


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse would otherwise break words at hyphens


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare single-spaced


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize(
    "command, expected",
    [
        ("generate", ["--top-k TOP_K keep the k likeliest; 0: all (default: 200)",
                      "(default: random, a fresh draw each run)", "samples per condition (default: 1)",
                      "(default: 0.95)", "(default: 4.0)", "(default: 1.0)", "(default: qiuk6/AAR)",
                      "(default: laion-clap)", "(default: 0.25)", "(default: cpu)"]),
        ("vary", ["(default: 200)", "variations per condition (default: 1)", "(default: random"]),
        ("decode", [f"(default: the tokenizer's, {DEFAULT_WINDOW_BATCH})", "(default: all)"]),
        ("tokenize", ["(default: 1)", "(default: no Ray)"]),
    ],
)
def test_help_states_the_defaults(capsys, command, expected):
    text = _help(capsys, command)
    for fragment in expected:
        assert fragment in text, fragment


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_default_says_it(capsys, command):
    text = _help(capsys, command)
    parser = _subparsers()[command]
    groups = parser._mutually_exclusive_groups
    required_groups = {id(a) for g in groups if g.required for a in g._group_actions}
    for action in parser._actions:
        if not action.option_strings or action.required or id(action) in required_groups:
            continue
        if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
            continue
        formatter = parser._get_formatter()
        shown = " ".join((formatter._expand_help(action) if action.help else "").split())
        assert "default" in shown, f"{command} {action.option_strings[-1]}: {shown!r}"
        assert shown in text
        if action.default not in (None, argparse.SUPPRESS):
            assert re.search(rf"default:? {re.escape(str(action.default))}\b", shown), shown


def test_top_level_help_and_global_options(capsys):
    text = _help(capsys)
    assert "(default: cpu)" in text and "AAR_DEBUG=1" in text
