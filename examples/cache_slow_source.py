"""Cache a slow source once, with two worker processes, then train from the cache.

``SlowDigits`` stands for a data set whose samples are expensive to produce:
it "decodes" the 8x8 digits shipped with batchup one sample at a time, with
a delay per sample, as a Python image decoder would. ``cache_source`` reads
it once, in blocks, in two worker processes, and stores images and labels in
``<cache>/0.npy`` and ``<cache>/1.npy``. Training then iterates the memory
maps of those files. Calling ``cache_source`` again (or running the script
again with the same ``--cache``) finds the cache and decodes nothing.

    python examples/cache_slow_source.py --cache /tmp/digits-cache --epochs 10
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from batchup import data_source
from batchup.cache import cache_source
from batchup.datasets import digits
from batchup.demo import MLP


class SlowDigits:
    """The 1,400 training digits as float32 images in [0, 1], decoded one by one.

    ``shape`` and ``dtype`` tell ``cache_source`` what the rows look like;
    ``cache_key`` puts the decoding settings into the cache's fingerprint.
    """

    def __init__(self, delay=0.002):
        X, _ = digits.load_raw()
        self.raw = X[:digits.N_TRAIN_POOL]
        self.delay = delay
        self.shape = (len(self.raw), 1, 8, 8)
        self.dtype = np.dtype(np.float32)

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, index):
        index = np.asarray(index)
        out = np.empty((len(index), 1, 8, 8), dtype=np.float32)
        for k, i in enumerate(index):  # one sample at a time, as a decoder would
            time.sleep(self.delay)
            out[k, 0] = self.raw[i] / np.float32(16.0)
        return out

    def cache_key(self):
        return {"scale": "0..16 -> 0..1"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=None,
                        help="folder for the cache (default: a temporary folder)")
    parser.add_argument("--delay", type=float, default=0.002,
                        help="seconds to 'decode' one sample")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.cache) if args.cache else Path(tmp) / "digits-cache"
        train_y = digits.load_raw()[1][:digits.N_TRAIN_POOL]
        slow = data_source.ArrayDataSource([SlowDigits(args.delay), train_y])
        print(f"decoding the training set serially would take about "
              f"{len(train_y) * args.delay:.1f} s")

        start = time.perf_counter()
        cached = cache_source(slow, folder, pool=args.workers, batch_size=128)
        seconds = time.perf_counter() - start
        print(f"cache_source with {args.workers} worker processes: {seconds:.2f} s -> "
              f"{sorted(p.name for p in folder.glob('*.npy'))} in {folder}")

        start = time.perf_counter()
        cached = cache_source(slow, folder, pool=args.workers, batch_size=128)
        print(f"cache_source again (cache found, only the fingerprint rows decoded): "
              f"{time.perf_counter() - start:.3f} s")

        labels = np.load(folder / "1.npy")  # the labels alone, without the images
        print(f"samples per class (from 1.npy only): {np.bincount(labels).tolist()}")

        test = digits.Digits(n_val=0)
        test_ds = data_source.ArrayDataSource([test.test_X])
        rng = np.random.default_rng(args.seed)
        model = MLP(64, 64, 10, rng)
        for epoch in range(1, args.epochs + 1):
            batches = cached.batch_iterator(batch_size=32, shuffle=(args.seed, epoch))
            for batch_X, batch_y in batches:
                model.train_step(batch_X, batch_y, lr=0.05)
            (probs,) = test_ds.batch_map_concat(model.predict_proba, batch_size=256)
            accuracy = float((probs.argmax(axis=1) == test.test_y).mean())
            print(f"epoch {epoch:2d}  test accuracy {accuracy:.2%}")
        del cached  # release the memory maps before the temporary folder goes
    return accuracy


if __name__ == "__main__":
    main()
