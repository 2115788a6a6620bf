"""Batch augmentation with ``.map(fn)``, in worker processes, repeatable with a seed.

``augment`` shifts each 8x8 digit by up to ``--max-shift`` pixels in each
direction (zero-filled) and adds Gaussian pixel noise, for a whole batch at
once. Its random numbers come from ``batchup.randomness.batch_rng()``, a
generator keyed on (seed, epoch, step) of the batch being made when the
iteration is seeded (``shuffle=(seed, epoch)``): it does not depend on which
process makes the batch. So the batches that
``work_pool.WorkerProcessPool(2).parallel_data_source(ds)`` prepares in two
background processes are exactly those the plain serial loop gives.

The script iterates ``--epochs`` epochs both ways, compares every batch,
checks that the augmentation did change the images (against the same batches
without ``.map``), and that another seed gives another augmentation.

    python examples/augment_in_process_pool.py
    python examples/augment_in_process_pool.py --workers 2 --epochs 3 --noise 0.2

``augment`` is defined at module level: the worker processes receive it
pickled (a ``functools.partial`` of it carries the options). This augmentation
is cheap, so here the pool is slower than the serial loop (it starts two
interpreters); it pays off when preparing a batch costs more than a training
step.
"""

import argparse
import functools
import hashlib
import time

import numpy as np

from batchup import data_source, randomness, work_pool
from batchup.datasets import digits


def augment(batch_X, batch_y, max_shift=1, noise=0.1):
    """Shift every image of the batch at random and add pixel noise.

    Parameters
    ----------
    batch_X : numpy.ndarray
        float32 images of shape (n, 1, rows, cols).
    batch_y : numpy.ndarray
        Labels, returned unchanged.
    max_shift : int
        Largest shift, in pixels, along each axis; the pixels shifted in are 0.
    noise : float
        Standard deviation of the Gaussian noise added to every pixel.

    Returns
    -------
    tuple of numpy.ndarray
        The augmented images (a new array) and the labels.
    """
    # The batch's own generator: with a seeded iteration the same draws serially
    # and in any worker, unlike np.random or a generator made at import time.
    rng = randomness.batch_rng()
    n, _, rows, cols = batch_X.shape
    m = max_shift
    padded = np.pad(batch_X[:, 0], ((0, 0), (m, m), (m, m)))
    # One (dy, dx) per image; every image is cut out of its padded copy with one
    # fancy-indexing operation rather than a loop over the images.
    dy, dx = rng.integers(-m, m + 1, size=(2, n))
    r = (m + dy)[:, None, None] + np.arange(rows)[None, :, None]
    c = (m + dx)[:, None, None] + np.arange(cols)[None, None, :]
    shifted = padded[np.arange(n)[:, None, None], r, c]
    noisy = shifted + rng.normal(0.0, noise, size=shifted.shape).astype(batch_X.dtype)
    return noisy[:, None], batch_y


def epoch_batches(ds, batch_size, seed, epoch):
    """Every batch of one seeded epoch of ``ds``, as a list of (X, y)."""
    return list(ds.batch_iterator(batch_size, shuffle=(seed, epoch)))


def digest(batches):
    """A short SHA-256 of the batches' bytes, to compare runs at a glance."""
    h = hashlib.sha256()
    for X, y in batches:
        h.update(X.tobytes())
        h.update(y.tobytes())
    return h.hexdigest()[:16]


def same(a, b):
    """True if two lists of batches hold equal arrays, batch by batch."""
    # Lengths first: zip(strict=True) would raise rather than answer False.
    return len(a) == len(b) and all(np.array_equal(xa, xb) and np.array_equal(ya, yb)
                                    for (xa, ya), (xb, yb) in zip(a, b, strict=True))


def main(argv=None):
    """Augment the same seeded epochs serially and in a process pool, and compare.

    Returns
    -------
    dict
        ``identical``: whether every batch agreed; ``digest``: a hash of the
        pool's first epoch; ``batches``: how many batches the pool gave.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of the pool (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs compared (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="samples per batch (default: %(default)s)")
    parser.add_argument("--max-shift", type=int, default=1,
                        help="largest random shift in pixels (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="standard deviation of the pixel noise (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the shuffling and the augmentation (default: %(default)s)")
    args = parser.parse_args(argv)

    d = digits.Digits(n_val=0)
    raw_ds = data_source.ArrayDataSource([d.train_X, d.train_y])
    fn = functools.partial(augment, max_shift=args.max_shift, noise=args.noise)
    ds = raw_ds.map(fn)
    print(f"{len(d.train_y)} training digits, batches of {args.batch_size}, "
          f"{ds.num_batches(args.batch_size)} batches per epoch")

    serial, pooled = [], []
    start = time.perf_counter()
    for epoch in range(args.epochs):
        serial.append(epoch_batches(ds, args.batch_size, args.seed, epoch))
    serial_s = time.perf_counter() - start

    start = time.perf_counter()
    with work_pool.WorkerProcessPool(processes=args.workers) as pool:
        par_ds = pool.parallel_data_source(ds, batch_buffer_size=16)
        for epoch in range(args.epochs):
            pooled.append(epoch_batches(par_ds, args.batch_size, args.seed, epoch))
    pool_s = time.perf_counter() - start
    print(f"serial: {serial_s:.2f} s; pool of {args.workers} worker process(es), "
          f"start-up included: {pool_s:.2f} s")

    identical = True
    for epoch in range(args.epochs):
        agree = same(serial[epoch], pooled[epoch])
        identical &= agree
        print(f"epoch {epoch}: serial {digest(serial[epoch])}  pool {digest(pooled[epoch])}  "
              f"{'identical' if agree else 'DIFFERENT'}")

    # The augmentation changed the images: compare with the same seed's batches
    # without .map (the same samples, in the same order).
    raw = epoch_batches(raw_ds, args.batch_size, args.seed, 0)
    change = np.mean(np.concatenate([np.abs(a - b).ravel() for (a, _), (b, _)
                                     in zip(serial[0], raw, strict=True)]))
    print(f"mean absolute change per pixel: {change:.3f} (noise alone would give "
          f"{args.noise * np.sqrt(2 / np.pi):.3f}; the rest comes from the shifts)")
    other = epoch_batches(ds, args.batch_size, args.seed + 1, 0)
    print(f"seed {args.seed + 1} gives another augmentation: "
          f"{'yes' if digest(other) != digest(serial[0]) else 'NO'}")
    print(f"same batches serially and in the pool: {'yes' if identical else 'NO'}")
    return {"identical": bool(identical), "digest": digest(pooled[0]),
            "batches": sum(len(b) for b in pooled)}


if __name__ == "__main__":
    main()
