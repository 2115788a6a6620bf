"""Sharded iteration and resuming, with real processes that really get killed.

Two ranks run as separate interpreters, each iterating its shard of one
seeded, shuffled epoch of an ``ArrayDataSource``. After every batch a worker
writes a checkpoint -- the indices it has seen and ``it.get_state()`` -- to
one JSON file, atomically (write a temporary file, then ``os.replace``). The
parent SIGKILLs rank 1 in the middle of the epoch and starts it again from its
checkpoint; the test then checks, from the files, that the two ranks together
saw the epoch exactly as the remainder policy promises, and that every rank's
batches are exactly those of an uninterrupted iteration.

Two launch styles:

* plain environment variables ``RANK`` / ``WORLD_SIZE`` read by
  ``batchup.distributed.shard_from_env()``;
* a ``torch.distributed`` process group (gloo, on 127.0.0.1) read by
  ``shard_from_torch()``, with an ``all_reduce`` at every step.

The examples ``examples/resume_training.py`` (killed and resumed training
gives the same checksum) and ``examples/distributed_shards.py`` are run here
too, since they are tested the same way: as processes.

Every wait has a timeout, so a hang fails the test instead of blocking CI.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from batchup import data_source
from batchup.distributed import ENV_FAMILIES, LOCAL_FAMILY, ShardSpec

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2
BATCH = 4
SEED = 2024
WAIT = 90  # seconds: the longest any single wait may take before the test fails

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

# The worker each rank runs. Its checkpoint is one file holding both the position
# (``get_state()``) and what was seen up to it: two files could not be replaced
# together, and a kill between the two writes would leave them disagreeing.
WORKER = r'''
import argparse, json, os, sys, time

import numpy as np

from batchup import data_source
from batchup.distributed import shard_from_env, shard_from_torch

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["env", "torch"], required=True)
p.add_argument("--rank", type=int)            # torch mode: for init_process_group only
p.add_argument("--world-size", type=int)
p.add_argument("--port", type=int)
p.add_argument("--n", type=int, required=True)
p.add_argument("--batch-size", type=int, required=True)
p.add_argument("--seed", type=int, required=True)
p.add_argument("--remainder", required=True)
p.add_argument("--dir", required=True)
p.add_argument("--pause-after", type=int, default=-1)
p.add_argument("--delay", type=float, default=0.0)
p.add_argument("--resume", action="store_true")
args = p.parse_args()

if args.mode == "torch":
    import datetime

    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                            rank=args.rank, world_size=args.world_size,
                            timeout=datetime.timedelta(seconds=60))
    shard = shard_from_torch(args.remainder)
else:
    shard = shard_from_env(args.remainder)

ckpt_path = os.path.join(args.dir, f"rank{shard.rank}.json")
ckpt = {"seen": [], "state": None, "reduced": [], "lives": [], "done": False}
if args.resume:
    with open(ckpt_path) as f:
        ckpt = json.load(f)
ckpt["lives"].append({"pid": os.getpid(), "start_step": len(ckpt["seen"]),
                      "shard": [shard.rank, shard.world_size, shard.remainder]})


def save():
    tmp = ckpt_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(ckpt))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, ckpt_path)


ds = data_source.ArrayDataSource([np.arange(args.n)], repeats=1)
it = ds.batch_iterator(args.batch_size, shuffle=args.seed, shard=shard, state=ckpt["state"])
save()
for (batch,) in it:
    ckpt["seen"].append(batch.tolist())
    if args.mode == "torch":
        # Every rank must be at the same step: [1, step] sums to [world, world * step].
        t = torch.tensor([1.0, float(len(ckpt["seen"]))], dtype=torch.float64)
        dist.all_reduce(t)
        ckpt["reduced"].append(t.tolist())
    ckpt["state"] = it.get_state()
    save()
    if len(ckpt["seen"]) == args.pause_after:
        time.sleep(600)           # the parent kills us here
    time.sleep(args.delay)
ckpt["done"] = True
save()
if args.mode == "torch":
    dist.destroy_process_group()
'''


# --------------------------------------------------------------- helpers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    """This environment without any launcher's rank variables, plus ``extra``."""
    env = dict(os.environ)
    for rank_var, size_var, _ in (*ENV_FAMILIES, LOCAL_FAMILY):
        env.pop(rank_var, None)
        env.pop(size_var, None)
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Procs:
    """The processes a test started; ``kill_all`` ends those still running (and only those)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []

    def start(self, name, cmd, env):
        out = open(self.tmp_path / f"{name}.log", "w")
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=self.tmp_path)
        out.close()
        proc.log_name = name
        self.procs.append(proc)
        return proc

    def log(self, proc):
        return (self.tmp_path / f"{proc.log_name}.log").read_text()

    def wait(self, proc, timeout=WAIT):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            pytest.fail(f"{proc.log_name} did not finish within {timeout} s (hung?):\n"
                        f"{self.log(proc)}")

    def expect_success(self, proc):
        rc = self.wait(proc)
        assert rc == 0, f"{proc.log_name} exited with {rc}:\n{self.log(proc)}"

    def kill_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=WAIT)


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.kill_all()


def read_ckpt(path):
    """The checkpoint at ``path`` (None if not written yet). Always a whole file:
    the worker replaces it atomically."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def wait_for_batches(procs, path, k, watch):
    """Wait until the checkpoint at ``path`` records at least ``k`` batches."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        ckpt = read_ckpt(path)
        if ckpt is not None and len(ckpt["seen"]) >= k:
            return ckpt
        for proc in watch:
            if proc.poll() is not None:
                pytest.fail(f"{proc.log_name} exited ({proc.returncode}) before its "
                            f"checkpoint reached batch {k}:\n{procs.log(proc)}")
        time.sleep(0.002)
    procs.kill_all()
    pytest.fail(f"{path.name} did not reach batch {k} within {WAIT} s")


def reference(n, remainder):
    """Per rank, the batches of an uninterrupted iteration, computed in this process."""
    ds = data_source.ArrayDataSource([np.arange(n)], repeats=1)
    return [[b[0].tolist() for b in ds.batch_iterator(BATCH, shuffle=SEED,
                                                       shard=ShardSpec(r, WORLD, remainder))]
            for r in range(WORLD)]


def epoch_order(n):
    """The epoch's order: what one process with the global batch size sees."""
    ds = data_source.ArrayDataSource([np.arange(n)])
    return np.concatenate([b[0] for b in ds.batch_iterator(BATCH * WORLD, shuffle=SEED)])


def check_coverage(n, remainder, seen_by_rank):
    """The remainder policy's guarantee, checked from first principles."""
    g = BATCH * WORLD
    counts = Counter(i for batches in seen_by_rank for b in batches for i in b)
    steps = [len(batches) for batches in seen_by_rank]
    order = epoch_order(n)
    assert sorted(order.tolist()) == list(range(n))
    full, rest = divmod(n, g)
    if remainder == "even":
        # Every sample exactly once; rank r may have one batch more than a later rank.
        assert counts == Counter(range(n))
        want = [full + (1 if rest > r * BATCH else 0) for r in range(WORLD)]
        assert steps == want
    elif remainder == "drop":
        # The full global batches' samples exactly once, the short one's never.
        assert counts == Counter(order[:full * g].tolist())
        assert not set(counts) & set(order[full * g:].tolist())
        assert steps == [full] * WORLD
    else:
        # Every sample at least once, every rank the same number of full batches;
        # the G - R duplicates are the first samples of the epoch's order.
        assert set(counts) == set(range(n))
        assert all(len(b) == BATCH for batches in seen_by_rank for b in batches)
        assert steps == [-(-n // g)] * WORLD
        dup = sorted(i for i, c in counts.items() if c > 1)
        assert all(c <= 2 for c in counts.values())
        assert dup == sorted(order[:(g - rest) % g].tolist())


def worker_cmd(tmp_path, mode, n, remainder, **opts):
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    cmd = [sys.executable, str(script), "--mode", mode, "--n", str(n),
           "--batch-size", str(BATCH), "--seed", str(SEED), "--remainder", remainder,
           "--dir", str(tmp_path)]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag] if value is True else [flag, str(value)]
    return cmd


# --------------------------------------------------------------- RANK / WORLD_SIZE


@pytest.mark.parametrize("remainder, n", [("even", 403), ("drop", 400), ("drop", 403),
                                          ("pad", 403)])
def test_env_ranks_killed_and_resumed_see_the_epoch_as_promised(procs, tmp_path, remainder, n):
    # Rank 1 is SIGKILLed while it runs, wherever it happens to be (even in the middle
    # of writing its checkpoint): what it saw up to its last checkpoint plus what it
    # sees after the restart must be exactly its uninterrupted share.
    kill_at = 10
    env = [clean_env(RANK=r, WORLD_SIZE=WORLD) for r in range(WORLD)]
    r0 = procs.start("rank0", worker_cmd(tmp_path, "env", n, remainder), env[0])
    r1 = procs.start("rank1", worker_cmd(tmp_path, "env", n, remainder, delay=0.02), env[1])
    wait_for_batches(procs, tmp_path / "rank1.json", kill_at, [r1])
    r1.send_signal(signal.SIGKILL)
    assert procs.wait(r1) == -signal.SIGKILL
    killed = read_ckpt(tmp_path / "rank1.json")
    assert not killed["done"] and kill_at <= len(killed["seen"]) < 45, "not killed mid-epoch"
    assert len(json.dumps(killed["state"])) < 1024  # seeded: a few hundred bytes

    r1b = procs.start("rank1-resumed",
                      worker_cmd(tmp_path, "env", n, remainder, resume=True), env[1])
    procs.expect_success(r0)
    procs.expect_success(r1b)

    ckpts = [read_ckpt(tmp_path / f"rank{r}.json") for r in range(WORLD)]
    assert all(c["done"] for c in ckpts)
    assert [life["shard"] for life in ckpts[1]["lives"]] == [[1, WORLD, remainder]] * 2
    assert ckpts[1]["lives"][1]["start_step"] == len(killed["seen"])
    # The restarted rank carried on exactly where its checkpoint was...
    assert ckpts[1]["seen"][:len(killed["seen"])] == killed["seen"]
    # ...and each rank's batches, in order, are those of an uninterrupted iteration.
    assert [c["seen"] for c in ckpts] == reference(n, remainder)
    check_coverage(n, remainder, [c["seen"] for c in ckpts])
    # The state does not depend on the rank (so it restores on any rank).
    if len(ckpts[0]["seen"]) == len(ckpts[1]["seen"]):
        assert ckpts[0]["state"] == ckpts[1]["state"]


# --------------------------------------------------------------- torch.distributed


def test_torch_ranks_killed_and_resumed_in_a_new_process_group(procs, tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    n, remainder, pause = 93, "pad", 5   # G = 8: 11 full global batches, then 5 + 3 padded
    env = clean_env()   # no RANK / WORLD_SIZE: the ranks must come from the process group

    port = free_port()
    first = [procs.start(f"torch-rank{r}",
                         worker_cmd(tmp_path, "torch", n, remainder, rank=r,
                                    world_size=WORLD, port=port,
                                    **({"pause_after": pause} if r == 1 else {})), env)
             for r in range(WORLD)]
    # Rank 1 stops after checkpointing batch `pause`; rank 0 cannot get past the next
    # all_reduce without it, so both checkpoints end at batch `pause`.
    at_pause = [wait_for_batches(procs, tmp_path / f"rank{r}.json", pause, first)
                for r in range(WORLD)]
    first[1].send_signal(signal.SIGKILL)
    assert procs.wait(first[1]) == -signal.SIGKILL
    # A killed rank breaks the process group for good: the survivor's collective
    # fails (gloo reports the closed connection) or blocks until the group's
    # timeout, and a group cannot take in a replacement for a dead rank. So, as
    # torchrun does, every rank is restarted -- each from its own checkpoint -- in
    # a new process group. (Stop rank 0 if gloo has not already ended it.)
    try:
        rc0 = first[0].wait(timeout=15)
    except subprocess.TimeoutExpired:
        first[0].send_signal(signal.SIGKILL)
        rc0 = procs.wait(first[0])
    assert rc0 != 0
    ckpts = [read_ckpt(tmp_path / f"rank{r}.json") for r in range(WORLD)]
    assert [len(c["seen"]) for c in ckpts] == [pause, pause]
    assert [len(c["seen"]) for c in at_pause] == [pause, pause]
    assert ckpts[0]["state"] == ckpts[1]["state"]   # the same position on every rank

    port = free_port()
    second = [procs.start(f"torch-rank{r}-resumed",
                          worker_cmd(tmp_path, "torch", n, remainder, rank=r,
                                     world_size=WORLD, port=port, resume=True), env)
              for r in range(WORLD)]
    for proc in second:
        procs.expect_success(proc)

    ckpts = [read_ckpt(tmp_path / f"rank{r}.json") for r in range(WORLD)]
    steps = -(-n // (BATCH * WORLD))
    for r, c in enumerate(ckpts):
        assert c["done"]
        assert [life["shard"] for life in c["lives"]] == [[r, WORLD, remainder]] * 2
        assert [life["start_step"] for life in c["lives"]] == [0, pause]
        # Every all_reduce had both ranks at the same step, in both process groups.
        assert c["reduced"] == [[float(WORLD), float(WORLD * s)] for s in range(1, steps + 1)]
    assert [c["seen"] for c in ckpts] == reference(n, remainder)
    check_coverage(n, remainder, [c["seen"] for c in ckpts])


# --------------------------------------------------------------- the examples


def run_example(tmp_path, name, *argv):
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *argv],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=WAIT)


def checksum(out):
    found = re.findall(r"^checksum ([0-9a-f]{16})$", out, re.M)
    assert len(found) == 1, out
    return found[0]


def test_resume_training_example_killed_and_resumed_gives_the_same_checksum(tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    whole = run_example(tmp_path, "resume_training.py", "--checkpoint", str(tmp_path / "a.npz"))
    assert whole.returncode == 0, whole.stderr
    killed = run_example(tmp_path, "resume_training.py", "--checkpoint", ckpt,
                         "--kill-after", "57")
    assert killed.returncode == 1, killed.stdout + killed.stderr
    assert "checksum" not in killed.stdout
    assert "batch 57: exiting abruptly" in killed.stdout
    resumed = run_example(tmp_path, "resume_training.py", "--checkpoint", ckpt, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # Batches 51-57 were done but not checkpointed: the resumed run redoes them.
    assert "resumed after batch 50 of 88" in resumed.stdout
    assert checksum(resumed.stdout) == checksum(whole.stdout)


@pytest.mark.parametrize("remainder", ["even", "drop", "pad"])
def test_distributed_shards_example(tmp_path, remainder):
    proc = run_example(tmp_path, "distributed_shards.py", "--remainder", remainder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"rank 0 of 2: {21 if remainder == 'drop' else 22} batches" in proc.stdout
    assert "guarantee holds: yes" in proc.stdout
    assert "the ranks' batches, step by step, are one process's order: yes" in proc.stdout
    if remainder == "even":
        assert "every sample of the epoch exactly once: yes" in proc.stdout
