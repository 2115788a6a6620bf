"""The offline demo and the command line that runs it."""

import argparse
import io
import subprocess
import sys

import numpy as np
import pytest

from batchup import demo
from batchup.__main__ import build_parser, main


def test_demo_reaches_90_percent_test_accuracy():
    out = io.StringIO()
    accuracy = demo.run(progress=False, out=out)
    assert accuracy > 0.90
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("epoch") for line in lines) == 30
    assert lines[-1].startswith("test accuracy")


def test_demo_with_class_balancing_learns_the_rare_classes():
    out = io.StringIO()
    accuracy = demo.run(epochs=15, balance=True, progress=False, out=out)
    assert accuracy > 0.85
    assert "class counts" in out.getvalue()


def test_augmentation_keeps_shapes_labels_and_is_seeded():
    X = np.random.default_rng(0).random((16, 1, 8, 8)).astype(np.float32)
    y = np.arange(16)
    a1 = demo.augmentation(np.random.default_rng(5))(X, y)
    a2 = demo.augmentation(np.random.default_rng(5))(X, y)
    assert a1[0].shape == X.shape and a1[0].dtype == np.float32
    assert a1[1] is y
    np.testing.assert_array_equal(a1[0], a2[0])
    assert not np.array_equal(a1[0], X)


def test_augmentation_without_noise_or_shift_is_identity():
    X = np.random.default_rng(1).random((4, 1, 8, 8)).astype(np.float32)
    out, _ = demo.augmentation(np.random.default_rng(0), shift_prob=0.0, noise=0.0)(X, None)
    np.testing.assert_array_equal(out, X)


def test_cli_demo_runs_and_prints_accuracy(capsys):
    assert main(["demo", "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "epoch  2" in printed and "test accuracy" in printed


def test_cli_without_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_cli_rejects_unknown_command():
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_python_dash_m_batchup_demo_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "batchup", "demo", "--epochs", "1", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout


# ------------------------------------------------------------------ help texts


def _commands(parser):
    """The sub-command parsers of ``python -m batchup``, by name."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def _invocation(action):
    """How argparse shows an argument in the listing: ``--epochs N``, ``--balance``, ``NAME``."""
    if not action.option_strings:
        return action.metavar or action.dest
    shown = ", ".join(action.option_strings)
    if action.nargs == 0:
        return shown
    return f"{shown} {action.metavar or action.dest.upper()}"


def _described(help_text, invocation, indent):
    """Return the description lines of the entry shown as ``invocation`` in ``help_text``.

    An entry starts at ``indent`` spaces; its description follows on the same
    line after two or more spaces, and on the lines below indented further.
    """
    lines = help_text.splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.startswith(" " * indent + invocation)
              and line[indent + len(invocation):][:2] in ("", "  ")]
    assert len(starts) == 1, f"{invocation!r} not listed once in:\n{help_text}"
    first = lines[starts[0]][indent + len(invocation):].strip()
    described = [first] if first else []
    for line in lines[starts[0] + 1:]:
        if len(line) - len(line.lstrip()) <= indent + 2 or not line.strip():
            break
        described.append(line.strip())
    return described


def _check_arguments(parser, help_text):
    """Every argument has a one-line description; those taking a value show their default."""
    checked = 0
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        described = _described(help_text, _invocation(action), indent=2)
        assert described, f"{_invocation(action)} has no description"
        if action.option_strings:
            assert len(described) == 1, f"{_invocation(action)}: {described} is not one line"
            if action.nargs != 0 and action.default is not None:
                assert described[0].endswith(f"(default: {action.default})"), described
            else:
                assert "default" not in described[0], described
        checked += 1
    return checked


@pytest.fixture
def columns_80(monkeypatch):
    """argparse wraps help to the terminal width; pin it to 80 columns."""
    monkeypatch.setenv("COLUMNS", "80")


def test_demo_help_describes_every_option_with_its_default(columns_80):
    parser = _commands(build_parser())["demo"]
    text = parser.format_help()
    assert _check_arguments(parser, text) == 8
    assert _described(text, "--epochs N", 2) == ["passes over the training set (default: 30)"]
    assert _described(text, "--lr RATE", 2) == ["SGD learning rate (default: 0.05)"]
    assert _described(text, "--seed N", 2) == ["seed for every random choice (default: 0)"]
    assert _described(text, "--batch-size N", 2) == [
        "samples per training batch (default: 32)"]
    assert demo.DESCRIPTION in text and "example: python -m batchup demo" in text


def test_demo_help_defaults_match_what_run_uses(columns_80):
    import inspect

    parser = _commands(build_parser())["demo"]
    defaults = inspect.signature(demo.run).parameters
    for action in parser._actions:
        if action.dest in ("epochs", "batch_size", "hidden", "lr", "seed"):
            assert action.default == defaults[action.dest].default, action.dest


def test_every_command_help_describes_every_option(columns_80):
    commands = _commands(build_parser())
    assert sorted(commands) == ["delete", "demo", "fetch", "info", "sources"]
    for name, parser in commands.items():
        text = parser.format_help()
        _check_arguments(parser, text)
        assert parser.description, f"{name} --help has no description"
        assert max(len(line) for line in text.splitlines()) <= 80, name


def test_top_level_help_describes_each_command_in_one_line(columns_80, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for name in _commands(build_parser()):
        described = _described(text, name, indent=4)
        assert len(described) == 1 and len(described[0]) > 20, (name, described)
    for variable in ("BATCHUP_HOME", "BATCHUP_DOWNLOADS", "BATCHUP_OFFLINE", "BATCHUP_DEBUG"):
        assert variable in text
    assert "``" not in text  # no reStructuredText markup in what a user reads


def test_fetch_help_says_how_to_see_full_errors(columns_80):
    text = _commands(build_parser())["fetch"].format_help()
    assert _described(text, "--verbose", 2) == [
        "print full errors and tracebacks (or BATCHUP_DEBUG=1)"]
    assert "BATCHUP_OFFLINE=1" in text and "SHA-256" in text


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "argument --batch-size: must be greater than 0, got 0"),
    (["--epochs", "-1"], "argument --epochs: must be greater than 0, got -1"),
    (["--hidden", "0"], "argument --hidden: must be greater than 0, got 0"),
    (["--lr", "0"], "argument --lr: must be greater than 0, got 0"),
    (["--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
])
def test_demo_rejects_values_that_cannot_train(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *argv])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(message)
