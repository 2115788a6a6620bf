"""batchup.distributed: rank and world size from launchers, torch and jax."""

import datetime
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from batchup._core import shard as core_shard
from batchup.distributed import (
    ENV_FAMILIES,
    LOCAL_FAMILY,
    ShardSpec,
    detect_shard,
    shard_from_env,
    shard_from_jax,
    shard_from_torch,
)

ROOT = Path(__file__).resolve().parent.parent
ALL_VARS = [v for rank_var, size_var, _ in (*ENV_FAMILIES, LOCAL_FAMILY)
            for v in (rank_var, size_var)]


@pytest.fixture
def clean_env(monkeypatch):
    """``os.environ`` without any rank / world size variable."""
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def no_frameworks(monkeypatch):
    """Neither torch.distributed nor jax looks imported (for detect_shard)."""
    for name in ("torch.distributed", "jax"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return monkeypatch


def _fake_jax(monkeypatch, index, count):
    jax = types.ModuleType("jax")
    jax.process_index = lambda: index
    jax.process_count = lambda: count
    monkeypatch.setitem(sys.modules, "jax", jax)


def _fake_torch_dist(monkeypatch, rank, world_size, initialized=True):
    dist = types.ModuleType("torch.distributed")
    dist.is_available = lambda: True
    dist.is_initialized = lambda: initialized
    dist.get_rank = lambda: rank
    dist.get_world_size = lambda: world_size
    torch = types.ModuleType("torch")
    torch.distributed = dist
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)


# ------------------------------------------------------------- re-export


def test_shardspec_is_reexported():
    assert ShardSpec is core_shard.ShardSpec


# ------------------------------------------------------------- shard_from_env: each family


def test_env_torchrun():
    assert shard_from_env(environ={"RANK": "3", "WORLD_SIZE": "8"}) == ShardSpec(3, 8)


def test_env_openmpi():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
    assert shard_from_env(environ=env) == ShardSpec(1, 2)


def test_env_mpich():
    assert shard_from_env(environ={"PMI_RANK": "5", "PMI_SIZE": "6"}) == ShardSpec(5, 6)


def test_env_slurm():
    assert shard_from_env(environ={"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == ShardSpec(0, 4)


def test_env_local_rank_only():
    env = {"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}
    assert shard_from_env(environ=env) == ShardSpec(2, 4)


def test_env_none_set_is_single_process():
    assert shard_from_env(environ={}) == ShardSpec(0, 1)


def test_env_ignores_unrelated_variables():
    assert shard_from_env(environ={"HOME": "/root", "NODE_RANK": "1"}) == ShardSpec(0, 1)


def test_env_defaults_to_os_environ(clean_env):
    clean_env.setenv("PMI_RANK", "1")
    clean_env.setenv("PMI_SIZE", "3")
    assert shard_from_env() == ShardSpec(1, 3)


def test_env_defaults_to_single_process_in_clean_environment(clean_env):
    assert shard_from_env() == ShardSpec(0, 1)


def test_env_accepts_surrounding_whitespace():
    assert shard_from_env(environ={"RANK": " 1\n", "WORLD_SIZE": "2 "}) == ShardSpec(1, 2)


def test_env_remainder_passed_through():
    spec = shard_from_env("even", environ={"RANK": "1", "WORLD_SIZE": "2"})
    assert spec == ShardSpec(1, 2, "even")


def test_env_remainder_passed_through_single_process():
    assert shard_from_env("drop", environ={}) == ShardSpec(0, 1, "drop")


def test_env_bad_remainder_raises():
    with pytest.raises(ValueError, match="remainder"):
        shard_from_env("bogus", environ={})


# ------------------------------------------------------------- shard_from_env: precedence


def test_precedence_rank_over_openmpi():
    env = {"RANK": "1", "WORLD_SIZE": "2",
           "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}
    assert shard_from_env(environ=env) == ShardSpec(1, 2)


def test_precedence_openmpi_over_pmi():
    env = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
           "PMI_RANK": "0", "PMI_SIZE": "5"}
    assert shard_from_env(environ=env) == ShardSpec(3, 4)


def test_precedence_pmi_over_slurm():
    env = {"PMI_RANK": "0", "PMI_SIZE": "5", "SLURM_PROCID": "6", "SLURM_NTASKS": "7"}
    assert shard_from_env(environ=env) == ShardSpec(0, 5)


def test_precedence_all_families_rank_wins():
    env = {"RANK": "1", "WORLD_SIZE": "9", "OMPI_COMM_WORLD_RANK": "2",
           "OMPI_COMM_WORLD_SIZE": "9", "PMI_RANK": "3", "PMI_SIZE": "9",
           "SLURM_PROCID": "4", "SLURM_NTASKS": "9", "LOCAL_RANK": "5", "LOCAL_WORLD_SIZE": "9"}
    assert shard_from_env(environ=env) == ShardSpec(1, 9)


def test_precedence_global_rank_over_local_rank():
    # Node 1 of a 2 x 4 torchrun job: the local rank is not the global rank.
    env = {"RANK": "6", "WORLD_SIZE": "8", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}
    assert shard_from_env(environ=env) == ShardSpec(6, 8)


def test_precedence_slurm_over_local_rank():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert shard_from_env(environ=env) == ShardSpec(5, 8)


def test_precedence_half_set_higher_pair_is_an_error_not_skipped():
    env = {"RANK": "1", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    with pytest.raises(ValueError, match="RANK='1' is set but WORLD_SIZE is not"):
        shard_from_env(environ=env)


# ------------------------------------------------------------- shard_from_env: bad input


def test_bad_rank_without_world_size():
    with pytest.raises(ValueError, match="RANK='1' is set but WORLD_SIZE is not"):
        shard_from_env(environ={"RANK": "1"})


def test_bad_world_size_without_rank():
    with pytest.raises(ValueError, match="WORLD_SIZE='4' is set but RANK is not"):
        shard_from_env(environ={"WORLD_SIZE": "4"})


def test_bad_slurm_procid_without_ntasks():
    with pytest.raises(ValueError, match="SLURM_PROCID='0' is set but SLURM_NTASKS is not"):
        shard_from_env(environ={"SLURM_PROCID": "0"})


def test_bad_local_rank_without_local_world_size():
    with pytest.raises(ValueError, match="LOCAL_RANK='0' is set but LOCAL_WORLD_SIZE is not"):
        shard_from_env(environ={"LOCAL_RANK": "0"})


def test_bad_rank_not_an_integer():
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        shard_from_env(environ={"RANK": "x", "WORLD_SIZE": "2"})


def test_bad_world_size_not_an_integer():
    with pytest.raises(ValueError, match=r"PMI_SIZE='2\.0' is not an integer"):
        shard_from_env(environ={"PMI_RANK": "0", "PMI_SIZE": "2.0"})


def test_bad_empty_value_is_not_an_integer():
    with pytest.raises(ValueError, match="OMPI_COMM_WORLD_RANK='' is not an integer"):
        shard_from_env(environ={"OMPI_COMM_WORLD_RANK": "", "OMPI_COMM_WORLD_SIZE": "2"})


def test_bad_underscored_integer_is_not_an_integer():
    with pytest.raises(ValueError, match="WORLD_SIZE='1_0' is not an integer"):
        shard_from_env(environ={"RANK": "0", "WORLD_SIZE": "1_0"})


def test_bad_negative_rank():
    with pytest.raises(ValueError, match="SLURM_PROCID='-1' must not be negative"):
        shard_from_env(environ={"SLURM_PROCID": "-1", "SLURM_NTASKS": "4"})


def test_bad_zero_world_size():
    with pytest.raises(ValueError, match="WORLD_SIZE='0' must be at least 1"):
        shard_from_env(environ={"RANK": "0", "WORLD_SIZE": "0"})


def test_bad_negative_world_size():
    with pytest.raises(ValueError, match="PMI_SIZE='-2' must be at least 1"):
        shard_from_env(environ={"PMI_RANK": "0", "PMI_SIZE": "-2"})


def test_bad_rank_equal_to_world_size():
    with pytest.raises(ValueError, match="RANK='4' must be less than WORLD_SIZE='4'"):
        shard_from_env(environ={"RANK": "4", "WORLD_SIZE": "4"})


def test_bad_rank_above_world_size():
    match = "OMPI_COMM_WORLD_RANK='7' must be less than OMPI_COMM_WORLD_SIZE='2'"
    with pytest.raises(ValueError, match=match):
        shard_from_env(environ={"OMPI_COMM_WORLD_RANK": "7", "OMPI_COMM_WORLD_SIZE": "2"})


def test_bad_message_names_the_launcher():
    with pytest.raises(ValueError, match=r"\(SLURM\)"):
        shard_from_env(environ={"SLURM_PROCID": "x", "SLURM_NTASKS": "2"})


# ------------------------------------------------------------- shard_from_torch


def test_torch_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "torch.distributed", raising=False)
    with pytest.raises(ImportError, match="shard_from_torch needs PyTorch.*shard_from_env"):
        shard_from_torch()


def test_torch_present_without_process_group():
    dist = pytest.importorskip("torch.distributed")
    # Every test that starts a process group destroys it: one left over is a bug there.
    assert not (dist.is_available() and dist.is_initialized()), "a process group leaked"
    with pytest.raises(RuntimeError, match=r"torch\.distributed\.init_process_group"):
        shard_from_torch()


def test_torch_unavailable_build(monkeypatch):
    _fake_torch_dist(monkeypatch, 0, 1)
    sys.modules["torch.distributed"].is_available = lambda: False
    with pytest.raises(RuntimeError, match="shard_from_env"):
        shard_from_torch()


def test_torch_remainder_passed_through(monkeypatch):
    _fake_torch_dist(monkeypatch, 2, 3)
    assert shard_from_torch("drop") == ShardSpec(2, 3, "drop")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torch_real_gloo_process_group(clean_env):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    # The environment says otherwise: an initialised group must win in detect_shard.
    clean_env.setenv("SLURM_PROCID", "2")
    clean_env.setenv("SLURM_NTASKS", "3")
    clean_env.setenv("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}",
                            rank=0, world_size=1, timeout=datetime.timedelta(seconds=60))
    try:
        assert shard_from_torch() == ShardSpec(0, 1)
        assert detect_shard("even") == ShardSpec(0, 1, "even")
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()
    assert detect_shard() == ShardSpec(2, 3)


# ------------------------------------------------------------- shard_from_jax


def test_jax_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match="shard_from_jax needs JAX.*shard_from_env"):
        shard_from_jax()


def test_jax_process_index_and_count(monkeypatch):
    _fake_jax(monkeypatch, 1, 4)
    assert shard_from_jax() == ShardSpec(1, 4)


def test_jax_remainder_passed_through(monkeypatch):
    _fake_jax(monkeypatch, 0, 2)
    assert shard_from_jax("even") == ShardSpec(0, 2, "even")


# ------------------------------------------------------------- detect_shard


def test_detect_falls_back_on_env(clean_env, no_frameworks):
    clean_env.setenv("OMPI_COMM_WORLD_RANK", "1")
    clean_env.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert detect_shard() == ShardSpec(1, 2)


def test_detect_single_process(clean_env, no_frameworks):
    assert detect_shard() == ShardSpec(0, 1)


def test_detect_remainder_passed_through(clean_env, no_frameworks):
    assert detect_shard("drop") == ShardSpec(0, 1, "drop")


def test_detect_uses_imported_jax(clean_env, no_frameworks):
    _fake_jax(no_frameworks, 3, 4)
    clean_env.setenv("RANK", "0")
    clean_env.setenv("WORLD_SIZE", "2")
    assert detect_shard() == ShardSpec(3, 4)


def test_detect_initialised_torch_over_jax(clean_env, no_frameworks):
    _fake_jax(no_frameworks, 3, 4)
    _fake_torch_dist(no_frameworks, 1, 2)
    assert detect_shard() == ShardSpec(1, 2)


def test_detect_uninitialised_torch_is_skipped(clean_env, no_frameworks):
    _fake_torch_dist(no_frameworks, 1, 2, initialized=False)
    clean_env.setenv("SLURM_PROCID", "4")
    clean_env.setenv("SLURM_NTASKS", "5")
    assert detect_shard() == ShardSpec(4, 5)


def test_detect_blocked_modules_are_not_imported(clean_env, no_frameworks):
    # sys.modules entries of None (import blocked) count as "not imported".
    no_frameworks.setitem(sys.modules, "torch.distributed", None)
    no_frameworks.setitem(sys.modules, "jax", None)
    assert detect_shard() == ShardSpec(0, 1)


def test_detect_raises_on_bad_env(clean_env, no_frameworks):
    clean_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="WORLD_SIZE='2' is set but RANK is not"):
        detect_shard()


# ------------------------------------------------------------- import weight


def test_import_pulls_in_neither_torch_nor_jax():
    code = ("import batchup, batchup.distributed, sys; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_detect_shard_imports_neither_torch_nor_jax():
    code = ("import sys; from batchup.distributed import detect_shard; detect_shard(); "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules")
    env = {k: v for k, v in os.environ.items() if k not in ALL_VARS}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=env)


def test_detect_shard_prefers_the_launcher_over_an_uninitialised_jax(clean_env, monkeypatch):
    fake = types.ModuleType("jax")
    fake.process_index = lambda: 0
    fake.process_count = lambda: 1
    monkeypatch.setitem(sys.modules, "jax", fake)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert detect_shard() == ShardSpec(1, 2)
    fake.process_index = lambda: 3
    fake.process_count = lambda: 4
    assert detect_shard() == ShardSpec(3, 4)
