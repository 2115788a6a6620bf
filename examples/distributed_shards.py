"""Two processes share one shuffled epoch: each iterates its shard, found from RANK/WORLD_SIZE.

The parent starts ``--world-size`` copies of this script, as a launcher such as
torchrun would, with ``RANK`` and ``WORLD_SIZE`` set in their environment.
Each worker builds its ``ShardSpec`` with ``batchup.distributed.shard_from_env()``,
iterates its share of a seeded shuffled epoch of the shipped digits and prints
the indices it saw (as JSON). The parent gathers them and checks what the
remainder policy promises: with ``even`` (the default here) every sample of
the epoch exactly once; with ``drop`` every sample at most once and all but
the final short global batch; with ``pad`` every sample at least once and the
same number of batches on every rank.

    python examples/distributed_shards.py
    python examples/distributed_shards.py --remainder pad --batch-size 48
"""

import argparse
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np

from batchup import data_source
from batchup.datasets import digits
from batchup.distributed import shard_from_env


def worker(batch_size, seed, remainder):
    """One rank: iterate this process's shard and print the indices seen, as JSON."""
    shard = shard_from_env(remainder)  # RANK / WORLD_SIZE, as set by the parent
    d = digits.Digits(n_val=0)
    ds = data_source.ArrayDataSource([d.train_X, d.train_y], include_indices=True)
    batches = [idx.tolist() for idx, X, y in
               ds.batch_iterator(batch_size, shuffle=seed, shard=shard)]
    print(json.dumps({"rank": shard.rank, "world_size": shard.world_size,
                      "batches": batches}))


def launch(world_size, argv):
    """Start ``world_size`` workers, as a launcher would; return their reports by rank."""
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size))
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                       *argv], env=env, stdout=subprocess.PIPE, text=True))
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed with exit code {proc.returncode}")
        reports.append(json.loads(out))
    return sorted(reports, key=lambda r: r["rank"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--remainder", choices=["even", "drop", "pad"], default="even")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch_size, args.seed, args.remainder)
        return None

    reports = launch(args.world_size, ["--batch-size", str(args.batch_size), "--seed",
                                       str(args.seed), "--remainder", args.remainder])
    n = len(digits.Digits(n_val=0).train_y)
    g = args.batch_size * args.world_size
    counts = Counter(i for r in reports for b in r["batches"] for i in b)
    steps = [len(r["batches"]) for r in reports]
    seen_twice = sum(1 for c in counts.values() if c > 1)
    missing = n - len(counts)
    print(f"{n} samples, {args.world_size} processes, {args.batch_size} per rank and step "
          f"(global batch {g}), remainder {args.remainder!r}")
    for r in reports:
        sizes = [len(b) for b in r["batches"]]
        print(f"  rank {r['rank']} of {r['world_size']}: {len(sizes)} batches, "
              f"{sum(sizes)} samples, last batch {sizes[-1] if sizes else 0}")
    print(f"  seen twice or more: {seen_twice}, never seen: {missing}")

    full, rest = divmod(n, g)
    if args.remainder == "even":
        holds = counts == Counter(range(n))
        print(f"every sample of the epoch exactly once: {'yes' if holds else 'NO'}")
    elif args.remainder == "drop":
        holds = (max(counts.values()) == 1 and len(counts) == full * g
                 and steps == [full] * args.world_size)
        print(f"{full * g} samples exactly once, the last {rest} dropped")
    else:
        holds = (len(counts) == n and steps == [full + (rest > 0)] * args.world_size
                 and seen_twice == (g - rest) % g)
        print(f"every sample at least once, {(g - rest) % g} of them twice (padding)")
    # Step by step, the ranks' batches make up one order: the order a single process
    # iterating with the global batch size sees (padding aside).
    order = [i for s in range(max(steps)) for r in reports if s < len(r["batches"])
             for i in r["batches"][s]]
    ds = data_source.ArrayDataSource([np.arange(n)])
    single = np.concatenate([b for (b,) in ds.batch_iterator(g, shuffle=args.seed)])
    k = min(len(order), n)
    same = bool((np.asarray(order[:k]) == single[:k]).all())
    print(f"the ranks' batches, step by step, are one process's order: {'yes' if same else 'NO'}")
    print(f"guarantee holds: {'yes' if holds else 'NO'}")
    if not (holds and same):
        raise SystemExit(1)
    return np.asarray(order)

if __name__ == "__main__":
    main()
