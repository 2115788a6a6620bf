"""The scripts in examples/ run and do what they say."""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [name, *argv])
    module = runpy.run_path(str(ROOT / "examples" / name))
    return module["main"](argv)


def test_semi_supervised_digits(monkeypatch, capsys):
    accuracy = run_example("semi_supervised_digits.py", ["--labelled", "200", "--epochs", "8"],
                           monkeypatch)
    assert accuracy > 0.7
    assert capsys.readouterr().out.count("test accuracy") == 8
