"""The scripts in examples/ run and do what they say.

Every ``examples/*.py`` is found with a glob, so a new script is run without
editing this file. Each is loaded with ``runpy`` and its ``main(argv)`` called
in this process (a script without ``main`` fails), in a temporary working
directory, with the small arguments of ``ARGS`` where its defaults would be
slow or would write into the checkout. ``CHECKS`` holds what each script's
return value and printed output must show.
"""

import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# Per-script argv; "{tmp}" stands for the test's temporary directory.
ARGS = {
    "cache_slow_source.py": ["--cache", "{tmp}/cache", "--delay", "0.0002", "--epochs", "3"],
    "class_imbalance.py": ["--epochs", "5"],
    "resume_training.py": ["--checkpoint", "{tmp}/ckpt.npz"],
    "semi_supervised_digits.py": ["--labelled", "200", "--epochs", "8"],
    "train_digits.py": ["--epochs", "5"],
}

CHECKS = {}


def check(name):
    """Register the function checking ``examples/<name>``'s result and output."""

    def register(fn):
        CHECKS[name] = fn
        return fn

    return register


@check("semi_supervised_digits.py")
def _semi_supervised(result, out, tmp_path):
    assert result > 0.7
    assert out.count("test accuracy") == 8


@check("cache_slow_source.py")
def _cache_slow_source(result, out, tmp_path):
    assert "with 2 worker processes" in out and "['0.npy', '1.npy']" in out
    assert out.count("test accuracy") == 3 and result > 0.7
    assert np.load(tmp_path / "cache" / "1.npy").shape == (1400,)


@check("resume_training.py")
def _resume_training(result, out, tmp_path):
    # Killing and resuming is tested in test_distributed_processes.py; here the
    # uninterrupted run prints the checksum it returns and leaves its checkpoint.
    assert re.findall(r"^checksum ([0-9a-f]{16})$", out, re.M) == [result]
    assert "batch  88/88" in out and (tmp_path / "ckpt.npz").exists()


@check("distributed_shards.py")
def _distributed_shards(result, out, tmp_path):
    assert "guarantee holds: yes" in out
    assert "every sample of the epoch exactly once: yes" in out
    np.testing.assert_array_equal(np.sort(result), np.arange(1400))


@check("train_digits.py")
def _train_digits(result, out, tmp_path):
    assert out.count("val accuracy") == 5
    losses = [float(v) for v in re.findall(r"train loss ([0-9.]+)", out)]
    assert losses[-1] < losses[0]
    assert f"test accuracy {result:.2%}" in out and result > 0.85


@check("class_imbalance.py")
def _class_imbalance(result, out, tmp_path):
    plain, balanced = result["plain"], result["balanced"]
    # The balancing sampler drew every class about equally often; plain
    # shuffling drew the rare classes (5-9) as rarely as they occur.
    np.testing.assert_allclose(balanced["sampled_frequency"], 0.1, atol=0.03)
    assert (plain["sampled_frequency"][5:] < 0.05).all()
    assert balanced["balanced_accuracy"] > plain["balanced_accuracy"] + 0.03
    assert balanced["per_class_accuracy"][5:].mean() > plain["per_class_accuracy"][5:].mean()
    assert f"balanced accuracy {balanced['balanced_accuracy']:.2%}" in out


@check("augment_in_process_pool.py")
def _augment_in_process_pool(result, out, tmp_path):
    assert result["identical"] is True and result["batches"] == 2 * 22
    assert out.count("identical") == 2 and "DIFFERENT" not in out
    assert "same batches serially and in the pool: yes" in out
    assert "another augmentation: yes" in out
    assert f"epoch 0: serial {result['digest']}  pool {result['digest']}" in out


@check("predict_batch_map.py")
def _predict_batch_map(result, out, tmp_path):
    assert 0.0 <= result < 1e-10
    assert out.count("labels identical") == 3
    assert re.search(r"test accuracy (\d+\.\d+)%", out) and "DIFFERENT" not in out


def test_every_example_is_found():
    names = {p.name for p in EXAMPLES}
    assert {"train_digits.py", "class_imbalance.py", "augment_in_process_pool.py",
            "predict_batch_map.py", "semi_supervised_digits.py"} <= names
    # A renamed script must not silently lose its arguments or its checks.
    assert set(ARGS) <= names and set(CHECKS) <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example(path, monkeypatch, capsys, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in ARGS.get(path.name, [])]
    monkeypatch.setattr(sys, "argv", [path.name, *argv])
    monkeypatch.chdir(tmp_path)  # whatever a script writes by default goes here
    module = runpy.run_path(str(path))
    doc = module.get("__doc__") or ""
    assert f"python examples/{path.name}" in doc, "the docstring should say how to run it"
    assert callable(module.get("main")), f"examples/{path.name} has no main(argv) function"
    result = module["main"](argv)
    out = capsys.readouterr().out
    assert out.strip(), f"examples/{path.name} printed nothing"
    if path.name in CHECKS:
        CHECKS[path.name](result, out, tmp_path)
