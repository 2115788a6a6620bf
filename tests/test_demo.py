"""The offline demo and the command line that runs it."""

import io
import subprocess
import sys

import numpy as np
import pytest

from batchup import demo
from batchup.__main__ import main


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
