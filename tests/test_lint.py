"""The code base stays ruff-clean and ``import batchup`` stays light."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    proc = subprocess.run(cmd + ["check", "batchup", "tests", "benchmarks", "examples"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("module", ["batchup", "batchup.data_source", "batchup.sampling",
                                    "batchup.work_pool", "batchup.config", "batchup.datasets",
                                    "batchup.datasets.mnist", "batchup.image.utils"])
def test_import_pulls_in_no_heavy_dependency(module):
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "heavy = [m for m in ('scipy', 'tables', 'torch', 'jax', 'joblib', 'pooch', 'tqdm', "
        "'cloudpickle', 'loky') if m in sys.modules]; print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.strip() == "", f"import {module} imported {proc.stdout.strip()}"


def test_package_ships_type_marker_and_digits():
    assert (ROOT / "batchup" / "py.typed").exists()
    assert (ROOT / "batchup" / "datasets" / "data" / "digits.csv.gz").exists()
